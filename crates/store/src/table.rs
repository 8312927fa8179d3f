//! `Table`: open, create, read any version, recover.
//!
//! Reading a table means reading its log: the newest checkpoint, then every later commit,
//! listed with an offset and checked to be contiguous. Opening a table also rolls forward a
//! committed version whose publish did not finish (a crash between commit and publish), so every
//! run starts from a table whose latest version is fully visible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use highwater_core::hash::HASH_SPEC_VERSION;
use object_store::ObjectStore;
use object_store::path::Path;
use xxhash_rust::xxh3::xxh3_128;

use crate::commit::{
    Checkpoint, Commit, CommitInfo, DataFile, FORMAT_VERSION, LastCheckpoint, Operation, PersistedSchema, PublishMode,
    Snapshot, StateFileRef, decode_schema, empty_schema,
};
use crate::error::{Error, Result};
use crate::io::{Created, Io};
use crate::layout::{Layout, version_of};
use crate::location::{local_folder, store_for};
use crate::transaction::{RunSpec, Transaction, new_run_id};

/// How a table is written. Runtime choices; each commit records what it needs for recovery.
#[derive(Clone, Debug)]
pub struct TableOptions {
    /// How new data becomes visible (default: stage, then rename).
    pub publish: PublishMode,
    /// Keep replaced files under `_highwater/replaced/` until vacuum, for `restore` and readers
    /// of older versions (default `true`); `false` deletes them at publish.
    pub retain_replaced: bool,
    /// Write a checkpoint every this many versions (default 10).
    pub checkpoint_interval: u64,
    /// How long staged data of runs that never committed is kept (default 24 h). A run older
    /// than half of it refuses to commit, so cleanup can never delete a live run's files.
    pub staging_retention: Duration,
    /// File lists longer than this spill into a state file instead of the commit (default 1000).
    pub spill_threshold: usize,
    /// The first backoff of a retried commit write (default 50 ms, then ×4, three retries).
    pub retry_delay: Duration,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            publish: PublishMode::Rename,
            retain_replaced: true,
            checkpoint_interval: 10,
            staging_retention: Duration::from_secs(24 * 3600),
            spill_threshold: 1000,
            retry_delay: Duration::from_millis(50),
        }
    }
}

/// A highwater table: a folder of data files and its `_highwater/` log on an object store.
#[derive(Clone, Debug)]
pub struct Table {
    pub(crate) io: Io,
    location: String,
    pub(crate) options: TableOptions,
    /// The table's folder when it is on the local filesystem (vacuum removes the `*#N`
    /// temporaries that `LocalFileSystem` hides from listings).
    pub(crate) local_folder: Option<std::path::PathBuf>,
}

impl Table {
    /// Opens the table at `location` (`file://`, a plain path, `memory://`, or `s3://`, `gs://`,
    /// `az://` with the matching feature), rolling forward an unfinished publish.
    pub async fn open(location: &str, options: TableOptions) -> Result<Self> {
        // Opening does not create the folder of a table that is not there.
        if crate::location::is_missing_local_folder(location) {
            return Err(Error::TableNotFound { location: location.to_owned() });
        }
        let (store, root) = store_for(location)?;
        Ok(Self::open_with(store, root, options).await?.with_local_folder(local_folder(location)))
    }

    /// Opens the table at `root` of `store`.
    pub async fn open_with(store: Arc<dyn ObjectStore>, root: Path, options: TableOptions) -> Result<Self> {
        let table = Self::new(store, root, options);
        if table.latest_version().await?.is_none() {
            return Err(Error::TableNotFound { location: table.location.clone() });
        }
        table.recover().await?;
        Ok(table)
    }

    /// Creates an empty table of `schema` at `location`.
    pub async fn create(location: &str, schema: &Schema, options: TableOptions) -> Result<Self> {
        let (store, root) = store_for(location)?;
        Ok(Self::create_with(store, root, schema, options).await?.with_local_folder(local_folder(location)))
    }

    /// Opens the table at `location`, or creates it with `schema` when there is none yet.
    pub async fn open_or_create(location: &str, schema: &Schema, options: TableOptions) -> Result<Self> {
        let (store, root) = store_for(location)?;
        Ok(Self::open_or_create_with(store, root, schema, options).await?.with_local_folder(local_folder(location)))
    }

    pub(crate) fn with_local_folder(mut self, folder: Option<std::path::PathBuf>) -> Self {
        self.local_folder = folder;
        self
    }

    /// Creates an empty table of `schema` at `root` of `store`, after probing that the store
    /// honours put-if-absent.
    pub async fn create_with(
        store: Arc<dyn ObjectStore>,
        root: Path,
        schema: &Schema,
        options: TableOptions,
    ) -> Result<Self> {
        let table = Self::new(store, root, options);
        if let Some(version) = table.latest_version().await? {
            return Err(Error::TableExists { location: table.location.clone(), version });
        }
        let run_id = new_run_id();
        table.probe_put_if_absent(&run_id).await?;
        let now = Utc::now();
        let commit = Commit {
            format_version: FORMAT_VERSION,
            version: 0,
            run_id: run_id.clone(),
            operation: Operation::Create,
            pattern: None,
            started_at: now,
            finished_at: now,
            publish: table.options.publish,
            retain_replaced: table.options.retain_replaced,
            schema: PersistedSchema::encode(schema)?,
            watermark_before: None,
            watermark_after: None,
            added: Vec::new(),
            added_spill: None,
            removed: Vec::new(),
            removed_spill: None,
            state: BTreeMap::new(),
            properties: BTreeMap::new(),
            hash_spec_version: HASH_SPEC_VERSION,
            report: None,
        };
        match table.io.create(&table.io.layout.log_entry(0), Bytes::from(commit.to_json())).await? {
            Created::Yes => Ok(table),
            Created::AlreadyExists => {
                let existing = table.commit(0).await?;
                if existing.run_id == run_id {
                    Ok(table)
                } else {
                    Err(Error::TableExists { location: table.location.clone(), version: 0 })
                }
            }
        }
    }

    /// Opens the table, or creates it with `schema` when there is none yet. Two runners doing
    /// this at once end up on the same table.
    pub async fn open_or_create_with(
        store: Arc<dyn ObjectStore>,
        root: Path,
        schema: &Schema,
        options: TableOptions,
    ) -> Result<Self> {
        match Self::create_with(Arc::clone(&store), root.clone(), schema, options.clone()).await {
            Ok(table) => Ok(table),
            Err(Error::TableExists { .. }) => Self::open_with(store, root, options).await,
            Err(error) => Err(error),
        }
    }

    pub(crate) fn new(store: Arc<dyn ObjectStore>, root: Path, options: TableOptions) -> Self {
        let location = format!("{store}/{root}");
        let io = Io { store, layout: Layout::new(root), retry_delay: options.retry_delay };
        Table { io, location, options, local_folder: None }
    }

    /// Where the table lives, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.io.store
    }

    /// The table's root within the store.
    pub fn root(&self) -> &Path {
        self.io.layout.root()
    }

    /// The options this handle writes with.
    pub fn options(&self) -> &TableOptions {
        &self.options
    }

    /// The store path of a table-relative path.
    pub fn path(&self, relative: &str) -> Path {
        self.io.layout.join(relative)
    }

    /// Writing twice with `PutMode::Create` must fail the second time.
    pub(crate) async fn probe_put_if_absent(&self, run_id: &str) -> Result<()> {
        let probe = self.io.layout.probe(run_id);
        let first = self.io.create(&probe, Bytes::from_static(b"1")).await?;
        let second = self.io.create(&probe, Bytes::from_static(b"2")).await?;
        self.io.delete(&probe).await?;
        match (first, second) {
            (Created::Yes, Created::AlreadyExists) => Ok(()),
            _ => Err(Error::UnsafeStore { location: self.location.clone(), probe: probe.to_string() }),
        }
    }

    /// The latest committed version, `None` when there is no table.
    pub async fn latest_version(&self) -> Result<Option<u64>> {
        let start = self.last_checkpoint().await?.unwrap_or_default();
        let offset = self.io.layout.log_entry(start);
        let mut latest = None;
        // The checkpointed version's own entry is not after the offset: look it up directly.
        if self.io.head(&offset).await?.is_some() {
            latest = Some(start);
        }
        for meta in self.io.list_after(&self.io.layout.log_dir(), &offset).await? {
            if let Some(version) = meta.location.filename().and_then(version_of) {
                latest = Some(latest.map_or(version, |l: u64| l.max(version)));
            }
        }
        Ok(latest)
    }

    /// Reads the commit of `version`.
    pub async fn commit(&self, version: u64) -> Result<Commit> {
        let path = self.io.layout.log_entry(version);
        let bytes = self.io.get(&path).await?;
        Commit::from_json(&bytes, path.as_ref(), version)
    }

    /// The newest checkpoint version per `_last_checkpoint` (a hint; `None` if absent).
    async fn last_checkpoint(&self) -> Result<Option<u64>> {
        let path = self.io.layout.last_checkpoint();
        let Some(bytes) = self.io.get_optional(&path).await? else { return Ok(None) };
        crate::commit::last_checkpoint_from_json(&bytes, path.as_ref()).map(Some)
    }

    /// The newest checkpoint at or before `at`.
    async fn checkpoint_for(&self, at: Option<u64>) -> Result<Option<Checkpoint>> {
        let hinted = self.last_checkpoint().await?;
        let version = match (hinted, at) {
            (Some(version), None) => Some(version),
            (Some(version), Some(at)) if version <= at => Some(version),
            _ => {
                // Time travel to before the newest checkpoint: find an older one.
                let listed = self.io.list(&self.io.layout.checkpoint_dir()).await?;
                listed
                    .iter()
                    .filter_map(|m| m.location.filename().and_then(version_of))
                    .filter(|v| at.is_none_or(|at| *v <= at))
                    .max()
            }
        };
        let Some(version) = version else { return Ok(None) };
        let path = self.io.layout.checkpoint(version);
        let bytes = self.io.get(&path).await?;
        Checkpoint::from_json(&bytes, path.as_ref(), version).map(Some)
    }

    /// The latest version of the table.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        self.load_snapshot(None).await
    }

    /// The table as it was at `version`.
    pub async fn snapshot_at(&self, version: u64) -> Result<Snapshot> {
        self.load_snapshot(Some(version)).await
    }

    async fn load_snapshot(&self, at: Option<u64>) -> Result<Snapshot> {
        let checkpoint = self.checkpoint_for(at).await?;
        let mut snapshot = match &checkpoint {
            Some(checkpoint) => {
                let path = self.io.layout.checkpoint(checkpoint.version);
                let files = match &checkpoint.files_spill {
                    Some(spill) => self.read_file_list(spill, "checkpoint file list").await?,
                    None => checkpoint.files.clone(),
                };
                Some(Snapshot {
                    version: checkpoint.version,
                    schema: decode_schema(&checkpoint.schema, "checkpoint", path.as_ref())?,
                    watermark: checkpoint.watermark.clone(),
                    files: files.into_iter().map(|f| (f.path.clone(), f)).collect(),
                    state: checkpoint.state.clone(),
                    properties: checkpoint.properties.clone(),
                    last_commit: checkpoint.last_commit.clone(),
                })
            }
            None => None,
        };
        let first = checkpoint.as_ref().map_or(0, |c| c.version + 1);
        let commits = self.commits_from(first, at).await?;
        if snapshot.is_none() && commits.is_empty() {
            return Err(Error::TableNotFound { location: self.location.clone() });
        }
        for commit in commits {
            let (added, removed) = self.file_lists(&commit).await?;
            let path = self.io.layout.log_entry(commit.version);
            let state = snapshot.get_or_insert_with(|| Snapshot {
                version: 0,
                schema: empty_schema(),
                watermark: None,
                files: BTreeMap::new(),
                state: BTreeMap::new(),
                properties: BTreeMap::new(),
                last_commit: CommitInfo::of(&commit, &[], &[]),
            });
            for file in &removed {
                state.files.remove(&file.path);
            }
            for file in &added {
                state.files.insert(file.path.clone(), file.clone());
            }
            state.version = commit.version;
            state.schema = decode_schema(&commit.schema, "commit", path.as_ref())?;
            state.watermark.clone_from(&commit.watermark_after);
            state.state.clone_from(&commit.state);
            state.properties.clone_from(&commit.properties);
            state.last_commit = CommitInfo::of(&commit, &added, &removed);
        }
        let snapshot = snapshot.ok_or_else(|| Error::TableNotFound { location: self.location.clone() })?;
        if let Some(at) = at {
            if snapshot.version != at {
                return Err(Error::NoSuchVersion { version: at, latest: snapshot.version });
            }
        }
        Ok(snapshot)
    }

    /// Commits `first..` (up to `until`), checked to be contiguous, read concurrently.
    pub(crate) async fn commits_from(&self, first: u64, until: Option<u64>) -> Result<Vec<Commit>> {
        let log_dir = self.io.layout.log_dir();
        let listed = if first == 0 {
            self.io.list(&log_dir).await?
        } else {
            self.io.list_after(&log_dir, &self.io.layout.log_entry(first - 1)).await?
        };
        let mut versions: Vec<u64> =
            listed.iter().filter_map(|m| m.location.filename().and_then(version_of)).filter(|v| *v >= first).collect();
        versions.sort_unstable();
        for (expected, &version) in (first..).zip(&versions) {
            if until.is_some_and(|until| version > until) {
                break;
            }
            if version != expected {
                return Err(Error::MissingVersion {
                    location: self.location.clone(),
                    missing: expected,
                    found: version,
                });
            }
        }
        let wanted: Vec<u64> = versions.into_iter().take_while(|v| until.is_none_or(|until| *v <= until)).collect();
        futures::stream::iter(wanted.into_iter().map(|version| self.commit(version))).buffered(16).try_collect().await
    }

    /// The added and removed files of a commit, reading spilled lists.
    pub(crate) async fn file_lists(&self, commit: &Commit) -> Result<(Vec<DataFile>, Vec<DataFile>)> {
        let added = match &commit.added_spill {
            Some(spill) => self.read_file_list(spill, "added file list").await?,
            None => commit.added.clone(),
        };
        let removed = match &commit.removed_spill {
            Some(spill) => self.read_file_list(spill, "removed file list").await?,
            None => commit.removed.clone(),
        };
        Ok((added, removed))
    }

    async fn read_file_list(&self, spill: &StateFileRef, kind: &'static str) -> Result<Vec<DataFile>> {
        let bytes = self.read_state(spill).await?;
        serde_json::from_slice(&bytes).map_err(|e| crate::commit::corrupt(kind, &spill.path, &e))
    }

    /// Reads a state file, verifying its size and checksum.
    pub async fn read_state(&self, state: &StateFileRef) -> Result<Bytes> {
        let bytes = self.io.get(&self.io.layout.join(&state.path)).await?;
        if bytes.len() as u64 != state.bytes {
            return Err(Error::StateChecksum {
                path: state.path.clone(),
                detail: format!("{} bytes, the commit recorded {}", bytes.len(), state.bytes),
            });
        }
        let checksum = checksum(&bytes);
        if checksum != state.checksum {
            return Err(Error::StateChecksum {
                path: state.path.clone(),
                detail: format!("checksum {checksum}, the commit recorded {}", state.checksum),
            });
        }
        Ok(bytes)
    }

    /// Starts a run whose commit creates the table at `root` of `store` (version 0), so that a
    /// first run that fails leaves nothing behind. Fails if the table exists, and, like
    /// [`Table::create_with`], on a store that does not honour put-if-absent.
    pub async fn begin_create(
        store: Arc<dyn ObjectStore>,
        root: Path,
        schema: &Schema,
        options: TableOptions,
        spec: RunSpec,
    ) -> Result<Transaction> {
        let table = Self::new(store, root, options);
        if let Some(version) = table.latest_version().await? {
            return Err(Error::TableExists { location: table.location.clone(), version });
        }
        table.probe_put_if_absent(&new_run_id()).await?;
        Ok(Transaction::creating(table, spec, Arc::new(schema.clone())))
    }

    /// Starts a run on the latest version (after rolling forward an unfinished publish).
    pub async fn begin(&self, spec: RunSpec) -> Result<Transaction> {
        self.recover().await?;
        let base = self.snapshot().await?;
        Ok(Transaction::new(self.clone(), spec, base))
    }

    /// Rolls forward the latest version if its publish did not finish. Idempotent, safe to run
    /// concurrently with the committing run's own publish. Returns the version it published.
    pub async fn recover(&self) -> Result<Option<u64>> {
        let Some(latest) = self.latest_version().await? else { return Ok(None) };
        let commit = self.commit(latest).await?;
        let (added, removed) = self.file_lists(&commit).await?;
        if crate::publish::is_published(self, &commit, &added, &removed).await? {
            return Ok(None);
        }
        crate::publish::check_publishable(self, &commit, &added).await?;
        tracing::info!(version = latest, run_id = %commit.run_id, "rolling forward an unfinished publish");
        crate::publish::publish(self, &commit, &added, &removed).await?;
        Ok(Some(latest))
    }

    /// Writes a checkpoint of `snapshot` and points `_last_checkpoint` at it.
    pub(crate) async fn write_checkpoint(&self, snapshot: &Snapshot) -> Result<()> {
        let files: Vec<DataFile> = snapshot.files.values().cloned().collect();
        let (files, files_spill) = if files.len() > self.options.spill_threshold {
            let name = format!("checkpoint-{}", snapshot.version);
            let path = Layout::state_file(snapshot.version, "checkpoint", &name);
            let spill = self.write_state_at(&path, Bytes::from(serde_json::to_vec(&files).unwrap_or_default())).await?;
            (Vec::new(), Some(spill))
        } else {
            (files, None)
        };
        let checkpoint = Checkpoint {
            format_version: FORMAT_VERSION,
            version: snapshot.version,
            schema: PersistedSchema::encode(&snapshot.schema)?,
            watermark: snapshot.watermark.clone(),
            files,
            files_spill,
            state: snapshot.state.clone(),
            properties: snapshot.properties.clone(),
            last_commit: snapshot.last_commit.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&checkpoint).unwrap_or_default();
        self.io.put(&self.io.layout.checkpoint(snapshot.version), Bytes::from(bytes)).await?;
        let pointer = LastCheckpoint { format_version: FORMAT_VERSION, version: snapshot.version };
        self.io
            .put(&self.io.layout.last_checkpoint(), Bytes::from(serde_json::to_vec(&pointer).unwrap_or_default()))
            .await
    }

    /// Writes a state file at a table-relative path and returns its reference.
    pub(crate) async fn write_state_at(&self, relative: &str, bytes: Bytes) -> Result<StateFileRef> {
        let reference =
            StateFileRef { path: relative.to_owned(), bytes: bytes.len() as u64, checksum: checksum(&bytes) };
        self.io.put(&self.io.layout.join(relative), bytes).await?;
        Ok(reference)
    }

    /// The schema at the latest version.
    pub async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.snapshot().await?.schema)
    }
}

/// `xxh3-128:<hex>` of `bytes`.
pub(crate) fn checksum(bytes: &[u8]) -> String {
    format!("xxh3-128:{:032x}", xxh3_128(bytes))
}
