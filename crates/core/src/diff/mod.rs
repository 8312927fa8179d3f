//! Snapshot diff: what changed between two snapshots of a keyed table, by key fingerprint and
//! row hash.
//!
//! ```text
//! snapshot ─► per row: key fingerprint (spec v1, null-safe), row hash of the compared columns
//!          ─► entries (fingerprint, row hash, [column hashes], key values), bucketed by the
//!             fingerprint's top bits and sorted ─► merge-join with the other side, bucket by bucket
//!          ─► inserts (only new), updates (both, hashes differ), deletes (only old)
//! ```
//!
//! The entries of a snapshot, stored, are its **snapshot index** ([`index`]): the next run
//! diffs the next snapshot against it without reading the old one again. Native crates and the
//! wasm build produce the same index bytes from the same rows.
//!
//! # Guarantees
//! - Null-safe: a value turning null (or back) is a change; a value moving to another column
//!   of the same type is a change; column order, `Dictionary` vs plain encoding and `Utf8` vs
//!   `LargeUtf8` are not (row-hash spec v1).
//! - A key appearing twice in one snapshot is an error naming its values; a null key is an
//!   error unless null keys are allowed.
//! - Applying the change set of (A, B) to A gives B (a property test checks it).

pub mod index;
mod memory;
mod quantize;
mod tolerance;

use std::sync::Arc;

use arrow_array::builder::FixedSizeBinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, RecordBatch, UInt32Array, UInt64Array};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

pub use index::{IndexMeta, SnapshotIndex, bucket_bits};
pub use memory::{Compare, diff_against_index, diff_against_index_with, diff_snapshots, diff_snapshots_with};
pub use quantize::Quantize;
pub use tolerance::Tolerance;

use crate::error::{Error, Result};
use crate::hash::{HashOptions, RowHasher, RowHashes};
use crate::key::{KeyFingerprint, KeyHasher, KeyOptions, bucket_of, describe_row};

/// The fingerprint column of index entries.
pub const FINGERPRINT_COLUMN: &str = "fingerprint";
/// The row-hash column of index entries.
pub const ROW_HASH_COLUMN: &str = "row_hash";
/// The per-column hashes of index entries (when kept).
pub const COLUMN_HASHES_COLUMN: &str = "column_hashes";

/// What snapshots are compared by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffSpec {
    /// The key columns.
    pub key: Vec<String>,
    /// The compared columns, in hashing (name) order; the key is not among them.
    pub columns: Vec<String>,
    /// Rounding applied before hashing.
    #[serde(default)]
    pub quantize: Quantize,
    /// Keep one 64-bit hash per compared column, so that updates can name their changed columns.
    #[serde(default)]
    pub column_hashes: bool,
    /// How values are read (the zone of naive timestamps).
    #[serde(default)]
    pub hash: HashOptions,
    /// Treat a null key as a value instead of an error.
    #[serde(default)]
    pub allow_null_keys: bool,
}

impl DiffSpec {
    /// Compares every column of `schema` except the key and `ignore`.
    pub fn for_schema(schema: &Schema, key: &[String], ignore: &[String]) -> Result<Self> {
        for name in key.iter().chain(ignore) {
            if schema.index_of(name).is_err() {
                return Err(Error::column_not_found(name, schema.fields().iter().map(|f| f.name())));
            }
        }
        let mut columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| !key.contains(name) && !ignore.contains(name))
            .collect();
        columns.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(DiffSpec {
            key: key.to_vec(),
            columns,
            quantize: Quantize::default(),
            column_hashes: false,
            hash: HashOptions::default(),
            allow_null_keys: false,
        })
    }
}

/// The key fingerprints and row hashes of one batch.
#[derive(Clone, Debug)]
pub struct Hashed {
    /// One fingerprint per row.
    pub fingerprints: Vec<KeyFingerprint>,
    /// One row hash (and the value hashes) per row.
    pub rows: RowHashes,
}

/// Computes fingerprints, row hashes and index entries of a snapshot's batches.
#[derive(Clone, Debug)]
pub struct SnapshotHasher {
    spec: DiffSpec,
    keys: KeyHasher,
    rows: RowHasher,
    /// The family of each compared column, when known (a column missing from a batch hashes as
    /// a null of its family).
    families: Vec<Option<u8>>,
}

impl SnapshotHasher {
    /// A hasher for `spec`.
    pub fn new(spec: &DiffSpec) -> Result<Self> {
        let keys =
            KeyHasher::new(&spec.key, &KeyOptions { allow_null_keys: spec.allow_null_keys, hash: spec.hash.clone() })?;
        let rows = RowHasher::new(&spec.columns, &spec.hash)?;
        let mut spec = spec.clone();
        spec.columns = rows.columns().map(str::to_owned).collect();
        let families = vec![None; spec.columns.len()];
        Ok(SnapshotHasher { spec, keys, rows, families })
    }

    /// The same, told the family of each compared column (from an index), so that a column a
    /// batch lacks hashes as a null of that family.
    #[must_use]
    pub fn with_families(mut self, families: &[u8]) -> Self {
        self.families = families.iter().map(|f| Some(*f)).collect();
        self
    }

    /// The spec, with the compared columns in hashing order.
    pub fn spec(&self) -> &DiffSpec {
        &self.spec
    }

    /// The families of the compared columns in `schema` (0 for a column it lacks).
    pub fn families(&self, schema: &Schema) -> Vec<u8> {
        self.spec
            .columns
            .iter()
            .map(|c| schema.field_with_name(c).ok().and_then(|f| crate::hash::family_of(f.data_type())).unwrap_or(0))
            .collect()
    }

    /// `batch` quantised, with compared columns it lacks added as nulls of their family.
    fn prepare(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let batch = self.spec.quantize.apply(batch)?;
        let missing: Vec<(usize, &String)> =
            self.spec.columns.iter().enumerate().filter(|(_, c)| batch.column_by_name(c).is_none()).collect();
        if missing.is_empty() {
            return Ok(batch);
        }
        let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = batch.columns().to_vec();
        for (index, name) in missing {
            let Some(family) = self.families.get(index).copied().flatten() else {
                return Err(Error::column_not_found(name, batch.schema().fields().iter().map(|f| f.name())));
            };
            let data_type = crate::hash::representative_type(family);
            fields.push(Field::new(name, data_type.clone(), true));
            columns.push(arrow_array::new_null_array(&data_type, batch.num_rows()));
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?)
    }

    /// Fingerprints and row hashes of `batch` (null keys are errors unless allowed).
    pub fn hash(&self, batch: &RecordBatch) -> Result<Hashed> {
        let mut hashed = Hashed { fingerprints: Vec::new(), rows: RowHashes::default() };
        self.hash_into(batch, &mut hashed)?;
        Ok(hashed)
    }

    /// The same into `out`, reusing its buffers (a hashing thread keeps one).
    pub fn hash_into(&self, batch: &RecordBatch, out: &mut Hashed) -> Result<()> {
        let prepared = self.prepare(batch)?;
        self.keys.check_nulls(batch)?;
        out.fingerprints = self.keys.fingerprints(batch)?;
        self.rows.hash_batch_into(&prepared, &mut out.rows)
    }

    /// The entry columns every index has: fingerprint, row hash, [column hashes].
    pub fn fixed_entry_schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new(FINGERPRINT_COLUMN, DataType::FixedSizeBinary(16), false),
            Field::new(ROW_HASH_COLUMN, DataType::FixedSizeBinary(16), false),
        ];
        if self.spec.column_hashes {
            fields.push(column_hashes_field(self.spec.columns.len()));
        }
        Arc::new(Schema::new(fields))
    }

    /// The schema of this spec's index entries over a snapshot of `schema`.
    pub fn entry_schema(&self, schema: &Schema) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = self.fixed_entry_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        for key in &self.spec.key {
            let field = schema
                .field_with_name(key)
                .map_err(|_| Error::column_not_found(key, schema.fields().iter().map(|f| f.name())))?;
            fields.push(field.clone());
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The index entries of `batch`: fingerprint, row hash, [column hashes], key values.
    pub fn entries(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let hashed = self.hash(batch)?;
        self.entries_of(batch, &hashed)
    }

    /// The index entries of `batch`, whose hashes are `hashed`.
    pub fn entries_of(&self, batch: &RecordBatch, hashed: &Hashed) -> Result<RecordBatch> {
        let schema = self.entry_schema(&batch.schema())?;
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(fixed16(&hashed.fingerprints)), Arc::new(fixed16(hashed.rows.rows()))];
        if self.spec.column_hashes {
            columns.push(Arc::new(column_hashes(&hashed.rows)?));
        }
        for key in &self.spec.key {
            columns.push(Arc::clone(
                batch
                    .column_by_name(key)
                    .ok_or_else(|| Error::column_not_found(key, batch.schema().fields().iter().map(|f| f.name())))?,
            ));
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(schema, columns, &options)?)
    }
}

fn column_hashes_field(width: usize) -> Field {
    Field::new(
        COLUMN_HASHES_COLUMN,
        DataType::FixedSizeList(Arc::new(Field::new("item", DataType::UInt64, false)), width as i32),
        false,
    )
}

fn column_hashes(rows: &RowHashes) -> Result<FixedSizeListArray> {
    let width = rows.num_columns();
    let values: Vec<u64> = (0..rows.len())
        .flat_map(|row| (0..width).map(move |column| (row, column)))
        .map(|(r, c)| rows.value_hash(r, c))
        .collect();
    // With no compared column the lists are empty: the length must be given, not derived.
    Ok(FixedSizeListArray::try_new_with_length(
        Arc::new(Field::new("item", DataType::UInt64, false)),
        width as i32,
        Arc::new(UInt64Array::from(values)),
        None,
        rows.len(),
    )?)
}

/// 128-bit values as a `FixedSizeBinary(16)` array, big-endian (byte order = numeric order).
pub fn fixed16(values: &[u128]) -> FixedSizeBinaryArray {
    let mut bytes = Vec::with_capacity(values.len() * 16);
    for value in values {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    FixedSizeBinaryArray::new(16, Buffer::from_vec(bytes), None)
}

/// The values of a `FixedSizeBinary(16)` array written by [`fixed16`].
pub fn values16(array: &dyn Array) -> Result<Vec<u128>> {
    let Some(array) = array.as_fixed_size_binary_opt() else {
        return Err(Error::InvalidInput(format!("expected FixedSizeBinary(16), found {}", array.data_type())));
    };
    if array.value_length() != 16 {
        return Err(Error::InvalidInput(format!("expected FixedSizeBinary(16), found {}", array.data_type())));
    }
    Ok(array.values().chunks_exact(16).map(|chunk| u128::from_be_bytes(chunk.try_into().unwrap_or([0; 16]))).collect())
}

/// Sorts entries (of one bucket, or all) by fingerprint. A fingerprint twice — a key twice in
/// one snapshot — is an error naming the key values (`side` names the snapshot: `the new
/// snapshot`).
pub fn sort_entries(schema: &SchemaRef, entries: &[RecordBatch], key: &[String], side: &str) -> Result<RecordBatch> {
    // (fingerprint, row hash, part, row) sorted inline: comparisons read no other memory, the two
    // 16-byte columns are built straight from the sorted tuples, and the other columns are
    // gathered once (not concatenated, then taken).
    let rows: usize = entries.iter().map(RecordBatch::num_rows).sum();
    let mut order: Vec<(u128, u128, u32, u32)> = Vec::with_capacity(rows);
    for (part, batch) in entries.iter().enumerate() {
        let fingerprints = values16(batch.column(0).as_ref())?;
        let hashes = values16(batch.column(1).as_ref())?;
        order.extend(
            fingerprints.into_iter().zip(hashes).enumerate().map(|(row, (f, h))| (f, h, part as u32, row as u32)),
        );
    }
    order.sort_unstable_by_key(|entry| entry.0);
    if let Some(pair) = order.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        let (fingerprint, _, part, row) = pair[0];
        return Err(Error::DuplicateKey {
            key: describe_row(&entries[part as usize], row as usize, key),
            side: side.to_owned(),
            fingerprint,
        });
    }
    if rows == 0 {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    if entries.len() == 1 && order.iter().enumerate().all(|(i, entry)| entry.3 as usize == i) {
        return Ok(RecordBatch::try_new(Arc::clone(schema), entries[0].columns().to_vec())?);
    }
    let fingerprints: Vec<u128> = order.iter().map(|entry| entry.0).collect();
    let hashes: Vec<u128> = order.iter().map(|entry| entry.1).collect();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(fixed16(&fingerprints)), Arc::new(fixed16(&hashes))];
    drop((fingerprints, hashes));
    let at: Vec<(usize, usize)> = order.iter().map(|entry| (entry.2 as usize, entry.3 as usize)).collect();
    drop(order);
    for column in 2..schema.fields().len() {
        let parts: Vec<&dyn Array> = entries.iter().map(|batch| batch.column(column).as_ref()).collect();
        columns.push(arrow_select::interleave::interleave(&parts, &at)?);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Splits entries into `2^bits` buckets by fingerprint: `(bucket, rows)` for non-empty ones.
pub fn split_entries(entries: &RecordBatch, bits: u32) -> Result<Vec<(usize, RecordBatch)>> {
    if bits == 0 {
        return Ok(vec![(0, entries.clone())]);
    }
    let fingerprints = values16(entries.column(0).as_ref())?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); 1 << bits];
    for (row, fingerprint) in fingerprints.iter().enumerate() {
        rows[bucket_of(*fingerprint, bits)].push(row as u32);
    }
    rows.into_iter()
        .enumerate()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(bucket, rows)| Ok((bucket, arrow_select::take::take_record_batch(entries, &UInt32Array::from(rows))?)))
        .collect()
}

/// How one bucket's keys compare: rows of the old and new (sorted) entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketDiff {
    /// Rows of `new` whose key `old` lacks.
    pub inserts: Vec<u32>,
    /// `(old row, new row)` of keys in both whose row hashes differ.
    pub updates: Vec<(u32, u32)>,
    /// Rows of `old` whose key `new` lacks.
    pub deletes: Vec<u32>,
    /// Keys in both with equal row hashes.
    pub unchanged: u64,
    /// `(old row, new row)` of those unchanged keys, from [`diff_sorted_keeping_same`] only.
    pub same: Vec<(u32, u32)>,
}

/// Merge-joins two sorted entry batches (of the same bucket) by fingerprint.
pub fn diff_sorted(old: &RecordBatch, new: &RecordBatch) -> Result<BucketDiff> {
    merge_join(old, new, false)
}

/// [`diff_sorted`], also listing the row pairs of unchanged keys (to compare them otherwise,
/// e.g. within a [`Tolerance`]).
pub fn diff_sorted_keeping_same(old: &RecordBatch, new: &RecordBatch) -> Result<BucketDiff> {
    merge_join(old, new, true)
}

fn merge_join(old: &RecordBatch, new: &RecordBatch, keep_same: bool) -> Result<BucketDiff> {
    let (old_keys, old_rows) = (values16(old.column(0).as_ref())?, values16(old.column(1).as_ref())?);
    let (new_keys, new_rows) = (values16(new.column(0).as_ref())?, values16(new.column(1).as_ref())?);
    let mut diff = BucketDiff::default();
    let (mut i, mut j) = (0, 0);
    while i < old_keys.len() || j < new_keys.len() {
        match (old_keys.get(i), new_keys.get(j)) {
            (Some(a), Some(b)) if a == b => {
                if old_rows[i] == new_rows[j] {
                    diff.unchanged += 1;
                    if keep_same {
                        diff.same.push((i as u32, j as u32));
                    }
                } else {
                    diff.updates.push((i as u32, j as u32));
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                diff.deletes.push(i as u32);
                i += 1;
            }
            (Some(_), None) => {
                diff.deletes.push(i as u32);
                i += 1;
            }
            _ => {
                diff.inserts.push(j as u32);
                j += 1;
            }
        }
    }
    Ok(diff)
}

/// The compared columns whose value hashes differ between two entries with column hashes.
pub fn changed_columns(
    spec: &DiffSpec,
    old: &RecordBatch,
    old_row: usize,
    new: &RecordBatch,
    new_row: usize,
) -> Option<Vec<String>> {
    let old = old.column_by_name(COLUMN_HASHES_COLUMN)?.as_fixed_size_list();
    let new = new.column_by_name(COLUMN_HASHES_COLUMN)?.as_fixed_size_list();
    let (old, new) = (old.value(old_row), new.value(new_row));
    let (old, new) =
        (old.as_primitive::<arrow_array::types::UInt64Type>(), new.as_primitive::<arrow_array::types::UInt64Type>());
    Some(
        spec.columns
            .iter()
            .enumerate()
            .filter(|(i, _)| old.values().get(*i) != new.values().get(*i))
            .map(|(_, c)| c.clone())
            .collect(),
    )
}

/// The column listing an update's changed columns (with `changed_columns`).
pub const CHANGED_COLUMNS_COLUMN: &str = "_changed_columns";

/// The type of [`CHANGED_COLUMNS_COLUMN`]: a list of column names.
pub fn changed_columns_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, false)))
}

/// `rows` with [`CHANGED_COLUMNS_COLUMN`] appended: `changed[i]` for row `i`.
pub fn with_changed_columns(rows: &RecordBatch, changed: &[Vec<String>]) -> Result<RecordBatch> {
    let mut builder = arrow_array::builder::ListBuilder::new(arrow_array::builder::StringBuilder::new())
        .with_field(Arc::new(Field::new("item", DataType::Utf8, false)));
    for columns in changed {
        for column in columns {
            builder.values().append_value(column);
        }
        builder.append(true);
    }
    let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let list: ArrayRef = Arc::new(builder.finish());
    fields.push(Field::new(CHANGED_COLUMNS_COLUMN, list.data_type().clone(), false));
    let mut columns = rows.columns().to_vec();
    columns.push(list);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// Counts of a diff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffCounts {
    /// Rows of the old snapshot.
    pub rows_before: u64,
    /// Rows of the new snapshot.
    pub rows_after: u64,
    /// Keys only in the new snapshot.
    pub inserted: u64,
    /// Keys in both, changed.
    pub updated: u64,
    /// Keys only in the old snapshot.
    pub deleted: u64,
    /// Keys in both, unchanged.
    pub unchanged: u64,
}

/// A builder of `FixedSizeBinary(16)` arrays (for callers assembling entries themselves).
pub fn fixed16_builder(capacity: usize) -> FixedSizeBinaryBuilder {
    FixedSizeBinaryBuilder::with_capacity(capacity, 16)
}

#[cfg(test)]
mod tests {
    use arrow_array::{Float64Array, Int64Array, StringArray};

    use super::*;
    use crate::change::{ChangeKind, ChangeSet};

    fn batch(ids: &[i64], a: &[Option<&str>], b: &[Option<&str>]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            ("a", Arc::new(StringArray::from(a.to_vec())) as ArrayRef),
            ("b", Arc::new(StringArray::from(b.to_vec())) as ArrayRef),
        ])
        .unwrap()
    }

    fn ids(changes: &ChangeSet, kind: ChangeKind) -> Vec<i64> {
        let mut ids: Vec<i64> = changes
            .batches(kind)
            .iter()
            .flat_map(|b| {
                b.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>().values().to_vec()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    fn spec() -> DiffSpec {
        DiffSpec::for_schema(&batch(&[], &[], &[]).schema(), &["id".into()], &[]).unwrap()
    }

    #[test]
    fn inserts_updates_deletes_null_safe_and_moves() {
        let old = batch(
            &[1, 2, 3, 4, 5],
            &[Some("x"), Some("y"), None, Some("m"), Some("k")],
            &[None, Some("y"), Some("z"), None, Some("k")],
        );
        // 1: null -> value; 2: unchanged; 3: deleted; 4: value moves from a to b; 6: new.
        let new = batch(
            &[6, 1, 2, 4, 5],
            &[Some("n"), Some("x"), Some("y"), None, Some("k")],
            &[None, Some("v"), Some("y"), Some("m"), Some("k")],
        );
        let (changes, counts) = diff_snapshots(&spec(), &[old], &[new]).unwrap();
        assert_eq!(ids(&changes, ChangeKind::Insert), [6]);
        assert_eq!(ids(&changes, ChangeKind::Update), [1, 4]);
        assert_eq!(ids(&changes, ChangeKind::Delete), [3]);
        assert_eq!((counts.unchanged, counts.rows_before, counts.rows_after), (2, 5, 5));
    }

    #[test]
    fn reordered_columns_and_dictionaries_are_no_change() {
        let old = batch(&[1, 2], &[Some("x"), None], &[Some("p"), Some("q")]);
        let dictionary: arrow_array::DictionaryArray<arrow_array::types::Int32Type> =
            vec![Some("p"), Some("q")].into_iter().collect();
        let new = RecordBatch::try_from_iter([
            ("b", Arc::new(dictionary) as ArrayRef),
            ("a", Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef),
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ])
        .unwrap();
        let (changes, counts) = diff_snapshots(&spec(), &[old], &[new]).unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(counts.unchanged, 2);
    }

    #[test]
    fn floats_negative_zero_and_nan() {
        let floats = |values: Vec<f64>| {
            RecordBatch::try_from_iter([
                ("id", Arc::new(Int64Array::from_iter_values(1..=values.len() as i64)) as ArrayRef),
                ("x", Arc::new(Float64Array::from(values)) as ArrayRef),
            ])
            .unwrap()
        };
        let spec = DiffSpec::for_schema(&floats(vec![]).schema(), &["id".into()], &[]).unwrap();
        let (changes, _) =
            diff_snapshots(&spec, &[floats(vec![0.0, f64::NAN, 1.0])], &[floats(vec![-0.0, -f64::NAN, 1.0 + 1e-15])])
                .unwrap();
        // -0.0 = 0.0 and every NaN is one NaN (spec v1); the smallest real change is a change.
        assert_eq!(ids(&changes, ChangeKind::Update), [3]);
        let quantized = DiffSpec {
            quantize: Quantize { decimals: [("x".into(), 6)].into_iter().collect(), ..Quantize::default() },
            ..spec
        };
        let (changes, _) =
            diff_snapshots(&quantized, &[floats(vec![0.0, 1.0, 1.0])], &[floats(vec![0.0, 1.0, 1.0 + 1e-9])]).unwrap();
        assert!(changes.is_empty());
    }

    #[test]
    fn duplicate_and_null_keys_are_errors() {
        let twice = batch(&[1, 2, 1], &[Some("x"), Some("y"), Some("z")], &[None, None, None]);
        let error = diff_snapshots(&spec(), std::slice::from_ref(&twice), &[]).unwrap_err();
        assert!(error.to_string().contains("id=1") && error.to_string().contains("twice"), "{error}");
        let error = diff_snapshots(&spec(), &[], &[twice]).unwrap_err();
        assert!(error.to_string().contains("id=1"), "{error}");
        let null_key = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
            ("a", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ])
        .unwrap();
        assert!(matches!(diff_snapshots(&spec(), &[null_key], &[]).unwrap_err(), Error::NullKey { .. }));
    }

    #[test]
    fn an_index_round_trips_and_reslices_its_buckets() {
        let rows: Vec<i64> = (0..200_000).collect();
        let names: Vec<Option<String>> = rows.iter().map(|i| Some(format!("n{i}"))).collect();
        let big = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(rows.clone())) as ArrayRef),
            ("a", Arc::new(StringArray::from(names.clone())) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec![None::<&str>; rows.len()])) as ArrayRef),
        ])
        .unwrap();
        let index = SnapshotIndex::build(&spec(), &[big.slice(0, 100_000), big.slice(100_000, 100_000)]).unwrap();
        assert_eq!((index.meta.rows, index.meta.bucket_bits, index.buckets.len()), (200_000, 2, 4));
        let bytes = index.to_bytes().unwrap();
        let again = SnapshotIndex::build(&spec(), &[big]).unwrap();
        assert_eq!(again.to_bytes().unwrap(), bytes, "the same rows give the same bytes, however batched");
        let read = SnapshotIndex::from_bytes(&bytes).unwrap();
        assert_eq!(read.meta, index.meta);
        let total: usize = (0..8).map(|b| read.bucket(b, 3).unwrap().num_rows()).sum();
        assert_eq!(total, 200_000);
        assert_eq!(read.bucket(0, 0).unwrap().num_rows(), 200_000);
        assert!(SnapshotIndex::from_bytes(b"not an index").is_err());
    }
}
