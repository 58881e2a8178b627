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
/// executable, so the factory's fallback starts it as a child process. Beside them come the
/// tests `protocol_kit_<case>`, one per case of the protocol kit ([`crate::protocol`]), which
/// speaks frames to the executable directly.
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
///
/// A driver that needs a server adds `requires`, a closure returning `Ok(())` or why the
/// tests cannot run (`Err(reason)`); the tests are then skipped, or fail under
/// `STORAGEDRIVER_REQUIRE_SERVERS=1`:
///
/// ```ignore
/// testsuites::register_ipc_suite!(
///     driver = "s3",
///     executable = env!("CARGO_BIN_EXE_registry-storage-s3"),
///     parameters = |root| my_tests::s3_parameters(root),
///     requires = || my_tests::server_configured(),
/// );
/// ```
#[macro_export]
macro_rules! register_ipc_suite {
    (driver = $name:expr, executable = $exe:expr, parameters = $params:expr $(,)?) => {
        $crate::__for_each_case!(__ipc_tests!($name, $exe, $params, || {
            ::core::result::Result::Ok(())
        }));
        $crate::__for_each_protocol_case!(__protocol_tests!($name, $exe, $params, || {
            ::core::result::Result::<(), ::std::string::String>::Ok(())
        }));
    };
    (driver = $name:expr, executable = $exe:expr, parameters = $params:expr, requires = $requires:expr $(,)?) => {
        $crate::__for_each_case!(__ipc_tests!($name, $exe, $params, $requires));
        $crate::__for_each_protocol_case!(__protocol_tests!($name, $exe, $params, $requires));
    };
}

/// Expands to one `#[test]` per case name, running it over IPC.
#[doc(hidden)]
#[macro_export]
macro_rules! __ipc_tests {
    (($name:expr, $exe:expr, $params:expr, $requires:expr) $($kind:ident $case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                $crate::run_case(
                    ::core::stringify!($case),
                    $crate::cases::$case,
                    $crate::ipc::ipc_fixture_requiring($name, $exe, $params, $requires),
                );
            }
        )*
    };
}

/// Calls `$crate::$callback!{ (args) kind case, kind case, ... }` with every case: the one list
/// of the suite's tests. The kind says how [`crate::cases`] runs the behaviour: `driver` passes
/// `&dyn StorageDriver`, `shared` an `Arc<dyn StorageDriver>`, `custom` has a hand-written
/// adapter.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            driver valid_paths,
            driver invalid_paths,
            driver invalid_paths_every_operation,
            driver put_get_one_byte,
            driver put_get_utf8,
            driver put_get_random_32,
            driver put_get_1mib,
            driver put_get_non_utf8,
            driver put_get_empty,
            driver truncate,
            driver put_twice,
            driver get_missing,
            driver get_directory,
            driver put_file_dir_conflict,
            driver writer_round_trip_one_byte,
            driver writer_round_trip_utf8,
            driver writer_round_trip_random_32,
            driver writer_round_trip_1mib,
            driver writer_round_trip_non_utf8,
            driver large_stream_sha256,
            driver reader_offsets,
            driver reader_missing_path,
            driver append_resume_small_chunks,
            driver append_resume_large_chunks,
            custom append_resume_from_new_instance,
            driver zero_byte_writer_then_append,
            driver zero_byte_put_then_append,
            driver append_missing_path,
            driver append_to_committed,
            driver writer_cancel,
            driver writer_commit_visibility,
            driver writer_use_after_finish,
            driver writer_dropped,
            driver writer_takeover_commit_commit,
            driver writer_takeover_cancel_after_commit,
            driver writer_takeover_cancel_before_commit,
            driver writer_takeover_write_after_commit,
            driver writer_takeover_resume,
            driver writer_takeover_close_then_resume,
            driver list_sorted,
            driver list_root,
            driver list_empty_root,
            driver list_missing_directory,
            driver list_file,
            driver list_nested,
            driver rename_file,
            driver rename_overwrite,
            driver rename_missing_source,
            driver rename_under_file,
            driver rename_back_and_forth,
            driver delete_file,
            driver delete_missing,
            driver delete_directory,
            driver delete_only_subpaths,
            driver delete_root,
            driver stat_file,
            driver stat_directory,
            driver stat_missing,
            driver stat_root,
            driver stat_mod_time_after_rewrite,
            driver url_for_get_and_head,
            driver walk_order,
            driver walk_skip_dir,
            driver walk_stop,
            driver walk_start_after,
            driver walk_missing,
            driver walk_concurrent_delete,
            shared concurrent_readers,
            shared concurrent_writers,
            shared concurrent_put_same_path,
            shared concurrent_mixed_operations,
            custom model_random_operations,
        }
    };
}

/// Expands to one `#[test]` per case name, running it in process.
#[doc(hidden)]
#[macro_export]
macro_rules! __in_process_tests {
    (($make:expr) $($kind:ident $name:ident,)*) => {
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
    (() $($kind:ident $name:ident,)*) => {
        &[$((::core::stringify!($name), $crate::cases::$name as $crate::cases::CaseFn),)*]
    };
}

/// Expands to the adapter in [`crate::cases`] of every case whose kind is `driver` or `shared`.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_adapters {
    (() $($kind:ident $name:ident,)*) => {
        $($crate::__case_adapter!($kind $name);)*
    };
}

/// The adapter of one case, by kind.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_adapter {
    (driver $name:ident) => {
        #[doc = ::core::concat!("Runs [`behaviors::", ::core::stringify!($name), "`] on the fixture's driver.")]
        pub fn $name(ctx: &$crate::cases::Ctx) -> $crate::cases::CaseFuture<'_> {
            ::std::boxed::Box::pin($crate::behaviors::$name(ctx.fixture.driver()))
        }
    };
    (shared $name:ident) => {
        #[doc = ::core::concat!("Runs [`behaviors::", ::core::stringify!($name), "`] on the fixture's driver.")]
        pub fn $name(ctx: &$crate::cases::Ctx) -> $crate::cases::CaseFuture<'_> {
            ::std::boxed::Box::pin($crate::behaviors::$name(ctx.fixture.driver_arc()))
        }
    };
    (custom $name:ident) => {};
}

/// Calls `$crate::$callback!{ (args) test => case, ... }` with every case of the protocol
/// kit ([`crate::protocol`]), each with the name of its test (`protocol_kit_<case>`, so that
/// `cargo test protocol_kit` runs the kit).
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_protocol_case {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            protocol_kit_welcome_names_driver_version_and_capabilities => welcome_names_driver_version_and_capabilities,
            protocol_kit_other_major_version_is_fatal => other_major_version_is_fatal,
            protocol_kit_higher_minor_version_is_welcome => higher_minor_version_is_welcome,
            protocol_kit_request_before_hello_is_fatal => request_before_hello_is_fatal,
            protocol_kit_errors_echo_the_path_and_name_the_driver => errors_echo_the_path_and_name_the_driver,
            protocol_kit_unknown_op_and_missing_field_are_errors => unknown_op_and_missing_field_are_errors,
            protocol_kit_ping_with_any_id => ping_with_any_id,
            protocol_kit_numbers_at_their_limits => numbers_at_their_limits,
            protocol_kit_long_response_in_parts => long_response_in_parts,
            protocol_kit_many_requests_in_flight => many_requests_in_flight,
            protocol_kit_server_stream_stays_within_its_window => server_stream_stays_within_its_window,
            protocol_kit_get_content_carries_the_announced_size => get_content_carries_the_announced_size,
            protocol_kit_reset_before_the_response => reset_before_the_response,
            protocol_kit_reset_in_the_middle_of_a_stream => reset_in_the_middle_of_a_stream,
            protocol_kit_put_content_fails_early => put_content_fails_early,
            protocol_kit_client_stream_gets_credit => client_stream_gets_credit,
            protocol_kit_writer_close_then_resume => writer_close_then_resume,
            protocol_kit_finishing_an_unknown_handle_is_an_error => finishing_an_unknown_handle_is_an_error,
            protocol_kit_dropped_and_cancelled_writers => dropped_and_cancelled_writers,
            protocol_kit_interleaved_writers => interleaved_writers,
            protocol_kit_walk_entries_keep_turns_or_window => walk_entries_keep_turns_or_window,
            protocol_kit_unknown_frame_type_is_fatal => unknown_frame_type_is_fatal,
            protocol_kit_oversized_frame_is_fatal => oversized_frame_is_fatal,
            protocol_kit_undersized_frame_is_fatal => undersized_frame_is_fatal,
            protocol_kit_unparsable_request_is_fatal => unparsable_request_is_fatal,
            protocol_kit_server_frames_from_the_client_are_fatal => server_frames_from_the_client_are_fatal,
            protocol_kit_data_for_no_stream_is_fatal => data_for_no_stream_is_fatal,
            protocol_kit_data_beyond_the_window_is_fatal => data_beyond_the_window_is_fatal,
        }
    };
}

/// Expands to one `#[test]` per case of the protocol kit.
#[doc(hidden)]
#[macro_export]
macro_rules! __protocol_tests {
    (($name:expr, $exe:expr, $params:expr, $requires:expr) $($test:ident => $case:ident,)*) => {
        $(
            #[test]
            fn $test() {
                $crate::protocol::run_protocol_case(
                    ::core::stringify!($case),
                    |target| ::std::boxed::Box::pin($crate::protocol::$case(target)),
                    $name,
                    $exe,
                    &$params,
                    &$requires,
                );
            }
        )*
    };
}
