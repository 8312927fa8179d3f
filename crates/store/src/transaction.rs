//! A run's transaction: stage data and state, then commit atomically, then publish.
//!
//! ```text
//!  begin ──► write data (staging/<run>/… or final names) ──► put_state(…) ──► commit
//!   │            nothing visible yet                                            │
//!   │   recover the latest version first                  put-if-absent of log/<v>.json
//!   ▼                                                          │          │
//! base snapshot v-1                               won ──► publish    lost ──► Conflict, staged
//!                                                 (rename into place)          data deleted
//! ```
//!
//! # Guarantees
//! - **Atomic visibility**: a version exists exactly when its log entry does; the entry is
//!   written once, with put-if-absent, after every file it names is durable.
//! - **Exactly one winner**: of runs racing for a version, one commit lands; the others get
//!   [`Error::Conflict`] and nothing of theirs becomes visible.
//! - **Ambiguous retries resolve**: if a commit write is retried after an error and finds the
//!   entry present, the run ids decide whether it was ours.
//! - **Crash anywhere**: before the commit, nothing is visible and staged data is cleaned up by
//!   vacuum; after it, the next open finishes the publish.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use highwater_core::hash::HASH_SPEC_VERSION;
use highwater_core::report::{LoadReport, Pattern};
use highwater_core::watermark::WatermarkValue;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use xxhash_rust::xxh3::xxh3_64;

use crate::commit::{
    Commit, DataFile, FORMAT_VERSION, Operation, PersistedSchema, PublishMode, Snapshot, StateFileRef,
};
use crate::error::{Error, Result};
use crate::io::{Created, Io};
use crate::layout::Layout;
use crate::table::Table;

/// What a run is.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The kind of commit it will make.
    pub operation: Operation,
    /// The loading pattern, for loads.
    pub pattern: Option<Pattern>,
    /// A run id to use (default: a fresh one).
    pub run_id: Option<String>,
}

impl RunSpec {
    /// A load run of `pattern`.
    pub fn load(pattern: Pattern) -> Self {
        RunSpec { operation: Operation::Load, pattern: Some(pattern), run_id: None }
    }

    /// A run of another operation.
    pub fn operation(operation: Operation) -> Self {
        RunSpec { operation, pattern: None, run_id: None }
    }
}

/// A fresh run id: UTC time to the microsecond and a process-unique suffix, sortable.
pub fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = Utc::now();
    let entropy = format!(
        "{}-{}-{:?}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::thread::current().id(),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%S%6fZ"), xxh3_64(entropy.as_bytes()) as u32)
}

/// Where a run writes its data files.
#[derive(Clone, Debug)]
pub struct FileTarget {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    run_id: String,
    publish: PublishMode,
    /// Numbers the run's files, shared by every writer of the run.
    files: Arc<AtomicU64>,
}

impl FileTarget {
    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The run's id (part of every file name it writes).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A number no other file of this run has.
    pub fn next_file_number(&self) -> u64 {
        self.files.fetch_add(1, Ordering::Relaxed)
    }

    /// The run's scratch folder (spilled state that never becomes table data); it lives in the
    /// run's staging area, so vacuum removes it if the run dies.
    pub fn scratch(&self) -> Path {
        self.layout.staging_dir(&self.run_id).join("_scratch")
    }

    /// Where the file to be published at `relative` is written.
    pub fn location(&self, relative: &str) -> Path {
        self.layout.join(&self.relative(relative))
    }

    /// The same, relative to the table root.
    pub fn relative(&self, relative: &str) -> String {
        match self.publish {
            PublishMode::Rename => Layout::staged_file(&self.run_id, relative),
            PublishMode::Direct => relative.to_owned(),
        }
    }
}

/// What a successful commit made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The new version.
    pub version: u64,
    /// The run.
    pub run_id: String,
}

/// An open run against one base version. Dropping it before its commit is written (a cancelled
/// future, a panic) deletes its staged files and state from a task on the runtime (see
/// [`stopped_runs_settled`](crate::stopped_runs_settled)); what a killed process leaves,
/// vacuum removes after the staging retention.
#[derive(Debug)]
pub struct Transaction {
    table: Table,
    spec: RunSpec,
    run_id: String,
    base: Snapshot,
    started_at: DateTime<Utc>,
    started: Instant,
    publish: PublishMode,
    added: Vec<DataFile>,
    removed: Vec<DataFile>,
    state: BTreeMap<String, StateFileRef>,
    /// State files this run wrote (for cleanup on abort).
    written_state: Vec<String>,
    schema: SchemaRef,
    properties: BTreeMap<String, serde_json::Value>,
    files: Arc<AtomicU64>,
    /// The table does not exist yet: this run's commit creates it as version 0.
    creating: bool,
    /// The run's files are cleaned up, or its commit write was sent (which may have landed):
    /// dropping it must leave the files alone.
    settled: bool,
}

impl Transaction {
    pub(crate) fn new(table: Table, spec: RunSpec, base: Snapshot) -> Self {
        let run_id = spec.run_id.clone().unwrap_or_else(new_run_id);
        Transaction {
            publish: table.options.publish,
            state: base.state.clone(),
            schema: base.schema.clone(),
            properties: base.properties.clone(),
            table,
            spec,
            run_id,
            base,
            started_at: Utc::now(),
            started: Instant::now(),
            added: Vec::new(),
            removed: Vec::new(),
            written_state: Vec::new(),
            files: Arc::default(),
            creating: false,
            settled: false,
        }
    }

    /// A run whose commit creates the table (version 0).
    pub(crate) fn creating(table: Table, spec: RunSpec, schema: SchemaRef) -> Self {
        let base = Snapshot {
            version: 0,
            schema,
            watermark: None,
            files: BTreeMap::new(),
            state: BTreeMap::new(),
            properties: BTreeMap::new(),
            last_commit: crate::commit::CommitInfo {
                version: 0,
                run_id: String::new(),
                operation: Operation::Create,
                pattern: None,
                started_at: Utc::now(),
                finished_at: Utc::now(),
                watermark_before: None,
                watermark_after: None,
                files_added: 0,
                files_removed: 0,
                rows_added: 0,
                rows_removed: 0,
            },
        };
        let mut transaction = Self::new(table, spec, base);
        transaction.creating = true;
        transaction
    }

    /// Whether this run's commit creates the table.
    pub fn is_creating(&self) -> bool {
        self.creating
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The table version the run started from.
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    /// The version this run will commit.
    pub fn version(&self) -> u64 {
        if self.creating { 0 } else { self.base.version + 1 }
    }

    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// How this run publishes.
    pub fn publish_mode(&self) -> PublishMode {
        self.publish
    }

    /// Where to write the data file that will be published at `relative`: its staging location,
    /// or the final name in direct mode.
    pub fn write_location(&self, relative: &str) -> Path {
        self.file_target().location(relative)
    }

    fn write_relative(&self, relative: &str) -> String {
        self.file_target().relative(relative)
    }

    /// Where this run writes data files, as a value that writers can keep while the
    /// transaction is used for other things.
    pub fn file_target(&self) -> FileTarget {
        FileTarget {
            store: Arc::clone(&self.table.io.store),
            layout: self.table.io.layout.clone(),
            run_id: self.run_id.clone(),
            publish: self.publish,
            files: Arc::clone(&self.files),
        }
    }

    /// Registers a data file written at [`Transaction::write_location`] of its path.
    pub fn add_file(&mut self, mut file: DataFile) -> Result<()> {
        if self.base.files.contains_key(&file.path) || self.added.iter().any(|f| f.path == file.path) {
            return Err(Error::InvalidInput(format!("{} is already a file of the table", file.path)));
        }
        file.publish_from = match self.publish {
            PublishMode::Rename => Some(self.write_relative(&file.path)),
            PublishMode::Direct => None,
        };
        self.added.push(file);
        Ok(())
    }

    /// Writes `bytes` as a data file of the table at `relative` and registers it.
    pub async fn put_file(&mut self, relative: &str, bytes: Bytes, rows: u64) -> Result<()> {
        let size = bytes.len() as u64;
        self.table.io.put(&self.write_location(relative), bytes).await?;
        self.add_file(DataFile {
            path: relative.to_owned(),
            rows,
            bytes: size,
            partition_values: partition_values(relative),
            publish_from: None,
        })
    }

    /// Removes a live file of the base version from the table (its data is replaced or deleted).
    pub fn remove_file(&mut self, relative: &str) -> Result<()> {
        let file = self.base.files.get(relative).ok_or_else(|| {
            Error::InvalidInput(format!("{relative} is not a live file of version {}", self.base.version))
        })?;
        if !self.removed.iter().any(|f| f.path == relative) {
            self.removed.push(file.clone());
        }
        Ok(())
    }

    /// Re-adds a file of an older version that now sits at `from` (restore).
    pub(crate) fn readd_file(&mut self, mut file: DataFile, from: Option<String>) {
        file.publish_from = from;
        self.added.push(file);
    }

    /// Files added so far.
    pub fn added(&self) -> &[DataFile] {
        &self.added
    }

    /// Files removed so far.
    pub fn removed(&self) -> &[DataFile] {
        &self.removed
    }

    /// Writes a state file under `name`, replacing the base version's file of that name.
    pub async fn put_state(&mut self, name: &str, bytes: Bytes) -> Result<StateFileRef> {
        let relative = Layout::state_file(self.version(), &self.run_id, name);
        let reference = self.table.write_state_at(&relative, bytes).await?;
        self.written_state.push(relative);
        self.state.insert(name.to_owned(), reference.clone());
        Ok(reference)
    }

    /// Drops a state file from the table's state.
    pub fn remove_state(&mut self, name: &str) {
        self.state.remove(name);
    }

    /// Replaces the whole state map (restore).
    pub(crate) fn set_state_map(&mut self, state: BTreeMap<String, StateFileRef>) {
        self.state = state;
    }

    /// The state file of `name` in the base version.
    pub fn base_state(&self, name: &str) -> Option<&StateFileRef> {
        self.base.state.get(name)
    }

    /// Sets the table schema of the new version.
    pub fn set_schema(&mut self, schema: SchemaRef) {
        self.schema = schema;
    }

    /// Sets a small pattern property carried with the version.
    pub fn set_property(&mut self, key: &str, value: serde_json::Value) {
        self.properties.insert(key.to_owned(), value);
    }

    /// Replaces all properties (restore).
    pub(crate) fn set_properties(&mut self, properties: BTreeMap<String, serde_json::Value>) {
        self.properties = properties;
    }

    /// Commits the run with its new watermark and report, then publishes it.
    ///
    /// On [`Error::Conflict`] (another run took the version) and on any error before the commit
    /// was written, the run's staged data and state are deleted and nothing is visible.
    ///
    /// The commit runs as a task of its own: a caller that stops waiting (a cancelled future)
    /// does not stop it halfway — it lands and is published, or fails and cleans up, and
    /// [`stopped_runs_settled`](crate::stopped_runs_settled) waits for it.
    pub async fn commit(
        self,
        watermark_after: Option<WatermarkValue>,
        report: Option<LoadReport>,
    ) -> Result<Committed> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let run_id = self.run_id.clone();
        crate::abandoned::spawn(&run_id, async move {
            let _ = sender.send(self.commit_here(watermark_after, report).await);
        });
        receiver.await.unwrap_or_else(|_| {
            Err(Error::InvalidInput(format!("the commit of run {run_id} stopped (its task was cancelled)")))
        })
    }

    async fn commit_here(
        mut self,
        watermark_after: Option<WatermarkValue>,
        report: Option<LoadReport>,
    ) -> Result<Committed> {
        let age = self.started.elapsed();
        let retention = self.table.options.staging_retention;
        if age > retention / 2 {
            let error = Error::RunTooOld { run_id: self.run_id.clone(), age, retention };
            self.abort().await?;
            return Err(error);
        }
        let commit = match self.prepare_commit(watermark_after, report).await {
            Ok(commit) => commit,
            Err(error) => {
                self.cleanup_after_failure().await;
                self.settled = true;
                return Err(error);
            }
        };
        let version = commit.version;
        let path = self.table.io.layout.log_entry(version);
        // From here the commit may land: its staged files are the next open's to publish.
        self.settled = true;
        match self.table.io.create(&path, Bytes::from(commit.to_json())).await {
            Ok(Created::Yes) => {}
            Ok(Created::AlreadyExists) => {
                let existing = self.table.commit(version).await?;
                if existing.run_id != self.run_id {
                    self.cleanup_after_failure().await;
                    return Err(Error::Conflict { version, winner: existing.run_id, run_id: self.run_id.clone() });
                }
                tracing::info!(version, run_id = %self.run_id, "a retried commit had landed: it is ours");
            }
            // Ambiguous: the write may have landed. Staged files stay for the next open (which
            // publishes them if it did) or for vacuum (if it did not).
            Err(error) => return Err(error),
        }
        tracing::info!(version, run_id = %self.run_id, added = self.added.len(), removed = self.removed.len(), "committed");
        crate::publish::publish(&self.table, &commit, &self.added, &self.removed).await?;
        self.maybe_checkpoint(version).await;
        Ok(Committed { version, run_id: self.run_id.clone() })
    }

    /// Everything up to the commit write: files checked, long lists spilled.
    async fn prepare_commit(
        &self,
        watermark_after: Option<WatermarkValue>,
        report: Option<LoadReport>,
    ) -> Result<Commit> {
        self.check_written().await?;
        let version = self.version();
        let threshold = self.table.options.spill_threshold;
        let mut commit = Commit {
            format_version: FORMAT_VERSION,
            version,
            run_id: self.run_id.clone(),
            operation: self.spec.operation,
            pattern: self.spec.pattern,
            started_at: self.started_at,
            finished_at: Utc::now(),
            publish: self.publish,
            retain_replaced: self.table.options.retain_replaced,
            schema: PersistedSchema::encode(&self.schema)?,
            watermark_before: self.base.watermark.clone(),
            watermark_after,
            added: self.added.clone(),
            added_spill: None,
            removed: self.removed.clone(),
            removed_spill: None,
            state: self.state.clone(),
            properties: self.properties.clone(),
            hash_spec_version: HASH_SPEC_VERSION,
            report,
        };
        if commit.added.len() > threshold {
            commit.added_spill = Some(self.spill("added", &commit.added).await?);
            commit.added.clear();
        }
        if commit.removed.len() > threshold {
            commit.removed_spill = Some(self.spill("removed", &commit.removed).await?);
            commit.removed.clear();
        }
        Ok(commit)
    }

    async fn cleanup_after_failure(&self) {
        if let Err(error) = self.cleanup().await {
            tracing::warn!(run_id = %self.run_id, %error, "could not remove the staged files of a failed run; vacuum will");
        }
    }

    /// Spills a long file list into a state file (the list itself is spilled, not the ledger).
    async fn spill(&self, name: &str, files: &[DataFile]) -> Result<StateFileRef> {
        let relative = Layout::state_file(self.version(), &self.run_id, name);
        self.table.write_state_at(&relative, Bytes::from(serde_json::to_vec(files).unwrap_or_default())).await
    }

    /// Every file the commit names must be durable before the commit is written.
    async fn check_written(&self) -> Result<()> {
        let io = &self.table.io;
        let checks: Vec<_> = self
            .added
            .iter()
            .map(|file| async move {
                let at = file.publish_from.as_deref().unwrap_or(&file.path);
                match io.head(&io.layout.join(at)).await? {
                    Some(_) => Ok(()),
                    None => Err(Error::StagedFileMissing {
                        version: self.version(),
                        path: file.path.clone(),
                        staged: at.to_owned(),
                    }),
                }
            })
            .collect();
        futures::stream::iter(checks).buffer_unordered(16).try_collect::<Vec<()>>().await?;
        Ok(())
    }

    async fn maybe_checkpoint(&self, version: u64) {
        let interval = self.table.options.checkpoint_interval;
        if interval == 0 || version % interval != 0 {
            return;
        }
        let result = async {
            let snapshot = self.table.snapshot_at(version).await?;
            self.table.write_checkpoint(&snapshot).await
        }
        .await;
        if let Err(error) = result {
            // Checkpoints only speed up reading; the log stays the truth.
            tracing::warn!(version, %error, "could not write a checkpoint");
        }
    }

    /// Gives up the run: deletes its staged data and state files.
    pub async fn abort(mut self) -> Result<()> {
        let cleaned = self.cleanup().await;
        self.settled = true;
        cleaned
    }

    async fn cleanup(&self) -> Result<()> {
        self.leftovers().remove().await
    }

    /// What the run has put on the store so far.
    fn leftovers(&self) -> Leftovers {
        Leftovers {
            io: self.table.io.clone(),
            run_id: self.run_id.clone(),
            state: self.written_state.clone(),
            direct: match self.publish {
                PublishMode::Rename => None,
                PublishMode::Direct => Some(self.added.iter().map(|f| f.path.clone()).collect()),
            },
        }
    }

    /// How long the run has been open.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let leftovers = self.leftovers();
        crate::abandoned::spawn(&self.run_id, async move {
            // A write that was in flight when the run was dropped (a local put finishes on its
            // blocking thread) may land after the first sweep: sweep again once it has.
            let swept = leftovers.remove().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(error) = swept.and(leftovers.remove().await) {
                tracing::warn!(run_id = %leftovers.run_id, %error, "could not remove a dropped run's files; vacuum will");
            } else {
                tracing::info!(run_id = %leftovers.run_id, "removed the files of a run dropped before its commit");
            }
        });
    }
}

/// The files a run wrote before its commit: its staging folder, its state files, and with
/// direct publishing its data files.
struct Leftovers {
    io: Io,
    run_id: String,
    state: Vec<String>,
    direct: Option<Vec<String>>,
}

impl Leftovers {
    async fn remove(&self) -> Result<()> {
        let io = &self.io;
        let mut paths: Vec<Path> = self.state.iter().map(|p| io.layout.join(p)).collect();
        match &self.direct {
            None => paths.extend(io.list(&io.layout.staging_dir(&self.run_id)).await?.into_iter().map(|m| m.location)),
            Some(files) => paths.extend(files.iter().map(|f| io.layout.join(f))),
        }
        io.delete_all(&paths).await
    }
}

/// Hive partition values of a relative path: `year=2024/month=01/part.parquet` →
/// `{year: 2024, month: 01}`; `__HIVE_DEFAULT_PARTITION__` is null.
pub fn partition_values(relative: &str) -> BTreeMap<String, Option<String>> {
    let mut parts: Vec<&str> = relative.split('/').collect();
    parts.pop();
    parts
        .into_iter()
        .filter_map(|segment| segment.split_once('='))
        .map(|(key, value)| {
            let value = (value != "__HIVE_DEFAULT_PARTITION__").then(|| unescape(value));
            (key.to_owned(), value)
        })
        .collect()
}

/// Undoes Hive's `%XX` escaping of partition values.
fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_unique_and_sortable() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{a}");
    }

    #[test]
    fn hive_partitions_from_paths() {
        let values = partition_values("year=2024/month=01/region=__HIVE_DEFAULT_PARTITION__/part-1.parquet");
        assert_eq!(values.get("year"), Some(&Some("2024".to_owned())));
        assert_eq!(values.get("region"), Some(&None));
        assert!(partition_values("part-1.parquet").is_empty());
    }
}
