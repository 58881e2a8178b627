//! `put`: a file from a local file or stdin, streamed through a writer and committed.

use std::io::IsTerminal;
use std::path::Path;

use bytes::BytesMut;
use indicatif::ProgressBar;
use storagedriver::{FileWriter, StorageDriver};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::cli::PutArgs;
use crate::exit::CliError;
use crate::interrupt::Interrupt;
use crate::progress;

/// How much is read before it is handed to the writer.
const CHUNK: usize = 1 << 20;

/// Runs `put`. Nothing is visible at the path until the commit; on a read or write error, or
/// Ctrl-C, the writer is cancelled, which leaves the path as it was.
pub(crate) async fn run(
    driver: &dyn StorageDriver,
    args: &PutArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let (input, total, name) = open_input(args.file.as_deref()).await?;
    // Not dropped on Ctrl-C while it opens: an open writer is cancelled below, which removes
    // what opening it made (a second Ctrl-C still ends the process at once).
    let mut writer = driver.writer(&path, false).await?;
    let bar = progress::bytes(total, &path);
    let copied = tokio::select! {
        biased;
        result = copy(input, writer.as_mut(), &bar, &name) => result,
        () = interrupt.wait() => Err(CliError::interrupted()),
    };
    bar.finish_and_clear();
    match copied {
        Ok(_) => Ok(writer.commit().await?),
        Err(err) => {
            // Best effort: the error that stopped the copy is the one to report.
            let _ = writer.cancel().await;
            Err(err)
        }
    }
}

/// The input: a local file (with its size), or stdin for no file or `-`.
async fn open_input(
    file: Option<&Path>,
) -> Result<(Box<dyn AsyncRead + Unpin + Send>, Option<u64>, String), CliError> {
    match file {
        Some(file) if file != Path::new("-") => {
            let name = file.display().to_string();
            let opened = tokio::fs::File::open(file)
                .await
                .map_err(|e| CliError::local(format!("opening {name}"), &e))?;
            let metadata = opened
                .metadata()
                .await
                .map_err(|e| CliError::local(format!("reading {name}"), &e))?;
            if metadata.is_dir() {
                return Err(CliError::invalid(format!(
                    "{name} is a directory: put reads one file"
                )));
            }
            Ok((Box::new(opened), Some(metadata.len()), name))
        }
        _ => {
            if std::io::stdin().is_terminal() {
                crate::output::note("reading stdin; end with Ctrl-D");
            }
            Ok((Box::new(tokio::io::stdin()), None, "stdin".to_owned()))
        }
    }
}

/// Copies `input` to `writer` in chunks of up to [`CHUNK`] bytes; returns the bytes written.
async fn copy(
    mut input: Box<dyn AsyncRead + Unpin + Send>,
    writer: &mut dyn FileWriter,
    bar: &ProgressBar,
    name: &str,
) -> Result<u64, CliError> {
    let mut written = 0_u64;
    loop {
        let mut chunk = BytesMut::with_capacity(CHUNK);
        let mut end = false;
        while chunk.len() < CHUNK {
            match input.read_buf(&mut chunk).await {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CliError::local(format!("reading {name}"), &e)),
            }
        }
        if !chunk.is_empty() {
            let len = chunk.len() as u64;
            writer.write(chunk.freeze()).await?;
            written += len;
            bar.inc(len);
        }
        if end {
            return Ok(written);
        }
    }
}
