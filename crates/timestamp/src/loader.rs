//! `TimestampLoader`: the builder of a timestamp load and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use highwater_core::report::LoadReport;
use highwater_store::TableOptions;
use highwater_store::incremental::{LateFiles, NullCursors, OutputMode, Place, RewrittenFiles};
use highwater_store::source::SourceOptions;
use highwater_store::write::{SchemaEvolution, SinkOptions};

use crate::error::{Error, Result};

/// Computes a cursor from a batch: the seed's "custom watermark logic".
pub type CursorFunction = Arc<dyn Fn(&RecordBatch) -> Result<ArrayRef, String> + Send + Sync>;

/// Where the cursor comes from.
#[derive(Clone)]
pub enum Cursor {
    /// A timestamp or date column.
    Column(String),
    /// A function of the batch, named for messages; `columns` are the columns it reads (the
    /// only ones decoded besides the output). Row groups cannot be pruned by its values.
    Function {
        /// Its name.
        name: String,
        /// The columns it reads.
        columns: Vec<String>,
        /// The function.
        compute: CursorFunction,
    },
}

impl Cursor {
    /// The name used in messages and reports.
    pub fn name(&self) -> &str {
        match self {
            Cursor::Column(name) | Cursor::Function { name, .. } => name,
        }
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::Column(name) => write!(f, "Column({name})"),
            Cursor::Function { name, columns, .. } => write!(f, "Function({name} of {columns:?})"),
        }
    }
}

/// Loads rows whose cursor (`modified_date`) lies past the table's watermark.
///
/// ```no_run
/// # async fn example() -> Result<(), highwater_timestamp::Error> {
/// use std::time::Duration;
/// use highwater_timestamp::TimestampLoader;
///
/// let report = TimestampLoader::new("s3://bucket/source_data", "s3://bucket/target_data")
///     .cursor("modified_date")
///     .lookback(Duration::from_secs(3600)) // the seed's late-data example
///     .run()
///     .await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TimestampLoader {
    pub(crate) sources: Vec<String>,
    pub(crate) target: String,
    pub(crate) table_name: String,
    pub(crate) cursor: Cursor,
    pub(crate) naive_timezone: Option<String>,
    pub(crate) key: Vec<String>,
    pub(crate) mode: OutputMode,
    pub(crate) lookback: Option<Duration>,
    pub(crate) settle: Option<Duration>,
    pub(crate) start: Option<String>,
    pub(crate) end: Option<String>,
    pub(crate) replace: bool,
    pub(crate) late_files: LateFiles,
    pub(crate) rewritten_files: RewrittenFiles,
    pub(crate) null_cursors: NullCursors,
    pub(crate) max_rows: Option<u64>,
    pub(crate) row_hash_identity: bool,
    pub(crate) initial_watermark: Option<String>,
    pub(crate) watermark_path: Option<String>,
    pub(crate) seed_timezone: String,
    pub(crate) source_options: SourceOptions,
    pub(crate) sink: SinkOptions,
    pub(crate) schema_evolution: SchemaEvolution,
    pub(crate) table_options: TableOptions,
    pub(crate) batch_size: usize,
    pub(crate) memory_budget_rows: usize,
    /// Store handles that replace the location strings (embedding, tests).
    pub(crate) source_store: Option<Place>,
    pub(crate) target_store: Option<Place>,
}

impl TimestampLoader {
    /// A loader from `source` (a folder or prefix of Parquet files) into the table at `target`.
    /// The cursor defaults to `modified_date`, the table name to the target's last path part.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        let target = target.into();
        let table_name = target.trim_end_matches('/').rsplit('/').next().unwrap_or("table").to_owned();
        TimestampLoader {
            sources: vec![source.into()],
            target,
            table_name,
            cursor: Cursor::Column("modified_date".into()),
            naive_timezone: None,
            key: Vec::new(),
            mode: OutputMode::Append,
            lookback: None,
            settle: None,
            start: None,
            end: None,
            replace: false,
            late_files: LateFiles::Load,
            rewritten_files: RewrittenFiles::Error,
            null_cursors: NullCursors::Error,
            max_rows: None,
            row_hash_identity: false,
            initial_watermark: None,
            watermark_path: None,
            seed_timezone: "UTC".into(),
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

    /// Reads the source from `prefix` of `store` instead of the source location (`label` names
    /// it in the ledger and messages).
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

    /// Writes the target table at `root` of `store` instead of the target location.
    #[must_use]
    pub fn target_store(mut self, store: Arc<dyn object_store::ObjectStore>, root: object_store::path::Path) -> Self {
        let label = format!("{store}/{root}");
        self.target_store = Some(Place::Store { store, root, label });
        self
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

    /// The cursor column (a timestamp of any unit and zone, or a date).
    #[must_use]
    pub fn cursor(mut self, column: impl Into<String>) -> Self {
        self.cursor = Cursor::Column(column.into());
        self
    }

    /// A cursor computed from each batch (a timestamp or date array, one value per row).
    #[must_use]
    pub fn cursor_fn(
        mut self,
        name: impl Into<String>,
        columns: &[&str],
        compute: impl Fn(&RecordBatch) -> Result<ArrayRef, String> + Send + Sync + 'static,
    ) -> Self {
        self.cursor = Cursor::Function {
            name: name.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            compute: Arc::new(compute),
        };
        self
    }

    /// The zone naive (zone-less) cursor timestamps were recorded in. Required for them.
    #[must_use]
    pub fn naive_timezone(mut self, zone: impl Into<String>) -> Self {
        self.naive_timezone = Some(zone.into());
        self
    }

    /// A primary key: row identity for lookback dedup, and the key of upserts.
    #[must_use]
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Append (default) or upsert by key.
    #[must_use]
    pub fn mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    /// Re-read rows this far before the watermark, loading those not loaded yet (late commits
    /// of rewritten or snapshot-style sources).
    #[must_use]
    pub fn lookback(mut self, lookback: Duration) -> Self {
        self.lookback = Some(lookback);
        self
    }

    /// Leave rows newer than `now - settle` for a later run (writers still committing).
    #[must_use]
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = Some(settle);
        self
    }

    /// A backfill starting after `start` (exclusive), instead of after the watermark.
    #[must_use]
    pub fn start(mut self, start: impl Into<String>) -> Self {
        self.start = Some(start.into());
        self
    }

    /// Load nothing past `end` (inclusive): a bounded backfill.
    #[must_use]
    pub fn end(mut self, end: impl Into<String>) -> Self {
        self.end = Some(end.into());
        self
    }

    /// Allow a backfill to reload a range already loaded (its rows are replaced).
    #[must_use]
    pub fn replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// The late-file policy.
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

    /// The null-cursor policy.
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

    /// Identify rows by their whole content in lookback dedup (opt-in: identical rows can be
    /// real, different rows).
    #[must_use]
    pub fn row_hash_identity(mut self, enabled: bool) -> Self {
        self.row_hash_identity = enabled;
        self
    }

    /// The watermark to start from (exclusive) when the table has none yet, in the seed's
    /// string form (`2024-01-15 10:30:00`) read in the seed zone.
    #[must_use]
    pub fn initial_watermark(mut self, watermark: impl Into<String>) -> Self {
        self.initial_watermark = Some(watermark.into());
        self
    }

    /// The seed's watermark table: imported on the first run, mirrored after each commit.
    #[must_use]
    pub fn watermark_path(mut self, path: impl Into<String>) -> Self {
        self.watermark_path = Some(path.into());
        self
    }

    /// The zone of the seed's naive watermark strings (default UTC).
    #[must_use]
    pub fn seed_timezone(mut self, zone: impl Into<String>) -> Self {
        self.seed_timezone = zone.into();
        self
    }

    /// How the source is listed (minimum file age, an explicit file list).
    #[must_use]
    pub fn source_options(mut self, options: SourceOptions) -> Self {
        self.source_options = options;
        self
    }

    /// How data files are written (partitioning, codec, file size).
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

    /// How the target table is written (publish mode, checkpoints, retention).
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

    /// Change rows an upsert holds in memory at most before spilling by key bucket.
    #[must_use]
    pub fn memory_budget_rows(mut self, rows: usize) -> Self {
        self.memory_budget_rows = rows.max(1);
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
    /// [`Error::Config`] (or a zone that does not parse) naming what is wrong.
    pub fn check(&self) -> Result<()> {
        if let Some(zone) = &self.naive_timezone {
            highwater_core::zone::Zone::parse(zone)?;
        }
        highwater_core::zone::Zone::parse(&self.seed_timezone)?;
        if self.mode == OutputMode::Upsert && self.key.is_empty() {
            return Err(Error::Config("upsert mode needs a key".into()));
        }
        if self.rewritten_files == RewrittenFiles::Reload && self.mode != OutputMode::Upsert {
            return Err(Error::Config(
                "rewritten_files = reload only deduplicates in upsert mode (with a key); in append mode it would \
                 load rows twice"
                    .into(),
            ));
        }
        if self.replace && self.start.is_none() {
            return Err(Error::Config("replace applies to a backfill: set start (and end)".into()));
        }
        Ok(())
    }
}
