//! The merge-by-key writer: upserts and deletes applied to a table's files.
//!
//! Used by upsert loads (timestamp, sequence), CDC apply and diff apply. Only files that hold
//! an affected key are rewritten; the rest stay as they are.
//!
//! ```text
//! push(upsert | delete, batch) ──► changes held in memory, up to the budget
//!                                   │ over budget: spilled to staging, by key-fingerprint bucket
//! finish ──► for each bucket (changes of ≤ budget rows, the last change per key wins):
//!              files whose key statistics cannot rule the bucket's keys out ──► rewritten
//!              without those keys (files with no such key after all stay as they were)
//!              upserted rows ──► new files
//!          ──► replaced files become the commit's removed list, new files its added list
//! ```
//!
//! # Guarantees
//! - The result equals applying every change, in push order, to the table (the property test
//!   checks it against a `BTreeMap`).
//! - At most `memory_budget_rows` change rows are held at once; target files are streamed.
//! - Nothing is visible until the transaction commits; intermediate files (a file rewritten for
//!   two buckets) never reach the commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{DataType, SchemaRef};
use futures::StreamExt;
use highwater_core::key::{FingerprintMap, FingerprintSet, KeyFingerprint, KeyHasher};
use highwater_core::watermark::WatermarkValue;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::sink::{ParquetSink, SinkOptions};
use super::spill::{Spill, SpilledBatch};
use crate::commit::DataFile;
use crate::error::{Error, Result};
use crate::source::{Scan, ScanOptions, SchemaPolicy, Source, SourceOptions};
use crate::transaction::{FileTarget, Transaction};

/// What a change does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// Insert or replace the key's row.
    Upsert,
    /// Remove the key.
    Delete,
}

/// How the merge writer works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeOptions {
    /// Change rows held in memory at most (default 4 M); more are spilled by bucket.
    pub memory_budget_rows: usize,
    /// How new and rewritten files are written.
    pub sink: SinkOptions,
    /// A column that orders versions of a row (a cursor): an upsert older than the row it
    /// would replace is dropped, so a target row never regresses; among changes of one key the
    /// highest version wins.
    pub version_column: Option<String>,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions { memory_budget_rows: 4 * 1024 * 1024, sink: SinkOptions::default(), version_column: None }
    }
}

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOutcome {
    /// Files of the base version that were replaced.
    pub files_replaced: Vec<String>,
    /// Files added (rewritten and new rows).
    pub files_added: u64,
    /// Rows of the table removed (replaced by an upsert, deleted or truncated).
    pub rows_removed: u64,
    /// Rows of the table replaced by an upsert.
    pub rows_replaced: u64,
    /// Rows of the table removed by a delete.
    pub rows_deleted: u64,
    /// Rows of the table removed by a truncate.
    pub rows_truncated: u64,
    /// Rows written (kept rows of rewritten files and upserted rows).
    pub rows_written: u64,
    /// Keys inserted or replaced.
    pub upserts: u64,
    /// Keys deleted.
    pub deletes: u64,
    /// Key-fingerprint buckets the changes were processed in.
    pub buckets: u64,
    /// The most change rows held in memory at once.
    pub max_rows_held: u64,
    /// Files whose key statistics ruled them out.
    pub files_skipped_by_statistics: u64,
    /// Upserts dropped because the target already held a newer version of the row.
    pub stale_upserts: u64,
}

/// A run of changes of one op, in memory or spilled.
#[derive(Debug)]
struct Part {
    op: ChangeOp,
    rows: usize,
    /// Its fingerprint bucket, once spilled.
    bucket: usize,
    data: PartData,
}

#[derive(Debug)]
enum PartData {
    Memory(RecordBatch),
    Spilled(SpilledBatch),
}

/// Files rewritten at once.
const REWRITES_IN_FLIGHT: usize = 2;

/// What rewriting one file did.
struct Rewritten {
    removed: Removed,
    files: Vec<DataFile>,
    /// Upserts older than the row they would replace.
    stale: FingerprintSet,
}

/// The keys of a bucket's changes, with a bitmap in front of the map: most rows of a rewritten
/// file are not affected, and the bitmap (a few MB, in cache) answers for them without a probe
/// of the map.
struct Affected {
    bitmap: Vec<u64>,
    mask: u64,
    ops: FingerprintMap<ChangeOp>,
    /// The upserts' versions, with a version column.
    versions: Option<FingerprintMap<WatermarkValue>>,
}

impl Affected {
    fn new(ops: FingerprintMap<ChangeOp>, versions: Option<FingerprintMap<WatermarkValue>>) -> Self {
        // About 16 bits per key: one probe in 16 of an unaffected key reaches the map.
        let bits = (ops.len() as u64 * 16).next_power_of_two().max(1 << 10);
        let mut bitmap = vec![0u64; (bits / 64) as usize];
        let mask = bits - 1;
        for fingerprint in ops.keys() {
            let bit = (*fingerprint as u64) & mask;
            bitmap[(bit >> 6) as usize] |= 1 << (bit & 63);
        }
        Affected { bitmap, mask, ops, versions }
    }

    fn empty() -> Self {
        Affected::new(FingerprintMap::default(), None)
    }

    /// The change of a key, and the version of an upsert (with a version column).
    fn get(&self, fingerprint: KeyFingerprint) -> Option<(ChangeOp, Option<&WatermarkValue>)> {
        let bit = (fingerprint as u64) & self.mask;
        if self.bitmap[(bit >> 6) as usize] & (1 << (bit & 63)) == 0 {
            return None;
        }
        let op = *self.ops.get(&fingerprint)?;
        Some((op, self.versions.as_ref().and_then(|v| v.get(&fingerprint))))
    }
}

/// Collects the key values of changes, when the key is one orderable column (for pruning files
/// by their key statistics).
#[derive(Debug)]
enum KeyCollector {
    Integers(Vec<i64>),
    Values(Vec<WatermarkValue>),
    /// A composite key, a null, or an unorderable type: no pruning.
    Unusable,
}

impl KeyCollector {
    fn for_key(key: &KeyHasher) -> Self {
        if key.columns().len() == 1 { KeyCollector::Integers(Vec::new()) } else { KeyCollector::Unusable }
    }

    fn extend(&mut self, batch: &RecordBatch, key: &KeyHasher) -> Result<()> {
        let [column] = key.columns() else {
            *self = KeyCollector::Unusable;
            return Ok(());
        };
        let Some(array) = batch.column_by_name(column) else {
            *self = KeyCollector::Unusable;
            return Ok(());
        };
        if array.null_count() > 0 {
            *self = KeyCollector::Unusable;
            return Ok(());
        }
        let integer = array.data_type().is_integer() && *array.data_type() != DataType::UInt64;
        match self {
            KeyCollector::Integers(values) if integer => {
                // The common case, without a value object per key.
                let cast = arrow_cast::cast(array, &DataType::Int64)?;
                values.extend_from_slice(cast.as_primitive::<Int64Type>().values());
            }
            KeyCollector::Integers(values) if values.is_empty() => {
                *self = KeyCollector::Values(Vec::new());
                return self.extend(batch, key);
            }
            KeyCollector::Values(values) if !integer => {
                for row in 0..array.len() {
                    let Ok(Some(value)) = WatermarkValue::from_array(array.as_ref(), row, None) else {
                        *self = KeyCollector::Unusable;
                        return Ok(());
                    };
                    values.push(value);
                }
            }
            _ => *self = KeyCollector::Unusable,
        }
        Ok(())
    }

    fn sorted(self) -> Option<KeyValues> {
        match self {
            KeyCollector::Integers(mut values) => {
                values.sort_unstable();
                Some(KeyValues::Integers(values))
            }
            KeyCollector::Values(mut values) => {
                values.sort();
                Some(KeyValues::Values(values))
            }
            KeyCollector::Unusable => None,
        }
    }
}

/// The sorted key values of a bucket's changes, to rule files out by their key statistics.
enum KeyValues {
    /// An integer key: no value object per key.
    Integers(Vec<i64>),
    /// Any other orderable key.
    Values(Vec<WatermarkValue>),
}

impl KeyValues {
    /// Whether a key within `[min, max]` is among the values.
    fn may_hold(&self, (min, max): &(WatermarkValue, WatermarkValue)) -> bool {
        match (self, min, max) {
            (
                KeyValues::Integers(values),
                WatermarkValue::Int64 { value: min },
                WatermarkValue::Int64 { value: max },
            ) => {
                let first = values.partition_point(|v| v < min);
                first < values.len() && values[first] <= *max
            }
            (KeyValues::Integers(_), _, _) => true,
            (KeyValues::Values(values), min, max) => {
                let first = values.partition_point(|v| v < min);
                first < values.len() && values[first] <= *max
            }
        }
    }
}

/// Rows a rewrite removed, by reason.
#[derive(Clone, Copy, Debug, Default)]
struct Removed {
    replaced: u64,
    deleted: u64,
    truncated: u64,
}

impl Removed {
    fn total(self) -> u64 {
        self.replaced + self.deleted + self.truncated
    }
}

/// A file of the working set: a live file of the base version, or one this merge wrote.
#[derive(Clone, Debug)]
struct WorkingFile {
    file: DataFile,
    /// Written by this merge (at the target's write location), not yet committed.
    ours: bool,
    /// min/max of the key column, when it has one orderable column with statistics.
    key_range: Option<(WatermarkValue, WatermarkValue)>,
}

/// Applies keyed changes to the files of a table within a transaction.
#[derive(Debug)]
pub struct MergeWriter {
    target: FileTarget,
    /// The table, to tell a base file replaced by a concurrent commit from a damaged one.
    table: crate::table::Table,
    base_version: u64,
    /// The table's store and root, to read its live files.
    table_store: Arc<dyn object_store::ObjectStore>,
    table_root: Path,
    schema: SchemaRef,
    key: KeyHasher,
    options: MergeOptions,
    working: BTreeMap<String, WorkingFile>,
    parts: Vec<Part>,
    held: usize,
    spill: Spill,
    /// Bits of the fingerprint that split spilled changes; 0 while nothing is spilled.
    bits: u32,
    /// A truncate before the changes: the keys whose rows survive it.
    truncate: Option<FingerprintSet>,
    /// In unique-keys mode: the changes so far, their rows already on their way to files.
    unique: Option<UniqueChanges>,
    outcome: MergeOutcome,
}

/// Changes whose keys are unique across every push: upserted rows stream into new files at
/// once, and only each key's operation is held.
#[derive(Debug)]
struct UniqueChanges {
    sink: Option<ParquetSink>,
    ops: FingerprintMap<ChangeOp>,
    keys: KeyCollector,
}

impl MergeWriter {
    /// A merge into the base version of `transaction`, whose rows have `schema` (the table
    /// schema, partition columns included), keyed by `key`.
    pub fn new(transaction: &Transaction, schema: SchemaRef, key: KeyHasher, options: MergeOptions) -> Result<Self> {
        key.check_schema(&schema)?;
        let working = transaction
            .base()
            .files
            .values()
            .map(|file| (file.path.clone(), WorkingFile { file: file.clone(), ours: false, key_range: None }))
            .collect();
        Ok(MergeWriter {
            target: transaction.file_target(),
            table: transaction.table().clone(),
            base_version: transaction.base().version,
            table_store: Arc::clone(transaction.table().store()),
            table_root: transaction.table().root().clone(),
            schema,
            key,
            options,
            working,
            parts: Vec::new(),
            held: 0,
            spill: Spill::new(transaction.file_target(), "merge"),
            bits: 0,
            truncate: None,
            unique: None,
            outcome: MergeOutcome::default(),
        })
    }

    /// Unique-keys mode, for callers that reduced their changes already (CDC: one winning event
    /// per key): every key is pushed once at most, so upserted rows go straight into new files
    /// and memory holds only the keys (about 40 bytes each) — not the rows, and nothing is
    /// spilled. A key pushed twice is an error.
    #[must_use]
    pub fn with_unique_keys(mut self) -> Self {
        let keys = KeyCollector::for_key(&self.key);
        self.unique = Some(UniqueChanges { sink: None, ops: FingerprintMap::default(), keys });
        self
    }

    /// Adds changes: full rows (of the table schema) to upsert, or at least the key columns of
    /// rows to delete. A later change of a key wins over an earlier one.
    pub async fn push(&mut self, op: ChangeOp, batch: RecordBatch) -> Result<()> {
        let batch = match op {
            ChangeOp::Upsert => super::evolution::conform(&batch, &self.schema)?,
            ChangeOp::Delete => self.key_columns(&batch)?,
        };
        if self.unique.is_some() {
            return self.push_unique(op, &batch).await;
        }
        let budget = self.options.memory_budget_rows.max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = (batch.num_rows() - offset).min(budget);
            if self.held + length > budget {
                self.spill().await?;
            }
            self.parts.push(Part { op, rows: length, bucket: 0, data: PartData::Memory(batch.slice(offset, length)) });
            self.held += length;
            self.outcome.max_rows_held = self.outcome.max_rows_held.max(self.held as u64);
            offset += length;
        }
        Ok(())
    }

    async fn push_unique(&mut self, op: ChangeOp, batch: &RecordBatch) -> Result<()> {
        let fingerprints = self.key.fingerprints(batch)?;
        let Some(unique) = self.unique.as_mut() else { return Ok(()) };
        unique.ops.reserve(fingerprints.len());
        for (row, fingerprint) in fingerprints.into_iter().enumerate() {
            if unique.ops.insert(fingerprint, op).is_some() {
                return Err(Error::InvalidInput(format!(
                    "the key {} was changed twice in a merge that promised unique keys",
                    self.key.describe(batch, row)
                )));
            }
        }
        unique.keys.extend(batch, &self.key)?;
        let rows = batch.num_rows() as u64;
        match op {
            ChangeOp::Upsert => {
                if unique.sink.is_none() {
                    let sink =
                        ParquetSink::new(self.target.clone(), Arc::clone(&self.schema), self.options.sink.clone())?;
                    unique.sink = Some(sink.with_file_prefix("upsert"));
                }
                if let Some(sink) = unique.sink.as_mut() {
                    sink.write(batch).await?;
                }
                self.outcome.upserts += rows;
                self.outcome.rows_written += rows;
            }
            ChangeOp::Delete => self.outcome.deletes += rows,
        }
        Ok(())
    }

    fn key_columns(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let indices = self
            .key
            .columns()
            .iter()
            .map(|c| {
                batch.schema().index_of(c).map_err(|_| Error::InvalidInput(format!("a delete lacks key column `{c}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(batch.project(&indices)?)
    }

    /// Moves the changes held in memory to staging, split by fingerprint bucket.
    async fn spill(&mut self) -> Result<()> {
        if self.bits == 0 {
            // Enough buckets that one holds about a quarter of the budget of what came so far;
            // buckets that grow past the budget are split again when they are processed.
            let per_bucket = (self.options.memory_budget_rows / 4).max(1);
            self.bits =
                ((self.held.max(1) / per_bucket).max(2) as u64).next_power_of_two().trailing_zeros().clamp(1, 16);
        }
        let held = std::mem::take(&mut self.parts);
        for part in held {
            match part.data {
                PartData::Memory(batch) => {
                    for (bucket, rows) in self.split(&batch, 0, self.bits)? {
                        let spilled = self.spill.put(&rows).await?;
                        self.parts.push(Part {
                            op: part.op,
                            rows: rows.num_rows(),
                            bucket,
                            data: PartData::Spilled(spilled),
                        });
                    }
                }
                PartData::Spilled(_) => self.parts.push(part),
            }
        }
        self.held = 0;
        Ok(())
    }

    /// Rows of `batch` grouped by the `bits` fingerprint bits after the first `skip`.
    fn split(&self, batch: &RecordBatch, skip: u32, bits: u32) -> Result<Vec<(usize, RecordBatch)>> {
        let fingerprints = self.key.fingerprints(batch)?;
        let mut groups: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for (row, fingerprint) in fingerprints.iter().enumerate() {
            groups.entry(bucket(*fingerprint, skip, bits)).or_default().push(row as u32);
        }
        groups
            .into_iter()
            .map(|(bucket, rows)| {
                let rows = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?;
                Ok((bucket, rows))
            })
            .collect()
    }

    async fn read_part(&self, part: &Part) -> Result<RecordBatch> {
        match &part.data {
            PartData::Memory(batch) => Ok(batch.clone()),
            PartData::Spilled(spilled) => self.spill.get(spilled).await,
        }
    }

    /// Removes every row of the base version, except those whose key is in `keep`, before the
    /// changes apply: a table truncate (`keep` holds the keys changed after it, usually none).
    pub fn truncate(&mut self, keep: FingerprintSet) {
        self.truncate = Some(keep);
    }

    /// Applies every change and registers the files with the transaction.
    pub async fn finish(mut self, transaction: &mut Transaction) -> Result<MergeOutcome> {
        if let Some(keep) = self.truncate.take() {
            self.apply_truncate(&keep).await?;
        }
        if let Some(unique) = self.unique.take() {
            self.outcome.buckets = 1;
            let affected = Affected::new(unique.ops, None);
            let key_values = unique.keys.sorted();
            self.rewrite_affected_files(&affected, key_values.as_ref()).await?;
            if let Some(sink) = unique.sink {
                for file in sink.finish().await? {
                    self.working.insert(file.path.clone(), WorkingFile { file, ours: true, key_range: None });
                }
            }
        } else if self.bits == 0 {
            let parts = std::mem::take(&mut self.parts);
            self.process(parts, 0).await?;
        } else {
            self.spill().await?;
            let mut buckets: BTreeMap<usize, Vec<Part>> = BTreeMap::new();
            for part in std::mem::take(&mut self.parts) {
                buckets.entry(part.bucket).or_default().push(part);
            }
            for (_, parts) in buckets {
                let bits = self.bits;
                Box::pin(self.process(parts, bits)).await?;
            }
        }
        self.spill.clear().await;
        // Register the outcome with the transaction.
        for working in self.working.values().filter(|w| w.ours) {
            transaction.add_file(working.file.clone())?;
            self.outcome.files_added += 1;
        }
        let base: Vec<String> = transaction.base().files.keys().cloned().collect();
        for path in base {
            if !self.working.contains_key(&path) {
                transaction.remove_file(&path)?;
                self.outcome.files_replaced.push(path);
            }
        }
        Ok(self.outcome)
    }

    /// Drops the base version's rows whose key is not in `keep`: whole files when it is empty.
    async fn apply_truncate(&mut self, keep: &FingerprintSet) -> Result<()> {
        let base: Vec<WorkingFile> = self.working.values().filter(|w| !w.ours).cloned().collect();
        for working in base {
            self.working.remove(&working.file.path);
            if keep.is_empty() {
                self.outcome.rows_truncated += working.file.rows;
                self.outcome.rows_removed += working.file.rows;
                continue;
            }
            let (removed, written) = match self.rewrite(&working, &Affected::empty(), Some(keep)).await {
                Ok(rewritten) => (rewritten.removed, rewritten.files),
                Err(error) => return Err(self.explain(error).await),
            };
            self.outcome.rows_truncated += removed.total();
            self.outcome.rows_removed += removed.total();
            self.outcome.rows_written += written.iter().map(|f| f.rows).sum::<u64>();
            for file in written {
                self.working.insert(file.path.clone(), WorkingFile { file, ours: true, key_range: None });
            }
        }
        Ok(())
    }

    /// Processes the changes of one bucket (`parts` tagged with their bucket at `bits`).
    async fn process(&mut self, parts: Vec<Part>, bits: u32) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.rows).sum();
        let budget = self.options.memory_budget_rows.max(1);
        if total > budget && bits < 64 {
            // Too big for memory: split by the next fingerprint bits, one part at a time.
            let extra = ((total / budget + 1) as u64).next_power_of_two().trailing_zeros().max(1);
            let mut sub: BTreeMap<usize, Vec<Part>> = BTreeMap::new();
            for part in parts {
                let batch = self.read_part(&part).await?;
                self.outcome.max_rows_held = self.outcome.max_rows_held.max(batch.num_rows() as u64);
                for (child, rows) in self.split(&batch, bits, extra)? {
                    let spilled = self.spill.put(&rows).await?;
                    let part =
                        Part { op: part.op, rows: rows.num_rows(), bucket: child, data: PartData::Spilled(spilled) };
                    sub.entry(child).or_default().push(part);
                }
            }
            for (_, parts) in sub {
                Box::pin(self.process(parts, bits + extra)).await?;
            }
            return Ok(());
        }
        self.outcome.buckets += 1;
        self.outcome.max_rows_held = self.outcome.max_rows_held.max(total as u64);
        // The last change of each key wins (the highest version, with a version column).
        let mut batches = Vec::with_capacity(parts.len());
        let mut latest: FingerprintMap<(ChangeOp, u32, u32)> =
            FingerprintMap::with_capacity_and_hasher(total, std::hash::BuildHasherDefault::default());
        let mut versions: FingerprintMap<WatermarkValue> = FingerprintMap::default();
        for part in &parts {
            let batch = self.read_part(part).await?;
            let fingerprints = self.key.fingerprints(&batch)?;
            let row_versions = match (&self.options.version_column, part.op) {
                (Some(column), ChangeOp::Upsert) => Some(batch.column_by_name(column).cloned().ok_or_else(|| {
                    Error::InvalidInput(format!("the version column `{column}` is not a column of the rows"))
                })?),
                _ => None,
            };
            let index = batches.len() as u32;
            for (row, fingerprint) in fingerprints.into_iter().enumerate() {
                let version = match &row_versions {
                    Some(array) => WatermarkValue::from_array(array.as_ref(), row, None)?,
                    None => None,
                };
                let newer = match (versions.get(&fingerprint), &version) {
                    (Some(previous), Some(version)) => version >= previous,
                    _ => true,
                };
                if newer {
                    latest.insert(fingerprint, (part.op, index, row as u32));
                    match version {
                        Some(version) => versions.insert(fingerprint, version),
                        None => versions.remove(&fingerprint),
                    };
                }
            }
            batches.push(batch);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let ops = latest.iter().map(|(fingerprint, (op, _, _))| (*fingerprint, *op)).collect();
        let affected = Affected::new(ops, (!versions.is_empty()).then_some(versions));
        let key_values = self.sorted_key_values(&batches)?;
        let stale = self.rewrite_affected_files(&affected, key_values.as_ref()).await?;
        // Upserted rows become new files.
        let mut upserts: Vec<Vec<u32>> = vec![Vec::new(); batches.len()];
        for (fingerprint, (op, index, row)) in &latest {
            match op {
                ChangeOp::Upsert if stale.contains(fingerprint) => self.outcome.stale_upserts += 1,
                ChangeOp::Upsert => upserts[*index as usize].push(*row),
                ChangeOp::Delete => self.outcome.deletes += 1,
            }
        }
        let mut sink = ParquetSink::new(self.target.clone(), Arc::clone(&self.schema), self.options.sink.clone())?
            .with_file_prefix("upsert");
        for (batch, mut rows) in batches.iter().zip(upserts) {
            if rows.is_empty() {
                continue;
            }
            rows.sort_unstable();
            self.outcome.upserts += rows.len() as u64;
            self.outcome.rows_written += rows.len() as u64;
            let rows = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?;
            sink.write(&rows).await?;
        }
        for file in sink.finish().await? {
            self.working.insert(file.path.clone(), WorkingFile { file, ours: true, key_range: None });
        }
        Ok(())
    }

    /// The changes' key values, sorted, when the key is one column of an orderable type.
    fn sorted_key_values(&self, batches: &[RecordBatch]) -> Result<Option<KeyValues>> {
        let mut keys = KeyCollector::for_key(&self.key);
        for batch in batches {
            keys.extend(batch, &self.key)?;
        }
        Ok(keys.sorted())
    }

    /// Rewrites the working files that hold an affected key, without those keys (a row newer
    /// than its upsert stays, and the upsert is returned as stale). Two files at a time: one
    /// file's scan and encoding do not keep both cores busy.
    async fn rewrite_affected_files(
        &mut self,
        affected: &Affected,
        key_values: Option<&KeyValues>,
    ) -> Result<FingerprintSet> {
        let mut stale = FingerprintSet::default();
        if let Err(error) = self.load_key_ranges().await {
            return Err(self.explain(error).await);
        }
        let candidates: Vec<WorkingFile> = self
            .working
            .values()
            .filter(|working| match (&working.key_range, key_values) {
                (Some(range), Some(values)) => values.may_hold(range),
                _ => true,
            })
            .cloned()
            .collect();
        self.outcome.files_skipped_by_statistics += (self.working.len() - candidates.len()) as u64;
        let this = &*self;
        let results: Vec<(WorkingFile, Result<Rewritten>)> = futures::stream::iter(candidates)
            .map(|working| async move {
                let result = this.rewrite(&working, affected, None).await;
                (working, result)
            })
            .buffered(REWRITES_IN_FLIGHT)
            .collect()
            .await;
        let mut failure = None;
        for (working, result) in results {
            let rewritten = match result {
                Ok(rewritten) => rewritten,
                Err(error) => {
                    let error = if working.ours { error } else { self.explain(error).await };
                    failure.get_or_insert(error);
                    continue;
                }
            };
            stale.extend(rewritten.stale);
            let (removed, written) = (rewritten.removed, rewritten.files);
            let kept: u64 = written.iter().map(|f| f.rows).sum();
            if removed.total() == 0 {
                // No affected key after all: keep the file, drop the copy.
                for file in written {
                    let _ = self.target.store().delete(&self.target.location(&file.path)).await;
                }
                continue;
            }
            self.outcome.rows_removed += removed.total();
            self.outcome.rows_replaced += removed.replaced;
            self.outcome.rows_deleted += removed.deleted;
            self.outcome.rows_written += kept;
            self.working.remove(&working.file.path);
            if working.ours {
                // An intermediate file of this merge: it never reaches the commit.
                let _ = self.target.store().delete(&self.target.location(&working.file.path)).await;
            }
            for file in written {
                self.working.insert(file.path.clone(), WorkingFile { file, ours: true, key_range: None });
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(stale),
        }
    }

    /// A base file could not be read: when another run has committed since this merge began,
    /// the file was most likely replaced by that commit, and this run has lost the race.
    async fn explain(&self, error: Error) -> Error {
        match self.table.latest_version().await {
            Ok(Some(latest)) if latest > self.base_version => Error::Conflict {
                version: self.base_version + 1,
                winner: "another run (it replaced files this merge was reading)".into(),
                run_id: self.target.run_id().to_owned(),
            },
            _ => error,
        }
    }

    /// The source of one working file: the table's live file, or this merge's own output.
    fn source_of(&self, working: &WorkingFile) -> (Source, String) {
        if working.ours {
            let relative = self.target.relative(&working.file.path);
            (
                Source::from_store(
                    Arc::clone(self.target.store()),
                    self.table_root.clone(),
                    "merge",
                    explicit(&relative),
                ),
                relative,
            )
        } else {
            let relative = working.file.path.clone();
            (
                Source::from_store(
                    Arc::clone(&self.table_store),
                    self.table_root.clone(),
                    "table",
                    explicit(&relative),
                ),
                relative,
            )
        }
    }

    /// Streams a file into new files, dropping the rows of affected keys (and, for a truncate,
    /// of keys not in `keep_only`).
    async fn rewrite(
        &self,
        working: &WorkingFile,
        affected: &Affected,
        keep_only: Option<&FingerprintSet>,
    ) -> Result<Rewritten> {
        let mut stale = FingerprintSet::default();
        let (source, _) = self.source_of(working);
        let listing = source.list().await?;
        let options = ScanOptions {
            schema: SchemaPolicy { expected: Some(Arc::clone(&self.schema)), allow_added_nullable: true },
            ..ScanOptions::default()
        };
        let plan = Scan::plan(&listing, &listing.files, options).await?;
        let mut stream = plan.stream();
        let mut sink = ParquetSink::new(self.target.clone(), Arc::clone(&self.schema), self.options.sink.clone())?;
        let mut removed = Removed::default();
        while let Some(batch) = stream.next().await {
            let batch = batch?.batch;
            let fingerprints = self.key.fingerprints(&batch)?;
            let versions = self.options.version_column.as_ref().and_then(|c| batch.column_by_name(c));
            let mut keep = Vec::with_capacity(batch.num_rows());
            for (row, fingerprint) in fingerprints.iter().enumerate() {
                let survives = match affected.get(*fingerprint) {
                    _ if keep_only.is_some_and(|keep| !keep.contains(fingerprint)) => {
                        removed.truncated += 1;
                        false
                    }
                    None => true,
                    Some((ChangeOp::Delete, _)) => {
                        removed.deleted += 1;
                        false
                    }
                    Some((ChangeOp::Upsert, incoming)) => {
                        let current = match (versions, incoming) {
                            (Some(array), Some(_)) => WatermarkValue::from_array(array.as_ref(), row, None)?,
                            _ => None,
                        };
                        // A row newer than its upsert stays, and the upsert is dropped as stale.
                        let newer =
                            matches!((&current, incoming), (Some(current), Some(incoming)) if current > incoming);
                        if newer {
                            stale.insert(*fingerprint);
                        } else {
                            removed.replaced += 1;
                        }
                        newer
                    }
                };
                keep.push(Some(survives));
            }
            let keep = BooleanArray::from(keep);
            let survivors = keep.true_count();
            if survivors == batch.num_rows() {
                sink.write(&batch).await?;
            } else if survivors > 0 {
                sink.write(&arrow_select::filter::filter_record_batch(&batch, &keep)?).await?;
            }
        }
        Ok(Rewritten { removed, files: sink.finish().await?, stale })
    }

    /// Reads the key column's min/max of every working file that has not had it read.
    async fn load_key_ranges(&mut self) -> Result<()> {
        if self.key.columns().len() != 1 {
            return Ok(());
        }
        let column = self.key.columns()[0].clone();
        let pending: Vec<String> =
            self.working.values().filter(|w| w.key_range.is_none() && !w.ours).map(|w| w.file.path.clone()).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let source = Source::from_store(
            Arc::clone(&self.table_store),
            self.table_root.clone(),
            "table",
            SourceOptions::files(pending),
        );
        let listing = source.list().await?;
        let options = ScanOptions {
            projection: Some(vec![column.clone()]),
            schema: SchemaPolicy { expected: Some(Arc::clone(&self.schema)), allow_added_nullable: true },
            ..ScanOptions::default()
        };
        let plan = Scan::plan(&listing, &listing.files, options).await?;
        for planned in &plan.files {
            let metadata = &planned.metadata;
            let Ok(converter) = parquet::arrow::arrow_reader::statistics::StatisticsConverter::try_new(
                &column,
                metadata.schema(),
                metadata.metadata().file_metadata().schema_descr(),
            ) else {
                continue;
            };
            let groups = metadata.metadata().row_groups();
            let (Ok(mins), Ok(maxes)) =
                (converter.row_group_mins(groups.iter()), converter.row_group_maxes(groups.iter()))
            else {
                continue;
            };
            let mut range: Option<(WatermarkValue, WatermarkValue)> = None;
            let mut complete = true;
            for group in 0..groups.len() {
                match (
                    WatermarkValue::from_array(mins.as_ref(), group, None),
                    WatermarkValue::from_array(maxes.as_ref(), group, None),
                ) {
                    (Ok(Some(min)), Ok(Some(max))) => {
                        range = Some(match range {
                            None => (min, max),
                            Some((lo, hi)) => (lo.min(min), hi.max(max)),
                        });
                    }
                    _ => complete = false,
                }
            }
            if complete {
                if let Some(working) = self.working.get_mut(&planned.file.relative) {
                    working.key_range = range;
                }
            }
        }
        Ok(())
    }
}

fn explicit(relative: &str) -> SourceOptions {
    SourceOptions::files(vec![relative.to_owned()])
}

/// The bucket of a fingerprint: `bits` bits after the first `skip`.
fn bucket(fingerprint: KeyFingerprint, skip: u32, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    ((fingerprint << skip) >> (128 - bits)) as usize
}
