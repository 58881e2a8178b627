//! The suite through [`ScopedDriver`]: every case on a scope of an in-memory store that holds
//! other data beside the scope, which no case sees or touches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use testsuites::scoped::{ScopedDriver, remove_tree};
use testsuites::storagedriver::StorageDriver;
use testsuites::{CASES, Fixture, make_fixture, run_case};

/// A path beside the scopes, which must survive every case.
const SIBLING: &str = "/scratch-sibling/data";

#[test]
fn every_case_passes_in_a_scope_beside_other_data() {
    for &(name, case) in CASES {
        if name == "valid_paths" {
            // Its 1,024-byte path does not fit below a prefix: see the next test.
            continue;
        }
        let store: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
        let inner = store.clone();
        let made = Arc::new(AtomicU64::new(0));
        run_case(
            name,
            case,
            make_fixture(move || {
                let inner = inner.clone();
                // The model test makes a fixture per sequence: each gets its own scope.
                let prefix = format!("/scratch/case-{}", made.fetch_add(1, Ordering::Relaxed));
                async move {
                    inner
                        .put_content(SIBLING, Bytes::from_static(b"keep"))
                        .await
                        .expect("the sibling");
                    let scoped = ScopedDriver::new(inner, prefix).expect("a valid prefix");
                    Fixture::new(Arc::new(scoped))
                }
            }),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            assert_eq!(
                store
                    .get_content(SIBLING)
                    .await
                    .expect("the sibling survives"),
                Bytes::from_static(b"keep"),
                "{name}"
            );
            if store.list("/").await.expect("list").len() > 1 {
                remove_tree(store.as_ref(), "/scratch")
                    .await
                    .expect("cleanup");
            }
            assert_eq!(
                store.list("/").await.expect("list"),
                ["/scratch-sibling"],
                "{name}"
            );
        });
    }
}

#[test]
fn paths_too_long_for_the_scope_are_refused_and_counted() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let inner: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
        let scoped = ScopedDriver::new(inner, "/scope").expect("a valid prefix");
        let longest = format!("/{}", "d".repeat(200)).repeat(5) + &format!("/{}", "e".repeat(18));
        assert_eq!(longest.len(), 1024);
        let err = scoped
            .put_content(&longest, Bytes::new())
            .await
            .expect_err("too long with the prefix");
        assert!(
            err.to_string()
                .contains("only paths of up to 1018 bytes fit"),
            "{err}"
        );
        assert_eq!(scoped.refusals(), 1);
        assert!(ScopedDriver::new(scoped.inner().clone(), "/").is_err());
    });
}
