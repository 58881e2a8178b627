//! `walk`: the driver's walk on a blocking thread, one `WALK_ENTRY` per entry and the client's
//! `WALK_CONTROL` as the callback's answer.

use std::sync::Arc;

use storagedriver::{FileInfo, StorageDriver, WalkControl, WalkOptions};

use super::connection::Server;
use super::dispatch::join_error_message;
use crate::frame::FrameType;
use crate::wire::FileInfoWire;

impl Server {
    pub(super) async fn walk(
        &self,
        id: u64,
        path: String,
        start_after: Option<String>,
        control: std::sync::mpsc::Receiver<WalkControl>,
    ) {
        let driver = Arc::clone(&self.driver);
        let out = Arc::clone(&self.out);
        let handle = tokio::runtime::Handle::current();
        let walk_path = path.clone();
        let minor = self.minor();
        // The callback is synchronous and must wait for the client's answer: run the walk on a
        // blocking thread, where waiting is allowed.
        let result = tokio::task::spawn_blocking(move || {
            let mut options = WalkOptions::default();
            if let Some(after) = start_after {
                options = options.start_after(after);
            }
            // An entry the protocol cannot carry (a size beyond 2^53 - 1) ends the walk.
            let mut unfit: Option<String> = None;
            let unfit_slot = &mut unfit;
            let mut callback = move |info: &FileInfo| -> WalkControl {
                let entry = match FileInfoWire::new(info, minor) {
                    Ok(entry) => entry,
                    Err(m) => {
                        *unfit_slot = Some(format!("{}: {m}", info.path));
                        return WalkControl::Stop;
                    }
                };
                let payload = serde_json::to_vec(&entry).unwrap_or_default();
                if out.send(FrameType::WalkEntry, id, payload.into()).is_err() {
                    return WalkControl::Stop;
                }
                // A dropped sender (the client reset the walk or went away) stops it.
                control.recv().unwrap_or(WalkControl::Stop)
            };
            let result = handle.block_on(driver.walk(&walk_path, &options, &mut callback));
            (result, unfit)
        })
        .await;
        self.lock().walks.remove(&id);
        let result = match result {
            Ok((r, None)) => r,
            Ok((_, Some(message))) => Err(self.backend("walk", Some(&path), message)),
            Err(e) => Err(self.backend(
                "walk",
                Some(&path),
                format!("the driver's walk failed: {}", join_error_message(e)),
            )),
        };
        self.respond(id, "walk", Some(&path), result);
    }
}
