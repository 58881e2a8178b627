//! Opening the selected driver more than once (`check` needs a fresh instance per case), in
//! process or, with `--ipc`, through its executable `registry-storage-<name>` on `PATH` over
//! the IPC protocol, even when a driver of that name is built in.

use std::sync::Arc;

use storagedriver::{Parameters, StorageDriver};
use storagedriver_factory::Registry;

use crate::exit::CliError;
use crate::select::{self, Selection};

/// Opens the selected driver, as often as needed.
#[derive(Debug, Clone)]
pub(crate) struct Opener {
    selection: Selection,
    ipc: bool,
}

impl Opener {
    /// Opens `selection`; over IPC (the executable, never the built-in driver) when `ipc`.
    pub(crate) fn new(selection: &Selection, ipc: bool) -> Self {
        Opener {
            selection: selection.clone(),
            ipc,
        }
    }

    /// The driver's name.
    pub(crate) fn name(&self) -> &str {
        &self.selection.driver
    }

    /// The selected parameters.
    pub(crate) fn parameters(&self) -> &Parameters {
        &self.selection.parameters
    }

    /// How the driver runs, for people: `in process`, or `over IPC (registry-storage-NAME)`
    /// with `--ipc` and for a driver that is not built in.
    pub(crate) fn mode(&self) -> String {
        let built_in = storagedriver_factory::default_registry()
            .names()
            .iter()
            .any(|name| name == self.name());
        if built_in && !self.ipc {
            "in process".to_owned()
        } else {
            format!(
                "over IPC ({})",
                storagedriver_factory::executable_name(self.name())
            )
        }
    }

    /// A new instance with the selected parameters.
    pub(crate) async fn open(&self) -> Result<Arc<dyn StorageDriver>, CliError> {
        self.open_with(&self.selection.parameters).await
    }

    /// A new instance with `parameters` instead of the selected ones.
    pub(crate) async fn open_with(
        &self,
        parameters: &Parameters,
    ) -> Result<Arc<dyn StorageDriver>, CliError> {
        if self.ipc {
            // No factories: every name falls back to its executable on PATH.
            return Ok(Registry::empty()
                .create(&self.selection.driver, parameters)
                .await?);
        }
        let selection = Selection {
            parameters: parameters.clone(),
            ..self.selection.clone()
        };
        select::open(&selection).await
    }
}
