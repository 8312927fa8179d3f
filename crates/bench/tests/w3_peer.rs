//! The W3 peer leaves `DATA_DIR` as it found it: run twice on one data folder, it writes the
//! same, correct target both times.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

fn write(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, highwater_test_support::data::parquet_bytes(batch, 4)).unwrap();
}

/// Every file under `dir` with its bytes and modification time.
fn fingerprint(dir: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                let meta = entry.metadata().unwrap();
                files.insert(
                    entry.path().display().to_string(),
                    (std::fs::read(entry.path()).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    files
}

/// The rows of the top-level Parquet files of `dir` (what the checker globs): id → name.
fn top_level_rows(dir: &Path) -> BTreeMap<i64, String> {
    let mut rows = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().clone();
            let names = batch.column_by_name("name").unwrap().as_string::<i32>().clone();
            for row in 0..batch.num_rows() {
                assert!(
                    rows.insert(ids.value(row), names.value(row).to_owned()).is_none(),
                    "id {} twice",
                    ids.value(row)
                );
            }
        }
    }
    rows
}

#[test]
fn the_w3_peer_never_writes_under_data_dir() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("manifest.json"), "{}").unwrap();
    let target = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(1..=20)) as ArrayRef),
        ("name", Arc::new(StringArray::from_iter_values((1..=20).map(|i| format!("v{i}")))) as ArrayRef),
    ])
    .unwrap();
    write(&data.path().join("w3/target/part-0.parquet"), &target);
    let events = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![3, 5, 21, 3, 7])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["x3", "x5", "x21", "y3", "x7"])) as ArrayRef),
        ("operation", Arc::new(StringArray::from(vec!["UPDATE", "DELETE", "INSERT", "UPDATE", "DELETE"])) as ArrayRef),
        ("sequence_num", Arc::new(Int64Array::from(vec![10, 11, 12, 13, 9])) as ArrayRef),
    ])
    .unwrap();
    write(&data.path().join("w3/cdc/part-0.parquet"), &events);
    let before = fingerprint(data.path());
    let mut expected: BTreeMap<i64, String> = (1..=20).map(|i| (i, format!("v{i}"))).collect();
    expected.remove(&5);
    expected.remove(&7);
    expected.insert(3, "y3".into());
    expected.insert(21, "x21".into());
    let out = tempfile::tempdir().unwrap();
    for attempt in ["first", "second"] {
        let folder = out.path().join(attempt);
        let status = Command::new(env!("CARGO_BIN_EXE_highwater-bench"))
            .args(["w3", &data.path().display().to_string(), &folder.display().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "{attempt} run failed");
        assert_eq!(top_level_rows(&folder.join("target")), expected, "{attempt} run");
        assert_eq!(fingerprint(data.path()), before, "the {attempt} run changed DATA_DIR");
    }
}
