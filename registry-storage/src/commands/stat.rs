//! `stat`: one entry's size, type and modification time.

use storagedriver::StorageDriver;

use crate::cli::StatArgs;
use crate::exit::CliError;
use crate::output;

/// Runs `stat`.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &StatArgs) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let info = driver.stat(&path).await?;
    if args.json {
        return output::print_json(&output::info_json(&info));
    }
    let size = if info.is_dir {
        "-".to_owned()
    } else {
        format!("{} ({})", info.size, output::human_size(info.size))
    };
    let kind = if info.is_dir { "directory" } else { "file" };
    output::print_text(&format!(
        "path      {}\ntype      {kind}\nsize      {size}\nmodified  {} UTC\n",
        info.path,
        output::short_time(info.mod_time)
    ))
}
