//! Debezium change events: envelopes (`before`, `after`, `source`, `op`), with or without the
//! `schema`/`payload` wrapper, decoded into the flat event batches of [`crate::cdc`].
//!
//! ```text
//! {"before":…,"after":…,"source":{"connector":"mysql","file":…,"pos":…,"row":…},"op":"u"}
//!   ─► row columns (after; before for deletes) + `_op` + the source position as sequence columns
//! ```
//!
//! - `op`: `c` and `r` (snapshot read) insert, `u` updates, `d` deletes, `t` truncates. A
//!   tombstone (a null value, or `{"schema": null, "payload": null}`) is counted and skipped: the
//!   delete before it already carries the change.
//! - The order is the connector's source position, never the wall clock: MySQL
//!   `(file, pos, row)`, PostgreSQL `source.sequence` (`[last commit LSN, LSN]`, falling back
//!   to `lsn`).
//!   `ts_ms` is not unique and is used only when chosen ([`SequenceSource::TsMs`]).
//! - Types come from the `schema` when present (Kafka Connect types and Debezium's logical
//!   types); without it from [`DebeziumOptions::types`], else only what JSON itself carries
//!   (strings, booleans, integers, floats). Anything else is an error, never a guess.
//! - A delete whose `before` holds only the key (PostgreSQL's `REPLICA IDENTITY DEFAULT`) is a
//!   delete of that key; its other columns are null.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int8Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, Time32MillisecondBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, TimestampMillisecondBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;

use crate::error::{Error, Result};

/// The column holding each event's operation (`insert`, `update`, `delete`, `truncate`).
pub const OP_COLUMN: &str = "_op";

/// Where the order of events comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SequenceSource {
    /// From `source.connector`: MySQL or PostgreSQL positions.
    #[default]
    Auto,
    /// MySQL binlog positions: `_source_file`, `_source_pos`, `_source_row`.
    MySql,
    /// PostgreSQL LSNs: `_source_lsn_commit`, `_source_lsn`.
    Postgres,
    /// `source.ts_ms` as `_source_ts_ms` (not unique: ties need a tie policy).
    TsMs,
}

impl SequenceSource {
    /// The sequence columns, in comparison order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            SequenceSource::MySql => &["_source_file", "_source_pos", "_source_row"],
            SequenceSource::Postgres => &["_source_lsn_commit", "_source_lsn"],
            SequenceSource::TsMs => &["_source_ts_ms"],
            SequenceSource::Auto => &[],
        }
    }
}

/// How envelopes are read.
#[derive(Clone, Debug, Default)]
pub struct DebeziumOptions {
    /// The order of events.
    pub sequence: SequenceSource,
    /// Column types for envelopes without a `schema` (what JSON cannot carry: decimals, dates,
    /// timestamps), and to override the schema's.
    pub types: BTreeMap<String, DataType>,
}

/// Decoded events.
#[derive(Clone, Debug)]
pub struct DebeziumEvents {
    /// Row columns, then [`OP_COLUMN`], then the sequence columns.
    pub batch: RecordBatch,
    /// The sequence columns the batch carries.
    pub sequence: SequenceSource,
    /// Tombstones skipped.
    pub tombstones: u64,
}

impl DebeziumEvents {
    /// The flat event spec reading this batch, keyed by `key`: feed it to
    /// [`crate::cdc::decode_events`] and [`crate::cdc::reduce`] like any other change events.
    pub fn spec(&self, key: &[&str]) -> crate::cdc::EventSpec {
        crate::cdc::EventSpec {
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            op_column: OP_COLUMN.into(),
            sequence: self.sequence.columns().iter().map(|c| (*c).to_owned()).collect(),
            insert: vec!["insert".into()],
            update: vec!["update".into()],
            delete: vec!["delete".into()],
            truncate: vec!["truncate".into()],
            ..crate::cdc::EventSpec::default()
        }
    }

    /// The row columns (not the operation or the sequence).
    pub fn data_columns(&self) -> Vec<String> {
        let meta = self.sequence.columns();
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != OP_COLUMN && !meta.contains(&n.as_str()))
            .collect()
    }
}

/// One decoded envelope.
struct Event {
    op: &'static str,
    row: serde_json::Map<String, Value>,
    position: Position,
}

enum Position {
    MySql(String, i64, i64),
    Postgres(Option<i64>, i64),
    TsMs(i64),
}

/// Decodes the envelopes of `bytes` (JSON lines, or JSON values one after the other); `file`
/// names the input in errors, with the line of the bad envelope.
pub fn decode_envelopes(bytes: &[u8], file: &str, options: &DebeziumOptions) -> Result<DebeziumEvents> {
    // Lines are counted as the stream advances (never from the start again: files are long).
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    let mut at = |offset: usize| {
        let offset = offset.min(bytes.len()).max(counted_to);
        lines_before += memchr_count(&bytes[counted_to..offset]);
        counted_to = offset;
        1 + lines_before
    };
    let bad = |line: usize, detail: String| Error::InvalidInput(format!("{file}, line {line}: {detail}"));
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut events = Vec::new();
    let mut schema_types: BTreeMap<String, DataType> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut tombstones = 0;
    let mut sequence = options.sequence;
    loop {
        let start = stream.byte_offset();
        let Some(value) = stream.next() else { break };
        let line = at(start + leading_whitespace(&bytes[start..]));
        let value = value.map_err(|e| bad(at(stream.byte_offset()), format!("malformed JSON: {e}")))?;
        let (schema, payload) = match value {
            Value::Object(mut object) if object.contains_key("payload") && object.contains_key("schema") => {
                (object.remove("schema").unwrap_or(Value::Null), object.remove("payload").unwrap_or(Value::Null))
            }
            other => (Value::Null, other),
        };
        let Value::Object(mut payload) = payload else {
            if payload.is_null() {
                tombstones += 1;
                continue;
            }
            return Err(bad(line, "an envelope must be a JSON object".into()));
        };
        let op = match payload.get("op").and_then(Value::as_str) {
            Some("c" | "r") => "insert",
            Some("u") => "update",
            Some("d") => "delete",
            Some("t") => "truncate",
            Some(other) => return Err(bad(line, format!("unknown op `{other}` (expected c, r, u, d or t)"))),
            None => return Err(bad(line, "no `op`: not a Debezium change event (a key, or an unwrapped row?)".into())),
        };
        let image = if op == "delete" { "before" } else { "after" };
        let row = match payload.remove(image) {
            Some(Value::Object(row)) => row,
            Some(Value::Null) | None if op == "truncate" => serde_json::Map::new(),
            _ => return Err(bad(line, format!("`{op}` event without a `{image}` image"))),
        };
        if !schema.is_null() {
            for (name, data_type) in image_types(&schema, image).map_err(|e| bad(line, e))? {
                schema_types.entry(name).or_insert(data_type);
            }
        }
        for name in row.keys() {
            if !order.contains(name) {
                order.push(name.clone());
            }
        }
        let source = payload.get("source").cloned().unwrap_or(Value::Null);
        if sequence == SequenceSource::Auto {
            // Older envelopes (the tutorial's) carry no `connector`: their position fields tell.
            let connector = source.get("connector").and_then(Value::as_str);
            sequence = match connector {
                Some("mysql") => SequenceSource::MySql,
                Some("postgresql") => SequenceSource::Postgres,
                None if source.get("file").is_some() && source.get("pos").is_some() => SequenceSource::MySql,
                None if source.get("lsn").is_some() => SequenceSource::Postgres,
                other => {
                    return Err(bad(
                        line,
                        format!(
                            "no known source position for connector {other:?}: choose the sequence (ts_ms only if it \
                             is unique)"
                        ),
                    ));
                }
            };
        }
        let position = position(&source, sequence).map_err(|e| bad(line, e))?;
        events.push(Event { op, row, position });
    }
    if sequence == SequenceSource::Auto {
        sequence = SequenceSource::MySql;
    }
    let batch = build(&events, &order, &schema_types, options, sequence)?;
    Ok(DebeziumEvents { batch, sequence, tombstones })
}

fn memchr_count(bytes: &[u8]) -> usize {
    bytes.iter().fold(0, |n, b| n + usize::from(*b == b'\n'))
}

fn leading_whitespace(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

fn position(source: &Value, sequence: SequenceSource) -> std::result::Result<Position, String> {
    // Positions are Int64 columns (what sequence watermarks compare); LSNs and binlog offsets
    // stay far below 2^63.
    let number = |name: &str| -> std::result::Result<i64, String> {
        source.get(name).and_then(Value::as_i64).ok_or_else(|| format!("`source.{name}` missing or not a number"))
    };
    Ok(match sequence {
        SequenceSource::MySql | SequenceSource::Auto => {
            let file = source.get("file").and_then(Value::as_str).ok_or("`source.file` missing")?;
            Position::MySql(file.to_owned(), number("pos")?, source.get("row").and_then(Value::as_i64).unwrap_or(0))
        }
        SequenceSource::Postgres => {
            // `sequence` is a JSON text: ["last commit LSN", "LSN"], either may be null.
            let lsns: Option<Vec<Option<i64>>> = source
                .get("sequence")
                .and_then(Value::as_str)
                .and_then(|text| serde_json::from_str::<Vec<Option<String>>>(text).ok())
                .map(|parts| parts.iter().map(|p| p.as_deref().and_then(|p| p.parse().ok())).collect());
            if let Some([commit, Some(lsn)]) = lsns.as_deref() {
                Position::Postgres(commit.or(Some(*lsn)), *lsn)
            } else {
                let lsn = number("lsn")?;
                Position::Postgres(Some(lsn), lsn)
            }
        }
        SequenceSource::TsMs => {
            Position::TsMs(source.get("ts_ms").and_then(Value::as_i64).ok_or("`source.ts_ms` missing or not a number")?)
        }
    })
}

/// The column types of the `image` struct of an envelope schema.
fn image_types(schema: &Value, image: &str) -> std::result::Result<Vec<(String, DataType)>, String> {
    let fields = schema.get("fields").and_then(Value::as_array).ok_or("the schema has no `fields`")?;
    let Some(image) = fields.iter().find(|f| f.get("field").and_then(Value::as_str) == Some(image)) else {
        return Ok(Vec::new());
    };
    let columns = image.get("fields").and_then(Value::as_array).ok_or("the image schema has no `fields`")?;
    columns
        .iter()
        .map(|column| {
            let name = column.get("field").and_then(Value::as_str).ok_or("a schema field without a name")?;
            Ok((name.to_owned(), connect_type(column).map_err(|e| format!("column `{name}`: {e}"))?))
        })
        .collect()
}

/// The Arrow type of a Kafka Connect field schema (with Debezium's logical types).
fn connect_type(field: &Value) -> std::result::Result<DataType, String> {
    let kind = field.get("type").and_then(Value::as_str).unwrap_or_default();
    let name = field.get("name").and_then(Value::as_str).unwrap_or_default();
    Ok(match (name, kind) {
        ("org.apache.kafka.connect.data.Decimal", _) => {
            let scale = field
                .pointer("/parameters/scale")
                .and_then(|s| s.as_str().and_then(|s| s.parse().ok()).or_else(|| s.as_i64()))
                .ok_or("a Decimal without `parameters.scale`")?;
            DataType::Decimal128(38, i8::try_from(scale).map_err(|_| "a Decimal scale out of range")?)
        }
        ("org.apache.kafka.connect.data.Date" | "io.debezium.time.Date", _) => DataType::Date32,
        ("org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp", _) => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        ("io.debezium.time.MicroTimestamp", _) => DataType::Timestamp(TimeUnit::Microsecond, None),
        ("io.debezium.time.NanoTimestamp", _) => DataType::Timestamp(TimeUnit::Nanosecond, None),
        ("io.debezium.time.ZonedTimestamp", _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ("org.apache.kafka.connect.data.Time" | "io.debezium.time.Time", _) => DataType::Time32(TimeUnit::Millisecond),
        ("io.debezium.time.MicroTime", _) => DataType::Time64(TimeUnit::Microsecond),
        (_, "int8") => DataType::Int8,
        (_, "int16") => DataType::Int16,
        (_, "int32") => DataType::Int32,
        (_, "int64") => DataType::Int64,
        (_, "float32") => DataType::Float32,
        (_, "float64") => DataType::Float64,
        (_, "boolean") => DataType::Boolean,
        (_, "string") => DataType::Utf8,
        (name, kind) => return Err(format!("unsupported type `{kind}` {name}: declare it in the type map")),
    })
}

/// The type of a column without a declared one: only what JSON carries.
fn json_type(events: &[Event], column: &str) -> Result<DataType> {
    let mut found = DataType::Null;
    for value in events.iter().filter_map(|e| e.row.get(column)) {
        let kind = match value {
            Value::Null => continue,
            Value::Bool(_) => DataType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => DataType::Int64,
            Value::Number(_) => DataType::Float64,
            Value::String(_) => DataType::Utf8,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "column `{column}` holds nested JSON: declare its type (no schema in the envelopes)"
                )));
            }
        };
        found = match (&found, &kind) {
            (DataType::Null, _) => kind,
            (a, b) if a == b => kind,
            (DataType::Int64 | DataType::Float64, DataType::Int64 | DataType::Float64) => DataType::Float64,
            (a, b) => {
                return Err(Error::InvalidInput(format!("column `{column}` holds both {a} and {b}: declare its type")));
            }
        };
    }
    Ok(found)
}

fn build(
    events: &[Event],
    order: &[String],
    schema_types: &BTreeMap<String, DataType>,
    options: &DebeziumOptions,
    sequence: SequenceSource,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in order {
        let data_type = match options.types.get(name).or_else(|| schema_types.get(name)) {
            Some(t) => t.clone(),
            None => json_type(events, name)?,
        };
        let values: Vec<Option<&Value>> = events.iter().map(|e| e.row.get(name).filter(|v| !v.is_null())).collect();
        columns.push(column(&values, &data_type).map_err(|e| Error::InvalidInput(format!("column `{name}`: {e}")))?);
        fields.push(Field::new(name, data_type, true));
    }
    fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
    columns.push(Arc::new(events.iter().map(|e| Some(e.op)).collect::<arrow_array::StringArray>()));
    match sequence {
        SequenceSource::MySql | SequenceSource::Auto => {
            let (mut file, mut pos, mut row) = (StringBuilder::new(), Int64Builder::new(), Int64Builder::new());
            for event in events {
                if let Position::MySql(f, p, r) = &event.position {
                    file.append_value(f);
                    pos.append_value(*p);
                    row.append_value(*r);
                }
            }
            push_sequence(
                &mut fields,
                &mut columns,
                sequence,
                vec![Arc::new(file.finish()), Arc::new(pos.finish()), Arc::new(row.finish())],
            );
        }
        SequenceSource::Postgres => {
            let (mut commit, mut lsn) = (Int64Builder::new(), Int64Builder::new());
            for event in events {
                if let Position::Postgres(c, l) = &event.position {
                    // Without `sequence` the event's own LSN stands in for its commit's.
                    commit.append_value(c.unwrap_or(*l));
                    lsn.append_value(*l);
                }
            }
            push_sequence(&mut fields, &mut columns, sequence, vec![Arc::new(commit.finish()), Arc::new(lsn.finish())]);
        }
        SequenceSource::TsMs => {
            let mut ts = Int64Builder::new();
            for event in events {
                if let Position::TsMs(t) = &event.position {
                    ts.append_value(*t);
                }
            }
            push_sequence(&mut fields, &mut columns, sequence, vec![Arc::new(ts.finish())]);
        }
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(events.len()));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?)
}

fn push_sequence(
    fields: &mut Vec<Field>,
    columns: &mut Vec<ArrayRef>,
    sequence: SequenceSource,
    arrays: Vec<ArrayRef>,
) {
    let sequence = if sequence == SequenceSource::Auto { SequenceSource::MySql } else { sequence };
    for (name, array) in sequence.columns().iter().zip(arrays) {
        fields.push(Field::new(*name, array.data_type().clone(), false));
        columns.push(array);
    }
}

/// One column of `data_type` from JSON values (`None`: null or absent).
fn column(values: &[Option<&Value>], data_type: &DataType) -> std::result::Result<ArrayRef, String> {
    macro_rules! build {
        ($builder:expr, $convert:expr) => {{
            let mut builder = $builder;
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(value) => {
                        builder.append_value($convert(*value).ok_or_else(|| format!("`{value}` is not a {data_type}"))?)
                    }
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    let int = |v: &Value| v.as_i64();
    Ok(match data_type {
        DataType::Null => new_null_array(&DataType::Null, values.len()),
        DataType::Boolean => build!(BooleanBuilder::new(), |v: &Value| v.as_bool()),
        DataType::Int8 => build!(Int8Builder::new(), |v: &Value| int(v).and_then(|i| i8::try_from(i).ok())),
        DataType::Int16 => build!(Int16Builder::new(), |v: &Value| int(v).and_then(|i| i16::try_from(i).ok())),
        DataType::Int32 => build!(Int32Builder::new(), |v: &Value| int(v).and_then(|i| i32::try_from(i).ok())),
        DataType::Int64 => build!(Int64Builder::new(), int),
        DataType::Float32 => build!(Float32Builder::new(), |v: &Value| v.as_f64().map(|f| f as f32)),
        DataType::Float64 => build!(Float64Builder::new(), |v: &Value| v.as_f64()),
        DataType::Utf8 => build!(StringBuilder::new(), |v: &Value| v.as_str().map(str::to_owned)),
        DataType::Date32 => build!(Date32Builder::new(), |v: &Value| int(v).and_then(|i| i32::try_from(i).ok())),
        DataType::Time32(TimeUnit::Millisecond) => {
            build!(Time32MillisecondBuilder::new(), |v: &Value| int(v).and_then(|i| i32::try_from(i).ok()))
        }
        DataType::Time64(TimeUnit::Microsecond) => build!(Time64MicrosecondBuilder::new(), int),
        DataType::Timestamp(TimeUnit::Millisecond, None) => build!(TimestampMillisecondBuilder::new(), int),
        DataType::Timestamp(TimeUnit::Microsecond, None) => build!(TimestampMicrosecondBuilder::new(), int),
        DataType::Timestamp(TimeUnit::Nanosecond, None) => build!(TimestampNanosecondBuilder::new(), int),
        DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) => {
            let parse = |v: &Value| {
                v.as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.timestamp_micros())
                    .or_else(|| int(v))
            };
            Arc::new(
                build!(TimestampMicrosecondBuilder::new(), parse)
                    .as_any()
                    .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                    .cloned()
                    .expect("built as such")
                    .with_timezone(zone.clone()),
            )
        }
        DataType::Decimal128(precision, scale) => {
            // Kafka Connect decimals: the unscaled value as big-endian two's complement, base64.
            let unscaled = |v: &Value| {
                let text = v.as_str()?;
                let bytes = base64_decode(text)?;
                if bytes.is_empty() || bytes.len() > 16 {
                    return None;
                }
                let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
                let mut wide = [fill; 16];
                wide[16 - bytes.len()..].copy_from_slice(&bytes);
                Some(i128::from_be_bytes(wide))
            };
            let array = build!(Decimal128Builder::new(), unscaled);
            let array = array.as_any().downcast_ref::<arrow_array::Decimal128Array>().cloned().expect("built as such");
            Arc::new(array.with_precision_and_scale(*precision, *scale).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("the type {other} cannot be read from Debezium JSON")),
    })
}

/// Standard base64 (with or without padding), as Kafka Connect writes bytes.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    use super::*;

    #[test]
    fn json_lines_tombstones_types_and_mysql_positions() {
        let lines = concat!(
            r#"{"before":null,"after":{"id":1,"name":"a","price":"AQ=="},"source":{"connector":"mysql","file":"bin.000001","pos":10,"row":0},"op":"c"}"#,
            "\n",
            r#"{"before":{"id":1,"name":"a","price":"AQ=="},"after":{"id":1,"name":"b","price":"/w=="},"source":{"connector":"mysql","file":"bin.000001","pos":20,"row":1},"op":"u"}"#,
            "\n",
            r#"{"before":{"id":1},"after":null,"source":{"connector":"mysql","file":"bin.000002","pos":4,"row":0},"op":"d"}"#,
            "\nnull\n"
        );
        let options = DebeziumOptions {
            types: [("price".to_owned(), DataType::Decimal128(10, 2))].into_iter().collect(),
            ..DebeziumOptions::default()
        };
        let events = decode_envelopes(lines.as_bytes(), "events.json", &options).unwrap();
        assert_eq!(events.tombstones, 1);
        assert_eq!(events.sequence, SequenceSource::MySql);
        let batch = &events.batch;
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id", "name", "price", "_op", "_source_file", "_source_pos", "_source_row"]);
        let ops: Vec<_> = batch.column(3).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ops, ["insert", "update", "delete"]);
        let prices = batch.column(2).as_primitive::<arrow_array::types::Decimal128Type>();
        assert_eq!((prices.value(0), prices.value(1), prices.is_null(2)), (1, -1, true));
        assert!(batch.column(1).is_null(2), "a key-only before image");
    }

    #[test]
    fn errors_name_file_and_line() {
        let error = decode_envelopes(b"{\"op\":\"c\"}\n{not json", "e.json", &DebeziumOptions::default()).unwrap_err();
        assert!(error.to_string().contains("e.json, line 1"), "{error}");
        let text = "\n\n{\"op\":\"x\",\"after\":{}}";
        let error = decode_envelopes(text.as_bytes(), "e.json", &DebeziumOptions::default()).unwrap_err();
        assert!(error.to_string().contains("e.json, line 3: unknown op `x`"), "{error}");
        let text = r#"{"op":"c","after":{"id":1},"source":{"connector":"oracle","scn":"1"}}"#;
        let error = decode_envelopes(text.as_bytes(), "e.json", &DebeziumOptions::default()).unwrap_err();
        assert!(error.to_string().contains("choose the sequence"), "{error}");
        let text = r#"{"op":"c","after":{"v":[1]},"source":{"connector":"mysql","file":"f","pos":1}}"#;
        let error = decode_envelopes(text.as_bytes(), "e.json", &DebeziumOptions::default()).unwrap_err();
        assert!(error.to_string().contains("declare its type"), "{error}");
    }

    #[test]
    fn postgres_sequence_falls_back_to_lsn() {
        let text = concat!(
            r#"{"op":"u","after":{"id":1},"source":{"connector":"postgresql","sequence":"[\"24023119\",\"24023128\"]","lsn":24023128}}"#,
            r#"{"op":"d","before":{"id":1},"source":{"connector":"postgresql","lsn":24023200}}"#
        );
        let events = decode_envelopes(text.as_bytes(), "pg.json", &DebeziumOptions::default()).unwrap();
        let commit =
            events.batch.column_by_name("_source_lsn_commit").unwrap().as_primitive::<arrow_array::types::Int64Type>();
        let lsn = events.batch.column_by_name("_source_lsn").unwrap().as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!((commit.value(0), lsn.value(0)), (24_023_119, 24_023_128));
        assert_eq!((commit.value(1), lsn.value(1)), (24_023_200, 24_023_200));
    }
}
