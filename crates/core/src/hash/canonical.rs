//! The canonical value encoding of row-hash spec v1, value by value.
//!
//! Every value becomes `[tag, flag] ++ value bytes`: the type-family tag, `0` for null (nothing
//! follows) or `1` for a value, then the family's canonical bytes. Encodings are self-delimiting,
//! so nested values concatenate without separators. This is the reference implementation: the
//! column-wise fast paths in `column.rs` must produce the same bytes (a property test checks it).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowTimestampType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float16Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, OffsetSizeTrait, PrimitiveArray};
use arrow_buffer::i256;
use arrow_schema::{DataType, TimeUnit};

use crate::error::{Error, Result};
use crate::zone::Zone;

/// Type-family tags: the first byte of every encoded value.
pub(crate) mod tag {
    pub const NULL: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const FLOAT: u8 = 0x03;
    pub const DECIMAL: u8 = 0x04;
    pub const STRING: u8 = 0x05;
    pub const BINARY: u8 = 0x06;
    pub const DATE: u8 = 0x07;
    pub const TIMESTAMP: u8 = 0x08;
    pub const TIME: u8 = 0x09;
    pub const DURATION: u8 = 0x0A;
    pub const LIST: u8 = 0x10;
    pub const STRUCT: u8 = 0x11;
    pub const MAP: u8 = 0x12;
}

/// The flag byte after the tag.
pub(crate) const NULL_FLAG: u8 = 0;
pub(crate) const VALUE_FLAG: u8 = 1;

/// Nanoseconds per day, for `Date64` → days.
const MILLIS_PER_DAY: i64 = 86_400_000;

/// What the encoder needs besides the value: where it is (for errors) and the naive zone.
pub(crate) struct EncodeContext<'a> {
    pub column: &'a str,
    pub naive_zone: Option<&'a Zone>,
}

/// The type-family tag of a data type, or `None` when spec v1 has no encoding for it.
pub(crate) fn family_tag(data_type: &DataType) -> Option<u8> {
    use DataType as D;
    Some(match data_type {
        D::Null => tag::NULL,
        D::Boolean => tag::BOOLEAN,
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => tag::INTEGER,
        D::Float16 | D::Float32 | D::Float64 => tag::FLOAT,
        D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..) => tag::DECIMAL,
        D::Utf8 | D::LargeUtf8 | D::Utf8View => tag::STRING,
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => tag::BINARY,
        D::Date32 | D::Date64 => tag::DATE,
        D::Timestamp(..) => tag::TIMESTAMP,
        D::Time32(_) | D::Time64(_) => tag::TIME,
        D::Duration(_) => tag::DURATION,
        D::List(_) | D::LargeList(_) | D::FixedSizeList(..) | D::ListView(_) | D::LargeListView(_) => tag::LIST,
        D::Struct(_) => tag::STRUCT,
        D::Map(..) => tag::MAP,
        D::Dictionary(_, value) => return family_tag(value),
        _ => return None,
    })
}

/// A data type of family `family` (the null of any type of a family encodes the same).
pub(crate) fn representative_type(family: u8) -> DataType {
    use arrow_schema::{Field, TimeUnit};
    use std::sync::Arc;
    match family {
        tag::BOOLEAN => DataType::Boolean,
        tag::INTEGER => DataType::Int64,
        tag::FLOAT => DataType::Float64,
        tag::DECIMAL => DataType::Decimal128(38, 0),
        tag::STRING => DataType::Utf8,
        tag::BINARY => DataType::Binary,
        tag::DATE => DataType::Date32,
        tag::TIMESTAMP => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        tag::TIME => DataType::Time64(TimeUnit::Nanosecond),
        tag::DURATION => DataType::Duration(TimeUnit::Nanosecond),
        tag::LIST => DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
        tag::STRUCT => DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()),
        _ => DataType::Null,
    }
}

/// Checks that every part of `data_type` has an encoding, and that naive timestamps have a zone.
pub(crate) fn check_supported(column: &str, data_type: &DataType, naive_zone: Option<&Zone>) -> Result<()> {
    use DataType as D;
    let unsupported = || Error::UnsupportedType { column: column.to_owned(), data_type: data_type.clone() };
    if family_tag(data_type).is_none() {
        return Err(unsupported());
    }
    match data_type {
        D::Timestamp(_, None) if naive_zone.is_none() => Err(Error::NaiveTimestamp { column: column.to_owned() }),
        D::List(f) | D::LargeList(f) | D::FixedSizeList(f, _) | D::ListView(f) | D::LargeListView(f) => {
            check_supported(&format!("{column}[]"), f.data_type(), naive_zone)
        }
        D::Struct(fields) => fields
            .iter()
            .try_for_each(|f| check_supported(&format!("{column}.{}", f.name()), f.data_type(), naive_zone)),
        D::Map(entries, _) => check_supported(column, entries.data_type(), naive_zone),
        D::Dictionary(key, value) => {
            if key.is_dictionary_key_type() {
                check_supported(column, value, naive_zone)
            } else {
                Err(unsupported())
            }
        }
        _ => Ok(()),
    }
}

/// Canonical integer bytes: any width, signed or unsigned, as i128 little-endian.
#[inline]
pub(crate) fn integer_bytes(value: i128) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[0] = tag::INTEGER;
    out[1] = VALUE_FLAG;
    out[2..].copy_from_slice(&value.to_le_bytes());
    out
}

/// Canonical float bits: the exact f64 value, `-0.0` as `0.0`, every NaN as one quiet NaN.
#[inline]
pub(crate) fn canonical_f64_bits(value: f64) -> u64 {
    if value.is_nan() {
        0x7FF8_0000_0000_0000
    } else if value == 0.0 {
        0
    } else {
        value.to_bits()
    }
}

#[inline]
pub(crate) fn float_bytes(value: f64) -> [u8; 10] {
    let mut out = [0u8; 10];
    out[0] = tag::FLOAT;
    out[1] = VALUE_FLAG;
    out[2..].copy_from_slice(&canonical_f64_bits(value).to_le_bytes());
    out
}

#[inline]
pub(crate) fn timestamp_bytes(utc_nanos: i128) -> [u8; 18] {
    let mut out = [0u8; 18];
    out[0] = tag::TIMESTAMP;
    out[1] = VALUE_FLAG;
    out[2..].copy_from_slice(&utc_nanos.to_le_bytes());
    out
}

#[inline]
pub(crate) fn date_bytes(days: i64) -> [u8; 10] {
    let mut out = [0u8; 10];
    out[0] = tag::DATE;
    out[1] = VALUE_FLAG;
    out[2..].copy_from_slice(&days.to_le_bytes());
    out
}

#[inline]
pub(crate) fn boolean_bytes(value: bool) -> [u8; 3] {
    [tag::BOOLEAN, VALUE_FLAG, u8::from(value)]
}

/// Writes `[tag, 1, len as u64 LE, bytes]` (strings and binaries) into `out`.
#[inline]
pub(crate) fn write_bytes_value(family: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(family);
    out.push(VALUE_FLAG);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Decimal normalised so that equal numbers encode equally: trailing zeros of the unscaled value
/// are removed while lowering the scale (`1.50` → unscaled 15, scale 1); zero is (0, 0).
pub(crate) fn decimal_bytes(unscaled: i256, scale: i32) -> [u8; 38] {
    let (unscaled, scale) = normalise_decimal(unscaled, scale);
    let mut out = [0u8; 38];
    out[0] = tag::DECIMAL;
    out[1] = VALUE_FLAG;
    out[2..34].copy_from_slice(&unscaled.to_le_bytes());
    out[34..].copy_from_slice(&scale.to_le_bytes());
    out
}

fn normalise_decimal(unscaled: i256, scale: i32) -> (i256, i32) {
    if unscaled == i256::ZERO {
        return (i256::ZERO, 0);
    }
    // Most decimals fit in i128, where division is much cheaper.
    if let Some(mut small) = unscaled.to_i128() {
        let mut scale = scale;
        while small % 10 == 0 {
            small /= 10;
            scale -= 1;
        }
        return (i256::from_i128(small), scale);
    }
    let ten = i256::from_i128(10);
    let (mut big, mut scale) = (unscaled, scale);
    while big.wrapping_rem(ten) == i256::ZERO {
        big = big.wrapping_div(ten);
        scale -= 1;
    }
    (big, scale)
}

/// Multiplier from a time unit to nanoseconds.
#[inline]
pub(crate) fn nanos_per_unit(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Appends the canonical encoding of `array[row]` to `out`.
#[allow(clippy::too_many_lines, reason = "one arm per Arrow type keeps the whole spec in one place")]
pub(crate) fn encode_value(
    array: &dyn Array,
    row: usize,
    context: &EncodeContext<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    use DataType as D;
    let data_type = array.data_type();
    let Some(family) = family_tag(data_type) else {
        return Err(Error::UnsupportedType { column: context.column.to_owned(), data_type: data_type.clone() });
    };
    if let D::Dictionary(..) = data_type {
        let dictionary = array.as_any_dictionary();
        if dictionary.keys().is_null(row) {
            out.extend_from_slice(&[family, NULL_FLAG]);
            return Ok(());
        }
        let index = key_at(dictionary.keys(), row);
        return encode_value(dictionary.values().as_ref(), index, context, out);
    }
    if matches!(data_type, D::Null) || array.is_null(row) {
        out.extend_from_slice(&[family, NULL_FLAG]);
        return Ok(());
    }
    match data_type {
        D::Boolean => out.extend_from_slice(&boolean_bytes(array.as_boolean().value(row))),
        D::Int8 => out.extend_from_slice(&integer_bytes(array.as_primitive::<Int8Type>().value(row).into())),
        D::Int16 => out.extend_from_slice(&integer_bytes(array.as_primitive::<Int16Type>().value(row).into())),
        D::Int32 => out.extend_from_slice(&integer_bytes(array.as_primitive::<Int32Type>().value(row).into())),
        D::Int64 => out.extend_from_slice(&integer_bytes(array.as_primitive::<Int64Type>().value(row).into())),
        D::UInt8 => out.extend_from_slice(&integer_bytes(array.as_primitive::<UInt8Type>().value(row).into())),
        D::UInt16 => out.extend_from_slice(&integer_bytes(array.as_primitive::<UInt16Type>().value(row).into())),
        D::UInt32 => out.extend_from_slice(&integer_bytes(array.as_primitive::<UInt32Type>().value(row).into())),
        D::UInt64 => out.extend_from_slice(&integer_bytes(array.as_primitive::<UInt64Type>().value(row).into())),
        D::Float16 => out.extend_from_slice(&float_bytes(array.as_primitive::<Float16Type>().value(row).to_f64())),
        D::Float32 => out.extend_from_slice(&float_bytes(array.as_primitive::<Float32Type>().value(row).into())),
        D::Float64 => out.extend_from_slice(&float_bytes(array.as_primitive::<Float64Type>().value(row))),
        D::Decimal32(_, scale) => {
            let v = array.as_primitive::<Decimal32Type>().value(row);
            out.extend_from_slice(&decimal_bytes(i256::from_i128(v.into()), (*scale).into()));
        }
        D::Decimal64(_, scale) => {
            let v = array.as_primitive::<Decimal64Type>().value(row);
            out.extend_from_slice(&decimal_bytes(i256::from_i128(v.into()), (*scale).into()));
        }
        D::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            out.extend_from_slice(&decimal_bytes(i256::from_i128(v), (*scale).into()));
        }
        D::Decimal256(_, scale) => {
            let v = array.as_primitive::<Decimal256Type>().value(row);
            out.extend_from_slice(&decimal_bytes(v, (*scale).into()));
        }
        D::Utf8 => write_bytes_value(family, array.as_string::<i32>().value(row).as_bytes(), out),
        D::LargeUtf8 => write_bytes_value(family, array.as_string::<i64>().value(row).as_bytes(), out),
        D::Utf8View => write_bytes_value(family, array.as_string_view().value(row).as_bytes(), out),
        D::Binary => write_bytes_value(family, array.as_binary::<i32>().value(row), out),
        D::LargeBinary => write_bytes_value(family, array.as_binary::<i64>().value(row), out),
        D::BinaryView => write_bytes_value(family, array.as_binary_view().value(row), out),
        D::FixedSizeBinary(_) => write_bytes_value(family, array.as_fixed_size_binary().value(row), out),
        D::Date32 => out.extend_from_slice(&date_bytes(array.as_primitive::<Date32Type>().value(row).into())),
        D::Date64 => {
            let millis = array.as_primitive::<Date64Type>().value(row);
            out.extend_from_slice(&date_bytes(millis.div_euclid(MILLIS_PER_DAY)));
        }
        D::Timestamp(unit, zone) => {
            let raw = timestamp_raw(array, *unit, row);
            let nanos = match zone {
                Some(_) => i128::from(raw) * nanos_per_unit(*unit),
                None => naive_to_utc_nanos(raw, *unit, row, context)?,
            };
            out.extend_from_slice(&timestamp_bytes(nanos));
        }
        D::Time32(unit) | D::Time64(unit) => {
            let raw: i64 = match unit {
                TimeUnit::Second => array.as_primitive::<Time32SecondType>().value(row).into(),
                TimeUnit::Millisecond => array.as_primitive::<Time32MillisecondType>().value(row).into(),
                TimeUnit::Microsecond => array.as_primitive::<Time64MicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().value(row),
            };
            // Nanoseconds since midnight always fit in i64.
            let nanos = i128::from(raw) * nanos_per_unit(*unit);
            out.push(tag::TIME);
            out.push(VALUE_FLAG);
            out.extend_from_slice(&(nanos as i64).to_le_bytes());
        }
        D::Duration(unit) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
            };
            out.push(tag::DURATION);
            out.push(VALUE_FLAG);
            out.extend_from_slice(&(i128::from(raw) * nanos_per_unit(*unit)).to_le_bytes());
        }
        D::List(_) => encode_list(&array.as_list::<i32>().value(row), context, out)?,
        D::LargeList(_) => encode_list(&array.as_list::<i64>().value(row), context, out)?,
        D::FixedSizeList(..) => encode_list(&array.as_fixed_size_list().value(row), context, out)?,
        D::ListView(_) => encode_list(&list_view_value::<i32>(array, row), context, out)?,
        D::LargeListView(_) => encode_list(&list_view_value::<i64>(array, row), context, out)?,
        D::Struct(fields) => {
            let strukt = array.as_struct();
            let mut order: Vec<usize> = (0..fields.len()).collect();
            order.sort_by(|&a, &b| fields[a].name().as_bytes().cmp(fields[b].name().as_bytes()));
            out.push(tag::STRUCT);
            out.push(VALUE_FLAG);
            out.extend_from_slice(&(fields.len() as u64).to_le_bytes());
            for index in order {
                let name = fields[index].name();
                out.extend_from_slice(&(name.len() as u64).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                encode_value(strukt.column(index).as_ref(), row, context, out)?;
            }
        }
        D::Map(..) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(entries.len());
            for entry in 0..entries.len() {
                let (mut key, mut value) = (Vec::new(), Vec::new());
                encode_value(keys.as_ref(), entry, context, &mut key)?;
                encode_value(values.as_ref(), entry, context, &mut value)?;
                encoded.push((key, value));
            }
            encoded.sort_unstable();
            out.push(tag::MAP);
            out.push(VALUE_FLAG);
            out.extend_from_slice(&(encoded.len() as u64).to_le_bytes());
            for (key, value) in encoded {
                out.extend_from_slice(&key);
                out.extend_from_slice(&value);
            }
        }
        other => {
            return Err(Error::UnsupportedType { column: context.column.to_owned(), data_type: other.clone() });
        }
    }
    Ok(())
}

fn encode_list(elements: &ArrayRef, context: &EncodeContext<'_>, out: &mut Vec<u8>) -> Result<()> {
    out.push(tag::LIST);
    out.push(VALUE_FLAG);
    out.extend_from_slice(&(elements.len() as u64).to_le_bytes());
    for element in 0..elements.len() {
        encode_value(elements.as_ref(), element, context, out)?;
    }
    Ok(())
}

fn list_view_value<O: OffsetSizeTrait>(array: &dyn Array, row: usize) -> ArrayRef {
    array.as_list_view::<O>().value(row)
}

/// The dictionary key at `row` as an index into the values.
pub(crate) fn key_at(keys: &dyn Array, row: usize) -> usize {
    use DataType as D;
    match keys.data_type() {
        D::Int8 => keys.as_primitive::<Int8Type>().value(row) as usize,
        D::Int16 => keys.as_primitive::<Int16Type>().value(row) as usize,
        D::Int32 => keys.as_primitive::<Int32Type>().value(row) as usize,
        D::Int64 => keys.as_primitive::<Int64Type>().value(row) as usize,
        D::UInt8 => keys.as_primitive::<UInt8Type>().value(row) as usize,
        D::UInt16 => keys.as_primitive::<UInt16Type>().value(row) as usize,
        D::UInt32 => keys.as_primitive::<UInt32Type>().value(row) as usize,
        // Arrow validates dictionary keys on construction, so only the types above occur.
        _ => keys.as_primitive::<UInt64Type>().value(row) as usize,
    }
}

/// The raw stored value of a timestamp array of any unit.
#[inline]
pub(crate) fn timestamp_raw(array: &dyn Array, unit: TimeUnit, row: usize) -> i64 {
    fn raw<T: ArrowTimestampType>(array: &dyn Array, row: usize) -> i64 {
        let typed: &PrimitiveArray<T> = array.as_primitive::<T>();
        typed.value(row)
    }
    match unit {
        TimeUnit::Second => raw::<TimestampSecondType>(array, row),
        TimeUnit::Millisecond => raw::<TimestampMillisecondType>(array, row),
        TimeUnit::Microsecond => raw::<TimestampMicrosecondType>(array, row),
        TimeUnit::Nanosecond => raw::<TimestampNanosecondType>(array, row),
    }
}

/// A naive (zone-less) timestamp read as local time in the declared zone, as UTC nanoseconds.
pub(crate) fn naive_to_utc_nanos(raw: i64, unit: TimeUnit, row: usize, context: &EncodeContext<'_>) -> Result<i128> {
    let Some(zone) = context.naive_zone else {
        return Err(Error::NaiveTimestamp { column: context.column.to_owned() });
    };
    zone.local_to_utc_nanos(i128::from(raw) * nanos_per_unit(unit), context.column, row)
}
