//! Shared helpers: a small table, a repeatable "load" run, and an observer of what is visible.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use futures::TryStreamExt;
use highwater_core::report::Pattern;
use highwater_core::watermark::WatermarkValue;
use highwater_store::{Error, META_DIR, RunSpec, Table, TableOptions};
use highwater_test_support::RaceOutcome;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

pub fn schema() -> Schema {
    Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)])
}

/// Options for tests: no retry backoff (crash trials fail fast).
pub fn options() -> TableOptions {
    TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() }
}

pub fn root() -> Path {
    Path::from("warehouse/orders")
}

pub async fn table(store: &Arc<dyn ObjectStore>) -> Table {
    Table::open_or_create_with(Arc::clone(store), root(), &schema(), options()).await.unwrap()
}

/// One run of a loader whose source holds rows 1..=30: if the table has not loaded them, commit
/// them as 3 data files and 1 state file with watermark 30; else do nothing.
pub async fn load_batch(store: Arc<dyn ObjectStore>) -> Result<RaceOutcome, Error> {
    let table = Table::open_or_create_with(store, root(), &schema(), options()).await?;
    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await?;
    if run.base().watermark.is_some() {
        run.abort().await?;
        return Ok(RaceOutcome::NothingToDo);
    }
    for part in 0..3 {
        let name = format!("part-{}-{part}.parquet", run.run_id());
        run.put_file(&name, Bytes::from(format!("rows {}..={}", part * 10 + 1, part * 10 + 10)), 10).await?;
    }
    run.put_state("ledger", Bytes::from_static(b"source/part-0.parquet 1234")).await?;
    match run.commit(Some(WatermarkValue::int64(30)), None).await {
        Ok(committed) => Ok(RaceOutcome::Committed(committed.version)),
        Err(Error::Conflict { .. }) => Ok(RaceOutcome::Conflict),
        Err(error) => Err(error),
    }
}

/// What a run must produce, by content: the watermark, the live files' bytes, the state files'
/// bytes. Panics if a file outside `_highwater/` is not live (uncommitted data visible).
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    pub watermark: Option<WatermarkValue>,
    pub files: Vec<Bytes>,
    pub state: Vec<Bytes>,
}

pub async fn observe(store: Arc<dyn ObjectStore>) -> Observed {
    let table = Table::open_with(Arc::clone(&store), root(), options()).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(
        visible_files(&store).await,
        snapshot.files.keys().cloned().collect::<BTreeSet<_>>(),
        "visible files are not the live files"
    );
    let mut files = Vec::new();
    for path in snapshot.files.keys() {
        files.push(store.get(&table.path(path)).await.unwrap().bytes().await.unwrap());
    }
    files.sort();
    let mut state = Vec::new();
    for reference in snapshot.state.values() {
        state.push(table.read_state(reference).await.unwrap());
    }
    Observed { watermark: snapshot.watermark, files, state }
}

/// Data files a plain folder reader sees (everything outside `_highwater/`).
pub async fn visible_files(store: &Arc<dyn ObjectStore>) -> BTreeSet<String> {
    let prefix = root();
    let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    listed
        .into_iter()
        .filter_map(|meta| {
            let relative: Vec<String> = meta.location.prefix_match(&prefix)?.map(|p| p.as_ref().to_owned()).collect();
            let relative = relative.join("/");
            (!relative.starts_with(META_DIR)).then_some(relative)
        })
        .collect()
}

/// Every row of the table's latest version (read through its files), sorted by `id`.
pub async fn read_table(table: &Table) -> arrow_array::RecordBatch {
    use highwater_store::source::{Scan, ScanOptions, SchemaPolicy, Source, SourceOptions};
    let snapshot = table.snapshot().await.unwrap();
    let files: Vec<String> = snapshot.files.keys().cloned().collect();
    let source =
        Source::from_store(Arc::clone(table.store()), table.root().clone(), "table", SourceOptions::files(files));
    let listing = source.list().await.unwrap();
    let options = ScanOptions {
        schema: SchemaPolicy { expected: Some(Arc::clone(&snapshot.schema)), allow_added_nullable: true },
        ..ScanOptions::default()
    };
    let batches: Vec<arrow_array::RecordBatch> = Scan::plan(&listing, &listing.files, options)
        .await
        .unwrap()
        .stream()
        .map_ok(|b| b.batch)
        .try_collect()
        .await
        .unwrap();
    let all = arrow_select::concat::concat_batches(&snapshot.schema, &batches).unwrap();
    sort_by_id(&all)
}

/// A batch sorted by its `id` column.
pub fn sort_by_id(batch: &arrow_array::RecordBatch) -> arrow_array::RecordBatch {
    let ids = batch.column_by_name("id").unwrap();
    let order = arrow_ord::sort::sort_to_indices(ids, None, None).unwrap();
    arrow_select::take::take_record_batch(batch, &order).unwrap()
}
