//! The crash and race harnesses over a whole `run()`.

use std::sync::Arc;
use std::time::Duration;

use highwater_store::{Table, TableOptions};
use highwater_test_support::{Backend, RaceOutcome, crash_harness, race_harness};
use highwater_timestamp::{Error, TimestampLoader};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::batch;

fn loader(store: &Arc<dyn ObjectStore>) -> TimestampLoader {
    TimestampLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(store), Path::from("source"), "source")
        .target_store(Arc::clone(store), Path::from("target"))
        .key(&["id"])
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
}

/// Two source files, one already loaded by a first run, one new.
async fn setup(store: Arc<dyn ObjectStore>) {
    let put = |name: &str, rows: &[(i64, i64)]| {
        let bytes = highwater_test_support::data::parquet_bytes(&batch(rows, "v"), 2);
        let store = Arc::clone(&store);
        let path = Path::from(format!("source/{name}"));
        async move { object_store::ObjectStoreExt::put(&*store, &path, bytes.into()).await.unwrap() }
    };
    put("a.parquet", &[(1, 0), (2, 5)]).await;
    loader(&store).run().await.unwrap();
    put("b.parquet", &[(3, 5), (4, 6), (5, 7)]).await;
}

async fn observe(store: Arc<dyn ObjectStore>) -> (Option<String>, Vec<i64>) {
    let table = Table::open_with(store, Path::from("target"), TableOptions::default()).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    let batch = table.read_all().await.unwrap();
    let mut ids: Vec<i64> =
        arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(batch.column_by_name("id").unwrap())
            .values()
            .to_vec();
    ids.sort_unstable();
    (snapshot.watermark.map(|w| w.to_string()), ids)
}

#[tokio::test]
async fn crash_anywhere_in_a_run() {
    for backend in [Backend::Memory, Backend::Local] {
        let report = crash_harness(
            backend,
            setup,
            async |store| loader(&store).run().await.map(|_| ()).map_err(|e| e.to_string()),
            async |store| {
                let observed = observe(store).await;
                assert_eq!(observed.1, [1, 2, 3, 4, 5]);
                observed
            },
        )
        .await;
        assert!(report.trials > 20, "{report:?}");
    }
}

#[tokio::test]
async fn racing_runs() {
    for backend in Backend::all() {
        race_harness(
            backend,
            8,
            setup,
            async |store| match loader(&store).run().await {
                Ok(report) => Ok(report.commit_version.map_or(RaceOutcome::NothingToDo, RaceOutcome::Committed)),
                Err(Error::Store(highwater_store::Error::Conflict { .. })) => Ok(RaceOutcome::Conflict),
                Err(error) => Err(error.to_string()),
            },
            observe,
        )
        .await;
    }
}
