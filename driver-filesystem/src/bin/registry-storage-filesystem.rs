//! `registry-storage-filesystem`: the filesystem driver as an executable speaking the storage
//! driver IPC protocol (see `storagedriver-ipc/PROTOCOL.md`). It reads the driver's parameters
//! (`rootdirectory`, `maxthreads`, `fsync`) as a JSON object from the environment variable
//! `REGISTRY_STORAGE_IPC_PARAMETERS`, where the registry puts them, or from its first argument.

fn main() -> std::process::ExitCode {
    storagedriver_ipc::run_driver_executable(&driver_filesystem::FilesystemFactory)
}
