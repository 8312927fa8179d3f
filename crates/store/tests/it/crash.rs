//! The crash harness over a commit of 3 data files + 1 state file.

use std::sync::Arc;

use futures::TryStreamExt;
use highwater_store::{STAGED_SUFFIX, Table};
use highwater_test_support::{Backend, Fault, FaultStore, OpKind, crash_harness};
use object_store::ObjectStore;

use crate::common::{Observed, load_batch, observe, options, root, table, visible_files};

async fn crash_at_every_operation(backend: Backend) {
    let report = crash_harness(
        backend,
        async |_store| {},
        async |store| load_batch(store).await.map(|_| ()).map_err(|e| e.to_string()),
        async |store| observe(store).await,
    )
    .await;
    assert!(report.operations > 10, "{report:?}");
    assert_eq!(report.trials, report.operations * 2);
}

#[tokio::test]
async fn crash_anywhere_in_memory() {
    crash_at_every_operation(Backend::Memory).await;
}

#[tokio::test]
async fn crash_anywhere_on_local_disk() {
    crash_at_every_operation(Backend::Local).await;
}

/// The outcome of an uninterrupted run of `load_batch` on a fresh table.
async fn uninterrupted(backend: Backend) -> Observed {
    let fixture = backend.fresh();
    table(&fixture.store).await;
    load_batch(Arc::clone(&fixture.store)).await.unwrap();
    observe(Arc::clone(&fixture.store)).await
}

/// Where a crash leaves the table after a restart.
#[derive(Debug, PartialEq, Eq)]
enum AfterRestart {
    /// At version 0, nothing of the run visible.
    OldVersion,
    /// At version 1, every file published: reads equal the uninterrupted run.
    RolledForward,
}

/// Crashes `load_batch` at `fault` on a table at version 0, then reopens the store without
/// faults (a new process) and says where the table is. Either outcome is checked in full; a
/// rerun then ends where the uninterrupted run does.
async fn crash_then_reopen(backend: Backend, fault: Fault, expected: &Observed) -> AfterRestart {
    let fixture = backend.fresh();
    table(&fixture.store).await;
    let faulty = FaultStore::new(Arc::clone(&fixture.store)).with_fault(fault.clone());
    let outcome = load_batch(faulty.clone().into_dyn()).await;
    assert!(faulty.crashed(), "{fault:?} never fired: {outcome:?}");
    assert!(outcome.is_err(), "{fault:?}: the crashed run reported success");
    let store = Arc::clone(&fixture.store);
    let reopened = Table::open_with(Arc::clone(&store), root(), options()).await.unwrap();
    let snapshot = reopened.snapshot().await.unwrap();
    let after = match snapshot.version {
        0 => {
            assert_eq!(snapshot.watermark, None, "{fault:?}");
            assert!(snapshot.files.is_empty(), "{fault:?}");
            assert!(visible_files(&store).await.is_empty(), "{fault:?}: uncommitted data is visible");
            AfterRestart::OldVersion
        }
        1 => {
            assert_eq!(&observe(Arc::clone(&store)).await, expected, "{fault:?}: a partial roll-forward");
            // The roll-forward left nothing staged behind.
            let staging = root().join("_highwater").join("staging");
            let staged: Vec<_> = store.list(Some(&staging)).try_collect().await.unwrap();
            assert!(staged.is_empty(), "{fault:?}: {staged:?}");
            AfterRestart::RolledForward
        }
        other => panic!("{fault:?}: version {other} after one run"),
    };
    // Exactly once: the next run loads what the crashed one did not, or nothing.
    load_batch(Arc::clone(&store)).await.unwrap();
    assert_eq!(&observe(Arc::clone(&store)).await, expected, "{fault:?}: the rerun");
    assert_eq!(
        Table::open_with(Arc::clone(&store), root(), options()).await.unwrap().snapshot().await.unwrap().version,
        1
    );
    after
}

/// The put-if-absent of the commit itself (log entry of version 1).
fn at_the_log_put(after: bool) -> Fault {
    Fault::CrashMatching {
        kind: Some(OpKind::Put),
        path_contains: "_highwater/log/00000000000000000001.json".into(),
        skip: 0,
        after,
    }
}

#[tokio::test]
async fn crash_exactly_at_the_log_put() {
    for backend in [Backend::Memory, Backend::Local] {
        let expected = uninterrupted(backend).await;
        // Before the put lands: no commit, the table stays at version 0.
        assert_eq!(crash_then_reopen(backend, at_the_log_put(false), &expected).await, AfterRestart::OldVersion);
        // The put lands, its reply is lost: the commit exists and the reopen publishes it.
        assert_eq!(crash_then_reopen(backend, at_the_log_put(true), &expected).await, AfterRestart::RolledForward);
    }
}

#[tokio::test]
async fn crash_exactly_at_publish() {
    for backend in [Backend::Memory, Backend::Local] {
        let expected = uninterrupted(backend).await;
        // The rename (copy + delete on object stores) of each of the 3 staged data files, before
        // and after it lands: the commit exists, so the reopen finishes the publish.
        for skip in 0..3 {
            for after in [false, true] {
                let fault = Fault::CrashMatching {
                    kind: Some(OpKind::Rename),
                    path_contains: format!(".parquet{STAGED_SUFFIX} -> "),
                    skip,
                    after,
                };
                assert_eq!(crash_then_reopen(backend, fault, &expected).await, AfterRestart::RolledForward);
            }
        }
    }
}
