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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::StreamExt;
use highwater_core::key::{KeyFingerprint, KeyHasher};
use highwater_core::watermark::WatermarkValue;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::sink::{ParquetSink, SinkOptions};
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
    /// Rows of the table removed (replaced by an upsert or deleted).
    pub rows_removed: u64,
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

/// Fingerprints are uniformly random already: hashing them again would only cost time.
#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
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

type FingerprintMap<V> = HashMap<KeyFingerprint, V, BuildHasherDefault<FingerprintHasher>>;
type FingerprintSet = HashSet<KeyFingerprint, BuildHasherDefault<FingerprintHasher>>;

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
    Spilled(Path),
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
    /// The table's store and root, to read its live files.
    table_store: Arc<dyn object_store::ObjectStore>,
    table_root: Path,
    schema: SchemaRef,
    key: KeyHasher,
    options: MergeOptions,
    working: BTreeMap<String, WorkingFile>,
    parts: Vec<Part>,
    held: usize,
    spilled: usize,
    /// Bits of the fingerprint that split spilled changes; 0 while nothing is spilled.
    bits: u32,
    outcome: MergeOutcome,
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
            table_store: Arc::clone(transaction.table().store()),
            table_root: transaction.table().root().clone(),
            schema,
            key,
            options,
            working,
            parts: Vec::new(),
            held: 0,
            spilled: 0,
            bits: 0,
            outcome: MergeOutcome::default(),
        })
    }

    /// Adds changes: full rows (of the table schema) to upsert, or at least the key columns of
    /// rows to delete. A later change of a key wins over an earlier one.
    pub async fn push(&mut self, op: ChangeOp, batch: RecordBatch) -> Result<()> {
        let batch = match op {
            ChangeOp::Upsert => super::evolution::conform(&batch, &self.schema)?,
            ChangeOp::Delete => self.key_columns(&batch)?,
        };
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
                        let path = self.spill_path();
                        self.write_part(&path, &rows).await?;
                        self.parts.push(Part {
                            op: part.op,
                            rows: rows.num_rows(),
                            bucket,
                            data: PartData::Spilled(path),
                        });
                    }
                }
                PartData::Spilled(_) => self.parts.push(part),
            }
        }
        self.held = 0;
        Ok(())
    }

    fn spill_path(&mut self) -> Path {
        self.spilled += 1;
        self.target.scratch().join(format!("merge-{:06}.arrow", self.spilled))
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

    async fn write_part(&self, path: &Path, batch: &RecordBatch) -> Result<()> {
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema())?;
            writer.write(batch)?;
            writer.finish()?;
        }
        self.target.store().put(path, Bytes::from(bytes).into()).await.map_err(|e| Error::store("put", path, e))?;
        Ok(())
    }

    async fn read_part(&self, part: &Part) -> Result<RecordBatch> {
        match &part.data {
            PartData::Memory(batch) => Ok(batch.clone()),
            PartData::Spilled(path) => {
                let bytes = self.target.store().get(path).await.map_err(|e| Error::store("get", path, e))?;
                let bytes = bytes.bytes().await.map_err(|e| Error::store("get", path, e))?;
                let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)?;
                let batches = reader.collect::<Result<Vec<_>, _>>()?;
                let schema = batches.first().map_or_else(|| Arc::clone(&self.schema), RecordBatch::schema);
                Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
            }
        }
    }

    /// Applies every change and registers the files with the transaction.
    pub async fn finish(mut self, transaction: &mut Transaction) -> Result<MergeOutcome> {
        if self.bits == 0 {
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
        self.cleanup_spill().await;
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

    async fn cleanup_spill(&self) {
        let prefix = self.target.scratch();
        let listed: Vec<_> = self.target.store().list(Some(&prefix)).collect().await;
        for meta in listed.into_iter().flatten() {
            let _ = self.target.store().delete(&meta.location).await;
        }
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
                    let path = self.spill_path();
                    self.write_part(&path, &rows).await?;
                    let part =
                        Part { op: part.op, rows: rows.num_rows(), bucket: child, data: PartData::Spilled(path) };
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
        let mut latest: FingerprintMap<(ChangeOp, usize, usize, Option<WatermarkValue>)> = FingerprintMap::default();
        for part in &parts {
            let batch = self.read_part(part).await?;
            let fingerprints = self.key.fingerprints(&batch)?;
            let versions = match (&self.options.version_column, part.op) {
                (Some(column), ChangeOp::Upsert) => Some(batch.column_by_name(column).cloned().ok_or_else(|| {
                    Error::InvalidInput(format!("the version column `{column}` is not a column of the rows"))
                })?),
                _ => None,
            };
            let index = batches.len();
            for (row, fingerprint) in fingerprints.into_iter().enumerate() {
                let version = match &versions {
                    Some(array) => WatermarkValue::from_array(array.as_ref(), row, None)?,
                    None => None,
                };
                let newer = match (latest.get(&fingerprint), &version) {
                    (Some((_, _, _, Some(previous))), Some(version)) => version >= previous,
                    _ => true,
                };
                if newer {
                    latest.insert(fingerprint, (part.op, index, row, version));
                }
            }
            batches.push(batch);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let affected: FingerprintMap<Option<WatermarkValue>> =
            latest.iter().map(|(fingerprint, (_, _, _, version))| (*fingerprint, version.clone())).collect();
        let key_values = self.sorted_key_values(&batches);
        let stale = self.rewrite_affected_files(&affected, key_values.as_deref()).await?;
        // Upserted rows become new files.
        let mut upserts: Vec<Vec<u32>> = vec![Vec::new(); batches.len()];
        for (fingerprint, (op, index, row, _)) in &latest {
            match op {
                ChangeOp::Upsert if stale.contains(fingerprint) => self.outcome.stale_upserts += 1,
                ChangeOp::Upsert => upserts[*index].push(*row as u32),
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
    fn sorted_key_values(&self, batches: &[RecordBatch]) -> Option<Vec<WatermarkValue>> {
        if self.key.columns().len() != 1 {
            return None;
        }
        let column = &self.key.columns()[0];
        let mut values = Vec::new();
        for batch in batches {
            let array = batch.column_by_name(column)?;
            for row in 0..array.len() {
                match WatermarkValue::from_array(array.as_ref(), row, None) {
                    Ok(Some(value)) => values.push(value),
                    _ => return None,
                }
            }
        }
        values.sort();
        Some(values)
    }

    /// Rewrites the working files that hold an affected key, without those keys (a row newer
    /// than its upsert stays, and the upsert is returned as stale).
    async fn rewrite_affected_files(
        &mut self,
        affected: &FingerprintMap<Option<WatermarkValue>>,
        key_values: Option<&[WatermarkValue]>,
    ) -> Result<FingerprintSet> {
        let mut stale = FingerprintSet::default();
        self.load_key_ranges().await?;
        let candidates: Vec<String> = self
            .working
            .values()
            .filter(|working| match (&working.key_range, key_values) {
                (Some((min, max)), Some(values)) => {
                    let first = values.partition_point(|v| v < min);
                    first < values.len() && values[first] <= *max
                }
                _ => true,
            })
            .map(|working| working.file.path.clone())
            .collect();
        self.outcome.files_skipped_by_statistics += (self.working.len() - candidates.len()) as u64;
        for path in candidates {
            let Some(working) = self.working.get(&path).cloned() else { continue };
            let (kept, removed, written) = self.rewrite(&working, affected, &mut stale).await?;
            if removed == 0 {
                // No affected key after all: keep the file, drop the copy.
                for file in written {
                    let _ = self.target.store().delete(&self.target.location(&file.path)).await;
                }
                continue;
            }
            self.outcome.rows_removed += removed;
            self.outcome.rows_written += kept;
            self.working.remove(&path);
            if working.ours {
                // An intermediate file of this merge: it never reaches the commit.
                let _ = self.target.store().delete(&self.target.location(&path)).await;
            }
            for file in written {
                self.working.insert(file.path.clone(), WorkingFile { file, ours: true, key_range: None });
            }
        }
        Ok(stale)
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

    /// Streams a file, dropping affected keys, into new files. Returns (rows kept, rows
    /// removed, files written).
    async fn rewrite(
        &self,
        working: &WorkingFile,
        affected: &FingerprintMap<Option<WatermarkValue>>,
        stale: &mut FingerprintSet,
    ) -> Result<(u64, u64, Vec<DataFile>)> {
        let (source, _) = self.source_of(working);
        let listing = source.list().await?;
        let options = ScanOptions {
            schema: SchemaPolicy { expected: Some(Arc::clone(&self.schema)), allow_added_nullable: true },
            ..ScanOptions::default()
        };
        let plan = Scan::plan(&listing, &listing.files, options).await?;
        let mut stream = plan.stream();
        let mut sink = ParquetSink::new(self.target.clone(), Arc::clone(&self.schema), self.options.sink.clone())?;
        let (mut kept, mut removed) = (0u64, 0u64);
        while let Some(batch) = stream.next().await {
            let batch = batch?.batch;
            let fingerprints = self.key.fingerprints(&batch)?;
            let versions = self.options.version_column.as_ref().and_then(|c| batch.column_by_name(c));
            let mut keep = Vec::with_capacity(batch.num_rows());
            for (row, fingerprint) in fingerprints.iter().enumerate() {
                keep.push(Some(match affected.get(fingerprint) {
                    None => true,
                    Some(None) => false,
                    Some(Some(incoming)) => {
                        let current = match versions {
                            Some(array) => WatermarkValue::from_array(array.as_ref(), row, None)?,
                            None => None,
                        };
                        let newer = current.is_some_and(|current| current > *incoming);
                        if newer {
                            stale.insert(*fingerprint);
                        }
                        newer
                    }
                }));
            }
            let keep = BooleanArray::from(keep);
            let survivors = keep.true_count();
            removed += (batch.num_rows() - survivors) as u64;
            kept += survivors as u64;
            if survivors == batch.num_rows() {
                sink.write(&batch).await?;
            } else if survivors > 0 {
                sink.write(&arrow_select::filter::filter_record_batch(&batch, &keep)?).await?;
            }
        }
        Ok((kept, removed, sink.finish().await?))
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
            SourceOptions { suffix: None, min_age: None, files: Some(pending) },
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
    SourceOptions { suffix: None, min_age: None, files: Some(vec![relative.to_owned()]) }
}

/// The bucket of a fingerprint: `bits` bits after the first `skip`.
fn bucket(fingerprint: KeyFingerprint, skip: u32, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    ((fingerprint << skip) >> (128 - bits)) as usize
}
