//! Scenario tests of the sequence loader with exact expected rows, the crash and race harnesses,
//! and a property test over random arrivals.

#![allow(missing_docs, clippy::missing_panics_doc)]

mod harness;
mod properties;
mod scenarios;

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use highwater_store::{Table, TableOptions};

/// Rows with these sequence ids; `value = "{tag}{id}"`, `id = sequence id * 10`.
pub fn batch(sequence: &[i64], tag: &str) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(sequence.iter().map(|s| s * 10).collect::<Vec<_>>()));
    let values: ArrayRef =
        Arc::new(StringArray::from(sequence.iter().map(|s| format!("{tag}{s}")).collect::<Vec<_>>()));
    let sequence: ArrayRef = Arc::new(Int64Array::from(sequence.to_vec()));
    RecordBatch::try_from_iter([("id", ids), ("value", values), ("sequence_id", sequence)]).unwrap()
}

pub fn write(folder: &str, name: &str, sequence: &[i64]) {
    std::fs::write(Path::new(folder).join(name), highwater_test_support::data::parquet_bytes(&batch(sequence, "v"), 3))
        .unwrap();
}

/// The target's sequence ids in file order (files sorted by name), then sorted.
pub async fn target_sequence(target: &str) -> (Vec<i64>, Vec<i64>) {
    let table = Table::open(target, TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    let in_order: Vec<i64> = batch.column_by_name("sequence_id").unwrap().as_primitive::<Int64Type>().values().to_vec();
    let mut sorted = in_order.clone();
    sorted.sort_unstable();
    (in_order, sorted)
}
