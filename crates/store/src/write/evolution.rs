//! Target schema evolution: what a writer does when incoming rows do not match the table.
//!
//! | policy | extra incoming columns | missing nullable columns | mistyped or missing non-null |
//! |---|---|---|---|
//! | `fail` (default) | error | nulls | error |
//! | `add_nullable` | added to the table (nullable); older files read them as nulls | nulls | error |
//! | `ignore` | dropped | nulls | error |
//!
//! The table schema is kept per version (every commit carries it).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What to do with incoming columns the table does not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// Refuse them.
    #[default]
    Fail,
    /// Add them to the table as nullable columns.
    AddNullable,
    /// Drop them.
    Ignore,
}

/// The table schema after accepting rows of `incoming` under `policy`; `source` names the rows
/// in errors.
pub fn reconcile(table: &Schema, incoming: &Schema, policy: SchemaEvolution, source: &str) -> Result<SchemaRef> {
    let mismatch = |column: &str, detail: String| Error::SchemaMismatch {
        file: source.to_owned(),
        column: column.to_owned(),
        detail,
    };
    for field in table.fields() {
        match incoming.field_with_name(field.name()) {
            Ok(found) if compatible(found.data_type(), field.data_type()) => {}
            Ok(found) => {
                return Err(mismatch(
                    field.name(),
                    format!("the table has {}, the rows have {}", field.data_type(), found.data_type()),
                ));
            }
            Err(_) if field.is_nullable() => {}
            Err(_) => {
                return Err(mismatch(
                    field.name(),
                    format!("the rows lack the table's non-null column ({})", field.data_type()),
                ));
            }
        }
    }
    let extra: Vec<&Field> =
        incoming.fields().iter().map(AsRef::as_ref).filter(|f| table.field_with_name(f.name()).is_err()).collect();
    if extra.is_empty() {
        return Ok(Arc::new(table.clone()));
    }
    match policy {
        SchemaEvolution::Ignore => Ok(Arc::new(table.clone())),
        SchemaEvolution::Fail => Err(mismatch(
            extra[0].name(),
            format!(
                "the rows have columns the table lacks ({}); set schema evolution to `add_nullable` or `ignore`",
                extra.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
        SchemaEvolution::AddNullable => {
            let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(extra.into_iter().map(|f| f.clone().with_nullable(true)));
            Ok(Arc::new(Schema::new_with_metadata(fields, table.metadata().clone())))
        }
    }
}

/// Whether `from` can be written as `to` without changing values (string and binary layouts).
fn compatible(from: &DataType, to: &DataType) -> bool {
    use DataType as D;
    let strings = |t: &DataType| matches!(t, D::Utf8 | D::LargeUtf8 | D::Utf8View);
    let binaries = |t: &DataType| matches!(t, D::Binary | D::LargeBinary | D::BinaryView);
    let value = |t: &DataType| match t {
        D::Dictionary(_, value) => value.as_ref().clone(),
        other => other.clone(),
    };
    let (from, to) = (value(from), value(to));
    from == to || (strings(&from) && strings(&to)) || (binaries(&from) && binaries(&to))
}

/// `batch` under `schema`: columns by name, cast between layouts, nulls for missing nullable
/// columns, extra columns dropped.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().as_ref() == schema.as_ref() {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            Ok(match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Arc::clone(column),
                Some(column) => arrow_cast::cast(column, field.data_type())?,
                None => new_null_array(field.data_type(), rows),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(fields.iter().map(|(n, t, null)| Field::new(*n, t.clone(), *null)).collect::<Vec<_>>())
    }

    #[test]
    fn policies() {
        let table = schema(&[("id", DataType::Int64, false), ("note", DataType::Utf8, true)]);
        let wider = schema(&[("id", DataType::Int64, false), ("extra", DataType::Int32, false)]);
        let error = reconcile(&table, &wider, SchemaEvolution::Fail, "batch").unwrap_err();
        assert!(error.to_string().contains("extra"), "{error}");
        let added = reconcile(&table, &wider, SchemaEvolution::AddNullable, "batch").unwrap();
        assert_eq!(added.field(2).name(), "extra");
        assert!(added.field(2).is_nullable());
        assert_eq!(reconcile(&table, &wider, SchemaEvolution::Ignore, "batch").unwrap().as_ref(), &table);
        let mistyped = schema(&[("id", DataType::Utf8, false)]);
        let error = reconcile(&table, &mistyped, SchemaEvolution::AddNullable, "f.parquet").unwrap_err();
        assert!(error.to_string().contains("f.parquet") && error.to_string().contains("`id`"), "{error}");
        let views = schema(&[("id", DataType::Int64, false), ("note", DataType::Utf8View, true)]);
        assert!(reconcile(&table, &views, SchemaEvolution::Fail, "x").is_ok());
    }
}
