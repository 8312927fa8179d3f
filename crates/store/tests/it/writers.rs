//! The sink, the merge-by-key writer, compaction, adoption and schema evolution.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use highwater_core::key::{KeyHasher, KeyOptions};
use highwater_core::report::Pattern;
use highwater_core::watermark::WatermarkValue;
use highwater_store::write::{
    ChangeOp, Codec, CompactOptions, MergeOptions, MergeWriter, ParquetSink, SchemaEvolution, SinkOptions, compact,
    conform, reconcile,
};
use highwater_store::{Operation, RunSpec, Table, TableOptions};
use highwater_test_support::data::{put_parquet, source_rows};
use highwater_test_support::{Backend, Fault, FaultStore, OpKind, crash_harness};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use proptest::prelude::*;

use crate::common::{options, read_table};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Utf8, true),
        Field::new("part", DataType::Int64, true),
    ]))
}

fn rows(ids: &[i64], value: &str) -> RecordBatch {
    let values: Vec<Option<String>> = ids.iter().map(|id| Some(format!("{value}{id}"))).collect();
    let parts: Vec<Option<i64>> = ids.iter().map(|id| Some(id % 3)).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(values)),
            Arc::new(Int64Array::from(parts)),
        ],
    )
    .unwrap()
}

fn root() -> Path {
    Path::from("t")
}

async fn new_table(store: &Arc<dyn ObjectStore>) -> Table {
    Table::create_with(Arc::clone(store), root(), &schema(), options()).await.unwrap()
}

/// One file per chunk of `files`, committed as version 1.
async fn load(table: &Table, files: &[Vec<i64>], sink: SinkOptions) {
    let mut run = table.begin(RunSpec::load(Pattern::Timestamp)).await.unwrap();
    for ids in files {
        let mut writer = ParquetSink::new(run.file_target(), schema(), sink.clone()).unwrap();
        writer.write(&rows(ids, "v")).await.unwrap();
        for file in writer.finish().await.unwrap() {
            run.add_file(file).unwrap();
        }
    }
    run.commit(Some(WatermarkValue::int64(1)), None).await.unwrap();
}

/// The table as `id → value`.
async fn contents(table: &Table) -> BTreeMap<i64, String> {
    let batch = read_table(table).await;
    let ids = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().clone();
    let values = batch.column_by_name("value").unwrap().as_string::<i32>().clone();
    ids.iter().zip(values.iter()).map(|(id, value)| (id.unwrap(), value.unwrap_or("null").to_owned())).collect()
}

async fn merge(
    table: &Table,
    changes: &[(ChangeOp, Vec<i64>, &str)],
    budget: usize,
) -> highwater_store::write::MergeOutcome {
    let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
    let options = MergeOptions { memory_budget_rows: budget, ..MergeOptions::default() };
    let mut writer = MergeWriter::new(&run, schema(), key, options).unwrap();
    for (op, ids, value) in changes {
        let batch = match op {
            ChangeOp::Upsert => rows(ids, value),
            ChangeOp::Delete => rows(ids, "").project(&[0]).unwrap(),
        };
        writer.push(*op, batch).await.unwrap();
    }
    let outcome = writer.finish(&mut run).await.unwrap();
    run.commit(Some(WatermarkValue::int64(2)), None).await.unwrap();
    outcome
}

#[tokio::test]
async fn sink_partitions_like_spark_and_reads_back() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = new_table(&store).await;
    let sink = SinkOptions { partition_by: vec!["part".into()], ..SinkOptions::default() };
    load(&table, &[(1..=30).collect()], sink).await;
    let files = visible_files_at(&store).await;
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("part=") && f.ends_with(".parquet")), "{files:?}");
    let batch = read_table(&table).await;
    assert_eq!(batch.num_rows(), 30);
    assert_eq!(batch.schema(), schema(), "partition values come back as a typed column");
    let parts = batch.column_by_name("part").unwrap().as_primitive::<Int64Type>();
    assert!((0..30).all(|i| parts.value(i) == (i as i64 + 1) % 3));
}

#[tokio::test]
async fn sink_rolls_files_at_the_target_size() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = new_table(&store).await;
    let mut run = table.begin(RunSpec::load(Pattern::Timestamp)).await.unwrap();
    let options = SinkOptions { target_file_bytes: 2_000, row_group_rows: 100, ..SinkOptions::default() };
    let mut sink = ParquetSink::new(run.file_target(), schema(), options).unwrap();
    for chunk in (1..=2000).collect::<Vec<i64>>().chunks(100) {
        sink.write(&rows(chunk, "value-")).await.unwrap();
    }
    let files = sink.finish().await.unwrap();
    assert!(files.len() > 3, "{} files", files.len());
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 2000);
    for file in files {
        run.add_file(file).unwrap();
    }
    run.commit(None, None).await.unwrap();
    assert_eq!(contents(&table).await.len(), 2000);
}

#[tokio::test]
async fn merge_replaces_only_the_file_holding_the_keys() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = new_table(&store).await;
    // Ten key-clustered files: 1..=100, 101..=200, …
    let files: Vec<Vec<i64>> = (0..10).map(|f| (f * 100 + 1..=f * 100 + 100).collect()).collect();
    load(&table, &files, SinkOptions::default()).await;
    let before = table.snapshot().await.unwrap();
    let outcome =
        merge(&table, &[(ChangeOp::Upsert, vec![305, 1005], "new"), (ChangeOp::Delete, vec![310], "")], 1000).await;
    assert_eq!(outcome.files_replaced.len(), 1, "{outcome:?}");
    assert_eq!(outcome.files_skipped_by_statistics, 9);
    let replaced = &outcome.files_replaced[0];
    assert_eq!(before.files[replaced].rows, 100);
    assert_eq!((outcome.upserts, outcome.deletes, outcome.rows_removed), (2, 1, 2));
    assert_eq!((outcome.rows_replaced, outcome.rows_deleted), (1, 1), "1005 is new, 305 replaced, 310 deleted");
    let now = contents(&table).await;
    assert_eq!(now.len(), 1000);
    assert_eq!(now[&305], "new305");
    assert_eq!(now[&1005], "new1005");
    assert!(!now.contains_key(&310));
    assert_eq!(now[&311], "v311");
    // The replaced file is kept for readers of version 1, not visible in the folder.
    assert!(!visible_files_at(&store).await.contains(replaced));
}

#[tokio::test]
async fn unique_keys_stream_upserts_and_give_the_same_result() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = new_table(&store).await;
    let files: Vec<Vec<i64>> = (0..4).map(|f| (f * 100 + 1..=f * 100 + 100).collect()).collect();
    load(&table, &files, SinkOptions::default()).await;
    let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
    let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
    let options = MergeOptions { memory_budget_rows: 1, ..MergeOptions::default() };
    let mut writer = MergeWriter::new(&run, schema(), key, options).unwrap().with_unique_keys();
    writer.push(ChangeOp::Upsert, rows(&[5, 150, 1000], "new")).await.unwrap();
    writer.push(ChangeOp::Delete, rows(&[7, 399], "").project(&[0]).unwrap()).await.unwrap();
    let twice = writer.push(ChangeOp::Upsert, rows(&[5], "again")).await.unwrap_err();
    assert!(twice.to_string().contains("id=5"), "{twice}");
    let outcome = writer.finish(&mut run).await.unwrap();
    run.commit(None, None).await.unwrap();
    assert_eq!((outcome.upserts, outcome.deletes, outcome.rows_replaced, outcome.rows_deleted), (3, 2, 2, 2));
    assert_eq!(outcome.files_replaced.len(), 3, "the file of 200..=300 holds no changed key: {outcome:?}");
    assert_eq!(outcome.files_skipped_by_statistics, 1);
    let now = contents(&table).await;
    assert_eq!(now.len(), 400 - 2 + 1);
    assert_eq!(
        (now[&5].as_str(), now[&150].as_str(), now[&1000].as_str(), now[&6].as_str()),
        ("new5", "new150", "new1000", "v6")
    );
    assert!(!now.contains_key(&7) && !now.contains_key(&399));
}

/// Keys kept through a truncate, the memory budget, the expected rows.
type TruncateCase<'a> = (&'a [i64], usize, &'a [(i64, &'a str)]);

#[tokio::test]
async fn a_truncate_keeps_only_the_named_keys_then_applies_the_changes() {
    let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
    let fingerprint = |id: i64| key.fingerprints(&rows(&[id], "")).unwrap()[0];
    let cases: [TruncateCase<'_>; 3] = [
        (&[7, 60], 1000, &[(7, "after7"), (60, "v60"), (200, "after200")]),
        (&[], 1000, &[(7, "after7"), (200, "after200")]),
        (&[3], 1, &[(3, "v3"), (7, "after7"), (200, "after200")]),
    ];
    for (keep, budget, expected) in cases {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let table = new_table(&store).await;
        load(&table, &[(1..=50).collect(), (51..=100).collect()], SinkOptions::default()).await;
        let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
        let options = MergeOptions { memory_budget_rows: budget, ..MergeOptions::default() };
        let mut writer = MergeWriter::new(&run, schema(), key.clone(), options).unwrap();
        writer.push(ChangeOp::Upsert, rows(&[200, 7], "after")).await.unwrap();
        writer.truncate(keep.iter().map(|id| fingerprint(*id)).collect());
        let outcome = writer.finish(&mut run).await.unwrap();
        run.commit(None, None).await.unwrap();
        let expected: BTreeMap<i64, String> = expected.iter().map(|(id, v)| (*id, (*v).to_owned())).collect();
        assert_eq!(contents(&table).await, expected, "keep {keep:?}");
        assert_eq!(outcome.rows_truncated, 100 - keep.len() as u64, "{outcome:?}");
        assert_eq!(outcome.files_replaced.len(), 2);
    }
}

#[tokio::test]
async fn a_tiny_budget_spills_by_bucket_and_gives_the_same_result() {
    let changes: Vec<(ChangeOp, Vec<i64>, &str)> = vec![
        (ChangeOp::Upsert, (1..=150).step_by(3).collect(), "a"),
        (ChangeOp::Delete, (2..=150).step_by(5).collect(), ""),
        (ChangeOp::Upsert, (100..=260).collect(), "b"),
        (ChangeOp::Delete, vec![101, 250, 900], ""),
    ];
    let mut results = Vec::new();
    for budget in [1_000_000, 16] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let table = new_table(&store).await;
        load(&table, &[(1..=100).collect(), (101..=200).collect()], SinkOptions::default()).await;
        let outcome = merge(&table, &changes, budget).await;
        if budget == 16 {
            assert!(outcome.buckets > 1, "{outcome:?}");
            assert!(outcome.max_rows_held <= 16, "{outcome:?}");
        } else {
            assert_eq!(outcome.buckets, 1);
        }
        // No spill files or intermediate files are left behind or committed.
        let staged =
            futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root().join("_highwater").join("staging"))))
                .await
                .unwrap();
        assert!(staged.is_empty(), "{staged:?}");
        results.push(contents(&table).await);
    }
    assert_eq!(results[0], results[1]);
}

#[derive(Clone, Debug)]
enum Change {
    Upsert(Vec<i64>, u8),
    Delete(Vec<i64>),
}

fn change() -> impl Strategy<Value = Change> {
    let ids = prop::collection::vec(0i64..60, 0..15);
    prop_oneof![(ids.clone(), any::<u8>()).prop_map(|(ids, v)| Change::Upsert(ids, v)), ids.prop_map(Change::Delete)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For random targets and change sets the result equals applying the changes to a map,
    /// whatever the memory budget.
    #[test]
    fn merge_equals_a_map_model(
        files in prop::collection::vec(prop::collection::btree_set(0i64..60, 0..20), 0..4),
        changes in prop::collection::vec(change(), 0..6),
        budget in prop_oneof![Just(7usize), Just(1_000usize)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            // A target: unique ids across files.
            let mut seen = std::collections::BTreeSet::new();
            let files: Vec<Vec<i64>> = files.into_iter().map(|ids| ids.into_iter().filter(|id| seen.insert(*id)).collect::<Vec<_>>()).filter(|ids| !ids.is_empty()).collect();
            let mut model: BTreeMap<i64, String> = files.iter().flatten().map(|id| (*id, format!("v{id}"))).collect();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let table = new_table(&store).await;
            load(&table, &files, SinkOptions::default()).await;
            let labels: Vec<String> = changes.iter().map(|c| match c { Change::Upsert(_, v) => format!("u{v}-"), Change::Delete(_) => String::new() }).collect();
            let mut pushed: Vec<(ChangeOp, Vec<i64>, &str)> = Vec::new();
            for (change, label) in changes.iter().zip(&labels) {
                match change {
                    Change::Upsert(ids, _) => {
                        // Within one batch a key's later row wins too.
                        for id in ids {
                            model.insert(*id, format!("{label}{id}"));
                        }
                        pushed.push((ChangeOp::Upsert, ids.clone(), label.as_str()));
                    }
                    Change::Delete(ids) => {
                        for id in ids {
                            model.remove(id);
                        }
                        pushed.push((ChangeOp::Delete, ids.clone(), ""));
                    }
                }
            }
            merge(&table, &pushed, budget).await;
            assert_eq!(contents(&table).await, model);
        });
    }
}

#[tokio::test]
async fn compaction_changes_no_data() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = new_table(&store).await;
    let sink = SinkOptions { partition_by: vec!["part".into()], ..SinkOptions::default() };
    for chunk in (1..=60).collect::<Vec<i64>>().chunks(10) {
        let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
        let mut writer = ParquetSink::new(run.file_target(), schema(), sink.clone()).unwrap();
        writer.write(&rows(chunk, "v")).await.unwrap();
        for file in writer.finish().await.unwrap() {
            run.add_file(file).unwrap();
        }
        run.commit(Some(WatermarkValue::int64(chunk[9])), None).await.unwrap();
    }
    let before = contents(&table).await;
    assert_eq!(table.snapshot().await.unwrap().files.len(), 18);
    let outcome = compact(&table, CompactOptions { sink, ..CompactOptions::default() }).await.unwrap();
    assert_eq!((outcome.files_in, outcome.files_out, outcome.rows), (18, 3, 60));
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.files.len(), 3);
    assert_eq!(snapshot.watermark, Some(WatermarkValue::int64(60)), "compaction keeps the watermark");
    assert_eq!(table.history().await.unwrap()[0].operation, Operation::Compact);
    assert_eq!(contents(&table).await, before);
    // Nothing small left: a second compaction has nothing to do.
    assert!(compact(&table, CompactOptions::default()).await.unwrap().committed.is_none());
}

#[tokio::test]
async fn adopting_a_folder_reads_back_identically() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let first = source_rows(1, 500, 9);
    let second = source_rows(501, 500, 9);
    put_parquet(&store, "job-output/part-00000.snappy.parquet", &first, 100).await;
    put_parquet(&store, "job-output/part-00001.snappy.parquet", &second, 100).await;
    store.put(&Path::from("job-output/_SUCCESS"), object_store::PutPayload::from_static(b"")).await.unwrap();
    let table = Table::adopt_with(Arc::clone(&store), Path::from("job-output"), "job-output", options()).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.version, 0);
    assert_eq!(snapshot.last_commit.operation, Operation::Adopt);
    assert_eq!(snapshot.rows(), 1000);
    assert!(snapshot.state.contains_key("adopted"));
    let read = read_table(&table).await;
    let expected = arrow_select::concat::concat_batches(&first.schema(), &[first, second]).unwrap();
    assert_eq!(read, expected);
    // Adopting twice is refused.
    assert!(Table::adopt_with(Arc::clone(&store), Path::from("job-output"), "job-output", options()).await.is_err());
}

#[tokio::test]
async fn schema_evolution_adds_nullable_columns() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let table = new_table(&store).await;
    load(&table, &[vec![1, 2]], SinkOptions::default()).await;
    let wider = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Utf8, true),
        Field::new("part", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, false),
    ]));
    let table_schema = table.schema().await.unwrap();
    assert!(reconcile(&table_schema, &wider, SchemaEvolution::Fail, "new rows").is_err());
    let evolved = reconcile(&table_schema, &wider, SchemaEvolution::AddNullable, "new rows").unwrap();
    let mut run = table.begin(RunSpec::load(Pattern::Timestamp)).await.unwrap();
    run.set_schema(Arc::clone(&evolved));
    let batch = RecordBatch::try_new(
        Arc::clone(&evolved),
        vec![
            Arc::new(Int64Array::from(vec![3])) as ArrayRef,
            Arc::new(StringArray::from(vec!["c"])),
            Arc::new(Int64Array::from(vec![0])),
            Arc::new(StringArray::from(vec!["new"])),
        ],
    )
    .unwrap();
    let mut sink = ParquetSink::new(run.file_target(), Arc::clone(&evolved), SinkOptions::default()).unwrap();
    sink.write(&batch).await.unwrap();
    for file in sink.finish().await.unwrap() {
        run.add_file(file).unwrap();
    }
    run.commit(None, None).await.unwrap();
    let read = read_table(&table).await;
    let extra = read.column_by_name("extra").unwrap();
    assert_eq!((extra.null_count(), extra.len()), (2, 3), "older files read the new column as nulls");
    assert_eq!(table.snapshot_at(1).await.unwrap().schema.fields().len(), 3, "the schema is kept per version");
}

/// A run that merges changes into a table (sink + merge + commit), crashed at every operation.
#[tokio::test]
async fn crash_anywhere_in_a_merge_run() {
    for backend in [Backend::Memory, Backend::Local] {
        crash_harness(
            backend,
            async |store| {
                let table = new_table(&store).await;
                load(&table, &[(1..=20).collect(), (21..=40).collect()], SinkOptions::default()).await;
            },
            async |store| {
                let table = Table::open_with(store, root(), options()).await.map_err(|e| e.to_string())?;
                let mut run = table.begin(RunSpec::load(Pattern::Cdc)).await.map_err(|e| e.to_string())?;
                if run.base().watermark == Some(WatermarkValue::int64(2)) {
                    return run.abort().await.map_err(|e| e.to_string());
                }
                let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
                let mut writer =
                    MergeWriter::new(&run, schema(), key, MergeOptions::default()).map_err(|e| e.to_string())?;
                writer.push(ChangeOp::Upsert, rows(&[5, 41], "new")).await.map_err(|e| e.to_string())?;
                writer
                    .push(ChangeOp::Delete, rows(&[25], "").project(&[0]).unwrap())
                    .await
                    .map_err(|e| e.to_string())?;
                writer.finish(&mut run).await.map_err(|e| e.to_string())?;
                run.commit(Some(WatermarkValue::int64(2)), None).await.map_err(|e| e.to_string())?;
                Ok(())
            },
            async |store| {
                let table = Table::open_with(Arc::clone(&store), root(), options()).await.unwrap();
                let snapshot = table.snapshot().await.unwrap();
                let visible = visible_files_at(&store).await;
                assert_eq!(visible, snapshot.files.keys().cloned().collect(), "only live files are visible");
                (snapshot.watermark, contents(&table).await)
            },
        )
        .await;
    }
}

async fn visible_files_at(store: &Arc<dyn ObjectStore>) -> std::collections::BTreeSet<String> {
    let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root()))).await.unwrap();
    listed
        .into_iter()
        .filter_map(|m| {
            let relative: Vec<String> = m.location.prefix_match(&root())?.map(|p| p.as_ref().to_owned()).collect();
            let relative = relative.join("/");
            (!relative.starts_with("_highwater")).then_some(relative)
        })
        .collect()
}

/// Every object under the table's root, by path.
async fn all_objects(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, bytes::Bytes> {
    let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&root()))).await.unwrap();
    let mut all = BTreeMap::new();
    for meta in listed {
        let bytes = store.get(&meta.location).await.unwrap().bytes().await.unwrap();
        all.insert(meta.location.to_string(), bytes);
    }
    all
}

/// `retain_replaced` (default `true`): a file an upsert replaced moves under
/// `_highwater/replaced/<version>/`, where readers of older versions and `restore` find it; with
/// `false` it is deleted at publish. The commit records the choice, so a roll-forward by a handle
/// opened with the other option still follows the committing run's.
#[tokio::test]
async fn retain_replaced_keeps_or_deletes_the_file_a_merge_replaced() {
    assert!(TableOptions::default().retain_replaced, "the default keeps replaced files");
    for retain in [false, true] {
        for crash_before_publish in [false, true] {
            let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let writing = TableOptions { retain_replaced: retain, ..options() };
            let table = Table::create_with(Arc::clone(&inner), root(), &schema(), writing.clone()).await.unwrap();
            load(&table, &[(1..=10).collect(), (11..=20).collect()], SinkOptions::default()).await;
            let before = all_objects(&inner).await;
            // The run commits through a store that dies at the first move of the publish.
            let faulty = FaultStore::new(Arc::clone(&inner));
            if crash_before_publish {
                faulty.inject(Fault::CrashMatching {
                    kind: Some(OpKind::Rename),
                    path_contains: "staging".into(),
                    skip: 0,
                    after: false,
                });
            }
            let running = Table::open_with(faulty.clone().into_dyn(), root(), writing.clone()).await.unwrap();
            let mut run = running.begin(RunSpec::load(Pattern::Cdc)).await.unwrap();
            let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
            let mut writer = MergeWriter::new(&run, schema(), key, MergeOptions::default()).unwrap();
            writer.push(ChangeOp::Upsert, rows(&[5], "new")).await.unwrap();
            let outcome = writer.finish(&mut run).await.unwrap();
            let committed = run.commit(Some(WatermarkValue::int64(2)), None).await;
            assert_eq!(committed.is_err(), crash_before_publish, "{committed:?}");
            assert_eq!(outcome.files_replaced.len(), 1, "{outcome:?}");
            let replaced = outcome.files_replaced[0].clone();
            let original = before[root().join(replaced.as_str()).as_ref()].clone();
            // After a crash a new process rolls the publish forward, with the other option.
            let reading = TableOptions { retain_replaced: !retain, ..options() };
            let table = Table::open_with(Arc::clone(&inner), root(), reading).await.unwrap();
            assert_eq!(table.commit(2).await.unwrap().retain_replaced, retain);
            let case = format!("retain_replaced {retain}, crash before publish {crash_before_publish}");

            let now = all_objects(&inner).await;
            let kept = root().join("_highwater").join("replaced").join("00000000000000000002");
            let kept = replaced.split('/').fold(kept, Path::join);
            assert!(!visible_files_at(&inner).await.contains(&replaced), "{case}: still visible");
            assert!(!now.contains_key(root().join(replaced.as_str()).as_ref()), "{case}");
            assert_eq!(now.get(kept.as_ref()), retain.then_some(&original), "{case}: under replaced/");
            if !retain {
                let file_name = replaced.rsplit('/').next().unwrap();
                assert!(!now.keys().any(|path| path.ends_with(file_name)), "{case}: {:?}", now.keys());
            }
            assert_eq!(contents(&table).await[&5], "new5", "{case}");
            // Readers of version 1 and `restore` need the replaced file.
            let located = table.files_at(1).await;
            let restored = table.restore(1).await;
            if retain {
                let located = located.unwrap();
                assert!(located.iter().any(|f| f.file.path == replaced && f.location == kept), "{case}");
                assert_eq!(restored.unwrap().version, 3);
                assert_eq!(contents(&table).await[&5], "v5", "{case}: restored");
            } else {
                let error = located.unwrap_err();
                assert!(error.to_string().contains(&replaced), "{case}: {error}");
                assert!(restored.is_err(), "{case}: restored without the replaced file");
                assert_eq!(table.snapshot().await.unwrap().version, 2, "{case}");
            }
        }
    }
}

/// The codec of every column chunk of a table's data files.
async fn codecs(store: &Arc<dyn ObjectStore>, table: &Table) -> Vec<parquet::basic::Compression> {
    let mut codecs = Vec::new();
    for path in table.snapshot().await.unwrap().files.keys() {
        let bytes = store.get(&table.path(path)).await.unwrap().bytes().await.unwrap();
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&bytes).unwrap();
        for group in metadata.row_groups() {
            codecs.extend(group.columns().iter().map(parquet::file::metadata::ColumnChunkMetaData::compression));
        }
    }
    codecs
}

#[tokio::test]
async fn a_zstd_sink_writes_zstd_files_that_read_back() {
    let ids: Vec<i64> = (1..=500).collect();
    for (codec, zstd) in [(Codec::Zstd, true), (Codec::Snappy, false)] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let table = new_table(&store).await;
        let sink = SinkOptions { codec, row_group_rows: 200, rows_per_file: 300, ..SinkOptions::default() };
        load(&table, std::slice::from_ref(&ids), sink).await;
        let codecs = codecs(&store, &table).await;
        // 2 files (300 + 200 rows), 3 row groups, 3 columns each.
        assert_eq!(codecs.len(), 9, "{codecs:?}");
        let all_zstd = codecs.iter().all(|c| matches!(c, parquet::basic::Compression::ZSTD(_)));
        let all_snappy = codecs.iter().all(|c| *c == parquet::basic::Compression::SNAPPY);
        assert_eq!((all_zstd, all_snappy), (zstd, !zstd), "{codec:?}: {codecs:?}");
        let batch = read_table(&table).await;
        assert_eq!(batch, crate::common::sort_by_id(&rows(&ids, "v")), "{codec:?}");
    }
}

/// `ignore` end to end: a source with columns the table lacks is scanned, reconciled, conformed
/// and written; the extra columns are in no written file and the table keeps its schema.
#[tokio::test]
async fn schema_evolution_ignore_drops_extra_source_columns_end_to_end() {
    use highwater_store::source::{Scan, ScanOptions, Source, SourceOptions};
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_parquet(&store, "src/a.parquet", &source_rows(1, 60, 4), 25).await;
    put_parquet(&store, "src/b.parquet", &source_rows(61, 40, 4), 25).await;
    let table_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let table = Table::create_with(Arc::clone(&store), root(), &table_schema, options()).await.unwrap();
    let source = Source::from_store(Arc::clone(&store), Path::from("src"), "memory://src", SourceOptions::default());
    let listing = source.list().await.unwrap();
    let plan = Scan::plan(&listing, &listing.files, ScanOptions::default()).await.unwrap();
    assert_eq!(plan.schema.fields().len(), 8, "the source has 5 columns more");
    // The default refuses them; `ignore` keeps the table's schema.
    let refused = reconcile(&table_schema, &plan.schema, SchemaEvolution::Fail, "the source").unwrap_err();
    assert!(
        matches!(&refused, highwater_store::Error::SchemaMismatch { column, .. } if column == "email"),
        "{refused}"
    );
    let output = reconcile(&table_schema, &plan.schema, SchemaEvolution::Ignore, "the source").unwrap();
    assert_eq!(output, table_schema);

    let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await.unwrap();
    let mut sink = ParquetSink::new(run.file_target(), Arc::clone(&output), SinkOptions::default()).unwrap();
    let mut stream = plan.stream();
    let mut expected = Vec::new();
    while let Some(scanned) = futures::StreamExt::next(&mut stream).await {
        let batch = scanned.unwrap().batch;
        expected.push(batch.project(&[0, 1, 3]).unwrap());
        sink.write(&conform(&batch, &output).unwrap()).await.unwrap();
    }
    for file in sink.finish().await.unwrap() {
        run.add_file(file).unwrap();
    }
    run.commit(None, None).await.unwrap();

    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.schema, table_schema, "the table schema did not grow");
    assert!(!snapshot.files.is_empty());
    for path in snapshot.files.keys() {
        let bytes = store.get(&table.path(path)).await.unwrap().bytes().await.unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let columns: Vec<&str> = reader.schema().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(columns, ["id", "name", "amount"], "{path}");
    }
    let read = read_table(&table).await;
    let expected = arrow_select::concat::concat_batches(&expected[0].schema(), &expected).unwrap();
    let expected = RecordBatch::try_new(Arc::clone(&table_schema), expected.columns().to_vec()).unwrap();
    assert_eq!(read.num_rows(), 100);
    assert_eq!(read, crate::common::sort_by_id(&expected));
}
