//! `registry-storage-inmemory`: the in-memory driver as an executable speaking the storage
//! driver IPC protocol (see `storagedriver-ipc/PROTOCOL.md`). It takes no parameters.

fn main() -> std::process::ExitCode {
    storagedriver_ipc::run_driver_executable(&driver_inmemory::InMemoryFactory)
}
