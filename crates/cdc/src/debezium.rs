//! Debezium change events as a CDC source: JSON lines (Kafka Connect's JSON converter, with or
//! without the `schema`/`payload` wrapper) and Parquet files of envelope columns (`before`,
//! `after`, `source`, `op`: what a Parquet sink of the topic writes), decoded into the flat
//! events the rest of the run reads.
//!
//! ```text
//! file.json / .jsonl / .ndjson ─► highwater_core::debezium::decode_envelopes ─┐
//! file.parquet (envelope columns) ─► flatten: after (before for deletes), ────┴─► flat events:
//!     op codes, source position as sequence columns                              row columns,
//!                                                                                `_op`, sequence
//! ```
//!
//! Every file is decoded once to learn the run's schema (files may differ: a column that only
//! later files carry, a column null so far) and kept while the decoded rows fit the memory
//! budget; past it, a file is decoded again when its events are read.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StructArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use futures::stream::BoxStream;
use highwater_core::debezium::{DebeziumEvents, DebeziumOptions, OP_COLUMN, SequenceSource, decode_envelopes};
use highwater_store::source::{Listing, ScanBatch, SourceFile};
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// The new event files of a run, decoded.
pub(crate) struct Decoded {
    pub(crate) schema: SchemaRef,
    pub(crate) sequence: SequenceSource,
    /// Tombstone messages (null values) skipped.
    pub(crate) tombstones: u64,
    pub(crate) rows: u64,
    pub(crate) bytes_read: u64,
    options: DebeziumOptions,
    files: Vec<EventFile>,
}

/// A file of events, and its events while they are held.
struct EventFile {
    file: Arc<SourceFile>,
    store: Arc<dyn ObjectStore>,
    batch: Option<RecordBatch>,
}

/// Decodes `files` (once), keeping decoded batches while they hold at most `budget` rows.
/// Columns the `table` has take its types (JSON without a schema says only "integer" or
/// "string"); a value that does not convert is an error, never a null.
pub(crate) async fn decode(
    listing: &Listing,
    files: &[Arc<SourceFile>],
    options: &DebeziumOptions,
    budget: usize,
    table: Option<&Schema>,
) -> Result<Decoded> {
    let mut decoded = Decoded {
        schema: Arc::new(Schema::empty()),
        sequence: options.sequence,
        tombstones: 0,
        rows: 0,
        bytes_read: 0,
        options: options.clone(),
        files: Vec::new(),
    };
    let mut fields: Vec<Field> = Vec::new();
    for file in files {
        let store = listing.store(file);
        let events = read(&store, file, options).await?;
        decoded.bytes_read += file.size;
        if decoded.sequence == SequenceSource::Auto || decoded.files.is_empty() {
            decoded.sequence = events.sequence;
        } else if events.sequence != decoded.sequence && events.batch.num_rows() > 0 {
            return Err(Error::Config(format!(
                "{} has {:?} source positions, earlier files {:?}: choose one sequence source",
                file.key, events.sequence, decoded.sequence
            )));
        }
        decoded.options.sequence = decoded.sequence;
        decoded.tombstones += events.tombstones;
        for field in events.batch.schema().fields() {
            merge_field(&mut fields, field, &file.key)?;
        }
        let rows = events.batch.num_rows() as u64;
        let keep = decoded.rows + rows <= budget as u64;
        decoded.rows += rows;
        decoded.files.push(EventFile { file: Arc::clone(file), store, batch: keep.then_some(events.batch) });
    }
    if let Some(table) = table {
        for field in &mut fields {
            if let Ok(known) = table.field_with_name(field.name()) {
                *field = field.clone().with_data_type(known.data_type().clone());
            }
        }
        // Envelopes carry only what they carry (a truncate no row, a PostgreSQL delete only the
        // key): the table's other columns are null in them.
        for known in table.fields() {
            if !fields.iter().any(|f| f.name() == known.name()) {
                fields.push(known.as_ref().clone().with_nullable(true));
            }
        }
    }
    if decoded.sequence == SequenceSource::Auto {
        // No event at all (tombstones only): any layout reads nothing.
        decoded.sequence = SequenceSource::MySql;
    }
    // Row columns first, then the operation, then the sequence (as one file would have them).
    let meta: Vec<&str> = std::iter::once(OP_COLUMN).chain(decoded.sequence.columns().iter().copied()).collect();
    let (mut row_fields, mut meta_fields): (Vec<Field>, Vec<Field>) =
        fields.into_iter().partition(|f| !meta.contains(&f.name().as_str()));
    meta_fields.sort_by_key(|f| meta.iter().position(|m| m == f.name()));
    row_fields.extend(meta_fields);
    decoded.schema = Arc::new(Schema::new(row_fields));
    Ok(decoded)
}

impl Decoded {
    /// The events, file by file, under the run's schema.
    pub(crate) fn stream(self) -> BoxStream<'static, Result<ScanBatch>> {
        let Decoded { schema, options, files, .. } = self;
        futures::stream::iter(files)
            .then(move |EventFile { file, store, batch }| {
                let (schema, options) = (Arc::clone(&schema), options.clone());
                async move {
                    let batch = match batch {
                        Some(batch) => batch,
                        None => read(&store, &file, &options).await?.batch,
                    };
                    let batch = conform(&batch, &schema, &file.key)?;
                    Ok(ScanBatch { batch, file, row_group: 0, first_row: 0 })
                }
            })
            .boxed()
    }
}

/// One file's events.
async fn read(store: &Arc<dyn ObjectStore>, file: &SourceFile, options: &DebeziumOptions) -> Result<DebeziumEvents> {
    let failed = |source| highwater_store::Error::Store { operation: "get", path: file.location.to_string(), source };
    let bytes = object_store::ObjectStoreExt::get(&**store, &file.location)
        .await
        .map_err(failed)?
        .bytes()
        .await
        .map_err(failed)?;
    let (key, options) = (file.key.clone(), options.clone());
    // Decoding is CPU work: off the async threads.
    let decoding = tokio::task::spawn_blocking(move || {
        if key.ends_with(".parquet") {
            // A panic inside the Parquet decoder on a corrupt file is that file's error.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| from_parquet(bytes, &key, &options)))
                .unwrap_or_else(|_| Err(Error::Config(format!("{key}: the Parquet decoder panicked on this file"))))
        } else {
            Ok(decode_envelopes(&bytes, &key, &options)?)
        }
    });
    crate::run::blocking_outcome(decoding, &format!("decoding {}", file.key)).await
}

/// Adds `field` to the run's fields: a column null so far takes the type a later file shows;
/// integers and floats meet as floats; anything else must agree.
fn merge_field(fields: &mut Vec<Field>, field: &Field, file: &str) -> Result<()> {
    let Some(known) = fields.iter_mut().find(|f| f.name() == field.name()) else {
        fields.push(field.clone().with_nullable(true));
        return Ok(());
    };
    let merged = match (known.data_type(), field.data_type()) {
        (a, b) if a == b => return Ok(()),
        (DataType::Null, b) => b.clone(),
        (_, DataType::Null) => return Ok(()),
        // A schema's int32 and schemaless JSON's integer.
        (a, b) if a.is_integer() && b.is_integer() => DataType::Int64,
        (a, b) if a.is_numeric() && b.is_numeric() => DataType::Float64,
        (a, b) => {
            return Err(Error::Config(format!(
                "{file}: column `{}` is {b}, earlier event files have {a} (declare its type)",
                field.name()
            )));
        }
    };
    *known = known.clone().with_data_type(merged);
    Ok(())
}

/// A value that does not convert fails the cast (never a silent null).
const STRICT: arrow_cast::CastOptions<'static> =
    arrow_cast::CastOptions { safe: false, format_options: arrow_cast::display::FormatOptions::new() };

/// `batch` under the run's schema: missing columns null, types widened as `merge_field` chose.
fn conform(batch: &RecordBatch, schema: &SchemaRef, file: &str) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(column) => arrow_cast::cast_with_options(column, field.data_type(), &STRICT).map_err(|e| {
                Error::Config(format!(
                    "{file}: column `{}` does not convert to {}: {e}",
                    field.name(),
                    field.data_type()
                ))
            }),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?)
}

/// The envelopes of a Parquet file of envelope columns.
fn from_parquet(bytes: bytes::Bytes, file: &str, options: &DebeziumOptions) -> Result<DebeziumEvents> {
    let bad = |detail: String| Error::Config(format!("{file}: {detail}"));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::build)
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
    let mut batches = Vec::new();
    let mut sequence = options.sequence;
    let mut tombstones = 0;
    let mut first_row = 0;
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let events = flatten(&batch, file, first_row, sequence)?;
        first_row += batch.num_rows();
        sequence = events.sequence;
        tombstones += events.tombstones;
        batches.push(events.batch);
    }
    let mut fields: Vec<Field> = Vec::new();
    for batch in &batches {
        for field in batch.schema().fields() {
            merge_field(&mut fields, field, file)?;
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batches = batches.iter().map(|b| conform(b, &schema, file)).collect::<Result<Vec<_>>>()?;
    let batch = arrow_select::concat::concat_batches(&schema, &batches)?;
    Ok(DebeziumEvents { batch, sequence, tombstones })
}

/// One batch of envelope columns as flat events (`first_row`: the batch's first row in the
/// file, for errors).
fn flatten(batch: &RecordBatch, file: &str, first_row: usize, sequence: SequenceSource) -> Result<DebeziumEvents> {
    let bad = |row: usize, detail: String| Error::Config(format!("{file}, row {}: {detail}", first_row + row));
    let op = batch.column_by_name("op").ok_or_else(|| bad(0, "no `op` column: not Debezium envelopes".into()))?;
    let op = arrow_cast::cast(op, &DataType::Utf8)?;
    let op = op.as_string::<i32>();
    let structure = |name: &str| -> Result<Option<StructArray>> {
        match batch.column_by_name(name) {
            None => Ok(None),
            Some(column) => match column.data_type() {
                DataType::Struct(_) => Ok(Some(column.as_struct().clone())),
                other => Err(bad(0, format!("`{name}` is {other}, not a struct"))),
            },
        }
    };
    let (before, after) = (structure("before")?, structure("after")?);
    let source = structure("source")?.ok_or_else(|| bad(0, "no `source` column: no event positions".into()))?;
    // Tombstones (a null value) have no op: skipped.
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut ops = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if op.is_null(row) {
            keep.push(false);
            continue;
        }
        keep.push(true);
        ops.push(match op.value(row) {
            "c" | "r" => "insert",
            "u" => "update",
            "d" => "delete",
            "t" => "truncate",
            other => return Err(bad(row, format!("unknown op `{other}` (expected c, r, u, d or t)"))),
        });
    }
    let tombstones = keep.iter().filter(|k| !**k).count() as u64;
    let keep = BooleanArray::from(keep);
    let kept = |array: &ArrayRef| -> Result<ArrayRef> { Ok(arrow_select::filter::filter(array, &keep)?) };
    let deletes = BooleanArray::from(ops.iter().map(|op| *op == "delete").collect::<Vec<_>>());

    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let names: Vec<Field> = after
        .as_ref()
        .or(before.as_ref())
        .map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect())
        .unwrap_or_default();
    for field in names {
        let child = |image: &Option<StructArray>| -> Result<ArrayRef> {
            match image.as_ref().and_then(|s| s.column_by_name(field.name())) {
                // A child of a null struct may hold anything: mask it with the struct's nulls.
                Some(child) => kept(&arrow_select::nullif::nullif(child, &is_null(image.as_ref()))?),
                None => Ok(new_null_array(field.data_type(), ops.len())),
            }
        };
        let value = arrow_select::zip::zip(&deletes, &child(&before)?, &child(&after)?)?;
        fields.push(Field::new(field.name(), field.data_type().clone(), true));
        columns.push(value);
    }
    fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(ops.clone())));

    let (sequence, arrays) = positions(&source, &keep, ops.len(), sequence, &bad)?;
    for (name, array) in sequence.columns().iter().zip(arrays) {
        fields.push(Field::new(*name, array.data_type().clone(), false));
        columns.push(array);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(ops.len()));
    let batch = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?;
    Ok(DebeziumEvents { batch, sequence, tombstones })
}

/// The source positions of the kept rows (`rows` of them) as sequence columns.
fn positions(
    source: &StructArray,
    keep: &BooleanArray,
    rows: usize,
    sequence: SequenceSource,
    bad: &dyn Fn(usize, String) -> Error,
) -> Result<(SequenceSource, Vec<ArrayRef>)> {
    let source_column = |name: &str| -> Option<ArrayRef> {
        source.column_by_name(name).and_then(|c| arrow_select::filter::filter(c, keep).ok())
    };
    let int = |name: &str| -> Result<Option<Int64Array>> {
        match source_column(name) {
            None => Ok(None),
            Some(column) => Ok(Some(arrow_cast::cast(&column, &DataType::Int64)?.as_primitive().clone())),
        }
    };
    let sequence = match sequence {
        SequenceSource::Auto if rows == 0 => SequenceSource::Auto,
        SequenceSource::Auto => {
            let connector = source_column("connector")
                .and_then(|c| arrow_cast::cast(&c, &DataType::Utf8).ok())
                .and_then(|c| (0..c.len()).find(|&r| c.is_valid(r)).map(|r| c.as_string::<i32>().value(r).to_owned()));
            match connector.as_deref() {
                Some("mysql") => SequenceSource::MySql,
                Some("postgresql") => SequenceSource::Postgres,
                other => {
                    return Err(bad(
                        0,
                        format!("no known source position for connector {other:?}: choose the sequence"),
                    ));
                }
            }
        }
        chosen => chosen,
    };
    let required = |values: Option<Int64Array>, name: &str| -> Result<Int64Array> {
        let values = values.ok_or_else(|| bad(0, format!("`source.{name}` is missing")))?;
        match (0..values.len()).find(|&r| values.is_null(r)) {
            Some(row) => Err(bad(row, format!("`source.{name}` is null"))),
            None => Ok(values),
        }
    };
    let arrays: Vec<ArrayRef> = match sequence {
        SequenceSource::MySql => {
            let file_names = source_column("file").ok_or_else(|| bad(0, "`source.file` is missing".into()))?;
            let file_names = arrow_cast::cast(&file_names, &DataType::Utf8)?;
            let rows = int("row")?
                .map_or_else(|| Int64Array::from(vec![0; rows]), |r| r.iter().map(|v| Some(v.unwrap_or(0))).collect());
            vec![file_names, Arc::new(required(int("pos")?, "pos")?), Arc::new(rows)]
        }
        SequenceSource::Postgres => {
            let lsn = required(int("lsn")?, "lsn")?;
            // `sequence` is a JSON text ["last commit LSN", "LSN"]; without it the event's LSN
            // stands in for its commit's.
            let texts = source_column("sequence").and_then(|c| arrow_cast::cast(&c, &DataType::Utf8).ok());
            let mut commit = Vec::with_capacity(lsn.len());
            let mut own = Vec::with_capacity(lsn.len());
            for row in 0..lsn.len() {
                let parsed = texts
                    .as_ref()
                    .filter(|t| t.is_valid(row))
                    .and_then(|t| serde_json::from_str::<Vec<Option<String>>>(t.as_string::<i32>().value(row)).ok())
                    .map(|parts| {
                        parts.iter().map(|p| p.as_deref().and_then(|p| p.parse::<i64>().ok())).collect::<Vec<_>>()
                    });
                let (c, l) = match parsed.as_deref() {
                    Some([c, Some(l)]) => (c.unwrap_or(*l), *l),
                    _ => (lsn.value(row), lsn.value(row)),
                };
                commit.push(c);
                own.push(l);
            }
            vec![Arc::new(Int64Array::from(commit)), Arc::new(Int64Array::from(own))]
        }
        SequenceSource::TsMs => vec![Arc::new(required(int("ts_ms")?, "ts_ms")?)],
        SequenceSource::Auto => Vec::new(),
    };
    Ok((sequence, arrays))
}

/// Where a struct column is null.
fn is_null(image: Option<&StructArray>) -> BooleanArray {
    image.map_or_else(
        || BooleanArray::from(Vec::<bool>::new()),
        |image| (0..image.len()).map(|r| Some(image.is_null(r))).collect(),
    )
}
