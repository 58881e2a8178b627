//! `registry-storage-s3`: the S3 driver as an executable speaking the storage driver IPC
//! protocol (see `storagedriver-ipc/PROTOCOL.md`). Its first argument is a JSON object of the
//! driver's parameters (`bucket`, `region`, `regionendpoint`, `accesskey`, ...).

fn main() -> std::process::ExitCode {
    storagedriver_ipc::run_driver_executable(&driver_s3::S3Factory)
}
