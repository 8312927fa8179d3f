//! Upkeep: history, time travel, restore, vacuum.
//!
//! # Guarantees
//! - `restore(n)` is an ordinary commit: data, watermark, schema and pattern state of version
//!   `n` come back together — the only way a watermark ever moves back.
//! - `vacuum(retention)` never deletes a file that any version current within the retention
//!   (or the latest version) refers to, nor the staged data of a run younger than the staging
//!   retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::commit::{CommitInfo, DataFile, Operation};
use crate::error::{Error, Result};
use crate::layout::{Layout, META_DIR};
use crate::table::Table;
use crate::transaction::{Committed, RunSpec};

/// What vacuum removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VacuumReport {
    /// Objects deleted, relative to the table root.
    pub deleted: Vec<String>,
    /// Bytes freed.
    pub bytes: u64,
    /// The oldest version that can still be read after vacuum.
    pub oldest_readable_version: u64,
}

/// A data file of some version and where it can be read now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedFile {
    /// The file as the log records it.
    pub file: DataFile,
    /// Where its bytes are: its final name, its staging location (not yet published), or under
    /// `_highwater/replaced/`.
    pub location: Path,
}

impl Table {
    /// A scan of the latest version's rows, through the log (files of the latest version only,
    /// whatever else the folder holds), under the table schema.
    pub async fn scan(&self, mut options: crate::source::ScanOptions) -> Result<crate::source::ScanPlan> {
        let snapshot = self.snapshot().await?;
        let files: Vec<String> = snapshot.files.keys().cloned().collect();
        let source = crate::source::Source::from_store(
            std::sync::Arc::clone(self.store()),
            self.root().clone(),
            self.location(),
            crate::source::SourceOptions::files(files),
        );
        let listing = source.list().await?;
        options.schema = crate::source::SchemaPolicy {
            expected: Some(std::sync::Arc::clone(&snapshot.schema)),
            allow_added_nullable: true,
        };
        crate::source::Scan::plan(&listing, &listing.files, options).await
    }

    /// Every row of the latest version, in file order (small tables and tests; large ones
    /// should stream [`Table::scan`]).
    pub async fn read_all(&self) -> Result<arrow_array::RecordBatch> {
        let plan = self.scan(crate::source::ScanOptions::default()).await?;
        let schema = std::sync::Arc::clone(&plan.schema);
        let batches: Vec<arrow_array::RecordBatch> = plan.stream().map_ok(|b| b.batch).try_collect().await?;
        Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
    }

    /// The rows of some files of the latest version (of one schema: a change set's `deletes/`
    /// hold other columns than its `inserts/`).
    pub async fn read_files(&self, files: &[String]) -> Result<Vec<arrow_array::RecordBatch>> {
        let source = crate::source::Source::from_store(
            std::sync::Arc::clone(self.store()),
            self.root().clone(),
            self.location(),
            crate::source::SourceOptions::files(files.to_vec()),
        );
        let listing = source.list().await?;
        let plan = crate::source::Scan::plan(&listing, &listing.files, crate::source::ScanOptions::default()).await?;
        plan.stream().map_ok(|b| b.batch).try_collect().await
    }

    /// Every commit, newest first.
    pub async fn history(&self) -> Result<Vec<CommitInfo>> {
        let commits = self.commits_from(0, None).await?;
        let mut history = Vec::with_capacity(commits.len());
        for commit in commits.iter().rev() {
            let (added, removed) = self.file_lists(commit).await?;
            history.push(CommitInfo::of(commit, &added, &removed));
        }
        Ok(history)
    }

    /// The files of `version` and where each can be read now: at its final name, else where it
    /// was staged (published later), else under `_highwater/replaced/` (replaced later).
    pub async fn files_at(&self, version: u64) -> Result<Vec<LocatedFile>> {
        let snapshot = self.snapshot_at(version).await?;
        let later = self.commits_from(version + 1, None).await?;
        let mut removed_by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for commit in &later {
            let (_, removed) = self.file_lists(commit).await?;
            for file in removed {
                removed_by.entry(file.path).or_default().push(commit.version);
            }
        }
        let io = &self.io;
        futures::stream::iter(snapshot.files.into_values().map(|file| {
            let removals = removed_by.get(&file.path).cloned().unwrap_or_default();
            async move {
                let mut candidates = vec![file.path.clone()];
                candidates.extend(file.publish_from.clone());
                candidates.extend(removals.iter().map(|v| Layout::replaced_file(*v, &file.path)));
                for candidate in &candidates {
                    let location = io.layout.join(candidate);
                    if io.head(&location).await?.is_some() {
                        return Ok(LocatedFile { file, location });
                    }
                }
                Err(Error::InvalidInput(format!(
                    "{} of version {version} is gone (looked at {}); vacuum may have removed it",
                    file.path,
                    candidates.join(", ")
                )))
            }
        }))
        .buffered(16)
        .try_collect()
        .await
    }

    /// Makes the data, watermark, schema and state of `version` the latest version again, as a
    /// new commit. Files replaced since then come back from `_highwater/replaced/`.
    pub async fn restore(&self, version: u64) -> Result<Committed> {
        let target = self.snapshot_at(version).await?;
        let located = self.files_at(version).await?;
        let mut transaction = self.begin(RunSpec::operation(Operation::Restore)).await?;
        let current: BTreeSet<String> = transaction.base().files.keys().cloned().collect();
        for path in current.iter().filter(|p| !target.files.contains_key(*p)) {
            transaction.remove_file(path)?;
        }
        for LocatedFile { file, location } in located {
            if current.contains(&file.path) {
                continue;
            }
            let from = self.io.layout.relative(&location).filter(|relative| *relative != file.path);
            transaction.readd_file(file, from);
        }
        transaction.set_schema(target.schema.clone());
        transaction.set_state_map(target.state.clone());
        transaction.set_properties(target.properties.clone());
        transaction.commit(target.watermark.clone(), None).await
    }

    /// Deletes what no version current within `retention` needs: replaced files, state files of
    /// old versions, staged data of runs that never committed (older than the staging
    /// retention), and `LocalFileSystem`'s `*#N` leftovers.
    pub async fn vacuum(&self, retention: Duration) -> Result<VacuumReport> {
        self.recover().await?;
        let now = Utc::now();
        let cutoff = before(now, retention);
        let staging_cutoff = before(now, self.options.staging_retention);
        let commits = self.commits_from(0, None).await?;
        let latest = commits.last().map_or(0, |c| c.version);
        // Version v is current from its commit until the next one: keep it while that end is
        // within the retention.
        let oldest =
            commits.windows(2).find(|pair| pair[1].finished_at >= cutoff).map_or(latest, |pair| pair[0].version);
        let mut keep_files: BTreeSet<String> = BTreeSet::new();
        let mut keep_state: BTreeSet<String> = BTreeSet::new();
        let mut snapshot = self.snapshot_at(oldest).await?;
        let mut files_ever: BTreeSet<String> = BTreeSet::new();
        for commit in &commits {
            let (added, removed) = self.file_lists(commit).await?;
            files_ever.extend(added.iter().chain(&removed).map(|f| f.path.clone()));
            if commit.version > oldest {
                for file in &removed {
                    snapshot.files.remove(&file.path);
                }
                for file in added {
                    snapshot.files.insert(file.path.clone(), file);
                }
                keep_state.extend(commit.added_spill.iter().chain(&commit.removed_spill).map(|s| s.path.clone()));
            }
            if commit.version >= oldest {
                keep_files.extend(snapshot.files.keys().cloned());
                keep_state.extend(commit.state.values().map(|s| s.path.clone()));
            }
        }
        let state_ever: BTreeSet<String> = commits
            .iter()
            .flat_map(|c| c.state.values().chain(&c.added_spill).chain(&c.removed_spill).map(|s| s.path.clone()))
            .collect();
        // Checkpoints may keep their file list in a state file.
        for meta in self.io.list(&self.io.layout.checkpoint_dir()).await? {
            let bytes = self.io.get(&meta.location).await?;
            if let Ok(checkpoint) = serde_json::from_slice::<crate::commit::Checkpoint>(&bytes) {
                keep_state.extend(checkpoint.files_spill.map(|s| s.path));
            }
        }
        let mut doomed: Vec<(Path, u64)> = Vec::new();
        for meta in self.io.list(&self.io.layout.meta()).await? {
            let Some(relative) = self.io.layout.relative(&meta.location) else { continue };
            let inside = relative.strip_prefix(&format!("{META_DIR}/")).unwrap_or(&relative);
            let unclaimed = meta.last_modified < staging_cutoff;
            let delete = if let Some(rest) = inside.strip_prefix("replaced/") {
                let path = rest.split_once('/').map_or("", |(_, path)| path);
                !keep_files.contains(path)
            } else if inside.starts_with("staging/") {
                unclaimed
            } else if inside.starts_with("state/") {
                if keep_state.contains(&relative) {
                    false
                } else if state_ever.contains(&relative) {
                    true
                } else {
                    // Never committed: a losing or in-flight run's; only once it is unclaimed.
                    unclaimed
                }
            } else {
                false
            };
            if delete {
                doomed.push((meta.location, meta.size));
            }
        }
        // Direct publishing leaves replaced files in place: those no kept version needs go too.
        for path in files_ever.iter().filter(|p| !keep_files.contains(*p)) {
            let location = self.io.layout.join(path);
            if let Some(meta) = self.io.head(&location).await? {
                doomed.push((location, meta.size));
            }
        }
        self.delete_doomed(&doomed, staging_cutoff, oldest).await
    }
}

impl Table {
    /// Vacuum where no version was ever committed: the staged data and state files of first
    /// runs that died (older than the staging retention, so never a live run's).
    pub(crate) async fn vacuum_uncommitted(&self) -> Result<VacuumReport> {
        let cutoff = before(Utc::now(), self.options.staging_retention);
        let mut doomed: Vec<(Path, u64)> = Vec::new();
        for meta in self.io.list(&self.io.layout.meta()).await? {
            let Some(relative) = self.io.layout.relative(&meta.location) else { continue };
            let inside = relative.strip_prefix(&format!("{META_DIR}/")).unwrap_or(&relative);
            if (inside.starts_with("staging/") || inside.starts_with("state/")) && meta.last_modified < cutoff {
                doomed.push((meta.location, meta.size));
            }
        }
        self.delete_doomed(&doomed, cutoff, 0).await
    }

    /// Deletes what a vacuum chose (objects with their sizes) and `LocalFileSystem`'s
    /// temporaries older than `temporaries_cutoff`, and reports it.
    async fn delete_doomed(
        &self,
        doomed: &[(Path, u64)],
        temporaries_cutoff: chrono::DateTime<Utc>,
        oldest: u64,
    ) -> Result<VacuumReport> {
        let paths: Vec<Path> = doomed.iter().map(|(path, _)| path.clone()).collect();
        self.io.delete_all(&paths).await?;
        let mut deleted: Vec<String> = doomed.iter().filter_map(|(path, _)| self.io.layout.relative(path)).collect();
        let mut bytes: u64 = doomed.iter().map(|(_, size)| size).sum();
        for (relative, size) in self.local_temporaries(temporaries_cutoff) {
            deleted.push(relative);
            bytes += size;
        }
        let report = VacuumReport { deleted, bytes, oldest_readable_version: oldest };
        tracing::info!(deleted = report.deleted.len(), bytes = report.bytes, oldest, "vacuumed");
        Ok(report)
    }

    /// Deletes `LocalFileSystem`'s `*#N` temporaries (hidden from its listings) under
    /// `_highwater/` that are older than `cutoff`; returns them relative to the root.
    fn local_temporaries(&self, cutoff: chrono::DateTime<Utc>) -> Vec<(String, u64)> {
        let Some(folder) = &self.local_folder else { return Vec::new() };
        let mut found = Vec::new();
        let mut pending = vec![folder.join(META_DIR)];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(path);
                    continue;
                }
                let old = meta.modified().map(chrono::DateTime::<Utc>::from).is_ok_and(|modified| modified < cutoff);
                if old && entry.file_name().to_string_lossy().contains('#') && std::fs::remove_file(&path).is_ok() {
                    let relative =
                        path.strip_prefix(folder).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
                    found.push((relative, meta.len()));
                }
            }
        }
        found
    }
}

/// `now - duration`, saturating at the earliest representable time.
fn before(now: chrono::DateTime<Utc>, duration: Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}
