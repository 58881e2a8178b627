//! `ls`: a directory's children (the driver's `list`), or everything below it (`walk`).

use std::io::{BufWriter, Stdout, Write};

use futures::{StreamExt, TryStreamExt};
use storagedriver::{FileInfo, StorageDriver, WalkControl, WalkOptions};

use crate::cli::LsArgs;
use crate::exit::CliError;
use crate::output;
use crate::progress;

/// How many `stat` calls `ls -l` keeps in flight.
const STAT_CONCURRENCY: usize = 16;

/// Runs `ls`.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &LsArgs) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let style = if args.json {
        Style::Json
    } else if args.long {
        Style::Long { human: args.human }
    } else {
        Style::Names
    };
    let mut listing = Listing::new(style);
    let result = if args.recursive {
        walk(driver, &path, &mut listing).await
    } else {
        list(driver, &path, &mut listing).await
    };
    match result {
        Err(err) if err.is_not_found() => {
            // `ls FILE` shows the file, as ls(1) does; walk and list report a file as not found.
            match driver.stat(&path).await {
                Ok(info) if !info.is_dir => {
                    listing.entry(&info).map_err(|e| CliError::stdout(&e))?
                }
                _ => return Err(err.into()),
            }
        }
        Err(err) => return Err(err.into()),
        Ok(Err(err)) => return Err(err),
        Ok(Ok(())) => {}
    }
    listing.finish().map_err(|e| CliError::stdout(&e))
}

/// The children of `path`, with a `stat` each unless only names are shown.
async fn list(
    driver: &dyn StorageDriver,
    path: &str,
    listing: &mut Listing,
) -> storagedriver::Result<Result<(), CliError>> {
    let names = driver.list(path).await?;
    if listing.style == Style::Names {
        let shown = names.iter().try_for_each(|name| listing.name(name));
        return Ok(shown.map_err(|e| CliError::stdout(&e)));
    }
    let infos: Vec<Option<FileInfo>> = futures::stream::iter(names)
        .map(|name| async move {
            match driver.stat(&name).await {
                Ok(info) => Ok(Some(info)),
                // Deleted between the list and its stat: not shown.
                Err(err) if err.is_not_found() => Ok(None),
                Err(err) => Err(err),
            }
        })
        .buffered(STAT_CONCURRENCY)
        .try_collect()
        .await?;
    let shown = infos
        .iter()
        .flatten()
        .try_for_each(|info| listing.entry(info));
    Ok(shown.map_err(|e| CliError::stdout(&e)))
}

/// Every entry below `path`, depth first, written as the walk reports it.
async fn walk(
    driver: &dyn StorageDriver,
    path: &str,
    listing: &mut Listing,
) -> storagedriver::Result<Result<(), CliError>> {
    let bar = progress::entries(path, true);
    let mut failed = None;
    let walked = driver
        .walk(path, &WalkOptions::default(), &mut |info| {
            bar.inc(1);
            match listing.entry(info) {
                Ok(()) => WalkControl::Continue,
                Err(err) => {
                    failed = Some(CliError::stdout(&err));
                    WalkControl::Stop
                }
            }
        })
        .await;
    bar.finish_and_clear();
    walked?;
    Ok(failed.map_or(Ok(()), Err))
}

/// What `ls` shows of each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// The path alone.
    Names,
    /// `ls -l`.
    Long {
        /// Sizes with units.
        human: bool,
    },
    /// A JSON array, one object per line.
    Json,
}

/// The output of `ls`, written as entries come.
#[derive(Debug)]
struct Listing {
    out: BufWriter<Stdout>,
    style: Style,
    count: usize,
}

impl Listing {
    fn new(style: Style) -> Self {
        Listing {
            out: BufWriter::new(std::io::stdout()),
            style,
            count: 0,
        }
    }

    /// A name from `list`, shown as it is.
    fn name(&mut self, name: &str) -> std::io::Result<()> {
        self.count += 1;
        writeln!(self.out, "{name}")
    }

    fn entry(&mut self, info: &FileInfo) -> std::io::Result<()> {
        let first = self.count == 0;
        self.count += 1;
        match self.style {
            Style::Names => writeln!(self.out, "{}", output::shown_path(info)),
            Style::Long { human } => writeln!(self.out, "{}", output::long_line(info, human)),
            Style::Json => {
                let separator = if first { "[\n  " } else { ",\n  " };
                write!(self.out, "{separator}{}", output::info_json(info))
            }
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        if self.style == Style::Json {
            let end = if self.count == 0 { "[]\n" } else { "\n]\n" };
            self.out.write_all(end.as_bytes())?;
        }
        self.out.flush()
    }
}
