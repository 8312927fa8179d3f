//! SCD type 2 targets: every version of a key kept, with its validity.
//!
//! The history of a key is a pure function of the set of its events
//! ([`highwater_core::scd2::history`]), so each run rebuilds the history of the keys its events
//! touch from the events applied before — kept in the key bucket's *event log*, a state file —
//! plus the new ones, and writes only the versions that changed:
//!
//! ```text
//! bucket: event log (state) + new events ─► per touched key: old history, new history
//!   ─► versions new or re-bounded: upsert by (key, opening sequence); versions gone: delete
//!   ─► the bucket's new event log (replays and tie losers dropped)
//! ```
//!
//! A late event therefore lands at its place: the version it falls into is split, the ones
//! around it re-bounded, as if it had come on time.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use highwater_core::cdc::{Event, EventOp, EventOrigin, EventSpec, decode_events};
use highwater_core::key::{KeyFingerprint, KeyHasher, KeyOptions, bucket_of};
use highwater_core::report::CdcReport;
use highwater_core::scd2::{HardDeletes, HistoryEvent, KeyHistory, Version, history};
use highwater_core::watermark::WatermarkValue;
use serde::{Deserialize, Serialize};

use crate::bucket::BucketOutcome;
use crate::error::{Error, Result};

/// Where a version's validity times come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidTime {
    /// The sequence itself (it must be one column).
    #[default]
    Sequence,
    /// A column of the events (an event time such as `updated_at` or Debezium's
    /// `_source_ts_ms`). Versions are still ordered by the sequence.
    Column(String),
}

/// How an SCD type 2 target keeps history.
///
/// ```
/// use highwater_cdc::{HardDeletes, Scd2, ValidTime};
///
/// let scd2 = Scd2 {
///     time: ValidTime::Column("updated_at".into()),
///     track_columns: Some(vec!["tier".into(), "region".into()]),
///     hard_deletes: HardDeletes::Marker,
///     open_end: Some("9999-12-31T00:00:00Z".into()),
///     ..Scd2::default()
/// };
/// assert_eq!(scd2.valid_to, "valid_to");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scd2 {
    /// Where `valid_from` and `valid_to` come from.
    pub time: ValidTime,
    /// A change in these columns opens a version; a change only in the others updates the open
    /// version in place (they are type 1 within a version). `None`: every data column.
    pub track_columns: Option<Vec<String>>,
    /// What a delete does.
    pub hard_deletes: HardDeletes,
    /// The `valid_to` of current versions: `None` for null, or a value cast to the time
    /// column's type (a far-future sentinel such as `9999-12-31T00:00:00Z`).
    pub open_end: Option<String>,
    /// The name of the column when a version became valid.
    pub valid_from: String,
    /// The name of the column when it stopped being valid.
    pub valid_to: String,
    /// The name of the column flagging the current version.
    pub is_current: String,
    /// The name of the column flagging deleted markers ([`HardDeletes::Marker`] only).
    pub is_deleted: String,
}

impl Default for Scd2 {
    fn default() -> Self {
        Scd2 {
            time: ValidTime::Sequence,
            track_columns: None,
            hard_deletes: HardDeletes::Close,
            open_end: None,
            valid_from: "valid_from".into(),
            valid_to: "valid_to".into(),
            is_current: "is_current".into(),
            is_deleted: "is_deleted".into(),
        }
    }
}

impl Scd2 {
    /// The column the validity times are read from.
    pub(crate) fn time_column<'a>(&'a self, spec: &'a EventSpec) -> Result<&'a str> {
        match &self.time {
            ValidTime::Column(column) => Ok(column),
            ValidTime::Sequence if spec.sequence.len() == 1 => Ok(&spec.sequence[0]),
            ValidTime::Sequence => Err(Error::Config(format!(
                "the sequence ({}) has several columns: choose the column validity times come from \
                 (Scd2::time = ValidTime::Column)",
                spec.sequence.join(", ")
            ))),
        }
    }

    /// The history columns added to the target, after the data and sequence columns.
    pub(crate) fn columns(&self, time: &DataType) -> Vec<Field> {
        let mut fields = vec![
            Field::new(&self.valid_from, time.clone(), true),
            Field::new(&self.valid_to, time.clone(), true),
            Field::new(&self.is_current, DataType::Boolean, false),
        ];
        if self.hard_deletes == HardDeletes::Marker {
            fields.push(Field::new(&self.is_deleted, DataType::Boolean, false));
        }
        fields
    }

    /// The `valid_to` of current versions, as a one-row array of the time type.
    pub(crate) fn open_end_value(&self, time: &DataType) -> Result<ArrayRef> {
        match &self.open_end {
            None => Ok(new_null_array(time, 1)),
            Some(text) => {
                let value = arrow_cast::cast(&StringArray::from(vec![text.as_str()]), time)?;
                if value.is_null(0) {
                    return Err(Error::Config(format!("the open end `{text}` is not a value of type {time}")));
                }
                Ok(value)
            }
        }
    }
}

/// The state file of a bucket's event log.
pub(crate) fn log_name(bucket: usize) -> String {
    format!("history-{bucket:04}")
}

/// Reads a bucket's event log.
pub(crate) fn read_log(bytes: &Bytes, name: &str) -> Result<Option<RecordBatch>> {
    let bad = |detail: String| Error::State { name: name.to_owned(), detail };
    let reader =
        arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes.as_ref()), None).map_err(|e| bad(e.to_string()))?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
    if batches.is_empty() {
        return Ok(None);
    }
    Ok(Some(arrow_select::concat::concat_batches(&schema, &batches)?))
}

fn write_log(batch: &RecordBatch) -> Result<Bytes> {
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(Bytes::from(out))
}

/// The rows of `log` in bucket `bucket` of `2^bits` (a log written under fewer bits holds
/// several buckets of the new layout).
pub(crate) fn slice_log(log: &RecordBatch, key: &KeyHasher, bucket: usize, bits: u32) -> Result<RecordBatch> {
    let keep: BooleanArray = key.fingerprints(log)?.into_iter().map(|f| Some(bucket_of(f, bits) == bucket)).collect();
    Ok(arrow_select::filter::filter_record_batch(log, &keep)?)
}

/// `batch` under `schema`: columns by name, nulls for the ones it lacks (a column added by
/// schema evolution since the log was written).
fn aligned(batch: &RecordBatch, schema: &SchemaRef, what: &str) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(column) => Err(Error::State {
                name: what.to_owned(),
                detail: format!(
                    "column `{}` is {}, the events' is {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ),
            }),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// One bucket's history work: its new events and its event log.
pub(crate) struct HistoryWork {
    pub(crate) bucket: usize,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) log: Option<RecordBatch>,
}

/// What every bucket of an SCD type 2 run shares.
pub(crate) struct HistoryReducer {
    pub(crate) spec: EventSpec,
    pub(crate) scd2: Scd2,
    /// The columns of the images.
    pub(crate) data_columns: Vec<String>,
    /// The columns whose change opens a version.
    pub(crate) tracked: Vec<String>,
    /// The event columns the log keeps (data, operation, sequence).
    pub(crate) log_schema: SchemaRef,
    /// The target's schema.
    pub(crate) output: SchemaRef,
    pub(crate) time_column: String,
    pub(crate) open_end: ArrayRef,
    pub(crate) imported: Option<WatermarkValue>,
    pub(crate) files: Vec<String>,
}

/// A version whose events are placed: (batch, row) of its opening, image and closing events.
struct Placed {
    open: (usize, usize),
    image: (usize, usize),
    close: Option<(usize, usize)>,
    deleted: bool,
}

/// A version by content, to tell which versions a run changed.
#[derive(PartialEq, Eq)]
struct Content {
    image: u128,
    close: Option<WatermarkValue>,
    deleted: bool,
}

impl HistoryReducer {
    #[allow(clippy::too_many_lines, reason = "one bucket's history, read top to bottom")]
    pub(crate) fn run(&self, work: HistoryWork) -> Result<BucketOutcome> {
        let HistoryWork { bucket, batches: new_batches, log } = work;
        let mut counts = CdcReport::default();
        // Batch 0 is the log (possibly empty), the others the new events, all under the log's
        // schema so that rows can be interleaved across them.
        let log = match log {
            Some(log) => aligned(&log, &self.log_schema, &log_name(bucket))?,
            None => RecordBatch::new_empty(Arc::clone(&self.log_schema)),
        };
        let mut batches = vec![log];
        for batch in &new_batches {
            batches.push(aligned(batch, &self.log_schema, "the events")?);
        }
        let origin = EventOrigin { source: "events", first_row: 0 };
        let mut events: Vec<(Event, u128)> = Vec::new();
        for (index, batch) in batches.iter().enumerate() {
            let full = decode_events(batch, index, &self.spec, &self.data_columns, origin)?;
            // Every data column tracked (the default): the image hash is the tracked one.
            let tracked: Vec<u128> = if self.tracked == self.data_columns {
                full.iter().map(|e| e.image).collect()
            } else {
                decode_events(batch, index, &self.spec, &self.tracked, origin)?.into_iter().map(|e| e.image).collect()
            };
            for (event, tracked) in full.into_iter().zip(tracked) {
                if event.op == EventOp::Truncate {
                    continue;
                }
                // Events at or below the seed job's watermark were applied before.
                if index > 0 && self.imported.as_ref().is_some_and(|w| event.sequence <= *w) {
                    counts.ignored_stale += 1;
                    continue;
                }
                events.push((event, tracked));
            }
        }
        let mut by_key: HashMap<KeyFingerprint, Vec<usize>> = HashMap::new();
        for (index, (event, _)) in events.iter().enumerate() {
            by_key.entry(event.key).or_default().push(index);
        }
        let describe = |event: &Event| {
            if event.batch == 0 {
                format!("the {} at {} applied by an earlier run", event.op, event.sequence)
            } else {
                crate::events::describe(&new_batches[event.batch - 1], event, &self.spec.key, &self.files)
            }
        };
        let hard = self.scd2.hard_deletes;
        let mut keep: Vec<(usize, usize)> = Vec::new();
        let mut upserts: Vec<Placed> = Vec::new();
        let mut removed: Vec<(usize, usize)> = Vec::new();
        let mut highest: Option<WatermarkValue> = None;
        let mut keys: Vec<KeyFingerprint> = by_key.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let members = &by_key[&key];
            let at = |i: usize| (events[members[i]].0.batch, events[members[i]].0.row);
            let touched = members.iter().any(|&i| events[i].0.batch > 0);
            if !touched {
                keep.extend((0..members.len()).map(at));
                continue;
            }
            let of_key: Vec<HistoryEvent> = members
                .iter()
                .map(|&i| {
                    let (event, tracked) = &events[i];
                    HistoryEvent {
                        sequence: event.sequence.clone(),
                        op: event.op,
                        image: event.image,
                        tracked: *tracked,
                    }
                })
                .collect();
            let name = |i: usize| describe(&events[members[i]].0);
            // The log's events come first: an exact replay keeps the logged copy.
            let old_count = members.iter().take_while(|&&i| events[i].0.batch == 0).count();
            let old = history(&of_key[..old_count], hard, self.spec.tie, &name)?;
            let new = history(&of_key, hard, self.spec.tie, &name)?;
            let KeyHistory { versions, kept, duplicates, superseded } = &new;
            counts.ignored_duplicate += duplicates - old.duplicates;
            counts.superseded += superseded - old.superseded;
            for &i in kept {
                if i >= old_count {
                    highest = highest.max(Some(of_key[i].sequence.clone()));
                }
            }
            keep.extend(kept.iter().map(|&i| at(i)));
            let content = |v: &Version| Content {
                image: of_key[v.image].image,
                close: v.close.map(|c| of_key[c].sequence.clone()),
                deleted: v.deleted,
            };
            let before: std::collections::BTreeMap<&WatermarkValue, Content> =
                old.versions.iter().map(|v| (&of_key[v.open].sequence, content(v))).collect();
            for version in versions {
                match before.get(&of_key[version.open].sequence) {
                    Some(old) if *old == content(version) => continue,
                    Some(_) => counts.updated += 1,
                    None => counts.inserted += 1,
                }
                upserts.push(Placed {
                    open: at(version.open),
                    image: at(version.image),
                    close: version.close.map(at),
                    deleted: version.deleted,
                });
            }
            let opened: std::collections::BTreeSet<&WatermarkValue> =
                versions.iter().map(|v| &of_key[v.open].sequence).collect();
            for version in &old.versions {
                if !opened.contains(&of_key[version.open].sequence) {
                    counts.deleted += 1;
                    removed.push(at(version.open));
                }
            }
        }
        keep.sort_unstable();
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        let new_log = arrow_select::interleave::interleave_record_batch(&refs, &keep)?;
        let upsert_rows = self.version_rows(&batches, &upserts)?;
        let delete_rows = if removed.is_empty() {
            Vec::new()
        } else {
            let rows = arrow_select::interleave::interleave_record_batch(&refs, &removed)?;
            vec![rows]
        };
        Ok(BucketOutcome {
            bucket,
            upserts: upsert_rows,
            deletes: delete_rows,
            keys: new_log.num_rows() as u64,
            state: write_log(&new_log)?,
            keep: Vec::new(),
            highest,
            counts,
        })
    }

    /// The target rows of versions: data from the image event, sequence and `valid_from` from
    /// the opening event, `valid_to` from the closing one.
    fn version_rows(&self, batches: &[RecordBatch], versions: &[Placed]) -> Result<Vec<RecordBatch>> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let image: Vec<(usize, usize)> = versions.iter().map(|v| v.image).collect();
        let open: Vec<(usize, usize)> = versions.iter().map(|v| v.open).collect();
        // `valid_to` of open versions reads the open-end value, one batch past the events.
        let open_end = batches.len();
        let close: Vec<(usize, usize)> = versions.iter().map(|v| v.close.unwrap_or((open_end, 0))).collect();
        let column = |name: &str, rows: &[(usize, usize)], extra: Option<&ArrayRef>| -> Result<ArrayRef> {
            let mut arrays: Vec<&dyn Array> = Vec::with_capacity(batches.len() + 1);
            for batch in batches {
                let column = batch.column_by_name(name).ok_or_else(|| Error::Config(format!("no column `{name}`")))?;
                arrays.push(column.as_ref());
            }
            if let Some(extra) = extra {
                arrays.push(extra.as_ref());
            }
            Ok(arrow_select::interleave::interleave(&arrays, rows)?)
        };
        let scd2 = &self.scd2;
        let mut columns = Vec::with_capacity(self.output.fields().len());
        for field in self.output.fields() {
            let name = field.name().as_str();
            let array = if name == scd2.valid_from {
                column(&self.time_column, &open, None)?
            } else if name == scd2.valid_to {
                column(&self.time_column, &close, Some(&self.open_end))?
            } else if name == scd2.is_current {
                Arc::new(versions.iter().map(|v| Some(v.close.is_none())).collect::<BooleanArray>()) as ArrayRef
            } else if scd2.hard_deletes == HardDeletes::Marker && name == scd2.is_deleted {
                Arc::new(versions.iter().map(|v| Some(v.deleted)).collect::<BooleanArray>()) as ArrayRef
            } else if self.log_schema.column_with_name(name).is_none() {
                // A table column the events lack (schema evolution).
                new_null_array(field.data_type(), versions.len())
            } else if self.spec.sequence.iter().any(|s| s == name) {
                column(name, &open, None)?
            } else {
                column(name, &image, None)?
            };
            columns.push(array);
        }
        Ok(vec![RecordBatch::try_new(Arc::clone(&self.output), columns)?])
    }
}

/// The target schema of an SCD type 2 table: the data columns, the sequence columns (each
/// version keeps its opening event's), then the history columns.
pub(crate) fn output_schema(events: &Schema, spec: &EventSpec, scd2: &Scd2) -> Result<(Vec<Field>, DataType)> {
    let time_column = scd2.time_column(spec)?;
    let time = events
        .field_with_name(time_column)
        .map_err(|_| Error::Config(format!("the validity time column `{time_column}` is not in the events")))?
        .data_type()
        .clone();
    // Nullable: a deleted marker holds a delete's image, and events of other files may have nulls.
    let mut fields: Vec<Field> = events
        .fields()
        .iter()
        .filter(|f| *f.name() != spec.op_column)
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    for history in scd2.columns(&time) {
        if fields.iter().any(|f| f.name() == history.name()) {
            return Err(Error::Config(format!("the events already have a column `{}`", history.name())));
        }
        fields.push(history);
    }
    Ok((fields, time))
}

/// The columns of `table` that events carry: without the history columns of an SCD type 2 table.
pub(crate) fn row_schema(table: &Schema, scd2: Option<&Scd2>) -> Schema {
    let Some(scd2) = scd2 else { return table.clone() };
    let history = [&scd2.valid_from, &scd2.valid_to, &scd2.is_current, &scd2.is_deleted];
    Schema::new(table.fields().iter().filter(|f| !history.contains(&f.name())).cloned().collect::<Vec<_>>())
}

/// The table's key (null keys refused), hashed with the events' options: what the key state and
/// the event logs are bucketed by, and the merge key of a type 1 table.
pub(crate) fn table_key(spec: &EventSpec) -> Result<KeyHasher> {
    key_hasher(&spec.key, spec)
}

/// The merge key of an SCD type 2 table: a version is its key and opening sequence.
pub(crate) fn version_key(spec: &EventSpec) -> Result<KeyHasher> {
    key_hasher(spec.key.iter().chain(&spec.sequence), spec)
}

fn key_hasher<'a>(columns: impl IntoIterator<Item = &'a String>, spec: &EventSpec) -> Result<KeyHasher> {
    Ok(KeyHasher::new(columns, &KeyOptions { allow_null_keys: false, hash: spec.hash.clone() })?)
}

/// The event log's schema: the events' columns without the origin columns, nullable (the
/// log gathers events of many files).
pub(crate) fn log_schema(events: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        events
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with("_highwater_"))
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// A truncate cannot apply to a history (it would need a decision no option expresses yet).
pub(crate) fn refuse_truncate(description: &str) -> Error {
    Error::Config(format!(
        "a truncate event ({description}) cannot apply to an SCD type 2 target: its history would have to \
         close every current version; apply it to an SCD type 1 table, or drop the event"
    ))
}
