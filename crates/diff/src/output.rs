//! Where a run's changes go: three folders, one change feed, or merged into the target.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use highwater_core::change::{CHANGE_TYPE_COLUMN, ChangeKind};
use highwater_core::hash::HashOptions;
use highwater_core::key::{KeyHasher, KeyOptions};
use highwater_store::DataFile;
use highwater_store::Transaction;
use highwater_store::write::{ChangeOp, MergeOptions, MergeWriter, ParquetSink, SinkOptions, conform};

use crate::error::Result;
use crate::loader::Output;

pub use highwater_core::diff::CHANGED_COLUMNS_COLUMN;

/// Writes the changes of a run.
pub(crate) enum ChangeWriter {
    Folders {
        inserts: Box<ParquetSink>,
        updates: Box<ParquetSink>,
        deletes: Box<ParquetSink>,
        update_schema: SchemaRef,
    },
    Feed {
        sink: Box<ParquetSink>,
        schema: SchemaRef,
    },
    Apply {
        merge: Box<MergeWriter>,
        schema: SchemaRef,
    },
}

/// The schema of a change feed over rows of `schema`.
pub(crate) fn feed_schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    fields.push(Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The schema of updates: the rows, and the changed columns when asked for.
pub(crate) fn update_schema(schema: &Schema, changed_columns: bool) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    if changed_columns {
        fields.push(Field::new(
            CHANGED_COLUMNS_COLUMN,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

impl ChangeWriter {
    /// A writer into `transaction` of changes to rows of `schema` keyed by `key` (`key_schema`).
    #[allow(clippy::too_many_arguments, reason = "the run's settings, passed down once")]
    pub(crate) fn new(
        output: Output,
        transaction: &Transaction,
        schema: &SchemaRef,
        key_schema: &SchemaRef,
        key: &KeyHasher,
        sink: &SinkOptions,
        changed_columns: bool,
        budget: usize,
    ) -> Result<Self> {
        let target = transaction.file_target();
        let sink_for = |schema: SchemaRef, folder: &str| -> Result<Box<ParquetSink>> {
            Ok(Box::new(ParquetSink::new(target.clone(), schema, sink.clone())?.with_folder(folder)))
        };
        Ok(match output {
            Output::Folders => {
                let update_schema = update_schema(schema, changed_columns);
                ChangeWriter::Folders {
                    inserts: sink_for(Arc::clone(schema), "inserts")?,
                    updates: sink_for(Arc::clone(&update_schema), "updates")?,
                    deletes: sink_for(Arc::clone(key_schema), "deletes")?,
                    update_schema,
                }
            }
            Output::ChangeFeed => {
                let schema = feed_schema(schema);
                ChangeWriter::Feed { sink: sink_for(Arc::clone(&schema), "changes")?, schema }
            }
            Output::Apply => {
                let options = MergeOptions { memory_budget_rows: budget, sink: sink.clone(), version_column: None };
                let key =
                    KeyHasher::new(key.columns(), &KeyOptions { allow_null_keys: true, hash: HashOptions::default() })?;
                let merge = MergeWriter::new(transaction, Arc::clone(schema), key, options)?.with_unique_keys();
                ChangeWriter::Apply { merge: Box::new(merge), schema: Arc::clone(schema) }
            }
        })
    }

    /// Writes changes of `kind`: full rows for inserts and updates (updates with the changed
    /// columns when asked for), key columns for deletes.
    pub(crate) async fn write(&mut self, kind: ChangeKind, rows: &RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        match self {
            ChangeWriter::Folders { inserts, updates, deletes, update_schema } => match kind {
                ChangeKind::Insert => inserts.write(&conform(rows, inserts.schema())?).await?,
                ChangeKind::Update => updates.write(&conform(rows, update_schema)?).await?,
                ChangeKind::Delete => deletes.write(&conform(rows, deletes.schema())?).await?,
            },
            ChangeWriter::Feed { sink, schema } => {
                let mut columns: Vec<ArrayRef> = Vec::new();
                let rows =
                    conform(rows, &Arc::new(Schema::new(schema.fields()[..schema.fields().len() - 1].to_vec())))?;
                columns.extend(rows.columns().iter().cloned());
                columns.push(Arc::new(StringArray::from(vec![kind.as_str(); rows.num_rows()])));
                sink.write(&RecordBatch::try_new(Arc::clone(schema), columns)?).await?;
            }
            ChangeWriter::Apply { merge, schema } => match kind {
                ChangeKind::Insert | ChangeKind::Update => merge.push(ChangeOp::Upsert, conform(rows, schema)?).await?,
                ChangeKind::Delete => merge.push(ChangeOp::Delete, rows.clone()).await?,
            },
        }
        Ok(())
    }

    /// Finishes the files and registers them with the transaction (a change set replaces the
    /// previous run's; an applied merge replaces the files it rewrote).
    pub(crate) async fn finish(self, transaction: &mut Transaction) -> Result<Vec<DataFile>> {
        let files = match self {
            ChangeWriter::Folders { inserts, updates, deletes, .. } => {
                let mut files = (*inserts).finish().await?;
                files.extend((*updates).finish().await?);
                files.extend((*deletes).finish().await?);
                files
            }
            ChangeWriter::Feed { sink, .. } => (*sink).finish().await?,
            ChangeWriter::Apply { merge, .. } => {
                merge.finish(transaction).await?;
                return Ok(transaction.added().to_vec());
            }
        };
        let previous: Vec<String> = transaction.base().files.keys().cloned().collect();
        for path in previous {
            transaction.remove_file(&path)?;
        }
        for file in &files {
            transaction.add_file(file.clone())?;
        }
        Ok(files)
    }
}
