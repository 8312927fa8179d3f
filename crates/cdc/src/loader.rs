//! `CdcLoader`: the builder of a CDC apply and its settings.

use std::sync::Arc;
use std::time::Duration;

use highwater_core::cdc::{EventSpec, TiePolicy};
use highwater_core::debezium::{DebeziumOptions, OP_COLUMN, SequenceSource};
use highwater_core::report::LoadReport;
use highwater_store::TableOptions;
use highwater_store::incremental::{Place, RewrittenFiles};
use highwater_store::source::SourceOptions;
use highwater_store::write::{SchemaEvolution, SinkOptions};

use crate::error::{Error, Result};
use crate::history::Scd2;

/// Applies change events (an operation column and a sequence) to a keyed target table.
///
/// ```no_run
/// # async fn example() -> Result<(), highwater_cdc::Error> {
/// use highwater_cdc::{CdcLoader, TiePolicy};
///
/// let report = CdcLoader::new("s3://bucket/orders_cdc", "s3://bucket/orders")
///     .key(&["order_id"])
///     .sequence(&["binlog_file", "binlog_pos"]) // compared lexicographically
///     .operations(&["c", "r"], &["u"], &["d"]) // Debezium-style op codes
///     .tie(TiePolicy::DeleteWins)
///     .run()
///     .await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CdcLoader {
    pub(crate) sources: Vec<String>,
    pub(crate) target: String,
    pub(crate) table_name: String,
    pub(crate) spec: EventSpec,
    pub(crate) keep_sequence: bool,
    pub(crate) scd2: Option<Scd2>,
    pub(crate) debezium: Option<DebeziumOptions>,
    pub(crate) tombstone_retention: Option<Duration>,
    pub(crate) rewritten_files: RewrittenFiles,
    pub(crate) initial_watermark: Option<String>,
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

impl CdcLoader {
    /// A loader of the events at `source` into the table at `target`, with the seed's defaults:
    /// key `id`, operation column `operation` (`INSERT`/`UPDATE`/`DELETE`), sequence
    /// `sequence_num`; the table name defaults to the target's last path part.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        let target = target.into();
        let table_name = target.trim_end_matches('/').rsplit('/').next().unwrap_or("table").to_owned();
        CdcLoader {
            sources: vec![source.into()],
            target,
            table_name,
            spec: EventSpec::default(),
            keep_sequence: false,
            scd2: None,
            debezium: None,
            tombstone_retention: Some(Duration::from_secs(7 * 24 * 3600)),
            rewritten_files: RewrittenFiles::Reload,
            initial_watermark: None,
            watermark_path: None,
            source_options: SourceOptions::default(),
            sink: SinkOptions::default(),
            schema_evolution: SchemaEvolution::Fail,
            table_options: TableOptions::default(),
            batch_size: 64 * 1024,
            memory_budget_rows: 2 * 1024 * 1024,
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

    /// The primary key (one column or several).
    #[must_use]
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.spec.key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The operation column.
    #[must_use]
    pub fn op_column(mut self, column: impl Into<String>) -> Self {
        self.spec.op_column = column.into();
        self
    }

    /// The sequence: one column, or several compared lexicographically (`MySQL`'s
    /// `(file, pos, row)`).
    #[must_use]
    pub fn sequence(mut self, columns: &[&str]) -> Self {
        self.spec.sequence = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The operation values meaning insert, update and delete.
    #[must_use]
    pub fn operations(mut self, insert: &[&str], update: &[&str], delete: &[&str]) -> Self {
        let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
        self.spec.insert = owned(insert);
        self.spec.update = owned(update);
        self.spec.delete = owned(delete);
        self
    }

    /// Operation values meaning a table truncate (none by default): every row of the table
    /// written before it goes.
    #[must_use]
    pub fn truncate_values(mut self, values: &[&str]) -> Self {
        self.spec.truncate = values.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Compare operation values ignoring ASCII case.
    #[must_use]
    pub fn case_insensitive(mut self, yes: bool) -> Self {
        self.spec.case_insensitive = yes;
        self
    }

    /// What to do with two different events of one key at one sequence (default: fail).
    #[must_use]
    pub fn tie(mut self, policy: TiePolicy) -> Self {
        self.spec.tie = policy;
        self
    }

    /// The zone naive-timestamp sequences (and keys) are read in.
    #[must_use]
    pub fn naive_zone(mut self, zone: impl Into<String>) -> Self {
        self.spec.hash.naive_timezone = Some(zone.into());
        self
    }

    /// Keep the sequence columns in the target (default: dropped with the operation column).
    #[must_use]
    pub fn keep_sequence(mut self, yes: bool) -> Self {
        self.keep_sequence = yes;
        self
    }

    /// Read Debezium change events instead of flat ones: JSON lines (`.json`, `.jsonl`,
    /// `.ndjson`; with or without the `schema`/`payload` wrapper) and Parquet files of envelope
    /// columns (`.parquet`). The operation comes from `op`, the sequence from the source position
    /// (`options.sequence`: MySQL `(file, pos, row)`, PostgreSQL `(last commit LSN, LSN)`,
    /// detected from `source.connector` by default), the row from `after` (`before` for
    /// deletes); tombstone messages are skipped. Only [`CdcLoader::key`] needs setting.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), highwater_cdc::Error> {
    /// use highwater_cdc::{CdcLoader, DebeziumOptions};
    ///
    /// let report = CdcLoader::new("s3://bucket/topics/dbserver1.inventory.customers", "s3://bucket/customers")
    ///     .debezium(DebeziumOptions::default())
    ///     .key(&["id"])
    ///     .run()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn debezium(mut self, options: DebeziumOptions) -> Self {
        self.spec.op_column = OP_COLUMN.into();
        self.spec.insert = vec!["insert".into()];
        self.spec.update = vec!["update".into()];
        self.spec.delete = vec!["delete".into()];
        self.spec.truncate = vec!["truncate".into()];
        self.spec.case_insensitive = false;
        self.spec.sequence = options.sequence.columns().iter().map(|c| (*c).to_owned()).collect();
        if self.source_options.suffix.as_deref() == Some(".parquet") {
            self.source_options.suffix = None;
        }
        self.debezium = Some(options);
        self
    }

    /// This loader with the sequence columns of Debezium events of `sequence`.
    pub(crate) fn with_sequence(&self, sequence: SequenceSource) -> Self {
        let mut loader = self.clone();
        loader.spec.sequence = sequence.columns().iter().map(|c| (*c).to_owned()).collect();
        loader
    }

    /// Keep history: an SCD type 2 target, one row per version of a key with its validity
    /// (default: SCD type 1, the latest row per key). The sequence columns stay in the target
    /// (each version keeps its opening event's); late events are spliced into the history at
    /// their place. The choice is the table's: a table cannot change type.
    #[must_use]
    pub fn scd2(mut self, history: Scd2) -> Self {
        self.scd2 = Some(history);
        self
    }

    /// How long a deleted key's tombstone is kept (default 7 days; `None`: forever). While it
    /// lives, a late event older than the delete cannot resurrect the key; after it is purged,
    /// such an event applies as if the key were new.
    #[must_use]
    pub fn tombstone_retention(mut self, retention: Option<Duration>) -> Self {
        self.tombstone_retention = retention;
        self
    }

    /// What to do with an event file rewritten in place (default: read it again; its replayed
    /// events are ignored by the per-key state).
    #[must_use]
    pub fn rewritten_files(mut self, policy: RewrittenFiles) -> Self {
        self.rewritten_files = policy;
        self
    }

    /// Events at or below this sequence were applied before the table existed (the `PySpark`
    /// job's watermark): the first run ignores them. Parsed like a watermark of the sequence's
    /// type (`123`, `(file-7, 42)`).
    #[must_use]
    pub fn initial_watermark(mut self, watermark: impl Into<String>) -> Self {
        self.initial_watermark = Some(watermark.into());
        self
    }

    /// The seed's watermark table: imported as the initial watermark on the first run, mirrored
    /// after each commit.
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

    /// What to do with event columns the table lacks.
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

    /// Event rows (and change rows of the merge) held in memory at most (default 2 Mi); more
    /// are spilled to the run's staging area by key bucket and applied bucket by bucket.
    #[must_use]
    pub fn memory_budget_rows(mut self, rows: usize) -> Self {
        self.memory_budget_rows = rows.max(1);
        self
    }

    /// Reads the events from `prefix` of `store` (`label` names it in the ledger).
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

    /// Applies the new events and commits.
    pub async fn run(&self) -> Result<LoadReport> {
        self.check()?;
        Box::pin(crate::run::execute(self, false)).await
    }

    /// Computes the report of a run without writing anything. Without a merge it cannot tell an
    /// update of a row the table had before CDC began (an adopted row) from an insert, and it
    /// holds every new event in memory.
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
        let spec = &self.spec;
        if let Some(zone) = &spec.hash.naive_timezone {
            highwater_core::zone::Zone::parse(zone)?;
        }
        if spec.key.is_empty() {
            return Err(Error::Config("the key needs at least one column".into()));
        }
        if spec.sequence.is_empty() && self.debezium.as_ref().is_none_or(|d| d.sequence != SequenceSource::Auto) {
            return Err(Error::Config("the sequence needs at least one column".into()));
        }
        if let Some(column) = spec.key.iter().find(|k| spec.sequence.contains(k) || **k == spec.op_column) {
            return Err(Error::Config(format!(
                "`{column}` cannot be both a key column and an operation or sequence column"
            )));
        }
        if spec.sequence.contains(&spec.op_column) {
            return Err(Error::Config(format!(
                "`{}` cannot be both the operation and a sequence column",
                spec.op_column
            )));
        }
        if let Some(scd2) = &self.scd2 {
            scd2.time_column(spec)?;
            let names = [&scd2.valid_from, &scd2.valid_to, &scd2.is_current, &scd2.is_deleted];
            if let Some(name) = names.iter().find(|n| spec.key.contains(n) || spec.sequence.contains(n)) {
                return Err(Error::Config(format!(
                    "`{name}` cannot be both a history column and a key or sequence column"
                )));
            }
        }
        if spec.insert.is_empty() && spec.update.is_empty() {
            return Err(Error::Config("no operation value means insert or update".into()));
        }
        let all: Vec<&String> =
            [&spec.insert, &spec.update, &spec.delete, &spec.truncate].into_iter().flatten().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                let same = if spec.case_insensitive { a.eq_ignore_ascii_case(b) } else { a == b };
                if same {
                    return Err(Error::Config(format!("the operation value `{a}` means two different operations")));
                }
            }
        }
        Ok(())
    }
}
