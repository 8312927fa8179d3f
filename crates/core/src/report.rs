//! `LoadReport`: what a run read, wrote, skipped and committed.
//!
//! One report type is shared by every pattern crate, the CLI (`--json` prints it as is) and the
//! wasm crate. The common part counts rows, files, row groups and bytes, names late and rewritten
//! files, and records the watermark before and after, phase timings and the committed version;
//! [`PatternReport`] adds what only one pattern knows.
//!
//! Field names are part of the JSON contract: they are only ever added to, never renamed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::change::ChangeCounts;
use crate::watermark::{StartBound, WatermarkValue};

/// The four loading patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Rows past a timestamp (or date) watermark.
    Timestamp,
    /// Rows past a monotonic id.
    Sequence,
    /// Change events applied in sequence order.
    Cdc,
    /// A snapshot compared with the previous one.
    Diff,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pattern::Timestamp => "timestamp",
            Pattern::Sequence => "sequence",
            Pattern::Cdc => "cdc",
            Pattern::Diff => "diff",
        })
    }
}

/// Row counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RowCounts {
    /// Rows decoded from the source (after pruning).
    pub read: u64,
    /// Rows written to the target.
    pub written: u64,
    /// Rows that became new keys (or, for appends, every appended row).
    pub inserted: u64,
    /// Rows that replaced an existing key's row.
    pub updated: u64,
    /// Keys removed.
    pub deleted: u64,
    /// Rows read but not loaded: outside the window, duplicates, held back (see the pattern part).
    pub skipped: u64,
}

impl RowCounts {
    /// Adds a change set's counts to inserted/updated/deleted.
    pub fn add_changes(&mut self, counts: ChangeCounts) {
        self.inserted += counts.inserted;
        self.updated += counts.updated;
        self.deleted += counts.deleted;
    }
}

/// File counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileCounts {
    /// Files in the run's listing of the source.
    pub listed: u64,
    /// Files whose data was read.
    pub scanned: u64,
    /// Files skipped by statistics, partition values or the ledger.
    pub pruned: u64,
    /// Files new since the previous run's ledger.
    pub new: u64,
    /// New files whose cursor values lie at or below the watermark.
    pub late: u64,
    /// Files rewritten in place (same path, other size or etag).
    pub rewritten: u64,
    /// Files of the previous ledger that are gone.
    pub gone: u64,
    /// Data files written to the target.
    pub written: u64,
    /// Target files replaced by rewritten ones.
    pub replaced: u64,
}

/// Row-group counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RowGroupCounts {
    /// Row groups decoded.
    pub scanned: u64,
    /// Row groups skipped by statistics.
    pub pruned: u64,
}

/// Byte counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ByteCounts {
    /// Bytes fetched from the store (footers, pages, state).
    pub read: u64,
    /// Bytes written to the store (data, state, the commit).
    pub written: u64,
}

/// The time one phase of a run took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `list`, `plan`, `read`, `write`, `commit`, `publish`, …
    pub name: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The part of a report only the timestamp loader fills.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimestampReport {
    /// Where the window started.
    pub window_start: Option<StartBound>,
    /// Where the window ended (inclusive), when bounded.
    pub window_end: Option<WatermarkValue>,
    /// Rows at the boundary value already loaded by the previous run, skipped.
    pub boundary_duplicates: u64,
    /// Rows re-read by the lookback and already loaded, skipped.
    pub lookback_duplicates: u64,
    /// Rows past the window's end (settle, `end`), left for a later run.
    pub held_back: u64,
    /// Rows whose cursor was null (per the null-cursor policy).
    pub null_cursors: u64,
}

/// A run of missing sequence ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceGap {
    /// The first missing id.
    pub first: i64,
    /// The last missing id.
    pub last: i64,
}

/// The part of a report only the sequence loader fills.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceReport {
    /// Gaps in the loaded ids (the first ones, up to a limit; `gap_count` has them all).
    pub gaps: Vec<SequenceGap>,
    /// How many gaps there were.
    pub gap_count: u64,
    /// How many ids the gaps miss in all.
    pub missing_ids: u64,
    /// Rows whose id was seen before (in this run or already loaded).
    pub duplicates: u64,
    /// Rows held back behind a gap (`hold_on_gap`) or past `end`.
    pub held_back: u64,
    /// Rows whose id was null (per the null-cursor policy).
    pub null_cursors: u64,
}

/// The part of a report only the CDC loader fills.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CdcReport {
    /// Change events read.
    pub events: u64,
    /// Keys inserted (SCD type 2: versions opened).
    pub inserted: u64,
    /// Keys updated (SCD type 2: versions re-bounded or updated in place).
    pub updated: u64,
    /// Keys deleted (SCD type 2: versions removed, when a late event merges them away).
    pub deleted: u64,
    /// Events older than the key's applied state, ignored.
    pub ignored_stale: u64,
    /// Exact replays of events already applied, ignored.
    pub ignored_duplicate: u64,
    /// Events of a key that a later event of the same run overrides.
    pub superseded: u64,
    /// Delete tombstones written.
    pub tombstoned: u64,
    /// Tombstones past their retention, dropped.
    pub purged: u64,
    /// Truncate events applied.
    pub truncates: u64,
    /// Debezium tombstone messages (null values after a delete) skipped.
    pub kafka_tombstones: u64,
}

/// A column that appeared, disappeared or changed type between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    /// The column.
    pub column: String,
    /// What happened: `added`, `removed` or `type_changed`.
    pub change: String,
    /// The type before, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The type after, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The part of a report only the snapshot diff fills.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffReport {
    /// Rows of the previous snapshot (or index).
    pub rows_before: u64,
    /// Rows of the new snapshot.
    pub rows_after: u64,
    /// Keys only in the new snapshot.
    pub inserted: u64,
    /// Keys in both whose row hash changed.
    pub updated: u64,
    /// Keys only in the previous snapshot.
    pub deleted: u64,
    /// Keys in both with equal row hashes.
    pub unchanged: u64,
    /// Key-fingerprint buckets the diff was split into.
    pub buckets: u64,
    /// Columns added, removed or retyped.
    pub schema_changes: Vec<SchemaChange>,
}

/// What only one pattern reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternReport {
    /// From the timestamp loader.
    Timestamp(TimestampReport),
    /// From the sequence loader.
    Sequence(SequenceReport),
    /// From the CDC loader.
    Cdc(CdcReport),
    /// From the snapshot diff.
    Diff(DiffReport),
}

impl PatternReport {
    /// The pattern this part belongs to.
    pub fn pattern(&self) -> Pattern {
        match self {
            PatternReport::Timestamp(_) => Pattern::Timestamp,
            PatternReport::Sequence(_) => Pattern::Sequence,
            PatternReport::Cdc(_) => Pattern::Cdc,
            PatternReport::Diff(_) => Pattern::Diff,
        }
    }
}

/// The report of one run (or one plan: nothing committed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// The table's name.
    pub table: String,
    /// The run's id (also in the commit).
    pub run_id: String,
    /// `true` for `plan()`: counts are what a run would do; nothing was written.
    pub planned: bool,
    /// Row counts.
    pub rows: RowCounts,
    /// File counts.
    pub files: FileCounts,
    /// Row-group counts.
    pub row_groups: RowGroupCounts,
    /// Byte counts.
    pub bytes: ByteCounts,
    /// Source files that arrived late (new, but at or below the watermark).
    #[serde(default)]
    pub late_files: Vec<String>,
    /// Source files rewritten in place since the last run.
    #[serde(default)]
    pub rewritten_files: Vec<String>,
    /// The watermark when the run started.
    pub watermark_before: Option<WatermarkValue>,
    /// The watermark the run committed (or would commit).
    pub watermark_after: Option<WatermarkValue>,
    /// Phase timings, in order.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// The committed table version; `None` for plans and for runs with nothing to commit.
    pub commit_version: Option<u64>,
    /// Things a user should know that did not stop the run.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The pattern's own part.
    pub details: PatternReport,
}

impl LoadReport {
    /// An empty report for a run of `table`.
    pub fn new(table: impl Into<String>, run_id: impl Into<String>, details: PatternReport) -> Self {
        LoadReport {
            table: table.into(),
            run_id: run_id.into(),
            planned: false,
            rows: RowCounts::default(),
            files: FileCounts::default(),
            row_groups: RowGroupCounts::default(),
            bytes: ByteCounts::default(),
            late_files: Vec::new(),
            rewritten_files: Vec::new(),
            watermark_before: None,
            watermark_after: None,
            phases: Vec::new(),
            commit_version: None,
            warnings: Vec::new(),
            details,
        }
    }

    /// The pattern of the run.
    pub fn pattern(&self) -> Pattern {
        self.details.pattern()
    }

    /// Records a phase's duration.
    pub fn phase(&mut self, name: &str, elapsed: Duration) {
        self.phases.push(Phase { name: name.to_owned(), seconds: elapsed.as_secs_f64() });
    }

    /// The sum of the phase timings.
    pub fn total_seconds(&self) -> f64 {
        // Folded from +0.0: an empty `f64` sum is -0.0, which prints as "-0.00 s".
        self.phases.iter().fold(0.0, |total, phase| total + phase.seconds)
    }
}

/// A short, human-readable summary (the CLI prints a richer table).
impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.planned { "would load" } else { "loaded" };
        writeln!(
            f,
            "{} ({}): {verb} {} of {} rows read",
            self.table,
            self.pattern(),
            self.rows.written,
            self.rows.read
        )?;
        writeln!(
            f,
            "  rows: +{} ~{} -{} skipped {}; files: {} listed, {} scanned, {} pruned, {} late; row groups: {} scanned, {} pruned",
            self.rows.inserted,
            self.rows.updated,
            self.rows.deleted,
            self.rows.skipped,
            self.files.listed,
            self.files.scanned,
            self.files.pruned,
            self.files.late,
            self.row_groups.scanned,
            self.row_groups.pruned,
        )?;
        let show = |w: &Option<WatermarkValue>| w.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string);
        write!(f, "  watermark: {} -> {}", show(&self.watermark_before), show(&self.watermark_after))?;
        match self.commit_version {
            Some(version) => write!(f, "; committed version {version}"),
            None if self.planned => write!(f, "; plan only, nothing committed"),
            None => write!(f, "; nothing to commit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_the_pattern_part() {
        let mut report =
            LoadReport::new("orders", "run-1", PatternReport::Cdc(CdcReport { events: 5, ..Default::default() }));
        report.rows.read = 5;
        report.watermark_after = Some(WatermarkValue::int64(42));
        report.phase("read", Duration::from_millis(1500));
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""cdc":{"events":5"#), "{json}");
        let back: LoadReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert_eq!(back.pattern(), Pattern::Cdc);
        assert!(report.to_string().contains("orders (cdc)"));
    }
}
