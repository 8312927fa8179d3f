//! Planning and streaming a scan of source files.
//!
//! ```text
//! plan:   footers of all files, concurrently ─► schema check ─► prune files and row groups
//!         (min/max statistics of the range column; Hive partition values)
//! stream: up to `concurrency` files decode at once on the runtime's workers, each into a
//!         bounded channel; batches come out in listing order, row groups in file order
//! ```
//!
//! # Guarantees
//! - Only the projected columns are decoded; pruned row groups are never fetched.
//! - A file that conflicts with the expected schema (a missing or mistyped column) is an error
//!   naming the file and the column. A corrupt file — including one whose decoding panics inside
//!   the Parquet decoder — is an error naming the file, never a crash.
//! - Memory is bounded: at most `concurrency` files in flight, each a few batches ahead.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::{Array, ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use highwater_core::watermark::{StartBound, WatermarkValue};
use highwater_core::zone::Zone;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};

use super::partition::{constant_column, inferred_type, parse_partition_value};
use super::{Listing, ObjectReader, SourceFile};
use crate::error::{Error, Result};

/// A range of one column: row groups (and partitions) entirely outside it are skipped.
#[derive(Clone, Debug)]
pub struct ColumnRange {
    /// The column (a cursor, a sequence id).
    pub column: String,
    /// The lower end.
    pub start: StartBound,
    /// The inclusive upper end, if any.
    pub end: Option<WatermarkValue>,
    /// The zone of naive timestamps in the column.
    pub naive_zone: Option<Zone>,
    /// Keep row groups that hold nulls in the column (the pattern decides what nulls mean).
    pub keep_nulls: bool,
}

/// What files must look like.
#[derive(Clone, Debug, Default)]
pub struct SchemaPolicy {
    /// The schema files must have (e.g. the first run's); `None`: the first file's.
    pub expected: Option<SchemaRef>,
    /// Accept files lacking a nullable column (read as nulls), and files with nullable columns
    /// the expected schema lacks (added to the scan's schema): a source that grew a column.
    pub allow_added_nullable: bool,
}

/// How to scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Columns to decode (`None`: all).
    pub projection: Option<Vec<String>>,
    /// Prune by this range.
    pub range: Option<ColumnRange>,
    /// Rows per batch (default 8192).
    pub batch_size: usize,
    /// Files decoding at once (default: the number of cores).
    pub concurrency: usize,
    /// The schema check.
    pub schema: SchemaPolicy,
    /// Add Hive partition values as columns (default `true`).
    pub partition_columns: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            projection: None,
            range: None,
            batch_size: 8192,
            concurrency: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            schema: SchemaPolicy::default(),
            partition_columns: true,
        }
    }
}

/// Counters of a scan, updated as it runs.
#[derive(Debug, Default)]
pub struct ScanMetrics {
    /// Files with at least one row group to decode.
    pub files_scanned: AtomicU64,
    /// Files skipped entirely (partition values or statistics).
    pub files_pruned: AtomicU64,
    /// Row groups decoded.
    pub row_groups_scanned: AtomicU64,
    /// Row groups skipped by statistics.
    pub row_groups_pruned: AtomicU64,
    /// Bytes fetched (footers and data).
    pub bytes_read: Arc<AtomicU64>,
    /// Rows decoded.
    pub rows_read: AtomicU64,
    /// The source's progress counters, when a caller watches them.
    pub(crate) progress: Option<Arc<super::Progress>>,
}

/// A file to decode and the row groups to decode from it.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// The file.
    pub file: Arc<SourceFile>,
    /// Its metadata.
    pub metadata: ArrowReaderMetadata,
    /// Row groups to decode, ascending.
    pub row_groups: Vec<usize>,
    /// The first row of every row group of the file, within the file.
    pub row_group_offsets: Vec<u64>,
}

impl PlannedFile {
    /// Rows in the row groups to decode.
    pub fn rows(&self) -> u64 {
        let groups = self.metadata.metadata().row_groups();
        self.row_groups.iter().map(|&g| groups[g].num_rows() as u64).sum()
    }
}

/// A batch and where it came from.
#[derive(Clone, Debug)]
pub struct ScanBatch {
    /// The rows, under the scan's schema.
    pub batch: RecordBatch,
    /// The file.
    pub file: Arc<SourceFile>,
    /// The row group.
    pub row_group: usize,
    /// The index within the file of the batch's first row.
    pub first_row: u64,
}

/// A planned scan.
#[derive(Debug)]
pub struct ScanPlan {
    /// The schema of the batches.
    pub schema: SchemaRef,
    /// The files to decode, in listing order.
    pub files: Vec<PlannedFile>,
    stores: Vec<Arc<dyn object_store::ObjectStore>>,
    options: ScanOptions,
    metrics: Arc<ScanMetrics>,
}

/// Entry point of scans.
pub struct Scan;

/// Row groups decoded by one task.
const ROW_GROUPS_PER_TASK: usize = 2;

fn corrupt_file(file: &SourceFile, detail: impl std::fmt::Display) -> Error {
    Error::CorruptFile { file: file.key.clone(), detail: detail.to_string() }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

impl Scan {
    /// Reads the footers of `files` (of `listing`), checks schemas and prunes.
    pub async fn plan(listing: &Listing, files: &[Arc<SourceFile>], options: ScanOptions) -> Result<ScanPlan> {
        let metrics = ScanMetrics { progress: listing.progress.clone(), ..ScanMetrics::default() };
        let footers: Vec<(usize, ArrowReaderMetadata)> =
            futures::stream::iter(files.iter().enumerate().map(|(index, file)| {
                let store = listing.store(file);
                let bytes_read = Arc::clone(&metrics.bytes_read);
                async move {
                    if file.size == 0 {
                        return Err(corrupt_file(file, "the file is empty (0 bytes): not a Parquet file"));
                    }
                    let mut reader = ObjectReader::new(store, file.location.clone(), Some(file.size), bytes_read);
                    let load = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new());
                    match AssertUnwindSafe(load).catch_unwind().await {
                        Ok(Ok(metadata)) => Ok((index, metadata)),
                        Ok(Err(error)) => Err(corrupt_file(file, error)),
                        Err(panic) => {
                            Err(corrupt_file(file, format!("the Parquet decoder panicked: {}", panic_message(&*panic))))
                        }
                    }
                }
            }))
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let mut metadata: Vec<Option<ArrowReaderMetadata>> = vec![None; files.len()];
        for (index, footer) in footers {
            metadata[index] = Some(footer);
        }
        let metadata: Vec<ArrowReaderMetadata> = metadata.into_iter().flatten().collect();

        let expected = expected_schema(files, &metadata, &options.schema)?;
        let schema = output_schema(&expected, files, &options)?;
        let mut planned = Vec::with_capacity(files.len());
        for (file, metadata) in files.iter().zip(metadata) {
            check_schema(file, metadata.schema(), &expected, &options)?;
            let groups = metadata.metadata().row_groups();
            let mut offsets = Vec::with_capacity(groups.len());
            let mut offset = 0u64;
            for group in groups {
                offsets.push(offset);
                offset += group.num_rows() as u64;
            }
            let kept = if partition_outside(file, options.range.as_ref(), &expected) {
                Vec::new()
            } else {
                row_groups_in_range(file, &metadata, options.range.as_ref())?
            };
            let pruned = (groups.len() - kept.len()) as u64;
            metrics.row_groups_pruned.fetch_add(pruned, Ordering::Relaxed);
            tracing::debug!(file = %file.key, row_groups = groups.len(), kept = kept.len(), "planned a file");
            if kept.is_empty() {
                metrics.files_pruned.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            metrics.files_scanned.fetch_add(1, Ordering::Relaxed);
            metrics.row_groups_scanned.fetch_add(kept.len() as u64, Ordering::Relaxed);
            planned.push(PlannedFile {
                file: Arc::clone(file),
                metadata,
                row_groups: kept,
                row_group_offsets: offsets,
            });
        }
        let rows: u64 = planned.iter().map(PlannedFile::rows).sum();
        tracing::info!(
            files = files.len(),
            scanned = planned.len(),
            row_groups_pruned = metrics.row_groups_pruned.load(Ordering::Relaxed),
            rows,
            "planned the scan"
        );
        if let Some(progress) = &metrics.progress {
            progress.planned(planned.len() as u64, rows);
        }
        let stores = listing.roots.iter().map(|r| Arc::clone(&r.store)).collect();
        Ok(ScanPlan { schema, files: planned, stores, options, metrics: Arc::new(metrics) })
    }
}

impl ScanPlan {
    /// The scan's counters (they keep counting while the stream runs).
    pub fn metrics(&self) -> Arc<ScanMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Rows in the row groups the scan will decode.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(PlannedFile::rows).sum()
    }

    /// Streams the batches: files (and runs of row groups within a file) decode concurrently,
    /// batches come in listing order.
    pub fn stream(self) -> BoxStream<'static, Result<ScanBatch>> {
        let ScanPlan { schema, files, stores, options, metrics } = self;
        // Twice the cores: a unit buffers a few batches and may finish before it is consumed.
        let lookahead = options.concurrency.max(1) * 2;
        let options = Arc::new(options);
        // A unit of work is a few row groups, so one big file still decodes on every core.
        let units = files.into_iter().flat_map(|planned| {
            planned
                .row_groups
                .chunks(ROW_GROUPS_PER_TASK)
                .map(|groups| PlannedFile { row_groups: groups.to_vec(), ..planned.clone() })
                .collect::<Vec<_>>()
        });
        // Units are spawned ahead of the one being consumed, so `lookahead` decode at once.
        let spawn = move |planned: PlannedFile| {
            let store = Arc::clone(&stores[planned.file.root]);
            decode_file(planned, store, Arc::clone(&schema), Arc::clone(&options), Arc::clone(&metrics))
        };
        let state = (units.collect::<Vec<_>>().into_iter(), std::collections::VecDeque::new(), spawn);
        futures::stream::unfold(state, move |(mut units, mut pending, spawn)| async move {
            loop {
                while pending.len() < lookahead {
                    match units.next() {
                        Some(unit) => pending.push_back(spawn(unit)),
                        None => break,
                    }
                }
                let front: &mut BoxStream<'static, Result<ScanBatch>> = pending.front_mut()?;
                match front.next().await {
                    Some(item) => return Some((item, (units, pending, spawn))),
                    None => {
                        pending.pop_front();
                    }
                }
            }
        })
        .boxed()
    }
}

/// Spawns the decoding of one file; its batches arrive through a bounded channel.
fn decode_file(
    planned: PlannedFile,
    store: Arc<dyn object_store::ObjectStore>,
    schema: SchemaRef,
    options: Arc<ScanOptions>,
    metrics: Arc<ScanMetrics>,
) -> BoxStream<'static, Result<ScanBatch>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<ScanBatch>>(4);
    let file = Arc::clone(&planned.file);
    let task = tokio::spawn(async move {
        let result =
            AssertUnwindSafe(produce(planned, store, schema, &options, &metrics, &sender)).catch_unwind().await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(panic) => Error::CorruptFile {
                file: String::new(),
                detail: format!("the Parquet decoder panicked: {}", panic_message(&*panic)),
            },
        };
        let _ = sender.send(Err(error)).await;
    });
    futures::stream::unfold((receiver, Some(task), file), |(mut receiver, task, file)| async move {
        match receiver.recv().await {
            Some(Err(Error::CorruptFile { file: name, detail })) if name.is_empty() => {
                Some((Err(Error::CorruptFile { file: file.key.clone(), detail }), (receiver, None, file)))
            }
            Some(item) => Some((item, (receiver, task, file))),
            None => {
                // A task that died without reporting (a panic the catch could not see).
                let task = task?;
                match task.await {
                    Err(join) if join.is_panic() => {
                        Some((Err(corrupt_file(&file, "decoding panicked")), (receiver, None, file)))
                    }
                    _ => None,
                }
            }
        }
    })
    .boxed()
}

async fn produce(
    planned: PlannedFile,
    store: Arc<dyn object_store::ObjectStore>,
    schema: SchemaRef,
    options: &ScanOptions,
    metrics: &ScanMetrics,
    sender: &tokio::sync::mpsc::Sender<Result<ScanBatch>>,
) -> Result<()> {
    let file = Arc::clone(&planned.file);
    let reader = ObjectReader::new(store, file.location.clone(), Some(file.size), Arc::clone(&metrics.bytes_read));
    let file_schema = Arc::clone(planned.metadata.schema());
    let wanted: Vec<usize> = file_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| schema.field_with_name(field.name()).is_ok())
        .map(|(index, _)| index)
        .collect();
    let mask = ProjectionMask::roots(planned.metadata.metadata().file_metadata().schema_descr(), wanted);
    let row_counts: Vec<u64> =
        planned.row_groups.iter().map(|&g| planned.metadata.metadata().row_groups()[g].num_rows() as u64).collect();
    let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, planned.metadata.clone())
        .with_row_groups(planned.row_groups.clone())
        .with_projection(mask)
        .with_batch_size(options.batch_size)
        .build()
        .map_err(|e| corrupt_file(&file, e))?;
    let (mut group, mut within) = (0usize, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| corrupt_file(&file, e))?;
        while group < row_counts.len() && within >= row_counts[group] {
            group += 1;
            within = 0;
        }
        let row_group = planned.row_groups.get(group).copied().unwrap_or_default();
        let first_row = planned.row_group_offsets[row_group] + within;
        within += batch.num_rows() as u64;
        metrics.rows_read.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        if let Some(progress) = &metrics.progress {
            progress.read(batch.num_rows() as u64);
        }
        let batch = conform(&batch, &schema, &file, first_row)?;
        if sender.send(Ok(ScanBatch { batch, file: Arc::clone(&file), row_group, first_row })).await.is_err() {
            // The consumer stopped listening.
            return Ok(());
        }
    }
    Ok(())
}

/// A decoded batch under the scan's schema: columns by name (string and binary layouts cast),
/// partition values as constants, missing nullable columns as nulls. A null where the schema
/// declares none is a schema mismatch naming the column and the file's row (`first_row`: the
/// batch's first row in the file).
fn conform(batch: &RecordBatch, schema: &SchemaRef, file: &SourceFile, first_row: u64) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            if let Some(column) = batch.column_by_name(field.name()) {
                if column.data_type() == field.data_type() {
                    return Ok(Arc::clone(column));
                }
                return arrow_cast::cast(column, field.data_type()).map_err(|e| corrupt_file(file, e));
            }
            if let Some(value) = file.partitions.get(field.name()) {
                return constant_column(value.as_deref(), field.data_type(), rows).map_err(|e| corrupt_file(file, e));
            }
            Ok(new_null_array(field.data_type(), rows))
        })
        .collect::<Result<Vec<_>>>()?;
    for (field, column) in schema.fields().iter().zip(&columns) {
        if !field.is_nullable() && column.null_count() > 0 {
            let row = (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0) as u64;
            return Err(Error::SchemaMismatch {
                file: file.key.clone(),
                column: field.name().clone(),
                detail: format!(
                    "a null at row {} of a column the first file declares non-nullable (write the files \
                     with a nullable column, or keep nulls out)",
                    first_row + row
                ),
            });
        }
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options).map_err(|e| corrupt_file(file, e))
}

/// The schema files must match: the policy's, else the first file's, plus (when allowed)
/// nullable columns that later files added.
fn expected_schema(
    files: &[Arc<SourceFile>],
    metadata: &[ArrowReaderMetadata],
    policy: &SchemaPolicy,
) -> Result<SchemaRef> {
    if let Some(expected) = &policy.expected {
        return Ok(Arc::clone(expected));
    }
    let Some(first) = metadata.first() else { return Ok(Arc::new(Schema::empty())) };
    let mut fields: Vec<Field> = first.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    // A column nullable in any file is nullable in the scan (writers often mark a column
    // non-nullable when a file happens to hold no null).
    for metadata in metadata.iter().skip(1) {
        for field in &mut fields {
            if let Ok(other) = metadata.schema().field_with_name(field.name()) {
                if other.is_nullable() && !field.is_nullable() {
                    *field = field.clone().with_nullable(true);
                }
            }
        }
    }
    if policy.allow_added_nullable {
        for (file, metadata) in files.iter().zip(metadata).skip(1) {
            for field in metadata.schema().fields() {
                if !fields.iter().any(|f| f.name() == field.name()) {
                    if !field.is_nullable() {
                        return Err(Error::SchemaMismatch {
                            file: file.key.clone(),
                            column: field.name().clone(),
                            detail: format!("it adds the non-nullable column ({}) older files lack", field.data_type()),
                        });
                    }
                    fields.push(field.as_ref().clone());
                }
            }
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Whether two types hold the same values in another layout (cast on read).
fn same_values(a: &DataType, b: &DataType) -> bool {
    use DataType as D;
    let family = |t: &DataType| match t {
        D::Utf8 | D::LargeUtf8 | D::Utf8View => Some(1),
        D::Binary | D::LargeBinary | D::BinaryView => Some(2),
        D::Dictionary(_, value) => match value.as_ref() {
            D::Utf8 | D::LargeUtf8 | D::Utf8View => Some(1),
            D::Binary | D::LargeBinary | D::BinaryView => Some(2),
            _ => None,
        },
        _ => None,
    };
    // The same instants in another display zone.
    let same_instants =
        matches!((a, b), (D::Timestamp(unit_a, Some(_)), D::Timestamp(unit_b, Some(_))) if unit_a == unit_b);
    a == b || same_instants || family(a).is_some_and(|f| family(b) == Some(f))
}

fn check_schema(file: &SourceFile, actual: &Schema, expected: &Schema, options: &ScanOptions) -> Result<()> {
    let needed: Vec<&Field> = expected
        .fields()
        .iter()
        .map(AsRef::as_ref)
        .filter(|f| options.projection.as_ref().is_none_or(|p| p.iter().any(|c| c == f.name())))
        .collect();
    for field in needed {
        match actual.field_with_name(field.name()) {
            Ok(found) if same_values(found.data_type(), field.data_type()) => {}
            Ok(found) => {
                return Err(Error::SchemaMismatch {
                    file: file.key.clone(),
                    column: field.name().clone(),
                    detail: format!("it is {} here, {} elsewhere", found.data_type(), field.data_type()),
                });
            }
            Err(_) if file.partitions.contains_key(field.name()) => {}
            Err(_) if field.is_nullable() && options.schema.allow_added_nullable => {}
            Err(_) => {
                return Err(Error::SchemaMismatch {
                    file: file.key.clone(),
                    column: field.name().clone(),
                    detail: format!(
                        "the column ({}) is missing{}",
                        field.data_type(),
                        if field.is_nullable() { " (allow added nullable columns to read it as nulls)" } else { "" }
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The schema of the scan's batches: the projection, then partition columns not in the files.
fn output_schema(expected: &SchemaRef, files: &[Arc<SourceFile>], options: &ScanOptions) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = match &options.projection {
        Some(projection) => projection.iter().filter_map(|name| expected.field_with_name(name).ok().cloned()).collect(),
        None => expected.fields().iter().map(|f| f.as_ref().clone()).collect(),
    };
    if options.partition_columns {
        let mut partitions: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
        for file in files {
            for (key, value) in &file.partitions {
                partitions.entry(key.as_str()).or_default().push(value.as_deref());
            }
        }
        for (name, values) in partitions {
            let wanted = options.projection.as_ref().is_none_or(|p| p.iter().any(|c| c == name));
            if wanted && !fields.iter().any(|f| f.name() == name) {
                fields.push(Field::new(name, inferred_type(&values), true));
            }
        }
    }
    if let Some(projection) = &options.projection {
        if let Some(missing) = projection.iter().find(|name| !fields.iter().any(|f| f.name() == *name)) {
            return Err(Error::SchemaMismatch {
                file: files.first().map(|f| f.key.clone()).unwrap_or_default(),
                column: missing.clone(),
                detail: format!(
                    "no such column (columns: {})",
                    expected.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Whether the file's Hive partition value of the range column lies outside the range.
fn partition_outside(file: &SourceFile, range: Option<&ColumnRange>, expected: &Schema) -> bool {
    let Some(range) = range else { return false };
    let Some(value) = file.partitions.get(&range.column) else { return false };
    let Some(text) = value.as_deref() else { return !range.keep_nulls };
    let kind = match expected.field_with_name(&range.column) {
        Ok(field) => highwater_core::watermark::WatermarkKind::from_data_type(
            &range.column,
            field.data_type(),
            range.naive_zone.as_ref(),
        )
        .ok(),
        Err(_) => match parse_partition_value(Some(text)) {
            super::PartitionValue::Int(_) => Some(highwater_core::watermark::WatermarkKind::Int64),
            super::PartitionValue::Date(_) => Some(highwater_core::watermark::WatermarkKind::Date),
            _ => Some(highwater_core::watermark::WatermarkKind::Utf8),
        },
    };
    let Some(kind) = kind else { return false };
    let zone = range.naive_zone.unwrap_or(Zone::UTC);
    let Ok(value) = WatermarkValue::parse(text, &kind, &zone) else { return false };
    outside(&value, &value, range, 0)
}

/// Whether `[min, max]` lies entirely outside the range (`slack` widens it, in the values' own
/// comparison: used for naive timestamps in zones with daylight saving time).
fn outside(min: &WatermarkValue, max: &WatermarkValue, range: &ColumnRange, slack_seconds: i64) -> bool {
    let widen = |value: &WatermarkValue, by: i64| match value {
        WatermarkValue::Timestamp { value, unit, timezone } => WatermarkValue::Timestamp {
            value: value.saturating_add(by.saturating_mul((1_000_000_000 / unit.nanos()) as i64)),
            unit: *unit,
            timezone: timezone.clone(),
        },
        other => other.clone(),
    };
    let max = widen(max, slack_seconds);
    let min = widen(min, -slack_seconds);
    let below = match &range.start {
        StartBound::Unbounded => false,
        StartBound::Exclusive(start) => max <= *start,
        StartBound::Inclusive(start) => max < *start,
    };
    let above = range.end.as_ref().is_some_and(|end| min > *end);
    below || above
}

/// The row groups of a file whose statistics overlap the range (all, without a range or
/// without statistics).
fn row_groups_in_range(
    file: &SourceFile,
    metadata: &ArrowReaderMetadata,
    range: Option<&ColumnRange>,
) -> Result<Vec<usize>> {
    let groups = metadata.metadata().row_groups();
    let all: Vec<usize> = (0..groups.len()).collect();
    let Some(range) = range else { return Ok(all) };
    if metadata.schema().field_with_name(&range.column).is_err() {
        return Ok(all);
    }
    let Ok(converter) = StatisticsConverter::try_new(
        &range.column,
        metadata.schema(),
        metadata.metadata().file_metadata().schema_descr(),
    ) else {
        return Ok(all);
    };
    let (Ok(mins), Ok(maxes), Ok(nulls)) = (
        converter.row_group_mins(groups.iter()),
        converter.row_group_maxes(groups.iter()),
        converter.row_group_null_counts(groups.iter()),
    ) else {
        return Ok(all);
    };
    // Naive timestamps in a zone with daylight saving time: local order is not instant order
    // around the change, so prune only with a day of slack.
    let slack =
        match (range.naive_zone, metadata.schema().field_with_name(&range.column).map(|f| f.data_type().clone())) {
            (Some(zone), Ok(DataType::Timestamp(_, None))) if !zone.is_fixed() => 86_400,
            _ => 0,
        };
    let mut kept = Vec::new();
    for (group, meta) in groups.iter().enumerate() {
        let rows = meta.num_rows() as u64;
        let null_count = if nulls.is_null(group) { None } else { Some(nulls.value(group)) };
        let has_nulls = null_count.is_none_or(|n| n > 0);
        if range.keep_nulls && has_nulls {
            kept.push(group);
            continue;
        }
        if null_count == Some(rows) {
            continue; // Only nulls, and the pattern does not want them.
        }
        let bounds = (
            WatermarkValue::from_array(mins.as_ref(), group, range.naive_zone.as_ref()),
            WatermarkValue::from_array(maxes.as_ref(), group, range.naive_zone.as_ref()),
        );
        match bounds {
            (Ok(Some(min)), Ok(Some(max))) if outside(&min, &max, range, slack) => {}
            (Err(error), _) | (_, Err(error)) => {
                return Err(corrupt_file(file, format!("statistics of `{}`: {error}", range.column)));
            }
            _ => kept.push(group),
        }
    }
    Ok(kept)
}
