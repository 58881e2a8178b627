//! `registry-storage-azure`: the Azure driver as an executable speaking the storage driver IPC
//! protocol (see `storagedriver-ipc/PROTOCOL.md`). Its first argument is a JSON object of the
//! driver's parameters (`accountname`, `accountkey`, `container`, `serviceurl`, ...).

fn main() -> std::process::ExitCode {
    storagedriver_ipc::run_driver_executable(&driver_azure::AzureFactory)
}
