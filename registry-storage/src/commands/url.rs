//! `url`: a signed URL that reads a file directly from the backend.

use storagedriver::{Method, StorageDriver, UrlOptions};

use crate::cli::{MethodArg, UrlArgs};
use crate::exit::CliError;

/// Runs `url`.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &UrlArgs) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let options = UrlOptions {
        method: match args.method {
            MethodArg::Get => Method::Get,
            MethodArg::Head => Method::Head,
        },
        expires_in: args.expires,
    };
    let url = driver.url_for(&path, &options).await?;
    crate::output::print_text(&format!("{url}\n"))
}
