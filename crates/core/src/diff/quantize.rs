//! Quantisation: values rounded before hashing, so that changes below a resolution are no
//! changes. The rules are part of a snapshot index: a later run cannot compare under others.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::watermark::TimestampUnit;

/// Per-column rounding applied before hashing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quantize {
    /// Float columns rounded to this many decimal places (half away from zero).
    pub decimals: BTreeMap<String, i32>,
    /// Timestamp columns truncated (towards the past) to this unit.
    pub timestamps: BTreeMap<String, TimestampUnit>,
}

impl Quantize {
    /// Whether no column is quantised.
    pub fn is_empty(&self) -> bool {
        self.decimals.is_empty() && self.timestamps.is_empty()
    }

    /// `batch` with its quantised columns rounded (other columns shared, not copied).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.is_empty() {
            return Ok(batch.clone());
        }
        let schema = batch.schema();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (index, field) in schema.fields().iter().enumerate() {
            if let Some(decimals) = self.decimals.get(field.name()) {
                columns[index] = round(&columns[index], *decimals, field.name())?;
            }
            if let Some(unit) = self.timestamps.get(field.name()) {
                columns[index] = truncate(&columns[index], *unit, field.name())?;
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

fn round(array: &ArrayRef, decimals: i32, column: &str) -> Result<ArrayRef> {
    let scale = 10f64.powi(decimals);
    // -0.0 rounds to 0.0, like any other value of the same magnitude.
    let round = |v: f64| {
        let rounded = (v * scale).round() / scale;
        if rounded == 0.0 { 0.0 } else { rounded }
    };
    Ok(match array.data_type() {
        DataType::Float64 => {
            let values: Float64Array = array.as_primitive::<Float64Type>().unary(round);
            Arc::new(values)
        }
        DataType::Float32 => {
            let values: Float32Array = array.as_primitive::<Float32Type>().unary(|v| round(f64::from(v)) as f32);
            Arc::new(values)
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "cannot round column `{column}` of type {other} to decimals: only float columns"
            )));
        }
    })
}

fn truncate(array: &ArrayRef, unit: TimestampUnit, column: &str) -> Result<ArrayRef> {
    let DataType::Timestamp(own, zone) = array.data_type() else {
        return Err(Error::InvalidInput(format!(
            "cannot truncate column `{column}` of type {} to a time unit: only timestamp columns",
            array.data_type()
        )));
    };
    let per_second = |unit: &TimeUnit| -> i64 {
        match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        }
    };
    let target: TimeUnit = unit.into();
    let step = (per_second(own) / per_second(&target)).max(1);
    let data = array.to_data();
    let values = PrimitiveArray::<arrow_array::types::Int64Type>::from(
        data.clone().into_builder().data_type(DataType::Int64).build()?,
    );
    let truncated = values.unary::<_, arrow_array::types::Int64Type>(|v| v - v.rem_euclid(step));
    let data = truncated.to_data().into_builder().data_type(DataType::Timestamp(*own, zone.clone())).build()?;
    Ok(arrow_array::make_array(data))
}

#[cfg(test)]
mod tests {
    use arrow_array::TimestampMillisecondArray;

    use super::*;

    #[test]
    fn floats_round_and_timestamps_truncate() {
        let batch = RecordBatch::try_from_iter([
            ("x", Arc::new(Float64Array::from(vec![Some(1.004), Some(-0.001), None])) as ArrayRef),
            ("t", Arc::new(TimestampMillisecondArray::from(vec![Some(1_999), Some(-1), None])) as ArrayRef),
        ])
        .unwrap();
        let rules = Quantize {
            decimals: [("x".to_owned(), 2)].into_iter().collect(),
            timestamps: [("t".to_owned(), TimestampUnit::Second)].into_iter().collect(),
        };
        let out = rules.apply(&batch).unwrap();
        let x = out.column(0).as_primitive::<Float64Type>();
        assert_eq!((x.value(0), x.value(1).to_bits(), x.is_null(2)), (1.0, 0.0f64.to_bits(), true));
        let t = out.column(1).as_primitive::<arrow_array::types::TimestampMillisecondType>();
        assert_eq!((t.value(0), t.value(1), t.is_null(2)), (1_000, -1_000, true));
    }
}
