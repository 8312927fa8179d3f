//! `DiffLoader`: the builder of a snapshot diff and its settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use highwater_core::diff::Quantize;
use highwater_core::report::LoadReport;
use highwater_core::watermark::TimestampUnit;
use highwater_store::TableOptions;
use highwater_store::incremental::Place;
use highwater_store::source::SourceOptions;
use highwater_store::write::SinkOptions;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a run's changes go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// The target table holds the latest change set: `inserts/` and `updates/` (full new rows)
    /// and `deletes/` (key values); each run replaces the previous run's files (older change
    /// sets stay readable through the table's history).
    #[default]
    Folders,
    /// The same as one change feed under `changes/`, with a `_change_type` column (`insert`,
    /// `update`, `delete`; a delete's other columns are null).
    ChangeFeed,
    /// The target table is kept equal to the snapshot: the changes are merged into it.
    Apply,
}

/// How close two floats must be to count as equal (mode (a): two explicit snapshots).
pub use highwater_core::diff::Tolerance;

/// Compares today's snapshot of a keyed table with the last one and emits inserts, updates and
/// deletes.
///
/// ```no_run
/// # async fn example() -> Result<(), highwater_diff::Error> {
/// use highwater_diff::DiffLoader;
///
/// // Incremental: each run diffs the new snapshot against the index the previous run stored.
/// let report = DiffLoader::new("s3://bucket/customers_export", "s3://bucket/customers_changes")
///     .key(&["customer_id"])
///     .ignore_columns(&["exported_at"])
///     .run()
///     .await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[allow(clippy::struct_excessive_bools, reason = "independent builder switches, each set by its own method")]
pub struct DiffLoader {
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) table_name: String,
    pub(crate) previous: Option<String>,
    pub(crate) seed_snapshot: Option<String>,
    pub(crate) key: Vec<String>,
    pub(crate) ignore: Vec<String>,
    pub(crate) tolerance: BTreeMap<String, Tolerance>,
    pub(crate) quantize: Quantize,
    pub(crate) changed_columns: bool,
    pub(crate) output: Output,
    pub(crate) keep_index: Option<bool>,
    pub(crate) baseline: bool,
    pub(crate) allow_null_keys: bool,
    pub(crate) allow_empty_snapshot: bool,
    pub(crate) naive_zone: Option<String>,
    pub(crate) source_options: SourceOptions,
    pub(crate) sink: SinkOptions,
    pub(crate) table_options: TableOptions,
    pub(crate) batch_size: usize,
    pub(crate) memory_budget_rows: usize,
    pub(crate) source_store: Option<Place>,
    pub(crate) previous_store: Option<Place>,
    pub(crate) target_store: Option<Place>,
}

impl DiffLoader {
    /// A diff of the snapshot at `source` into the table at `target`: against the snapshot index
    /// stored by the previous run (the first run reports every row as an insert), or against
    /// an explicit older snapshot given with [`DiffLoader::previous`]. The key defaults to `id`.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        let target = target.into();
        let table_name = target.trim_end_matches('/').rsplit('/').next().unwrap_or("table").to_owned();
        DiffLoader {
            source: source.into(),
            target,
            table_name,
            previous: None,
            seed_snapshot: None,
            key: vec!["id".into()],
            ignore: Vec::new(),
            tolerance: BTreeMap::new(),
            quantize: Quantize::default(),
            changed_columns: false,
            output: Output::Folders,
            keep_index: None,
            baseline: false,
            allow_null_keys: false,
            allow_empty_snapshot: false,
            naive_zone: None,
            source_options: SourceOptions::default(),
            sink: SinkOptions::default(),
            table_options: TableOptions::default(),
            batch_size: 64 * 1024,
            memory_budget_rows: 16 * 1024 * 1024,
            source_store: None,
            previous_store: None,
            target_store: None,
        }
    }

    /// The table's name (in reports).
    #[must_use]
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.table_name = name.into();
        self
    }

    /// Mode (a): diff against this older snapshot (a folder of Parquet files) instead of the
    /// stored index.
    #[must_use]
    pub fn previous(mut self, location: impl Into<String>) -> Self {
        self.previous = Some(location.into());
        self
    }

    /// The seed's snapshot folder: while the table has no index yet, the first run diffs
    /// against the Parquet files there (the last snapshot the `PySpark` job kept).
    #[must_use]
    pub fn seed_snapshot(mut self, location: impl Into<String>) -> Self {
        self.seed_snapshot = Some(location.into());
        self
    }

    /// The primary key (one column or several).
    #[must_use]
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Columns never compared (load timestamps, audit columns).
    #[must_use]
    pub fn ignore_columns(mut self, columns: &[&str]) -> Self {
        self.ignore = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Mode (a) only: floats of `column` equal within `tolerance`.
    #[must_use]
    pub fn tolerance(mut self, column: &str, tolerance: Tolerance) -> Self {
        self.tolerance.insert(column.to_owned(), tolerance);
        self
    }

    /// Round a float column to `decimals` places before hashing (recorded in the index).
    #[must_use]
    pub fn round(mut self, column: &str, decimals: i32) -> Self {
        self.quantize.decimals.insert(column.to_owned(), decimals);
        self
    }

    /// Truncate a timestamp column to `unit` before hashing (recorded in the index).
    #[must_use]
    pub fn truncate_timestamps(mut self, column: &str, unit: TimestampUnit) -> Self {
        self.quantize.timestamps.insert(column.to_owned(), unit);
        self
    }

    /// Add `_changed_columns` (the compared columns whose values changed) to updates. In index
    /// mode this keeps one hash per column in the index (8 bytes a column a row).
    #[must_use]
    pub fn changed_columns(mut self, yes: bool) -> Self {
        self.changed_columns = yes;
        self
    }

    /// Where the changes go (default: three folders).
    #[must_use]
    pub fn output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// Store the new snapshot's index for the next run (default: yes, except in mode (a)).
    #[must_use]
    pub fn keep_index(mut self, yes: bool) -> Self {
        self.keep_index = Some(yes);
        self
    }

    /// With no previous snapshot, only record this one (its index) and emit nothing, instead of
    /// reporting every row as an insert: start tracking a table whose rows are loaded already.
    #[must_use]
    pub fn baseline(mut self, yes: bool) -> Self {
        self.baseline = yes;
        self
    }

    /// Diff a snapshot location that holds no data file at all as an empty table (every row
    /// deleted). Off by default: an export that did not run looks exactly like that, and a
    /// run then fails with [`Error::EmptySnapshot`](crate::Error::EmptySnapshot) instead.
    /// Files with zero rows are an empty table either way.
    #[must_use]
    pub fn allow_empty_snapshot(mut self, yes: bool) -> Self {
        self.allow_empty_snapshot = yes;
        self
    }

    /// Treat a null key as a value instead of an error.
    #[must_use]
    pub fn allow_null_keys(mut self, yes: bool) -> Self {
        self.allow_null_keys = yes;
        self
    }

    /// The zone naive timestamps were recorded in.
    #[must_use]
    pub fn naive_zone(mut self, zone: impl Into<String>) -> Self {
        self.naive_zone = Some(zone.into());
        self
    }

    /// How the snapshots are listed.
    #[must_use]
    pub fn source_options(mut self, options: SourceOptions) -> Self {
        self.source_options = options;
        self
    }

    /// How data files are written.
    #[must_use]
    pub fn sink(mut self, options: SinkOptions) -> Self {
        self.sink = options;
        self
    }

    /// How the target table is written.
    #[must_use]
    pub fn table_options(mut self, options: TableOptions) -> Self {
        self.table_options = options;
        self
    }

    /// Rows per decoded batch (default 65 536).
    #[must_use]
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Rows of the older side held in memory at most (default 16 Mi: about 40 bytes each); past
    /// it both sides are spilled by key bucket and diffed bucket by bucket.
    #[must_use]
    pub fn memory_budget_rows(mut self, rows: usize) -> Self {
        self.memory_budget_rows = rows.max(1);
        self
    }

    /// Reads the new snapshot from `prefix` of `store`.
    #[must_use]
    pub fn source_store(
        mut self,
        store: Arc<dyn object_store::ObjectStore>,
        prefix: object_store::path::Path,
        label: &str,
    ) -> Self {
        self.source_store = Some(Place::Store { store, root: prefix, label: label.to_owned() });
        self
    }

    /// Reads the older snapshot (mode (a)) from `prefix` of `store`.
    #[must_use]
    pub fn previous_store(
        mut self,
        store: Arc<dyn object_store::ObjectStore>,
        prefix: object_store::path::Path,
        label: &str,
    ) -> Self {
        self.previous_store = Some(Place::Store { store, root: prefix, label: label.to_owned() });
        self
    }

    /// Writes the target table at `root` of `store`.
    #[must_use]
    pub fn target_store(mut self, store: Arc<dyn object_store::ObjectStore>, root: object_store::path::Path) -> Self {
        let label = format!("{store}/{root}");
        self.target_store = Some(Place::Store { store, root, label });
        self
    }

    pub(crate) fn target_place(&self) -> Place {
        self.target_store.clone().unwrap_or_else(|| Place::Location(self.target.clone()))
    }

    pub(crate) fn source_place(&self) -> Place {
        self.source_store.clone().unwrap_or_else(|| Place::Location(self.source.clone()))
    }

    pub(crate) fn previous_place(&self) -> Option<Place> {
        self.previous_store.clone().or_else(|| self.previous.clone().map(Place::Location))
    }

    /// Diffs and commits.
    pub async fn run(&self) -> Result<LoadReport> {
        self.check()?;
        Box::pin(crate::run::execute(self, false)).await
    }

    /// Computes the report of a run without writing anything.
    pub async fn plan(&self) -> Result<LoadReport> {
        self.check()?;
        Box::pin(crate::run::execute(self, true)).await
    }

    /// Checks the settings without touching a store (what `run` and `plan` check first): a
    /// configuration error here is one before any I/O.
    ///
    /// # Errors
    /// [`Error::Config`] (or a zone that does not parse) naming what is wrong.
    pub fn check(&self) -> Result<()> {
        if let Some(zone) = &self.naive_zone {
            highwater_core::zone::Zone::parse(zone)?;
        }
        if self.key.is_empty() {
            return Err(Error::Config("the key needs at least one column".into()));
        }
        if let Some(column) = self.key.iter().find(|k| self.ignore.contains(k) || self.tolerance.contains_key(*k)) {
            return Err(Error::Config(format!(
                "the key column `{column}` cannot be ignored or compared with a tolerance"
            )));
        }
        if !self.tolerance.is_empty() && self.previous_place().is_none() {
            return Err(Error::Config(
                "a float tolerance needs both snapshots (`previous`); against a stored index, round the column instead"
                    .into(),
            ));
        }
        if let Some((column, tolerance)) =
            self.tolerance.iter().find(|(_, t)| !(t.absolute >= 0.0 && t.relative >= 0.0))
        {
            return Err(Error::Config(format!("the tolerance of `{column}` must be non-negative, not {tolerance:?}")));
        }
        Ok(())
    }
}
