//! `registry-storage-filesystem`: the filesystem driver as an executable speaking the storage
//! driver IPC protocol (see `storagedriver-ipc/PROTOCOL.md`). Its first argument is a JSON
//! object of the driver's parameters (`rootdirectory`, `maxthreads`, `fsync`).

fn main() -> std::process::ExitCode {
    storagedriver_ipc::run_driver_executable(&driver_filesystem::FilesystemFactory)
}
