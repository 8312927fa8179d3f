//! The crash and race harnesses over a whole `run()`.

use std::sync::Arc;
use std::time::Duration;

use highwater_cdc::{CdcLoader, Error};
use highwater_store::{Table, TableOptions};
use highwater_test_support::{Backend, RaceOutcome, crash_harness, race_harness};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::{ev, events, rows_of};

fn loader(store: &Arc<dyn ObjectStore>) -> CdcLoader {
    CdcLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(store), Path::from("source"), "source")
        .target_store(Arc::clone(store), Path::from("target"))
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
}

async fn put(store: &Arc<dyn ObjectStore>, name: &str, rows: &[crate::Row<'_>]) {
    let bytes = highwater_test_support::data::parquet_bytes(&events(rows), 2);
    object_store::ObjectStoreExt::put(&**store, &Path::from(format!("source/{name}")), bytes.into()).await.unwrap();
}

async fn setup(store: Arc<dyn ObjectStore>) {
    put(&store, "a.parquet", &[ev(1, "INSERT", 1, "a"), ev(2, "INSERT", 2, "b"), ev(3, "INSERT", 3, "c")]).await;
    loader(&store).run().await.unwrap();
    put(
        &store,
        "b.parquet",
        &[ev(2, "UPDATE", 5, "b2"), ev(3, "DELETE", 6, ""), ev(4, "INSERT", 4, "d"), ev(1, "UPDATE", 7, "a2")],
    )
    .await;
}

async fn observe(store: Arc<dyn ObjectStore>) -> (Option<String>, Vec<(i64, Option<String>)>) {
    let table = Table::open_with(store, Path::from("target"), TableOptions::default()).await.unwrap();
    let watermark = table.snapshot().await.unwrap().watermark.map(|w| w.to_string());
    let rows = rows_of(&table.read_all().await.unwrap());
    (watermark, rows.into_iter().collect())
}

fn applied() -> Vec<(i64, Option<String>)> {
    [(1, "a2"), (2, "b2"), (4, "d")].into_iter().map(|(id, name)| (id, Some(name.to_owned()))).collect()
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
                assert_eq!(observed.1, applied());
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
            async |store| {
                let observed = observe(store).await;
                assert_eq!(observed.1, applied());
                observed
            },
        )
        .await;
    }
}
