//! The three operations, on bytes: diff two snapshots, index one, diff one against an index.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use highwater_core::change::{ChangeKind, ChangeSet};
use highwater_core::diff::{
    CHANGED_COLUMNS_COLUMN, Compare, DiffCounts, SnapshotIndex, changed_columns_type, diff_against_index_with,
    diff_snapshots_with,
};
use highwater_core::hash::family_of;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::input::{Format, Snapshot, decode, infer_csv_types};
use crate::options::{DiffOptions, IndexOptions, IpcFormat, OutputShape};

/// Where a long call is: `stage` (`"read previous"`, `"read current"`, `"diff"`, `"write"`),
/// with rows (or batches) done of a total (0 when unknown).
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    /// The stage.
    pub stage: &'static str,
    /// Done so far.
    pub done: u64,
    /// The total, when known; else 0.
    pub total: u64,
}

/// A column whose presence or type differs between the snapshots (it is not compared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaChange {
    /// The column.
    pub column: String,
    /// `added`, `removed` or `type_changed`.
    pub change: &'static str,
    /// Its type before, if it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Its type after, if it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What a diff returns.
#[derive(Clone, Debug)]
pub struct DiffOutput {
    /// How many rows were compared and changed.
    pub counts: DiffCounts,
    /// Per compared column, how many updates changed it.
    pub changed_columns: BTreeMap<String, u64>,
    /// Columns added, removed or retyped (not compared).
    pub schema_changes: Vec<SchemaChange>,
    /// The input formats (`previous` is `None` against an index).
    pub formats: (Option<Format>, Format),
    /// The change set as Arrow IPC: `("changes", feed)` or inserts, updates and deletes.
    pub tables: Vec<(&'static str, Vec<u8>)>,
    /// The current snapshot's index, when asked for.
    pub index: Option<Vec<u8>>,
    /// The first changes (inserts, then updates, then deletes) as display strings, when asked
    /// for (`preview`).
    pub preview: Vec<serde_json::Value>,
    /// The columns of the preview rows, in table order (JSON objects do not keep an order).
    pub preview_columns: Vec<String>,
}

impl DiffOutput {
    /// The IPC bytes of table `name`.
    pub fn table(&self, name: &str) -> Option<&[u8]> {
        self.tables.iter().find(|(n, _)| *n == name).map(|(_, bytes)| bytes.as_slice())
    }
}

/// Diffs two snapshots (Parquet, Arrow IPC or CSV bytes) by key.
pub fn diff(
    previous: Vec<u8>,
    current: Vec<u8>,
    options: &DiffOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DiffOutput> {
    let compare = &options.compare;
    compare.check_key()?;
    let (previous, current) = (Bytes::from(previous), Bytes::from(current));
    let (old, new) = decode_pair(compare, previous, current, progress)?;
    let common = Schema::new(
        old.schema
            .fields()
            .iter()
            .filter(|f| new.schema.field_with_name(f.name()).is_ok())
            .cloned()
            .collect::<Vec<_>>(),
    );
    let tolerance: Vec<_> = options
        .output
        .tolerance
        .iter()
        .filter(|(column, _)| common.field_with_name(column).is_ok())
        .map(|(column, tolerance)| (column.clone(), *tolerance))
        .collect();
    let tolerant: Vec<String> = tolerance.iter().map(|(c, _)| c.clone()).collect();
    let spec = compare.spec(&common, &tolerant)?;
    let rules = Compare { tolerance, changed_columns: compare.column_hashes() };
    progress(&Progress { stage: "diff", done: 0, total: new.rows() });
    let (changes, counts, index) = diff_snapshots_with(&spec, &old.batches, &new.batches, &rules)?;
    let index = if options.output.index.unwrap_or(false) { Some(index.to_bytes()?) } else { None };
    let schema_changes = schema_changes(&old.schema, &new.schema);
    finish(&changes, counts, &new.schema, &spec.key, rules.changed_columns, options, index, progress).map(|mut out| {
        out.schema_changes = schema_changes;
        out.formats = (Some(old.format), new.format);
        out
    })
}

/// The snapshot index of a snapshot: the bytes native `highwater-diff` stores for the same rows
/// and options.
pub fn snapshot_index(bytes: Vec<u8>, options: &IndexOptions, progress: &mut dyn FnMut(&Progress)) -> Result<Vec<u8>> {
    options.check_key()?;
    let types = declared_types(options)?;
    let snapshot = decode("snapshot", Bytes::from(bytes), types.as_ref(), options.batch_size(), &mut |done, total| {
        progress(&Progress { stage: "read snapshot", done, total });
    })?;
    let spec = options.spec(&snapshot.schema, &[])?;
    Ok(SnapshotIndex::build(&spec, &snapshot.batches)?.to_bytes()?)
}

/// Diffs a snapshot against the index of the previous one.
pub fn diff_against_index(
    index: &[u8],
    current: Vec<u8>,
    options: &DiffOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DiffOutput> {
    let compare = &options.compare;
    let index = SnapshotIndex::from_bytes(index).map_err(|e| Error::Input { input: "index", detail: e.to_string() })?;
    if !options.output.tolerance.is_empty() {
        return Err(Error::Options(
            "a tolerance compares values, and an index keeps none: diff the two snapshots, or round instead".into(),
        ));
    }
    let spec = index.meta.spec.clone();
    if !compare.key.is_empty() {
        // The caller's rules must be the index's: else the diff would show rule changes.
        let mut wanted = spec.clone();
        wanted.key.clone_from(&compare.key);
        wanted.quantize = compare.quantize();
        wanted.hash = compare.hash_options();
        index.check_compatible(&wanted)?;
    }
    let mut types = declared_types(compare)?;
    if let Some(types) = types.as_mut() {
        // The key's types are known from the index.
        for field in index.schema.fields().iter().filter(|f| spec.key.contains(f.name())) {
            types.entry(field.name().clone()).or_insert_with(|| field.data_type().clone());
        }
    }
    let new = decode("current", Bytes::from(current), types.as_ref(), compare.batch_size(), &mut |done, total| {
        progress(&Progress { stage: "read current", done, total });
    })
    .map_err(|e| match e {
        Error::Input { input, detail } if detail.starts_with("CSV needs column types") => Error::Input {
            input,
            detail: "CSV against an index needs column types (options.csvSchema): an index keeps no column types"
                .into(),
        },
        e => e,
    })?;
    progress(&Progress { stage: "diff", done: 0, total: new.rows() });
    let rules = Compare { tolerance: Vec::new(), changed_columns: compare.column_hashes() && spec.column_hashes };
    let (changes, counts, new_index) = diff_against_index_with(&index, None, &new.batches, &rules)?;
    let new_index = if options.output.index.unwrap_or(true) { Some(new_index.to_bytes()?) } else { None };
    let mut out =
        finish(&changes, counts, &new.schema, &spec.key, rules.changed_columns, options, new_index, progress)?;
    out.formats = (None, new.format);
    Ok(out)
}

/// Decodes both sides; a CSV side takes its types from the options, else from the other side,
/// else (both CSV) from both files read alike.
fn decode_pair(
    options: &IndexOptions,
    previous: Bytes,
    current: Bytes,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Snapshot, Snapshot)> {
    let batch_size = options.batch_size();
    let declared = declared_types(options)?;
    let (old_format, new_format) = (Format::detect(&previous), Format::detect(&current));
    let mut read = |input: &'static str, bytes: Bytes, types: Option<&BTreeMap<String, DataType>>| {
        let stage = if input == "previous" { "read previous" } else { "read current" };
        decode(input, bytes, types, batch_size, &mut |done, total| progress(&Progress { stage, done, total }))
    };
    if declared.is_some() || (old_format != Format::Csv && new_format != Format::Csv) {
        return Ok((read("previous", previous, declared.as_ref())?, read("current", current, declared.as_ref())?));
    }
    if old_format == Format::Csv && new_format == Format::Csv {
        let types = infer_csv_types(&[&previous, &current])
            .map_err(|e| Error::Input { input: "previous", detail: e.to_string() })?;
        return Ok((read("previous", previous, Some(&types))?, read("current", current, Some(&types))?));
    }
    if old_format == Format::Csv {
        let new = read("current", current, None)?;
        let old = read("previous", previous, Some(&types_of(&new.schema)))?;
        Ok((old, new))
    } else {
        let old = read("previous", previous, None)?;
        let new = read("current", current, Some(&types_of(&old.schema)))?;
        Ok((old, new))
    }
}

fn types_of(schema: &Schema) -> BTreeMap<String, DataType> {
    schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
}

/// The declared CSV types, parsed.
fn declared_types(options: &IndexOptions) -> Result<Option<BTreeMap<String, DataType>>> {
    let Some(declared) = &options.csv_schema else { return Ok(None) };
    declared
        .iter()
        .map(|(column, name)| {
            let data_type: DataType = name.parse().map_err(|e| {
                Error::Options(format!("csvSchema: column `{column}`: `{name}` is not an Arrow type: {e}"))
            })?;
            Ok((column.clone(), data_type))
        })
        .collect::<Result<_>>()
        .map(Some)
}

fn schema_changes(old: &Schema, new: &Schema) -> Vec<SchemaChange> {
    let mut changes = Vec::new();
    for field in old.fields() {
        match new.field_with_name(field.name()) {
            Err(_) => changes.push(SchemaChange {
                column: field.name().clone(),
                change: "removed",
                before: Some(field.data_type().to_string()),
                after: None,
            }),
            Ok(now) if family_of(now.data_type()) != family_of(field.data_type()) => changes.push(SchemaChange {
                column: field.name().clone(),
                change: "type_changed",
                before: Some(field.data_type().to_string()),
                after: Some(now.data_type().to_string()),
            }),
            Ok(_) => {}
        }
    }
    for field in new.fields().iter().filter(|f| old.field_with_name(f.name()).is_err()) {
        changes.push(SchemaChange {
            column: field.name().clone(),
            change: "added",
            before: None,
            after: Some(field.data_type().to_string()),
        });
    }
    changes
}

/// Counts the changed columns and writes the change set as IPC.
#[allow(clippy::too_many_arguments, reason = "the parts of one result, assembled once")]
fn finish(
    changes: &ChangeSet,
    counts: DiffCounts,
    schema: &SchemaRef,
    key: &[String],
    changed_columns: bool,
    options: &DiffOptions,
    index: Option<Vec<u8>>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DiffOutput> {
    let mut per_column: BTreeMap<String, u64> = BTreeMap::new();
    for batch in changes.batches(ChangeKind::Update) {
        if let Some(lists) = batch.column_by_name(CHANGED_COLUMNS_COLUMN) {
            let lists = lists.as_list::<i32>();
            let names = lists.values().as_string::<i32>();
            for name in names.iter().flatten() {
                *per_column.entry(name.to_owned()).or_default() += 1;
            }
        }
    }
    // Deletes carry the key as the previous side typed it; one feed needs one type.
    let feed = options.output.shape == OutputShape::Feed;
    let mut conformed = ChangeSet::new();
    for kind in ChangeKind::ALL {
        for batch in changes.batches(kind) {
            let batch = if kind == ChangeKind::Delete && feed { conform_keys(batch, schema)? } else { batch.clone() };
            conformed.push(kind, batch);
        }
    }
    let total = counts.inserted + counts.updated + counts.deleted;
    progress(&Progress { stage: "write", done: 0, total });
    let ipc = options.output.ipc;
    let feed_rows = {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        if changed_columns {
            fields.push(Field::new(CHANGED_COLUMNS_COLUMN, changed_columns_type(), true));
        }
        Schema::new(fields)
    };
    let feed = if feed || options.output.preview > 0 { conformed.to_feed(&feed_rows)? } else { Vec::new() };
    let preview = crate::export::preview(&feed, options.output.preview)?;
    let preview_columns = if options.output.preview > 0 {
        ChangeSet::feed_schema(&feed_rows).fields().iter().map(|f| f.name().clone()).collect()
    } else {
        Vec::new()
    };
    let tables = match options.output.shape {
        OutputShape::Feed => vec![("changes", write_ipc(&ChangeSet::feed_schema(&feed_rows), &feed, ipc)?)],
        OutputShape::Split => {
            let mut update_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            if changed_columns {
                update_fields.push(Field::new(CHANGED_COLUMNS_COLUMN, changed_columns_type(), false));
            }
            let deletes = conformed.batches(ChangeKind::Delete);
            let key_fields: Vec<Field> = match deletes.first() {
                Some(batch) => batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect(),
                None => key
                    .iter()
                    .filter_map(|k| schema.field_with_name(k).ok())
                    .map(|f| f.clone().with_nullable(true))
                    .collect(),
            };
            vec![
                ("inserts", write_ipc(schema, conformed.batches(ChangeKind::Insert), ipc)?),
                (
                    "updates",
                    write_ipc(&Arc::new(Schema::new(update_fields)), conformed.batches(ChangeKind::Update), ipc)?,
                ),
                ("deletes", write_ipc(&Arc::new(Schema::new(key_fields)), conformed.batches(ChangeKind::Delete), ipc)?),
            ]
        }
    };
    progress(&Progress { stage: "write", done: total, total });
    Ok(DiffOutput {
        counts,
        changed_columns: per_column,
        schema_changes: Vec::new(),
        formats: (None, Format::Csv),
        tables,
        index,
        preview,
        preview_columns,
    })
}

/// `batch` (key columns as the previous side typed them) under the current key types: a key
/// retyped between snapshots (Int32 then Int64 hashes alike) cannot share one feed column.
fn conform_keys(batch: &RecordBatch, schema: &Schema) -> Result<RecordBatch> {
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let Ok(target) = schema.field_with_name(field.name()) {
            if target.data_type() != column.data_type() {
                return Err(Error::Options(format!(
                    "key column `{}` is {} before and {} now: use output \"split\" (deletes keep the previous type)",
                    field.name(),
                    column.data_type(),
                    target.data_type()
                )));
            }
        }
    }
    let fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())?)
}

/// Batches as Arrow IPC bytes under `schema` (each batch's columns taken as they are).
fn write_ipc(schema: &SchemaRef, batches: &[RecordBatch], format: IpcFormat) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let rebatch = |batch: &RecordBatch| RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec());
    match format {
        IpcFormat::Stream => {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, schema)?;
            for batch in batches.iter().filter(|b| b.num_rows() > 0) {
                writer.write(&rebatch(batch)?)?;
            }
            writer.finish()?;
        }
        IpcFormat::File => {
            let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut bytes, schema)?;
            for batch in batches.iter().filter(|b| b.num_rows() > 0) {
                writer.write(&rebatch(batch)?)?;
            }
            writer.finish()?;
        }
    }
    Ok(bytes)
}
