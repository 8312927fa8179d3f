//! Damaged metadata: each case is a typed error naming the object, and nothing is committed.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use highwater_core::report::Pattern;
use highwater_store::{Error, RunSpec, Table, TableOptions};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use highwater_test_support::{Backend, Fault, FaultStore, OpKind};

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

/// Every object of the store with its listed size and its bytes, to prove a failed operation
/// changed nothing (no object added, removed, moved or rewritten).
async fn everything(store: &Arc<dyn ObjectStore>) -> Vec<(String, u64, Bytes)> {
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut all = Vec::new();
    for meta in listed {
        let bytes = store.get(&meta.location).await.unwrap().bytes().await.unwrap();
        all.push((meta.location.to_string(), meta.size, bytes));
    }
    all.sort();
    all
}

/// A run on the damaged table fails too, and neither it nor the failed open changed the store.
async fn no_run_commits(store: &Arc<dyn ObjectStore>, before: &[(String, u64, Bytes)]) -> Error {
    let error = load_batch(Arc::clone(store)).await.expect_err("no run may commit on a damaged table");
    assert_eq!(everything(store).await, before, "the store changed after: {error}");
    error
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
    let error = no_run_commits(&store, &before).await;
    assert!(matches!(&error, Error::Corrupt { kind: "commit", .. }), "{error}");
}

#[tokio::test]
async fn truncated_commit() {
    let store = loaded().await;
    let whole = store.get(&log(1)).await.unwrap().bytes().await.unwrap();
    store.put(&log(2), PutPayload::from_bytes(whole.slice(..whole.len() / 2))).await.unwrap();
    let before = everything(&store).await;
    let error = open(&store).await.unwrap_err();
    assert!(
        matches!(&error, Error::Corrupt { kind: "commit", path, reason }
            if path.ends_with("00000000000000000002.json") && reason.starts_with("truncated")),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("truncated") && message.contains("00000000000000000002.json"), "{message}");
    let error = no_run_commits(&store, &before).await;
    assert!(
        matches!(&error, Error::Corrupt { kind: "commit", reason, .. } if reason.starts_with("truncated")),
        "{error}"
    );
}

#[tokio::test]
async fn missing_version() {
    let store = loaded().await;
    let whole = store.get(&log(1)).await.unwrap().bytes().await.unwrap();
    let third = String::from_utf8(whole.to_vec()).unwrap().replace("\"version\": 1,", "\"version\": 3,");
    assert_ne!(third.as_bytes(), &whole[..], "the copy must claim version 3");
    store.put(&log(3), PutPayload::from(third)).await.unwrap();
    let before = everything(&store).await;
    let table = open(&store).await.unwrap();
    let error = table.snapshot().await.unwrap_err();
    assert!(matches!(&error, Error::MissingVersion { missing: 2, found: 3, .. }), "{error}");
    assert!(error.to_string().contains("missing version 2"), "{error}");
    let error = no_run_commits(&store, &before).await;
    assert!(matches!(&error, Error::MissingVersion { missing: 2, found: 3, .. }), "{error}");
}

#[tokio::test]
async fn unknown_future_format() {
    let store = loaded().await;
    put(&store, &log(2), br#"{"format_version": 2, "version": 2, "something": "new"}"#).await;
    let before = everything(&store).await;
    let error = open(&store).await.unwrap_err();
    assert!(
        matches!(&error, Error::UnsupportedFormat { found: 2, supported: 1, path } if path.ends_with("2.json")),
        "{error}"
    );
    assert!(error.to_string().contains("upgrade highwater"), "{error}");
    let error = no_run_commits(&store, &before).await;
    assert!(matches!(&error, Error::UnsupportedFormat { found: 2, .. }), "{error}");
}

#[tokio::test]
async fn unknown_future_format_of_the_checkpoint_pointer() {
    let store = loaded().await;
    let pointer = Path::from("warehouse/orders/_highwater/_last_checkpoint");
    put(&store, &pointer, br#"{"format_version": 7, "version": 1}"#).await;
    let before = everything(&store).await;
    let error = open(&store).await.unwrap_err();
    assert!(
        matches!(&error, Error::UnsupportedFormat { found: 7, supported: 1, path } if path.ends_with("_last_checkpoint")),
        "{error}"
    );
    let error = no_run_commits(&store, &before).await;
    assert!(matches!(&error, Error::UnsupportedFormat { found: 7, .. }), "{error}");
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
    let before = everything(&store).await;
    let error = table.read_state(&ledger).await.unwrap_err();
    assert!(
        matches!(&error, Error::StateChecksum { path, detail } if *path == ledger.path && detail.starts_with("checksum")),
        "{error}"
    );
    assert!(error.to_string().contains("checksum"), "{error}");
    // Another size: named as such.
    store.put(&table.path(&ledger.path), PutPayload::from_static(b"short")).await.unwrap();
    let before_short = everything(&store).await;
    let error = table.read_state(&ledger).await.unwrap_err();
    assert!(
        matches!(&error, Error::StateChecksum { path, detail } if *path == ledger.path && detail.starts_with("5 bytes")),
        "{error}"
    );
    assert_eq!(everything(&store).await, before_short, "reading a damaged state file changed the store");
    assert_ne!(before, before_short);
}

/// A file list spilled into a state file is read on every open: damaged, the open fails.
#[tokio::test]
async fn damaged_spilled_file_list() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let spilling = TableOptions { spill_threshold: 1, ..options() };
    let table =
        Table::create_with(Arc::clone(&store), root(), &crate::common::schema(), spilling.clone()).await.unwrap();
    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    run.put_file("a.parquet", Bytes::from_static(b"a"), 1).await.unwrap();
    run.put_file("b.parquet", Bytes::from_static(b"b"), 1).await.unwrap();
    run.commit(None, None).await.unwrap();
    let spill = table.commit(1).await.unwrap().added_spill.expect("two files spill past a threshold of one");
    let mut damaged = table.read_state(&spill).await.unwrap().to_vec();
    damaged[0] ^= 0x20;
    store.put(&table.path(&spill.path), PutPayload::from(damaged)).await.unwrap();
    let before = everything(&store).await;
    let error = Table::open_with(Arc::clone(&store), root(), spilling).await.unwrap_err();
    assert!(matches!(&error, Error::StateChecksum { path, .. } if *path == spill.path), "{error}");
    let error = no_run_commits(&store, &before).await;
    assert!(matches!(&error, Error::StateChecksum { .. }), "{error}");
}

#[tokio::test]
async fn staged_file_missing_before_commit() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = crate::common::table(&store).await;
    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
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
    // A commit landed, its publish was interrupted, then someone deleted one of its staged files
    // (each of the three in turn: publishing must not move the others first).
    for backend in [Backend::Memory, Backend::Local] {
        for gone in 0..3 {
            let fixture = backend.fresh();
            let inner = &fixture.store;
            crate::common::table(inner).await;
            let faulty = FaultStore::new(Arc::clone(inner)).with_fault(Fault::FailMatching {
                kind: Some(OpKind::Rename),
                path_contains: "staging".into(),
                times: 100,
            });
            assert!(load_batch(faulty.into_dyn()).await.is_err(), "publish fails after the commit");
            let mut staged: Vec<_> =
                inner.list(Some(&Path::from("warehouse/orders/_highwater/staging"))).try_collect().await.unwrap();
            staged.sort_by(|a, b| a.location.cmp(&b.location));
            assert_eq!(staged.len(), 3);
            inner.delete(&staged[gone].location).await.unwrap();
            let missing = staged[gone].location.to_string();
            let before = everything(inner).await;
            let error = open(inner).await.unwrap_err();
            assert!(
                matches!(&error, Error::StagedFileMissing { version: 1, staged, .. }
                    if staged.ends_with(".staged") && missing.ends_with(staged.as_str())),
                "{backend:?}, file {gone} gone: {error}"
            );
            // Nothing of the broken version was published: no file of it half-visible.
            let visible = crate::common::visible_files(inner).await;
            assert!(visible.is_empty(), "{backend:?}, file {gone} gone: {visible:?} published");
            let error = no_run_commits(inner, &before).await;
            assert!(matches!(&error, Error::StagedFileMissing { version: 1, .. }), "{error}");
        }
    }
}
