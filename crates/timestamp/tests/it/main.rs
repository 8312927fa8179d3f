//! Scenario tests of the timestamp loader with exact expected rows, plus the crash and race
//! harnesses and a property test over random arrivals.

#![allow(missing_docs, clippy::missing_panics_doc, clippy::new_without_default)]

mod harness;
mod properties;
mod scenarios;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use highwater_store::{Table, TableOptions};

/// 2024-01-15T10:00:00Z in microseconds.
pub const T: i64 = 1_705_312_800_000_000;
/// One minute in microseconds.
pub const MINUTE: i64 = 60_000_000;

/// A source folder and a target folder in a temporary directory.
pub struct Folders {
    pub dir: tempfile::TempDir,
}

impl Folders {
    pub fn new() -> Self {
        Folders { dir: tempfile::tempdir().unwrap() }
    }

    pub fn source(&self) -> String {
        self.path("source")
    }

    pub fn target(&self) -> String {
        self.path("target")
    }

    pub fn path(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Writes a source file of `(id, minutes after T)` rows.
    pub fn write(&self, name: &str, rows: &[(i64, i64)]) {
        write_rows(&Path::new(&self.source()).join(name), rows, "v");
    }
}

/// Rows `(id, minutes after T)` with `value = "{tag}{id}"`.
pub fn batch(rows: &[(i64, i64)], tag: &str) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
    let values: ArrayRef =
        Arc::new(StringArray::from(rows.iter().map(|r| format!("{tag}{}", r.0)).collect::<Vec<_>>()));
    let times: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(rows.iter().map(|r| T + r.1 * MINUTE).collect::<Vec<_>>()).with_timezone("UTC"),
    );
    RecordBatch::try_from_iter([("id", ids), ("value", values), ("modified_date", times)]).unwrap()
}

pub fn write_rows(path: &Path, rows: &[(i64, i64)], tag: &str) {
    std::fs::write(path, highwater_test_support::data::parquet_bytes(&batch(rows, tag), 2)).unwrap();
}

/// The target's ids, sorted (duplicates kept: a duplicate is a bug).
pub async fn target_ids(target: &str) -> Vec<i64> {
    let table = Table::open(target, TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    let mut ids: Vec<i64> = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec();
    ids.sort_unstable();
    ids
}

/// The target's `(id, value)` pairs, sorted.
pub async fn target_rows(target: &str) -> Vec<(i64, String)> {
    let table = Table::open(target, TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    let ids = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().clone();
    let values = batch.column_by_name("value").unwrap().as_string::<i32>().clone();
    let mut rows: Vec<(i64, String)> =
        ids.values().iter().zip(values.iter()).map(|(id, v)| (*id, v.unwrap_or("").to_owned())).collect();
    rows.sort();
    rows
}
