//! Vacuum, restore and time travel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use highwater_core::report::Pattern;
use highwater_core::watermark::WatermarkValue;
use highwater_store::{RunSpec, Table, TableOptions};
use highwater_test_support::Backend;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::{options, root, schema, visible_files};

/// v1: a, b (watermark 10, state s1); v2: a rewritten into c (watermark 20, state s2).
async fn rewritten(store: &Arc<dyn ObjectStore>, options: TableOptions) -> Table {
    let table = Table::create_with(Arc::clone(store), root(), &schema(), options).await.unwrap();
    let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    run.put_file("a.parquet", Bytes::from_static(b"a"), 1).await.unwrap();
    run.put_file("b.parquet", Bytes::from_static(b"b"), 1).await.unwrap();
    run.put_state("keys", Bytes::from_static(b"s1")).await.unwrap();
    run.commit(Some(WatermarkValue::int64(10)), None).await.unwrap();
    let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    run.remove_file("a.parquet").unwrap();
    run.put_file("c.parquet", Bytes::from_static(b"a, changed"), 1).await.unwrap();
    run.put_state("keys", Bytes::from_static(b"s2")).await.unwrap();
    run.commit(Some(WatermarkValue::int64(20)), None).await.unwrap();
    table
}

async fn bytes(store: &Arc<dyn ObjectStore>, path: &Path) -> Bytes {
    store.get(path).await.unwrap().bytes().await.unwrap()
}

#[tokio::test]
async fn readers_of_old_versions_find_replaced_files() {
    for backend in Backend::all() {
        let fixture = backend.fresh();
        let table = rewritten(&fixture.store, options()).await;
        let located = table.files_at(1).await.unwrap();
        let a = located.iter().find(|f| f.file.path == "a.parquet").unwrap();
        assert_eq!(
            a.location,
            root().join("_highwater").join("replaced").join("00000000000000000002").join("a.parquet")
        );
        assert_eq!(bytes(&fixture.store, &a.location).await, Bytes::from_static(b"a"));
        let b = located.iter().find(|f| f.file.path == "b.parquet").unwrap();
        assert_eq!(b.location, root().join("b.parquet"));
    }
}

#[tokio::test]
async fn restore_brings_back_data_watermark_and_state_together() {
    for backend in Backend::all() {
        let fixture = backend.fresh();
        let store = &fixture.store;
        let table = rewritten(store, options()).await;
        let committed = table.restore(1).await.unwrap();
        assert_eq!(committed.version, 3);
        let snapshot = table.snapshot().await.unwrap();
        assert_eq!(snapshot.watermark, Some(WatermarkValue::int64(10)));
        assert_eq!(snapshot.files.keys().collect::<Vec<_>>(), ["a.parquet", "b.parquet"]);
        assert_eq!(table.read_state(&snapshot.state["keys"]).await.unwrap(), Bytes::from_static(b"s1"));
        assert_eq!(visible_files(store).await.into_iter().collect::<Vec<_>>(), ["a.parquet", "b.parquet"]);
        assert_eq!(bytes(store, &root().join("a.parquet")).await, Bytes::from_static(b"a"));
        // The version restored from stays readable, and so does the rewrite it undid.
        let v2 = table.files_at(2).await.unwrap();
        assert!(
            v2.iter()
                .any(|f| f.file.path == "c.parquet" && f.location.as_ref().contains("replaced/00000000000000000003"))
        );
        assert_eq!(table.history().await.unwrap()[0].operation, highwater_store::Operation::Restore);
    }
}

#[tokio::test]
async fn vacuum_keeps_what_recent_versions_need() {
    for backend in Backend::all() {
        let fixture = backend.fresh();
        let store = &fixture.store;
        let table = rewritten(store, options()).await;
        // Every version is younger than an hour: nothing they refer to may go.
        let report = table.vacuum(Duration::from_secs(3600)).await.unwrap();
        assert!(report.deleted.is_empty(), "{report:?}");
        assert_eq!(report.oldest_readable_version, 0);
        assert_eq!(table.files_at(1).await.unwrap().len(), 2);
        assert_eq!(
            table.read_state(&table.snapshot_at(1).await.unwrap().state["keys"]).await.unwrap(),
            Bytes::from_static(b"s1")
        );
        // With no retention only the latest version stays readable.
        let report = table.vacuum(Duration::ZERO).await.unwrap();
        assert_eq!(report.oldest_readable_version, 2);
        assert!(report.deleted.iter().any(|p| p.ends_with("replaced/00000000000000000002/a.parquet")), "{report:?}");
        assert!(report.deleted.iter().any(|p| p.contains("state/00000000000000000001/keys-")), "{report:?}");
        let latest = table.snapshot().await.unwrap();
        assert_eq!(table.read_state(&latest.state["keys"]).await.unwrap(), Bytes::from_static(b"s2"));
        assert_eq!(visible_files(store).await.into_iter().collect::<Vec<_>>(), ["b.parquet", "c.parquet"]);
        assert!(table.files_at(1).await.is_err(), "a was vacuumed");
    }
}

#[tokio::test]
async fn vacuum_removes_abandoned_staging_and_temporaries_only_when_old() {
    let fixture = Backend::Local.fresh();
    let store = &fixture.store;
    let table = rewritten(store, options()).await;
    // A run that died before committing, and a LocalFileSystem temporary of a dead put.
    let mut abandoned = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    abandoned.put_file("d.parquet", Bytes::from_static(b"d"), 1).await.unwrap();
    abandoned.put_state("keys", Bytes::from_static(b"s3")).await.unwrap();
    let staged = abandoned.write_location("d.parquet");
    // A dead process runs no destructors (a dropped run would clean up after itself).
    std::mem::forget(abandoned);
    // What LocalFileSystem leaves when a process dies inside a put (hidden from its listings).
    let folder = fixture.dir.as_ref().unwrap().path().join(root().as_ref());
    let temporary = folder.join("_highwater/log/00000000000000000003.json#1");
    std::fs::write(&temporary, b"{").unwrap();
    // Young: kept (the run might still be alive).
    let report = table.vacuum(Duration::ZERO).await.unwrap();
    assert!(
        !report
            .deleted
            .iter()
            .any(|p| p.contains("staging") || p.contains('#') || p.contains("-keys") || p.ends_with("s3")),
        "{report:?}"
    );
    assert!(store.head(&staged).await.is_ok());
    assert!(temporary.exists());
    // Past the staging retention: removed. The log still reads (the temporary is no entry).
    let impatient =
        Table::open(folder.to_str().unwrap(), TableOptions { staging_retention: Duration::ZERO, ..options() })
            .await
            .unwrap();
    let report = impatient.vacuum(Duration::ZERO).await.unwrap();
    assert!(report.deleted.iter().any(|p| p.contains("staging")), "{report:?}");
    assert!(report.deleted.iter().any(|p| p.ends_with("json#1")), "{report:?}");
    assert!(store.head(&staged).await.is_err());
    assert!(!temporary.exists());
    assert_eq!(impatient.snapshot().await.unwrap().version, 2);
}

#[tokio::test]
async fn a_dropped_run_removes_its_staged_files_and_state() {
    let fixture = Backend::Local.fresh();
    let store = &fixture.store;
    let table = rewritten(store, options()).await;
    let before = table.snapshot().await.unwrap();
    let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    run.put_file("d.parquet", Bytes::from_static(b"d"), 1).await.unwrap();
    run.put_state("keys", Bytes::from_static(b"s3")).await.unwrap();
    let staged = run.write_location("d.parquet");
    let run_id = run.run_id().to_owned();
    assert!(store.head(&staged).await.is_ok());
    // As a cancelled future drops it (Ctrl-C, a timeout).
    drop(run);
    assert!(highwater_store::stopped_runs_settled(Duration::from_secs(10)).await);
    assert!(store.head(&staged).await.is_err(), "the staged file is gone");
    let leftovers: Vec<String> = store
        .list(Some(&root().join("_highwater")))
        .map_ok(|m| m.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.contains(&run_id))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());
    assert_eq!(table.snapshot().await.unwrap().version, before.version);
}

#[tokio::test]
async fn a_commit_whose_caller_stops_waiting_still_lands_whole() {
    let fixture = Backend::Local.fresh();
    let store = &fixture.store;
    let table = rewritten(store, options()).await;
    let before = table.snapshot().await.unwrap().version;
    let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    run.put_file("d.parquet", Bytes::from_static(b"d"), 1).await.unwrap();
    // The caller gives up at once: the commit, a task of its own, goes on.
    let mut commit = Box::pin(run.commit(None, None));
    // Polled once (the commit task is spawned, nothing of it has run yet), then dropped.
    assert!(futures::poll!(commit.as_mut()).is_pending());
    drop(commit);
    assert!(highwater_store::stopped_runs_settled(Duration::from_secs(10)).await);
    let after = Table::open_with(Arc::clone(store), root(), options()).await.unwrap();
    let snapshot = after.snapshot().await.unwrap();
    assert_eq!(snapshot.version, before + 1);
    assert!(snapshot.files.contains_key("d.parquet"), "{:?}", snapshot.files.keys());
    assert!(store.head(&root().join("d.parquet")).await.is_ok(), "published");
}

#[tokio::test]
async fn vacuum_where_nothing_was_committed_removes_old_staging_of_dead_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("orders").display().to_string();
    let place = highwater_store::incremental::Place::Location(location.clone());
    // Nothing there at all: nothing to do, and no folder made.
    assert_eq!(place.vacuum(Duration::ZERO, &options()).await.unwrap().deleted.len(), 0);
    assert!(!dir.path().join("orders").exists());
    // A first run that died (no destructors) after staging a file.
    let mut run = place.begin(&schema(), &options(), RunSpec::load(Pattern::Sequence)).await.unwrap();
    run.put_file("a.parquet", Bytes::from_static(b"a"), 1).await.unwrap();
    std::mem::forget(run);
    assert_eq!(place.vacuum(Duration::ZERO, &options()).await.unwrap().deleted.len(), 0, "young: kept");
    let impatient = TableOptions { staging_retention: Duration::ZERO, ..options() };
    let report = place.vacuum(Duration::ZERO, &impatient).await.unwrap();
    assert_eq!(report.deleted.len(), 1, "{report:?}");
    assert!(report.deleted[0].contains("_highwater/staging/"), "{report:?}");
    assert!(place.open_table(&options()).await.unwrap().is_none());
}
