//! The events of a run, checked as they are read and split by key bucket; held in memory, or
//! spilled to the run's staging area whenever more rows are held than the memory budget allows.
//! A bucket's events are decoded (sequences, after-image hashes) only when it is reduced.
//!
//! Every batch carries two extra columns, the file (an index into the run's file list) and the
//! row within it, so that an error can name any event, in memory or after a spill.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use highwater_core::cdc::{Event, EventOp, EventOrigin, EventSpec, check_events};
use highwater_core::key::{bucket_of, describe_row};
use highwater_store::source::ScanBatch;
use highwater_store::write::{Spill, SpilledBatch};

use crate::error::Result;

const FILE_COLUMN: &str = "_highwater_file";
const ROW_COLUMN: &str = "_highwater_row";

/// A batch of one bucket's events.
enum Part {
    Memory(RecordBatch),
    Spilled(SpilledBatch),
}

/// The new events of a run, by key bucket.
pub(crate) struct Events {
    spec: EventSpec,
    bits: u32,
    files: Vec<String>,
    parts: Vec<Vec<Part>>,
    spill: Option<Spill>,
    budget: usize,
    /// Event rows held in memory.
    held: usize,
    /// Truncate events, with their descriptions (they apply to every bucket).
    pub(crate) truncates: Vec<(Event, String)>,
    /// Events read.
    pub(crate) count: u64,
}

impl Events {
    /// Events split into `2^bits` buckets; past `budget` rows held, spilled into `spill` (when
    /// there is one: a plan holds everything).
    pub(crate) fn new(spec: EventSpec, bits: u32, spill: Option<Spill>, budget: usize) -> Self {
        Events {
            spec,
            bits,
            files: Vec::new(),
            parts: (0..1usize << bits).map(|_| Vec::new()).collect(),
            spill,
            budget: budget.max(1),
            held: 0,
            truncates: Vec::new(),
            count: 0,
        }
    }

    /// Checks a scanned batch (bad events fail here, named by file and row) and files its rows
    /// by bucket.
    pub(crate) async fn push(&mut self, scanned: ScanBatch) -> Result<()> {
        if self.files.last() != Some(&scanned.file.key) {
            self.files.push(scanned.file.key.clone());
        }
        let file = self.files.len() - 1;
        let rows = scanned.batch.num_rows();
        let batch = with_origin(&scanned.batch, file as u32, scanned.first_row)?;
        let origin = EventOrigin { source: &scanned.file.key, first_row: scanned.first_row };
        let checked = check_events(&batch, &self.spec, origin)?;
        self.count += rows as u64;
        let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); self.parts.len()];
        for (row, (key, op)) in checked.iter().enumerate() {
            if *op == EventOp::Truncate {
                let event = Event {
                    key: 0,
                    sequence: truncate_sequence(&batch, &self.spec, row)?,
                    op: EventOp::Truncate,
                    image: 0,
                    batch: 0,
                    row,
                };
                let description = describe(&batch, &event, &[], &self.files);
                self.truncates.push((event, description));
            } else {
                rows_of[bucket_of(*key, self.bits)].push(row as u32);
            }
        }
        for (bucket, rows) in rows_of.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            self.held += rows.len();
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                arrow_select::take::take_record_batch(&batch, &UInt32Array::from(rows))?
            };
            self.parts[bucket].push(Part::Memory(part));
        }
        if self.held > self.budget {
            self.spill_held().await?;
        }
        Ok(())
    }

    /// Spills the rows held in memory, one part per bucket.
    async fn spill_held(&mut self) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else { return Ok(()) };
        for parts in &mut self.parts {
            let (memory, spilled): (Vec<Part>, Vec<Part>) =
                std::mem::take(parts).into_iter().partition(|p| matches!(p, Part::Memory(_)));
            *parts = spilled;
            let batches: Vec<RecordBatch> = memory
                .into_iter()
                .filter_map(|p| match p {
                    Part::Memory(batch) => Some(batch),
                    Part::Spilled(_) => None,
                })
                .collect();
            if let Some(first) = batches.first() {
                let batch = arrow_select::concat::concat_batches(&first.schema(), &batches)?;
                parts.push(Part::Spilled(spill.put(&batch).await?));
            }
        }
        self.held = 0;
        Ok(())
    }

    /// Whether bucket `bucket` has events.
    pub(crate) fn has_events(&self, bucket: usize) -> bool {
        !self.parts[bucket].is_empty()
    }

    /// The batches of a bucket's events (truncates excluded), out of memory or read back.
    pub(crate) async fn take(&mut self, bucket: usize) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for part in std::mem::take(&mut self.parts[bucket]) {
            batches.push(match part {
                Part::Memory(batch) => batch,
                Part::Spilled(spilled) => match &self.spill {
                    Some(spill) => spill.get(&spilled).await?,
                    None => continue,
                },
            });
        }
        Ok(batches)
    }

    /// The files read, in the order their events came (events point into it).
    pub(crate) fn files(&self) -> &[String] {
        &self.files
    }

    /// Deletes the spilled events.
    pub(crate) async fn clear(&self) {
        if let Some(spill) = &self.spill {
            spill.clear().await;
        }
    }
}

/// The sequence of a truncate event.
fn truncate_sequence(
    batch: &RecordBatch,
    spec: &EventSpec,
    row: usize,
) -> Result<highwater_core::watermark::WatermarkValue> {
    let single = batch.slice(row, 1);
    let events =
        highwater_core::cdc::decode_events(&single, 0, spec, &[], EventOrigin { source: "truncate", first_row: 0 })?;
    Ok(events.into_iter().next().map_or(highwater_core::watermark::WatermarkValue::int64(0), |e| e.sequence))
}

fn with_origin(batch: &RecordBatch, file: u32, first_row: u64) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(FILE_COLUMN, DataType::UInt32, false));
    fields.push(Field::new(ROW_COLUMN, DataType::UInt64, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(UInt32Array::from(vec![file; rows])) as ArrayRef);
    columns.push(Arc::new(UInt64Array::from_iter_values(first_row..first_row + rows as u64)) as ArrayRef);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// `file row N (key=…, op at sequence)` of an event of `batch`.
pub(crate) fn describe(batch: &RecordBatch, event: &Event, key: &[String], files: &[String]) -> String {
    let file = batch
        .column_by_name(FILE_COLUMN)
        .map(|c| c.as_primitive::<UInt32Type>().value(event.row) as usize)
        .and_then(|f| files.get(f))
        .map_or("?", String::as_str);
    let row = batch.column_by_name(ROW_COLUMN).map_or(0, |c| c.as_primitive::<UInt64Type>().value(event.row));
    if key.is_empty() {
        return format!("{file} row {row} ({} at {})", event.op, event.sequence);
    }
    format!("{file} row {row} ({}, {} at {})", describe_row(batch, event.row, key), event.op, event.sequence)
}
