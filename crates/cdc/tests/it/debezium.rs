//! Debezium sources end to end: the real envelopes of `../shared/fixtures/debezium/` applied run
//! by run, JSON lines with bad lines, Parquet files of envelope columns, truncates, and history
//! (SCD type 2) over Debezium events.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields};
use highwater_cdc::{CdcLoader, DebeziumOptions, Scd2, ValidTime};
use highwater_core::report::{CdcReport, LoadReport, PatternReport};
use highwater_store::write::SchemaEvolution;
use highwater_store::{Table, TableOptions};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;

fn loader(store: &Arc<dyn ObjectStore>) -> CdcLoader {
    CdcLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(store), Path::from("source"), "source")
        .target_store(Arc::clone(store), Path::from("target"))
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
        .debezium(DebeziumOptions::default())
        .key(&["id"])
}

async fn put(store: &Arc<dyn ObjectStore>, name: &str, bytes: Vec<u8>) {
    object_store::ObjectStoreExt::put(&**store, &Path::from(format!("source/{name}")), bytes.into()).await.unwrap();
}

async fn put_fixture(store: &Arc<dyn ObjectStore>, name: &str) -> bool {
    let Some(dir) = highwater_test_support::fixtures::shared_fixtures() else { return false };
    put(store, name, std::fs::read(dir.join("debezium").join(name)).unwrap()).await;
    true
}

/// The target's rows as `(id, one text column)`, sorted.
async fn rows(store: &Arc<dyn ObjectStore>, column: &str) -> Vec<(i64, Option<String>)> {
    let table = Table::open_with(Arc::clone(store), Path::from("target"), TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    let ids = arrow_cast::cast(batch.column_by_name("id").unwrap(), &DataType::Int64).unwrap();
    let ids = ids.as_primitive::<Int64Type>();
    let values = batch.column_by_name(column).unwrap().as_string::<i32>();
    let mut rows: Vec<(i64, Option<String>)> = (0..batch.num_rows())
        .map(|r| (ids.value(r), (!values.is_null(r)).then(|| values.value(r).to_owned())))
        .collect();
    rows.sort();
    rows
}

fn details(report: &LoadReport) -> CdcReport {
    match &report.details {
        PatternReport::Cdc(details) => details.clone(),
        other => panic!("not a CDC report: {other:?}"),
    }
}

#[tokio::test]
async fn the_mysql_tutorial_sequence_applies_run_by_run() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    if !put_fixture(&store, "mysql-tutorial-snapshot-read.schema-payload.json").await {
        return;
    }
    loader(&store).run().await.unwrap();
    assert_eq!(rows(&store, "first_name").await, vec![(1004, Some("Anne".into()))]);
    // The schema said int32: the table keeps it, later schemaless envelopes conform to it.
    let table = Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default()).await.unwrap();
    assert_eq!(table.snapshot().await.unwrap().schema.field_with_name("id").unwrap().data_type(), &DataType::Int32);

    put_fixture(&store, "mysql-tutorial-update.payload-only.json").await;
    let report = loader(&store).run().await.unwrap();
    assert_eq!(rows(&store, "first_name").await, vec![(1004, Some("Anne Marie".into()))]);
    assert_eq!(report.rows.updated, 1);
    assert_eq!(report.watermark_after.unwrap().to_string(), "(mysql-bin.000003, 364, 0)");

    put_fixture(&store, "mysql-tutorial-delete.payload-only.json").await;
    put_fixture(&store, "mysql-tutorial-tombstone-as-printed.json").await;
    let report = loader(&store).run().await.unwrap();
    assert_eq!(rows(&store, "first_name").await, vec![]);
    assert_eq!((report.rows.deleted, details(&report).kafka_tombstones), (1, 1));
}

#[tokio::test]
async fn a_postgres_sequence_arriving_backwards_ends_deleted() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // The delete (REPLICA IDENTITY DEFAULT: its before is the key only) comes first.
    if !put_fixture(&store, "postgresql-delete.payload-only.json").await {
        return;
    }
    // That first table has only the key: the columns of later events are added.
    let loader = || loader(&store).schema_evolution(SchemaEvolution::AddNullable);
    loader().run().await.unwrap();
    put_fixture(&store, "postgresql-update.payload-only.json").await;
    put_fixture(&store, "postgresql-create.schema-payload.json").await;
    let report = loader().run().await.unwrap();
    // Older than the delete: its tombstone keeps the key deleted.
    assert_eq!(rows(&store, "first_name").await, vec![]);
    assert_eq!(details(&report).ignored_stale, 2);
}

#[tokio::test]
async fn a_truncate_envelope_empties_the_table() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    if !put_fixture(&store, "mysql-tutorial-snapshot-read.schema-payload.json").await {
        return;
    }
    loader(&store).run().await.unwrap();
    put_fixture(&store, "mysql-truncate.payload-only.json").await;
    let report = loader(&store).run().await.unwrap();
    assert_eq!(rows(&store, "first_name").await, vec![]);
    assert_eq!(details(&report).truncates, 1);
}

fn line(op: &str, id: i64, name: Option<&str>, pos: i64) -> String {
    let image = serde_json::json!({"id": id, "name": name});
    let (before, after) = if op == "d" { (image, serde_json::Value::Null) } else { (serde_json::Value::Null, image) };
    serde_json::json!({
        "op": op, "before": before, "after": after,
        "source": {"connector": "mysql", "file": "bin.000002", "pos": pos, "row": 0}
    })
    .to_string()
}

#[tokio::test]
async fn json_lines_apply_and_a_bad_line_is_named_with_nothing_written() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let lines = [line("c", 1, Some("a"), 10), line("c", 2, Some("b"), 20), "null".into(), line("u", 1, Some("a2"), 30)];
    put(&store, "topic+0+0.jsonl", lines.join("\n").into_bytes()).await;
    let report = loader(&store).run().await.unwrap();
    assert_eq!(rows(&store, "name").await, vec![(1, Some("a2".into())), (2, Some("b".into()))]);
    assert_eq!((details(&report).events, details(&report).kafka_tombstones), (3, 1));

    let before = Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default())
        .await
        .unwrap()
        .snapshot()
        .await
        .unwrap()
        .version;
    let bad = [line("d", 2, None, 40), "{\"op\": \"u\", \"after\": {\"id\": 3".to_owned()];
    put(&store, "topic+0+4.jsonl", bad.join("\n").into_bytes()).await;
    let error = loader(&store).run().await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("topic+0+4.jsonl, line 2") && message.contains("malformed JSON"), "{message}");
    let table = Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default()).await.unwrap();
    assert_eq!(table.snapshot().await.unwrap().version, before);
    assert_eq!(rows(&store, "name").await, vec![(1, Some("a2".into())), (2, Some("b".into()))]);
}

/// An envelope: `(op, id, name, binlog position, updated_at)`; no op is a tombstone.
type Envelope<'a> = (Option<&'a str>, i64, Option<&'a str>, i64, i64);

/// `(id, name, valid_from, valid_to, opening position)`.
type HistoryRow<'a> = (Option<i64>, &'a str, Option<i64>, Option<i64>, Option<i64>);

/// A Parquet file of envelope columns, as a Parquet sink of the topic writes it.
fn envelopes(rows: &[Envelope<'_>]) -> RecordBatch {
    let image_fields = Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("updated_at", DataType::Int64, true),
    ]);
    let image = |present: &dyn Fn(&str) -> bool| -> ArrayRef {
        let ids: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        let names: StringArray = rows.iter().map(|r| r.2).collect();
        let times: Int64Array = rows.iter().map(|r| Some(r.4)).collect();
        let nulls = arrow_buffer::NullBuffer::from(rows.iter().map(|r| r.0.is_some_and(present)).collect::<Vec<_>>());
        Arc::new(StructArray::new(
            image_fields.clone(),
            vec![Arc::new(ids), Arc::new(names), Arc::new(times)],
            Some(nulls),
        ))
    };
    let source_fields = Fields::from(vec![
        Field::new("connector", DataType::Utf8, true),
        Field::new("file", DataType::Utf8, true),
        Field::new("pos", DataType::Int64, true),
        Field::new("row", DataType::Int32, true),
    ]);
    let source = StructArray::new(
        source_fields,
        vec![
            Arc::new(StringArray::from(vec![Some("mysql"); rows.len()])),
            Arc::new(StringArray::from(vec![Some("bin.000007"); rows.len()])),
            Arc::new(rows.iter().map(|r| Some(r.3)).collect::<Int64Array>()),
            Arc::new(arrow_array::Int32Array::from(vec![0; rows.len()])),
        ],
        None,
    );
    RecordBatch::try_from_iter([
        ("before", image(&|op| op == "d")),
        ("after", image(&|op| op != "d")),
        ("source", Arc::new(source) as ArrayRef),
        ("op", Arc::new(rows.iter().map(|r| r.0).collect::<StringArray>()) as ArrayRef),
    ])
    .unwrap()
}

#[tokio::test]
async fn parquet_envelopes_keep_history_with_an_event_time() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let batch = envelopes(&[
        (Some("c"), 1, Some("a"), 100, 1000),
        (Some("c"), 2, Some("b"), 200, 2000),
        (Some("u"), 1, Some("a2"), 300, 3000),
        (None, 1, None, 301, 0), // a tombstone message
        (Some("d"), 2, Some("b"), 400, 4000),
    ]);
    put(&store, "part-0.parquet", highwater_test_support::data::parquet_bytes(&batch, 2).to_vec()).await;
    let scd2 = Scd2 { time: ValidTime::Column("updated_at".into()), ..Scd2::default() };
    let report = loader(&store).scd2(scd2).run().await.unwrap();
    assert_eq!(details(&report).kafka_tombstones, 1);

    let table = Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    let int = |name: &str, r: usize| {
        let column = batch.column_by_name(name).unwrap().as_primitive::<Int64Type>();
        (!column.is_null(r)).then(|| column.value(r))
    };
    let names = batch.column_by_name("name").unwrap().as_string::<i32>();
    let mut history: Vec<HistoryRow<'_>> = (0..batch.num_rows())
        .map(|r| (int("id", r), names.value(r), int("valid_from", r), int("valid_to", r), int("_source_pos", r)))
        .collect();
    history.sort();
    assert_eq!(
        history,
        vec![
            (Some(1), "a", Some(1000), Some(3000), Some(100)),
            (Some(1), "a2", Some(3000), None, Some(300)),
            (Some(2), "b", Some(2000), Some(4000), Some(200)),
        ]
    );
}
