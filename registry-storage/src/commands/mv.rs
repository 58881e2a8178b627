//! `mv`: move a file (the driver's `rename`).

use storagedriver::StorageDriver;

use crate::cli::MvArgs;
use crate::exit::CliError;

/// Runs `mv`.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &MvArgs) -> Result<(), CliError> {
    let from = super::path_arg(&args.from);
    let to = super::path_arg(&args.to);
    driver.rename(&from, &to).await?;
    Ok(())
}
