//! The in-memory snapshot diff on two arbitrary snapshots A and B of a keyed table (unique
//! `Int64` keys; nullable string, integer and boolean values; each side in several batches,
//! its own column order and its own string encoding — `Utf8`, `LargeUtf8` or dictionary):
//! applying the change set of (A, B) to A gives B, row for row by key; every update changes a
//! row and names exactly the columns that changed; the counts are the change set's rows;
//! diff(A, A) is empty; and B diffed against its own index (the diff's output) is unchanged.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use highwater_core::arrow::array::cast::AsArray;
use highwater_core::arrow::array::types::Int64Type;
use highwater_core::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use highwater_core::arrow::cast::cast;
use highwater_core::arrow::schema::DataType;
use highwater_core::change::{ChangeKind, ChangeSet};
use highwater_core::diff::{CHANGED_COLUMNS_COLUMN, Compare, DiffSpec, diff_against_index, diff_snapshots_with};
use libfuzzer_sys::fuzz_target;

/// The values of one row: name, qty, flag.
type Row = (Option<String>, Option<i64>, Option<bool>);
const VALUE_COLUMNS: [&str; 3] = ["name", "qty", "flag"];

fn value<T>(u: &mut Unstructured<'_>, pick: impl FnOnce(&mut Unstructured<'_>) -> Result<T>) -> Result<Option<T>> {
    if u.ratio(1, 4)? { Ok(None) } else { pick(u).map(Some) }
}

/// A row from small domains, so that equal values are common.
fn row(u: &mut Unstructured<'_>) -> Result<Row> {
    Ok((
        value(u, |u| Ok(["", "a", "b", "é"][u.choose_index(4)?].to_owned()))?,
        value(u, |u| Ok(*u.choose(&[0, 1, -1, i64::MIN, i64::MAX])?))?,
        value(u, |u| u.arbitrary())?,
    ))
}

/// A snapshot as batches: rows in arbitrary order, cut into up to four batches, columns in an
/// arbitrary order, names in an arbitrary string encoding.
fn snapshot(u: &mut Unstructured<'_>, rows: &BTreeMap<i64, Row>) -> Result<Vec<RecordBatch>> {
    let mut order: Vec<(&i64, &Row)> = rows.iter().collect();
    for i in (1..order.len()).rev() {
        let j = u.int_in_range(0..=i)?;
        order.swap(i, j);
    }
    let name_type = u
        .choose(&[
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        ])?
        .clone();
    let mut columns: Vec<&str> = vec!["id", "name", "qty", "flag"];
    for i in (1..columns.len()).rev() {
        let j = u.int_in_range(0..=i)?;
        columns.swap(i, j);
    }
    let pieces = u.int_in_range(1..=4)?;
    let mut cuts: Vec<usize> = (1..pieces).map(|_| u.int_in_range(0..=order.len())).collect::<Result<_>>()?;
    cuts.push(0);
    cuts.push(order.len());
    cuts.sort_unstable();
    let mut batches = Vec::new();
    for window in cuts.windows(2) {
        let part = &order[window[0]..window[1]];
        let arrays = columns.iter().map(|column| -> (&str, ArrayRef, bool) {
            let array: ArrayRef = match *column {
                "id" => Arc::new(part.iter().map(|(id, _)| Some(**id)).collect::<Int64Array>()),
                "name" => {
                    let names = Arc::new(part.iter().map(|(_, r)| r.0.as_deref()).collect::<StringArray>());
                    cast(&(names as ArrayRef), &name_type).expect("string casts")
                }
                "qty" => Arc::new(part.iter().map(|(_, r)| r.1).collect::<Int64Array>()),
                _ => Arc::new(part.iter().map(|(_, r)| r.2).collect::<BooleanArray>()),
            };
            // One schema for all batches of a snapshot: only the key is declared non-null.
            (column, array, *column != "id")
        });
        batches.push(RecordBatch::try_from_iter_with_nullable(arrays).expect("a valid batch"));
    }
    Ok(batches)
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    let ids = batch.column_by_name("id").expect("changes carry the key");
    assert_eq!(ids.null_count(), 0);
    ids.as_primitive::<Int64Type>().values().to_vec()
}

fn rows_of(batch: &RecordBatch) -> Vec<(i64, Row)> {
    let names = cast(batch.column_by_name("name").expect("name"), &DataType::Utf8).expect("names as Utf8");
    let names = names.as_string::<i32>();
    let qty = batch.column_by_name("qty").expect("qty").as_primitive::<Int64Type>();
    let flag = batch.column_by_name("flag").expect("flag").as_boolean();
    ids(batch)
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let row = (
                names.is_valid(i).then(|| names.value(i).to_owned()),
                qty.is_valid(i).then(|| qty.value(i)),
                flag.is_valid(i).then(|| flag.value(i)),
            );
            (id, row)
        })
        .collect()
}

/// The columns whose values differ between two rows.
fn changed(a: &Row, b: &Row) -> Vec<String> {
    let differs = [a.0 != b.0, a.1 != b.1, a.2 != b.2];
    VALUE_COLUMNS.iter().zip(differs).filter(|(_, d)| *d).map(|(c, _)| (*c).to_owned()).collect()
}

/// Applies a change set to `rows`: deletes must exist, updates exist and change their row,
/// inserts be new.
fn apply(mut rows: BTreeMap<i64, Row>, changes: &ChangeSet, changed_columns: bool) -> BTreeMap<i64, Row> {
    for batch in changes.batches(ChangeKind::Delete) {
        for id in ids(batch) {
            assert!(rows.remove(&id).is_some(), "delete of absent key {id}");
        }
    }
    for batch in changes.batches(ChangeKind::Update) {
        let names = batch.column_by_name(CHANGED_COLUMNS_COLUMN).map(|c| c.as_list::<i32>().clone());
        assert_eq!(names.is_some(), changed_columns);
        for (i, (id, new)) in rows_of(batch).into_iter().enumerate() {
            let old = rows.insert(id, new.clone()).unwrap_or_else(|| panic!("update of absent key {id}"));
            assert_ne!(old, new, "update of key {id} changes nothing");
            if let Some(names) = &names {
                let names = names.value(i);
                let names: Vec<String> =
                    names.as_string::<i32>().iter().map(|n| n.expect("a name").to_owned()).collect();
                // Named in the spec's column order: by name.
                let mut expected = changed(&old, &new);
                expected.sort();
                assert_eq!(names, expected, "changed columns of key {id}");
            }
        }
    }
    for batch in changes.batches(ChangeKind::Insert) {
        for (id, row) in rows_of(batch) {
            assert!(rows.insert(id, row).is_none(), "insert of present key {id}");
        }
    }
    rows
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(keys) = u.int_in_range(0..=12) else { return };
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    for id in 0..keys {
        let id = if id == 0 { i64::MIN } else { id };
        let (Ok(in_a), Ok(in_b), Ok(same)) = (u.arbitrary::<bool>(), u.arbitrary::<bool>(), u.ratio(1, 2)) else {
            return;
        };
        let Ok(old) = row(&mut u) else { return };
        let Ok(new) = (if same { Ok(old.clone()) } else { row(&mut u) }) else { return };
        if in_a {
            a.insert(id, old);
        }
        if in_b {
            b.insert(id, new);
        }
    }
    let (Ok(a_batches), Ok(b_batches)) = (snapshot(&mut u, &a), snapshot(&mut u, &b)) else { return };
    let changed_columns = u.arbitrary().unwrap_or(false);
    let mut spec = DiffSpec::for_schema(&a_batches[0].schema(), &["id".to_owned()], &[]).expect("a spec");
    spec.column_hashes = changed_columns;
    let compare = Compare { tolerance: Vec::new(), changed_columns };

    let (changes, counts, index) = diff_snapshots_with(&spec, &a_batches, &b_batches, &compare).expect("A vs B");
    assert_eq!(apply(a.clone(), &changes, changed_columns), b);
    let c = changes.counts();
    assert_eq!((counts.inserted, counts.updated, counts.deleted), (c.inserted, c.updated, c.deleted));
    assert_eq!((counts.rows_before, counts.rows_after), (a.len() as u64, b.len() as u64));
    assert_eq!(counts.unchanged + c.updated + c.deleted, a.len() as u64);
    assert_eq!(index.meta.rows, b.len() as u64);

    let (same, counts, _) = diff_snapshots_with(&spec, &a_batches, &a_batches, &compare).expect("A vs A");
    assert!(same.is_empty(), "diff(A, A) has changes: {:?}", same.counts());
    assert_eq!(counts.unchanged, a.len() as u64);

    let (again, _, _) = diff_against_index(&index, &b_batches).expect("B vs its index");
    assert!(again.is_empty(), "B against its own index has changes: {:?}", again.counts());
});
