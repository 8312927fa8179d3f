//! Snapshots as bytes: which format, its schema, and its rows decoded batch by batch.
//!
//! Decoding borrows the input: Parquet pages and Arrow IPC buffers are sliced from the one copy
//! of the file in memory (decompression aside), never copied whole a second time.

use std::collections::BTreeMap;
#[cfg(feature = "csv")]
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::{FileDecoder, StreamDecoder};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::error::{Error, Result};

/// The formats a snapshot may come in, told apart by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet (`PAR1`).
    Parquet,
    /// The Arrow IPC file format (`ARROW1`).
    #[serde(rename = "arrow-file")]
    ArrowFile,
    /// The Arrow IPC stream format (a continuation marker first).
    #[serde(rename = "arrow-stream")]
    ArrowStream,
    /// Comma-separated values with a header line (anything else).
    Csv,
}

impl Format {
    /// The format of `bytes`.
    pub fn detect(bytes: &[u8]) -> Format {
        if bytes.starts_with(b"PAR1") {
            Format::Parquet
        } else if bytes.starts_with(b"ARROW1") {
            Format::ArrowFile
        } else if bytes.starts_with(&[0xff, 0xff, 0xff, 0xff]) {
            Format::ArrowStream
        } else {
            Format::Csv
        }
    }
}

/// A decoded snapshot.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The format it came in.
    pub format: Format,
    /// Its schema.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

impl Snapshot {
    /// Its number of rows.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Decodes `bytes` (`input` names it in errors). CSV columns take their types from
/// `csv_types` (columns it lacks stay strings); without it CSV is an error, because types
/// guessed from one file would not hash like the other side's. `progress` is told the rows
/// decoded so far and the total when known (else 0).
pub fn decode(
    input: &'static str,
    bytes: Bytes,
    csv_types: Option<&BTreeMap<String, DataType>>,
    batch_size: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Snapshot> {
    let format = Format::detect(&bytes);
    let (schema, batches) =
        caught(input, format, || decode_format(input, format, bytes, csv_types, batch_size, progress))?;
    Ok(Snapshot { format, schema, batches })
}

/// `decode` run so that a panic inside a decoder on a corrupt file becomes an error naming the
/// input, where panics unwind (native; the wasm build aborts instead, see the crate docs).
fn caught<T>(input: &'static str, format: Format, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Input { input, detail: format!("the {format:?} decoder panicked: {message}") })
    })
}

fn decode_format(
    input: &'static str,
    format: Format,
    bytes: Bytes,
    csv_types: Option<&BTreeMap<String, DataType>>,
    batch_size: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let bad = |e: &dyn std::fmt::Display| Error::Input { input, detail: e.to_string() };
    Ok(match format {
        Format::Parquet => parquet(bytes, batch_size, progress).map_err(|e| bad(&e))?,
        Format::ArrowFile => ipc_file(&bytes, progress).map_err(|e| bad(&e))?,
        Format::ArrowStream => ipc_stream(bytes, progress).map_err(|e| bad(&e))?,
        Format::Csv => {
            let types = csv_types.ok_or_else(|| Error::Input {
                input,
                detail: "CSV needs column types (options.csvSchema), or a Parquet/Arrow snapshot on the other side to \
                         take them from: types guessed from one file would not hash like the other's"
                    .into(),
            })?;
            csv(input, &bytes, types, batch_size, progress)?
        }
    })
}

fn parquet(
    bytes: Bytes,
    batch_size: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemaRef, Vec<RecordBatch>), parquet::errors::ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let schema = Arc::clone(builder.schema());
    let reader = builder.with_batch_size(batch_size).build()?;
    let mut batches = Vec::new();
    let mut rows = 0;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        batches.push(batch);
        progress(rows, total);
    }
    Ok((schema, batches))
}

/// The Arrow IPC file format, zero-copy: record batches are sliced out of the input.
pub(crate) fn ipc_file(
    bytes: &Bytes,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let damaged = |detail: &str| ArrowError::IpcError(format!("not an Arrow IPC file: {detail}"));
    let buffer = arrow_buffer::Buffer::from(bytes.clone());
    if buffer.len() < 16 {
        return Err(damaged("too short"));
    }
    let trailer = buffer.len() - 10;
    let footer_len = arrow_ipc::reader::read_footer_length(buffer[trailer..].try_into().expect("10 bytes"))?;
    let footer_start = trailer.checked_sub(footer_len).ok_or_else(|| damaged("footer longer than the file"))?;
    let footer = arrow_ipc::root_as_footer(&buffer[footer_start..trailer]).map_err(|e| damaged(&e.to_string()))?;
    let schema = Arc::new(arrow_ipc::convert::fb_to_schema(footer.schema().ok_or_else(|| damaged("no schema"))?));
    let mut decoder = FileDecoder::new(Arc::clone(&schema), footer.version());
    let block_data = |block: &arrow_ipc::Block| -> Result<arrow_buffer::Buffer, ArrowError> {
        let (offset, meta, body) = (block.offset(), i64::from(block.metaDataLength()), block.bodyLength());
        let end = offset.checked_add(meta).and_then(|e| e.checked_add(body));
        match end {
            Some(end) if offset >= 0 && meta >= 0 && body >= 0 && end <= footer_start as i64 => {
                Ok(buffer.slice_with_length(offset as usize, (meta + body) as usize))
            }
            _ => Err(damaged("a block lies outside the file")),
        }
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder.read_dictionary(block, &block_data(block)?)?;
    }
    let mut batches = Vec::new();
    let blocks = footer.recordBatches().map(|b| b.iter().collect::<Vec<_>>()).unwrap_or_default();
    let total = blocks.len() as u64;
    for (done, block) in blocks.iter().enumerate() {
        if let Some(batch) = decoder.read_record_batch(block, &block_data(block)?)? {
            batches.push(batch);
        }
        progress(done as u64 + 1, total);
    }
    Ok((schema, batches))
}

/// The Arrow IPC stream format, zero-copy.
pub(crate) fn ipc_stream(
    bytes: Bytes,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut buffer = arrow_buffer::Buffer::from(bytes);
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    let mut rows = 0;
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer)? {
            rows += batch.num_rows() as u64;
            batches.push(batch);
            progress(rows, 0);
        }
    }
    decoder.finish()?;
    let schema = decoder.schema().ok_or_else(|| ArrowError::IpcError("an empty Arrow IPC stream".into()))?;
    Ok((schema, batches))
}

#[cfg(feature = "csv")]
fn csv(
    input: &'static str,
    bytes: &Bytes,
    types: &BTreeMap<String, DataType>,
    batch_size: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let bad = |detail: String| Error::Input { input, detail };
    // Columns are matched by name from the header; the parser types them as it reads (a value
    // that does not parse is an error naming its column and line).
    let names = csv_header(bytes).map_err(|e| bad(e.to_string()))?;
    let schema = Arc::new(Schema::new(
        names.iter().map(|n| Field::new(n, types.get(n).cloned().unwrap_or(DataType::Utf8), true)).collect::<Vec<_>>(),
    ));
    // Without chrono-tz, arrow parses only offset zones: UTC-zoned columns are parsed zone-less
    // (the same instants; a value's own offset still applies) and get their zone back after.
    let parse_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(unit, Some(zone)) if is_utc(zone) => {
                    f.as_ref().clone().with_data_type(DataType::Timestamp(*unit, None))
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let reader = arrow_csv::ReaderBuilder::new(Arc::clone(&parse_schema))
        .with_header(true)
        .with_batch_size(batch_size)
        .build(Cursor::new(bytes.as_ref()))
        .map_err(|e| bad(e.to_string()))?;
    let mut batches = Vec::new();
    let mut rows = 0;
    for batch in reader {
        let mut batch = batch.map_err(|e| bad(e.to_string()))?;
        if parse_schema != schema {
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| match f.data_type() {
                    DataType::Timestamp(_, Some(zone)) if is_utc(zone) => with_zone(c, Some(zone)),
                    _ => Ok(Arc::clone(c)),
                })
                .collect::<Result<Vec<_>>>()?;
            batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        }
        rows += batch.num_rows() as u64;
        batches.push(batch);
        progress(rows, 0);
    }
    Ok((schema, batches))
}

#[cfg(not(feature = "csv"))]
fn csv(
    input: &'static str,
    _bytes: &Bytes,
    _types: &BTreeMap<String, DataType>,
    _batch_size: usize,
    _progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    Err(Error::Input { input, detail: "not Parquet or Arrow IPC (this build reads no CSV)".into() })
}

#[cfg(feature = "csv")]
fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "utc" | "Z" | "Etc/UTC" | "GMT" | "+00:00" | "+0000" | "+00")
}

/// A timestamp column under another zone (`None`: zone-less). Metadata only: the instants, and
/// the buffers, stay; other columns come back as they are.
pub(crate) fn with_zone(column: &arrow_array::ArrayRef, zone: Option<&str>) -> Result<arrow_array::ArrayRef> {
    let DataType::Timestamp(unit, _) = column.data_type() else { return Ok(Arc::clone(column)) };
    let data = column.to_data().into_builder().data_type(DataType::Timestamp(*unit, zone.map(Into::into))).build()?;
    Ok(arrow_array::make_array(data))
}

/// The column names of a CSV header.
#[cfg(feature = "csv")]
fn csv_header(bytes: &[u8]) -> Result<Vec<String>, ArrowError> {
    let (schema, _) =
        arrow_csv::reader::Format::default().with_header(true).infer_schema(Cursor::new(bytes), Some(0))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.is_empty() || names.iter().any(|n| n.contains('\0')) {
        return Err(ArrowError::CsvError("not Parquet, Arrow IPC or CSV with a header line".into()));
    }
    Ok(names)
}

/// Column types of two CSV files read alike: each column's type guessed from both files (the
/// wider of two number types; text when they disagree otherwise).
#[cfg(feature = "csv")]
pub(crate) fn infer_csv_types(files: &[&[u8]]) -> Result<BTreeMap<String, DataType>, ArrowError> {
    let mut types: BTreeMap<String, DataType> = BTreeMap::new();
    for bytes in files {
        let (schema, _) =
            arrow_csv::reader::Format::default().with_header(true).infer_schema(Cursor::new(bytes), None)?;
        for field in schema.fields() {
            let guessed = field.data_type().clone();
            let merged = match types.get(field.name()) {
                Some(known) if guessed == DataType::Null => known.clone(),
                Some(known) if *known != guessed && *known != DataType::Null => {
                    let numbers = [DataType::Int64, DataType::Float64];
                    if numbers.contains(known) && numbers.contains(&guessed) {
                        DataType::Float64
                    } else {
                        DataType::Utf8
                    }
                }
                _ => guessed,
            };
            types.insert(field.name().clone(), merged);
        }
    }
    // A column empty everywhere is text.
    for data_type in types.values_mut() {
        if *data_type == DataType::Null {
            *data_type = DataType::Utf8;
        }
    }
    Ok(types)
}

#[cfg(not(feature = "csv"))]
pub(crate) fn infer_csv_types(_files: &[&[u8]]) -> Result<BTreeMap<String, DataType>, ArrowError> {
    Ok(BTreeMap::new())
}

/// A column of an inspected snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its Arrow type, as Arrow prints it.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// What a snapshot holds, read from its metadata (Parquet, Arrow) or header (CSV, with types
/// guessed from its values: for display, not for hashing).
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The format.
    pub format: Format,
    /// Its rows, when the metadata says (Parquet).
    pub rows: Option<u64>,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
}

/// Inspects a snapshot without decoding its rows (CSV: its values are scanned for types).
pub fn inspect(bytes: Bytes) -> Result<Inspection> {
    let bad = |e: &dyn std::fmt::Display| Error::Input { input: "snapshot", detail: e.to_string() };
    let format = Format::detect(&bytes);
    let (schema, rows) = match format {
        Format::Parquet => caught("snapshot", format, || {
            // The footer's embedded Arrow schema is decoded here: guarded like a full decode.
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(&e))?;
            let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).ok();
            Ok((Arc::clone(builder.schema()), rows))
        })?,
        Format::ArrowFile | Format::ArrowStream => {
            let snapshot = decode("snapshot", bytes, None, 8192, &mut |_, _| {})?;
            let rows = snapshot.rows();
            (snapshot.schema, Some(rows))
        }
        Format::Csv => {
            let types = infer_csv_types(&[&bytes]).map_err(|e| bad(&e))?;
            let names = csv_names(&bytes).map_err(|e| bad(&e))?;
            let fields: Vec<Field> =
                names.iter().map(|n| Field::new(n, types.get(n).cloned().unwrap_or(DataType::Utf8), true)).collect();
            (Arc::new(Schema::new(fields)), None)
        }
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| ColumnInfo { name: f.name().clone(), data_type: f.data_type().to_string(), nullable: f.is_nullable() })
        .collect();
    Ok(Inspection { format, rows, columns })
}

#[cfg(feature = "csv")]
fn csv_names(bytes: &[u8]) -> Result<Vec<String>, ArrowError> {
    csv_header(bytes)
}

#[cfg(not(feature = "csv"))]
fn csv_names(_bytes: &[u8]) -> Result<Vec<String>, ArrowError> {
    Err(ArrowError::CsvError("not Parquet or Arrow IPC (this build reads no CSV)".into()))
}
