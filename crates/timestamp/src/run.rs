//! One run of a timestamp load.
//!
//! ```text
//! open table ─► state: watermark W, ledger, identities near W, loaded ranges
//!     │
//! list source once ─► classify vs ledger: known │ new │ rewritten │ gone
//!     │
//! window: (W_import, end]  first run after an import (exclusive, as the seed's `>`)
//!         [W - lookback, end] after our own commits (rows already loaded are skipped by identity)
//!         end = min(end, now - settle); rows past it wait for the next run
//!     │
//! scan known files pruned to the window; new files to (-∞, end] (their older rows are late)
//!     │
//! filter ─► append (sink) │ upsert (latest cursor per key; merge writer; never regress)
//!     │
//! commit: data + watermark (max cursor loaded) + ledger + identities + loaded ranges, atomically
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use futures::StreamExt;
use highwater_core::hash::{HashOptions, RowHasher};
use highwater_core::interval::{Interval, IntervalSet};
use highwater_core::key::{KeyHasher, KeyOptions, describe_row};
use highwater_core::report::{LoadReport, PatternReport, TimestampReport};
use highwater_core::watermark::{Lookback, StartBound, WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use highwater_store::incremental::{
    CursorTicks, LEDGER_STATE, LateFiles, NullCursors, OutputMode, RewrittenFiles, add_scan_metrics, cursor_kind,
    cursor_ticks, next_ledger, previous_ledger, scanned_schema,
};
use highwater_store::source::{ColumnRange, Listing, Scan, ScanOptions, ScanPlan, SchemaPolicy, Source, SourceFile};
use highwater_store::write::{ChangeOp, MergeOptions, MergeWriter, ParquetSink, SchemaEvolution, conform, reconcile};
use highwater_store::{RunSpec, Snapshot, Transaction};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::identity::{IDENTITIES_STATE, Identities};
use crate::loader::{Cursor, TimestampLoader};

/// The state file of the loaded ranges.
const LOADED_STATE: &str = "loaded";
/// The property saying the watermark is still an exclusive (imported) bound.
const EXCLUSIVE_PROPERTY: &str = "watermark_exclusive";

/// Where a run's rows go.
enum Output {
    /// `plan()` of an append: count only.
    Count,
    /// `plan()` of an upsert: the distinct keys (a fresh target inserts each once).
    CountKeys(HashSet<u128>),
    Append(Box<ParquetSink>),
    Upsert(Vec<(RecordBatch, Vec<u128>, Vec<i64>)>),
}

/// What the run has seen so far.
#[derive(Default)]
struct Tally {
    loaded: u64,
    max_tick: Option<i64>,
    late_files: BTreeSet<String>,
    identities: Vec<(u128, i64)>,
    /// Identities left after the last pruning.
    identities_kept: usize,
}

#[allow(clippy::too_many_lines, reason = "the run reads top to bottom as the pipeline drawn in the module docs")]
pub(crate) async fn execute(loader: &TimestampLoader, plan: bool) -> Result<LoadReport> {
    let naive_zone = loader.naive_timezone.as_deref().map(Zone::parse).transpose()?;
    let seed_zone = Zone::parse(&loader.seed_timezone)?;
    let mut report = LoadReport::new(&loader.table_name, "", PatternReport::Timestamp(TimestampReport::default()));
    report.planned = plan;
    let mut details = TimestampReport::default();

    // The table and what it remembers.
    let clock = Instant::now();
    let table = loader.target_place().open_table(&loader.table_options).await?;
    let snapshot = match &table {
        Some(table) => Some(table.snapshot().await?),
        None => None,
    };
    let previous = match (&table, &snapshot) {
        (Some(table), Some(snapshot)) => previous_ledger(table, snapshot).await?,
        _ => None,
    };
    let own_watermark = snapshot.as_ref().and_then(|s| s.watermark.clone());
    let exclusive =
        snapshot.as_ref().is_some_and(|s| s.properties.get(EXCLUSIVE_PROPERTY) == Some(&serde_json::Value::Bool(true)));

    // The source, listed once: this run's snapshot of it.
    let source = loader.source_place().source(&loader.sources[1..], loader.source_options.clone())?;
    let listing = source.list().await?;
    listing.note_in(&mut report);
    let classes = previous.as_ref().map(|ledger| ledger.classify(&listing));
    let (known, mut new_files, rewritten) = match &classes {
        // No ledger yet: the listing is the baseline, filtered by the watermark only.
        None => (listing.files.clone(), Vec::new(), Vec::new()),
        Some(classes) => (classes.unchanged.clone(), classes.new.clone(), classes.rewritten.clone()),
    };
    report.files.new = new_files.len() as u64;
    report.files.rewritten = rewritten.len() as u64;
    report.files.gone = classes.as_ref().map_or(0, |c| c.gone.len() as u64);
    report.rewritten_files = rewritten.iter().map(|f| f.key.clone()).collect();
    let mut kept_previous = Vec::new();
    match loader.rewritten_files {
        RewrittenFiles::Error if !rewritten.is_empty() => {
            return Err(Error::RewrittenFile { file: rewritten[0].key.clone() });
        }
        RewrittenFiles::Skip => kept_previous.clone_from(&rewritten),
        RewrittenFiles::Reload => new_files.extend(rewritten.iter().cloned()),
        RewrittenFiles::Error => {}
    }
    report.phase("list", clock.elapsed());

    // The cursor's type: from the table, else from the first file.
    let clock = Instant::now();
    let source_schema = source_schema(&listing).await?;
    let table_schema = snapshot.as_ref().map(|s| Arc::clone(&s.schema)).filter(|s| !s.fields().is_empty());
    let Some(schema_for_cursor) = table_schema.clone().or_else(|| source_schema.clone()) else {
        report.phase("plan", clock.elapsed());
        report.watermark_before.clone_from(&own_watermark);
        report.watermark_after = own_watermark;
        report.details = PatternReport::Timestamp(details);
        return Ok(report);
    };
    let cursor_type = cursor_type(&loader.cursor, &schema_for_cursor)?;
    let kind = cursor_kind(loader.cursor.name(), &cursor_type, naive_zone.as_ref(), own_watermark.as_ref())?;
    let ticks = CursorTicks::of(loader.cursor.name(), &cursor_type)?;
    let display_zone = match &kind {
        WatermarkKind::Timestamp { timezone, .. } => timezone.clone(),
        _ => None,
    };
    let parse = |text: &str| WatermarkValue::parse(text, &kind, &seed_zone);

    // The starting point: our own watermark, else an imported one (exclusive), else nothing.
    let first_run = own_watermark.is_none() && previous.is_none();
    let imported = if first_run { import(loader, &kind, &seed_zone).await? } else { None };
    let watermark = own_watermark.clone().or_else(|| imported.clone());
    report.watermark_before.clone_from(&watermark);
    let identities = match (&table, &snapshot) {
        (Some(table), Some(snapshot)) => match snapshot.state.get(IDENTITIES_STATE) {
            Some(reference) => Identities::from_bytes(&table.read_state(reference).await?)?,
            None => Identities::default(),
        },
        _ => Identities::default(),
    };
    let loaded_ranges: IntervalSet<WatermarkValue> = match (&table, &snapshot) {
        (Some(table), Some(snapshot)) => match snapshot.state.get(LOADED_STATE) {
            Some(reference) => serde_json::from_slice(&table.read_state(reference).await?)
                .map_err(|e| Error::State { name: LOADED_STATE.into(), detail: e.to_string() })?,
            None => IntervalSet::new(),
        },
        _ => IntervalSet::new(),
    };

    // The window.
    let lookback_ticks = lookback_ticks(loader.lookback, ticks);
    let backfill = loader.start.as_deref().map(parse).transpose()?;
    let (start, reread) = if let Some(start) = &backfill {
        (StartBound::Exclusive(start.clone()), None)
    } else {
        match (&watermark, own_watermark.is_some() && !exclusive) {
            (Some(w), true) => {
                let from = match loader.lookback {
                    Some(lookback) => w.minus(&Lookback::Time(lookback))?,
                    None => w.clone(),
                };
                (StartBound::Inclusive(from.clone()), Some(from))
            }
            (Some(w), false) => (StartBound::Exclusive(w.clone()), None),
            (None, _) => (StartBound::Unbounded, None),
        }
    };
    let settle_end = loader.settle.map(|settle| now_minus(settle, &kind, display_zone.as_deref()));
    let user_end = loader.end.as_deref().map(parse).transpose()?;
    let end = match (settle_end, user_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    details.window_start = Some(start.clone());
    details.window_end.clone_from(&end);
    let (lower, upper) = ticks.window(&start, end.as_ref())?;
    let reread_lower = reread.as_ref().and_then(|r| ticks.ceil(r));
    let watermark_tick = watermark.as_ref().and_then(|w| ticks.floor(w));
    if let Some(start) = &backfill {
        let range = Interval {
            lower: std::ops::Bound::Excluded(start.clone()),
            upper: end.clone().map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
        };
        if loaded_ranges.intersects(&range) && !loader.replace {
            return Err(Error::RangeLoaded {
                start: start.to_string(),
                end: end.as_ref().map_or_else(|| "∞".to_owned(), ToString::to_string),
                loaded: format!("{:?}", loaded_ranges.intervals()),
            });
        }
    }

    // Plans: known files pruned to the window, new files to everything up to its end.
    let column_range = |start: StartBound| match &loader.cursor {
        Cursor::Column(column) => Some(ColumnRange {
            column: column.clone(),
            start,
            end: end.clone(),
            naive_zone,
            keep_nulls: loader.null_cursors != NullCursors::Skip,
        }),
        Cursor::Function { .. } => None,
    };
    let allow_added = loader.schema_evolution != SchemaEvolution::Fail;
    let scan_options = |range: Option<ColumnRange>| ScanOptions {
        range,
        batch_size: loader.batch_size,
        schema: SchemaPolicy { expected: source_schema.clone(), allow_added_nullable: allow_added },
        ..ScanOptions::default()
    };
    let known_plan = Scan::plan(&listing, &known, scan_options(column_range(start.clone()))).await?;
    let new_plan = Scan::plan(&listing, &new_files, scan_options(column_range(StartBound::Unbounded))).await?;
    let scanned_schema = scanned_schema(&listing, &known_plan, table_schema.as_ref());
    report.phase("plan", clock.elapsed());

    // The transaction and the output.
    let clock = Instant::now();
    let (table, mut transaction, output_schema) = if plan {
        // What the run's sink would refuse, the plan refuses too.
        loader.sink.partition_columns(table_schema.as_ref().unwrap_or(&scanned_schema))?;
        (table, None, table_schema.clone().unwrap_or_else(|| Arc::clone(&scanned_schema)))
    } else {
        let base_schema = table_schema.clone().unwrap_or_else(|| Arc::clone(&scanned_schema));
        let output_schema = reconcile(&base_schema, &scanned_schema, loader.schema_evolution, "the source")?;
        let mut transaction = loader
            .target_place()
            .begin_at(
                &output_schema,
                &loader.table_options,
                RunSpec::load(highwater_core::report::Pattern::Timestamp),
                snapshot.as_ref().map(|s| s.version),
            )
            .await?;
        let table = transaction.table().clone();
        if output_schema.as_ref() != transaction.base().schema.as_ref() {
            transaction.set_schema(Arc::clone(&output_schema));
        }
        (Some(table), Some(transaction), output_schema)
    };
    if let Some(transaction) = &transaction {
        report.run_id = transaction.run_id().to_owned();
    }
    let mut output = match (&transaction, loader.mode) {
        (None, OutputMode::Append) => Output::Count,
        (None, OutputMode::Upsert) => Output::CountKeys(HashSet::new()),
        (Some(transaction), OutputMode::Append) => Output::Append(Box::new(ParquetSink::new(
            transaction.file_target(),
            Arc::clone(&output_schema),
            loader.sink.clone(),
        )?)),
        (Some(_), OutputMode::Upsert) => Output::Upsert(Vec::new()),
    };
    if let (Some(transaction), Some(start)) = (&mut transaction, &backfill) {
        if loader.replace {
            replace_range(transaction, &loader.cursor, &output_schema, naive_zone, start, end.as_ref(), loader).await?;
        }
    }

    // Stream, filter, write.
    let key = (!loader.key.is_empty())
        .then(|| KeyHasher::new(&loader.key, &KeyOptions { allow_null_keys: false, hash: hash_options(loader) }))
        .transpose()?;
    let window = Window { lower, upper, reread_lower, watermark_tick, lookback_ticks };
    let mut tally = Tally::default();
    let watermark_text = watermark.as_ref().map_or_else(String::new, ToString::to_string);
    let mut context = BatchContext {
        loader,
        naive_zone,
        key: key.as_ref(),
        identities: &identities,
        window,
        details: &mut details,
        watermark_text,
    };
    let metrics = [known_plan.metrics(), new_plan.metrics()];
    for (plan, is_new) in [(known_plan, false), (new_plan, true)] {
        stream_plan(plan, is_new, &mut context, &mut tally, &mut output, &output_schema).await?;
        if let Some(max) = loader.max_rows {
            if tally.loaded > max {
                if let Some(transaction) = transaction.take() {
                    transaction.abort().await?;
                }
                return Err(Error::TooManyRows { rows: tally.loaded, max });
            }
        }
    }
    for metric in &metrics {
        add_scan_metrics(&mut report, metric);
    }
    report.late_files = tally.late_files.iter().cloned().collect();
    report.files.late = tally.late_files.len() as u64;
    report.rows.written = tally.loaded;
    report.rows.skipped = report.rows.read.saturating_sub(tally.loaded);

    // The new watermark: the largest cursor loaded, never lower than before.
    let new_tick = match (tally.max_tick, watermark_tick) {
        (Some(max), Some(before)) => Some(max.max(before)),
        (max, before) => max.or(before),
    };
    let watermark_after = match (new_tick, &watermark) {
        (Some(tick), Some(before)) if Some(tick) == watermark_tick => Some(before.clone()),
        (Some(tick), _) => Some(ticks.value(tick, display_zone.as_deref())),
        (None, before) => before.clone(),
    };
    // Still exclusive when nothing was loaded at or above the imported bound.
    let still_exclusive = (exclusive || (own_watermark.is_none() && imported.is_some()))
        && tally.max_tick.is_none_or(|max| watermark_tick.is_some_and(|w| max <= w));
    report.watermark_after.clone_from(&watermark_after);
    report.phase("load", clock.elapsed());

    let (Some(table), Some(mut transaction)) = (table, transaction) else {
        plan_counts(&mut report, &output, snapshot.is_some());
        report.details = PatternReport::Timestamp(details);
        return Ok(report);
    };

    // Write the outcome.
    let clock = Instant::now();
    match output {
        Output::Count | Output::CountKeys(_) => unreachable!("plans return before the write"),
        Output::Append(sink) => {
            for file in sink.finish().await? {
                report.bytes.written += file.bytes;
                report.files.written += 1;
                transaction.add_file(file)?;
            }
            report.rows.inserted = tally.loaded;
        }
        Output::Upsert(pending) => {
            let outcome = upsert(&mut transaction, &output_schema, loader, key.as_ref(), pending).await?;
            report.rows.inserted = outcome.upserts.saturating_sub(outcome.rows_replaced);
            report.rows.updated = outcome.rows_replaced;
            report.files.replaced = outcome.files_replaced.len() as u64;
            report.files.written = outcome.files_added;
            // One row per key is written: rows superseded within the run or older than the
            // target's row are skipped.
            report.rows.written = outcome.upserts;
            report.rows.skipped = report.rows.read.saturating_sub(outcome.upserts);
        }
    }
    // State: identities near the new watermark, loaded ranges, the ledger.
    let mut identities = identities;
    if let Some(tick) = new_tick {
        for (identity, row_tick) in tally.identities.drain(..) {
            identities.insert(identity, row_tick);
        }
        identities.retain_from(tick.saturating_sub(lookback_ticks));
    }
    if still_exclusive {
        identities = Identities::default();
    }
    let identities_changed = tally.loaded > 0 || still_exclusive != exclusive;
    if identities_changed {
        transaction.put_state(IDENTITIES_STATE, identities.to_bytes()?).await?;
    }
    let mut loaded_ranges = loaded_ranges;
    if let Some(after) = &watermark_after {
        let lower = match &start {
            StartBound::Unbounded => std::ops::Bound::Unbounded,
            StartBound::Exclusive(v) => std::ops::Bound::Excluded(v.clone()),
            StartBound::Inclusive(v) => std::ops::Bound::Included(v.clone()),
        };
        let upper = if backfill.is_some() { end.clone().unwrap_or_else(|| after.clone()) } else { after.clone() };
        loaded_ranges.insert(Interval { lower, upper: std::ops::Bound::Included(upper) });
    }
    let ledger = next_ledger(&listing, previous.as_ref(), &kept_previous);
    let ledger_changed = ledger.adds_to(previous.as_ref());
    let watermark_changed = watermark_after != own_watermark;
    if tally.loaded == 0 && !ledger_changed && !watermark_changed && !identities_changed && loader.start.is_none() {
        transaction.abort().await?;
        report.phase("commit", clock.elapsed());
        report.details = PatternReport::Timestamp(details);
        return Ok(report);
    }
    transaction.put_state(LEDGER_STATE, ledger.to_bytes()?).await?;
    transaction.put_state(LOADED_STATE, Bytes::from(serde_json::to_vec(&loaded_ranges).unwrap_or_default())).await?;
    transaction.set_property(EXCLUSIVE_PROPERTY, serde_json::Value::Bool(still_exclusive));
    report.details = PatternReport::Timestamp(details.clone());
    let mut committed_report = report.clone();
    committed_report.phase("commit", clock.elapsed());
    tracing::debug!(identities = identities.len(), "identities kept near the watermark");
    let committed = transaction.commit(watermark_after.clone(), Some(committed_report)).await?;
    report.commit_version = Some(committed.version);
    report.phase("commit", clock.elapsed());
    if let (Some(path), Some(after)) = (&loader.watermark_path, &watermark_after) {
        highwater_store::seed::write_seed_mirror(path, &loader.table_name, after, &seed_zone).await?;
    }
    drop(table);
    report.details = PatternReport::Timestamp(details);
    Ok(report)
}

/// The seed's (or the configured) starting watermark, for a table's first run.
async fn import(loader: &TimestampLoader, kind: &WatermarkKind, zone: &Zone) -> Result<Option<WatermarkValue>> {
    if let Some(text) = &loader.initial_watermark {
        return Ok(Some(WatermarkValue::parse(text, kind, zone)?));
    }
    match &loader.watermark_path {
        Some(path) => Ok(highwater_store::seed::import_seed_watermark(path, &loader.table_name, kind, zone).await?),
        None => Ok(None),
    }
}

/// The schema of the first source file (its footer only).
async fn source_schema(listing: &Listing) -> Result<Option<SchemaRef>> {
    let Some(first) = listing.files.first() else { return Ok(None) };
    let plan = Scan::plan(listing, std::slice::from_ref(first), ScanOptions::default()).await?;
    Ok(Some(plan.schema))
}

fn cursor_type(cursor: &Cursor, schema: &SchemaRef) -> Result<DataType> {
    match cursor {
        Cursor::Column(column) => schema.field_with_name(column).map(|f| f.data_type().clone()).map_err(|_| {
            highwater_store::Error::SchemaMismatch {
                file: "the source".into(),
                column: column.clone(),
                detail: format!(
                    "the cursor column is missing (columns: {})",
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
            .into()
        }),
        Cursor::Function { name, compute, .. } => {
            let empty = RecordBatch::new_empty(Arc::clone(schema));
            let array =
                compute(&empty).map_err(|e| Error::Config(format!("the cursor function `{name}` failed: {e}")))?;
            Ok(array.data_type().clone())
        }
    }
}

fn hash_options(loader: &TimestampLoader) -> HashOptions {
    HashOptions { naive_timezone: loader.naive_timezone.clone() }
}

/// The lookback as ticks of the cursor (rounded up).
fn lookback_ticks(lookback: Option<Duration>, ticks: CursorTicks) -> i64 {
    let Some(lookback) = lookback else { return 0 };
    let nanos = lookback.as_nanos();
    let per_tick: u128 = match ticks {
        CursorTicks::Timestamp(arrow_schema::TimeUnit::Second) => 1_000_000_000,
        CursorTicks::Timestamp(arrow_schema::TimeUnit::Millisecond) => 1_000_000,
        CursorTicks::Timestamp(arrow_schema::TimeUnit::Microsecond) => 1_000,
        CursorTicks::Timestamp(arrow_schema::TimeUnit::Nanosecond) | CursorTicks::Integer => 1,
        CursorTicks::Days => 86_400_000_000_000,
    };
    i64::try_from(nanos.div_ceil(per_tick)).unwrap_or(i64::MAX)
}

/// `now - settle` as a watermark of the cursor's kind.
fn now_minus(settle: Duration, kind: &WatermarkKind, timezone: Option<&str>) -> WatermarkValue {
    let now = chrono::Utc::now();
    let then = now - chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX / 2);
    match kind {
        WatermarkKind::Date => WatermarkValue::date((then.timestamp().div_euclid(86_400)) as i32),
        WatermarkKind::Timestamp { unit, .. } => {
            let nanos = i128::from(then.timestamp()) * 1_000_000_000 + i128::from(then.timestamp_subsec_nanos());
            WatermarkValue::Timestamp {
                value: nanos.div_euclid(unit.nanos()) as i64,
                unit: *unit,
                timezone: timezone.map(str::to_owned),
            }
        }
        _ => WatermarkValue::int64(then.timestamp()),
    }
}

/// The window in ticks.
#[derive(Clone, Copy)]
struct Window {
    lower: i64,
    upper: i64,
    /// Rows in `[reread_lower, watermark_tick]` may have been loaded already.
    reread_lower: Option<i64>,
    watermark_tick: Option<i64>,
    lookback_ticks: i64,
}

struct BatchContext<'a> {
    loader: &'a TimestampLoader,
    naive_zone: Option<Zone>,
    key: Option<&'a KeyHasher>,
    identities: &'a Identities,
    window: Window,
    details: &'a mut TimestampReport,
    watermark_text: String,
}

async fn stream_plan(
    plan: ScanPlan,
    is_new: bool,
    context: &mut BatchContext<'_>,
    tally: &mut Tally,
    output: &mut Output,
    output_schema: &SchemaRef,
) -> Result<()> {
    let mut stream = plan.stream();
    while let Some(scanned) = stream.next().await {
        let scanned = scanned?;
        let (mask, cursor) = select_rows(&scanned.batch, &scanned.file, scanned.first_row, is_new, context, tally)?;
        let selected = mask.true_count();
        if selected == 0 {
            continue;
        }
        tally.loaded += selected as u64;
        let rows = if selected == scanned.batch.num_rows() {
            scanned.batch
        } else {
            arrow_select::filter::filter_record_batch(&scanned.batch, &mask)?
        };
        match output {
            Output::Count => {}
            Output::CountKeys(keys) => {
                let key = context.key.ok_or_else(|| Error::Config("upsert mode needs a key".into()))?;
                keys.extend(key.fingerprints(&rows)?);
            }
            Output::Append(sink) => sink.write(&conform(&rows, output_schema)?).await?,
            Output::Upsert(pending) => {
                let key = context.key.ok_or_else(|| Error::Config("upsert mode needs a key".into()))?;
                let fingerprints = key.fingerprints(&rows)?;
                let selected_ticks: Vec<i64> =
                    (0..mask.len()).filter(|&i| mask.value(i)).map(|i| cursor.value(i)).collect();
                pending.push((conform(&rows, output_schema)?, fingerprints, selected_ticks));
            }
        }
    }
    Ok(())
}

/// Which rows of a batch to load; records late files, duplicates, held-back rows, identities.
fn select_rows(
    batch: &RecordBatch,
    file: &Arc<SourceFile>,
    first_row: u64,
    is_new: bool,
    context: &mut BatchContext<'_>,
    tally: &mut Tally,
) -> Result<(BooleanArray, Int64Array)> {
    let loader = context.loader;
    let cursor = match &loader.cursor {
        Cursor::Column(column) => {
            batch.column_by_name(column).cloned().ok_or_else(|| highwater_store::Error::SchemaMismatch {
                file: file.key.clone(),
                column: column.clone(),
                detail: "the cursor column is missing".into(),
            })?
        }
        Cursor::Function { name, compute, .. } => compute(batch)
            .map_err(|e| Error::Config(format!("the cursor function `{name}` failed on {}: {e}", file.key)))?,
    };
    let cursor: ArrayRef = cursor;
    let ticks = cursor_ticks(loader.cursor.name(), &cursor, context.naive_zone.as_ref())?;
    let window = context.window;
    // Computed for the whole batch the first time a row needs its identity.
    let mut row_identities: Option<Vec<u128>> = None;
    let mut mask = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let keep = if ticks.is_null(row) {
            match loader.null_cursors {
                NullCursors::Error => {
                    return Err(Error::NullCursor {
                        file: file.key.clone(),
                        row: first_row + row as u64,
                        column: loader.cursor.name().to_owned(),
                    });
                }
                NullCursors::Skip => {
                    context.details.null_cursors += 1;
                    false
                }
                // Only from files read for the first time: a null never moves the watermark,
                // so known files would load it again on every run.
                NullCursors::Load => {
                    context.details.null_cursors += 1;
                    is_new || window.watermark_tick.is_none()
                }
            }
        } else {
            let tick = ticks.value(row);
            if tick > window.upper {
                context.details.held_back += 1;
                false
            } else if tick >= window.lower {
                let reread = window.reread_lower.is_some_and(|lower| tick >= lower)
                    && window.watermark_tick.is_some_and(|w| tick <= w);
                if reread && row_identities.is_none() {
                    row_identities = Some(identities_of(batch, file, first_row, &ticks, context)?);
                }
                let seen = reread && row_identities.as_ref().is_some_and(|ids| context.identities.contains(ids[row]));
                if seen {
                    if Some(tick) == window.watermark_tick {
                        context.details.boundary_duplicates += 1;
                    } else {
                        context.details.lookback_duplicates += 1;
                    }
                }
                !seen
            } else if is_new {
                // A new file with rows at or below the watermark: a late file.
                tally.late_files.insert(file.key.clone());
                match loader.late_files {
                    LateFiles::Load => true,
                    LateFiles::Skip => false,
                    LateFiles::Error => {
                        return Err(Error::LateFile {
                            file: file.key.clone(),
                            column: loader.cursor.name().to_owned(),
                            watermark: context.watermark_text.clone(),
                        });
                    }
                }
            } else {
                false
            }
        };
        if keep && !ticks.is_null(row) {
            let tick = ticks.value(row);
            let max = tally.max_tick.map_or(tick, |max| max.max(tick));
            tally.max_tick = Some(max);
            // Only rows that can end up near the new watermark need their identity kept.
            if tick >= max.saturating_sub(window.lookback_ticks) {
                if row_identities.is_none() {
                    row_identities = Some(identities_of(batch, file, first_row, &ticks, context)?);
                }
                if let Some(ids) = &row_identities {
                    tally.identities.push((ids[row], tick));
                }
            }
        }
        mask.push(keep);
    }
    // Drop identities that can no longer be near the new watermark.
    if tally.identities.len() > 2 * tally.identities_kept.max(1024) {
        if let Some(max) = tally.max_tick {
            let floor = max.saturating_sub(window.lookback_ticks);
            tally.identities.retain(|(_, tick)| *tick >= floor);
        }
        tally.identities_kept = tally.identities.len();
    }
    Ok((BooleanArray::from(mask), ticks))
}

/// One identity per row: (key, cursor) with a key, the row hash when opted in, else
/// (file, etag, row index).
fn identities_of(
    batch: &RecordBatch,
    file: &SourceFile,
    first_row: u64,
    ticks: &Int64Array,
    context: &BatchContext<'_>,
) -> Result<Vec<u128>> {
    let rows = batch.num_rows();
    if context.loader.row_hash_identity {
        let hasher = RowHasher::for_schema(&batch.schema(), &[], &hash_options(context.loader))?;
        return Ok(hasher.hash_batch(batch)?.into_rows());
    }
    if let Some(key) = context.key {
        let fingerprints = key.fingerprints(batch)?;
        return Ok((0..rows)
            .map(|row| {
                let mut bytes = [0u8; 24];
                bytes[..16].copy_from_slice(&fingerprints[row].to_le_bytes());
                bytes[16..].copy_from_slice(&ticks.value(row).to_le_bytes());
                xxh3_128(&bytes)
            })
            .collect());
    }
    let prefix = format!("{}\0{}\0", file.key, file.etag.as_deref().unwrap_or_default());
    let mut bytes = prefix.into_bytes();
    let base = bytes.len();
    Ok((0..rows)
        .map(|row| {
            bytes.truncate(base);
            bytes.extend_from_slice(&(first_row + row as u64).to_le_bytes());
            xxh3_128(&bytes)
        })
        .collect())
}

/// The latest cursor per key wins (equal cursors with different content are an error), then
/// the merge writer applies the winners without ever regressing a target row.
async fn upsert(
    transaction: &mut Transaction,
    schema: &SchemaRef,
    loader: &TimestampLoader,
    key: Option<&KeyHasher>,
    pending: Vec<(RecordBatch, Vec<u128>, Vec<i64>)>,
) -> Result<highwater_store::write::MergeOutcome> {
    let key = key.ok_or_else(|| Error::Config("upsert mode needs a key".into()))?;
    let content = RowHasher::for_schema(schema, &[], &hash_options(loader))?;
    let mut winners: HashMap<u128, (i64, usize, usize, u128)> = HashMap::new();
    for (index, (batch, fingerprints, ticks)) in pending.iter().enumerate() {
        let hashes = content.hash_batch(batch)?;
        for row in 0..batch.num_rows() {
            let candidate = (ticks[row], index, row, hashes.rows()[row]);
            match winners.get(&fingerprints[row]) {
                Some(current) if current.0 > candidate.0 => {}
                Some(current) if current.0 == candidate.0 && current.3 != candidate.3 => {
                    let (first, second) = (&pending[current.1].0, batch);
                    return Err(Error::AmbiguousDuplicate {
                        key: key.describe(second, row),
                        cursor: candidate.0.to_string(),
                        first: describe_row(first, current.2, &loader.key),
                        second: describe_row(second, row, &loader.key),
                    });
                }
                _ => {
                    winners.insert(fingerprints[row], candidate);
                }
            }
        }
    }
    let version_column = match &loader.cursor {
        Cursor::Column(column) => Some(column.clone()),
        Cursor::Function { .. } => None,
    };
    let options =
        MergeOptions { memory_budget_rows: loader.memory_budget_rows, sink: loader.sink.clone(), version_column };
    let mut writer = MergeWriter::new(transaction, Arc::clone(schema), key.clone(), options)?;
    let mut by_batch: Vec<Vec<u32>> = vec![Vec::new(); pending.len()];
    for (_, index, row, _) in winners.values() {
        by_batch[*index].push(*row as u32);
    }
    for ((batch, _, _), mut rows) in pending.into_iter().zip(by_batch) {
        if rows.is_empty() {
            continue;
        }
        rows.sort_unstable();
        writer.push(ChangeOp::Upsert, arrow_select::take::take_record_batch(&batch, &UInt32Array::from(rows))?).await?;
    }
    Ok(writer.finish(transaction).await?)
}

/// A plan's row counts: what an append inserts; what an upsert inserts into a fresh target. On
/// an existing target only the run, which reads the target's keys, can tell inserts from
/// updates: the plan says how many keys it would merge.
fn plan_counts(report: &mut LoadReport, output: &Output, target_exists: bool) {
    match output {
        Output::CountKeys(keys) if target_exists && !keys.is_empty() => {
            report.rows.written = keys.len() as u64;
            report.warnings.push(format!(
                "plan: {} keys to upsert; how many are new and how many replace a row is known when the run reads the target",
                keys.len()
            ));
        }
        Output::CountKeys(keys) => {
            report.rows.written = keys.len() as u64;
            if !target_exists {
                report.rows.inserted = keys.len() as u64;
            }
        }
        _ => report.rows.inserted = report.rows.written,
    }
    report.rows.skipped = report.rows.read.saturating_sub(report.rows.written);
}

/// A backfill with `replace`: target rows in the window are removed first.
async fn replace_range(
    transaction: &mut Transaction,
    cursor: &Cursor,
    schema: &SchemaRef,
    naive_zone: Option<Zone>,
    start: &WatermarkValue,
    end: Option<&WatermarkValue>,
    loader: &TimestampLoader,
) -> Result<()> {
    let Cursor::Column(column) = cursor else {
        return Err(Error::Config("replace needs a cursor column (row groups are found by its statistics)".into()));
    };
    let table = transaction.table().clone();
    let base: Snapshot = transaction.base().clone();
    let files: Vec<String> = base.files.keys().cloned().collect();
    if files.is_empty() {
        return Ok(());
    }
    let source = Source::from_store(
        Arc::clone(table.store()),
        table.root().clone(),
        "table",
        highwater_store::source::SourceOptions::files(files),
    );
    let listing = source.list().await?;
    let range = ColumnRange {
        column: column.clone(),
        start: StartBound::Exclusive(start.clone()),
        end: end.cloned(),
        naive_zone,
        keep_nulls: false,
    };
    let options = ScanOptions {
        range: Some(range),
        schema: SchemaPolicy { expected: Some(Arc::clone(schema)), allow_added_nullable: true },
        ..ScanOptions::default()
    };
    let overlapping = Scan::plan(&listing, &listing.files, options).await?;
    let ticks = CursorTicks::of(column, schema.field_with_name(column)?.data_type())?;
    let (lower, upper) = ticks.window(&StartBound::Exclusive(start.clone()), end)?;
    for planned in overlapping.files {
        let file = Arc::clone(&planned.file);
        let single = Scan::plan(
            &listing,
            std::slice::from_ref(&file),
            ScanOptions {
                schema: SchemaPolicy { expected: Some(Arc::clone(schema)), allow_added_nullable: true },
                ..ScanOptions::default()
            },
        )
        .await?;
        let partition_by: Vec<String> = file.partitions.keys().cloned().collect();
        let sink_options = highwater_store::write::SinkOptions { partition_by, ..loader.sink.clone() };
        let mut sink = ParquetSink::new(transaction.file_target(), Arc::clone(schema), sink_options)?;
        let mut stream = single.stream();
        while let Some(batch) = stream.next().await {
            let batch = batch?.batch;
            let cursor = batch
                .column_by_name(column)
                .cloned()
                .unwrap_or_else(|| arrow_array::new_null_array(&DataType::Int64, 0));
            let values = cursor_ticks(column, &cursor, naive_zone.as_ref())?;
            let keep: BooleanArray = values.iter().map(|v| Some(v.is_none_or(|t| t < lower || t > upper))).collect();
            sink.write(&arrow_select::filter::filter_record_batch(&batch, &keep)?).await?;
        }
        transaction.remove_file(&file.relative)?;
        for written in sink.finish().await? {
            transaction.add_file(written)?;
        }
    }
    Ok(())
}
