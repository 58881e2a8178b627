//! The macros that generate one test per behaviour in a driver crate.

/// Generates, in the calling crate's test target, one `#[test]` per behaviour of the
/// contract, each running on a fresh [`Fixture`](crate::Fixture) from the given closure.
///
/// The argument is a closure returning a future of a [`Fixture`](crate::Fixture); it is called
/// once per test (and once per random sequence by the model test), so every test gets its own
/// store and tests run in parallel. Tests are named after the behaviours
/// (`list_missing_directory`, `append_resume_small_chunks`, ...), so
/// `cargo test -p my-driver list_missing_directory` runs one. Everything the expansion needs is
/// reached through this crate: `testsuites` is the only dev-dependency a driver crate adds.
///
/// ```ignore
/// // tests/conformance.rs of a driver crate
/// use std::sync::Arc;
/// use testsuites::Fixture;
///
/// testsuites::register_in_process_suite!(|| async {
///     Fixture::new(Arc::new(my_driver::MyDriver::new()))
/// });
/// ```
#[macro_export]
macro_rules! register_in_process_suite {
    ($make:expr $(,)?) => {
        $crate::__for_each_case!(__in_process_tests!($make));
    };
}

/// Generates one `#[test]` per behaviour of the contract, like
/// [`register_in_process_suite!`], run against a driver executable through the IPC client: each
/// test creates the driver by name through a factory registry whose search path holds the
/// executable, so the factory's fallback starts it as a child process.
///
/// `parameters` is a closure that gets a fresh temporary directory and returns the driver's
/// parameters as a JSON value (use `testsuites::serde_json::json!`).
///
/// ```ignore
/// // tests/ipc_conformance.rs of a driver crate with a `registry-storage-mydriver` binary
/// testsuites::register_ipc_suite!(
///     driver = "mydriver",
///     executable = env!("CARGO_BIN_EXE_registry-storage-mydriver"),
///     parameters = |root| testsuites::serde_json::json!({ "rootdirectory": root }),
/// );
/// ```
#[macro_export]
macro_rules! register_ipc_suite {
    (driver = $name:expr, executable = $exe:expr, parameters = $params:expr $(,)?) => {
        $crate::__for_each_case!(__ipc_tests!($name, $exe, $params));
    };
}

/// Expands to one `#[test]` per case name, running it over IPC.
#[doc(hidden)]
#[macro_export]
macro_rules! __ipc_tests {
    (($name:expr, $exe:expr, $params:expr) $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                $crate::run_case(
                    ::core::stringify!($case),
                    $crate::cases::$case,
                    $crate::ipc::ipc_fixture($name, $exe, $params),
                );
            }
        )*
    };
}

/// Calls `$crate::$callback!{ (args) case, case, ... }` with every case name: the one list of
/// the suite's tests.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            valid_paths,
            invalid_paths,
            invalid_paths_every_operation,
            put_get_one_byte,
            put_get_utf8,
            put_get_random_32,
            put_get_1mib,
            put_get_non_utf8,
            put_get_empty,
            truncate,
            put_twice,
            get_missing,
            get_directory,
            put_file_dir_conflict,
            writer_round_trip_one_byte,
            writer_round_trip_utf8,
            writer_round_trip_random_32,
            writer_round_trip_1mib,
            writer_round_trip_non_utf8,
            large_stream_sha256,
            reader_offsets,
            reader_missing_path,
            append_resume_small_chunks,
            append_resume_large_chunks,
            append_resume_from_new_instance,
            zero_byte_writer_then_append,
            zero_byte_put_then_append,
            append_missing_path,
            append_to_committed,
            writer_cancel,
            writer_commit_visibility,
            writer_use_after_finish,
            writer_dropped,
            list_sorted,
            list_root,
            list_empty_root,
            list_missing_directory,
            list_file,
            list_nested,
            rename_file,
            rename_overwrite,
            rename_missing_source,
            rename_under_file,
            delete_file,
            delete_missing,
            delete_directory,
            delete_only_subpaths,
            delete_root,
            stat_file,
            stat_directory,
            stat_missing,
            stat_root,
            stat_mod_time_after_rewrite,
            url_for_get_and_head,
            walk_order,
            walk_skip_dir,
            walk_stop,
            walk_start_after,
            walk_missing,
            walk_concurrent_delete,
            concurrent_readers,
            concurrent_writers,
            concurrent_put_same_path,
            model_random_operations,
        }
    };
}

/// Expands to one `#[test]` per case name, running it in process.
#[doc(hidden)]
#[macro_export]
macro_rules! __in_process_tests {
    (($make:expr) $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::run_case(
                    ::core::stringify!($name),
                    $crate::cases::$name,
                    $crate::make_fixture($make),
                );
            }
        )*
    };
}

/// Expands to the table of every case, by name.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_table {
    (() $($name:ident,)*) => {
        &[$((::core::stringify!($name), $crate::cases::$name as $crate::cases::CaseFn),)*]
    };
}
