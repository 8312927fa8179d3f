//! What the cursor-based loaders (timestamp and sequence) share: the source policies of
//! DESIGN's "no silent skips", cursor values as comparable ticks, and the ledger as state.
//!
//! # Guarantees
//! - A new file whose rows lie at or below the watermark (a *late file*) is loaded by default,
//!   reported, or refused — never silently skipped.
//! - A file rewritten in place is refused by default; it is reloaded only where rows are
//!   deduplicated by key, and never silently re-appended.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use arrow_array::{Array, ArrayRef, Int64Array};
use arrow_schema::{DataType, TimeUnit};
use highwater_core::watermark::{StartBound, WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use serde::{Deserialize, Serialize};

use crate::commit::Snapshot;
use crate::error::{Error, Result};
use crate::source::{Ledger, Listing};
use crate::table::Table;

/// The state file name of the source ledger.
pub const LEDGER_STATE: &str = "ledger";

/// What to do with a new file whose rows lie at or below the watermark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateFiles {
    /// Load its rows (they were never seen) and report the file (default).
    #[default]
    Load,
    /// Skip the rows at or below the watermark, and report the file.
    Skip,
    /// Fail the run.
    Error,
}

/// What to do with a file rewritten in place (same path, other size or etag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewrittenFiles {
    /// Fail the run (default): the rows it held may have been loaded already.
    #[default]
    Error,
    /// Ignore the new content, and report the file.
    Skip,
    /// Read it again; only where rows are deduplicated by key (upsert mode).
    Reload,
}

/// What to do with rows whose cursor is null.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullCursors {
    /// Fail the run, naming the file and row (default).
    #[default]
    Error,
    /// Skip them and count them.
    Skip,
    /// Load them (they never move the watermark).
    Load,
}

/// How loaded rows reach the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// New files with the new rows (default).
    #[default]
    Append,
    /// Merge by key: the latest cursor per key wins, a target row never regresses.
    Upsert,
}

/// The previous run's ledger of the table, if it has one.
pub async fn previous_ledger(table: &Table, snapshot: &Snapshot) -> Result<Option<Ledger>> {
    match snapshot.state.get(LEDGER_STATE) {
        Some(reference) => Ok(Some(Ledger::from_bytes(&table.read_state(reference).await?, &reference.path)?)),
        None => Ok(None),
    }
}

/// The schema a run's scan reads rows under: the plan's, except that a source with no file at
/// all reads as no rows of the table's columns (not as a table without columns).
pub fn scanned_schema(
    listing: &crate::source::Listing,
    plan: &crate::source::ScanPlan,
    table: Option<&arrow_schema::SchemaRef>,
) -> arrow_schema::SchemaRef {
    match table {
        Some(table) if listing.files.is_empty() => Arc::clone(table),
        _ => Arc::clone(&plan.schema),
    }
}

/// The ledger to commit: this run's listing, plus entries of files the run left unread on
/// purpose (rewritten files skipped keep their old entry, so they stay reported as rewritten).
pub fn next_ledger(
    listing: &Listing,
    previous: Option<&Ledger>,
    keep_previous: &[Arc<crate::source::SourceFile>],
) -> Ledger {
    let mut ledger = Ledger::of(listing);
    if let Some(previous) = previous {
        for file in keep_previous {
            if let Some(entry) = previous.get(&file.key) {
                ledger.insert(file.key.clone(), entry.clone());
            }
        }
    }
    ledger
}

/// How cursor values compare: as `i64` ticks of the column's own unit (seconds … nanoseconds
/// since the epoch in UTC, days, or integers), so that filtering needs no conversion per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorTicks {
    /// Integers.
    Integer,
    /// Days since the epoch.
    Days,
    /// Timestamps in `unit` (UTC instants).
    Timestamp(TimeUnit),
}

impl CursorTicks {
    /// The ticks of a cursor column of `data_type`.
    pub fn of(column: &str, data_type: &DataType) -> Result<Self> {
        use DataType as D;
        Ok(match data_type {
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 => CursorTicks::Integer,
            D::Date32 | D::Date64 => CursorTicks::Days,
            D::Timestamp(unit, _) => CursorTicks::Timestamp(*unit),
            other => {
                return Err(Error::SchemaMismatch {
                    file: String::new(),
                    column: column.to_owned(),
                    detail: format!("a cursor must be an integer, date or timestamp column, not {other}"),
                });
            }
        })
    }

    fn nanos_per_tick(self) -> i128 {
        match self {
            CursorTicks::Timestamp(TimeUnit::Second) => 1_000_000_000,
            CursorTicks::Timestamp(TimeUnit::Millisecond) => 1_000_000,
            CursorTicks::Timestamp(TimeUnit::Microsecond) => 1_000,
            _ => 1,
        }
    }

    /// The largest tick at or below `value` (`None` if `value` is of another kind).
    pub fn floor(self, value: &WatermarkValue) -> Option<i64> {
        match (self, value) {
            (CursorTicks::Integer, WatermarkValue::Int64 { value }) => Some(*value),
            (CursorTicks::Days, WatermarkValue::Date { days }) => Some(i64::from(*days)),
            (CursorTicks::Timestamp(_), WatermarkValue::Timestamp { .. }) => {
                let nanos = value.timestamp_nanos()?;
                Some(nanos.div_euclid(self.nanos_per_tick()).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
            }
            _ => None,
        }
    }

    /// The smallest tick at or above `value`.
    pub fn ceil(self, value: &WatermarkValue) -> Option<i64> {
        let floor = self.floor(value)?;
        match (self, value) {
            (CursorTicks::Timestamp(_), WatermarkValue::Timestamp { .. }) => {
                let exact = i128::from(floor) * self.nanos_per_tick() == value.timestamp_nanos()?;
                Some(if exact { floor } else { floor.saturating_add(1) })
            }
            _ => Some(floor),
        }
    }

    /// The tick range of a window: rows with `lower <= tick <= upper` are inside.
    pub fn window(self, start: &StartBound, end: Option<&WatermarkValue>) -> Result<(i64, i64)> {
        let mismatch = |value: &WatermarkValue| {
            Error::Core(highwater_core::Error::WatermarkTypeMismatch {
                expected: format!("{self:?}"),
                found: value.to_string(),
            })
        };
        let lower = match start {
            StartBound::Unbounded => i64::MIN,
            StartBound::Exclusive(value) => self.floor(value).ok_or_else(|| mismatch(value))?.saturating_add(1),
            StartBound::Inclusive(value) => self.ceil(value).ok_or_else(|| mismatch(value))?,
        };
        let upper = match end {
            None => i64::MAX,
            Some(value) => self.floor(value).ok_or_else(|| mismatch(value))?,
        };
        Ok((lower, upper))
    }

    /// The watermark of a tick, displayed in `timezone`.
    pub fn value(self, tick: i64, timezone: Option<&str>) -> WatermarkValue {
        match self {
            CursorTicks::Integer => WatermarkValue::int64(tick),
            CursorTicks::Days => WatermarkValue::date(tick as i32),
            CursorTicks::Timestamp(unit) => {
                WatermarkValue::Timestamp { value: tick, unit: unit.into(), timezone: timezone.map(str::to_owned) }
            }
        }
    }
}

/// A cursor column as ticks (nulls kept), naive timestamps read in `naive_zone`.
pub fn cursor_ticks(column: &str, array: &ArrayRef, naive_zone: Option<&Zone>) -> Result<Int64Array> {
    use DataType as D;
    let ticks: Int64Array = match array.data_type() {
        D::Int8 => array.as_primitive::<Int8Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::Int16 => array.as_primitive::<Int16Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::Int32 => array.as_primitive::<Int32Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::Int64 => array.as_primitive::<Int64Type>().clone(),
        D::UInt8 => array.as_primitive::<UInt8Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::UInt16 => array.as_primitive::<UInt16Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::UInt32 => array.as_primitive::<UInt32Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::Date32 => array.as_primitive::<Date32Type>().iter().map(|v| v.map(i64::from)).collect(),
        D::Date64 => array.as_primitive::<Date64Type>().iter().map(|v| v.map(|ms| ms.div_euclid(86_400_000))).collect(),
        D::Timestamp(unit, zone) => {
            let raw: Int64Array = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().reinterpret_cast(),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().reinterpret_cast(),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().reinterpret_cast(),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().reinterpret_cast(),
            };
            match (zone, naive_zone) {
                (Some(_), _) => raw,
                (None, Some(zone)) if zone.is_utc() => raw,
                (None, Some(zone)) => {
                    let per = CursorTicks::Timestamp(*unit).nanos_per_tick();
                    let mut converted = Vec::with_capacity(raw.len());
                    for (row, value) in raw.iter().enumerate() {
                        converted.push(match value {
                            None => None,
                            Some(local) => {
                                let utc = zone.local_to_utc_nanos(i128::from(local) * per, column, row)?;
                                Some(utc.div_euclid(per) as i64)
                            }
                        });
                    }
                    converted.into_iter().collect()
                }
                (None, None) => {
                    return Err(Error::Core(highwater_core::Error::NaiveTimestamp { column: column.to_owned() }));
                }
            }
        }
        other => {
            return Err(Error::SchemaMismatch {
                file: String::new(),
                column: column.to_owned(),
                detail: format!("a cursor must be an integer, date or timestamp column, not {other}"),
            });
        }
    };
    Ok(ticks)
}

/// The watermark kind of a cursor column, checked against an existing watermark.
pub fn cursor_kind(
    column: &str,
    data_type: &DataType,
    naive_zone: Option<&Zone>,
    existing: Option<&WatermarkValue>,
) -> Result<WatermarkKind> {
    let kind = WatermarkKind::from_data_type(column, data_type, naive_zone)?;
    if let Some(existing) = existing {
        existing.check_kind(&kind)?;
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use highwater_core::watermark::TimestampUnit;

    use super::*;

    #[test]
    fn ticks_round_in_the_safe_direction() {
        let millis = CursorTicks::Timestamp(TimeUnit::Millisecond);
        let watermark = WatermarkValue::timestamp(1_500, TimestampUnit::Microsecond); // 1.5 ms
        assert_eq!(millis.floor(&watermark), Some(1));
        assert_eq!(millis.ceil(&watermark), Some(2));
        // (1.5 ms, ∞): rows at 2 ms and later; [1.5 ms, ∞): the same.
        assert_eq!(millis.window(&StartBound::Exclusive(watermark.clone()), None).unwrap(), (2, i64::MAX));
        assert_eq!(millis.window(&StartBound::Inclusive(watermark.clone()), None).unwrap(), (2, i64::MAX));
        // Up to 1.5 ms inclusive: rows at 1 ms and before.
        assert_eq!(millis.window(&StartBound::Unbounded, Some(&watermark)).unwrap(), (i64::MIN, 1));
        let exact = WatermarkValue::timestamp(2_000, TimestampUnit::Microsecond);
        assert_eq!(millis.window(&StartBound::Inclusive(exact), None).unwrap(), (2, i64::MAX));
        assert!(CursorTicks::Integer.window(&StartBound::Exclusive(watermark), None).is_err());
    }
}

/// Where a loader reads or writes: a location string, or a store handle (embedding, tests).
#[derive(Clone, Debug)]
pub enum Place {
    /// A location (`file://`, a path, `memory://`, `s3://`, …).
    Location(String),
    /// A prefix of a store; `label` names it in ledgers and messages.
    Store {
        /// The store.
        store: Arc<dyn object_store::ObjectStore>,
        /// The prefix.
        root: object_store::path::Path,
        /// Its name.
        label: String,
    },
}

impl Place {
    /// How messages name it: the location, or the store prefix's label.
    pub fn label(&self) -> String {
        match self {
            Place::Location(location) => location.clone(),
            Place::Store { label, .. } => label.clone(),
        }
    }
}

impl Place {
    /// The table here, or `None` when there is none yet (opening rolls forward an unfinished
    /// publish).
    pub async fn open_table(&self, options: &crate::TableOptions) -> Result<Option<Table>> {
        let opened = match self {
            Place::Location(location) => Table::open(location, options.clone()).await,
            Place::Store { store, root, .. } => {
                Table::open_with(Arc::clone(store), root.clone(), options.clone()).await
            }
        };
        match opened {
            Ok(table) => Ok(Some(table)),
            Err(Error::TableNotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Vacuums the table here ([`Table::vacuum`]); where no version was committed yet, deletes
    /// what first runs that died left behind once older than the staging retention.
    pub async fn vacuum(
        &self,
        retention: std::time::Duration,
        options: &crate::TableOptions,
    ) -> Result<crate::VacuumReport> {
        if let Some(table) = self.open_table(options).await? {
            return table.vacuum(retention).await;
        }
        let table = match self {
            Place::Location(location) => {
                if crate::location::is_missing_local_folder(location) {
                    return Ok(crate::VacuumReport::default());
                }
                let (store, root) = crate::location::store_for(location)?;
                Table::new(store, root, options.clone()).with_local_folder(crate::location::local_folder(location))
            }
            Place::Store { store, root, .. } => Table::new(Arc::clone(store), root.clone(), options.clone()),
        };
        table.vacuum_uncommitted().await
    }

    /// The table here, created with `schema` if there is none.
    pub async fn open_or_create_table(
        &self,
        schema: &arrow_schema::Schema,
        options: &crate::TableOptions,
    ) -> Result<Table> {
        match self {
            Place::Location(location) => Table::open_or_create(location, schema, options.clone()).await,
            Place::Store { store, root, .. } => {
                Table::open_or_create_with(Arc::clone(store), root.clone(), schema, options.clone()).await
            }
        }
    }

    /// [`Place::begin`] for a run that planned on the table as it was at `read` (`None`: there
    /// was no table). If another run committed since, this transaction is aborted and the error
    /// is a [`Error::Conflict`]: the caller starts over on the new state.
    pub async fn begin_at(
        &self,
        schema: &arrow_schema::Schema,
        options: &crate::TableOptions,
        spec: crate::RunSpec,
        read: Option<u64>,
    ) -> Result<crate::Transaction> {
        let transaction = self.begin(schema, options, spec).await?;
        let moved = match read {
            Some(version) => transaction.is_creating() || transaction.base().version != version,
            None => !transaction.is_creating(),
        };
        if moved {
            let version = transaction.version();
            transaction.abort().await?;
            return Err(Error::Conflict { version, winner: "another run".into(), run_id: "this run".into() });
        }
        Ok(transaction)
    }

    /// A run on the table here; when there is no table yet, a run whose commit creates it with
    /// `schema` (so a failed first run leaves nothing behind).
    pub async fn begin(
        &self,
        schema: &arrow_schema::Schema,
        options: &crate::TableOptions,
        spec: crate::RunSpec,
    ) -> Result<crate::Transaction> {
        if let Some(table) = self.open_table(options).await? {
            return table.begin(spec).await;
        }
        let (store, root) = match self {
            Place::Location(location) => crate::location::store_for(location)?,
            Place::Store { store, root, .. } => (Arc::clone(store), root.clone()),
        };
        Table::begin_create(store, root, schema, options.clone(), spec).await
    }

    /// A source here (and at `more` locations).
    pub fn source(&self, more: &[String], options: crate::source::SourceOptions) -> Result<crate::source::Source> {
        match self {
            Place::Location(location) => {
                let mut locations = vec![location.clone()];
                locations.extend(more.iter().cloned());
                crate::source::Source::open(&locations, options)
            }
            Place::Store { store, root, label } => {
                Ok(crate::source::Source::from_store(Arc::clone(store), root.clone(), label, options))
            }
        }
    }
}

/// Adds a scan's counters to a report.
pub fn add_scan_metrics(report: &mut highwater_core::report::LoadReport, metrics: &crate::source::ScanMetrics) {
    use std::sync::atomic::Ordering::Relaxed;
    report.files.scanned += metrics.files_scanned.load(Relaxed);
    report.files.pruned += metrics.files_pruned.load(Relaxed);
    report.row_groups.scanned += metrics.row_groups_scanned.load(Relaxed);
    report.row_groups.pruned += metrics.row_groups_pruned.load(Relaxed);
    report.bytes.read += metrics.bytes_read.load(Relaxed);
    report.rows.read += metrics.rows_read.load(Relaxed);
}
