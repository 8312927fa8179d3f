//! Damaged metadata: each case is a typed error naming the object, and nothing is committed.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use highwater_store::{Error, Table};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::common::{load_batch, options, root};

/// A store holding a table at version 1 (3 files, 1 state file).
async fn loaded() -> Arc<dyn ObjectStore> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    load_batch(Arc::clone(&store)).await.unwrap();
    store
}

fn log(version: u64) -> Path {
    Path::from(format!("warehouse/orders/_highwater/log/{version:020}.json"))
}

async fn put(store: &Arc<dyn ObjectStore>, path: &Path, bytes: &'static [u8]) {
    store.put(path, PutPayload::from_static(bytes)).await.unwrap();
}

/// Every object of the store with its bytes, to prove a failed operation changed nothing.
async fn everything(store: &Arc<dyn ObjectStore>) -> Vec<(String, Bytes)> {
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut all = Vec::new();
    for meta in listed {
        all.push((meta.location.to_string(), store.get(&meta.location).await.unwrap().bytes().await.unwrap()));
    }
    all.sort();
    all
}

async fn open(store: &Arc<dyn ObjectStore>) -> Result<Table, Error> {
    Table::open_with(Arc::clone(store), root(), options()).await
}

#[tokio::test]
async fn invalid_json_commit() {
    let store = loaded().await;
    put(&store, &log(2), b"{ this is not json").await;
    let before = everything(&store).await;
    let error = open(&store).await.unwrap_err();
    assert!(
        matches!(&error, Error::Corrupt { kind: "commit", path, .. } if path.ends_with("00000000000000000002.json")),
        "{error}"
    );
    assert!(load_batch(Arc::clone(&store)).await.is_err(), "no run may commit on a damaged log");
    assert_eq!(everything(&store).await, before);
}

#[tokio::test]
async fn truncated_commit() {
    let store = loaded().await;
    let whole = store.get(&log(1)).await.unwrap().bytes().await.unwrap();
    store.put(&log(2), PutPayload::from_bytes(whole.slice(..whole.len() / 2))).await.unwrap();
    let error = open(&store).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("truncated") && message.contains("00000000000000000002.json"), "{message}");
}

#[tokio::test]
async fn missing_version() {
    let store = loaded().await;
    let whole = store.get(&log(1)).await.unwrap().bytes().await.unwrap();
    let third = String::from_utf8(whole.to_vec()).unwrap().replace("\"version\": 1,", "\"version\": 3,");
    store.put(&log(3), PutPayload::from(third)).await.unwrap();
    let table = open(&store).await.unwrap();
    let error = table.snapshot().await.unwrap_err();
    assert!(matches!(error, Error::MissingVersion { missing: 2, found: 3, .. }), "{error}");
    assert!(error.to_string().contains("missing version 2"), "{error}");
}

#[tokio::test]
async fn unknown_future_format() {
    let store = loaded().await;
    put(&store, &log(2), br#"{"format_version": 2, "version": 2, "something": "new"}"#).await;
    let error = open(&store).await.unwrap_err();
    assert!(
        matches!(&error, Error::UnsupportedFormat { found: 2, supported: 1, path } if path.ends_with("2.json")),
        "{error}"
    );
    assert!(error.to_string().contains("upgrade highwater"), "{error}");
}

#[tokio::test]
async fn state_file_checksum_mismatch() {
    let store = loaded().await;
    let table = open(&store).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    let ledger = snapshot.state["ledger"].clone();
    // Same size, different bytes.
    let damaged = "x".repeat(usize::try_from(ledger.bytes).unwrap());
    store.put(&table.path(&ledger.path), PutPayload::from(damaged)).await.unwrap();
    let error = table.read_state(&ledger).await.unwrap_err();
    assert!(matches!(&error, Error::StateChecksum { path, .. } if *path == ledger.path), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[tokio::test]
async fn staged_file_missing_before_commit() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = crate::common::table(&store).await;
    let mut run = table.begin(highwater_store::RunSpec::load(highwater_core::report::Pattern::Sequence)).await.unwrap();
    run.put_file("part-a.parquet", Bytes::from_static(b"a"), 1).await.unwrap();
    store.delete(&run.write_location("part-a.parquet")).await.unwrap();
    let before = everything(&store).await;
    let error = run.commit(None, None).await.unwrap_err();
    assert!(matches!(&error, Error::StagedFileMissing { path, .. } if path == "part-a.parquet"), "{error}");
    assert_eq!(table.snapshot().await.unwrap().version, 0, "nothing committed");
    assert_eq!(everything(&store).await, before);
}

#[tokio::test]
async fn staged_file_missing_at_publish() {
    // A commit landed, its publish was interrupted, then someone deleted the staged data.
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    crate::common::table(&inner).await;
    let faulty = highwater_test_support::FaultStore::new(Arc::clone(&inner)).with_fault(
        highwater_test_support::Fault::FailMatching {
            kind: Some(highwater_test_support::OpKind::Rename),
            path_contains: "staging".into(),
            times: 100,
        },
    );
    assert!(load_batch(faulty.into_dyn()).await.is_err(), "publish fails after the commit");
    let staged: Vec<_> =
        inner.list(Some(&Path::from("warehouse/orders/_highwater/staging"))).try_collect().await.unwrap();
    assert_eq!(staged.len(), 3);
    inner.delete(&staged[0].location).await.unwrap();
    let error = open(&inner).await.unwrap_err();
    assert!(
        matches!(&error, Error::StagedFileMissing { version: 1, staged, .. } if staged.ends_with(".staged")),
        "{error}"
    );
}
