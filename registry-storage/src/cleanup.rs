//! Deleting what `check` and `bench` wrote: [`testsuites::scoped::remove_tree`], tried again
//! while the driver says a retry may help (a busy server timing out).

use std::time::Duration;

use storagedriver::{Error, StorageDriver};
use testsuites::scoped::remove_tree;

/// How many times a removal is tried.
const TRIES: u32 = 3;

/// The pause before the next try.
const PAUSE: Duration = Duration::from_secs(1);

/// Deletes `dir` and everything below it; nothing there is fine.
///
/// # Errors
///
/// The driver's last error, when every try failed or a retry cannot help.
pub(crate) async fn remove(driver: &dyn StorageDriver, dir: &str) -> Result<(), Error> {
    let mut tries = 1;
    loop {
        match remove_tree(driver, dir).await {
            Ok(()) | Err(Error::PathNotFound { .. }) => return Ok(()),
            Err(e) if e.may_retry() && tries < TRIES => {
                tries += 1;
                tokio::time::sleep(PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}
