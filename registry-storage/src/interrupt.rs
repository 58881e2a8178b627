//! Ctrl-C: the first one asks the running command to stop (a `put` cancels its writer), a
//! second one ends the process at once.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::exit::{Class, CliError};

/// Whether Ctrl-C was pressed; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Interrupt {
    pressed: watch::Receiver<bool>,
}

impl Interrupt {
    /// Installs the handler of SIGINT (on the current runtime). From now on a Ctrl-C no longer
    /// kills the process but is reported here.
    pub(crate) fn install() -> std::io::Result<Self> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let (tx, pressed) = watch::channel(false);
        tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                let _ = tx.send(true);
            }
            // The sender stays alive until here, so `wait` never sees it dropped.
            if sigint.recv().await.is_some() {
                crate::output::note("interrupted again: exiting without cleaning up");
                std::process::exit(i32::from(Class::Interrupted.code()));
            }
        });
        Ok(Interrupt { pressed })
    }

    /// Returns once Ctrl-C has been pressed.
    pub(crate) async fn wait(&self) {
        let mut pressed = self.pressed.clone();
        if pressed.wait_for(|p| *p).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs `work` until it ends or Ctrl-C is pressed; `work` is dropped on Ctrl-C, so it
    /// must hold nothing that needs cleaning up (a `put` watches [`Interrupt::wait`] itself).
    pub(crate) async fn guard<T>(
        &self,
        work: impl Future<Output = Result<T, CliError>>,
    ) -> Result<T, CliError> {
        tokio::select! {
            biased;
            result = work => result,
            () = self.wait() => Err(CliError::interrupted()),
        }
    }
}
