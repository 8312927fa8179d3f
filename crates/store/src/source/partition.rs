//! Hive partition values (`year=2024/month=01/`), typed.
//!
//! A value is typed by the table schema when the column is in it; otherwise it is inferred:
//! an integer, a `YYYY-MM-DD` date, or a string. `__HIVE_DEFAULT_PARTITION__` is null.

use std::sync::Arc;

use arrow_array::{ArrayRef, Date32Array, Int64Array, StringArray, new_null_array};
use arrow_schema::{ArrowError, DataType};
use chrono::NaiveDate;

/// A typed partition value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartitionValue {
    /// `__HIVE_DEFAULT_PARTITION__`.
    Null,
    /// An integer.
    Int(i64),
    /// A date, as days since the epoch.
    Date(i32),
    /// Anything else.
    String(String),
}

/// Infers the type of a partition value from its text.
pub fn parse_partition_value(text: Option<&str>) -> PartitionValue {
    let Some(text) = text else { return PartitionValue::Null };
    if let Ok(value) = text.parse::<i64>() {
        return PartitionValue::Int(value);
    }
    if text.len() == 10 {
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return PartitionValue::Date(date.signed_duration_since(NaiveDate::default()).num_days() as i32);
        }
    }
    PartitionValue::String(text.to_owned())
}

/// The data type a partition column gets when the table schema does not say.
pub(crate) fn inferred_type(values: &[Option<&str>]) -> DataType {
    let parsed: Vec<PartitionValue> = values.iter().map(|v| parse_partition_value(*v)).collect();
    if parsed.iter().all(|v| matches!(v, PartitionValue::Int(_) | PartitionValue::Null)) {
        DataType::Int64
    } else if parsed.iter().all(|v| matches!(v, PartitionValue::Date(_) | PartitionValue::Null)) {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

/// A constant column of `rows` copies of a partition value, as `data_type`.
pub(crate) fn constant_column(value: Option<&str>, data_type: &DataType, rows: usize) -> Result<ArrayRef, ArrowError> {
    let Some(text) = value else { return Ok(new_null_array(data_type, rows)) };
    let column: ArrayRef = match parse_partition_value(Some(text)) {
        PartitionValue::Int(v) if matches!(data_type, DataType::Int64) => Arc::new(Int64Array::from_value(v, rows)),
        PartitionValue::Date(v) if matches!(data_type, DataType::Date32) => Arc::new(Date32Array::from_value(v, rows)),
        _ => {
            let strings: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(text, rows)));
            return arrow_cast::cast(&strings, data_type);
        }
    };
    Ok(column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values() {
        assert_eq!(parse_partition_value(Some("2024")), PartitionValue::Int(2024));
        assert_eq!(parse_partition_value(Some("01")), PartitionValue::Int(1));
        assert_eq!(parse_partition_value(Some("1970-01-02")), PartitionValue::Date(1));
        assert_eq!(parse_partition_value(Some("eu-west")), PartitionValue::String("eu-west".into()));
        assert_eq!(parse_partition_value(None), PartitionValue::Null);
        assert_eq!(inferred_type(&[Some("2024"), None]), DataType::Int64);
        assert_eq!(inferred_type(&[Some("2024"), Some("x")]), DataType::Utf8);
        let column = constant_column(Some("2024"), &DataType::Int32, 3).unwrap();
        assert_eq!(column.data_type(), &DataType::Int32);
        assert_eq!(column.len(), 3);
    }
}
