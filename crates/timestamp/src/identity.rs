//! Identities of loaded rows near the watermark, for boundary and lookback dedup.
//!
//! After its own commits a loader starts at the watermark *inclusively* (and `lookback` earlier),
//! so rows tied with the watermark or committed late are read again; those already loaded are
//! recognised by their identity and skipped. The state keeps the identity and cursor tick of
//! every loaded row whose cursor is at or above `watermark - lookback`, with no cap: with a date
//! cursor the tie set is a whole day. It is an Arrow IPC state file sorted by identity.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;

use crate::error::{Error, Result};

/// The state file name.
pub(crate) const IDENTITIES_STATE: &str = "identities";

/// Loaded row identities and their cursor ticks.
#[derive(Clone, Debug, Default)]
pub(crate) struct Identities {
    entries: HashMap<u128, i64>,
}

impl Identities {
    pub(crate) fn contains(&self, identity: u128) -> bool {
        self.entries.contains_key(&identity)
    }

    pub(crate) fn insert(&mut self, identity: u128, tick: i64) {
        self.entries.insert(identity, tick);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps the identities of rows at or above `tick`.
    pub(crate) fn retain_from(&mut self, tick: i64) {
        self.entries.retain(|_, cursor| *cursor >= tick);
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("identity_high", DataType::UInt64, false),
            Field::new("identity_low", DataType::UInt64, false),
            Field::new("cursor", DataType::Int64, false),
        ]))
    }

    pub(crate) fn to_bytes(&self) -> Result<Bytes> {
        let mut sorted: Vec<(u128, i64)> = self.entries.iter().map(|(k, v)| (*k, *v)).collect();
        sorted.sort_unstable();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(sorted.iter().map(|(k, _)| (*k >> 64) as u64).collect::<UInt64Array>()),
            Arc::new(sorted.iter().map(|(k, _)| *k as u64).collect::<UInt64Array>()),
            Arc::new(sorted.iter().map(|(_, v)| *v).collect::<Int64Array>()),
        ];
        let batch = RecordBatch::try_new(Self::schema(), columns)?;
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &Self::schema())?;
            writer.write(&batch)?;
            writer.finish()?;
        }
        Ok(Bytes::from(bytes))
    }

    pub(crate) fn from_bytes(bytes: &Bytes) -> Result<Self> {
        let damaged = |detail: String| Error::State { name: IDENTITIES_STATE.to_owned(), detail };
        let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes.clone()), None)
            .map_err(|e| damaged(e.to_string()))?;
        let mut entries = HashMap::new();
        for batch in reader {
            let batch = batch.map_err(|e| damaged(e.to_string()))?;
            if batch.num_columns() != 3 {
                return Err(damaged(format!("{} columns, expected 3", batch.num_columns())));
            }
            let (Some(high), Some(low), Some(cursor)) = (
                batch.column(0).as_primitive_opt::<UInt64Type>(),
                batch.column(1).as_primitive_opt::<UInt64Type>(),
                batch.column(2).as_primitive_opt::<Int64Type>(),
            ) else {
                return Err(damaged("unexpected column types".into()));
            };
            for row in 0..batch.num_rows() {
                let identity = (u128::from(high.value(row)) << 64) | u128::from(low.value(row));
                entries.insert(identity, cursor.value(row));
            }
        }
        Ok(Identities { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_retention() {
        let mut identities = Identities::default();
        identities.insert(u128::MAX - 1, 10);
        identities.insert(7, 20);
        let back = Identities::from_bytes(&identities.to_bytes().unwrap()).unwrap();
        assert!(back.contains(u128::MAX - 1) && back.contains(7));
        let mut back = back;
        back.retain_from(15);
        assert!(!back.contains(u128::MAX - 1) && back.contains(7));
        assert_eq!(back.len(), 1);
    }
}
