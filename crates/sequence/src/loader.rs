//! `SequenceLoader`: the builder of a sequence load and its settings.

use std::sync::Arc;
use std::time::Duration;

use highwater_core::report::LoadReport;
use highwater_store::TableOptions;
use highwater_store::incremental::{LateFiles, NullCursors, OutputMode, Place, RewrittenFiles};
use highwater_store::source::SourceOptions;
use highwater_store::write::{SchemaEvolution, SinkOptions};

use crate::error::{Error, Result};

/// Loads rows whose monotonic id (`sequence_id`) lies past the table's watermark, in order.
///
/// ```no_run
/// # async fn example() -> Result<(), highwater_sequence::Error> {
/// use std::time::Duration;
/// use highwater_sequence::SequenceLoader;
///
/// let report = SequenceLoader::new("s3://bucket/events", "s3://bucket/events_loaded")
///     .column("sequence_id")
///     .hold_on_gap(Duration::from_secs(600)) // wait up to 10 minutes for a missing id
///     .run()
///     .await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SequenceLoader {
    pub(crate) sources: Vec<String>,
    pub(crate) target: String,
    pub(crate) table_name: String,
    pub(crate) column: String,
    pub(crate) key: Vec<String>,
    pub(crate) mode: OutputMode,
    pub(crate) end: Option<i64>,
    pub(crate) hold_on_gap: Option<Duration>,
    pub(crate) late_files: LateFiles,
    pub(crate) rewritten_files: RewrittenFiles,
    pub(crate) null_cursors: NullCursors,
    pub(crate) max_rows: Option<u64>,
    pub(crate) initial_watermark: Option<i64>,
    pub(crate) watermark_path: Option<String>,
    pub(crate) source_options: SourceOptions,
    pub(crate) sink: SinkOptions,
    pub(crate) schema_evolution: SchemaEvolution,
    pub(crate) table_options: TableOptions,
    pub(crate) batch_size: usize,
    pub(crate) memory_budget_rows: usize,
    pub(crate) source_store: Option<Place>,
    pub(crate) target_store: Option<Place>,
}

impl SequenceLoader {
    /// A loader from `source` into the table at `target`; the id column defaults to
    /// `sequence_id`, the table name to the target's last path part.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        let target = target.into();
        let table_name = target.trim_end_matches('/').rsplit('/').next().unwrap_or("table").to_owned();
        SequenceLoader {
            sources: vec![source.into()],
            target,
            table_name,
            column: "sequence_id".into(),
            key: Vec::new(),
            mode: OutputMode::Append,
            end: None,
            hold_on_gap: None,
            late_files: LateFiles::Load,
            rewritten_files: RewrittenFiles::Error,
            null_cursors: NullCursors::Error,
            max_rows: None,
            initial_watermark: None,
            watermark_path: None,
            source_options: SourceOptions::default(),
            sink: SinkOptions::default(),
            schema_evolution: SchemaEvolution::Fail,
            table_options: TableOptions::default(),
            batch_size: 64 * 1024,
            memory_budget_rows: 4 * 1024 * 1024,
            source_store: None,
            target_store: None,
        }
    }

    /// Another source location read with the first.
    #[must_use]
    pub fn also_source(mut self, source: impl Into<String>) -> Self {
        self.sources.push(source.into());
        self
    }

    /// The table's name (in reports and the seed's watermark table).
    #[must_use]
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.table_name = name.into();
        self
    }

    /// The sequence column (an integer column).
    #[must_use]
    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = column.into();
        self
    }

    /// A primary key, for upsert mode.
    #[must_use]
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Append (default) or upsert by key (the sequence orders versions of a key).
    #[must_use]
    pub fn mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    /// Load nothing past this id (inclusive).
    #[must_use]
    pub fn end(mut self, end: i64) -> Self {
        self.end = Some(end);
        self
    }

    /// Stop before the first missing id, until it has been missing for `timeout` (then load past
    /// it and report the gap). Buffers the run's rows to find the gap first.
    #[must_use]
    pub fn hold_on_gap(mut self, timeout: Duration) -> Self {
        self.hold_on_gap = Some(timeout);
        self
    }

    /// The late-file policy (new files with ids at or below the watermark: gap fills).
    #[must_use]
    pub fn late_files(mut self, policy: LateFiles) -> Self {
        self.late_files = policy;
        self
    }

    /// The rewritten-file policy.
    #[must_use]
    pub fn rewritten_files(mut self, policy: RewrittenFiles) -> Self {
        self.rewritten_files = policy;
        self
    }

    /// The null-id policy.
    #[must_use]
    pub fn null_cursors(mut self, policy: NullCursors) -> Self {
        self.null_cursors = policy;
        self
    }

    /// Fail (committing nothing) when a run would load more rows than this.
    #[must_use]
    pub fn max_rows(mut self, rows: u64) -> Self {
        self.max_rows = Some(rows);
        self
    }

    /// The id to start after (exclusive) when the table has no watermark yet.
    #[must_use]
    pub fn initial_watermark(mut self, id: i64) -> Self {
        self.initial_watermark = Some(id);
        self
    }

    /// The seed's watermark table: imported on the first run, mirrored after each commit.
    #[must_use]
    pub fn watermark_path(mut self, path: impl Into<String>) -> Self {
        self.watermark_path = Some(path.into());
        self
    }

    /// How the source is listed.
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

    /// What to do with source columns the table lacks.
    #[must_use]
    pub fn schema_evolution(mut self, policy: SchemaEvolution) -> Self {
        self.schema_evolution = policy;
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

    /// Reads the source from `prefix` of `store` (`label` names it in the ledger).
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
        self.source_store.clone().unwrap_or_else(|| Place::Location(self.sources[0].clone()))
    }

    /// Loads and commits.
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
    /// [`Error::Config`] naming what is wrong.
    pub fn check(&self) -> Result<()> {
        if self.mode == OutputMode::Upsert && self.key.is_empty() {
            return Err(Error::Config("upsert mode needs a key".into()));
        }
        if self.rewritten_files == RewrittenFiles::Reload && self.mode != OutputMode::Upsert {
            return Err(Error::Config("rewritten_files = reload only deduplicates in upsert mode (with a key)".into()));
        }
        Ok(())
    }
}
