//! The crash and race harnesses over a whole `run()`.

use std::sync::Arc;
use std::time::Duration;

use highwater_sequence::{Error, SequenceLoader};
use highwater_store::{Table, TableOptions};
use highwater_test_support::{Backend, RaceOutcome, crash_harness, race_harness};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::batch;

fn loader(store: &Arc<dyn ObjectStore>) -> SequenceLoader {
    SequenceLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(store), Path::from("source"), "source")
        .target_store(Arc::clone(store), Path::from("target"))
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
}

async fn put(store: &Arc<dyn ObjectStore>, name: &str, sequence: &[i64]) {
    let bytes = highwater_test_support::data::parquet_bytes(&batch(sequence, "v"), 2);
    object_store::ObjectStoreExt::put(&**store, &Path::from(format!("source/{name}")), bytes.into()).await.unwrap();
}

async fn setup(store: Arc<dyn ObjectStore>) {
    put(&store, "a.parquet", &[1, 2, 3]).await;
    loader(&store).run().await.unwrap();
    put(&store, "b.parquet", &[4, 6, 5, 7]).await;
}

async fn observe(store: Arc<dyn ObjectStore>) -> (Option<String>, Vec<i64>) {
    let table = Table::open_with(store, Path::from("target"), TableOptions::default()).await.unwrap();
    let watermark = table.snapshot().await.unwrap().watermark.map(|w| w.to_string());
    let batch = table.read_all().await.unwrap();
    let mut ids: Vec<i64> = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
        batch.column_by_name("sequence_id").unwrap(),
    )
    .values()
    .to_vec();
    ids.sort_unstable();
    (watermark, ids)
}

#[tokio::test]
async fn crash_anywhere_in_a_run() {
    for backend in [Backend::Memory, Backend::Local] {
        crash_harness(
            backend,
            setup,
            async |store| loader(&store).run().await.map(|_| ()).map_err(|e| e.to_string()),
            async |store| {
                let observed = observe(store).await;
                assert_eq!(observed.1, [1, 2, 3, 4, 5, 6, 7]);
                observed
            },
        )
        .await;
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
