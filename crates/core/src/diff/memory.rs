//! Diffing snapshots held in memory: the whole diff for inputs that fit (the wasm build, tests);
//! the native `highwater-diff` does the same bucket by bucket with bounded memory.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt64Type};
use arrow_array::{Array, Float64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::DataType;

use super::index::POSITION_COLUMN;
use super::{
    DiffCounts, DiffSpec, SnapshotHasher, SnapshotIndex, Tolerance, changed_columns, diff_sorted,
    diff_sorted_keeping_same, with_changed_columns,
};
use crate::change::{ChangeKind, ChangeSet};
use crate::error::{Error, Result};

/// How keys present in both snapshots are compared beyond their row hashes.
#[derive(Clone, Debug, Default)]
pub struct Compare {
    /// Columns compared by value within a tolerance; they must not be among the spec's hashed
    /// columns (ignore them there).
    pub tolerance: Vec<(String, Tolerance)>,
    /// Append `_changed_columns` to updates: the hashed columns whose values changed (needs
    /// `DiffSpec::column_hashes` on both sides) and the tolerance columns out of tolerance.
    pub changed_columns: bool,
}

/// Diffs a new snapshot held in memory against the index of the old one: the change set (full
/// new rows for inserts and updates, key values for deletes), the counts, and the new
/// snapshot's index.
pub fn diff_against_index(old: &SnapshotIndex, new: &[RecordBatch]) -> Result<(ChangeSet, DiffCounts, SnapshotIndex)> {
    diff_against_index_with(old, None, new, &Compare::default())
}

/// Diffs two snapshots held in memory.
pub fn diff_snapshots(spec: &DiffSpec, old: &[RecordBatch], new: &[RecordBatch]) -> Result<(ChangeSet, DiffCounts)> {
    let (changes, counts, _) = diff_snapshots_with(spec, old, new, &Compare::default())?;
    Ok((changes, counts))
}

/// [`diff_snapshots`] comparing as `compare` says; also returns the new snapshot's index.
pub fn diff_snapshots_with(
    spec: &DiffSpec,
    old: &[RecordBatch],
    new: &[RecordBatch],
    compare: &Compare,
) -> Result<(ChangeSet, DiffCounts, SnapshotIndex)> {
    let hasher = SnapshotHasher::new(spec)?;
    let positions = !compare.tolerance.is_empty();
    let old_index = SnapshotIndex::build_with(&hasher, old, positions)?;
    diff_against_index_with(&old_index, Some(old), new, compare)
}

/// [`diff_against_index`] comparing as `compare` says. A tolerance compares values, so it needs
/// `old_rows` (the rows `old` was built from, with positions), not only their index.
pub fn diff_against_index_with(
    old: &SnapshotIndex,
    old_rows: Option<&[RecordBatch]>,
    new: &[RecordBatch],
    compare: &Compare,
) -> Result<(ChangeSet, DiffCounts, SnapshotIndex)> {
    let spec = &old.meta.spec;
    let tolerant = !compare.tolerance.is_empty();
    let old_tolerant = if tolerant {
        for (column, _) in &compare.tolerance {
            if spec.columns.contains(column) || spec.key.contains(column) {
                return Err(Error::InvalidInput(format!(
                    "column `{column}` has a tolerance but is also hashed: leave it out of the compared columns"
                )));
            }
        }
        let rows = old_rows.filter(|_| old.schema.index_of(POSITION_COLUMN).is_ok()).ok_or_else(|| {
            Error::InvalidInput("a tolerance compares values: it needs the previous rows, not only their index".into())
        })?;
        floats(rows, &compare.tolerance)
    } else {
        Vec::new()
    };
    let hasher = SnapshotHasher::new(spec)?.with_families(&old.meta.families);
    let new_index = SnapshotIndex::build_with(&hasher, new, true)?;
    let new_tolerant = if tolerant { floats(new, &compare.tolerance) } else { Vec::new() };
    let mut changes = ChangeSet::new();
    let mut counts =
        DiffCounts { rows_before: old.meta.rows, rows_after: new_index.meta.rows, ..DiffCounts::default() };
    let mut inserts: Vec<u64> = Vec::new();
    let mut updates: Vec<(u64, Vec<String>)> = Vec::new();
    for (bucket, new_entries) in new_index.buckets.iter().enumerate() {
        let old_entries = old.bucket(bucket, new_index.meta.bucket_bits)?;
        let diff = if tolerant {
            diff_sorted_keeping_same(&old_entries, new_entries)?
        } else {
            diff_sorted(&old_entries, new_entries)?
        };
        let new_positions = positions(new_entries);
        let old_positions = positions(&old_entries);
        let at = |p: &Option<UInt64Array>, row: u32| p.as_ref().map_or(0, |p| p.value(row as usize));
        // The tolerance columns out of tolerance between an old and a new row.
        let beyond = |old_row: u32, new_row: u32| -> Vec<String> {
            let (old_at, new_at) = (at(&old_positions, old_row), at(&new_positions, new_row));
            compare
                .tolerance
                .iter()
                .enumerate()
                .filter(|(c, (_, tolerance))| {
                    !tolerance.accepts(value(&old_tolerant, old_at, *c), value(&new_tolerant, new_at, *c))
                })
                .map(|(_, (name, _))| name.clone())
                .collect()
        };
        counts.unchanged += diff.unchanged;
        inserts.extend(diff.inserts.iter().map(|r| at(&new_positions, *r)));
        for &(old_row, new_row) in &diff.updates {
            let mut columns = if compare.changed_columns {
                changed_columns(spec, &old_entries, old_row as usize, new_entries, new_row as usize).unwrap_or_default()
            } else {
                Vec::new()
            };
            if tolerant {
                columns.extend(beyond(old_row, new_row));
            }
            updates.push((at(&new_positions, new_row), columns));
        }
        for &(old_row, new_row) in &diff.same {
            let columns = beyond(old_row, new_row);
            if !columns.is_empty() {
                counts.unchanged -= 1;
                updates.push((at(&new_positions, new_row), columns));
            }
        }
        if !diff.deletes.is_empty() {
            let rows = UInt32Array::from(diff.deletes.clone());
            let keys: Vec<usize> = (0..old_entries.num_columns())
                .filter(|i| spec.key.contains(old_entries.schema().field(*i).name()))
                .collect();
            changes
                .push(ChangeKind::Delete, arrow_select::take::take_record_batch(&old_entries.project(&keys)?, &rows)?);
        }
    }
    counts.inserted = inserts.len() as u64;
    counts.updated = updates.len() as u64;
    counts.deleted = changes.batches(ChangeKind::Delete).iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
    inserts.sort_unstable();
    if let Some(batch) = gather(new, &inserts)? {
        changes.push(ChangeKind::Insert, batch);
    }
    updates.sort_unstable_by_key(|(position, _)| *position);
    let (positions, changed): (Vec<u64>, Vec<Vec<String>>) = updates.into_iter().unzip();
    if let Some(batch) = gather(new, &positions)? {
        let batch = if compare.changed_columns { with_changed_columns(&batch, &changed)? } else { batch };
        changes.push(ChangeKind::Update, batch);
    }
    Ok((changes, counts, new_index.without_positions()?))
}

fn positions(entries: &RecordBatch) -> Option<UInt64Array> {
    entries.column_by_name(POSITION_COLUMN).map(|c| c.as_primitive::<UInt64Type>().clone())
}

/// Per batch, per tolerance column: the values as floats (`None`: the batch lacks the column,
/// or it is not numeric).
fn floats(batches: &[RecordBatch], tolerance: &[(String, Tolerance)]) -> Vec<Vec<Option<Arc<Float64Array>>>> {
    batches
        .iter()
        .map(|batch| {
            tolerance
                .iter()
                .map(|(column, _)| batch.column_by_name(column).and_then(|a| as_f64(a.as_ref())).map(Arc::new))
                .collect()
        })
        .collect()
}

/// A numeric array as floats. Written out rather than `arrow_cast::cast`, whose every-type
/// kernel would triple the wasm module.
fn as_f64(array: &dyn Array) -> Option<Float64Array> {
    use arrow_array::types::{
        Decimal128Type, Float16Type, Float32Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
        UInt32Type, UInt64Type,
    };
    Some(match array.data_type() {
        DataType::Float64 => array.as_primitive::<Float64Type>().clone(),
        DataType::Float32 => array.as_primitive::<Float32Type>().unary(f64::from),
        DataType::Float16 => array.as_primitive::<Float16Type>().unary(|v| f64::from(v.to_f32())),
        DataType::Int8 => array.as_primitive::<Int8Type>().unary(f64::from),
        DataType::Int16 => array.as_primitive::<Int16Type>().unary(f64::from),
        DataType::Int32 => array.as_primitive::<Int32Type>().unary(f64::from),
        DataType::Int64 => array.as_primitive::<Int64Type>().unary(|v| v as f64),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().unary(f64::from),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().unary(f64::from),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().unary(f64::from),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().unary(|v| v as f64),
        DataType::Decimal128(_, scale) => {
            let divisor = 10f64.powi(i32::from(*scale));
            array.as_primitive::<Decimal128Type>().unary(|v| v as f64 / divisor)
        }
        _ => return None,
    })
}

/// The value at `position` (`batch << 32 | row`) of tolerance column `column`.
fn value(floats: &[Vec<Option<Arc<Float64Array>>>], position: u64, column: usize) -> Option<f64> {
    let (batch, row) = ((position >> 32) as usize, (position & 0xffff_ffff) as usize);
    let array = floats.get(batch)?.get(column)?.as_ref()?;
    (!array.is_null(row)).then(|| array.value(row))
}

/// Rows of `batches` at `positions` (`batch << 32 | row`, sorted): taken batch by batch and
/// concatenated (no copy of the unchanged rows; no `interleave`, a large kernel in wasm).
fn gather(batches: &[RecordBatch], positions: &[u64]) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else { return Ok(None) };
    if positions.is_empty() {
        return Ok(None);
    }
    let mut pieces = Vec::new();
    for run in positions.chunk_by(|a, b| a >> 32 == b >> 32) {
        let batch = &batches[(run[0] >> 32) as usize];
        let rows = UInt32Array::from_iter_values(run.iter().map(|p| (p & 0xffff_ffff) as u32));
        pieces.push(arrow_select::take::take_record_batch(batch, &rows)?);
    }
    if pieces.len() == 1 {
        return Ok(pieces.pop());
    }
    Ok(Some(arrow_select::concat::concat_batches(&first.schema(), &pieces)?))
}

#[cfg(test)]
mod tests {
    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    fn batch(ids: &[i64], price: &[f64], name: &[&str]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            ("price", Arc::new(Float64Array::from(price.to_vec())) as ArrayRef),
            ("name", Arc::new(StringArray::from(name.to_vec())) as ArrayRef),
        ])
        .unwrap()
    }

    fn update_ids_and_columns(changes: &ChangeSet) -> Vec<(i64, Vec<String>)> {
        let mut out = Vec::new();
        for batch in changes.batches(ChangeKind::Update) {
            let ids = batch.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>();
            let lists = batch.column_by_name(super::super::CHANGED_COLUMNS_COLUMN).unwrap().as_list::<i32>();
            for row in 0..batch.num_rows() {
                let names = lists.value(row);
                let names = names.as_string::<i32>();
                out.push((ids.value(row), names.iter().map(|n| n.unwrap().to_owned()).collect()));
            }
        }
        out
    }

    #[test]
    fn tolerance_and_changed_columns() {
        let old = batch(&[1, 2, 3, 4], &[10.0, 20.0, 30.0, 40.0], &["a", "b", "c", "d"]);
        // 1: price within tolerance; 2: price beyond; 3: name changes, price within; 4: both.
        let new = batch(&[1, 2, 3, 4], &[10.004, 20.5, 30.001, 41.0], &["a", "b", "x", "y"]);
        let mut spec = DiffSpec::for_schema(&old.schema(), &["id".into()], &["price".into()]).unwrap();
        spec.column_hashes = true;
        let compare = Compare {
            tolerance: vec![("price".into(), Tolerance { absolute: 0.01, relative: 0.0 })],
            changed_columns: true,
        };
        let (changes, counts, _) =
            diff_snapshots_with(&spec, std::slice::from_ref(&old), std::slice::from_ref(&new), &compare).unwrap();
        assert_eq!(
            update_ids_and_columns(&changes),
            [
                (2, vec!["price".to_owned()]),
                (3, vec!["name".to_owned()]),
                (4, vec!["name".to_owned(), "price".to_owned()])
            ]
        );
        assert_eq!((counts.updated, counts.unchanged), (3, 1));
        // Without the tolerance, the hashed price is not compared at all (ignored).
        let (changes, _) = diff_snapshots(&spec, std::slice::from_ref(&old), &[new]).unwrap();
        assert_eq!(changes.counts().updated, 2);
        // A tolerance needs the previous rows.
        let index = SnapshotIndex::build(&spec, &[old]).unwrap();
        let error = diff_against_index_with(&index, None, &[], &compare).unwrap_err();
        assert!(error.to_string().contains("needs the previous rows"), "{error}");
    }

    #[test]
    fn a_hashed_column_cannot_also_have_a_tolerance() {
        let old = batch(&[1], &[1.0], &["a"]);
        let spec = DiffSpec::for_schema(&old.schema(), &["id".into()], &[]).unwrap();
        let compare = Compare { tolerance: vec![("price".into(), Tolerance::default())], changed_columns: false };
        let error =
            diff_snapshots_with(&spec, std::slice::from_ref(&old), std::slice::from_ref(&old), &compare).unwrap_err();
        assert!(error.to_string().contains("also hashed"), "{error}");
    }
}
