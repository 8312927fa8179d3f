//! Sources: the Parquet files a run reads, listed once per run.
//!
//! ```text
//! Source::open(locations) ─► list() ─► Listing (the run's snapshot of the source)
//!                                        │
//!             Ledger (previous run) ─────┤ classify: new / unchanged / rewritten / gone
//!                                        ▼
//!                   Scan::plan (footers, schema check, pruning) ─► stream of ScanBatch
//! ```
//!
//! # Guarantees
//! - One listing per run: files that land after it are new to the next run, never skipped.
//! - `_`- and `.`-prefixed files and folders (`_SUCCESS`, `_temporary/`, `.crc`) are not data;
//!   files younger than `min_age` are still being written and wait for the next run.

mod ledger;
mod partition;
mod progress;
mod reader;
mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

pub use self::ledger::{FileClasses, Ledger, LedgerEntry};
pub use self::partition::{PartitionValue, parse_partition_value};
pub use self::progress::Progress;
pub use self::reader::ObjectReader;
pub use self::scan::{ColumnRange, PlannedFile, Scan, ScanBatch, ScanMetrics, ScanOptions, ScanPlan, SchemaPolicy};
use crate::error::{Error, Result};
use crate::location::store_for;

/// How a source is listed.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Only files whose name ends with this are data (default `.parquet`; `None`: every file).
    pub suffix: Option<String>,
    /// Files modified more recently than this are still being written: left for the next run.
    pub min_age: Option<Duration>,
    /// An explicit list of files (relative to the first location) instead of a listing.
    pub files: Option<Vec<String>>,
    /// Counters a caller watches while the run scans the source (a progress bar).
    pub progress: Option<Arc<Progress>>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { suffix: Some(".parquet".into()), min_age: None, files: None, progress: None }
    }
}

impl SourceOptions {
    /// Exactly these files (relative to the location), whatever their names.
    pub fn files(files: Vec<String>) -> Self {
        SourceOptions { suffix: None, files: Some(files), ..SourceOptions::default() }
    }
}

/// One location of a source.
#[derive(Clone, Debug)]
pub struct SourceRoot {
    /// The location as configured (also the prefix of ledger keys).
    pub location: String,
    /// Its store.
    pub store: Arc<dyn ObjectStore>,
    /// Its prefix within the store.
    pub prefix: Path,
}

/// One or several locations holding the source's files.
#[derive(Clone, Debug)]
pub struct Source {
    roots: Vec<SourceRoot>,
    options: SourceOptions,
}

/// A file of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The ledger key: `<location>/<relative path>`.
    pub key: String,
    /// Which root it came from.
    pub root: usize,
    /// Its store path.
    pub location: Path,
    /// Its path relative to the root.
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
    /// The store's etag, when it has one.
    pub etag: Option<String>,
    /// The store's object version, when it has one.
    pub version: Option<String>,
    /// Last modification time.
    pub last_modified: DateTime<Utc>,
    /// Hive partition values from its path.
    pub partitions: BTreeMap<String, Option<String>>,
}

/// The files of a source as listed once by a run.
#[derive(Clone, Debug)]
pub struct Listing {
    /// Every data file, sorted by key.
    pub files: Vec<Arc<SourceFile>>,
    /// Files skipped because they were younger than `min_age`.
    pub too_young: Vec<String>,
    /// Locations that listed no data file (on an object store a mistyped prefix is just empty).
    pub empty_locations: Vec<String>,
    pub(crate) roots: Vec<SourceRoot>,
    /// The source's progress counters, which its scans update.
    pub(crate) progress: Option<Arc<Progress>>,
}

impl Listing {
    /// Notes the listing in a run's report: the files listed, and a warning for each location
    /// that listed none.
    pub fn note_in(&self, report: &mut highwater_core::report::LoadReport) {
        report.files.listed = self.files.len() as u64;
        for location in &self.empty_locations {
            report.warnings.push(format!("the source location {location} lists no data files: is it the right one?"));
        }
    }

    /// The store of a file.
    pub fn store(&self, file: &SourceFile) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.roots[file.root].store)
    }

    /// Total bytes of the listed files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

impl Source {
    /// A source over one or several locations (`file://`, paths, `memory://`, `s3://`, …).
    pub fn open(locations: &[impl AsRef<str>], options: SourceOptions) -> Result<Self> {
        if locations.is_empty() {
            return Err(Error::InvalidInput("a source needs at least one location".into()));
        }
        let roots = locations
            .iter()
            .map(|location| {
                let location = location.as_ref().trim_end_matches('/').to_owned();
                if crate::location::is_missing_local_folder(&location) {
                    return Err(Error::InvalidLocation {
                        location,
                        reason: "no such folder (a source is read, never created)".into(),
                    });
                }
                let (store, prefix) = store_for(&location)?;
                Ok(SourceRoot { location, store, prefix })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Source { roots, options })
    }

    /// A source at `prefix` of `store`; `label` names it in ledger keys and messages.
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: Path, label: &str, options: SourceOptions) -> Self {
        Source { roots: vec![SourceRoot { location: label.trim_end_matches('/').to_owned(), store, prefix }], options }
    }

    /// The locations.
    pub fn roots(&self) -> &[SourceRoot] {
        &self.roots
    }

    /// Lists the source: the run's snapshot of it.
    pub async fn list(&self) -> Result<Listing> {
        let now = Utc::now();
        let mut files = Vec::new();
        let mut too_young = Vec::new();
        let mut empty_locations = Vec::new();
        if let Some(explicit) = &self.options.files {
            let root = &self.roots[0];
            for relative in explicit {
                let location = join(&root.prefix, relative);
                let mut meta = root.store.head(&location).await.map_err(|e| Error::store("head", &location, e))?;
                // Some stores (a PrefixStore) answer a head with the location under their own
                // prefix: keep the one we asked for.
                meta.location = location;
                files.push(Self::file(0, root, relative.clone(), meta));
            }
        } else {
            for (index, root) in self.roots.iter().enumerate() {
                let before = files.len() + too_young.len();
                let listed: Vec<ObjectMeta> = root
                    .store
                    .list(Some(&root.prefix))
                    .try_collect()
                    .await
                    .map_err(|e| Error::store("list", &root.location, e))?;
                for meta in listed {
                    let Some(relative) = relative(&root.prefix, &meta.location) else { continue };
                    if relative.split('/').any(|part| part.starts_with('_') || part.starts_with('.')) {
                        continue;
                    }
                    if self.options.suffix.as_ref().is_some_and(|suffix| !relative.ends_with(suffix.as_str())) {
                        continue;
                    }
                    let young = self.options.min_age.is_some_and(|age| {
                        chrono::Duration::from_std(age).is_ok_and(|age| meta.last_modified > now - age)
                    });
                    if young {
                        too_young.push(relative);
                        continue;
                    }
                    files.push(Self::file(index, root, relative, meta));
                }
                if files.len() + too_young.len() == before {
                    empty_locations.push(root.location.clone());
                }
            }
        }
        files.sort_by(|a, b| a.key.cmp(&b.key));
        let locations: Vec<&str> = self.roots.iter().map(|r| r.location.as_str()).collect();
        tracing::info!(source = ?locations, files = files.len(), too_young = too_young.len(), "listed the source");
        Ok(Listing {
            files: files.into_iter().map(Arc::new).collect(),
            too_young,
            empty_locations,
            roots: self.roots.clone(),
            progress: self.options.progress.clone(),
        })
    }

    fn file(index: usize, root: &SourceRoot, relative: String, meta: ObjectMeta) -> SourceFile {
        SourceFile {
            key: format!("{}/{relative}", root.location),
            root: index,
            location: meta.location,
            partitions: crate::transaction::partition_values(&relative),
            relative,
            size: meta.size,
            etag: meta.e_tag,
            version: meta.version,
            last_modified: meta.last_modified,
        }
    }
}

fn join(prefix: &Path, relative: &str) -> Path {
    relative.split('/').filter(|p| !p.is_empty()).fold(prefix.clone(), Path::join)
}

fn relative(prefix: &Path, location: &Path) -> Option<String> {
    let parts: Vec<String> = location.prefix_match(prefix)?.map(|p| p.as_ref().to_owned()).collect();
    Some(parts.join("/"))
}
