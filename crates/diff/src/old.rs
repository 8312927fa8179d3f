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
/// Keys probed together: their slots' cache lines (4 Ki × 64 B) stay within L2.
const PROBE_CHUNK: usize = 4096;

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
    /// The table, filled as entries arrive (overlapping the hashing of the next batches).
    slots: Vec<u32>,
    mask: usize,
    /// The first key found twice: (fingerprint, the later entry).
    duplicate: Option<(KeyFingerprint, usize)>,
}

fn slot_of(fingerprint: KeyFingerprint, mask: usize) -> usize {
    // The low bits: bucketing uses the top ones, and a fingerprint is uniform throughout.
    (fingerprint as u64 as usize) & mask
}

/// Table slots for `rows` entries: load factor at most 1/2, short probe sequences.
fn table_size(rows: usize) -> usize {
    (rows.max(1) * 2).next_power_of_two()
}

/// Inserts entry `entry` into `slots`; `Some(other)` when its key is there already.
fn insert(slots: &mut [u32], mask: usize, entries: &[(KeyFingerprint, u128)], entry: usize) -> Option<usize> {
    let fingerprint = entries[entry].0;
    let mut slot = slot_of(fingerprint, mask);
    loop {
        match slots[slot] {
            EMPTY => {
                slots[slot] = entry as u32;
                return None;
            }
            other if entries[other as usize].0 == fingerprint => return Some(other as usize),
            _ => slot = (slot + 1) & mask,
        }
    }
}

impl OldBuilder {
    /// A builder for about `rows` entries (more make the table grow).
    pub(crate) fn new(key_schema: SchemaRef, width: usize, rows: usize) -> Self {
        let size = table_size(rows);
        OldBuilder {
            key_schema,
            width,
            entries: Vec::with_capacity(rows),
            keys: Vec::new(),
            column_hashes: Vec::new(),
            tolerant: Vec::new(),
            slots: vec![EMPTY; size],
            mask: size - 1,
            duplicate: None,
        }
    }

    /// Adds index entries (fingerprint, row hash, [column hashes], keys…).
    pub(crate) fn push(&mut self, entries: &RecordBatch) -> Result<()> {
        let fingerprints = values16(entries.column(0).as_ref())?;
        let hashes = values16(entries.column(1).as_ref())?;
        let column_hashes = entries.column_by_name(COLUMN_HASHES_COLUMN).map(|list| {
            let list = list.as_fixed_size_list();
            let values = list.values().as_primitive::<UInt64Type>();
            let start = list.offset() * self.width;
            values.values()[start..start + list.len() * self.width].to_vec()
        });
        let keys = self.key_batch(entries)?;
        self.push_rows(&fingerprints, &hashes, keys, column_hashes.as_deref(), Vec::new());
        Ok(())
    }

    /// The key columns of `batch` (of the entries or of the rows themselves).
    pub(crate) fn key_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let key_columns: Vec<ArrayRef> = self
            .key_schema
            .fields()
            .iter()
            .map(|f| {
                batch
                    .column_by_name(f.name())
                    .map_or_else(|| arrow_array::new_null_array(f.data_type(), batch.num_rows()), std::sync::Arc::clone)
            })
            .collect();
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.key_schema.clone(), key_columns, &options)?)
    }

    /// Adds rows: their fingerprints and row hashes, key values, per-column hashes (row-major,
    /// when kept) and the values of the tolerance columns.
    pub(crate) fn push_rows(
        &mut self,
        fingerprints: &[KeyFingerprint],
        hashes: &[u128],
        keys: RecordBatch,
        column_hashes: Option<&[u64]>,
        tolerant: Vec<ArrayRef>,
    ) {
        let first = self.entries.len();
        self.entries.extend(fingerprints.iter().copied().zip(hashes.iter().copied()));
        if self.entries.len() * 2 > self.slots.len() {
            // More rows than announced: a larger table, filled again.
            let size = table_size(self.entries.len() * 2);
            self.slots = vec![EMPTY; size];
            self.mask = size - 1;
            for entry in 0..first {
                insert(&mut self.slots, self.mask, &self.entries, entry);
            }
        }
        for chunk in (first..self.entries.len()).collect::<Vec<_>>().chunks(PROBE_CHUNK) {
            // Touch the chunk's slots first: independent loads the CPU overlaps, so that the
            // inserts below (each depending on the last) find their cache lines warm.
            let warm = chunk.iter().fold(0u32, |acc, e| acc ^ self.slots[slot_of(self.entries[*e].0, self.mask)]);
            std::hint::black_box(warm);
            for &entry in chunk {
                if insert(&mut self.slots, self.mask, &self.entries, entry).is_some() {
                    self.duplicate.get_or_insert((self.entries[entry].0, entry));
                }
            }
        }
        if let Some(hashes) = column_hashes {
            self.column_hashes.extend_from_slice(hashes);
        }
        self.keys.push(keys);
        self.tolerant.push(tolerant);
    }

    /// The side. A key twice is returned as `Err(fingerprint, description)`.
    pub(crate) fn finish(self, key: &[String]) -> Result<Result<OldSide, (KeyFingerprint, String)>> {
        let rows = self.entries.len();
        let keys = arrow_select::concat::concat_batches(&self.key_schema, &self.keys)?;
        if let Some((fingerprint, entry)) = self.duplicate {
            return Ok(Err((fingerprint, describe_row(&keys, entry, key))));
        }
        let columns = self.tolerant.first().map_or(0, Vec::len);
        let tolerant = (0..columns)
            .map(|c| {
                let parts: Vec<&dyn Array> = self.tolerant.iter().map(|t| t[c].as_ref()).collect();
                let joined = arrow_select::concat::concat(&parts)?;
                Ok(arrow_cast::cast(&joined, &DataType::Float64)?.as_primitive().clone())
            })
            .collect::<Result<Vec<Float64Array>>>()?;
        let seen = (0..rows.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Ok(Ok(OldSide {
            entries: self.entries,
            keys,
            column_hashes: self.column_hashes,
            width: self.width,
            tolerant,
            slots: self.slots,
            mask: self.mask,
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
            builder.push(bucket)?;
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

    /// Where each of `fingerprints` is, if the older side has it. Probed in chunks, one load per
    /// key at a time across the chunk (slots, then entries), so that the misses of many keys
    /// overlap instead of queueing one after another.
    /// Each key comes with its row hash, read while its entry's cache line is warm.
    pub(crate) fn find_many(&self, fingerprints: &[KeyFingerprint], out: &mut Vec<Option<(OldKey, u128)>>) {
        out.clear();
        out.reserve(fingerprints.len());
        let mut first = Vec::with_capacity(PROBE_CHUNK.min(fingerprints.len()));
        for chunk in fingerprints.chunks(PROBE_CHUNK) {
            first.clear();
            first.extend(chunk.iter().map(|f| self.slots[slot_of(*f, self.mask)]));
            let warm = first
                .iter()
                .fold(0u64, |acc, e| if *e == EMPTY { acc } else { acc ^ (self.entries[*e as usize].0 as u64) });
            std::hint::black_box(warm);
            for (fingerprint, entry) in chunk.iter().zip(&first) {
                out.push(match *entry {
                    EMPTY => None,
                    entry if self.entries[entry as usize].0 == *fingerprint => {
                        Some((OldKey(entry as usize), self.entries[entry as usize].1))
                    }
                    _ => self.find(*fingerprint).map(|key| (key, self.hash(key))),
                });
            }
        }
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
