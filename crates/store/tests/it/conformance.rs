//! One conformance suite of the table format, run against every backend: `InMemory` and
//! `LocalFileSystem` always, S3 (moto) when `HIGHWATER_TEST_S3_ENDPOINT` is set (required in CI).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use highwater_core::report::Pattern;
use highwater_core::watermark::WatermarkValue;
use highwater_store::{Error, Operation, PublishMode, RunSpec, Table, TableOptions};
use highwater_test_support::{Backend, Fault, FaultStore, OpKind};

use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::{options, root, schema, visible_files};

async fn commit_files(table: &Table, names: &[&str], watermark: i64) -> Result<u64, Error> {
    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await?;
    for name in names {
        run.put_file(name, Bytes::from(format!("{name} of {}", run.run_id())), 1).await?;
    }
    Ok(run.commit(Some(WatermarkValue::int64(watermark)), None).await?.version)
}

async fn create(store: &Arc<dyn ObjectStore>, options: TableOptions) -> Table {
    Table::create_with(Arc::clone(store), root(), &schema(), options).await.unwrap()
}

async fn create_commit_read(store: Arc<dyn ObjectStore>) {
    let table = create(&store, options()).await;
    assert!(matches!(
        Table::create_with(Arc::clone(&store), root(), &schema(), options()).await,
        Err(Error::TableExists { version: 0, .. })
    ));
    assert_eq!(commit_files(&table, &["a.parquet", "year=2024/b.parquet"], 5).await.unwrap(), 1);
    let reopened = Table::open_with(Arc::clone(&store), root(), options()).await.unwrap();
    let snapshot = reopened.snapshot().await.unwrap();
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.schema.as_ref(), &schema());
    assert_eq!(snapshot.watermark, Some(WatermarkValue::int64(5)));
    assert_eq!(snapshot.files["year=2024/b.parquet"].partition_values["year"].as_deref(), Some("2024"));
    assert_eq!(visible_files(&store).await.len(), 2);
    let history = reopened.history().await.unwrap();
    assert_eq!(history.iter().map(|c| c.operation).collect::<Vec<_>>(), [Operation::Load, Operation::Create]);
    assert_eq!(history[0].files_added, 2);
}

async fn conflict_leaves_nothing(store: Arc<dyn ObjectStore>) {
    let table = create(&store, options()).await;
    let mut first = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    let mut second = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    first.put_file("first.parquet", Bytes::from_static(b"1"), 1).await.unwrap();
    second.put_file("second.parquet", Bytes::from_static(b"2"), 1).await.unwrap();
    second.put_state("ledger", Bytes::from_static(b"second")).await.unwrap();
    first.commit(Some(WatermarkValue::int64(1)), None).await.unwrap();
    let error = second.commit(Some(WatermarkValue::int64(2)), None).await.unwrap_err();
    assert!(matches!(error, Error::Conflict { version: 1, .. }), "{error}");
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.files.keys().collect::<Vec<_>>(), ["first.parquet"]);
    assert!(snapshot.state.is_empty());
    assert_eq!(visible_files(&store).await.into_iter().collect::<Vec<_>>(), ["first.parquet"]);
    // The loser's staged data and state are gone too.
    let meta: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root().join("_highwater")))).await.unwrap();
    assert!(meta.iter().all(|m| !m.location.as_ref().contains("second")), "{meta:?}");
}

async fn recovery_finishes_publish(store: Arc<dyn ObjectStore>) {
    let table = create(&store, options()).await;
    commit_files(&table, &["old.parquet"], 1).await.unwrap();
    // The next run commits a replacement, then dies before publishing anything.
    let faulty = FaultStore::new(Arc::clone(&store)).with_fault(Fault::FailMatching {
        kind: Some(OpKind::Rename),
        path_contains: String::new(),
        times: u64::MAX,
    });
    let crashed = Table::open_with(faulty.into_dyn(), root(), options()).await.unwrap();
    let mut run = crashed.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    run.put_file("new.parquet", Bytes::from_static(b"new"), 1).await.unwrap();
    run.remove_file("old.parquet").unwrap();
    assert!(run.commit(Some(WatermarkValue::int64(2)), None).await.is_err());
    assert_eq!(visible_files(&store).await.into_iter().collect::<Vec<_>>(), ["old.parquet"], "not yet published");
    let reopened = Table::open_with(Arc::clone(&store), root(), options()).await.unwrap();
    assert_eq!(visible_files(&store).await.into_iter().collect::<Vec<_>>(), ["new.parquet"], "rolled forward on open");
    assert_eq!(reopened.recover().await.unwrap(), None, "idempotent");
    let located = reopened.files_at(1).await.unwrap();
    assert!(
        located[0].location.as_ref().contains("_highwater/replaced/00000000000000000002/old.parquet"),
        "{located:?}"
    );
}

async fn checkpoints_and_spilled_lists(store: Arc<dyn ObjectStore>) {
    let options = TableOptions { checkpoint_interval: 3, spill_threshold: 2, ..options() };
    let table = create(&store, options.clone()).await;
    for version in 1..=7u64 {
        let names: Vec<String> = (0..3).map(|i| format!("v{version}-{i}.parquet")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        commit_files(&table, &names, version as i64).await.unwrap();
    }
    let last = store.get(&root().join("_highwater").join("_last_checkpoint")).await;
    assert!(last.is_ok(), "a checkpoint pointer was written");
    let snapshot = Table::open_with(Arc::clone(&store), root(), options).await.unwrap().snapshot().await.unwrap();
    assert_eq!(snapshot.version, 7);
    assert_eq!(snapshot.files.len(), 21);
    // Time travel before and after the newest checkpoint.
    assert_eq!(table.snapshot_at(2).await.unwrap().files.len(), 6);
    assert_eq!(table.snapshot_at(6).await.unwrap().watermark, Some(WatermarkValue::int64(6)));
    assert!(matches!(table.snapshot_at(9).await, Err(Error::NoSuchVersion { version: 9, latest: 7 })));
}

async fn direct_publish(store: Arc<dyn ObjectStore>) {
    let options = TableOptions { publish: PublishMode::Direct, ..options() };
    let table = create(&store, options).await;
    commit_files(&table, &["a.parquet"], 1).await.unwrap();
    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    run.put_file("b.parquet", Bytes::from_static(b"b"), 1).await.unwrap();
    run.remove_file("a.parquet").unwrap();
    run.commit(Some(WatermarkValue::int64(2)), None).await.unwrap();
    // Replaced files stay in place until vacuum; the log says what is live.
    assert_eq!(visible_files(&store).await.len(), 2);
    assert_eq!(table.snapshot().await.unwrap().files.keys().collect::<Vec<_>>(), ["b.parquet"]);
    table.vacuum(Duration::ZERO).await.unwrap();
    assert_eq!(visible_files(&store).await.into_iter().collect::<Vec<_>>(), ["b.parquet"]);
}

async fn ambiguous_commit_retry_resolves_by_run_id(store: Arc<dyn ObjectStore>) {
    create(&store, options()).await;
    // The commit's PUT lands but its reply is lost: the retry finds the entry and reads it.
    let faulty = FaultStore::new(Arc::clone(&store)).with_fault(Fault::LoseReplyMatching {
        kind: Some(OpKind::Put),
        path_contains: "_highwater/log/".into(),
        times: 1,
    });
    let table = Table::open_with(faulty.into_dyn(), root(), options()).await.unwrap();
    assert_eq!(commit_files(&table, &["a.parquet"], 1).await.unwrap(), 1);
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!((snapshot.version, snapshot.files.len()), (1, 1));
    assert_eq!(visible_files(&store).await.into_iter().collect::<Vec<_>>(), ["a.parquet"]);
}

async fn runs_too_old_to_commit(store: Arc<dyn ObjectStore>) {
    let table = create(&store, TableOptions { staging_retention: Duration::from_millis(20), ..options() }).await;
    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    run.put_file("late.parquet", Bytes::from_static(b"late"), 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let error = run.commit(None, None).await.unwrap_err();
    assert!(matches!(error, Error::RunTooOld { .. }), "{error}");
    assert_eq!(table.snapshot().await.unwrap().version, 0);
    let left: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root().join("_highwater").join("staging"))))
            .await
            .unwrap();
    assert!(left.is_empty(), "the run cleaned up its staged data: {left:?}");
}

async fn probe_refuses_overwriting_store(store: Arc<dyn ObjectStore>) {
    let overwriting: Arc<dyn ObjectStore> = Arc::new(OverwritingStore(store));
    let error = Table::create_with(Arc::clone(&overwriting), root(), &schema(), options()).await.unwrap_err();
    assert!(matches!(error, Error::UnsafeStore { .. }), "{error}");
    // A pattern's first run creates its table through `begin_create`: it probes too.
    let spec = RunSpec::load(Pattern::Sequence);
    let Err(error) = Table::begin_create(overwriting, root(), &schema(), options(), spec).await else {
        panic!("begin_create accepted a store that overwrites");
    };
    assert!(matches!(error, Error::UnsafeStore { .. }), "{error}");
}

/// A store that ignores put-if-absent, like s3rver or an S3 without conditional writes.
#[derive(Debug)]
struct OverwritingStore(Arc<dyn ObjectStore>);

impl std::fmt::Display for OverwritingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Overwriting({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for OverwritingStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        _: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.0.put_opts(location, payload, object_store::PutOptions::default()).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.0.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Memory.fresh().store).await; })*
        }
        mod local {
            $(#[tokio::test] async fn $name() { let fixture = super::Backend::Local.fresh(); super::$name(fixture.store.clone()).await; })*
        }
        mod s3 {
            $(#[tokio::test] async fn $name() { if super::Backend::s3_available() { super::$name(super::Backend::S3.fresh().store).await; } })*
        }
    };
}

conformance!(
    create_commit_read,
    conflict_leaves_nothing,
    recovery_finishes_publish,
    checkpoints_and_spilled_lists,
    direct_publish,
    ambiguous_commit_retry_resolves_by_run_id,
    runs_too_old_to_commit,
    probe_refuses_overwriting_store,
);
