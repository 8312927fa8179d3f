//! Row-hash spec v1: stable 128-bit hashes of rows, computed column-wise over a `RecordBatch`.
//!
//! ```text
//!   columns, in byte order of their names
//!   ┌──────────┬──────────┬──────────┐
//!   │ amount   │ id       │ name     │   per value: xxh3_64([tag, flag, canonical bytes],
//!   │ h(1.5)   │ h(7)     │ h(null)  │                      seed = xxh3_64(column name))
//!   └────┬─────┴────┬─────┴────┬─────┘
//!        └──────────┼──────────┘
//!                   ▼
//!   row hash = xxh3_128(h_amount.to_le_bytes() ++ h_id.to_le_bytes() ++ h_name.to_le_bytes())
//! ```
//!
//! # Guarantees
//! - **Stable**: the same values give the same hash on every platform (native and wasm32), in
//!   every version that implements spec v1. Nothing persisted depends on `ahash`, Rust's `Hash`
//!   or arrow's row format. The spec is written out in `docs/hash-spec.md` and pinned by golden
//!   vectors in `tests/golden/row_hash_v1.json`.
//! - **Layout-blind**: every integer width, every string layout (`Utf8`, `LargeUtf8`,
//!   `Utf8View`, dictionaries), timestamps of every unit and zone (as UTC instants), and decimals
//!   of every scale hash by value, not by representation.
//! - **Order-blind, position-aware**: reordering columns changes nothing (columns are taken in
//!   name order); moving a value to another column changes the hash (each column is seeded with
//!   its name), and so does a null moving between columns.
//! - **Separator-safe**: each column contributes a fixed-width 64-bit hash, and variable-width
//!   values are length-prefixed, so `("a", "bc")` and `("ab", "c")` differ.
//! - **Explicit**: a type without a canonical encoding, or a naive timestamp without a declared
//!   zone, is an error, never a guess.

mod canonical;
mod column;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use self::canonical::EncodeContext;
pub(crate) use self::canonical::{key_at, timestamp_raw};
use crate::error::{Error, Result};
use crate::zone::Zone;

/// The version of the row-hash spec this crate implements. Stored next to every persisted hash so
/// that a future spec forces a re-snapshot instead of a false diff.
pub const HASH_SPEC_VERSION: u32 = 1;

/// Options that change how values are read before hashing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashOptions {
    /// The zone in which naive (zone-less) timestamps were recorded, e.g. `"UTC"`,
    /// `"+02:00"` or `"Europe/Berlin"`. Without it a naive timestamp column is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naive_timezone: Option<String>,
}

impl HashOptions {
    /// Options that read naive timestamps in `zone`.
    pub fn with_naive_timezone(zone: impl Into<String>) -> Self {
        HashOptions { naive_timezone: Some(zone.into()) }
    }

    /// The declared zone of naive timestamps, parsed.
    pub fn zone(&self) -> Result<Option<Zone>> {
        self.naive_timezone.as_deref().map(Zone::parse).transpose()
    }
}

/// The seed of a column's value hashes: the xxh3-64 of its name's UTF-8 bytes.
pub fn column_seed(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

/// Hashes rows of record batches over a fixed set of columns.
///
/// ```
/// use std::sync::Arc;
/// use highwater_core::arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
/// use highwater_core::hash::{HashOptions, RowHasher};
///
/// let hasher = RowHasher::new(["id", "name"], &HashOptions::default())?;
/// let a = RecordBatch::try_from_iter([
///     ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
///     ("name", Arc::new(StringArray::from(vec!["ada", "alan"])) as _),
/// ])?;
/// // Same values, other column order, other integer width: same hashes.
/// let b = RecordBatch::try_from_iter([
///     ("name", Arc::new(StringArray::from(vec!["ada", "alan"])) as _),
///     ("id", Arc::new(Int32Array::from(vec![1, 2])) as _),
/// ])?;
/// assert_eq!(hasher.hash_batch(&a)?.rows(), hasher.hash_batch(&b)?.rows());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RowHasher {
    /// Sorted by the byte order of the names.
    columns: Vec<HashedColumn>,
    naive_zone: Option<Zone>,
}

#[derive(Clone, Debug)]
struct HashedColumn {
    name: String,
    seed: u64,
}

impl RowHasher {
    /// A hasher over the named columns (any order; they are hashed in name order).
    pub fn new<I, S>(columns: I, options: &HashOptions) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut columns: Vec<HashedColumn> = columns
            .into_iter()
            .map(|name| HashedColumn { name: name.as_ref().to_owned(), seed: column_seed(name.as_ref()) })
            .collect();
        columns.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        if let Some(pair) = columns.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(Error::DuplicateColumn { column: pair[0].name.clone() });
        }
        Ok(RowHasher { columns, naive_zone: options.zone()? })
    }

    /// A hasher over every column of `schema` except those in `except`, checked against it.
    pub fn for_schema(schema: &Schema, except: &[&str], options: &HashOptions) -> Result<Self> {
        for name in except {
            if schema.index_of(name).is_err() {
                return Err(Error::column_not_found(name, schema.fields().iter().map(|f| f.name())));
            }
        }
        let names = schema.fields().iter().map(|f| f.name().as_str()).filter(|name| !except.contains(name));
        let hasher = RowHasher::new(names, options)?;
        hasher.check_schema(schema)?;
        Ok(hasher)
    }

    /// The hashed columns in hashing (name) order.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Checks that `schema` has every hashed column with a type spec v1 encodes.
    pub fn check_schema(&self, schema: &Schema) -> Result<()> {
        for column in &self.columns {
            let field = schema
                .field_with_name(&column.name)
                .map_err(|_| Error::column_not_found(&column.name, schema.fields().iter().map(|f| f.name())))?;
            canonical::check_supported(&column.name, field.data_type(), self.naive_zone.as_ref())?;
        }
        Ok(())
    }

    /// Hashes every row of `batch`.
    pub fn hash_batch(&self, batch: &RecordBatch) -> Result<RowHashes> {
        let mut hashes = RowHashes::default();
        self.hash_batch_into(batch, &mut hashes)?;
        Ok(hashes)
    }

    /// Hashes every row of `batch` into `out`, reusing its allocations.
    pub fn hash_batch_into(&self, batch: &RecordBatch, out: &mut RowHashes) -> Result<()> {
        let rows = batch.num_rows();
        let width = self.columns.len();
        let stride = width * 8;
        out.rows.clear();
        // Every position is written below: a buffer reused at the same size is not zeroed again.
        out.value_hashes.resize(rows * stride, 0);
        out.num_columns = width;
        let schema = batch.schema();
        for (index, column) in self.columns.iter().enumerate() {
            let array = batch
                .column_by_name(&column.name)
                .ok_or_else(|| Error::column_not_found(&column.name, schema.fields().iter().map(|f| f.name())))?;
            canonical::check_supported(&column.name, array.data_type(), self.naive_zone.as_ref())?;
            let context = EncodeContext { column: &column.name, naive_zone: self.naive_zone.as_ref() };
            // Row-major: each row's value hashes end up contiguous, ready for the row hash.
            let target = &mut out.value_hashes;
            column::hash_column(array.as_ref(), column.seed, &context, &mut |row, hash| {
                let at = row * stride + index * 8;
                target[at..at + 8].copy_from_slice(&hash.to_le_bytes());
            })?;
        }
        out.rows.extend((0..rows).map(|row| xxh3_128(&out.value_hashes[row * stride..(row + 1) * stride])));
        Ok(())
    }
}

/// Row hashes of one batch, with the value hashes they were combined from.
#[derive(Clone, Debug, Default)]
pub struct RowHashes {
    rows: Vec<u128>,
    /// Row-major little-endian value hashes: row `i`, column `j` at `(i * num_columns + j) * 8`.
    value_hashes: Vec<u8>,
    num_columns: usize,
}

impl RowHashes {
    /// One 128-bit hash per row.
    pub fn rows(&self) -> &[u128] {
        &self.rows
    }

    /// Consumes the hashes, keeping only the row hashes.
    pub fn into_rows(self) -> Vec<u128> {
        self.rows
    }

    /// The 64-bit value hash of `row` in the `column`-th hashed column (in name order).
    pub fn value_hash(&self, row: usize, column: usize) -> u64 {
        let at = (row * self.num_columns + column) * 8;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.value_hashes[at..at + 8]);
        u64::from_le_bytes(bytes)
    }

    /// The 64-bit value hashes of the `column`-th hashed column (in name order).
    pub fn column(&self, column: usize) -> Vec<u64> {
        (0..self.rows.len()).map(|row| self.value_hash(row, column)).collect()
    }

    /// The number of hashed columns.
    pub fn num_columns(&self) -> usize {
        self.num_columns
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The spec-v1 type family (tag) of a data type, or `None` when the spec does not encode it.
pub fn family_of(data_type: &DataType) -> Option<u8> {
    canonical::family_tag(data_type)
}

/// A data type of family `family`: a null of it hashes like a null of any type of the family.
pub fn representative_type(family: u8) -> DataType {
    canonical::representative_type(family)
}

/// The canonical bytes of `array[row]` under spec v1 (`[tag, flag] ++ value`), for debugging and
/// for re-implementations that want to compare step by step.
pub fn canonical_bytes(array: &dyn Array, row: usize, options: &HashOptions) -> Result<Vec<u8>> {
    let zone = options.zone()?;
    let context = EncodeContext { column: "value", naive_zone: zone.as_ref() };
    canonical::check_supported(context.column, array.data_type(), zone.as_ref())?;
    let mut out = Vec::new();
    canonical::encode_value(array, row, &context, &mut out)?;
    Ok(out)
}
