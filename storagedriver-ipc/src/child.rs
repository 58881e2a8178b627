//! The driver server's process: started, watched, its stderr echoed and remembered, and on
//! shutdown given a grace period, then killed and reaped.

use std::collections::VecDeque;
use std::io::Write as _;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStderr, Command};
use tokio::sync::{mpsc, watch};

use crate::error::ChildReport;

/// Lines of stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// A kept stderr line is cut at this many bytes.
const STDERR_LINE_MAX: usize = 4096;

/// How the child is to end.
#[derive(Debug, Clone, Copy)]
enum Shutdown {
    /// Kill it now.
    Kill,
    /// Let it exit by itself within this time, then kill it.
    Grace(Duration),
}

/// A running (or finished) driver server process.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    program: String,
    pid: Option<u32>,
    status: watch::Receiver<Option<ExitStatus>>,
    stderr_done: watch::Receiver<bool>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    control: mpsc::UnboundedSender<Shutdown>,
}

impl ChildHandle {
    /// Starts `command` (stdin null, stdout inherited, stderr piped, killed when dropped) and
    /// the tasks that watch it. `program` names it in messages and stderr prefixes.
    pub(crate) fn start(mut command: Command, program: String) -> std::io::Result<ChildHandle> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let (done_tx, stderr_done) = watch::channel(false);
        match child.stderr.take() {
            Some(pipe) => {
                let prefix = format!("[{program} pid {}] ", pid.unwrap_or(0));
                tokio::spawn(echo_stderr(pipe, prefix, Arc::clone(&stderr), done_tx));
            }
            None => {
                let _ = done_tx.send(true);
            }
        }
        let (status_tx, status) = watch::channel(None);
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(supervise(child, status_tx, control_rx));
        Ok(ChildHandle {
            program,
            pid,
            status,
            stderr_done,
            stderr,
            control,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The exit status, once the process has exited (and been reaped).
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// Waits until the process has exited and been reaped.
    pub(crate) async fn exited(&self) {
        let mut rx = self.status.clone();
        // An error means the supervisor is gone (its runtime shut down): nothing to wait for.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Waits, at most `within`, for the process to exit and its stderr to end, so that a
    /// report carries the exit status and the last lines.
    pub(crate) async fn settle(&self, within: Duration) {
        let mut done = self.stderr_done.clone();
        let _ = tokio::time::timeout(within, async {
            self.exited().await;
            let _ = done.wait_for(|d| *d).await;
        })
        .await;
    }

    /// Kills the process now.
    pub(crate) fn kill(&self) {
        let _ = self.control.send(Shutdown::Kill);
    }

    /// Lets the process exit by itself within `grace`, then kills it.
    pub(crate) fn shutdown(&self, grace: Duration) {
        let _ = self.control.send(Shutdown::Grace(grace));
    }

    /// What is known about the process now.
    pub(crate) fn report(&self) -> ChildReport {
        let stderr = self
            .stderr
            .lock()
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default();
        ChildReport {
            program: self.program.clone(),
            pid: self.pid,
            status: self.status(),
            stderr,
        }
    }
}

/// Waits for the child, kills it when told (or when every handle is gone, after a grace
/// period), and reaps it.
async fn supervise(
    mut child: tokio::process::Child,
    status_tx: watch::Sender<Option<ExitStatus>>,
    mut control: mpsc::UnboundedReceiver<Shutdown>,
) {
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut listening = true;
    let status = loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status,
            cmd = control.recv(), if listening => {
                let grace = match cmd {
                    Some(Shutdown::Kill) => Duration::ZERO,
                    Some(Shutdown::Grace(d)) => d,
                    None => {
                        listening = false;
                        crate::client::SHUTDOWN_GRACE
                    }
                };
                let at = tokio::time::Instant::now() + grace;
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
            () = sleep => {
                if let Err(e) = child.start_kill() {
                    tracing::debug!(error = %e, "killing the driver server failed");
                }
                deadline = None;
            }
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(error = %e, "waiting for the driver server failed");
            let _ = child.start_kill();
            match child.wait().await {
                Ok(status) => status,
                Err(_) => return,
            }
        }
    };
    let _ = status_tx.send(Some(status));
}

/// Echoes the child's stderr line by line to ours with `prefix`, keeping the last lines.
async fn echo_stderr(
    pipe: ChildStderr,
    prefix: String,
    keep: Arc<Mutex<VecDeque<String>>>,
    done: watch::Sender<bool>,
) {
    let mut reader = BufReader::new(pipe);
    let mut line: Vec<u8> = Vec::new();
    let mut overflow = false;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (part, newline) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        let room = STDERR_LINE_MAX.saturating_sub(line.len());
        if part.len() > room {
            overflow = true;
        }
        line.extend_from_slice(&part[..part.len().min(room)]);
        let used = part.len() + usize::from(newline);
        reader.consume(used);
        if newline {
            emit(&prefix, &keep, &line, overflow);
            line.clear();
            overflow = false;
        }
    }
    if !line.is_empty() {
        emit(&prefix, &keep, &line, overflow);
    }
    let _ = done.send(true);
}

fn emit(prefix: &str, keep: &Mutex<VecDeque<String>>, line: &[u8], cut: bool) {
    let mut text = String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .to_owned();
    if cut {
        text.push_str(" [...]");
    }
    let _ = writeln!(std::io::stderr().lock(), "{prefix}{text}");
    if let Ok(mut lines) = keep.lock() {
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(text);
    }
}
