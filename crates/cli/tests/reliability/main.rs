//! Reliability of the whole system in one place (see `docs/reliability.md`): every pattern under
//! the crash harness and the race harness on the local filesystem and S3, a real process killed
//! at deterministic points, and the bad-input corpus with pinned errors and untouched targets.

#![allow(missing_docs, clippy::missing_panics_doc)]

mod bad_inputs;
mod kill;
mod matrix;

use std::sync::Arc;

use arrow_array::RecordBatch;
use highwater::core::hash::{HashOptions, RowHasher};
use highwater::store::{Table, TableOptions};
use object_store::ObjectStore;
use object_store::path::Path;

/// What must not depend on crashes or races: the watermark, the row count, and a checksum of
/// every row (the wrapping sum of row hashes: a lost or duplicated row changes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub watermark: Option<String>,
    pub rows: usize,
    pub checksum: u128,
}

pub fn digest_of(batch: &RecordBatch, watermark: Option<String>) -> Digest {
    let hasher = RowHasher::for_schema(&batch.schema(), &[] as &[&str], &HashOptions::default()).unwrap();
    let checksum = hasher.hash_batch(batch).unwrap().into_rows().into_iter().fold(0u128, u128::wrapping_add);
    Digest { watermark, rows: batch.num_rows(), checksum }
}

/// The digest of the table at `root` of `store`.
pub async fn digest(store: &Arc<dyn ObjectStore>, root: &str) -> Digest {
    let table = Table::open_with(Arc::clone(store), Path::from(root), TableOptions::default()).await.unwrap();
    table_digest(&table).await
}

/// The digest of a table's live files, file by file (a diff's change set has files of three
/// schemas: inserts, updates, deletes).
pub async fn table_digest(table: &Table) -> Digest {
    let snapshot = table.snapshot().await.unwrap();
    let mut digest = Digest { watermark: snapshot.watermark.map(|w| w.to_string()), rows: 0, checksum: 0 };
    for file in snapshot.files.keys() {
        for batch in table.read_files(std::slice::from_ref(file)).await.unwrap() {
            let part = digest_of(&batch, None);
            digest.rows += part.rows;
            digest.checksum = digest.checksum.wrapping_add(part.checksum);
        }
    }
    digest
}

pub async fn put(store: &Arc<dyn ObjectStore>, path: &str, bytes: Vec<u8>) {
    object_store::ObjectStoreExt::put(&**store, &Path::from(path), bytes.into()).await.unwrap();
}

pub fn parquet(batch: &RecordBatch) -> Vec<u8> {
    highwater_test_support::data::parquet_bytes(batch, 2).to_vec()
}
