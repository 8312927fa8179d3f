//! One run of a snapshot diff.
//!
//! ```text
//! open table ─► previous snapshot's listing and index (state)
//!     │
//! list the new snapshot ─► unchanged listing: nothing to do
//!     │
//! older side in memory: mode (a) the older snapshot's entries; mode (b) the stored index
//!     │
//! stream the new snapshot, batches hashed and classified on two threads:
//!     key unknown ─► insert │ hash differs ─► update │ equal ─► unchanged │ key seen ─► error
//!     │                                                     new index entries by bucket (kept)
//! older keys never matched ─► deletes
//!     │
//! commit the change set (or the merge) + the new index + the listing, atomically
//! ```

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use highwater_core::change::ChangeKind;
use highwater_core::diff::{
    DiffSpec, Hashed, IndexMeta, SnapshotHasher, SnapshotIndex, bucket_bits, index::INDEX_FORMAT, sort_entries,
    split_entries,
};
use highwater_core::hash::HASH_SPEC_VERSION;
use highwater_core::key::{FingerprintSet, KeyFingerprint, describe_row};
use highwater_core::report::{DiffReport, LoadReport, Pattern, PatternReport, SchemaChange};
use highwater_core::watermark::{TimestampUnit, WatermarkValue};
use highwater_store::incremental::{LEDGER_STATE, add_scan_metrics, previous_ledger};
use highwater_store::source::{Ledger, Listing, Scan, ScanBatch, ScanOptions, ScanPlan, SchemaPolicy};
use highwater_store::write::Spill;
use highwater_store::{FileTarget, RunSpec, Transaction};

use crate::error::{Error, Result};
use crate::loader::{DiffLoader, Output, Tolerance};
use crate::old::{OldBuilder, OldSide};
use crate::output::ChangeWriter;

/// The state file of the snapshot index.
pub const INDEX_STATE: &str = "snapshot-index";
/// Batches hashed at once.
const HASHING_IN_FLIGHT: usize = 2;

/// What the new snapshot's rows are compared against.
enum Older {
    /// Mode (a): an older snapshot.
    Snapshot { listing: Listing },
    /// Mode (b): the stored index.
    Index(SnapshotIndex),
    /// The first snapshot: nothing.
    Nothing,
}

#[allow(clippy::too_many_lines, reason = "the run reads top to bottom as the pipeline drawn in the module docs")]
pub(crate) async fn execute(loader: &DiffLoader, plan: bool) -> Result<LoadReport> {
    let mut report = LoadReport::new(&loader.table_name, "", PatternReport::Diff(DiffReport::default()));
    report.planned = plan;
    let mut details = DiffReport::default();
    let clock = Instant::now();
    let table = loader.target_place().open_table(&loader.table_options).await?;
    let snapshot = match &table {
        Some(table) => Some(table.snapshot().await?),
        None => None,
    };
    let previous_listing = match (&table, &snapshot) {
        (Some(table), Some(snapshot)) => previous_ledger(table, snapshot).await?,
        _ => None,
    };
    let source = loader.source_place().source(&[], loader.source_options.clone())?;
    let listing = source.list().await?;
    listing.note_in(&mut report);
    if listing.files.is_empty() && !loader.allow_empty_snapshot {
        return Err(Error::EmptySnapshot { location: loader.source_place().label() });
    }
    let ledger = Ledger::of(&listing);
    let explicit = loader.previous_place().is_some();
    if !explicit && previous_listing.as_ref() == Some(&ledger) {
        // The same snapshot as last time: nothing changed.
        report.watermark_before = snapshot.as_ref().and_then(|s| s.watermark.clone());
        report.watermark_after.clone_from(&report.watermark_before);
        report.details = PatternReport::Diff(details);
        return Ok(report);
    }
    let older = match (loader.previous_place(), &table, &snapshot) {
        (Some(place), _, _) => {
            Older::Snapshot { listing: place.source(&[], loader.source_options.clone())?.list().await? }
        }
        (None, Some(table), Some(snapshot)) if snapshot.state.contains_key(INDEX_STATE) => {
            let reference = &snapshot.state[INDEX_STATE];
            let bytes = table.read_state(reference).await?;
            Older::Index(
                SnapshotIndex::from_buffer(arrow_buffer::Buffer::from(bytes))
                    .map_err(|e| Error::State { name: INDEX_STATE.into(), detail: e.to_string() })?,
            )
        }
        (None, _, _) => match &loader.seed_snapshot {
            Some(location) => {
                let seed = highwater_store::incremental::Place::Location(location.clone());
                match seed.source(&[], loader.source_options.clone())?.list().await {
                    Ok(listing) if !listing.files.is_empty() => Older::Snapshot { listing },
                    _ => Older::Nothing,
                }
            }
            None => Older::Nothing,
        },
    };
    report.watermark_before = snapshot.as_ref().and_then(|s| s.watermark.clone());
    report.phase("list", clock.elapsed());

    let clock = Instant::now();
    let options = ScanOptions {
        batch_size: loader.batch_size,
        schema: SchemaPolicy { expected: None, allow_added_nullable: true },
        ..ScanOptions::default()
    };
    let new_scan = Scan::plan(&listing, &listing.files, options.clone()).await?;
    let new_schema = Arc::clone(&new_scan.schema);
    let old_scan = match &older {
        Older::Snapshot { listing } => Some(Scan::plan(listing, &listing.files, options.clone()).await?),
        _ => None,
    };
    let old_schema = old_scan.as_ref().map(|s| Arc::clone(&s.schema));
    // The columns compared, the schema changes, the key's types.
    let mut spec = if let Older::Index(index) = &older {
        index.meta.spec.clone()
    } else {
        {
            let both = match &old_schema {
                Some(old) if !old.fields().is_empty() => common_schema(old, &new_schema),
                _ => new_schema.as_ref().clone(),
            };
            let mut ignore = loader.ignore.clone();
            ignore.extend(loader.tolerance.keys().cloned());
            ignore.retain(|c| both.field_with_name(c).is_ok());
            if both.fields().is_empty() {
                DiffSpec {
                    key: loader.key.clone(),
                    columns: Vec::new(),
                    quantize: highwater_core::diff::Quantize::default(),
                    column_hashes: false,
                    hash: highwater_core::hash::HashOptions::default(),
                    allow_null_keys: false,
                }
            } else {
                DiffSpec::for_schema(&both, &loader.key, &ignore)?
            }
        }
    };
    if !matches!(older, Older::Index(_)) {
        spec.quantize = loader.quantize.clone();
        spec.column_hashes = loader.changed_columns;
        spec.hash.naive_timezone.clone_from(&loader.naive_zone);
        spec.allow_null_keys = loader.allow_null_keys;
    }
    if let Older::Index(index) = &older {
        let mut wanted = spec.clone();
        wanted.quantize = loader.quantize.clone();
        wanted.key.clone_from(&loader.key);
        wanted.hash.naive_timezone.clone_from(&loader.naive_zone);
        index.check_compatible(&wanted)?;
    }
    details.schema_changes = schema_changes(&older, old_schema.as_deref(), &new_schema, &spec);
    let tolerance: Vec<(String, Tolerance)> = loader
        .tolerance
        .iter()
        .filter(|(c, _)| {
            new_schema.field_with_name(c).is_ok() && old_schema.as_ref().is_some_and(|s| s.field_with_name(c).is_ok())
        })
        .map(|(c, t)| (c.clone(), *t))
        .collect();
    // The key's types: from the new snapshot, else the older one or the index.
    let index_schema = match &older {
        Older::Index(index) => Some(Arc::clone(&index.schema)),
        _ => None,
    };
    let key_schema = key_schema(&spec.key, &new_schema, old_schema.as_deref().or(index_schema.as_deref()))?;
    let families = match &older {
        Older::Index(index) => index.meta.families.clone(),
        _ => Vec::new(),
    };
    let mut hasher = SnapshotHasher::new(&spec)?;
    if !families.is_empty() {
        hasher = hasher.with_families(&families);
    }
    let spec = hasher.spec().clone();
    let keep_index = loader.keep_index.unwrap_or(!explicit);
    report.phase("plan", clock.elapsed());

    // The transaction and where the changes go.
    let table_schema = match loader.output {
        Output::ChangeFeed => crate::output::feed_schema(&new_schema),
        Output::Folders | Output::Apply => Arc::clone(&new_schema),
    };
    let mut transaction = if plan {
        None
    } else {
        let transaction = loader
            .target_place()
            .begin_at(
                &table_schema,
                &loader.table_options,
                RunSpec::load(Pattern::Diff),
                snapshot.as_ref().map(|s| s.version),
            )
            .await?;
        Some(transaction)
    };
    let mut writer = match &mut transaction {
        Some(transaction) => {
            if table_schema.as_ref() != transaction.base().schema.as_ref() && loader.output != Output::Apply {
                transaction.set_schema(Arc::clone(&table_schema));
            }
            report.run_id = transaction.run_id().to_owned();
            let key = highwater_core::key::KeyHasher::new(&spec.key, &highwater_core::key::KeyOptions::default())?;
            Some(ChangeWriter::new(
                loader.output,
                transaction,
                &new_schema,
                &key_schema,
                &key,
                &loader.sink,
                loader.changed_columns,
                loader.memory_budget_rows,
            )?)
        }
        None => None,
    };
    // A baseline records the first snapshot's index and emits nothing.
    let emit = !(loader.baseline && matches!(older, Older::Nothing));
    let clock = Instant::now();
    let context = DiffContext {
        loader,
        listing: &listing,
        hasher: &hasher,
        spec: &spec,
        key_schema: &key_schema,
        new_schema: &new_schema,
        tolerance: &tolerance,
        keep_index,
        spill_target: transaction.as_ref().map(Transaction::file_target),
    };
    let diffed =
        context.diff(&older, old_scan, new_scan, writer.as_mut().filter(|_| emit), &mut details, &mut report).await;
    // The previous index (as large as the new one) is not needed past the diff.
    drop(older);
    let new_entries = match diffed {
        Ok(entries) => entries,
        Err(error) => {
            if let Some(transaction) = transaction {
                transaction.abort().await?;
            }
            return Err(error);
        }
    };
    if !emit {
        details.unchanged = details.inserted;
        details.inserted = 0;
    }
    report.rows.inserted = details.inserted;
    report.rows.updated = details.updated;
    report.rows.deleted = details.deleted;
    report.rows.written = details.inserted + details.updated + details.deleted;
    report.phase("diff", clock.elapsed());
    let watermark_after = listing
        .files
        .iter()
        .map(|f| f.last_modified)
        .max()
        .map(|t| WatermarkValue::timestamp(t.timestamp_micros(), TimestampUnit::Microsecond));
    report.watermark_after.clone_from(&watermark_after);

    let (Some(mut transaction), Some(writer)) = (transaction, writer) else {
        report.details = PatternReport::Diff(details);
        return Ok(report);
    };
    let clock = Instant::now();
    let files = writer.finish(&mut transaction).await?;
    report.files.written = files.len() as u64;
    report.bytes.written = files.iter().map(|f| f.bytes).sum();
    if let Some(entries) = new_entries {
        let meta = IndexMeta {
            format: INDEX_FORMAT,
            hash_spec: HASH_SPEC_VERSION,
            families: hasher.families(&new_schema),
            spec: spec.clone(),
            rows: details.rows_after,
            bucket_bits: entries.bits,
        };
        // Sorting and encoding millions of entries: off the runtime's threads.
        let index_spec = spec.clone();
        let encode = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            Ok(entries.finish(meta, &index_spec)?.into_bytes()?)
        });
        let bytes = match blocking_outcome(encode.await, "encoding the snapshot index") {
            Ok(bytes) => bytes,
            Err(error) => {
                transaction.abort().await?;
                return Err(match error {
                    Error::Core(highwater_core::Error::DuplicateKey { key, fingerprint, .. }) => {
                        duplicate(&listing, &spec, fingerprint, key, "new").await
                    }
                    other => other,
                });
            }
        };
        transaction.put_state(INDEX_STATE, Bytes::from(bytes)).await?;
    } else {
        transaction.remove_state(INDEX_STATE);
    }
    transaction.put_state(LEDGER_STATE, ledger.to_bytes()?).await?;
    report.details = PatternReport::Diff(details.clone());
    let committed = transaction.commit(watermark_after, Some(report.clone())).await?;
    report.commit_version = Some(committed.version);
    report.phase("commit", clock.elapsed());
    report.details = PatternReport::Diff(details);
    Ok(report)
}

/// What the diff of one run shares.
struct DiffContext<'a> {
    loader: &'a DiffLoader,
    listing: &'a Listing,
    hasher: &'a SnapshotHasher,
    spec: &'a DiffSpec,
    key_schema: &'a SchemaRef,
    new_schema: &'a SchemaRef,
    tolerance: &'a [(String, Tolerance)],
    keep_index: bool,
    /// Where spilled buckets go (a plan has none and keeps everything in memory).
    spill_target: Option<FileTarget>,
}

impl DiffContext<'_> {
    /// Diffs the new snapshot against the older side, writing the changes; returns the new
    /// index's entries when kept.
    async fn diff(
        &self,
        older: &Older,
        old_scan: Option<ScanPlan>,
        new_scan: ScanPlan,
        mut writer: Option<&mut ChangeWriter>,
        details: &mut DiffReport,
        report: &mut LoadReport,
    ) -> Result<Option<NewEntries>> {
        let clock = Instant::now();
        let new_bits = bucket_bits(new_scan.rows());
        let mut entries = self.keep_index.then(|| NewEntries {
            bits: new_bits,
            schema: None,
            parts: vec![Vec::new(); 1 << new_bits],
        });
        let budget = self.loader.memory_budget_rows as u64;
        let over_budget = old_scan.as_ref().is_some_and(|s| s.rows() > budget);
        let mut old_scan = old_scan;
        if let (Older::Snapshot { listing: old_listing }, true, Some(target)) = (older, over_budget, &self.spill_target)
        {
            if let Some(old_scan) = old_scan.take() {
                add_scan_metrics(report, &old_scan.metrics());
                add_scan_metrics(report, &new_scan.metrics());
                let bucketed = crate::bucketed::Bucketed {
                    hasher: self.hasher,
                    key: &self.spec.key,
                    new_schema: self.new_schema,
                    key_schema: self.key_schema,
                    tolerance: self.tolerance,
                    changed_columns: self.loader.changed_columns,
                    budget: self.loader.memory_budget_rows,
                };
                let spill = (Spill::new(target.clone(), "diff-older"), Spill::new(target.clone(), "diff-new"));
                let counts = bucketed
                    .run(old_scan, new_scan, old_listing, self.listing, spill, writer, entries.as_mut())
                    .await?;
                details.rows_before = counts.rows_before;
                details.rows_after = counts.rows_after;
                details.inserted = counts.inserted;
                details.updated = counts.updated;
                details.deleted = counts.deleted;
                details.unchanged = counts.unchanged;
                details.buckets = counts.buckets;
                report.rows.read = counts.rows_before + counts.rows_after;
                report.phase("diff", clock.elapsed());
                return Ok(entries);
            }
        }
        let old = match (older, old_scan) {
            (Older::Snapshot { listing }, Some(scan)) => {
                add_scan_metrics(report, &scan.metrics());
                read_old(scan, listing, self.hasher, self.tolerance, self.key_schema, self.spec).await?
            }
            (Older::Index(index), _) => OldSide::from_index(index, Arc::clone(self.key_schema))?,
            _ => OldSide::empty(Arc::clone(self.key_schema)),
        };
        details.rows_before = old.rows();
        report.phase("read older", clock.elapsed());
        let clock = Instant::now();
        let old = diff_new(
            self.loader,
            new_scan,
            self.listing,
            self.hasher,
            Arc::new(old),
            self.tolerance,
            entries.as_mut(),
            writer.as_deref_mut(),
            details,
            report,
        )
        .await?;
        // Deletes: older keys never matched.
        for keys in old.unmatched_keys()? {
            details.deleted += keys.num_rows() as u64;
            if let Some(writer) = writer.as_deref_mut() {
                writer.write(ChangeKind::Delete, &keys).await?;
            }
        }
        report.phase("diff", clock.elapsed());
        Ok(entries)
    }
}

/// The columns both snapshots have (the older one's types).
fn common_schema(old: &Schema, new: &Schema) -> Schema {
    Schema::new(
        old.fields()
            .iter()
            .filter(|f| new.field_with_name(f.name()).is_ok())
            .map(|f| f.as_ref().clone())
            .collect::<Vec<Field>>(),
    )
}

fn schema_changes(older: &Older, old: Option<&Schema>, new: &Schema, spec: &DiffSpec) -> Vec<SchemaChange> {
    let change = |column: &str, change: &str, before: Option<&DataType>, after: Option<&DataType>| SchemaChange {
        column: column.to_owned(),
        change: change.to_owned(),
        before: before.map(ToString::to_string),
        after: after.map(ToString::to_string),
    };
    let mut changes = Vec::new();
    match (older, old) {
        (Older::Snapshot { .. }, Some(old)) if !old.fields().is_empty() => {
            for field in old.fields() {
                match new.field_with_name(field.name()) {
                    Err(_) => changes.push(change(field.name(), "removed", Some(field.data_type()), None)),
                    Ok(now)
                        if highwater_core::hash::family_of(now.data_type())
                            != highwater_core::hash::family_of(field.data_type()) =>
                    {
                        changes.push(change(
                            field.name(),
                            "type_changed",
                            Some(field.data_type()),
                            Some(now.data_type()),
                        ));
                    }
                    Ok(_) => {}
                }
            }
            for field in new.fields() {
                if old.field_with_name(field.name()).is_err() {
                    changes.push(change(field.name(), "added", None, Some(field.data_type())));
                }
            }
        }
        (Older::Index(_), _) => {
            for column in &spec.columns {
                if new.field_with_name(column).is_err() {
                    changes.push(change(column, "removed", None, None));
                }
            }
            for field in new.fields() {
                if !spec.columns.contains(field.name()) && !spec.key.contains(field.name()) {
                    changes.push(change(field.name(), "added", None, Some(field.data_type())));
                }
            }
        }
        _ => {}
    }
    changes
}

fn key_schema(key: &[String], new: &Schema, old: Option<&Schema>) -> Result<SchemaRef> {
    let fields =
        key.iter()
            .map(|k| {
                new.field_with_name(k).or_else(|e| old.map_or(Err(e), |o| o.field_with_name(k))).cloned().map_err(
                    |_| highwater_core::Error::column_not_found(k, new.fields().iter().map(|f| f.name())).into(),
                )
            })
            .collect::<Result<Vec<Field>>>();
    match fields {
        Ok(fields) => Ok(Arc::new(Schema::new(fields))),
        Err(error) if new.fields().is_empty() && old.is_none_or(|o| o.fields().is_empty()) => {
            // Both sides empty: no key types to know.
            let _ = error;
            Ok(Arc::new(Schema::empty()))
        }
        Err(error) => Err(error),
    }
}

/// Scan batches mapped by `work` on blocking threads, two at a time, in order.
fn on_threads<T: Send + 'static>(
    scan: ScanPlan,
    work: Arc<dyn Fn(ScanBatch) -> Result<T> + Send + Sync>,
) -> impl Stream<Item = Result<T>> {
    scan.stream()
        .map(move |batch| {
            let work = Arc::clone(&work);
            async move {
                let batch = batch?;
                blocking_outcome(tokio::task::spawn_blocking(move || work(batch)).await, "a hashing task")
            }
        })
        .buffered(HASHING_IN_FLIGHT)
}

/// A blocking task's result: its panic resumed here, a cancellation an error naming `what`.
fn blocking_outcome<T>(joined: std::result::Result<Result<T>, tokio::task::JoinError>, what: &str) -> Result<T> {
    match joined {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(Error::Config(format!("{what} was cancelled: {error}"))),
    }
}

/// Reads the older snapshot into memory: entries by bucket, sorted, duplicates refused.
async fn read_old(
    scan: ScanPlan,
    listing: &Listing,
    hasher: &SnapshotHasher,
    tolerance: &[(String, Tolerance)],
    key_schema: &SchemaRef,
    spec: &DiffSpec,
) -> Result<OldSide> {
    let width = if spec.column_hashes { spec.columns.len() } else { 0 };
    let rows = usize::try_from(scan.rows()).unwrap_or(0);
    let mut builder = OldBuilder::new(Arc::clone(key_schema), width, rows);
    let hasher = hasher.clone();
    let tolerant: Vec<String> = tolerance.iter().map(|(c, _)| c.clone()).collect();
    let keep_column_hashes = width > 0;
    // Hashing on the blocking threads; the table is filled here meanwhile.
    let work = Arc::new(move |scanned: ScanBatch| -> Result<OldRows> {
        let (fingerprints, hashes, column_hashes) = with_hashed(|hashed| {
            hasher.hash_into(&scanned.batch, hashed)?;
            let rows = &hashed.rows;
            let column_hashes = keep_column_hashes.then(|| {
                (0..rows.len())
                    .flat_map(|r| (0..rows.num_columns()).map(move |c| (r, c)))
                    .map(|(r, c)| rows.value_hash(r, c))
                    .collect()
            });
            Ok((std::mem::take(&mut hashed.fingerprints), rows.rows().to_vec(), column_hashes))
        })?;
        let values = tolerant.iter().filter_map(|c| scanned.batch.column_by_name(c).cloned()).collect();
        Ok(OldRows { fingerprints, hashes, batch: scanned.batch, column_hashes, tolerant: values })
    });
    let mut batches = Box::pin(on_threads(scan, work));
    while let Some(rows) = batches.next().await {
        let rows = rows?;
        let keys = builder.key_batch(&rows.batch)?;
        builder.push_rows(&rows.fingerprints, &rows.hashes, keys, rows.column_hashes.as_deref(), rows.tolerant);
    }
    match builder.finish(&spec.key)? {
        Ok(side) => Ok(side),
        Err((fingerprint, key)) => Err(duplicate(listing, spec, fingerprint, key, "older").await),
    }
}

thread_local! {
    /// A hashing thread's buffers, reused batch after batch.
    static HASHED: std::cell::RefCell<Hashed> =
        std::cell::RefCell::new(Hashed { fingerprints: Vec::new(), rows: highwater_core::hash::RowHashes::default() });
}

fn with_hashed<T>(work: impl FnOnce(&mut Hashed) -> Result<T>) -> Result<T> {
    HASHED.with(|cell| work(&mut cell.borrow_mut()))
}

/// One hashed batch of the older snapshot.
struct OldRows {
    fingerprints: Vec<KeyFingerprint>,
    hashes: Vec<u128>,
    batch: RecordBatch,
    column_hashes: Option<Vec<u64>>,
    tolerant: Vec<ArrayRef>,
}

/// The files of `listing` holding the key `fingerprint`, for a duplicate-key error.
async fn duplicate(
    listing: &Listing,
    spec: &DiffSpec,
    fingerprint: KeyFingerprint,
    key: String,
    side: &'static str,
) -> Error {
    let mut files = Vec::new();
    let hasher = highwater_core::key::KeyHasher::new(
        &spec.key,
        &highwater_core::key::KeyOptions { allow_null_keys: true, hash: spec.hash.clone() },
    );
    if let (Ok(hasher), Ok(scan)) = (
        hasher,
        Scan::plan(
            listing,
            &listing.files,
            ScanOptions {
                projection: Some(spec.key.clone()),
                schema: SchemaPolicy { expected: None, allow_added_nullable: true },
                ..ScanOptions::default()
            },
        )
        .await,
    ) {
        let mut stream = scan.stream();
        while let Some(Ok(scanned)) = stream.next().await {
            let found = hasher.fingerprints(&scanned.batch).is_ok_and(|f| f.contains(&fingerprint));
            if found && files.last() != Some(&scanned.file.key) {
                files.push(scanned.file.key.clone());
            }
        }
    }
    Error::DuplicateKey { key, side, files: if files.is_empty() { "?".into() } else { files.join(", ") } }
}

/// The new snapshot's index entries, by bucket, as they arrive.
pub(crate) struct NewEntries {
    pub(crate) bits: u32,
    schema: Option<SchemaRef>,
    parts: Vec<Vec<RecordBatch>>,
}

impl NewEntries {
    pub(crate) fn push(&mut self, entries: &RecordBatch) -> Result<()> {
        self.schema.get_or_insert_with(|| entries.schema());
        for (bucket, rows) in split_entries(entries, self.bits)? {
            self.parts[bucket].push(rows);
        }
        Ok(())
    }

    fn finish(self, meta: IndexMeta, spec: &DiffSpec) -> Result<SnapshotIndex> {
        let schema = self.schema.unwrap_or_else(|| {
            SnapshotHasher::new(spec).map_or_else(|_| Arc::new(Schema::empty()), |h| h.fixed_entry_schema())
        });
        let buckets = sort_buckets(&schema, self.parts, &spec.key)?;
        Ok(SnapshotIndex { meta, schema, buckets })
    }
}

/// Sorts each bucket's entries, the buckets spread over the machine's cores; a bucket's parts are
/// freed as soon as it is sorted, so the entries are not held twice.
fn sort_buckets(schema: &SchemaRef, parts: Vec<Vec<RecordBatch>>, key: &[String]) -> Result<Vec<RecordBatch>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, parts.len().max(1));
    let parts: Vec<Mutex<Vec<RecordBatch>>> = parts.into_iter().map(Mutex::new).collect();
    let next = AtomicUsize::new(0);
    let sort = || {
        let mut sorted = Vec::new();
        loop {
            let bucket = next.fetch_add(1, Ordering::Relaxed);
            let Some(entries) = parts.get(bucket) else { return sorted };
            let entries = std::mem::take(&mut *entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            sorted.push((bucket, sort_entries(schema, &entries, key, "the new snapshot")));
        }
    };
    let mut buckets: Vec<Option<RecordBatch>> = vec![None; parts.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(sort)).collect();
        for worker in workers {
            let sorted = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (bucket, entries) in sorted {
                buckets[bucket] = Some(entries?);
            }
        }
        Ok::<_, crate::Error>(())
    })?;
    Ok(buckets.into_iter().map(|bucket| bucket.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)))).collect())
}

/// What classifying one batch of the new snapshot gives.
struct Classified {
    file: String,
    inserts: Option<RecordBatch>,
    updates: Option<RecordBatch>,
    entries: Option<RecordBatch>,
    unchanged: u64,
    rows: u64,
    duplicate: Option<(KeyFingerprint, String)>,
}

/// Streams the new snapshot against the older side: inserts and updates written as found.
#[allow(clippy::too_many_arguments, reason = "the run's shared state, passed down once")]
async fn diff_new(
    loader: &DiffLoader,
    scan: ScanPlan,
    listing: &Listing,
    hasher: &SnapshotHasher,
    old: Arc<OldSide>,
    tolerance: &[(String, Tolerance)],
    mut entries: Option<&mut NewEntries>,
    mut writer: Option<&mut ChangeWriter>,
    details: &mut DiffReport,
    report: &mut LoadReport,
) -> Result<Arc<OldSide>> {
    let keep_index = entries.is_some();
    details.buckets = entries.as_ref().map_or(1, |e| 1 << e.bits);
    let metrics = scan.metrics();
    let spec = hasher.spec().clone();
    // A new key twice: the kept index's sort finds it at the end (and costs nothing more);
    // without an index, a set of the inserted keys does as they arrive.
    let inserted = (!keep_index).then(|| Arc::new(Mutex::new(FingerprintSet::default())));
    let context = Arc::new(Classifier {
        hasher: hasher.clone(),
        old: Arc::clone(&old),
        tolerance: tolerance.to_vec(),
        inserted,
        changed_columns: loader.changed_columns,
        keep_index,
        spec: spec.clone(),
    });
    let work = Arc::new(move |scanned: ScanBatch| context.classify(&scanned));
    let mut batches = Box::pin(on_threads(scan, work));
    while let Some(classified) = batches.next().await {
        let classified = classified?;
        if let Some((fingerprint, key)) = classified.duplicate {
            drop(batches);
            return Err(duplicate(listing, &spec, fingerprint, key, "new").await);
        }
        details.rows_after += classified.rows;
        details.unchanged += classified.unchanged;
        let _ = &classified.file;
        if let Some(rows) = &classified.inserts {
            details.inserted += rows.num_rows() as u64;
            if let Some(writer) = writer.as_deref_mut() {
                writer.write(ChangeKind::Insert, rows).await?;
            }
        }
        if let Some(rows) = &classified.updates {
            details.updated += rows.num_rows() as u64;
            if let Some(writer) = writer.as_deref_mut() {
                writer.write(ChangeKind::Update, rows).await?;
            }
        }
        if let (Some(entries), Some(new)) = (entries.as_deref_mut(), &classified.entries) {
            entries.push(new)?;
        }
    }
    add_scan_metrics(report, &metrics);
    report.rows.read = details.rows_before + details.rows_after;
    Ok(old)
}

/// Classifies the rows of the new snapshot's batches (shared by the hashing threads).
struct Classifier {
    hasher: SnapshotHasher,
    old: Arc<OldSide>,
    tolerance: Vec<(String, Tolerance)>,
    /// Keys of inserts so far, when no index is kept: a key inserted twice is a duplicate.
    inserted: Option<Arc<Mutex<FingerprintSet>>>,
    changed_columns: bool,
    keep_index: bool,
    spec: DiffSpec,
}

impl Classifier {
    fn classify(&self, scanned: &ScanBatch) -> Result<Classified> {
        with_hashed(|hashed| self.classify_hashed(scanned, hashed))
    }

    fn classify_hashed(&self, scanned: &ScanBatch, hashed: &mut Hashed) -> Result<Classified> {
        let batch = &scanned.batch;
        self.hasher.hash_into(batch, hashed)?;
        let hashed = &*hashed;
        let tolerant: Vec<Option<arrow_array::Float64Array>> = self
            .tolerance
            .iter()
            .map(|(c, _)| {
                batch
                    .column_by_name(c)
                    .and_then(|a| arrow_cast::cast(a, &DataType::Float64).ok())
                    .map(|a| a.as_primitive().clone())
            })
            .collect();
        let rows = batch.num_rows();
        let mut insert = vec![false; rows];
        let mut update = vec![false; rows];
        let mut changed: Vec<Vec<String>> = Vec::new();
        let mut unchanged = 0;
        let mut new_keys = Vec::new();
        let mut found = Vec::new();
        self.old.find_many(&hashed.fingerprints, &mut found);
        for row in 0..rows {
            let fingerprint = hashed.fingerprints[row];
            let Some((key, old_hash)) = found[row] else {
                new_keys.push((row, fingerprint));
                insert[row] = true;
                continue;
            };
            if !self.old.mark(key) {
                return Ok(self.duplicate(scanned, row, fingerprint));
            }
            let mut columns: Vec<String> = Vec::new();
            let hash_differs = old_hash != hashed.rows.rows()[row];
            if hash_differs && self.changed_columns {
                if let Some(old) = self.old.column_hashes(key) {
                    columns.extend(
                        self.spec
                            .columns
                            .iter()
                            .enumerate()
                            .filter(|(c, _)| old[*c] != hashed.rows.value_hash(row, *c))
                            .map(|(_, n)| n.clone()),
                    );
                }
            }
            let mut tolerant_differs = false;
            for (index, (name, tolerance)) in self.tolerance.iter().enumerate() {
                let new = tolerant[index].as_ref().and_then(|a| (!a.is_null(row)).then(|| a.value(row)));
                if !within(self.old.tolerant(key, index), new, tolerance) {
                    tolerant_differs = true;
                    columns.push(name.clone());
                }
            }
            if hash_differs || tolerant_differs {
                update[row] = true;
                if self.changed_columns {
                    changed.push(columns);
                }
            } else {
                unchanged += 1;
            }
        }
        if let (false, Some(inserted)) = (new_keys.is_empty(), &self.inserted) {
            let mut inserted = inserted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (row, fingerprint) in new_keys {
                if !inserted.insert(fingerprint) {
                    return Ok(self.duplicate(scanned, row, fingerprint));
                }
            }
        }
        let pick = |mask: Vec<bool>| -> Result<Option<RecordBatch>> {
            let mask = BooleanArray::from(mask);
            if mask.true_count() == 0 {
                return Ok(None);
            }
            Ok(Some(arrow_select::filter::filter_record_batch(batch, &mask)?))
        };
        let mut updates = pick(update)?;
        if self.changed_columns {
            if let Some(rows) = updates.take() {
                updates = Some(with_changed_columns(&rows, &changed)?);
            }
        }
        let entries = if self.keep_index { Some(self.hasher.entries_of(batch, hashed)?) } else { None };
        Ok(Classified {
            file: scanned.file.key.clone(),
            inserts: pick(insert)?,
            updates,
            entries,
            unchanged,
            rows: rows as u64,
            duplicate: None,
        })
    }

    fn duplicate(&self, scanned: &ScanBatch, row: usize, fingerprint: KeyFingerprint) -> Classified {
        Classified {
            file: scanned.file.key.clone(),
            inserts: None,
            updates: None,
            entries: None,
            unchanged: 0,
            rows: 0,
            duplicate: Some((fingerprint, describe_row(&scanned.batch, row, &self.spec.key))),
        }
    }
}

pub(crate) use highwater_core::diff::with_changed_columns;

/// Whether two floats are equal within `tolerance` (null equals only null; NaN equals NaN).
pub(crate) fn within(old: Option<f64>, new: Option<f64>, tolerance: &Tolerance) -> bool {
    tolerance.accepts(old, new)
}
