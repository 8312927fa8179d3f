//! The crash harness over an incremental `run()`.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use highwater_diff::DiffLoader;
use highwater_store::{Table, TableOptions};
use highwater_test_support::{Backend, crash_harness};
use object_store::ObjectStore;
use object_store::path::Path;

fn loader(store: &Arc<dyn ObjectStore>) -> DiffLoader {
    DiffLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(store), Path::from("today"), "today")
        .target_store(Arc::clone(store), Path::from("changes"))
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
}

async fn put(store: &Arc<dyn ObjectStore>, ids: &[i64], tag: &str) {
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("v", Arc::new(StringArray::from(ids.iter().map(|i| format!("{tag}{i}")).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap();
    let bytes = highwater_test_support::data::parquet_bytes(&batch, 2);
    object_store::ObjectStoreExt::put(&**store, &Path::from("today/part-0.parquet"), bytes.into()).await.unwrap();
}

async fn setup(store: Arc<dyn ObjectStore>) {
    put(&store, &[1, 2, 3, 4], "a").await;
    loader(&store).run().await.unwrap();
    // 1 unchanged… no: every value gets the new tag for 2 and 3; 4 goes; 5 comes.
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3, 5])) as ArrayRef),
        ("v", Arc::new(StringArray::from(vec!["a1", "b2", "b3", "b5"])) as ArrayRef),
    ])
    .unwrap();
    let bytes = highwater_test_support::data::parquet_bytes(&batch, 2);
    object_store::ObjectStoreExt::put(&*store, &Path::from("today/part-0.parquet"), bytes.into()).await.unwrap();
}

async fn observe(store: Arc<dyn ObjectStore>) -> Vec<String> {
    let table = Table::open_with(store, Path::from("changes"), TableOptions::default()).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    let mut out: Vec<String> = Vec::new();
    for folder in ["inserts", "updates", "deletes"] {
        let files: Vec<String> =
            snapshot.files.keys().filter(|p| p.starts_with(&format!("{folder}/"))).cloned().collect();
        for batch in table.read_files(&files).await.unwrap() {
            for row in 0..batch.num_rows() {
                out.push(format!("{folder}: {}", highwater_core::key::describe_row(&batch, row, &["id"])));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn crash_anywhere_in_an_incremental_run() {
    for backend in [Backend::Memory, Backend::Local] {
        crash_harness(
            backend,
            setup,
            async |store| loader(&store).run().await.map(|_| ()).map_err(|e| e.to_string()),
            async |store| {
                let observed = observe(store).await;
                assert_eq!(observed, ["deletes: id=4", "inserts: id=5", "updates: id=2", "updates: id=3"]);
                observed
            },
        )
        .await;
    }
}
