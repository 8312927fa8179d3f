//! The work of one key bucket, run on a blocking thread so that buckets reduce in parallel:
//! reduce its events against its key state, gather the winners' rows, and write its new state.

use arrow_array::RecordBatch;
use bytes::Bytes;
use highwater_core::cdc::{Event, EventOp, EventOrigin, EventSpec, KeyStates, decode_events, reduce};
use highwater_core::key::KeyFingerprint;
use highwater_core::report::CdcReport;
use highwater_core::watermark::WatermarkValue;

use crate::error::Result;
use crate::state::StateBucket;

/// Rows of winners gathered into one batch at most.
const GATHER_ROWS: usize = 64 * 1024;

/// One bucket's events and its key state.
pub(crate) struct BucketWork {
    pub(crate) bucket: usize,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) state: StateBucket,
}

/// What reducing a bucket gives.
pub(crate) struct BucketOutcome {
    pub(crate) bucket: usize,
    /// After-images to upsert, and rows whose keys to delete.
    pub(crate) upserts: Vec<RecordBatch>,
    pub(crate) deletes: Vec<RecordBatch>,
    /// The bucket's new key state and its key count.
    pub(crate) state: Bytes,
    pub(crate) keys: u64,
    /// Live keys written after a new truncate (their rows survive it).
    pub(crate) keep: Vec<KeyFingerprint>,
    /// The highest sequence applied.
    pub(crate) highest: Option<WatermarkValue>,
    /// Counters (a plan's inserted/updated/deleted from key state alone).
    pub(crate) counts: CdcReport,
}

/// What every bucket of a run shares.
pub(crate) struct Reducer {
    pub(crate) spec: EventSpec,
    /// The columns of the after-images.
    pub(crate) data_columns: Vec<String>,
    /// The seed job's watermark: events at or below it were applied before.
    pub(crate) imported: Option<WatermarkValue>,
    /// The table's truncate marker after this run's truncates.
    pub(crate) marker: Option<WatermarkValue>,
    /// This run's truncate, if one applies.
    pub(crate) truncate: Option<WatermarkValue>,
    pub(crate) now: i64,
    pub(crate) retention: Option<i64>,
    /// The run's event files (events name theirs in errors).
    pub(crate) files: Vec<String>,
    /// A plan: nothing is merged.
    pub(crate) plan: bool,
}

impl Reducer {
    pub(crate) fn run(&self, work: BucketWork) -> Result<BucketOutcome> {
        let BucketWork { bucket, batches, state } = work;
        let mut counts = CdcReport::default();
        let mut events = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for (index, batch) in batches.iter().enumerate() {
            // The events were checked when read: this only decodes.
            let origin = EventOrigin { source: "events", first_row: 0 };
            events.extend(decode_events(batch, index, &self.spec, &self.data_columns, origin)?);
        }
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| e.op != EventOp::Truncate)
            .filter(|e| {
                let applied = self.imported.as_ref().is_some_and(|w| e.sequence <= *w);
                counts.ignored_stale += u64::from(applied);
                !applied
            })
            .collect();
        let describe =
            |event: &Event| crate::events::describe(&batches[event.batch], event, &self.spec.key, &self.files);
        let reduction = reduce(events, &state, self.marker.as_ref(), self.spec.tie, &describe)?;
        counts.ignored_stale += reduction.stale;
        counts.ignored_duplicate += reduction.duplicates;
        counts.superseded += reduction.superseded;
        let keep = self.truncate.as_ref().map(|t| state.live_keys_after(t)).unwrap_or_default();
        let winners: Vec<&Event> = reduction.winners.values().collect();
        let highest = winners.iter().map(|e| &e.sequence).max().cloned();
        let (upserts, deletes): (Vec<&Event>, Vec<&Event>) = winners.iter().partition(|e| e.op != EventOp::Delete);
        counts.tombstoned = deletes.len() as u64;
        if self.plan {
            // Without a merge, tell inserts from updates by the key state alone.
            let live = |e: &&&Event| state.get(e.key).is_some_and(|s| s.tombstone.is_none());
            counts.updated = upserts.iter().filter(live).count() as u64;
            counts.inserted = upserts.len() as u64 - counts.updated;
            counts.deleted = deletes.iter().filter(live).count() as u64;
        }
        let upsert_rows = gather(&batches, &upserts)?;
        let delete_rows = gather(&batches, &deletes)?;
        let (updated, dropped) =
            state.updated(&winners, &batches, &self.spec.sequence, self.now, self.retention, self.truncate.as_ref())?;
        counts.purged = dropped.purged;
        Ok(BucketOutcome {
            bucket,
            upserts: upsert_rows,
            deletes: delete_rows,
            keys: updated.rows() as u64,
            state: updated.to_bytes()?,
            keep,
            highest,
            counts,
        })
    }
}

/// The rows of `events`, in batches of at most [`GATHER_ROWS`].
fn gather(batches: &[RecordBatch], events: &[&Event]) -> Result<Vec<RecordBatch>> {
    let mut indices: Vec<(usize, usize)> = events.iter().map(|e| (e.batch, e.row)).collect();
    indices.sort_unstable();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    indices
        .chunks(GATHER_ROWS)
        .map(|chunk| Ok(arrow_select::interleave::interleave_record_batch(&refs, chunk)?))
        .collect()
}
