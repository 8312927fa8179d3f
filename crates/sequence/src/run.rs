//! One run of a sequence load.
//!
//! ```text
//! open table ─► state: watermark W (largest id loaded), ledger, loaded ids (an interval set)
//!     │
//! list source once ─► classify vs ledger: known │ new │ rewritten │ gone
//!     │
//! scan known files pruned to (W, end]; new files to (-∞, end] (older ids fill gaps: late files)
//!     │
//! skip ids loaded before or twice in the run (duplicates, reported); hold back past the first
//! gap with `hold_on_gap` until it times out
//!     │
//! write in sequence order ─► commit rows + watermark + ledger + loaded ids, atomically
//! ```

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, BooleanArray, Int64Array, RecordBatch};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::StreamExt;
use highwater_core::interval::{Interval, IntervalSet};
use highwater_core::key::{KeyHasher, KeyOptions};
use highwater_core::report::{LoadReport, Pattern, PatternReport, SequenceGap, SequenceReport};
use highwater_core::watermark::{StartBound, WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use highwater_store::incremental::{
    CursorTicks, LEDGER_STATE, LateFiles, NullCursors, OutputMode, RewrittenFiles, add_scan_metrics, cursor_ticks,
    next_ledger, previous_ledger, scanned_schema,
};
use highwater_store::source::{ColumnRange, Scan, ScanOptions, ScanPlan, SchemaPolicy, SourceFile};
use highwater_store::write::{ChangeOp, MergeOptions, MergeWriter, ParquetSink, SchemaEvolution, conform, reconcile};
use highwater_store::{RunSpec, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::loader::SequenceLoader;

/// The state file of the loaded ids.
const LOADED_STATE: &str = "loaded";
/// The property recording a gap being held.
const GAP_PROPERTY: &str = "held_gap";
/// Gaps listed in a report at most (all are counted).
const GAPS_LISTED: usize = 20;

/// A gap held back by `hold_on_gap`: its first missing id and when it was first seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct HeldGap {
    first: i64,
    since: chrono::DateTime<chrono::Utc>,
}

/// Rows selected so far: in order and written, or buffered to be sorted.
struct Selected {
    buffered: Vec<(RecordBatch, Int64Array)>,
    buffer_all: bool,
    last_written: Option<i64>,
    ids: Vec<i64>,
    late_files: std::collections::BTreeSet<String>,
    /// Ids selected by this run (an interval set: ids mostly arrive in order).
    run_ids: IntervalSet<i64>,
}

#[allow(clippy::too_many_lines, reason = "the run reads top to bottom as the pipeline drawn in the module docs")]
pub(crate) async fn execute(loader: &SequenceLoader, plan: bool) -> Result<LoadReport> {
    let mut report = LoadReport::new(&loader.table_name, "", PatternReport::Sequence(SequenceReport::default()));
    report.planned = plan;
    let mut details = SequenceReport::default();

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
    let loaded: IntervalSet<i64> = match (&table, &snapshot) {
        (Some(table), Some(snapshot)) => match snapshot.state.get(LOADED_STATE) {
            Some(reference) => serde_json::from_slice(&table.read_state(reference).await?)
                .map_err(|e| Error::State { name: LOADED_STATE.into(), detail: e.to_string() })?,
            None => IntervalSet::new(),
        },
        _ => IntervalSet::new(),
    };
    let held_gap: Option<HeldGap> = snapshot
        .as_ref()
        .and_then(|s| s.properties.get(GAP_PROPERTY))
        .and_then(|v| serde_json::from_value(v.clone()).ok());

    let source = loader.source_place().source(&loader.sources[1..], loader.source_options.clone())?;
    let listing = source.list().await?;
    listing.note_in(&mut report);
    let classes = previous.as_ref().map(|ledger| ledger.classify(&listing));
    let (known, mut new_files, rewritten) = match &classes {
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

    let clock = Instant::now();
    let source_schema = match listing.files.first() {
        Some(first) => Some(Scan::plan(&listing, std::slice::from_ref(first), ScanOptions::default()).await?.schema),
        None => None,
    };
    let table_schema = snapshot.as_ref().map(|s| Arc::clone(&s.schema)).filter(|s| !s.fields().is_empty());
    let Some(schema_for_column) = table_schema.clone().or_else(|| source_schema.clone()) else {
        report.watermark_before.clone_from(&own_watermark);
        report.watermark_after = own_watermark;
        report.details = PatternReport::Sequence(details);
        return Ok(report);
    };
    let column_type =
        schema_for_column.field_with_name(&loader.column).map(|f| f.data_type().clone()).map_err(|_| {
            highwater_store::Error::SchemaMismatch {
                file: "the source".into(),
                column: loader.column.clone(),
                detail: "the sequence column is missing".into(),
            }
        })?;
    if CursorTicks::of(&loader.column, &column_type)? != CursorTicks::Integer {
        return Err(highwater_store::Error::SchemaMismatch {
            file: "the source".into(),
            column: loader.column.clone(),
            detail: format!("a sequence id must be an integer column, not {column_type}"),
        }
        .into());
    }
    if let Some(watermark) = &own_watermark {
        watermark.check_kind(&WatermarkKind::Int64)?;
    }
    let imported = if own_watermark.is_none() && previous.is_none() { import(loader).await? } else { None };
    let watermark = own_watermark.clone().or_else(|| imported.map(WatermarkValue::int64));
    let watermark_id = watermark.as_ref().and_then(|w| CursorTicks::Integer.floor(w));
    report.watermark_before.clone_from(&watermark);
    let lower = watermark_id.map_or(i64::MIN, |w| w.saturating_add(1));
    let upper = loader.end.unwrap_or(i64::MAX);
    let range = |start: StartBound| ColumnRange {
        column: loader.column.clone(),
        start,
        end: loader.end.map(WatermarkValue::int64),
        naive_zone: None,
        keep_nulls: loader.null_cursors != NullCursors::Skip,
    };
    let allow_added = loader.schema_evolution != SchemaEvolution::Fail;
    let options = |range: ColumnRange| ScanOptions {
        range: Some(range),
        batch_size: loader.batch_size,
        schema: SchemaPolicy { expected: source_schema.clone(), allow_added_nullable: allow_added },
        ..ScanOptions::default()
    };
    let start = watermark.clone().map_or(StartBound::Unbounded, StartBound::Exclusive);
    let known_plan = Scan::plan(&listing, &known, options(range(start))).await?;
    let new_plan = Scan::plan(&listing, &new_files, options(range(StartBound::Unbounded))).await?;
    let scanned_schema = scanned_schema(&listing, &known_plan, table_schema.as_ref());
    report.phase("plan", clock.elapsed());

    let clock = Instant::now();
    let (mut transaction, output_schema) = if plan {
        // What the run's sink would refuse, the plan refuses too.
        loader.sink.partition_columns(table_schema.as_ref().unwrap_or(&scanned_schema))?;
        (None, table_schema.clone().unwrap_or_else(|| Arc::clone(&scanned_schema)))
    } else {
        let base_schema = table_schema.clone().unwrap_or_else(|| Arc::clone(&scanned_schema));
        let output_schema = reconcile(&base_schema, &scanned_schema, loader.schema_evolution, "the source")?;
        let mut transaction = loader
            .target_place()
            .begin_at(
                &output_schema,
                &loader.table_options,
                RunSpec::load(Pattern::Sequence),
                snapshot.as_ref().map(|s| s.version),
            )
            .await?;
        if output_schema.as_ref() != transaction.base().schema.as_ref() {
            transaction.set_schema(Arc::clone(&output_schema));
        }
        transaction.run_id().clone_into(&mut report.run_id);
        (Some(transaction), output_schema)
    };
    let mut sink = match (&transaction, loader.mode) {
        (Some(transaction), OutputMode::Append) => {
            Some(ParquetSink::new(transaction.file_target(), Arc::clone(&output_schema), loader.sink.clone())?)
        }
        _ => None,
    };
    let mut selected = Selected {
        buffered: Vec::new(),
        // Upserts and held gaps decide after seeing everything; plans write nothing.
        buffer_all: loader.hold_on_gap.is_some() || loader.mode == OutputMode::Upsert || plan,
        last_written: None,
        ids: Vec::new(),
        late_files: std::collections::BTreeSet::new(),
        run_ids: IntervalSet::new(),
    };
    let metrics = [known_plan.metrics(), new_plan.metrics()];
    let window = (lower, upper, watermark_id);
    for (scan, is_new) in [(known_plan, false), (new_plan, true)] {
        stream(scan, is_new, loader, window, &loaded, &mut details, &mut selected, sink.as_mut(), &output_schema)
            .await?;
    }
    for metric in &metrics {
        add_scan_metrics(&mut report, metric);
    }

    // A held gap: stop before the first missing id until it times out.
    let mut cutoff = upper;
    let mut next_gap: Option<HeldGap> = None;
    if let Some(timeout) = loader.hold_on_gap {
        let mut candidates = selected.ids.clone();
        candidates.sort_unstable();
        if let Some(first_missing) = first_missing(&candidates, watermark_id, &loaded) {
            let since = match &held_gap {
                Some(gap) if gap.first == first_missing => gap.since,
                _ => chrono::Utc::now(),
            };
            let waited = chrono::Utc::now().signed_duration_since(since).to_std().unwrap_or_default();
            if waited < timeout {
                cutoff = first_missing - 1;
                next_gap = Some(HeldGap { first: first_missing, since });
            }
        }
    }
    let loaded_ids: Vec<i64> = {
        let mut ids: Vec<i64> = selected.ids.iter().copied().filter(|id| *id <= cutoff).collect();
        ids.sort_unstable();
        ids
    };
    details.held_back += (selected.ids.len() - loaded_ids.len()) as u64;
    if let Some(max) = loader.max_rows {
        if loaded_ids.len() as u64 > max {
            if let Some(transaction) = transaction.take() {
                transaction.abort().await?;
            }
            return Err(Error::TooManyRows { rows: loaded_ids.len() as u64, max });
        }
    }
    report.rows.written = loaded_ids.len() as u64;
    report.rows.skipped = report.rows.read.saturating_sub(report.rows.written);
    report.late_files = selected.late_files.iter().cloned().collect();
    report.files.late = report.late_files.len() as u64;

    // The new watermark, the loaded ids and the gaps among them.
    let new_max = loaded_ids.last().copied();
    let watermark_after = match (new_max, watermark_id) {
        (Some(max), Some(before)) if max <= before => watermark.clone(),
        (Some(max), _) => Some(WatermarkValue::int64(max)),
        (None, _) => watermark.clone(),
    };
    report.watermark_after.clone_from(&watermark_after);
    let mut now_loaded = loaded.clone();
    for (first, last) in runs(&loaded_ids) {
        now_loaded.insert(Interval::closed(first, last));
    }
    if let (Some(after), Some(first)) =
        (watermark_after.as_ref().and_then(|w| CursorTicks::Integer.floor(w)), loaded_ids.first())
    {
        let from = watermark_id.map_or(*first, |w| w + 1);
        let gaps = now_loaded.gaps(&Interval::closed(from, after));
        details.gap_count = gaps.len() as u64;
        for gap in &gaps {
            let (std::ops::Bound::Included(first), std::ops::Bound::Excluded(end)) = (&gap.lower, &gap.upper) else {
                continue;
            };
            details.missing_ids += (end - first) as u64;
            if details.gaps.len() < GAPS_LISTED {
                details.gaps.push(SequenceGap { first: *first, last: end - 1 });
            }
        }
    }
    report.phase("load", clock.elapsed());

    let Some(mut transaction) = transaction else {
        match loader.mode {
            OutputMode::Append => report.rows.inserted = report.rows.written,
            // Only the run, which reads the target's keys, can tell inserts from updates.
            OutputMode::Upsert if report.rows.written > 0 => report.warnings.push(format!(
                "plan: {} rows to upsert by key; how many are new is known when the run reads the target",
                report.rows.written
            )),
            OutputMode::Upsert => {}
        }
        report.details = PatternReport::Sequence(details);
        return Ok(report);
    };
    let clock = Instant::now();
    write_rest(&mut transaction, loader, &output_schema, &mut selected, cutoff, sink, &mut report).await?;
    let ledger = next_ledger(&listing, previous.as_ref(), &kept_previous);
    let changed = !loaded_ids.is_empty()
        || ledger.adds_to(previous.as_ref())
        || watermark_after != own_watermark
        || next_gap != held_gap;
    if !changed {
        transaction.abort().await?;
        report.details = PatternReport::Sequence(details);
        return Ok(report);
    }
    transaction.put_state(LEDGER_STATE, ledger.to_bytes()?).await?;
    transaction.put_state(LOADED_STATE, Bytes::from(serde_json::to_vec(&now_loaded).unwrap_or_default())).await?;
    transaction.set_property(GAP_PROPERTY, serde_json::to_value(&next_gap).unwrap_or_default());
    report.details = PatternReport::Sequence(details.clone());
    let committed = transaction.commit(watermark_after.clone(), Some(report.clone())).await?;
    report.commit_version = Some(committed.version);
    report.phase("commit", clock.elapsed());
    if let (Some(path), Some(after)) = (&loader.watermark_path, &watermark_after) {
        highwater_store::seed::write_seed_mirror(path, &loader.table_name, after, &Zone::UTC).await?;
    }
    report.details = PatternReport::Sequence(details);
    Ok(report)
}

async fn import(loader: &SequenceLoader) -> Result<Option<i64>> {
    if loader.initial_watermark.is_some() {
        return Ok(loader.initial_watermark);
    }
    let Some(path) = &loader.watermark_path else { return Ok(None) };
    let value =
        highwater_store::seed::import_seed_watermark(path, &loader.table_name, &WatermarkKind::Int64, &Zone::UTC)
            .await?;
    Ok(value.and_then(|v| CursorTicks::Integer.floor(&v)))
}

/// The first id after the watermark (or the smallest candidate) that is neither loaded before
/// nor among the candidates, if a larger candidate exists.
fn first_missing(sorted: &[i64], watermark: Option<i64>, loaded: &IntervalSet<i64>) -> Option<i64> {
    let mut expected = match watermark {
        Some(w) => w + 1,
        None => *sorted.first()?,
    };
    for &id in sorted {
        while expected < id {
            if !loaded.contains(&expected) {
                return Some(expected);
            }
            expected += 1;
        }
        expected = expected.max(id + 1);
    }
    None
}

/// Sorted ids as runs of consecutive ids.
fn runs(sorted: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &id in sorted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 >= id => *last = (*last).max(id),
            _ => runs.push((id, id)),
        }
    }
    runs
}

#[allow(clippy::too_many_arguments, reason = "the run's shared state, passed down once")]
async fn stream(
    scan: ScanPlan,
    is_new: bool,
    loader: &SequenceLoader,
    (lower, upper, watermark): (i64, i64, Option<i64>),
    loaded: &IntervalSet<i64>,
    details: &mut SequenceReport,
    selected: &mut Selected,
    mut sink: Option<&mut ParquetSink>,
    output_schema: &SchemaRef,
) -> Result<()> {
    let mut batches = scan.stream();
    while let Some(scanned) = batches.next().await {
        let scanned = scanned?;
        let column = scanned.batch.column_by_name(&loader.column).cloned().ok_or_else(|| {
            highwater_store::Error::SchemaMismatch {
                file: scanned.file.key.clone(),
                column: loader.column.clone(),
                detail: "the sequence column is missing".into(),
            }
        })?;
        let ids = cursor_ticks(&loader.column, &column, None)?;
        let mask = select(
            &ids,
            &scanned.file,
            scanned.first_row,
            is_new,
            loader,
            (lower, upper, watermark),
            loaded,
            details,
            selected,
        )?;
        let count = mask.true_count();
        if count == 0 {
            continue;
        }
        let (rows, ids) = if count == ids.len() {
            (scanned.batch, ids)
        } else {
            let kept: Int64Array =
                ids.iter().zip(mask.iter()).filter(|(_, keep)| *keep == Some(true)).map(|(id, _)| id).collect();
            (arrow_select::filter::filter_record_batch(&scanned.batch, &mask)?, kept)
        };
        let rows = conform(&rows, output_schema)?;
        selected.ids.extend(ids.values().iter().copied());
        // Rows arriving in order are written at once; anything else is sorted at the end.
        let first = ids.values().first().copied().unwrap_or_default();
        let in_order = !selected.buffer_all
            && selected.buffered.is_empty()
            && selected.last_written.is_none_or(|last| first > last)
            && ids.values().windows(2).all(|pair| pair[0] < pair[1]);
        match sink.as_deref_mut() {
            Some(sink) if in_order => {
                sink.write(&rows).await?;
                selected.last_written = ids.values().last().copied();
            }
            _ => selected.buffered.push((rows, ids)),
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the run's shared state, passed down once")]
fn select(
    ids: &Int64Array,
    file: &SourceFile,
    first_row: u64,
    is_new: bool,
    loader: &SequenceLoader,
    (lower, upper, watermark): (i64, i64, Option<i64>),
    loaded: &IntervalSet<i64>,
    details: &mut SequenceReport,
    selected: &mut Selected,
) -> Result<BooleanArray> {
    let mut mask = Vec::with_capacity(ids.len());
    for row in 0..ids.len() {
        let keep = if ids.is_null(row) {
            match loader.null_cursors {
                NullCursors::Error => {
                    return Err(Error::NullSequence {
                        file: file.key.clone(),
                        row: first_row + row as u64,
                        column: loader.column.clone(),
                    });
                }
                NullCursors::Skip | NullCursors::Load => {
                    // A row without an id cannot be ordered or deduplicated: never loaded.
                    details.null_cursors += 1;
                    false
                }
            }
        } else {
            let id = ids.value(row);
            if id > upper {
                details.held_back += 1;
                false
            } else if id < lower && !is_new {
                false
            } else if loaded.contains(&id) || selected.run_ids.contains(&id) {
                details.duplicates += 1;
                false
            } else if id >= lower {
                selected.run_ids.insert(Interval::closed(id, id));
                true
            } else {
                // A new file with an id at or below the watermark that was never loaded: it
                // fills a gap.
                selected.late_files.insert(file.key.clone());
                match loader.late_files {
                    LateFiles::Load => {
                        selected.run_ids.insert(Interval::closed(id, id));
                        true
                    }
                    LateFiles::Skip => false,
                    LateFiles::Error => {
                        return Err(Error::LateFile {
                            file: file.key.clone(),
                            column: loader.column.clone(),
                            watermark: watermark.unwrap_or_default(),
                        });
                    }
                }
            }
        };
        mask.push(keep);
    }
    Ok(BooleanArray::from(mask))
}

/// Writes what was not written on the fly: buffered rows in sequence order (up to `cutoff`),
/// or the upsert through the merge writer; registers the files.
async fn write_rest(
    transaction: &mut Transaction,
    loader: &SequenceLoader,
    schema: &SchemaRef,
    selected: &mut Selected,
    cutoff: i64,
    sink: Option<ParquetSink>,
    report: &mut LoadReport,
) -> Result<()> {
    let buffered = std::mem::take(&mut selected.buffered);
    let ordered = sorted_rows(schema, buffered, cutoff)?;
    match loader.mode {
        OutputMode::Append => {
            // Rows written on the fly came in order; sorted rows after them go to files of their
            // own, so that every file is in sequence order.
            let mut sinks = Vec::new();
            sinks.extend(sink);
            if !ordered.is_empty() {
                let mut sorted = ParquetSink::new(transaction.file_target(), Arc::clone(schema), loader.sink.clone())?;
                for batch in &ordered {
                    sorted.write(batch).await?;
                }
                sinks.push(sorted);
            }
            for sink in sinks {
                for file in sink.finish().await? {
                    report.bytes.written += file.bytes;
                    report.files.written += 1;
                    transaction.add_file(file)?;
                }
            }
            report.rows.inserted = report.rows.written;
        }
        OutputMode::Upsert => {
            let key = KeyHasher::new(&loader.key, &KeyOptions::default())?;
            let options = MergeOptions {
                memory_budget_rows: loader.memory_budget_rows,
                sink: loader.sink.clone(),
                version_column: Some(loader.column.clone()),
            };
            let mut writer = MergeWriter::new(transaction, Arc::clone(schema), key, options)?;
            for batch in ordered {
                writer.push(ChangeOp::Upsert, batch).await?;
            }
            let outcome = writer.finish(transaction).await?;
            report.rows.updated = outcome.rows_replaced;
            report.rows.inserted = outcome.upserts.saturating_sub(report.rows.updated);
            report.rows.written = outcome.upserts;
            report.rows.skipped = report.rows.read.saturating_sub(outcome.upserts);
            report.files.replaced = outcome.files_replaced.len() as u64;
            report.files.written = outcome.files_added;
        }
    }
    Ok(())
}

/// Buffered rows with ids up to `cutoff`, sorted by id, in batches of at most 64 Ki rows.
fn sorted_rows(schema: &SchemaRef, buffered: Vec<(RecordBatch, Int64Array)>, cutoff: i64) -> Result<Vec<RecordBatch>> {
    if buffered.is_empty() {
        return Ok(Vec::new());
    }
    let batches: Vec<RecordBatch> = buffered.iter().map(|(b, _)| b.clone()).collect();
    let all = arrow_select::concat::concat_batches(schema, &batches)?;
    let ids: Vec<i64> = buffered.iter().flat_map(|(_, ids)| ids.values().iter().copied()).collect();
    drop(buffered);
    let mut order: Vec<u32> = (0..ids.len() as u32).filter(|&i| ids[i as usize] <= cutoff).collect();
    order.sort_by_key(|&i| ids[i as usize]);
    let mut sorted = Vec::new();
    for chunk in order.chunks(64 * 1024) {
        let indices = arrow_array::UInt32Array::from(chunk.to_vec());
        sorted.push(arrow_select::take::take_record_batch(&all, &indices)?);
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_runs() {
        assert_eq!(runs(&[1, 2, 3, 5, 6, 9]), [(1, 3), (5, 6), (9, 9)]);
        let mut loaded = IntervalSet::new();
        loaded.insert(Interval::closed(13, 13));
        assert_eq!(first_missing(&[11, 12, 14, 15], Some(10), &loaded), None, "13 was loaded before");
        assert_eq!(first_missing(&[11, 12, 15], Some(10), &loaded), Some(14));
        assert_eq!(first_missing(&[12], Some(10), &IntervalSet::new()), Some(11));
        assert_eq!(first_missing(&[], Some(10), &IntervalSet::new()), None);
    }
}
