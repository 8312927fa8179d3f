//! One run of a CDC apply.
//!
//! ```text
//! open table ─► state: ledger, key-state layout and truncate marker, watermark
//!     │
//! list source once ─► new event files (and rewritten ones: replays are harmless)
//!     │
//! read events ─► decode (bad events fail, named) ─► group by key bucket, in memory or spilled
//!     │
//! per bucket: its key state ─► reduce (latest per key; stale, replayed, superseded ignored)
//!     ─► winners to the merge writer ─► new bucket state (tombstones, purges)
//!     │
//! merge: truncate, then upserts and deletes, touching only files that may hold the keys
//!     │
//! commit data + ledger + key state + watermark (highest applied sequence), atomically
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::{Field, Schema, SchemaRef};
use futures::StreamExt;

use highwater_core::key::FingerprintSet;
use highwater_core::report::{CdcReport, LoadReport, Pattern, PatternReport};
use highwater_core::watermark::{WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use highwater_store::incremental::{LEDGER_STATE, RewrittenFiles, add_scan_metrics, next_ledger, previous_ledger};
use highwater_store::source::{Scan, ScanOptions, SchemaPolicy};
use highwater_store::write::{ChangeOp, MergeOptions, MergeWriter, Spill, reconcile};
use highwater_store::{RunSpec, Transaction};

use crate::bucket::{BucketOutcome, BucketWork, Reducer};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::input::Input;
use crate::loader::CdcLoader;
use crate::state::{META_PROPERTY, StateBucket, StateMeta, bits_for, bits_for_keys, bucket_name, state_schema};

/// Buckets reduced at once (on blocking threads).
const BUCKETS_IN_FLIGHT: usize = 2;

#[allow(clippy::too_many_lines, reason = "the run reads top to bottom as the pipeline drawn in the module docs")]
pub(crate) async fn execute(loader: &CdcLoader, plan: bool) -> Result<LoadReport> {
    let mut report = LoadReport::new(&loader.table_name, "", PatternReport::Cdc(CdcReport::default()));
    report.planned = plan;
    let mut details = CdcReport::default();

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
    let meta = match &snapshot {
        Some(snapshot) => StateMeta::from_properties(&snapshot.properties)?,
        None => None,
    };
    if let Some(meta) = &meta
        && meta.history != loader.scd2.is_some()
    {
        let (is, asked) = if meta.history { ("SCD type 2", "type 1") } else { ("SCD type 1", "type 2") };
        return Err(Error::Config(format!(
            "the table at {} is an {is} table: a run cannot apply events to it as {asked}",
            loader.target
        )));
    }
    let meta = meta.unwrap_or_else(|| StateMeta { history: loader.scd2.is_some(), ..StateMeta::default() });

    let source = loader.source_place().source(&loader.sources[1..], loader.source_options.clone())?;
    let listing = source.list().await?;
    listing.note_in(&mut report);
    let classes = previous.as_ref().map(|ledger| ledger.classify(&listing));
    let (mut to_read, rewritten) = match &classes {
        None => (listing.files.clone(), Vec::new()),
        Some(classes) => (classes.new.clone(), classes.rewritten.clone()),
    };
    report.files.new = to_read.len() as u64;
    report.files.rewritten = rewritten.len() as u64;
    report.files.gone = classes.as_ref().map_or(0, |c| c.gone.len() as u64);
    report.rewritten_files = rewritten.iter().map(|f| f.key.clone()).collect();
    let mut kept_previous = Vec::new();
    match loader.rewritten_files {
        RewrittenFiles::Error if !rewritten.is_empty() => {
            return Err(Error::RewrittenFile { file: rewritten[0].key.clone() });
        }
        RewrittenFiles::Skip => kept_previous.clone_from(&rewritten),
        RewrittenFiles::Reload => to_read.extend(rewritten.iter().cloned()),
        RewrittenFiles::Error => {}
    }
    report.phase("list", clock.elapsed());

    let clock = Instant::now();
    let options = ScanOptions {
        batch_size: loader.batch_size,
        schema: SchemaPolicy {
            expected: None,
            allow_added_nullable: loader.schema_evolution != highwater_store::write::SchemaEvolution::Fail,
        },
        ..ScanOptions::default()
    };
    // Debezium's sequence columns are known once the envelopes are decoded.
    let adjusted;
    let (loader, input) = match &loader.debezium {
        Some(debezium) => {
            let table = snapshot.as_ref().map(|s| crate::history::row_schema(&s.schema, loader.scd2.as_ref()));
            let decoded =
                crate::debezium::decode(&listing, &to_read, debezium, loader.memory_budget_rows, table.as_ref())
                    .await?;
            details.kafka_tombstones = decoded.tombstones;
            report.bytes.read += decoded.bytes_read;
            adjusted = loader.with_sequence(decoded.sequence);
            (&adjusted, Input::Debezium(decoded))
        }
        None => (loader, Input::Flat(Scan::plan(&listing, &to_read, options).await?)),
    };
    let spec = &loader.spec;
    let event_schema = input.schema();
    let table_schema = snapshot.as_ref().map(|s| Arc::clone(&s.schema)).filter(|s| !s.fields().is_empty());
    if to_read.is_empty() {
        // No new events: nothing to commit (files gone from the source stay in the ledger,
        // harmlessly: events are only ever read once).
        report.watermark_before.clone_from(&own_watermark);
        report.watermark_after = own_watermark;
        report.details = PatternReport::Cdc(details);
        return Ok(report);
    }
    let sequence_fields = sequence_fields(loader, &event_schema, &to_read)?;
    let zone = spec.hash.zone()?;
    let sequence_kind = sequence_kind(&sequence_fields, zone.as_ref())?;
    if let Some(watermark) = &own_watermark {
        watermark.check_kind(&sequence_kind)?;
    }
    // The seed job's watermark: events at or below it were applied before this table's state.
    let imported = if own_watermark.is_none() && previous.is_none() {
        import(loader, &sequence_kind, zone.as_ref().unwrap_or(&Zone::UTC)).await?
    } else {
        None
    };
    let watermark_before = own_watermark.clone().or_else(|| imported.clone());
    report.watermark_before.clone_from(&watermark_before);
    let target_columns: Vec<Field> = match &loader.scd2 {
        Some(scd2) => crate::history::output_schema(&event_schema, spec, scd2)?.0,
        None => event_schema
            .fields()
            .iter()
            .filter(|f| *f.name() != spec.op_column && (loader.keep_sequence || !spec.sequence.contains(f.name())))
            .map(|f| f.as_ref().clone())
            .collect(),
    };
    let incoming = Schema::new(target_columns);
    let output_schema: SchemaRef = match &table_schema {
        Some(table) => reconcile(table, &incoming, loader.schema_evolution, "the events")?,
        None => Arc::new(incoming),
    };
    report.phase("plan", clock.elapsed());

    let mut transaction = if plan {
        None
    } else {
        let transaction = loader
            .target_place()
            .begin_at(
                &output_schema,
                &loader.table_options,
                RunSpec::load(Pattern::Cdc),
                snapshot.as_ref().map(|s| s.version),
            )
            .await?;
        Some(transaction)
    };
    if let Some(transaction) = &mut transaction {
        if output_schema.as_ref() != transaction.base().schema.as_ref() {
            transaction.set_schema(Arc::clone(&output_schema));
        }
        report.run_id = transaction.run_id().to_owned();
    }
    let applied = apply(
        loader,
        &mut transaction,
        &meta,
        snapshot.as_ref(),
        input,
        &output_schema,
        &sequence_fields,
        imported.as_ref(),
        &mut details,
        &mut report,
    )
    .await;
    let (new_meta, highest) = match applied {
        Ok(applied) => applied,
        Err(error) => {
            if let Some(transaction) = transaction {
                transaction.abort().await?;
            }
            return Err(error);
        }
    };
    let watermark_after = [watermark_before.clone(), highest].into_iter().flatten().max();
    report.watermark_after.clone_from(&watermark_after);

    let Some(mut transaction) = transaction else {
        report.details = PatternReport::Cdc(details);
        return Ok(report);
    };
    let clock = Instant::now();
    let ledger = next_ledger(&listing, previous.as_ref(), &kept_previous);
    transaction.put_state(LEDGER_STATE, ledger.to_bytes()?).await?;
    transaction.set_property(META_PROPERTY, serde_json::to_value(&new_meta).unwrap_or_default());
    report.details = PatternReport::Cdc(details.clone());
    let committed = transaction.commit(watermark_after.clone(), Some(report.clone())).await?;
    report.commit_version = Some(committed.version);
    report.phase("commit", clock.elapsed());
    if let (Some(path), Some(after)) = (&loader.watermark_path, &watermark_after) {
        highwater_store::seed::write_seed_mirror(path, &loader.table_name, after, zone.as_ref().unwrap_or(&Zone::UTC))
            .await?;
    }
    report.details = PatternReport::Cdc(details);
    Ok(report)
}

/// Reads, reduces and applies the events; returns the new state layout and the highest
/// sequence applied.
#[allow(clippy::too_many_arguments, clippy::too_many_lines, reason = "the run's shared state, passed down once")]
async fn apply(
    loader: &CdcLoader,
    transaction: &mut Option<Transaction>,
    meta: &StateMeta,
    snapshot: Option<&highwater_store::Snapshot>,
    scan: Input,
    output_schema: &SchemaRef,
    sequence_fields: &[Field],
    imported: Option<&WatermarkValue>,
    details: &mut CdcReport,
    report: &mut LoadReport,
) -> Result<(StateMeta, Option<WatermarkValue>)> {
    let spec = &loader.spec;
    let budget = loader.memory_budget_rows;
    let event_rows = scan.rows();
    let spill = match transaction {
        Some(transaction) if event_rows > budget as u64 => Some(Spill::new(transaction.file_target(), "events")),
        _ => None,
    };
    let bits = meta.bits.max(bits_for_keys(meta.total_keys() + event_rows)).max(if spill.is_some() {
        bits_for(event_rows, budget as u64 / 2)
    } else {
        0
    });
    let scan_schema = scan.schema();
    let data_columns: Vec<String> = scan_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|name| *name != spec.op_column && !spec.sequence.contains(name))
        .collect();
    let clock = Instant::now();
    let metrics = scan.metrics();
    let mut events = Events::new(spec.clone(), bits, spill, budget);
    let mut stream = scan.stream();
    while let Some(batch) = stream.next().await {
        events.push(batch?).await?;
    }
    report.phase("read", clock.elapsed());
    let clock = Instant::now();
    if let Some(metrics) = &metrics {
        add_scan_metrics(report, metrics);
    }
    details.events = events.count;
    report.rows.read = events.count;

    // The table truncate: the latest truncate event past the marker (and past the seed's
    // watermark) moves it; every event at or below it is stale.
    let mut truncate: Option<WatermarkValue> = None;
    let mut truncate_sequences = std::collections::BTreeSet::new();
    for (event, _) in &events.truncates {
        let past = |bound: Option<&WatermarkValue>| bound.is_none_or(|b| event.sequence > *b);
        if past(meta.truncated.as_ref()) && past(imported) {
            truncate_sequences.insert(event.sequence.clone());
            truncate = truncate.max(Some(event.sequence.clone()));
        } else {
            details.ignored_stale += 1;
        }
    }
    details.truncates = truncate_sequences.len() as u64;
    if loader.scd2.is_some()
        && let Some((_, description)) = events.truncates.first()
    {
        return Err(crate::history::refuse_truncate(description));
    }
    let marker = [meta.truncated.clone(), truncate.clone()].into_iter().flatten().max();

    let table_key = crate::history::table_key(spec)?;
    let key = match &loader.scd2 {
        Some(_) => crate::history::version_key(spec)?,
        None => table_key.clone(),
    };
    let mut merge = match transaction.as_ref() {
        Some(transaction) => {
            let options = MergeOptions { memory_budget_rows: budget, sink: loader.sink.clone(), version_column: None };
            // One winning event per key: the merge streams upserts to files, holding only keys.
            Some(MergeWriter::new(transaction, Arc::clone(output_schema), key, options)?.with_unique_keys())
        }
        None => None,
    };
    let zone = spec.hash.zone()?;
    let empty = StateBucket::empty(state_schema(sequence_fields), zone);
    let reducer = Arc::new(Reducer {
        spec: spec.clone(),
        data_columns: data_columns.clone(),
        imported: imported.cloned(),
        marker: marker.clone(),
        truncate: truncate.clone(),
        now: chrono::Utc::now().timestamp(),
        retention: loader.tombstone_retention.map(|r| i64::try_from(r.as_secs()).unwrap_or(i64::MAX)),
        files: events.files().to_vec(),
        plan: transaction.is_none(),
    });
    let history = match &loader.scd2 {
        Some(scd2) => Some(Arc::new(history_reducer(
            loader,
            scd2,
            &scan_schema,
            &data_columns,
            output_schema,
            imported,
            events.files(),
        )?)),
        None => None,
    };
    let mut old_log: Option<(usize, Option<arrow_array::RecordBatch>)> = None;
    let mut new_meta = StateMeta { bits, keys: vec![0; 1 << bits], truncated: marker.clone(), history: meta.history };
    let mut applied = Applied { keep: FingerprintSet::default(), highest: truncate.clone() };
    let mut old: Option<(usize, StateBucket)> = None;
    let mut in_flight: VecDeque<tokio::task::JoinHandle<Result<BucketOutcome>>> = VecDeque::new();
    for bucket in 0..(1usize << bits) {
        let old_index = bucket >> (bits - meta.bits);
        let touched = events.has_events(bucket) || truncate.is_some() || bits != meta.bits;
        if !touched {
            new_meta.keys[bucket] = meta.keys.get(old_index).copied().unwrap_or(0);
            continue;
        }
        if let Some(history) = &history {
            if old_log.as_ref().is_none_or(|(index, _)| *index != old_index) {
                let name = crate::history::log_name(old_index);
                let log = match snapshot.and_then(|s| s.state.get(&name)) {
                    Some(reference) => {
                        let bytes = match transaction.as_ref().map(Transaction::table) {
                            Some(table) => table.read_state(reference).await?,
                            None => read_state_without_run(loader, reference).await?,
                        };
                        crate::history::read_log(&bytes, &name)?
                    }
                    None => None,
                };
                old_log = Some((old_index, log));
            }
            let log = match old_log.as_ref().and_then(|(_, log)| log.as_ref()) {
                Some(log) if bits != meta.bits => Some(crate::history::slice_log(log, &table_key, bucket, bits)?),
                Some(log) => Some(log.clone()),
                None => None,
            };
            let batches = events.take(bucket).await?;
            let work = crate::history::HistoryWork { bucket, batches, log };
            let history = Arc::clone(history);
            in_flight.push_back(tokio::task::spawn_blocking(move || history.run(work)));
            if in_flight.len() >= BUCKETS_IN_FLIGHT {
                let outcome = joined(in_flight.pop_front()).await?;
                applied.finish(outcome, merge.as_mut(), transaction.as_mut(), details, &mut new_meta).await?;
            }
            continue;
        }
        if old.as_ref().is_none_or(|(index, _)| *index != old_index) {
            let name = bucket_name(old_index);
            let state = match snapshot.and_then(|s| s.state.get(&name)) {
                Some(reference) => {
                    let table = transaction.as_ref().map(Transaction::table);
                    let bytes = match table {
                        Some(table) => table.read_state(reference).await?,
                        None => read_state_without_run(loader, reference).await?,
                    };
                    StateBucket::read(&bytes, &name, &spec.sequence, zone)?
                }
                None => empty.clone(),
            };
            old = Some((old_index, state));
        }
        let state = old.as_ref().map_or_else(|| empty.clone(), |(_, s)| s.slice(bucket, bits));
        let batches = events.take(bucket).await?;
        let work = BucketWork { bucket, batches, state };
        let reducer = Arc::clone(&reducer);
        in_flight.push_back(tokio::task::spawn_blocking(move || reducer.run(work)));
        if in_flight.len() >= BUCKETS_IN_FLIGHT {
            let outcome = joined(in_flight.pop_front()).await?;
            applied.finish(outcome, merge.as_mut(), transaction.as_mut(), details, &mut new_meta).await?;
        }
    }
    while !in_flight.is_empty() {
        let outcome = joined(in_flight.pop_front()).await?;
        applied.finish(outcome, merge.as_mut(), transaction.as_mut(), details, &mut new_meta).await?;
    }
    let Applied { keep: keep_through_truncate, highest } = applied;
    events.clear().await;
    drop(events);
    report.phase("reduce", clock.elapsed());
    let clock = Instant::now();
    if let (Some(mut merge), Some(transaction)) = (merge, transaction.as_mut()) {
        if truncate.is_some() {
            merge.truncate(keep_through_truncate);
        }
        let outcome = merge.finish(transaction).await?;
        details.updated = outcome.rows_replaced;
        details.inserted = outcome.upserts.saturating_sub(outcome.rows_replaced);
        details.deleted = outcome.rows_deleted;
        report.rows.inserted = details.inserted;
        report.rows.updated = details.updated;
        report.rows.deleted = outcome.rows_deleted + outcome.rows_truncated;
        report.rows.written = outcome.upserts;
        report.files.replaced = outcome.files_replaced.len() as u64;
        report.files.written = outcome.files_added;
        report.bytes.written += transaction.added().iter().map(|f| f.bytes).sum::<u64>();
        report.phase("merge", clock.elapsed());
    } else {
        report.rows.inserted = details.inserted;
        report.rows.updated = details.updated;
        report.rows.deleted = details.deleted;
        report.rows.written = details.inserted + details.updated;
    }
    report.rows.skipped = details.ignored_stale + details.ignored_duplicate + details.superseded;
    Ok((new_meta, highest))
}

/// What the buckets applied so far.
struct Applied {
    /// Keys whose rows survive this run's truncate.
    keep: FingerprintSet,
    highest: Option<WatermarkValue>,
}

impl Applied {
    /// Takes in a reduced bucket: its changes go to the merge writer, its state to the run.
    async fn finish(
        &mut self,
        outcome: BucketOutcome,
        merge: Option<&mut MergeWriter>,
        transaction: Option<&mut Transaction>,
        details: &mut CdcReport,
        meta: &mut StateMeta,
    ) -> Result<()> {
        let counts = &outcome.counts;
        details.ignored_stale += counts.ignored_stale;
        details.ignored_duplicate += counts.ignored_duplicate;
        details.superseded += counts.superseded;
        details.tombstoned += counts.tombstoned;
        details.purged += counts.purged;
        self.keep.extend(outcome.keep);
        self.highest = self.highest.take().max(outcome.highest);
        meta.keys[outcome.bucket] = outcome.keys;
        if let Some(merge) = merge {
            for rows in outcome.upserts {
                merge.push(ChangeOp::Upsert, rows).await?;
            }
            for rows in outcome.deletes {
                merge.push(ChangeOp::Delete, rows).await?;
            }
        } else {
            details.inserted += counts.inserted;
            details.updated += counts.updated;
            details.deleted += counts.deleted;
        }
        if let Some(transaction) = transaction {
            let name =
                if meta.history { crate::history::log_name(outcome.bucket) } else { bucket_name(outcome.bucket) };
            transaction.put_state(&name, outcome.state).await?;
        }
        Ok(())
    }
}

/// The outcome of a bucket's blocking task (a panic there resumes here).
async fn joined(task: Option<tokio::task::JoinHandle<Result<BucketOutcome>>>) -> Result<BucketOutcome> {
    let Some(task) = task else { return Err(Error::Config("no bucket in flight".into())) };
    blocking_outcome(task, "a bucket's task").await
}

/// The outcome of a blocking task (`what` names it): a panic there resumes here.
pub(crate) async fn blocking_outcome<T>(task: tokio::task::JoinHandle<Result<T>>, what: &str) -> Result<T> {
    match task.await {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(Error::Config(format!("{what} was cancelled: {error}"))),
    }
}

/// The sequence columns' fields, checked: present in the events, of an orderable type.
fn sequence_fields(
    loader: &CdcLoader,
    schema: &Schema,
    files: &[Arc<highwater_store::source::SourceFile>],
) -> Result<Vec<Field>> {
    let spec = &loader.spec;
    let file = files.first().map_or_else(|| "the events".to_owned(), |f| f.key.clone());
    let missing = |column: &str, what: &str| highwater_store::Error::SchemaMismatch {
        file: file.clone(),
        column: column.to_owned(),
        detail: format!("the {what} column is missing"),
    };
    if schema.field_with_name(&spec.op_column).is_err() {
        return Err(missing(&spec.op_column, "operation").into());
    }
    for column in &spec.key {
        if schema.field_with_name(column).is_err() {
            return Err(missing(column, "key").into());
        }
    }
    spec.sequence
        .iter()
        .map(|column| schema.field_with_name(column).cloned().map_err(|_| missing(column, "sequence").into()))
        .collect()
}

fn sequence_kind(fields: &[Field], zone: Option<&Zone>) -> Result<WatermarkKind> {
    let mut kinds = fields
        .iter()
        .map(|f| WatermarkKind::from_data_type(f.name(), f.data_type(), zone))
        .collect::<highwater_core::Result<Vec<_>>>()?;
    Ok(if kinds.len() == 1 { kinds.remove(0) } else { WatermarkKind::Tuple { elements: kinds } })
}

async fn import(loader: &CdcLoader, kind: &WatermarkKind, zone: &Zone) -> Result<Option<WatermarkValue>> {
    if let Some(text) = &loader.initial_watermark {
        return Ok(Some(WatermarkValue::parse(text, kind, zone)?));
    }
    let Some(path) = &loader.watermark_path else { return Ok(None) };
    Ok(highwater_store::seed::import_seed_watermark(path, &loader.table_name, kind, zone).await?)
}

/// A plan has no run: it reads state through a fresh handle of the table.
async fn read_state_without_run(loader: &CdcLoader, reference: &highwater_store::StateFileRef) -> Result<bytes::Bytes> {
    let table = loader.target_place().open_table(&loader.table_options).await?.ok_or_else(|| Error::State {
        name: reference.path.clone(),
        detail: "the table disappeared during the plan".into(),
    })?;
    Ok(table.read_state(reference).await?)
}

/// The history reducer of an SCD type 2 run, its columns checked.
fn history_reducer(
    loader: &CdcLoader,
    scd2: &crate::history::Scd2,
    events: &Schema,
    data_columns: &[String],
    output: &SchemaRef,
    imported: Option<&WatermarkValue>,
    files: &[String],
) -> Result<crate::history::HistoryReducer> {
    let spec = &loader.spec;
    let tracked = match &scd2.track_columns {
        Some(columns) => {
            if let Some(missing) = columns.iter().find(|c| !data_columns.contains(c)) {
                return Err(Error::Config(format!(
                    "the tracked column `{missing}` is not a data column of the events"
                )));
            }
            columns.clone()
        }
        None => data_columns.to_vec(),
    };
    let (_, time) = crate::history::output_schema(events, spec, scd2)?;
    Ok(crate::history::HistoryReducer {
        spec: spec.clone(),
        scd2: scd2.clone(),
        data_columns: data_columns.to_vec(),
        tracked,
        log_schema: crate::history::log_schema(events),
        output: Arc::clone(output),
        time_column: scd2.time_column(spec)?.to_owned(),
        open_end: scd2.open_end_value(&time)?,
        imported: imported.cloned(),
        files: files.to_vec(),
    })
}
