//! Change sets for people: the first rows as display strings (a page's table) and a whole
//! Arrow IPC table as CSV (a download).

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::input::Format;

/// Up to `limit` rows of `batches` as objects of display strings (null stays null; a list, such
/// as `_changed_columns`, becomes an array of strings).
pub fn preview(batches: &[RecordBatch], limit: usize) -> Result<Vec<Value>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let (batch, utc) = displayable(batch)?;
        let schema = batch.schema();
        let formatters = formatters(&batch, &options)?;
        for row in 0..batch.num_rows() {
            if rows.len() >= limit {
                return Ok(rows);
            }
            let mut object = Map::new();
            for (index, field) in schema.fields().iter().enumerate() {
                let column = batch.column(index);
                let value = if column.is_null(row) {
                    Value::Null
                } else if let DataType::List(_) = field.data_type() {
                    Value::Array(list_items(column.as_ref(), row).into_iter().map(Value::from).collect())
                } else {
                    Value::String(show(&formatters[index], utc[index], row))
                };
                object.insert(field.name().clone(), value);
            }
            rows.push(Value::Object(object));
        }
    }
    Ok(rows)
}

/// An Arrow IPC table (stream or file) as CSV with a header line (also when it has no rows);
/// lists are joined with `|`.
pub fn ipc_to_csv(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |e: &dyn std::fmt::Display| Error::Input { input: "table", detail: e.to_string() };
    // The same zero-copy IPC readers as the inputs.
    let bytes = bytes::Bytes::from(bytes);
    let (schema, batches) = match Format::detect(&bytes) {
        Format::ArrowFile => crate::input::ipc_file(&bytes, &mut |_, _| {}),
        _ => crate::input::ipc_stream(bytes, &mut |_, _| {}),
    }
    .map_err(|e| bad(&e))?;
    let mut out = header(&schema);
    let options = FormatOptions::default();
    for batch in &batches {
        let (batch, utc) = displayable(batch)?;
        let formatters = formatters(&batch, &options)?;
        for row in 0..batch.num_rows() {
            let fields: Vec<String> = batch
                .columns()
                .iter()
                .enumerate()
                .map(|(index, column)| {
                    if column.is_null(row) {
                        String::new()
                    } else if let DataType::List(_) = column.data_type() {
                        quote(&list_items(column.as_ref(), row).join("|"))
                    } else {
                        quote(&show(&formatters[index], utc[index], row))
                    }
                })
                .collect();
            out.extend_from_slice(fields.join(",").as_bytes());
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// `batch` ready to display, and which columns are UTC instants to suffix with `Z`: zoned
/// timestamps whose zone this build cannot resolve (IANA names need the `tz` feature; without it
/// arrow refuses even `"UTC"`) lose the zone and show as UTC.
fn displayable(batch: &RecordBatch) -> Result<(RecordBatch, Vec<bool>)> {
    let mut utc = Vec::with_capacity(batch.num_columns());
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let unresolvable = match column.data_type() {
            DataType::Timestamp(_, Some(zone)) => zone.parse::<arrow_array::timezone::Tz>().is_err(),
            _ => false,
        };
        let column = if unresolvable { crate::input::with_zone(column, None)? } else { std::sync::Arc::clone(column) };
        fields.push(field.as_ref().clone().with_data_type(column.data_type().clone()));
        columns.push(column);
        utc.push(unresolvable);
    }
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields));
    Ok((RecordBatch::try_new(schema, columns)?, utc))
}

fn formatters<'a>(batch: &'a RecordBatch, options: &'a FormatOptions<'a>) -> Result<Vec<ArrayFormatter<'a>>> {
    Ok(batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), options)).collect::<Result<Vec<_>, _>>()?)
}

fn show(formatter: &ArrayFormatter<'_>, utc: bool, row: usize) -> String {
    let text = formatter.value(row).to_string();
    if utc { text + "Z" } else { text }
}

/// The strings of a list-of-strings cell (`_changed_columns`).
fn list_items(column: &dyn Array, row: usize) -> Vec<String> {
    let items = column.as_list::<i32>().value(row);
    items.as_string_opt::<i32>().map(|s| s.iter().flatten().map(str::to_owned).collect()).unwrap_or_default()
}

fn header(schema: &arrow_schema::Schema) -> Vec<u8> {
    let names: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
    let mut out = names.join(",").into_bytes();
    out.push(b'\n');
    out
}

/// RFC 4180 quoting: fields holding a comma, quote or line break are quoted, quotes doubled.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    #[test]
    fn csv_quotes_and_preview_limits() {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec![Some("a,\"b\""), None])) as ArrayRef),
        ])
        .unwrap();
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
        }
        assert_eq!(String::from_utf8(ipc_to_csv(bytes.clone()).unwrap()).unwrap(), "id,name\n1,\"a,\"\"b\"\"\"\n2,\n");
        let mut empty = Vec::new();
        arrow_ipc::writer::FileWriter::try_new(&mut empty, &batch.schema()).unwrap().finish().unwrap();
        assert_eq!(String::from_utf8(ipc_to_csv(empty).unwrap()).unwrap(), "id,name\n", "no rows, still a header");
        let rows = preview(&[batch], 1).unwrap();
        assert_eq!(rows, [serde_json::json!({"id": "1", "name": "a,\"b\""})]);
    }
}
