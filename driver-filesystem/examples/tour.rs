//! A tour of the filesystem driver under a temporary root: put, a writer resumed from a new
//! driver instance, list, walk, stat and delete, then the errors a user sees for common
//! mistakes.
//!
//! ```sh
//! cargo run -p driver-filesystem --example tour
//! ```

use std::error::Error as StdError;

use bytes::Bytes;
use driver_filesystem::{FilesystemDriver, FilesystemFactory};
use serde_json::json;
use storagedriver::{DriverFactory, Parameters, StorageDriver, WalkControl, WalkOptions};

const BLOB: &str = "/docker/registry/v2/blobs/sha256/ab/abcdef/data";
const UPLOAD: &str = "/docker/registry/v2/repositories/library/hello/_uploads/0001/data";
const LINK: &str =
    "/docker/registry/v2/repositories/library/hello/_manifests/tags/latest/current/link";

fn params(value: serde_json::Value) -> Result<Parameters, serde_json::Error> {
    serde_json::from_value(value)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().display().to_string();
    println!("root directory: {root}");

    // Created by name from parameters, as a registry's configuration does; the values may be
    // strings, numbers or booleans.
    let driver = FilesystemFactory
        .create(&params(
            json!({ "rootdirectory": root, "maxthreads": "50", "fsync": true }),
        )?)
        .await?;

    driver
        .put_content(LINK, Bytes::from_static(b"sha256:abcdef"))
        .await?;
    driver
        .put_content(BLOB, Bytes::from_static(b"layer bytes"))
        .await?;
    println!("put {LINK} and {BLOB}");

    // An upload in two sessions: the first writes and closes without committing ...
    let mut writer = driver.writer(UPLOAD, false).await?;
    writer.write(Bytes::from_static(b"first half, ")).await?;
    writer.close().await?;
    println!(
        "upload: wrote {} bytes, closed without committing",
        writer.size()
    );

    // ... a new driver instance over the same root resumes it and commits.
    let again = FilesystemDriver::with_root(dir.path())?;
    let mut writer = again.writer(UPLOAD, true).await?;
    println!(
        "upload: resumed at {} bytes from a new driver instance",
        writer.size()
    );
    writer.write(Bytes::from_static(b"second half")).await?;
    writer.commit().await?;
    let content = again.get_content(UPLOAD).await?;
    println!("upload: committed {:?}", String::from_utf8_lossy(&content));

    println!(
        "list /docker/registry/v2: {:?}",
        driver.list("/docker/registry/v2").await?
    );

    println!("walk /docker:");
    driver
        .walk("/docker", &WalkOptions::default(), &mut |info| {
            let kind = if info.is_dir { "dir " } else { "file" };
            println!("  {kind} {:>4} {}", info.size, info.path);
            WalkControl::Continue
        })
        .await?;

    let info = driver.stat(BLOB).await?;
    println!(
        "stat {BLOB}: {} bytes, is_dir={}, modified {:?}",
        info.size, info.is_dir, info.mod_time
    );

    driver.delete("/docker/registry/v2/repositories").await?;
    println!(
        "deleted /docker/registry/v2/repositories; list now: {:?}",
        driver.list("/docker/registry/v2").await?
    );

    println!("\nwhat errors look like:");
    let below_a_file = dir.path().join(&BLOB[1..]).join("below");
    let shown = [
        (
            "invalid path",
            driver.get_content("/docker/../etc/passwd").await.err(),
        ),
        (
            "missing path",
            driver
                .get_content("/docker/registry/v2/nothing")
                .await
                .err(),
        ),
        (
            "unknown parameter",
            FilesystemFactory
                .create(&params(json!({ "rootdir": "/x" }))?)
                .await
                .err(),
        ),
        (
            "bad maxthreads",
            FilesystemFactory
                .create(&params(json!({ "maxthreads": 10 }))?)
                .await
                .err(),
        ),
        (
            "rootdirectory that cannot be created",
            FilesystemFactory
                .create(&params(json!({ "rootdirectory": below_a_file }))?)
                .await
                .err(),
        ),
    ];
    for (what, err) in shown {
        match err {
            Some(err) => println!("  {what}: {err}"),
            None => println!("  {what}: no error (unexpected)"),
        }
    }
    Ok(())
}
