//! Change sets: the inserts, updates and deletes a run found, and their change-feed encoding.
//!
//! A change set keeps one list of batches per [`ChangeKind`]. Inserts and updates carry full rows
//! (the new image); deletes carry at least the key columns. As one change feed, the batches are
//! stacked under one schema with an extra Utf8 column [`CHANGE_TYPE_COLUMN`] (`_change_type`)
//! holding `insert`, `update` or `delete` — the names Delta Lake's change data feed uses, so the
//! feed reads naturally next to a Delta table's. Columns a delete does not carry are null there.
//!
//! # Guarantees
//! - [`ChangeSet::to_feed`] followed by [`ChangeSet::from_feed`] gives back the same rows per kind.
//! - Counts are exact row counts of the batches.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name of the operation column of a change feed.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";

/// What happened to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The key is new.
    Insert,
    /// The key existed and its row changed.
    Update,
    /// The key is gone.
    Delete,
}

impl ChangeKind {
    /// Every kind, in feed order.
    pub const ALL: [ChangeKind; 3] = [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Delete];

    /// The value in the `_change_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "insert" => Ok(ChangeKind::Insert),
            "update" => Ok(ChangeKind::Update),
            "delete" => Ok(ChangeKind::Delete),
            other => {
                Err(Error::InvalidInput(format!("`{other}` is not a change type (expected insert, update or delete)")))
            }
        }
    }
}

/// Row counts of a change set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// Inserted rows.
    pub inserted: u64,
    /// Updated rows.
    pub updated: u64,
    /// Deleted rows.
    pub deleted: u64,
}

impl ChangeCounts {
    /// All changed rows.
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// The changes between two states of a table.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    inserts: Vec<RecordBatch>,
    updates: Vec<RecordBatch>,
    deletes: Vec<RecordBatch>,
}

impl ChangeSet {
    /// An empty change set.
    pub fn new() -> Self {
        ChangeSet::default()
    }

    /// Adds a batch of rows of one kind (empty batches are dropped).
    pub fn push(&mut self, kind: ChangeKind, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.batches_mut(kind).push(batch);
        }
    }

    /// The batches of one kind.
    pub fn batches(&self, kind: ChangeKind) -> &[RecordBatch] {
        match kind {
            ChangeKind::Insert => &self.inserts,
            ChangeKind::Update => &self.updates,
            ChangeKind::Delete => &self.deletes,
        }
    }

    fn batches_mut(&mut self, kind: ChangeKind) -> &mut Vec<RecordBatch> {
        match kind {
            ChangeKind::Insert => &mut self.inserts,
            ChangeKind::Update => &mut self.updates,
            ChangeKind::Delete => &mut self.deletes,
        }
    }

    /// Row counts per kind.
    pub fn counts(&self) -> ChangeCounts {
        let rows = |batches: &[RecordBatch]| batches.iter().map(|b| b.num_rows() as u64).sum();
        ChangeCounts { inserted: rows(&self.inserts), updated: rows(&self.updates), deleted: rows(&self.deletes) }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.counts().total() == 0
    }

    /// The change feed schema for rows of `row_schema`: every column nullable (deletes may carry
    /// only keys), then `_change_type`.
    pub fn feed_schema(row_schema: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> =
            row_schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        fields.push(Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, false));
        Arc::new(Schema::new(fields))
    }

    /// The changes as one feed under [`ChangeSet::feed_schema`] of `row_schema`, inserts first,
    /// then updates, then deletes. Columns missing from a batch are null.
    pub fn to_feed(&self, row_schema: &Schema) -> Result<Vec<RecordBatch>> {
        let schema = Self::feed_schema(row_schema);
        let mut feed = Vec::new();
        for kind in ChangeKind::ALL {
            for batch in self.batches(kind) {
                let rows = batch.num_rows();
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
                for field in row_schema.fields() {
                    match batch.column_by_name(field.name()) {
                        Some(column) if column.data_type() == field.data_type() => columns.push(Arc::clone(column)),
                        Some(column) => {
                            return Err(Error::InvalidInput(format!(
                                "{kind} batch column `{}` is {}, the feed expects {}",
                                field.name(),
                                column.data_type(),
                                field.data_type()
                            )));
                        }
                        None => columns.push(new_null_array(field.data_type(), rows)),
                    }
                }
                columns.push(Arc::new(StringArray::from(vec![kind.as_str(); rows])));
                feed.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
            }
        }
        Ok(feed)
    }

    /// Splits a change feed back into kinds; the `_change_type` column is dropped.
    pub fn from_feed(feed: &[RecordBatch]) -> Result<Self> {
        let mut changes = ChangeSet::new();
        for batch in feed {
            let schema = batch.schema();
            let index = schema
                .index_of(CHANGE_TYPE_COLUMN)
                .map_err(|_| Error::column_not_found(CHANGE_TYPE_COLUMN, schema.fields().iter().map(|f| f.name())))?;
            let ops = batch.column(index);
            let ops = ops.as_string_opt::<i32>().ok_or_else(|| {
                Error::InvalidInput(format!("`{CHANGE_TYPE_COLUMN}` must be Utf8, found {}", ops.data_type()))
            })?;
            let mut rows = batch.clone();
            rows.remove_column(index);
            for row in 0..ops.len() {
                if ops.is_null(row) {
                    return Err(Error::InvalidInput(format!("`{CHANGE_TYPE_COLUMN}` is null at row {row}")));
                }
                ops.value(row).parse::<ChangeKind>()?;
            }
            for kind in ChangeKind::ALL {
                let mask: BooleanArray = ops.iter().map(|op| Some(op == Some(kind.as_str()))).collect();
                changes.push(kind, filter_record_batch(&rows, &mask)?);
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Int64Array;

    use super::*;

    fn rows(ids: &[i64], names: &[&str]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            ("name", Arc::new(StringArray::from(names.to_vec())) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn feed_round_trip_with_key_only_deletes() {
        let mut changes = ChangeSet::new();
        changes.push(ChangeKind::Insert, rows(&[1, 2], &["a", "b"]));
        changes.push(ChangeKind::Update, rows(&[3], &["c"]));
        changes.push(
            ChangeKind::Delete,
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![4])) as ArrayRef)]).unwrap(),
        );
        assert_eq!(changes.counts(), ChangeCounts { inserted: 2, updated: 1, deleted: 1 });
        let schema = rows(&[], &[]).schema();
        let feed = changes.to_feed(&schema).unwrap();
        assert_eq!(feed.len(), 3);
        assert_eq!(feed[2].column(1).null_count(), 1, "a delete's non-key columns are null");
        let back = ChangeSet::from_feed(&feed).unwrap();
        assert_eq!(back.counts(), changes.counts());
        let inserted = back.batches(ChangeKind::Insert)[0]
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(inserted, vec![1, 2]);
    }

    #[test]
    fn unknown_change_type_is_an_error() {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            (CHANGE_TYPE_COLUMN, Arc::new(StringArray::from(vec!["upsert"])) as ArrayRef),
        ])
        .unwrap();
        let error = ChangeSet::from_feed(&[batch]).unwrap_err();
        assert!(error.to_string().contains("upsert"), "{error}");
    }
}
