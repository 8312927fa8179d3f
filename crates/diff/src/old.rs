//! The older side of a diff, held in memory: its entries (fingerprint and row hash side by side,
//! key values) in arrival order, an open-addressing table from fingerprint to entry, and which
//! entries the new snapshot has matched (an atomic bitset, so batches of the new snapshot are
//! classified on several threads at once). A probe costs about two cache misses, whatever the
//! size. About 50 bytes a row for an integer key: a 10 M-row snapshot takes ~500 MB.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, SchemaRef};
use highwater_core::diff::{COLUMN_HASHES_COLUMN, SnapshotIndex, values16};
use highwater_core::key::{KeyFingerprint, describe_row};

use crate::error::Result;

const EMPTY: u32 = u32::MAX;

/// A key of the older side (its entry number).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OldKey(usize);

/// The older snapshot's entries.
pub(crate) struct OldSide {
    /// (fingerprint, row hash) side by side: a probe that finds its key has the hash in the
    /// same cache line.
    entries: Vec<(KeyFingerprint, u128)>,
    /// The key columns, one row per entry.
    keys: RecordBatch,
    /// Per-column hashes, row-major (`width` per entry), when kept.
    column_hashes: Vec<u64>,
    width: usize,
    /// Tolerance columns as floats, in the loader's tolerance order.
    tolerant: Vec<Float64Array>,
    /// Entry numbers by fingerprint (linear probing; `EMPTY` is free).
    slots: Vec<u32>,
    mask: usize,
    seen: Vec<AtomicU64>,
}

/// Entries of the older side as they arrive.
pub(crate) struct OldBuilder {
    key_schema: SchemaRef,
    width: usize,
    entries: Vec<(KeyFingerprint, u128)>,
    keys: Vec<RecordBatch>,
    column_hashes: Vec<u64>,
    tolerant: Vec<Vec<ArrayRef>>,
}

fn slot_of(fingerprint: KeyFingerprint, mask: usize) -> usize {
    // The low bits: bucketing uses the top ones, and a fingerprint is uniform throughout.
    (fingerprint as u64 as usize) & mask
}

impl OldBuilder {
    /// A builder for about `rows` entries.
    pub(crate) fn new(key_schema: SchemaRef, width: usize, rows: usize) -> Self {
        OldBuilder {
            key_schema,
            width,
            entries: Vec::with_capacity(rows),
            keys: Vec::new(),
            column_hashes: Vec::new(),
            tolerant: Vec::new(),
        }
    }

    /// Adds entries (fingerprint, row hash, [column hashes], keys…) and, row for row, the
    /// values of the tolerance columns.
    pub(crate) fn push(&mut self, entries: &RecordBatch, tolerant: &[ArrayRef]) -> Result<()> {
        let fingerprints = values16(entries.column(0).as_ref())?;
        let hashes = values16(entries.column(1).as_ref())?;
        self.entries.extend(fingerprints.into_iter().zip(hashes));
        if let Some(list) = entries.column_by_name(COLUMN_HASHES_COLUMN) {
            let list = list.as_fixed_size_list();
            let values = list.values().as_primitive::<UInt64Type>();
            let start = list.offset() * self.width;
            self.column_hashes.extend_from_slice(&values.values()[start..start + list.len() * self.width]);
        }
        {
            let key_columns: Vec<ArrayRef> = self
                .key_schema
                .fields()
                .iter()
                .map(|f| {
                    entries.column_by_name(f.name()).map_or_else(
                        || arrow_array::new_null_array(f.data_type(), entries.num_rows()),
                        std::sync::Arc::clone,
                    )
                })
                .collect();
            let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(entries.num_rows()));
            self.keys.push(RecordBatch::try_new_with_options(self.key_schema.clone(), key_columns, &options)?);
        }
        self.tolerant.push(tolerant.to_vec());
        Ok(())
    }

    /// Builds the table. A key twice is returned as `Err(fingerprint, description)`.
    pub(crate) fn finish(self, key: &[String]) -> Result<Result<OldSide, (KeyFingerprint, String)>> {
        let rows = self.entries.len();
        let keys = arrow_select::concat::concat_batches(&self.key_schema, &self.keys)?;
        let columns = self.tolerant.first().map_or(0, Vec::len);
        let tolerant = (0..columns)
            .map(|c| {
                let parts: Vec<&dyn Array> = self.tolerant.iter().map(|t| t[c].as_ref()).collect();
                let joined = arrow_select::concat::concat(&parts)?;
                Ok(arrow_cast::cast(&joined, &DataType::Float64)?.as_primitive().clone())
            })
            .collect::<Result<Vec<Float64Array>>>()?;
        // Load factor at most 1/2: short probe sequences.
        let size = (rows.max(1) * 2).next_power_of_two();
        let mask = size - 1;
        let mut slots = vec![EMPTY; size];
        let entries = self.entries;
        for (entry, (fingerprint, _)) in entries.iter().enumerate() {
            let mut slot = slot_of(*fingerprint, mask);
            loop {
                match slots[slot] {
                    EMPTY => {
                        slots[slot] = entry as u32;
                        break;
                    }
                    other if entries[other as usize].0 == *fingerprint => {
                        return Ok(Err((*fingerprint, describe_row(&keys, entry, key))));
                    }
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        let seen = (0..rows.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Ok(Ok(OldSide {
            entries,
            keys,
            column_hashes: self.column_hashes,
            width: self.width,
            tolerant,
            slots,
            mask,
            seen,
        }))
    }
}

impl OldSide {
    /// The older side of a stored index.
    pub(crate) fn from_index(index: &SnapshotIndex, key_schema: SchemaRef) -> Result<Self> {
        let width = if index.meta.spec.column_hashes { index.meta.spec.columns.len() } else { 0 };
        let mut builder = OldBuilder::new(key_schema, width, usize::try_from(index.meta.rows).unwrap_or(0));
        for bucket in &index.buckets {
            builder.push(bucket, &[])?;
        }
        match builder.finish(&index.meta.spec.key)? {
            Ok(side) => Ok(side),
            Err((_, key)) => Err(crate::Error::State {
                name: "snapshot-index".into(),
                detail: format!("the key ({key}) is in it twice"),
            }),
        }
    }

    /// An empty older side (the first snapshot).
    pub(crate) fn empty(key_schema: SchemaRef) -> Self {
        OldSide {
            entries: Vec::new(),
            keys: RecordBatch::new_empty(key_schema),
            column_hashes: Vec::new(),
            width: 0,
            tolerant: Vec::new(),
            slots: vec![EMPTY; 1],
            mask: 0,
            seen: Vec::new(),
        }
    }

    pub(crate) fn rows(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Where a key is, if the older side has it.
    pub(crate) fn find(&self, fingerprint: KeyFingerprint) -> Option<OldKey> {
        let mut slot = slot_of(fingerprint, self.mask);
        loop {
            match self.slots[slot] {
                EMPTY => return None,
                entry if self.entries[entry as usize].0 == fingerprint => return Some(OldKey(entry as usize)),
                _ => slot = (slot + 1) & self.mask,
            }
        }
    }

    pub(crate) fn hash(&self, key: OldKey) -> u128 {
        self.entries[key.0].1
    }

    /// Marks a key matched; `false` when it was matched before (a key twice in the new snapshot).
    pub(crate) fn mark(&self, key: OldKey) -> bool {
        let bit = 1u64 << (key.0 % 64);
        self.seen[key.0 / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// The value of the `column`-th tolerance column.
    pub(crate) fn tolerant(&self, key: OldKey, column: usize) -> Option<f64> {
        let values = &self.tolerant[column];
        (!values.is_null(key.0)).then(|| values.value(key.0))
    }

    /// The per-column hashes of a key, when kept.
    pub(crate) fn column_hashes(&self, key: OldKey) -> Option<&[u64]> {
        (self.width > 0 && !self.column_hashes.is_empty())
            .then(|| &self.column_hashes[key.0 * self.width..(key.0 + 1) * self.width])
    }

    /// The keys the new snapshot never matched: the deletes.
    pub(crate) fn unmatched_keys(&self) -> Result<Vec<RecordBatch>> {
        let rows: Vec<u32> =
            (0..self.entries.len()).filter(|row| !self.matched(OldKey(*row))).map(|row| row as u32).collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![arrow_select::take::take_record_batch(&self.keys, &UInt32Array::from(rows))?])
    }

    fn matched(&self, key: OldKey) -> bool {
        self.seen[key.0 / 64].load(Ordering::Relaxed) & (1 << (key.0 % 64)) != 0
    }
}
