//! The native side of the native/wasm agreement: builds the small snapshots the Node tests
//! read, runs the native `highwater-diff` on them, and pins every byte the wasm build must
//! reproduce (`tests/fixtures/`). Regenerate with `UPDATE_FIXTURES=1 cargo test -p
//! highwater-wasm --test native` after an intended change; CI fails on any drift.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use highwater_core::key::describe_row;
use highwater_wasm::{DiffOptions, IndexOptions};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const KEY: [&str; 2] = ["region", "id"];

/// One row: region, id, name, price, active, updated (µs since the epoch).
type Row = (&'static str, i64, Option<&'static str>, Option<f64>, Option<bool>, i64);

const PREVIOUS: [Row; 8] = [
    ("eu", 1, Some("ada"), Some(10.0), Some(true), 1_700_000_000_000_000),
    ("eu", 2, Some("bob"), Some(20.5), Some(false), 1_700_000_000_000_000),
    ("us", 1, Some("cy"), None, Some(true), 1_700_000_000_000_000),
    ("us", 2, Some("dee"), Some(7.25), None, 1_700_000_000_000_000),
    ("us", 3, None, Some(1.0), Some(true), 1_700_000_000_000_000),
    ("ap", 1, Some("eve"), Some(3.0), Some(true), 1_700_000_000_000_000),
    ("ap", 2, Some("fay"), Some(4.0), Some(false), 1_700_000_000_000_000),
    ("eu", 3, Some("gus"), Some(5.5), Some(true), 1_700_000_000_000_000),
];

// eu/2 price changes; us/1 price null -> value; us/3 name null -> value and active flips;
// ap/2 deleted, eu/3 deleted; sa/1 and eu/4 inserted; the rest unchanged (in another order).
const CURRENT: [Row; 8] = [
    ("sa", 1, Some("hal"), Some(9.0), None, 1_700_000_100_000_000),
    ("eu", 1, Some("ada"), Some(10.0), Some(true), 1_700_000_000_000_000),
    ("us", 3, Some("ivy"), Some(1.0), Some(false), 1_700_000_000_000_000),
    ("eu", 2, Some("bob"), Some(21.0), Some(false), 1_700_000_000_000_000),
    ("us", 1, Some("cy"), Some(2.0), Some(true), 1_700_000_000_000_000),
    ("us", 2, Some("dee"), Some(7.25), None, 1_700_000_000_000_000),
    ("ap", 1, Some("eve"), Some(3.0), Some(true), 1_700_000_000_000_000),
    ("eu", 4, Some("jo"), None, Some(true), 1_700_000_200_000_000),
];

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("region", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
        ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef),
        ("name", Arc::new(rows.iter().map(|r| r.2).collect::<StringArray>()) as ArrayRef),
        ("price", Arc::new(rows.iter().map(|r| r.3).collect::<Float64Array>()) as ArrayRef),
        ("active", Arc::new(rows.iter().map(|r| r.4).collect::<BooleanArray>()) as ArrayRef),
        (
            "updated",
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.5)).with_timezone("UTC"))
                as ArrayRef,
        ),
    ])
    .unwrap()
}

fn parquet(batch: &RecordBatch, compression: Compression) -> Vec<u8> {
    let properties =
        WriterProperties::builder().set_compression(compression).set_created_by("highwater".into()).build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).unwrap();
    // Two row groups, so decoding goes batch by batch.
    let half = batch.num_rows().min(5);
    writer.write(&batch.slice(0, half)).unwrap();
    writer.flush().unwrap();
    writer.write(&batch.slice(half, batch.num_rows() - half)).unwrap();
    writer.close().unwrap();
    bytes
}

fn ipc_file(batch: &RecordBatch) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut bytes, &batch.schema()).unwrap();
    writer.write(&batch.slice(0, 3)).unwrap();
    writer.write(&batch.slice(3, batch.num_rows() - 3)).unwrap();
    writer.finish().unwrap();
    bytes
}

fn ipc_stream(batch: &RecordBatch) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    bytes
}

fn csv(rows: &[Row]) -> Vec<u8> {
    let mut text = String::from("region,id,name,price,active,updated\n");
    for (region, id, name, price, active, updated) in rows {
        let seconds = updated / 1_000_000;
        let time = chrono_free_rfc3339(seconds);
        let (name, price) = (name.unwrap_or(""), price.map(|p| p.to_string()).unwrap_or_default());
        let active = active.map(|a| a.to_string()).unwrap_or_default();
        writeln!(text, "{region},{id},{name},{price},{active},{time}").unwrap();
    }
    text.into_bytes()
}

/// `seconds` since the epoch as RFC 3339 UTC (the fixtures' two instants).
fn chrono_free_rfc3339(seconds: i64) -> &'static str {
    match seconds {
        1_700_000_000 => "2023-11-14T22:13:20Z",
        1_700_000_100 => "2023-11-14T22:15:00Z",
        1_700_000_200 => "2023-11-14T22:16:40Z",
        other => panic!("no fixture instant for {other}"),
    }
}

fn options(json: &str) -> DiffOptions {
    DiffOptions::from_json(json).unwrap()
}

const CSV_SCHEMA: &str = r#"{"region": "Utf8", "id": "Int64", "name": "Utf8", "price": "Float64", "active": "Boolean",
    "updated": "Timestamp(Microsecond, Some(\"UTC\"))"}"#;

/// Every fixture file and its bytes.
fn fixtures(native_index: &[u8]) -> BTreeMap<&'static str, Vec<u8>> {
    let (previous, current) = (batch(&PREVIOUS), batch(&CURRENT));
    let mut files: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    files.insert("previous.parquet", parquet(&previous, Compression::UNCOMPRESSED));
    files.insert("current.snappy.parquet", parquet(&current, Compression::SNAPPY));
    files.insert("current.zstd.parquet", parquet(&current, Compression::ZSTD(ZstdLevel::default())));
    files.insert("current.lz4.parquet", parquet(&current, Compression::LZ4_RAW));
    files.insert("previous.arrow", ipc_file(&previous));
    files.insert("current.arrows", ipc_stream(&current));
    files.insert("previous.csv", csv(&PREVIOUS));
    files.insert("current.csv", csv(&CURRENT));
    files.insert("previous.index", native_index.to_vec());
    let diff = highwater_wasm::diff(
        files["previous.parquet"].clone(),
        files["current.snappy.parquet"].clone(),
        &options(r#"{"key": ["region", "id"]}"#),
        &mut |_| {},
    )
    .unwrap();
    files.insert("expected-diff.arrows", diff.table("changes").unwrap().to_vec());
    let against = highwater_wasm::diff_against_index(
        native_index,
        files["current.snappy.parquet"].clone(),
        &options("{}"),
        &mut |_| {},
    )
    .unwrap();
    files.insert("expected-against-index.arrows", against.table("changes").unwrap().to_vec());
    files.insert("current.index", against.index.unwrap());
    files
}

/// The index the native `highwater-diff` stores for `previous` (a baseline run).
async fn native_index(dir: &Path) -> Vec<u8> {
    let source = dir.join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("part-0.parquet"), parquet(&batch(&PREVIOUS), Compression::SNAPPY)).unwrap();
    let target = dir.join("target");
    highwater_diff::DiffLoader::new(source.to_str().unwrap(), target.to_str().unwrap())
        .key(&KEY)
        .changed_columns(true)
        .run()
        .await
        .unwrap();
    let table =
        highwater_store::Table::open(target.to_str().unwrap(), highwater_store::TableOptions::default()).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    table.read_state(&snapshot.state[highwater_diff::INDEX_STATE]).await.unwrap().to_vec()
}

/// The rows of a native change feed run of `current` after `previous`, as `kind: key…`.
async fn native_feed_rows(dir: &Path) -> Vec<String> {
    let source = dir.join("source");
    std::fs::remove_file(source.join("part-0.parquet")).unwrap();
    std::fs::write(source.join("part-1.parquet"), parquet(&batch(&CURRENT), Compression::SNAPPY)).unwrap();
    let target = dir.join("target");
    highwater_diff::DiffLoader::new(source.to_str().unwrap(), target.to_str().unwrap())
        .key(&KEY)
        .changed_columns(true)
        .output(highwater_diff::Output::ChangeFeed)
        .run()
        .await
        .unwrap();
    let table =
        highwater_store::Table::open(target.to_str().unwrap(), highwater_store::TableOptions::default()).await.unwrap();
    let files: Vec<String> =
        table.snapshot().await.unwrap().files.keys().filter(|p| p.starts_with("changes/")).cloned().collect();
    feed_rows(&table.read_files(&files).await.unwrap())
}

fn feed_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(describe_row(batch, row, &["_change_type", "region", "id", "name", "price"]));
        }
    }
    rows.sort();
    rows
}

fn read_ipc(bytes: &[u8]) -> Vec<RecordBatch> {
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap().map(Result::unwrap).collect()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[tokio::test]
async fn fixtures_match_the_native_diff() {
    let dir = tempfile::tempdir().unwrap();
    let index = native_index(dir.path()).await;
    // The index the browser builds is the one native stores, byte for byte.
    let wasm_index = highwater_wasm::snapshot_index(
        parquet(&batch(&PREVIOUS), Compression::UNCOMPRESSED),
        &IndexOptions::from_json(r#"{"key": ["region", "id"]}"#).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(wasm_index, index, "snapshotIndex differs from the native highwater-diff index");
    let files = fixtures(&index);
    // The change set the wasm API returns holds the native pipeline's changes.
    let native = native_feed_rows(dir.path()).await;
    assert_eq!(feed_rows(&read_ipc(&files["expected-diff.arrows"])), native);
    assert_eq!(feed_rows(&read_ipc(&files["expected-against-index.arrows"])), native);
    let fixtures = fixture_dir();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::create_dir_all(&fixtures).unwrap();
        for (name, bytes) in &files {
            std::fs::write(fixtures.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in &files {
        let committed = std::fs::read(fixtures.join(name)).unwrap_or_default();
        assert!(
            committed == *bytes,
            "tests/fixtures/{name} is stale: regenerate with UPDATE_FIXTURES=1 cargo test -p highwater-wasm --test native"
        );
    }
}

#[test]
fn every_format_and_codec_gives_the_same_changes() {
    let expected = highwater_wasm::diff(
        parquet(&batch(&PREVIOUS), Compression::UNCOMPRESSED),
        parquet(&batch(&CURRENT), Compression::UNCOMPRESSED),
        &options(r#"{"key": ["region", "id"]}"#),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        (expected.counts.inserted, expected.counts.updated, expected.counts.deleted, expected.counts.unchanged),
        (2, 3, 2, 3)
    );
    assert_eq!(
        expected.changed_columns,
        [("active".to_owned(), 1), ("name".to_owned(), 1), ("price".to_owned(), 2)].into_iter().collect()
    );
    let expected_rows = feed_rows(&read_ipc(expected.table("changes").unwrap()));
    let previous_inputs = [
        parquet(&batch(&PREVIOUS), Compression::SNAPPY),
        ipc_file(&batch(&PREVIOUS)),
        ipc_stream(&batch(&PREVIOUS)),
        csv(&PREVIOUS),
    ];
    let current_inputs = [
        parquet(&batch(&CURRENT), Compression::ZSTD(ZstdLevel::default())),
        parquet(&batch(&CURRENT), Compression::LZ4_RAW),
        ipc_stream(&batch(&CURRENT)),
        csv(&CURRENT),
    ];
    for previous in &previous_inputs {
        for current in &current_inputs {
            let out = highwater_wasm::diff(
                previous.clone(),
                current.clone(),
                &options(&format!(r#"{{"key": ["region", "id"], "csvSchema": {CSV_SCHEMA}}}"#)),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(out.counts, expected.counts);
            assert_eq!(feed_rows(&read_ipc(out.table("changes").unwrap())), expected_rows);
        }
    }
    // CSV against Parquet takes the Parquet side's types without a declared schema.
    let out = highwater_wasm::diff(
        csv(&PREVIOUS),
        parquet(&batch(&CURRENT), Compression::SNAPPY),
        &options(r#"{"key": ["region", "id"]}"#),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.counts, expected.counts);
}

#[test]
fn split_output_and_progress() {
    let mut stages = Vec::new();
    let out = highwater_wasm::diff(
        parquet(&batch(&PREVIOUS), Compression::SNAPPY),
        parquet(&batch(&CURRENT), Compression::SNAPPY),
        &options(r#"{"key": ["region", "id"], "output": "split", "ipc": "file", "index": true}"#),
        &mut |p| stages.push(p.stage),
    )
    .unwrap();
    stages.dedup();
    assert_eq!(stages, ["read previous", "read current", "diff", "write"]);
    let read = |name: &str| {
        arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(out.table(name).unwrap().to_vec()), None)
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let deletes = read("deletes");
    assert_eq!(deletes[0].schema().fields().len(), 2, "deletes carry the key");
    let mut keys: Vec<String> = (0..deletes[0].num_rows()).map(|r| describe_row(&deletes[0], r, &KEY)).collect();
    keys.sort();
    assert_eq!(keys, ["region=ap, id=2", "region=eu, id=3"]);
    let updates = read("updates");
    let changed = updates[0].column_by_name("_changed_columns").unwrap().as_list::<i32>();
    assert_eq!(arrow_array::Array::len(changed), 3);
    assert!(out.index.is_some());
}

/// A Parquet file whose embedded Arrow schema makes arrow-ipc panic (found by the
/// `wasm_inputs` fuzz target through `inspect`, which read the footer outside the guard).
#[test]
fn a_decoder_panic_in_a_footer_is_an_input_error() {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corrupt/arrow-schema-panic.parquet")).unwrap();
    let error = highwater_wasm::inspect(bytes::Bytes::from(bytes.clone())).unwrap_err();
    assert!(matches!(error, highwater_wasm::Error::Input { .. }), "{error}");
    assert!(error.to_string().contains("decoder panicked"), "{error}");
    let good = parquet(&batch(&PREVIOUS), Compression::SNAPPY);
    let error = highwater_wasm::diff(good, bytes, &options(r#"{"key": ["id"]}"#), &mut |_| {}).unwrap_err();
    assert!(matches!(error, highwater_wasm::Error::Input { .. }), "{error}");
}

#[test]
fn errors_name_what_is_wrong() {
    let good = parquet(&batch(&PREVIOUS), Compression::SNAPPY);
    let error = |previous: Vec<u8>, current: Vec<u8>, json: &str| {
        highwater_wasm::diff(previous, current, &options(json), &mut |_| {}).unwrap_err().to_string()
    };
    let message = error(b"PAR1 not really".to_vec(), good.clone(), r#"{"key": ["id"]}"#);
    assert!(message.starts_with("previous: "), "{message}");
    let message = error(good.clone(), good.clone(), r#"{"key": ["nope"]}"#);
    assert!(message.contains("nope"), "{message}");
    let duplicated = parquet(&batch(&[PREVIOUS[0], PREVIOUS[0]]), Compression::SNAPPY);
    let message = error(good.clone(), duplicated, r#"{"key": ["region", "id"]}"#);
    assert!(message.contains("region=eu, id=1"), "{message}");
    let message = error(
        csv(&PREVIOUS),
        b"region,id\neu,x\n".to_vec(),
        r#"{"key": ["region", "id"], "csvSchema": {"id": "Int64"}}"#,
    );
    assert!(message.starts_with("current: ") && message.contains("'x' as type 'Int64' for column 1"), "{message}");
    let message = error(good.clone(), good.clone(), r#"{"key": ["id"], "csvSchema": {"id": "Integer"}}"#);
    assert!(message.contains("`Integer` is not an Arrow type"), "{message}");
    let truncated = good[..good.len() / 2].to_vec();
    let message = error(truncated, good.clone(), r#"{"key": ["id"]}"#);
    assert!(message.starts_with("previous: "), "{message}");
    let message =
        highwater_wasm::diff_against_index(b"junk", good.clone(), &options("{}"), &mut |_| {}).unwrap_err().to_string();
    assert!(message.starts_with("index: ") && message.contains("not a snapshot index"), "{message}");
    let index = highwater_wasm::snapshot_index(
        good.clone(),
        &IndexOptions::from_json(r#"{"key": ["region", "id"]}"#).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    let message = highwater_wasm::diff_against_index(&index, good.clone(), &options(r#"{"key": ["id"]}"#), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(message.contains("keyed by (region, id)"), "{message}");
    let message =
        highwater_wasm::diff_against_index(&index, csv(&CURRENT), &options("{}"), &mut |_| {}).unwrap_err().to_string();
    assert!(message.contains("CSV against an index needs column types"), "{message}");
}
