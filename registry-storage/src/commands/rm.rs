//! `rm`: delete a file, or a directory with everything below it (`-r`).

use storagedriver::StorageDriver;

use crate::cli::RmArgs;
use crate::exit::CliError;

/// Runs `rm`: a `stat` first, so that a directory is deleted only when `-r` asks for it.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &RmArgs) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let info = driver.stat(&path).await?;
    if info.is_dir && !args.recursive {
        return Err(CliError::invalid(format!(
            "{}: {path} is a directory: rm -r deletes it and everything below it",
            driver.name()
        )));
    }
    driver.delete(&path).await?;
    Ok(())
}
