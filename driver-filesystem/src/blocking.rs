//! Runs blocking filesystem calls off the async runtime's scheduling path, at most
//! `maxthreads` at a time.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use storagedriver::{Result, Retry};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::backend;

/// The gate every blocking filesystem call goes through: a semaphore of `maxthreads`
/// permits, then a thread that may block.
///
/// Where the call runs depends on the runtime it is awaited in:
///
/// - A multi-thread tokio runtime: [`tokio::task::block_in_place`], on the calling thread,
///   while the runtime moves its other tasks to another worker. A filesystem call is short
///   (a few microseconds for a small file in the page cache), and handing it to another
///   thread and back costs several times that on a small machine. Measured on the
///   development VM (2 cores) on tmpfs, a loop of 1 KiB `put_content`s took 7-10 µs per put
///   this way, the same as the raw syscalls (6-9 µs), against 34-42 µs through
///   `spawn_blocking`. The price: futures joined inside one task (`join!`, `join_all`) run
///   their filesystem calls one after the other; spawn tasks for parallel I/O.
/// - A current-thread runtime (where `block_in_place` is not allowed):
///   [`tokio::task::spawn_blocking`]. The permit moves into the blocking task, so it is held
///   as long as the thread works, even when the awaiting future is dropped.
/// - No tokio runtime (another executor): inline, on the calling thread.
///
/// A panic in the call becomes a [`storagedriver::Error::Backend`], never a panic of the
/// caller.
#[derive(Debug, Clone)]
pub(crate) struct Blocking {
    permits: Arc<Semaphore>,
}

/// The error a panicking call becomes.
const PANICKED: &str = "the blocking filesystem call panicked";

impl Blocking {
    /// A gate letting `max_threads` calls run at once.
    pub(crate) fn new(max_threads: usize) -> Self {
        Blocking {
            permits: Arc::new(Semaphore::new(max_threads)),
        }
    }

    /// Runs `f` where it may block once a permit is free; `operation` and `path` name the
    /// call in the error returned if it cannot run or panics.
    pub(crate) async fn run<T, F>(&self, operation: &'static str, path: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let permit = match Arc::clone(&self.permits).acquire_owned().await {
            Ok(permit) => permit,
            Err(closed) => return Err(backend(operation, Some(path), Retry::Useless, closed)),
        };
        let panicked = || panicked(operation, path);
        let flavor = Handle::try_current().map(|handle| handle.runtime_flavor());
        match flavor {
            Ok(RuntimeFlavor::MultiThread) => {
                let mut slot = Some(f);
                // `block_in_place` itself panics where the runtime forbids blocking (a
                // current-thread runtime's context with a multi-thread handle entered); the
                // call then goes to `spawn_blocking` below, still unrun.
                let ran = catch_unwind(AssertUnwindSafe(|| {
                    tokio::task::block_in_place(|| {
                        slot.take().map(|f| catch_unwind(AssertUnwindSafe(f)))
                    })
                }));
                match (ran, slot) {
                    (Ok(Some(result)), _) => {
                        drop(permit);
                        result.unwrap_or_else(|_| panicked())
                    }
                    (_, Some(f)) => spawn_blocking(operation, path, permit, f).await,
                    (_, None) => {
                        drop(permit);
                        panicked()
                    }
                }
            }
            Ok(_) => spawn_blocking(operation, path, permit, f).await,
            // No tokio runtime.
            Err(_) => {
                let result = catch_unwind(AssertUnwindSafe(f));
                drop(permit);
                result.unwrap_or_else(|_| panicked())
            }
        }
    }
}

/// The error of a call that panicked.
fn panicked<T>(operation: &'static str, path: &str) -> Result<T> {
    tracing::error!(operation, path, "{PANICKED}");
    Err(backend(operation, Some(path), Retry::Useless, PANICKED))
}

/// Runs `f` through [`tokio::task::spawn_blocking`], holding `permit` until it ends.
async fn spawn_blocking<T, F>(
    operation: &'static str,
    path: &str,
    permit: OwnedSemaphorePermit,
    f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    });
    match task.await {
        Ok(result) => result,
        Err(join) if join.is_panic() => panicked(operation, path),
        Err(join) => Err(backend(operation, Some(path), Retry::MayHelp, join)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn panic_then_ok(gate: &Blocking) {
        let res: Result<()> = gate
            .run("get_content", "/a", || panic!("boom in a test"))
            .await;
        let err = res.expect_err("a panic must be an error");
        assert!(matches!(err, storagedriver::Error::Backend { .. }), "{err}");
        // The permit came back.
        assert_eq!(gate.run("stat", "/a", || Ok(7)).await.ok(), Some(7));
        assert_eq!(gate.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_on_a_current_thread_runtime() {
        panic_then_ok(&Blocking::new(1)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_an_error_on_a_multi_thread_runtime() {
        panic_then_ok(&Blocking::new(1)).await;
        // Inside a spawned task too.
        let task = tokio::spawn(async { panic_then_ok(&Blocking::new(1)).await });
        assert!(task.await.is_ok());
    }

    #[test]
    fn where_blocking_is_forbidden_calls_go_to_spawn_blocking() -> std::io::Result<()> {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()?;
        let current = tokio::runtime::Builder::new_current_thread().build()?;
        let gate = Blocking::new(1);
        let got = current.block_on(async {
            let _entered = multi.handle().enter();
            gate.run("stat", "/a", || Ok(std::thread::current().id()))
                .await
        });
        assert!(matches!(got, Ok(id) if id != std::thread::current().id()));
        assert_eq!(gate.permits.available_permits(), 1);
        Ok(())
    }

    #[test]
    fn without_a_runtime_calls_run_inline() {
        futures::executor::block_on(panic_then_ok(&Blocking::new(1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permits_bound_concurrency_multi_thread() {
        permits_bound_concurrency().await;
    }

    #[tokio::test]
    async fn permits_bound_concurrency_current_thread() {
        permits_bound_concurrency().await;
    }

    async fn permits_bound_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Blocking::new(3);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let gate = gate.clone();
            let running = Arc::clone(&running);
            let peak = Arc::clone(&peak);
            tasks.push(tokio::spawn(async move {
                gate.run("stat", "/a", move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }));
        }
        for t in tasks {
            assert!(matches!(t.await, Ok(Ok(()))));
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }
}
