//! The crash harness over a commit of 3 data files + 1 state file.

use highwater_test_support::{Backend, crash_harness};

use crate::common::{load_batch, observe};

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
