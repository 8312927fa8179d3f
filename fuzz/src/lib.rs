//! Builders of arbitrary Arrow data for the fuzz targets.
//!
//! `arbitrary_batch` turns fuzzer bytes into a valid `RecordBatch` of every type family the
//! row-hash spec knows (and a few it refuses), with nulls anywhere and extreme values, so the
//! targets exercise the hashers on what real files can hold.

use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use highwater_core::arrow::array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    StringDictionaryBuilder,
};
use highwater_core::arrow::array::types::{Int32Type, *};
use highwater_core::arrow::array::{
    ArrayRef, IntervalDayTimeArray, NullArray, PrimitiveArray, RecordBatch, StructArray,
};
use highwater_core::arrow::buffer::{IntervalDayTime, i256};
use highwater_core::arrow::cast::cast;
use highwater_core::arrow::schema::{DataType, Field};

/// The zones a naive timestamp may be read in.
pub const ZONES: [&str; 4] = ["UTC", "+02:00", "-09:30", "Europe/Berlin"];

fn optional<T>(u: &mut Unstructured<'_>, value: impl FnOnce(&mut Unstructured<'_>) -> Result<T>) -> Result<Option<T>> {
    if u.ratio(1, 5)? { Ok(None) } else { value(u).map(Some) }
}

fn primitive<T>(u: &mut Unstructured<'_>, rows: usize) -> Result<ArrayRef>
where
    T: ArrowPrimitiveType,
    T::Native: for<'a> arbitrary::Arbitrary<'a>,
{
    let values: Vec<Option<T::Native>> = (0..rows).map(|_| optional(u, |u| u.arbitrary())).collect::<Result<_>>()?;
    Ok(Arc::new(values.into_iter().collect::<PrimitiveArray<T>>()))
}

fn strings(u: &mut Unstructured<'_>, rows: usize) -> Result<Vec<Option<String>>> {
    (0..rows).map(|_| optional(u, |u| u.arbitrary::<String>())).collect()
}

/// An arbitrary array of `rows` values; `depth` bounds nesting.
pub fn arbitrary_array(u: &mut Unstructured<'_>, rows: usize, depth: u8) -> Result<ArrayRef> {
    let choices = if depth == 0 { 27 } else { 31 };
    Ok(match u.choose_index(choices)? {
        0 => primitive::<Int8Type>(u, rows)?,
        1 => primitive::<Int16Type>(u, rows)?,
        2 => primitive::<Int32Type>(u, rows)?,
        3 => primitive::<Int64Type>(u, rows)?,
        4 => primitive::<UInt8Type>(u, rows)?,
        5 => primitive::<UInt32Type>(u, rows)?,
        6 => primitive::<UInt64Type>(u, rows)?,
        7 => primitive::<Float32Type>(u, rows)?,
        8 => primitive::<Float64Type>(u, rows)?,
        9 => {
            let mut builder = BooleanBuilder::new();
            for _ in 0..rows {
                builder.append_option(optional(u, |u| u.arbitrary())?);
            }
            Arc::new(builder.finish())
        }
        10 => {
            let mut builder = StringBuilder::new();
            for value in strings(u, rows)? {
                builder.append_option(value);
            }
            Arc::new(builder.finish())
        }
        11 | 12 => {
            let mut builder = StringBuilder::new();
            for value in strings(u, rows)? {
                builder.append_option(value);
            }
            let plain: ArrayRef = Arc::new(builder.finish());
            let layout = if u.arbitrary()? { DataType::Utf8View } else { DataType::LargeUtf8 };
            cast(&plain, &layout).expect("string layouts cast")
        }
        13 => {
            let mut builder = StringDictionaryBuilder::<Int32Type>::new();
            for value in strings(u, rows)? {
                builder.append_option(value);
            }
            Arc::new(builder.finish())
        }
        14 => {
            let mut builder = BinaryBuilder::new();
            for _ in 0..rows {
                builder.append_option(optional(u, |u| u.arbitrary::<Vec<u8>>())?);
            }
            Arc::new(builder.finish())
        }
        15 => {
            let mut builder = FixedSizeBinaryBuilder::new(3);
            for _ in 0..rows {
                match optional(u, |u| u.arbitrary::<[u8; 3]>())? {
                    Some(bytes) => builder.append_value(bytes).expect("width 3"),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        16 => primitive::<Date32Type>(u, rows)?,
        17 => primitive::<Date64Type>(u, rows)?,
        18 => {
            let raw = primitive::<Int64Type>(u, rows)?;
            let unit = [
                highwater_core::arrow::schema::TimeUnit::Second,
                highwater_core::arrow::schema::TimeUnit::Millisecond,
                highwater_core::arrow::schema::TimeUnit::Microsecond,
                highwater_core::arrow::schema::TimeUnit::Nanosecond,
            ][u.choose_index(4)?];
            let zone = if u.arbitrary()? {
                None
            } else {
                Some(Arc::from(*u.choose(&["UTC", "+05:45", "America/New_York"])?))
            };
            cast(&raw, &DataType::Timestamp(unit, zone)).expect("int64 to timestamp")
        }
        19 => primitive::<Time64NanosecondType>(u, rows)?,
        20 => primitive::<DurationMillisecondType>(u, rows)?,
        21 => {
            let values: Vec<Option<i128>> = (0..rows).map(|_| optional(u, |u| u.arbitrary())).collect::<Result<_>>()?;
            let precision = u.int_in_range(1..=38)?;
            let scale = u.int_in_range(-10..=i8::try_from(precision).unwrap_or(38))?;
            // Values beyond the precision are still representable; arrow only validates on demand.
            Arc::new(
                values
                    .into_iter()
                    .collect::<PrimitiveArray<Decimal128Type>>()
                    .with_data_type(DataType::Decimal128(precision, scale)),
            )
        }
        22 => {
            let values: Vec<Option<i256>> = (0..rows)
                .map(|_| optional(u, |u| Ok(i256::from_parts(u.arbitrary()?, u.arbitrary()?))))
                .collect::<Result<_>>()?;
            Arc::new(
                values
                    .into_iter()
                    .collect::<PrimitiveArray<Decimal256Type>>()
                    .with_data_type(DataType::Decimal256(76, u.int_in_range(-5..=76)?)),
            )
        }
        23 => Arc::new(NullArray::new(rows)),
        24 => {
            let wide = primitive::<Float32Type>(u, rows)?;
            cast(&wide, &DataType::Float16).expect("float32 to float16")
        }
        // An interval: a type the spec refuses, which must be a clean error.
        25 => {
            let values: Vec<Option<IntervalDayTime>> = (0..rows)
                .map(|_| optional(u, |u| Ok(IntervalDayTime::new(u.arbitrary()?, u.arbitrary()?))))
                .collect::<Result<_>>()?;
            Arc::new(values.into_iter().collect::<IntervalDayTimeArray>())
        }
        26 => primitive::<UInt16Type>(u, rows)?,
        27 => {
            let mut builder = ListBuilder::new(Int64Builder::new());
            for _ in 0..rows {
                let items = optional(u, |u| u.arbitrary::<Vec<Option<i64>>>())?;
                builder.append_option(items);
            }
            Arc::new(builder.finish())
        }
        28 => {
            let mut builder = ListBuilder::new(StringBuilder::new());
            for _ in 0..rows {
                match optional(u, |u| u.arbitrary::<Vec<Option<String>>>())? {
                    Some(items) => {
                        for item in items {
                            builder.values().append_option(item);
                        }
                        builder.append(true);
                    }
                    None => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
        29 => {
            let a = arbitrary_array(u, rows, depth - 1)?;
            let b = arbitrary_array(u, rows, depth - 1)?;
            let fields =
                vec![Field::new("b", b.data_type().clone(), true), Field::new("a", a.data_type().clone(), true)];
            let nulls: Vec<bool> = (0..rows).map(|_| u.ratio(4, 5)).collect::<Result<_>>()?;
            Arc::new(
                StructArray::try_new(fields.into(), vec![b, a], Some(nulls.into())).expect("children of equal length"),
            )
        }
        _ => {
            let mut builder = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
            for _ in 0..rows {
                match optional(u, |u| u.arbitrary::<Vec<(String, Option<i64>)>>())? {
                    Some(entries) => {
                        for (key, value) in entries {
                            builder.keys().append_value(key);
                            builder.values().append_option(value);
                        }
                        builder.append(true).expect("map entry");
                    }
                    None => builder.append(false).expect("null map"),
                }
            }
            Arc::new(builder.finish())
        }
    })
}

/// An arbitrary batch of up to 6 columns and 64 rows; column names may repeat across calls but
/// not within a batch.
pub fn arbitrary_batch(u: &mut Unstructured<'_>) -> Result<RecordBatch> {
    let rows = u.int_in_range(0..=64)?;
    let columns = u.int_in_range(0..=6)?;
    let mut arrays: Vec<(String, ArrayRef)> = Vec::new();
    for index in 0..columns {
        let name: String = if u.arbitrary()? { u.arbitrary()? } else { format!("c{index}") };
        if arrays.iter().any(|(existing, _)| *existing == name) {
            continue;
        }
        arrays.push((name, arbitrary_array(u, rows, 2)?));
    }
    if arrays.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(highwater_core::arrow::schema::Schema::empty())));
    }
    Ok(RecordBatch::try_from_iter(arrays).expect("columns of equal length"))
}
