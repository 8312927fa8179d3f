//! Scenario tests of the CDC loader with exact expected targets, the crash and race harnesses,
//! and property tests over random event sets, splits and replays.

#![allow(missing_docs, clippy::missing_panics_doc)]

mod debezium;
mod harness;
mod properties;
mod scd2;
mod scenarios;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use highwater_store::{Table, TableOptions};

/// One flat event: `(id, operation, sequence_num, name)`.
pub type Row<'a> = (Option<i64>, &'a str, i64, Option<&'a str>);

/// Events in the seed's flat format: `id, name, operation, sequence_num`.
pub fn events(rows: &[Row<'_>]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
        ("name", Arc::new(StringArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())) as ArrayRef),
        ("operation", Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as ArrayRef),
        ("sequence_num", Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap()
}

/// Shorthand for a keyed event.
pub fn ev(id: i64, op: &'static str, sequence: i64, name: &'static str) -> Row<'static> {
    (Some(id), op, sequence, (!name.is_empty()).then_some(name))
}

pub fn write_batch(folder: &str, name: &str, batch: &RecordBatch) {
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(Path::new(folder).join(name), highwater_test_support::data::parquet_bytes(batch, 2)).unwrap();
}

pub fn write(folder: &str, name: &str, rows: &[Row<'_>]) {
    write_batch(folder, name, &events(rows));
}

/// The target table's rows: id → name.
pub async fn target(location: &str) -> BTreeMap<i64, Option<String>> {
    let table = Table::open(location, TableOptions::default()).await.unwrap();
    rows_of(&table.read_all().await.unwrap())
}

pub fn rows_of(batch: &RecordBatch) -> BTreeMap<i64, Option<String>> {
    let ids = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let names = arrow_cast::cast(batch.column_by_name("name").unwrap(), &arrow_schema::DataType::Utf8).unwrap();
    let names = names.as_string::<i32>();
    let mut rows = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let previous = rows.insert(ids.value(row), (!names.is_null(row)).then(|| names.value(row).to_owned()));
        assert!(previous.is_none(), "id {} twice in the target", ids.value(row));
    }
    rows
}

pub fn expect(rows: &[(i64, &str)]) -> BTreeMap<i64, Option<String>> {
    rows.iter().map(|(id, name)| (*id, Some((*name).to_owned()))).collect()
}
