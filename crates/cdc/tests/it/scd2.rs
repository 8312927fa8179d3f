//! SCD type 2 targets: exact history rows for in-order, out-of-order, replayed and late events;
//! every arrival order gives the same history; a crash anywhere in a run changes nothing.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use highwater_cdc::{CdcLoader, Error, HardDeletes, Scd2};
use highwater_store::{Table, TableOptions};
use highwater_test_support::{Backend, crash_harness};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use proptest::prelude::*;

use crate::{Row, ev, events};

/// One version: `(id, name, valid_from, valid_to, is_current)`.
type Version = (i64, Option<String>, i64, Option<i64>, bool);

fn v(id: i64, name: &str, from: i64, to: Option<i64>) -> Version {
    (id, Some(name.to_owned()), from, to, to.is_none())
}

fn loader(store: &Arc<dyn ObjectStore>, scd2: Scd2) -> CdcLoader {
    CdcLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(store), Path::from("source"), "source")
        .target_store(Arc::clone(store), Path::from("target"))
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
        .scd2(scd2)
}

async fn put_batch(store: &Arc<dyn ObjectStore>, name: &str, batch: &RecordBatch) {
    let bytes = highwater_test_support::data::parquet_bytes(batch, 2);
    object_store::ObjectStoreExt::put(&**store, &Path::from(format!("source/{name}")), bytes.into()).await.unwrap();
}

async fn put(store: &Arc<dyn ObjectStore>, name: &str, rows: &[Row<'_>]) {
    put_batch(store, name, &events(rows)).await;
}

async fn table_rows(store: &Arc<dyn ObjectStore>) -> RecordBatch {
    let table = Table::open_with(Arc::clone(store), Path::from("target"), TableOptions::default()).await.unwrap();
    table.read_all().await.unwrap()
}

/// The history, sorted by key and `valid_from`.
async fn history(store: &Arc<dyn ObjectStore>) -> Vec<Version> {
    let batch = table_rows(store).await;
    let int = |name: &str| batch.column_by_name(name).unwrap().as_primitive::<Int64Type>().clone();
    let (ids, from, to) = (int("id"), int("valid_from"), int("valid_to"));
    let names = batch.column_by_name("name").unwrap().as_string::<i32>().clone();
    let current = batch.column_by_name("is_current").unwrap().as_boolean().clone();
    let mut rows: Vec<Version> = (0..batch.num_rows())
        .map(|r| {
            (
                ids.value(r),
                (!names.is_null(r)).then(|| names.value(r).to_owned()),
                from.value(r),
                (!to.is_null(r)).then(|| to.value(r)),
                current.value(r),
            )
        })
        .collect();
    rows.sort_by_key(|r| (r.0, r.2));
    rows
}

fn store() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

#[tokio::test]
async fn in_order_events_give_one_version_per_change() {
    let store = store();
    put(
        &store,
        "a.parquet",
        &[
            ev(1, "INSERT", 1, "a"),
            ev(2, "INSERT", 2, "x"),
            ev(1, "UPDATE", 3, "b"),
            ev(2, "UPDATE", 4, "x"), // nothing changed: no new version
            ev(1, "DELETE", 5, ""),
        ],
    )
    .await;
    let report = loader(&store, Scd2::default()).run().await.unwrap();
    assert_eq!(history(&store).await, vec![v(1, "a", 1, Some(3)), v(1, "b", 3, Some(5)), v(2, "x", 2, None)]);
    assert_eq!((report.rows.inserted, report.rows.updated), (3, 0));
    // The sequence stays: each version keeps its opening event's.
    let batch = table_rows(&store).await;
    let sequences: Vec<i64> =
        batch.column_by_name("sequence_num").unwrap().as_primitive::<Int64Type>().values().to_vec();
    let mut sorted = sequences.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3]);

    // The key comes back: a new version.
    put(&store, "b.parquet", &[ev(1, "INSERT", 8, "c")]).await;
    let report = loader(&store, Scd2::default()).run().await.unwrap();
    assert_eq!((report.rows.inserted, report.rows.updated), (1, 0));
    assert_eq!(
        history(&store).await,
        vec![v(1, "a", 1, Some(3)), v(1, "b", 3, Some(5)), v(1, "c", 8, None), v(2, "x", 2, None)]
    );
}

#[tokio::test]
async fn a_late_event_is_spliced_in_at_its_place() {
    let store = store();
    put(&store, "a.parquet", &[ev(1, "INSERT", 1, "a"), ev(1, "UPDATE", 5, "c"), ev(2, "INSERT", 2, "x")]).await;
    loader(&store, Scd2::default()).run().await.unwrap();
    assert_eq!(history(&store).await, vec![v(1, "a", 1, Some(5)), v(1, "c", 5, None), v(2, "x", 2, None)]);

    // Sequence 3 comes late: the first version is split, the one after re-bounded.
    put(&store, "late.parquet", &[ev(1, "UPDATE", 3, "b")]).await;
    let plan = loader(&store, Scd2::default()).plan().await.unwrap();
    assert_eq!((plan.rows.inserted, plan.rows.updated, plan.commit_version), (1, 1, None));
    assert_eq!(history(&store).await.len(), 3, "a plan writes nothing");
    let report = loader(&store, Scd2::default()).run().await.unwrap();
    assert_eq!(
        history(&store).await,
        vec![v(1, "a", 1, Some(3)), v(1, "b", 3, Some(5)), v(1, "c", 5, None), v(2, "x", 2, None)]
    );
    // One version opened, one re-bounded; key 2 untouched.
    assert_eq!((report.rows.inserted, report.rows.updated, report.rows.deleted), (1, 1, 0));

    // A late event older than a delete lands before it: no resurrection.
    put(&store, "delete.parquet", &[ev(2, "DELETE", 9, "")]).await;
    put(&store, "later.parquet", &[ev(2, "UPDATE", 7, "y")]).await;
    loader(&store, Scd2::default()).run().await.unwrap();
    assert_eq!(
        history(&store).await,
        vec![
            v(1, "a", 1, Some(3)),
            v(1, "b", 3, Some(5)),
            v(1, "c", 5, None),
            v(2, "x", 2, Some(7)),
            v(2, "y", 7, Some(9))
        ]
    );
}

#[tokio::test]
async fn replayed_events_change_nothing() {
    let store = store();
    let rows = [ev(1, "INSERT", 1, "a"), ev(1, "UPDATE", 2, "b")];
    put(&store, "a.parquet", &rows).await;
    loader(&store, Scd2::default()).run().await.unwrap();
    let before = history(&store).await;
    // The same events delivered again under another name (at-least-once).
    put(&store, "a-again.parquet", &rows).await;
    let report = loader(&store, Scd2::default()).run().await.unwrap();
    assert_eq!(history(&store).await, before);
    assert_eq!((report.rows.inserted, report.rows.updated, report.rows.deleted, report.rows.skipped), (0, 0, 0, 2));
}

#[tokio::test]
async fn untracked_changes_update_the_open_version_in_place() {
    let store = store();
    let batch = |rows: &[(i64, &str, i64, &str, &str)]| {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("name", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))) as ArrayRef),
            ("tier", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.4))) as ArrayRef),
            ("operation", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef),
            ("sequence_num", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef),
        ])
        .unwrap()
    };
    put_batch(
        &store,
        "a.parquet",
        &batch(&[
            (1, "INSERT", 1, "ada", "gold"),
            (1, "UPDATE", 2, "ada l.", "gold"),
            (1, "UPDATE", 3, "ada l.", "platinum"),
        ]),
    )
    .await;
    let scd2 = Scd2 { track_columns: Some(vec!["tier".into()]), ..Scd2::default() };
    loader(&store, scd2.clone()).run().await.unwrap();
    // The rename (untracked) updated version 1 in place; the tier change opened version 2.
    assert_eq!(history(&store).await, vec![v(1, "ada l.", 1, Some(3)), v(1, "ada l.", 3, None)]);
    let tiers = table_rows(&store).await;
    let mut tiers: Vec<String> = (0..tiers.num_rows())
        .map(|r| tiers.column_by_name("tier").unwrap().as_string::<i32>().value(r).to_owned())
        .collect();
    tiers.sort();
    assert_eq!(tiers, ["gold", "platinum"]);

    // An unknown tracked column is a configuration error, before anything is written.
    let bad = Scd2 { track_columns: Some(vec!["tierr".into()]), ..Scd2::default() };
    put_batch(&store, "b.parquet", &batch(&[(2, "INSERT", 4, "bob", "gold")])).await;
    let error = loader(&store, bad).run().await.unwrap_err();
    assert!(matches!(&error, Error::Config(m) if m.contains("`tierr`")), "{error}");
}

#[tokio::test]
async fn deletes_can_leave_a_deleted_marker_and_open_versions_a_sentinel() {
    let store = store();
    put(&store, "a.parquet", &[ev(1, "INSERT", 1, "a"), ev(1, "DELETE", 4, "")]).await;
    let scd2 = Scd2 { hard_deletes: HardDeletes::Marker, open_end: Some(i64::MAX.to_string()), ..Scd2::default() };
    loader(&store, scd2.clone()).run().await.unwrap();
    let batch = table_rows(&store).await;
    let deleted = batch.column_by_name("is_deleted").unwrap().as_boolean().clone();
    let mut rows: Vec<(i64, i64, bool, bool)> = (0..batch.num_rows())
        .map(|r| {
            let int = |name: &str| batch.column_by_name(name).unwrap().as_primitive::<Int64Type>().value(r);
            (
                int("valid_from"),
                int("valid_to"),
                batch.column_by_name("is_current").unwrap().as_boolean().value(r),
                deleted.value(r),
            )
        })
        .collect();
    rows.sort_unstable();
    assert_eq!(rows, vec![(1, 4, false, false), (4, i64::MAX, true, true)]);

    // A bad sentinel is refused before anything is written.
    put(&store, "b.parquet", &[ev(2, "INSERT", 5, "b")]).await;
    let bad = Scd2 { hard_deletes: HardDeletes::Marker, open_end: Some("someday".into()), ..Scd2::default() };
    let error = loader(&store, bad).run().await.unwrap_err();
    assert!(error.to_string().contains("someday"), "{error}");
}

#[tokio::test]
async fn a_table_keeps_its_type_and_truncates_are_refused() {
    let store = store();
    put(&store, "a.parquet", &[ev(1, "INSERT", 1, "a")]).await;
    loader(&store, Scd2::default()).run().await.unwrap();
    put(&store, "b.parquet", &[ev(1, "UPDATE", 2, "b")]).await;
    let type1 = CdcLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(&store), Path::from("source"), "source")
        .target_store(Arc::clone(&store), Path::from("target"));
    let error = type1.run().await.unwrap_err();
    assert!(matches!(&error, Error::Config(m) if m.contains("SCD type 2 table")), "{error}");

    put(&store, "c.parquet", &[(None, "TRUNCATE", 3, None)]).await;
    let error = loader(&store, Scd2::default()).truncate_values(&["TRUNCATE"]).run().await.unwrap_err();
    assert!(error.to_string().contains("truncate event") && error.to_string().contains("c.parquet"), "{error}");
    assert_eq!(history(&store).await, vec![v(1, "a", 1, None)]);
}

async fn crash_setup(store: Arc<dyn ObjectStore>) {
    put(&store, "a.parquet", &[ev(1, "INSERT", 1, "a"), ev(2, "INSERT", 2, "b"), ev(1, "UPDATE", 6, "a3")]).await;
    loader(&store, Scd2::default()).run().await.unwrap();
    put(&store, "b.parquet", &[ev(1, "UPDATE", 4, "a2"), ev(2, "DELETE", 5, ""), ev(3, "INSERT", 3, "c")]).await;
}

#[tokio::test]
async fn crash_anywhere_in_an_scd2_run() {
    for backend in [Backend::Memory, Backend::Local] {
        crash_harness(
            backend,
            crash_setup,
            async |store| loader(&store, Scd2::default()).run().await.map(|_| ()).map_err(|e| e.to_string()),
            async |store| {
                let observed = history(&store).await;
                assert_eq!(
                    observed,
                    vec![
                        v(1, "a", 1, Some(4)),
                        v(1, "a2", 4, Some(6)),
                        v(1, "a3", 6, None),
                        v(2, "b", 2, Some(5)),
                        v(3, "c", 3, None)
                    ]
                );
                observed
            },
        )
        .await;
    }
}

/// Events `(key, op, name)` (event `i` has sequence `i + 1`), each event's run, whether
/// deletes leave markers, and each run's memory budget (small ones spill and split buckets).
type Arrivals = (Vec<(i64, &'static str, u8)>, Vec<usize>, bool, Vec<usize>);

/// Random events of a few keys, one sequence each, split into runs at random.
fn arrivals() -> impl Strategy<Value = Arrivals> {
    let event = (0i64..4, prop_oneof![3 => Just("INSERT"), 4 => Just("UPDATE"), 2 => Just("DELETE")], 0u8..3);
    prop::collection::vec(event, 1..16).prop_flat_map(|events| {
        let n = events.len();
        let budget = prop_oneof![Just(1usize), Just(3), Just(1000)];
        (Just(events), prop::collection::vec(0usize..3, n), any::<bool>(), prop::collection::vec(budget, 3))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The history is the same for every arrival order: events split into runs at random (a
    /// later run may bring older events) give the history of one run with all of them.
    #[test]
    fn every_arrival_order_gives_the_same_history((generated, run_of, marker, budgets) in arrivals()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let names = ["n0", "n1", "n2"];
            let rows: Vec<Row<'static>> = generated
                .iter()
                .enumerate()
                .map(|(i, (id, op, name))| (Some(*id), *op, i as i64 + 1, Some(names[usize::from(*name)])))
                .collect();
            let scd2 = Scd2 { hard_deletes: if marker { HardDeletes::Marker } else { HardDeletes::Close }, ..Scd2::default() };
            let once = store();
            put(&once, "all.parquet", &rows).await;
            loader(&once, scd2.clone()).run().await.unwrap();

            let split = store();
            for run in (0..3).rev() {
                let part: Vec<Row<'static>> =
                    rows.iter().zip(&run_of).filter(|(_, r)| **r == run).map(|(row, _)| *row).collect();
                if !part.is_empty() {
                    put(&split, &format!("run-{run}.parquet"), &part).await;
                    loader(&split, scd2.clone()).memory_budget_rows(budgets[run]).run().await.unwrap();
                }
            }
            let expected = history(&once).await;
            prop_assert_eq!(history(&split).await, expected);
            Ok(())
        })?;
    }
}
