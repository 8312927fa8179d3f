//! Reads the golden vectors of `row_hash_v1.json` into Arrow arrays.
//!
//! This file is shared, by `#[path]`, between the native test of highwater-core and the wasm
//! test of highwater-wasm, so both build the same arrays from the same data and can never drift.
//! It depends only on arrow, serde_json and highwater-core.
//!
//! Column types are written in a small grammar of our own (arrow's type syntax is not ours to
//! keep stable): `int8`…`int64`, `uint8`…`uint64`, `float16|32|64`, `bool`, `null`, `utf8`,
//! `large_utf8`, `utf8_view`, `binary`, `large_binary`, `binary_view`, `fixed_binary(N)`,
//! `date32`, `date64`, `timestamp(UNIT[,ZONE])`, `time32(UNIT)`, `time64(UNIT)`,
//! `duration(UNIT)`, `decimal32|64|128|256(P,S)`, `dict(T)`, `list(T)`, `large_list(T)`,
//! `fixed_list(T,N)`, `struct(name:T,...)`, `map(K,V)`; UNIT is `s`, `ms`, `us` or `ns`.
//! Values: numbers (or decimal strings for 64-bit and decimal values), `"NaN"`, `"inf"`,
//! `"-inf"`, `"-0.0"` for floats; binaries as hex strings; dates, times and timestamps as their
//! raw stored integers; lists as arrays; structs as objects; maps as arrays of `[key, value]`.

#![allow(dead_code, clippy::pedantic)]

use std::sync::Arc;

use highwater_core::arrow::array::types::*;
use highwater_core::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, Float16Array, Float64Array,
    GenericListArray, MapArray, NullArray, PrimitiveArray, RecordBatch, StringArray, StructArray,
};
use highwater_core::arrow::buffer::{NullBuffer, OffsetBuffer, i256};
use highwater_core::arrow::cast::cast;
use highwater_core::arrow::schema::{DataType, Field, Fields, TimeUnit};
use serde_json::Value;

/// One golden case: a batch, the options to hash it with, and what it must hash to.
pub struct Case {
    pub name: String,
    pub batch: RecordBatch,
    pub naive_timezone: Option<String>,
    /// Key columns, for fingerprint cases.
    pub key: Option<Vec<String>>,
    /// The raw JSON of the case, to update expectations.
    pub json: Value,
}

/// Parses every case of the golden file.
pub fn load(text: &str) -> Result<(Value, Vec<Case>), String> {
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut cases = Vec::new();
    for case in root["cases"].as_array().ok_or("no cases")? {
        let name = case["name"].as_str().ok_or("case without a name")?.to_owned();
        let mut columns: Vec<(String, ArrayRef)> = Vec::new();
        for column in case["columns"].as_array().ok_or_else(|| format!("{name}: no columns"))? {
            let column_name = column["name"].as_str().ok_or_else(|| format!("{name}: column without a name"))?;
            let type_text = column["type"].as_str().ok_or_else(|| format!("{name}: column without a type"))?;
            let data_type = parse_type(type_text).map_err(|e| format!("{name}: {e}"))?;
            let values = column["values"].as_array().ok_or_else(|| format!("{name}: column without values"))?;
            let array = build(&data_type, values).map_err(|e| format!("{name}.{column_name}: {e}"))?;
            columns.push((column_name.to_owned(), array));
        }
        let batch = RecordBatch::try_from_iter(columns).map_err(|e| format!("{name}: {e}"))?;
        let key = case["key"].as_array().map(|k| k.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect());
        cases.push(Case {
            name,
            batch,
            naive_timezone: case["naive_timezone"].as_str().map(str::to_owned),
            key,
            json: case.clone(),
        });
    }
    Ok((root, cases))
}

/// Parses the type grammar above.
pub fn parse_type(text: &str) -> Result<DataType, String> {
    let mut parser = Parser { text: text.as_bytes(), at: 0 };
    let data_type = parser.data_type()?;
    if parser.at != parser.text.len() {
        return Err(format!("trailing text in type `{text}`"));
    }
    Ok(data_type)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn word(&mut self) -> String {
        let start = self.at;
        while self.at < self.text.len() && !matches!(self.text[self.at], b'(' | b')' | b',' | b':') {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).trim().to_owned()
    }

    fn eat(&mut self, byte: u8) -> Result<(), String> {
        if self.text.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at {}", byte as char, self.at))
        }
    }

    fn number(&mut self) -> Result<i64, String> {
        let word = self.word();
        word.parse().map_err(|_| format!("expected a number, found `{word}`"))
    }

    fn unit(&mut self) -> Result<TimeUnit, String> {
        match self.word().as_str() {
            "s" => Ok(TimeUnit::Second),
            "ms" => Ok(TimeUnit::Millisecond),
            "us" => Ok(TimeUnit::Microsecond),
            "ns" => Ok(TimeUnit::Nanosecond),
            other => Err(format!("unknown unit `{other}`")),
        }
    }

    fn data_type(&mut self) -> Result<DataType, String> {
        let name = self.word();
        let simple = match name.as_str() {
            "null" => Some(DataType::Null),
            "bool" => Some(DataType::Boolean),
            "int8" => Some(DataType::Int8),
            "int16" => Some(DataType::Int16),
            "int32" => Some(DataType::Int32),
            "int64" => Some(DataType::Int64),
            "uint8" => Some(DataType::UInt8),
            "uint16" => Some(DataType::UInt16),
            "uint32" => Some(DataType::UInt32),
            "uint64" => Some(DataType::UInt64),
            "float16" => Some(DataType::Float16),
            "float32" => Some(DataType::Float32),
            "float64" => Some(DataType::Float64),
            "utf8" => Some(DataType::Utf8),
            "large_utf8" => Some(DataType::LargeUtf8),
            "utf8_view" => Some(DataType::Utf8View),
            "binary" => Some(DataType::Binary),
            "large_binary" => Some(DataType::LargeBinary),
            "binary_view" => Some(DataType::BinaryView),
            "date32" => Some(DataType::Date32),
            "date64" => Some(DataType::Date64),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        self.eat(b'(')?;
        let data_type = match name.as_str() {
            "fixed_binary" => DataType::FixedSizeBinary(self.number()? as i32),
            "timestamp" => {
                let unit = self.unit()?;
                let zone = if self.eat(b',').is_ok() {
                    // Zones may contain `:` (`+02:00`): read up to the closing parenthesis.
                    let start = self.at;
                    while self.at < self.text.len() && self.text[self.at] != b')' {
                        self.at += 1;
                    }
                    Some(Arc::from(String::from_utf8_lossy(&self.text[start..self.at]).trim()))
                } else {
                    None
                };
                DataType::Timestamp(unit, zone)
            }
            "time32" => DataType::Time32(self.unit()?),
            "time64" => DataType::Time64(self.unit()?),
            "duration" => DataType::Duration(self.unit()?),
            "decimal32" | "decimal64" | "decimal128" | "decimal256" => {
                let precision = self.number()? as u8;
                self.eat(b',')?;
                let scale = self.number()? as i8;
                match name.as_str() {
                    "decimal32" => DataType::Decimal32(precision, scale),
                    "decimal64" => DataType::Decimal64(precision, scale),
                    "decimal128" => DataType::Decimal128(precision, scale),
                    _ => DataType::Decimal256(precision, scale),
                }
            }
            "dict" => DataType::Dictionary(Box::new(DataType::Int32), Box::new(self.data_type()?)),
            "list" => DataType::List(Arc::new(Field::new("item", self.data_type()?, true))),
            "large_list" => DataType::LargeList(Arc::new(Field::new("item", self.data_type()?, true))),
            "fixed_list" => {
                let item = self.data_type()?;
                self.eat(b',')?;
                DataType::FixedSizeList(Arc::new(Field::new("item", item, true)), self.number()? as i32)
            }
            "struct" => {
                let mut fields = Vec::new();
                loop {
                    let field_name = self.word();
                    self.eat(b':')?;
                    fields.push(Field::new(field_name, self.data_type()?, true));
                    if self.eat(b',').is_err() {
                        break;
                    }
                }
                DataType::Struct(Fields::from(fields))
            }
            "map" => {
                let key = self.data_type()?;
                self.eat(b',')?;
                let value = self.data_type()?;
                let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
                DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
            }
            other => return Err(format!("unknown type `{other}`")),
        };
        self.eat(b')')?;
        Ok(data_type)
    }
}

fn int(value: &Value) -> Result<i128, String> {
    match value {
        Value::Number(n) => {
            n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).ok_or(format!("not an integer: {n}"))
        }
        Value::String(s) => s.parse().map_err(|_| format!("not an integer: {s}")),
        other => Err(format!("not an integer: {other}")),
    }
}

fn float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => n.as_f64().ok_or(format!("not a float: {n}")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| format!("not a float: {other}")),
        },
        other => Err(format!("not a float: {other}")),
    }
}

fn hex(value: &Value) -> Result<Vec<u8>, String> {
    let text = value.as_str().ok_or(format!("not a hex string: {value}"))?;
    if text.len() % 2 != 0 {
        return Err(format!("odd hex length: {text}"));
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

fn primitive<T: ArrowPrimitiveType>(
    values: &[Value],
    convert: impl Fn(&Value) -> Result<T::Native, String>,
) -> Result<ArrayRef, String> {
    let items: Vec<Option<T::Native>> =
        values.iter().map(|v| if v.is_null() { Ok(None) } else { convert(v).map(Some) }).collect::<Result<_, _>>()?;
    Ok(Arc::new(items.into_iter().collect::<PrimitiveArray<T>>()))
}

fn nulls_of(values: &[Value]) -> Option<NullBuffer> {
    let validity: Vec<bool> = values.iter().map(|v| !v.is_null()).collect();
    if validity.iter().all(|v| *v) { None } else { Some(NullBuffer::from(validity)) }
}

/// Builds an array of `data_type` from JSON values (null → null).
pub fn build(data_type: &DataType, values: &[Value]) -> Result<ArrayRef, String> {
    let narrow = |e: std::num::TryFromIntError| e.to_string();
    let array: ArrayRef = match data_type {
        DataType::Null => Arc::new(NullArray::new(values.len())),
        DataType::Boolean => Arc::new(BooleanArray::from(
            values
                .iter()
                .map(|v| if v.is_null() { Ok(None) } else { v.as_bool().map(Some).ok_or(format!("not a bool: {v}")) })
                .collect::<Result<Vec<_>, String>>()?,
        )),
        DataType::Int8 => primitive::<Int8Type>(values, |v| i8::try_from(int(v)?).map_err(narrow))?,
        DataType::Int16 => primitive::<Int16Type>(values, |v| i16::try_from(int(v)?).map_err(narrow))?,
        DataType::Int32 => primitive::<Int32Type>(values, |v| i32::try_from(int(v)?).map_err(narrow))?,
        DataType::Int64 => primitive::<Int64Type>(values, |v| i64::try_from(int(v)?).map_err(narrow))?,
        DataType::UInt8 => primitive::<UInt8Type>(values, |v| u8::try_from(int(v)?).map_err(narrow))?,
        DataType::UInt16 => primitive::<UInt16Type>(values, |v| u16::try_from(int(v)?).map_err(narrow))?,
        DataType::UInt32 => primitive::<UInt32Type>(values, |v| u32::try_from(int(v)?).map_err(narrow))?,
        DataType::UInt64 => primitive::<UInt64Type>(values, |v| u64::try_from(int(v)?).map_err(narrow))?,
        DataType::Float16 => {
            let items: Vec<Option<f64>> = values
                .iter()
                .map(|v| if v.is_null() { Ok(None) } else { float(v).map(Some) })
                .collect::<Result<_, String>>()?;
            let wide = Float64Array::from(items);
            let narrowed: Float16Array = cast(&wide, &DataType::Float16)
                .map_err(|e| e.to_string())?
                .as_any()
                .downcast_ref::<Float16Array>()
                .cloned()
                .ok_or("float16 cast")?;
            Arc::new(narrowed)
        }
        DataType::Float32 => primitive::<Float32Type>(values, |v| Ok(float(v)? as f32))?,
        DataType::Float64 => primitive::<Float64Type>(values, float)?,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let items: Vec<Option<&str>> = values
                .iter()
                .map(|v| if v.is_null() { Ok(None) } else { v.as_str().map(Some).ok_or(format!("not a string: {v}")) })
                .collect::<Result<_, String>>()?;
            let plain: ArrayRef = Arc::new(StringArray::from(items));
            cast(&plain, data_type).map_err(|e| e.to_string())?
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let items: Vec<Option<Vec<u8>>> = values
                .iter()
                .map(|v| if v.is_null() { Ok(None) } else { hex(v).map(Some) })
                .collect::<Result<_, String>>()?;
            let plain: ArrayRef = Arc::new(BinaryArray::from_iter(items));
            cast(&plain, data_type).map_err(|e| e.to_string())?
        }
        DataType::FixedSizeBinary(width) => {
            let items: Vec<Option<Vec<u8>>> = values
                .iter()
                .map(|v| if v.is_null() { Ok(None) } else { hex(v).map(Some) })
                .collect::<Result<_, String>>()?;
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(items.into_iter(), *width)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Date32 => primitive::<Date32Type>(values, |v| i32::try_from(int(v)?).map_err(narrow))?,
        DataType::Date64 => primitive::<Date64Type>(values, |v| i64::try_from(int(v)?).map_err(narrow))?,
        DataType::Timestamp(unit, zone) => {
            let raw = primitive::<Int64Type>(values, |v| i64::try_from(int(v)?).map_err(narrow))?;
            cast(&raw, &DataType::Timestamp(*unit, zone.clone())).map_err(|e| e.to_string())?
        }
        DataType::Time32(_) => {
            let raw = primitive::<Int32Type>(values, |v| i32::try_from(int(v)?).map_err(narrow))?;
            cast(&raw, data_type).map_err(|e| e.to_string())?
        }
        DataType::Time64(_) | DataType::Duration(_) => {
            let raw = primitive::<Int64Type>(values, |v| i64::try_from(int(v)?).map_err(narrow))?;
            cast(&raw, data_type).map_err(|e| e.to_string())?
        }
        DataType::Decimal32(p, s) => {
            let a = primitive::<Decimal32Type>(values, |v| i32::try_from(int(v)?).map_err(narrow))?;
            Arc::new(
                a.as_any()
                    .downcast_ref::<PrimitiveArray<Decimal32Type>>()
                    .unwrap()
                    .clone()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Decimal64(p, s) => {
            let a = primitive::<Decimal64Type>(values, |v| i64::try_from(int(v)?).map_err(narrow))?;
            Arc::new(
                a.as_any()
                    .downcast_ref::<PrimitiveArray<Decimal64Type>>()
                    .unwrap()
                    .clone()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Decimal128(p, s) => {
            let a = primitive::<Decimal128Type>(values, int)?;
            Arc::new(
                a.as_any()
                    .downcast_ref::<PrimitiveArray<Decimal128Type>>()
                    .unwrap()
                    .clone()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Decimal256(p, s) => {
            let a = primitive::<Decimal256Type>(values, |v| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                i256::from_string(&text).ok_or(format!("not an integer: {text}"))
            })?;
            Arc::new(
                a.as_any()
                    .downcast_ref::<PrimitiveArray<Decimal256Type>>()
                    .unwrap()
                    .clone()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Dictionary(_, value_type) => {
            let plain = build(value_type, values)?;
            cast(&plain, data_type).map_err(|e| e.to_string())?
        }
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut elements = Vec::new();
            for value in values {
                match value {
                    Value::Null => lengths.push(0),
                    Value::Array(items) => {
                        lengths.push(items.len());
                        elements.extend(items.iter().cloned());
                    }
                    other => return Err(format!("not a list: {other}")),
                }
            }
            if let DataType::FixedSizeList(_, size) = data_type {
                // Null rows of a fixed-size list still occupy `size` child slots.
                let mut padded = Vec::new();
                for value in values {
                    match value {
                        Value::Array(items) if items.len() == *size as usize => padded.extend(items.iter().cloned()),
                        Value::Null => padded.extend(std::iter::repeat_n(Value::Null, *size as usize)),
                        other => return Err(format!("fixed list of {size} expected, found {other}")),
                    }
                }
                let child = build(field.data_type(), &padded)?;
                return Ok(Arc::new(
                    FixedSizeListArray::try_new(Arc::clone(field), *size, child, nulls_of(values))
                        .map_err(|e| e.to_string())?,
                ));
            }
            let child = build(field.data_type(), &elements)?;
            match data_type {
                DataType::List(_) => Arc::new(
                    GenericListArray::<i32>::try_new(
                        Arc::clone(field),
                        OffsetBuffer::from_lengths(lengths),
                        child,
                        nulls_of(values),
                    )
                    .map_err(|e| e.to_string())?,
                ),
                _ => Arc::new(
                    GenericListArray::<i64>::try_new(
                        Arc::clone(field),
                        OffsetBuffer::from_lengths(lengths),
                        child,
                        nulls_of(values),
                    )
                    .map_err(|e| e.to_string())?,
                ),
            }
        }
        DataType::Struct(fields) => {
            let mut children = Vec::new();
            for field in fields {
                let column: Vec<Value> =
                    values.iter().map(|v| v.get(field.name()).cloned().unwrap_or(Value::Null)).collect();
                children.push(build(field.data_type(), &column)?);
            }
            Arc::new(StructArray::try_new(fields.clone(), children, nulls_of(values)).map_err(|e| e.to_string())?)
        }
        DataType::Map(entries_field, _) => {
            let DataType::Struct(entry_fields) = entries_field.data_type() else {
                return Err("map entries must be a struct".into());
            };
            let (mut lengths, mut keys, mut items) = (Vec::new(), Vec::new(), Vec::new());
            for value in values {
                match value {
                    Value::Null => lengths.push(0),
                    Value::Array(pairs) => {
                        lengths.push(pairs.len());
                        for pair in pairs {
                            keys.push(pair[0].clone());
                            items.push(pair[1].clone());
                        }
                    }
                    other => return Err(format!("not a map: {other}")),
                }
            }
            let key_array = build(entry_fields[0].data_type(), &keys)?;
            let value_array = build(entry_fields[1].data_type(), &items)?;
            let entries = StructArray::try_new(entry_fields.clone(), vec![key_array, value_array], None)
                .map_err(|e| e.to_string())?;
            Arc::new(
                MapArray::try_new(
                    Arc::clone(entries_field),
                    OffsetBuffer::from_lengths(lengths),
                    entries,
                    nulls_of(values),
                    false,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("no builder for {other}")),
    };
    if array.len() != values.len() {
        return Err(format!("built {} values, expected {}", array.len(), values.len()));
    }
    Ok(array)
}

/// Lower-case hex of a 64-bit value hash, 16 digits.
pub fn hex64(value: u64) -> String {
    format!("{value:016x}")
}

/// Lower-case hex of a 128-bit row hash, 32 digits.
pub fn hex128(value: u128) -> String {
    format!("{value:032x}")
}
