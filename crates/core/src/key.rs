//! Composite primary keys and their 128-bit fingerprints.
//!
//! A key fingerprint is the spec-v1 row hash of the key columns alone (see [`crate::hash`]): the
//! same canonical encoding, so `Int32` and `Int64` ids, or `Utf8` and dictionary-encoded names,
//! give the same fingerprint, and composite keys cannot collide through separators
//! (`("123-", "456")` ≠ `("123", "-456")`).
//!
//! # Guarantees
//! - A null in a key column is an error naming the column and row, unless null keys are allowed
//!   explicitly; then null is a value like any other (null-safe equality).
//! - Fingerprints are stable across platforms and versions of spec v1; their high bits pick a
//!   key's bucket ([`bucket_of`]), so bucketed state is partitioned identically everywhere.

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::{HashOptions, RowHasher};

/// A key fingerprint: the spec-v1 hash of a row's key columns.
pub type KeyFingerprint = u128;

/// How keys are read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOptions {
    /// Treat null as an ordinary key value instead of an error.
    #[serde(default)]
    pub allow_null_keys: bool,
    /// How key values are read (the zone of naive timestamps).
    #[serde(default)]
    pub hash: HashOptions,
}

/// Computes key fingerprints of batches for one (possibly composite) primary key.
///
/// ```
/// use std::sync::Arc;
/// use highwater_core::arrow::array::{RecordBatch, StringArray};
/// use highwater_core::key::{KeyHasher, KeyOptions};
///
/// let key = KeyHasher::new(["a", "b"], &KeyOptions::default())?;
/// let batch = RecordBatch::try_from_iter([
///     ("a", Arc::new(StringArray::from(vec!["123-", "123"])) as _),
///     ("b", Arc::new(StringArray::from(vec!["456", "-456"])) as _),
/// ])?;
/// let fingerprints = key.fingerprints(&batch)?;
/// assert_ne!(fingerprints[0], fingerprints[1]); // "123-456" twice, yet different keys
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyHasher {
    /// As declared by the user: the order in which key values are shown.
    columns: Vec<String>,
    hasher: RowHasher,
    allow_null_keys: bool,
}

impl KeyHasher {
    /// A key of the given columns; at least one is required.
    pub fn new<I, S>(columns: I, options: &KeyOptions) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let columns: Vec<String> = columns.into_iter().map(|c| c.as_ref().to_owned()).collect();
        if columns.is_empty() {
            return Err(Error::InvalidInput("a primary key needs at least one column".into()));
        }
        let hasher = RowHasher::new(&columns, &options.hash)?;
        Ok(KeyHasher { columns, hasher, allow_null_keys: options.allow_null_keys })
    }

    /// The key columns in declared order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Checks that `schema` holds every key column with a hashable type.
    pub fn check_schema(&self, schema: &arrow_schema::Schema) -> Result<()> {
        self.hasher.check_schema(schema)
    }

    /// Fails on the first null key value unless null keys are allowed.
    pub fn check_nulls(&self, batch: &RecordBatch) -> Result<()> {
        if self.allow_null_keys {
            return Ok(());
        }
        for column in &self.columns {
            let array = batch
                .column_by_name(column)
                .ok_or_else(|| Error::column_not_found(column, batch.schema().fields().iter().map(|f| f.name())))?;
            if let Some(nulls) = array.logical_nulls().filter(|n| n.null_count() > 0) {
                let row = (0..array.len()).find(|&row| nulls.is_null(row)).unwrap_or_default();
                return Err(Error::NullKey { column: column.clone(), row });
            }
        }
        Ok(())
    }

    /// One fingerprint per row of `batch`.
    pub fn fingerprints(&self, batch: &RecordBatch) -> Result<Vec<KeyFingerprint>> {
        self.check_nulls(batch)?;
        Ok(self.hasher.hash_batch(batch)?.into_rows())
    }

    /// The key of `batch[row]` as `col=value` pairs, for messages.
    pub fn describe(&self, batch: &RecordBatch, row: usize) -> String {
        describe_row(batch, row, &self.columns)
    }
}

/// `col=value, col=value` for the given columns of `batch[row]`, for error messages.
pub fn describe_row(batch: &RecordBatch, row: usize, columns: &[impl AsRef<str>]) -> String {
    let options = FormatOptions::default().with_null("null");
    columns
        .iter()
        .map(|column| {
            let column = column.as_ref();
            let value = batch
                .column_by_name(column)
                .filter(|array| row < array.len())
                .and_then(|array| {
                    ArrayFormatter::try_new(array.as_ref(), &options).ok().map(|f| f.value(row).to_string())
                })
                .unwrap_or_else(|| "?".to_owned());
            format!("{column}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A hasher for fingerprints in hash maps: they are uniformly random already, so hashing them
/// again (`SipHash`) would only cost time.
#[derive(Clone, Copy, Debug, Default)]
pub struct FingerprintHasher(u64);

impl std::hash::Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

/// A hash map keyed by fingerprints.
pub type FingerprintMap<V> =
    std::collections::HashMap<KeyFingerprint, V, std::hash::BuildHasherDefault<FingerprintHasher>>;
/// A hash set of fingerprints.
pub type FingerprintSet = std::collections::HashSet<KeyFingerprint, std::hash::BuildHasherDefault<FingerprintHasher>>;

/// The bucket of a fingerprint among `2^bits` buckets: its top `bits` bits.
pub fn bucket_of(fingerprint: KeyFingerprint, bits: u32) -> usize {
    match bits {
        0 => 0,
        bits => (fingerprint >> (128 - bits.min(64))) as usize,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int32Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn null_keys_are_errors_unless_allowed() {
        let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![Some(1), None])) as _)]).unwrap();
        let strict = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
        let error = strict.fingerprints(&batch).unwrap_err();
        assert!(matches!(&error, Error::NullKey { column, row: 1 } if column == "id"), "{error}");
        let lenient = KeyHasher::new(["id"], &KeyOptions { allow_null_keys: true, ..KeyOptions::default() }).unwrap();
        assert_eq!(lenient.fingerprints(&batch).unwrap().len(), 2);
    }

    #[test]
    fn fingerprints_ignore_integer_width() {
        let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
        let wide = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![5])) as _)]).unwrap();
        let narrow = RecordBatch::try_from_iter([("id", Arc::new(Int32Array::from(vec![5])) as _)]).unwrap();
        assert_eq!(key.fingerprints(&wide).unwrap(), key.fingerprints(&narrow).unwrap());
    }

    #[test]
    fn describe_names_columns_in_declared_order() {
        let batch = RecordBatch::try_from_iter([
            ("b", Arc::new(StringArray::from(vec![Some("x"), None])) as _),
            ("a", Arc::new(Int64Array::from(vec![1, 2])) as _),
        ])
        .unwrap();
        let key = KeyHasher::new(["b", "a"], &KeyOptions { allow_null_keys: true, ..Default::default() }).unwrap();
        assert_eq!(key.describe(&batch, 1), "b=null, a=2");
    }

    #[test]
    fn buckets_take_the_top_bits() {
        assert_eq!(bucket_of(u128::MAX, 0), 0);
        assert_eq!(bucket_of(u128::MAX, 4), 15);
        assert_eq!(bucket_of(1u128 << 127, 1), 1);
        assert_eq!(bucket_of(1u128 << 126, 1), 0);
    }
}
