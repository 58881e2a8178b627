//! `cat`: a file's content from an offset, streamed to stdout.

use futures::StreamExt;
use storagedriver::StorageDriver;
use tokio::io::AsyncWriteExt;

use crate::cli::CatArgs;
use crate::exit::CliError;
use crate::progress;

/// Runs `cat`.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &CatArgs) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let mut stream = match driver.reader(&path, args.offset).await {
        Ok(stream) => stream,
        Err(err) => {
            return Err(super::not_a_directory(driver, &path, err, "cat reads files").await);
        }
    };
    // Progress only when the content goes elsewhere than the terminal it would be drawn on.
    let bar = if progress::enabled_beside_stdout() {
        let total = driver
            .stat(&path)
            .await
            .ok()
            .map(|info| info.size.saturating_sub(args.offset));
        progress::bytes(total, &path)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = tokio::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        out.write_all(&chunk)
            .await
            .map_err(|e| CliError::stdout(&e))?;
        bar.inc(chunk.len() as u64);
    }
    out.flush().await.map_err(|e| CliError::stdout(&e))?;
    bar.finish_and_clear();
    Ok(())
}
