//! Per-key state: each key's last applied event, in bucketed, sorted state files.
//!
//! Bucket `b` of `2^bits` holds the keys whose fingerprint's top `bits` bits are `b`
//! ([`bucket_of`]), sorted by fingerprint, as one Arrow IPC stream:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `fingerprint` | `FixedSizeBinary(16)` | the key, big-endian: byte order is numeric order |
//! | `op` | `UInt8` | the last applied operation (1 insert, 2 update, 3 delete) |
//! | `image` | `FixedSizeBinary(16)` | its after-image hash (a replay is told from a conflict) |
//! | `tombstone` | `Int64`, nullable | for a deleted key: when it was deleted (Unix seconds) |
//! | `sequence.<name>`… | as in the events | its sequence |
//!
//! A run rewrites only the buckets its events touch. The bucket count only grows, splitting
//! every bucket in two (hence the top bits): a bucket of the old layout is a contiguous slice
//! of sorted fingerprints in the new one.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt8Type};
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch, UInt8Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use highwater_core::cdc::{Event, EventOp, KeyState, KeyStates};
use highwater_core::key::KeyFingerprint;
use highwater_core::watermark::WatermarkValue;
use highwater_core::zone::Zone;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The commit property holding [`StateMeta`].
pub(crate) const META_PROPERTY: &str = "cdc";
/// Keys per state bucket a run aims at (a bucket in memory stays a few tens of MB).
const KEYS_PER_BUCKET: u64 = 128 * 1024;
/// At most `2^MAX_BITS` buckets (268 M keys at the aim above; more just make buckets bigger).
pub(crate) const MAX_BITS: u32 = 10;
const FIXED_COLUMNS: usize = 4;

/// What the commit records about the key state: its layout, size and the truncate marker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateMeta {
    /// Fingerprint bits that pick a key's bucket.
    pub bits: u32,
    /// Keys per bucket.
    pub keys: Vec<u64>,
    /// The sequence of the latest applied table truncate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<WatermarkValue>,
    /// An SCD type 2 table: the buckets hold event logs (`history-NNNN`), their counts events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

impl StateMeta {
    /// The state of the table's last commit; `None` before any CDC run.
    pub(crate) fn from_properties(properties: &BTreeMap<String, serde_json::Value>) -> Result<Option<Self>> {
        match properties.get(META_PROPERTY) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| Error::State { name: META_PROPERTY.into(), detail: e.to_string() }),
        }
    }

    pub(crate) fn total_keys(&self) -> u64 {
        self.keys.iter().sum()
    }
}

/// The state file of a bucket.
pub(crate) fn bucket_name(bucket: usize) -> String {
    format!("keys-{bucket:04}")
}

/// Bucket bits so that `items` spread over the buckets leave about `per_bucket` in each.
pub(crate) fn bits_for(items: u64, per_bucket: u64) -> u32 {
    let buckets = items.div_ceil(per_bucket.max(1)).max(1);
    buckets.next_power_of_two().trailing_zeros().min(MAX_BITS)
}

/// Bucket bits for a state of `keys` keys.
pub(crate) fn bits_for_keys(keys: u64) -> u32 {
    bits_for(keys, KEYS_PER_BUCKET)
}

/// The schema of a state file whose sequence columns are `sequence`.
pub(crate) fn state_schema(sequence: &[Field]) -> SchemaRef {
    let mut fields = vec![
        Field::new("fingerprint", DataType::FixedSizeBinary(16), false),
        Field::new("op", DataType::UInt8, false),
        Field::new("image", DataType::FixedSizeBinary(16), false),
        Field::new("tombstone", DataType::Int64, true),
    ];
    fields.extend(sequence.iter().map(|f| Field::new(format!("sequence.{}", f.name()), f.data_type().clone(), false)));
    Arc::new(Schema::new(fields))
}

fn op_code(op: EventOp) -> u8 {
    match op {
        EventOp::Insert => 1,
        EventOp::Update => 2,
        EventOp::Delete | EventOp::Truncate => 3,
    }
}

fn op_of(code: u8) -> EventOp {
    match code {
        1 => EventOp::Insert,
        2 => EventOp::Update,
        _ => EventOp::Delete,
    }
}

/// The key state of one bucket (or of a slice of one), sorted by fingerprint.
#[derive(Clone, Debug)]
pub(crate) struct StateBucket {
    batch: RecordBatch,
    zone: Option<Zone>,
}

/// What rewriting a bucket dropped.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dropped {
    /// Tombstones past their retention.
    pub purged: u64,
}

impl StateBucket {
    pub(crate) fn empty(schema: SchemaRef, zone: Option<Zone>) -> Self {
        StateBucket { batch: RecordBatch::new_empty(schema), zone }
    }

    /// Reads a state file, checking that it has the layout and the sequence columns expected.
    pub(crate) fn read(bytes: &Bytes, name: &str, sequence: &[String], zone: Option<Zone>) -> Result<Self> {
        let damaged = |detail: String| Error::State { name: name.to_owned(), detail };
        let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes.clone()), None)
            .map_err(|e| damaged(e.to_string()))?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| damaged(e.to_string()))?;
        let batch = arrow_select::concat::concat_batches(&schema, &batches)?;
        let fixed = ["fingerprint", "op", "image", "tombstone"];
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let expected: Vec<String> =
            fixed.iter().map(|f| (*f).to_owned()).chain(sequence.iter().map(|s| format!("sequence.{s}"))).collect();
        if names != expected {
            return Err(Error::State {
                name: name.to_owned(),
                detail: format!(
                    "its columns are ({}), this run expects ({}): did the sequence columns change?",
                    names.join(", "),
                    expected.join(", ")
                ),
            });
        }
        Ok(StateBucket { batch, zone })
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    pub(crate) fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn fingerprints(&self) -> &FixedSizeBinaryArray {
        self.batch.column(0).as_fixed_size_binary()
    }

    fn fingerprint(&self, row: usize) -> KeyFingerprint {
        let bytes: [u8; 16] = self.fingerprints().value(row).try_into().unwrap_or([0; 16]);
        u128::from_be_bytes(bytes)
    }

    /// The first row whose fingerprint is at least `fingerprint`.
    fn lower_bound(&self, fingerprint: KeyFingerprint) -> usize {
        let (mut low, mut high) = (0, self.rows());
        while low < high {
            let middle = usize::midpoint(low, high);
            if self.fingerprint(middle) < fingerprint {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    fn find(&self, fingerprint: KeyFingerprint) -> Option<usize> {
        let row = self.lower_bound(fingerprint);
        (row < self.rows() && self.fingerprint(row) == fingerprint).then_some(row)
    }

    /// The keys of bucket `bucket` among `2^bits` (a contiguous slice: buckets are top bits).
    pub(crate) fn slice(&self, bucket: usize, bits: u32) -> StateBucket {
        if bits == 0 {
            return self.clone();
        }
        let first = (bucket as u128) << (128 - bits);
        let start = self.lower_bound(first);
        let end = match (bucket as u128 + 1).checked_shl(128 - bits) {
            Some(next) if bucket + 1 < (1 << bits) => self.lower_bound(next),
            _ => self.rows(),
        };
        StateBucket { batch: self.batch.slice(start, end - start), zone: self.zone }
    }

    fn sequence(&self, row: usize) -> WatermarkValue {
        let mut values: Vec<WatermarkValue> = self.batch.columns()[FIXED_COLUMNS..]
            .iter()
            .map(|column| {
                // The columns were checked on read and hold no nulls.
                WatermarkValue::from_array(column.as_ref(), row, self.zone.as_ref())
                    .ok()
                    .flatten()
                    .unwrap_or(WatermarkValue::int64(i64::MIN))
            })
            .collect();
        if values.len() == 1 {
            values.pop().unwrap_or(WatermarkValue::int64(i64::MIN))
        } else {
            WatermarkValue::Tuple { values }
        }
    }

    fn key_state(&self, row: usize) -> KeyState {
        let tombstone = self.batch.column(3).as_primitive::<Int64Type>();
        let image: [u8; 16] = self.batch.column(2).as_fixed_size_binary().value(row).try_into().unwrap_or([0; 16]);
        KeyState {
            sequence: self.sequence(row),
            op: op_of(self.batch.column(1).as_primitive::<UInt8Type>().value(row)),
            image: u128::from_be_bytes(image),
            tombstone: (!tombstone.is_null(row)).then(|| tombstone.value(row)),
        }
    }

    /// Keys still live (not deleted) whose last applied event is after `marker`: the rows a
    /// late truncate at `marker` keeps.
    pub(crate) fn live_keys_after(&self, marker: &WatermarkValue) -> Vec<KeyFingerprint> {
        let tombstone = self.batch.column(3);
        (0..self.rows())
            .filter(|row| tombstone.is_null(*row) && self.sequence(*row) > *marker)
            .map(|row| self.fingerprint(row))
            .collect()
    }

    /// This bucket after a run: the winners' states replace their keys' old states (winners in
    /// any order, their rows in `batches`, sequence columns `sequence`); tombstones older than
    /// `retention` (seconds before `now`) and states at or below a new truncate `marker` go.
    pub(crate) fn updated(
        &self,
        winners: &[&Event],
        batches: &[RecordBatch],
        sequence: &[String],
        now: i64,
        retention: Option<i64>,
        marker: Option<&WatermarkValue>,
    ) -> Result<(StateBucket, Dropped)> {
        let mut winners: Vec<&Event> = winners.to_vec();
        winners.sort_unstable_by_key(|e| e.key);
        let schema = self.schema();
        // The winners' states, as a batch of the state schema.
        let indices: Vec<(usize, usize)> = winners.iter().map(|e| (e.batch, e.row)).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(winners.iter().map(|e| e.key.to_be_bytes()))
                    .unwrap_or_else(|_| FixedSizeBinaryArray::new_null(16, 0)),
            ),
            Arc::new(UInt8Array::from_iter_values(winners.iter().map(|e| op_code(e.op)))),
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(winners.iter().map(|e| e.image.to_be_bytes()))
                    .unwrap_or_else(|_| FixedSizeBinaryArray::new_null(16, 0)),
            ),
            Arc::new(winners.iter().map(|e| (e.op == EventOp::Delete).then_some(now)).collect::<Int64Array>()),
        ];
        for (name, field) in sequence.iter().zip(&schema.fields()[FIXED_COLUMNS..]) {
            let arrays = batches
                .iter()
                .map(|batch| {
                    let column = batch
                        .column_by_name(name)
                        .ok_or_else(|| Error::Config(format!("no sequence column `{name}`")))?;
                    Ok(if column.data_type() == field.data_type() {
                        Arc::clone(column)
                    } else {
                        arrow_cast::cast(column, field.data_type())?
                    })
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            let refs: Vec<&dyn Array> = arrays.iter().map(AsRef::as_ref).collect();
            columns.push(if indices.is_empty() {
                arrow_array::new_empty_array(field.data_type())
            } else {
                arrow_select::interleave::interleave(&refs, &indices)?
            });
        }
        let fresh = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        // Merge the old states (sorted) with the winners' (sorted).
        let tombstones = self.batch.column(3).as_primitive::<Int64Type>();
        let mut dropped = Dropped::default();
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(self.rows() + winners.len());
        let mut next = 0;
        for row in 0..self.rows() {
            let fingerprint = self.fingerprint(row);
            while next < winners.len() && winners[next].key < fingerprint {
                order.push((1, next));
                next += 1;
            }
            if next < winners.len() && winners[next].key == fingerprint {
                continue;
            }
            if !tombstones.is_null(row) && retention.is_some_and(|r| now.saturating_sub(tombstones.value(row)) >= r) {
                dropped.purged += 1;
                continue;
            }
            if marker.is_some_and(|m| self.sequence(row) <= *m) {
                // The truncate marker speaks for it now.
                continue;
            }
            order.push((0, row));
        }
        order.extend((next..winners.len()).map(|i| (1, i)));
        let batch = if order.is_empty() {
            RecordBatch::new_empty(schema)
        } else {
            arrow_select::interleave::interleave_record_batch(&[&self.batch, &fresh], &order)?
        };
        Ok((StateBucket { batch, zone: self.zone }, dropped))
    }

    pub(crate) fn to_bytes(&self) -> Result<Bytes> {
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &self.batch.schema())?;
            writer.write(&self.batch)?;
            writer.finish()?;
        }
        Ok(Bytes::from(bytes))
    }
}

impl KeyStates for StateBucket {
    fn get(&self, key: KeyFingerprint) -> Option<KeyState> {
        self.find(key).map(|row| self.key_state(row))
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::StringArray;
    use highwater_core::key::bucket_of;

    use super::*;

    fn all_in(state: &StateBucket, bucket: usize, bits: u32) -> bool {
        (0..state.rows()).all(|row| bucket_of(state.fingerprint(row), bits) == bucket)
    }

    fn event(key: u128, sequence: i64, op: EventOp, row: usize) -> Event {
        Event { key, sequence: WatermarkValue::int64(sequence), op, image: key ^ 7, batch: 0, row }
    }

    #[test]
    fn a_bucket_round_trips_merges_purges_and_slices() {
        let schema = state_schema(&[Field::new("sequence_num", DataType::Int64, false)]);
        let empty = StateBucket::empty(Arc::clone(&schema), None);
        let batch = RecordBatch::try_from_iter([
            ("sequence_num", Arc::new(Int64Array::from(vec![5, 9, 7, 11])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["a", "b", "c", "d"])) as ArrayRef),
        ])
        .unwrap();
        let high = 3u128 << 126;
        let events =
            [event(high + 1, 5, EventOp::Insert, 0), event(2, 9, EventOp::Delete, 1), event(1, 7, EventOp::Update, 2)];
        let refs: Vec<&Event> = events.iter().collect();
        let sequence = ["sequence_num".to_owned()];
        let (first, _) = empty.updated(&refs, std::slice::from_ref(&batch), &sequence, 1000, Some(100), None).unwrap();
        assert_eq!(first.rows(), 3);
        let read = StateBucket::read(&first.to_bytes().unwrap(), "keys-0000", &sequence, None).unwrap();
        assert_eq!(
            read.get(2).unwrap(),
            KeyState { sequence: WatermarkValue::int64(9), op: EventOp::Delete, image: 2 ^ 7, tombstone: Some(1000) }
        );
        assert_eq!(read.get(1).unwrap().sequence, WatermarkValue::int64(7));
        assert!(read.get(3).is_none());
        // Key 1 updated again; key 2's tombstone is past its retention.
        let later = [event(1, 11, EventOp::Update, 3)];
        let refs: Vec<&Event> = later.iter().collect();
        let (second, dropped) = read.updated(&refs, &[batch], &sequence, 1200, Some(100), None).unwrap();
        assert_eq!((second.rows(), dropped.purged), (2, 1));
        assert_eq!(second.get(1).unwrap().sequence, WatermarkValue::int64(11));
        assert!(all_in(&second.slice(3, 2), 3, 2) && second.slice(3, 2).rows() == 1);
        assert_eq!(second.slice(0, 2).rows(), 1);
        assert_eq!(second.slice(1, 2).rows(), 0);
        assert_eq!(second.live_keys_after(&WatermarkValue::int64(6)), [1]);
        assert_eq!(second.live_keys_after(&WatermarkValue::int64(4)), [1, high + 1]);
        let error = StateBucket::read(&second.to_bytes().unwrap(), "keys-0000", &["lsn".to_owned()], None).unwrap_err();
        assert!(error.to_string().contains("sequence.lsn"), "{error}");
    }

    #[test]
    fn bits_grow_with_keys() {
        assert_eq!(bits_for_keys(0), 0);
        assert_eq!(bits_for_keys(KEYS_PER_BUCKET), 0);
        assert_eq!(bits_for_keys(KEYS_PER_BUCKET + 1), 1);
        assert_eq!(bits_for_keys(u64::MAX / 2), MAX_BITS);
    }
}
