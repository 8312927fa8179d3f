//! Compaction: small live files rewritten into target-sized ones, as a commit.
//!
//! Files are grouped by partition; a group of two or more small files is read and rewritten.
//! Before committing, the new files are read back and compared with the old ones by row count
//! and an order-independent checksum of every row's spec-v1 hash: compaction never changes data.
//! The watermark and state carry over unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use futures::StreamExt;
use highwater_core::hash::{HashOptions, RowHasher};
use serde::{Deserialize, Serialize};

use super::sink::{ParquetSink, SinkOptions};
use crate::commit::{DataFile, Operation};
use crate::error::{Error, Result};
use crate::source::{Scan, ScanOptions, SchemaPolicy, Source, SourceOptions};
use crate::table::Table;
use crate::transaction::{Committed, FileTarget, RunSpec};

/// What to compact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactOptions {
    /// Files smaller than this are compacted (default 32 MiB).
    pub small_file_bytes: u64,
    /// How the new files are written (their target size among it).
    pub sink: SinkOptions,
    /// The zone of naive timestamps, needed to checksum rows that hold them (default UTC).
    pub naive_timezone: Option<String>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions { small_file_bytes: 32 * 1024 * 1024, sink: SinkOptions::default(), naive_timezone: None }
    }
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Small files rewritten.
    pub files_in: u64,
    /// Files written.
    pub files_out: u64,
    /// Rows moved.
    pub rows: u64,
    /// The commit, when there was something to compact.
    pub committed: Option<Committed>,
}

/// Rows and an order-independent checksum of them (the wrapping sum of their row hashes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fingerprint {
    rows: u64,
    sum: u128,
}

/// Compacts the small files of the latest version of `table`.
pub async fn compact(table: &Table, options: CompactOptions) -> Result<CompactOutcome> {
    let mut transaction = table.begin(RunSpec::operation(Operation::Compact)).await?;
    let schema = Arc::clone(&transaction.base().schema);
    let mut groups: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    for file in transaction.base().files.values().filter(|f| f.bytes < options.small_file_bytes) {
        let directory = file.path.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_owned());
        groups.entry(directory).or_default().push(file.clone());
    }
    groups.retain(|_, files| files.len() > 1);
    if groups.is_empty() {
        transaction.abort().await?;
        return Ok(CompactOutcome::default());
    }
    let hash_options =
        HashOptions { naive_timezone: Some(options.naive_timezone.clone().unwrap_or_else(|| "UTC".into())) };
    let hasher = RowHasher::for_schema(&schema, &[], &hash_options)?;
    let target = transaction.file_target();
    let mut outcome = CompactOutcome::default();
    let (mut before, mut after) = (Fingerprint::default(), Fingerprint::default());
    for (directory, files) in groups {
        let partition_by: Vec<String> =
            directory.split('/').filter_map(|segment| segment.split_once('=').map(|(k, _)| k.to_owned())).collect();
        let sink_options = SinkOptions { partition_by, ..options.sink.clone() };
        let mut sink = ParquetSink::new(target.clone(), Arc::clone(&schema), sink_options)?.with_file_prefix("compact");
        let relative: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let source = Source::from_store(Arc::clone(table.store()), table.root().clone(), "table", explicit(relative));
        let read = read_rows(&source, &schema, &hasher, Some(&mut sink)).await?;
        before.rows += read.rows;
        before.sum = before.sum.wrapping_add(read.sum);
        let written = sink.finish().await?;
        let check = written_fingerprint(&target, table, &written, &schema, &hasher).await?;
        after.rows += check.rows;
        after.sum = after.sum.wrapping_add(check.sum);
        outcome.files_in += files.len() as u64;
        outcome.files_out += written.len() as u64;
        for file in &files {
            transaction.remove_file(&file.path)?;
        }
        for file in written {
            transaction.add_file(file)?;
        }
    }
    if before != after {
        transaction.abort().await?;
        return Err(Error::InvalidInput(format!(
            "compaction check failed: {} rows (checksum {:032x}) read, {} rows (checksum {:032x}) written; nothing committed",
            before.rows, before.sum, after.rows, after.sum
        )));
    }
    outcome.rows = after.rows;
    let watermark = transaction.base().watermark.clone();
    outcome.committed = Some(transaction.commit(watermark, None).await?);
    Ok(outcome)
}

fn explicit(files: Vec<String>) -> SourceOptions {
    SourceOptions::files(files)
}

/// Reads every row of `source`, checksumming it and (optionally) writing it to `sink`.
async fn read_rows(
    source: &Source,
    schema: &SchemaRef,
    hasher: &RowHasher,
    mut sink: Option<&mut ParquetSink>,
) -> Result<Fingerprint> {
    let listing = source.list().await?;
    let options = ScanOptions {
        schema: SchemaPolicy { expected: Some(Arc::clone(schema)), allow_added_nullable: true },
        ..ScanOptions::default()
    };
    let mut stream = Scan::plan(&listing, &listing.files, options).await?.stream();
    let mut fingerprint = Fingerprint::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?.batch;
        fingerprint.rows += batch.num_rows() as u64;
        for hash in hasher.hash_batch(&batch)?.rows() {
            fingerprint.sum = fingerprint.sum.wrapping_add(*hash);
        }
        if let Some(sink) = sink.as_deref_mut() {
            sink.write(&batch).await?;
        }
    }
    Ok(fingerprint)
}

/// Reads back files a run wrote (where it wrote them) and checksums their rows.
async fn written_fingerprint(
    target: &FileTarget,
    table: &Table,
    files: &[DataFile],
    schema: &SchemaRef,
    hasher: &RowHasher,
) -> Result<Fingerprint> {
    if files.is_empty() {
        return Ok(Fingerprint::default());
    }
    let relative = files.iter().map(|f| target.relative(&f.path)).collect();
    let source = Source::from_store(Arc::clone(target.store()), table.root().clone(), "written", explicit(relative));
    read_rows(&source, schema, hasher, None).await
}
