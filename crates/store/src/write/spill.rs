//! Batches parked in a run's scratch space until their bucket is processed: how the merge
//! writer and CDC apply stay within a memory budget.
//!
//! Spilled batches are Arrow IPC streams under the run's scratch folder (inside its staging
//! area), so they never become table data and `vacuum` removes them if the run dies.

use std::io::Cursor;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::transaction::FileTarget;

/// A scratch folder of spilled batches.
#[derive(Debug)]
pub struct Spill {
    target: FileTarget,
    folder: Path,
    parts: usize,
}

/// One spilled batch.
#[derive(Clone, Debug)]
pub struct SpilledBatch {
    path: Path,
    rows: usize,
}

impl SpilledBatch {
    /// Its rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl Spill {
    /// Spills into `name` under the run's scratch folder.
    pub fn new(target: FileTarget, name: &str) -> Self {
        let folder = target.scratch().join(name);
        Spill { target, folder, parts: 0 }
    }

    /// Writes a batch out of memory.
    pub async fn put(&mut self, batch: &RecordBatch) -> Result<SpilledBatch> {
        self.parts += 1;
        let path = self.folder.clone().join(format!("{:06}.arrow", self.parts));
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema())?;
            writer.write(batch)?;
            writer.finish()?;
        }
        self.target.store().put(&path, Bytes::from(bytes).into()).await.map_err(|e| Error::store("put", &path, e))?;
        Ok(SpilledBatch { path, rows: batch.num_rows() })
    }

    /// Reads a spilled batch back.
    pub async fn get(&self, part: &SpilledBatch) -> Result<RecordBatch> {
        let path = &part.path;
        let bytes = self.target.store().get(path).await.map_err(|e| Error::store("get", path, e))?;
        let bytes = bytes.bytes().await.map_err(|e| Error::store("get", path, e))?;
        let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>()?;
        Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
    }

    /// Deletes every spilled batch (best effort: vacuum removes leftovers with the staging area).
    pub async fn clear(&self) {
        let store = self.target.store();
        let listed: Vec<_> = store.list(Some(&self.folder)).collect().await;
        for meta in listed.into_iter().flatten() {
            let _ = store.delete(&meta.location).await;
        }
    }
}
