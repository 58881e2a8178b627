//! `walk`: the driver's walk on a blocking thread. Before protocol 1.3 one `WALK_ENTRY` per
//! entry and the client's `WALK_CONTROL` as the callback's answer (the two sides take turns);
//! from 1.3 the entries stream within the walk's window, and a skip or stop from the client
//! takes effect at the next entry the driver reports.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use storagedriver::{FileInfo, StorageDriver, WalkControl, WalkOptions, path as dpath};

use super::connection::Server;
use super::dispatch::join_error_message;
use crate::flow::Window;
use crate::frame::FrameType;
use crate::wire::{FileInfoWire, WalkSignal};

/// What the client said so far about a streamed walk.
#[derive(Debug, Default)]
struct Said {
    /// Directories whose remaining entries the client skips, outermost first: a stack, since
    /// a walk that has left a directory never comes back to it.
    skipped: Vec<String>,
    stopped: bool,
}

impl Said {
    /// Takes in every signal waiting; a closed channel (the walk was reset) is a stop.
    fn update(&mut self, signals: &Receiver<WalkSignal>) {
        loop {
            match signals.try_recv() {
                Ok(WalkSignal::Skip(dir)) => self.skipped.push(dir),
                Ok(WalkSignal::Stop | WalkSignal::Turn(_)) | Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// The answer for an entry the walk reached, before it is sent: stop, or skip it (and so
    /// what is below it, or the rest of its directory) when it lies in a skipped directory.
    /// A skipped directory that does not hold the entry is one the walk has left (its entries
    /// come together, right after it): it is forgotten.
    fn answer(&mut self, path: &str) -> Option<WalkControl> {
        if self.stopped {
            return Some(WalkControl::Stop);
        }
        while let Some(dir) = self.skipped.last() {
            if dpath::is_within(dir, path) {
                return Some(WalkControl::SkipDir);
            }
            self.skipped.pop();
        }
        None
    }
}

/// Waits for `n` bytes of the walk's window; false when the window closed (a reset). Called
/// from the driver's walk callback, inside the blocking thread's `block_on`: it parks the
/// thread without entering the runtime again.
fn take_window(window: &Window, n: usize) -> bool {
    let mut got = 0;
    while got < n {
        match futures::executor::block_on(window.acquire(n - got)) {
            Some(more) => got += more,
            None => return false,
        }
    }
    true
}

impl Server {
    pub(super) async fn walk(
        &self,
        id: u64,
        path: String,
        start_after: Option<String>,
        signals: Receiver<WalkSignal>,
    ) {
        let driver = Arc::clone(&self.driver);
        let out = Arc::clone(&self.out);
        let handle = tokio::runtime::Handle::current();
        let walk_path = path.clone();
        let minor = self.minor();
        let window = self.lock().outgoing.get(&id).cloned();
        // The callback is synchronous and may wait (for the client's answer, or for window):
        // run the walk on a blocking thread, where waiting is allowed.
        let result = tokio::task::spawn_blocking(move || {
            let mut options = WalkOptions::default();
            if let Some(after) = start_after {
                options = options.start_after(after);
            }
            // An entry the protocol cannot carry (a size beyond 2^53 - 1) ends the walk.
            let mut unfit: Option<String> = None;
            let unfit_slot = &mut unfit;
            let mut said = Said::default();
            let mut callback = move |info: &FileInfo| -> WalkControl {
                if window.is_some() {
                    said.update(&signals);
                    if let Some(answer) = said.answer(&info.path) {
                        return answer;
                    }
                }
                let entry = match FileInfoWire::new(info, minor) {
                    Ok(entry) => entry,
                    Err(m) => {
                        *unfit_slot = Some(format!("{}: {m}", info.path));
                        return WalkControl::Stop;
                    }
                };
                let payload = serde_json::to_vec(&entry).unwrap_or_default();
                if let Some(window) = &window
                    && !take_window(window, payload.len())
                {
                    return WalkControl::Stop;
                }
                if out.send(FrameType::WalkEntry, id, payload.into()).is_err() {
                    return WalkControl::Stop;
                }
                if window.is_some() {
                    return WalkControl::Continue;
                }
                // A dropped sender (the client reset the walk or went away) stops it.
                match signals.recv() {
                    Ok(WalkSignal::Turn(control)) => control,
                    Ok(_) | Err(_) => WalkControl::Stop,
                }
            };
            let result = handle.block_on(driver.walk(&walk_path, &options, &mut callback));
            (result, unfit)
        })
        .await;
        {
            let mut streams = self.lock();
            streams.walks.remove(&id);
            if let Some(window) = streams.outgoing.remove(&id) {
                window.close();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_covers_what_is_below_the_directory_and_a_closed_channel_stops() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut said = Said::default();
        said.update(&rx);
        assert_eq!(said.answer("/a/b"), None);
        assert!(tx.send(WalkSignal::Skip("/a".into())).is_ok());
        said.update(&rx);
        assert_eq!(said.answer("/a/b/c"), Some(WalkControl::SkipDir));
        assert_eq!(said.answer("/a-b"), None);
        assert!(
            said.skipped.is_empty(),
            "the walk left /a: {:?}",
            said.skipped
        );
        // Nested skips, and a skip that arrives after the walk left its directory.
        for dir in ["/b", "/b/c", "/a"] {
            assert!(tx.send(WalkSignal::Skip(dir.into())).is_ok());
        }
        said.update(&rx);
        assert_eq!(said.answer("/b/c/d"), Some(WalkControl::SkipDir));
        assert_eq!(said.answer("/b/e"), Some(WalkControl::SkipDir));
        assert_eq!(said.skipped, ["/b"]);
        assert_eq!(said.answer("/c"), None);
        drop(tx);
        said.update(&rx);
        assert_eq!(said.answer("/z"), Some(WalkControl::Stop));
    }
}
