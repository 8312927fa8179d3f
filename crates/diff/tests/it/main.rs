//! Scenario tests of the snapshot diff with exact expected outputs, the real-world fixtures,
//! property tests and the crash harness.

#![allow(missing_docs, clippy::missing_panics_doc)]

mod fixtures;
mod harness;
mod properties;
mod scenarios;

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::RecordBatch;
use highwater_store::{Table, TableOptions};

/// Writes `batches` as Parquet files `part-N.parquet` of a fresh folder `dir`.
pub fn snapshot(dir: &Path, batches: &[RecordBatch]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (index, batch) in batches.iter().enumerate() {
        std::fs::write(
            dir.join(format!("part-{index}.parquet")),
            highwater_test_support::data::parquet_bytes(batch, 3),
        )
        .unwrap();
    }
}

/// The rows of a change-set folder of the table at `target`, each rendered as
/// `col=value, …` over `columns`, sorted.
pub async fn folder(target: &str, name: &str, columns: &[&str]) -> Vec<String> {
    let table = Table::open(target, TableOptions::default()).await.unwrap();
    let files: Vec<String> =
        table.snapshot().await.unwrap().files.keys().filter(|p| p.starts_with(&format!("{name}/"))).cloned().collect();
    if files.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for batch in table.read_files(&files).await.unwrap() {
        for row in 0..batch.num_rows() {
            rows.push(highwater_core::key::describe_row(&batch, row, columns));
        }
    }
    rows.sort();
    rows
}

/// The three folders.
pub async fn changes(target: &str, columns: &[&str], key: &[&str]) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    out.insert("inserts", folder(target, "inserts", columns).await);
    out.insert("updates", folder(target, "updates", columns).await);
    out.insert("deletes", folder(target, "deletes", key).await);
    out
}
