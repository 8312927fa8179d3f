//! For random event sets — split into files and runs in random ways, replayed, spilled — the
//! target equals the latest event per key after the latest truncate, and a run applied twice
//! equals a run applied once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use highwater_cdc::CdcLoader;
use highwater_store::{Table, TableOptions};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use proptest::prelude::*;

use crate::{events, rows_of};

#[derive(Clone, Debug)]
struct Generated {
    /// (key, op, name) in sequence order: event i has sequence i + 1.
    events: Vec<(i64, &'static str, u8)>,
    /// Per event: its file.
    file_of: Vec<usize>,
    /// Per file: the run after which it arrives.
    run_of: Vec<usize>,
    /// Files delivered twice (at-least-once).
    replayed: Vec<usize>,
    budget: usize,
}

fn generated() -> impl Strategy<Value = Generated> {
    let event = (
        0i64..6,
        prop_oneof![3 => Just("INSERT"), 4 => Just("UPDATE"), 2 => Just("DELETE"), 1 => Just("TRUNCATE")],
        0u8..4,
    );
    (prop::collection::vec(event, 1..30), 1usize..5, 1usize..4, prop_oneof![Just(1usize), Just(3), Just(1000)])
        .prop_flat_map(|(events, files, runs, budget)| {
            let n = events.len();
            (
                Just(events),
                prop::collection::vec(0..files, n),
                prop::collection::vec(0..runs, files),
                prop::collection::vec(0..files, 0..2),
                Just(budget),
            )
                .prop_map(|(events, file_of, run_of, replayed, budget)| Generated {
                    events,
                    file_of,
                    run_of,
                    replayed,
                    budget,
                })
        })
}

/// The model: per key its latest event after the latest truncate; present unless a delete.
fn model(events: &[(i64, &str, u8)]) -> BTreeMap<i64, Option<String>> {
    let truncated = events.iter().rposition(|e| e.1 == "TRUNCATE");
    let mut rows = BTreeMap::new();
    for (index, (key, op, name)) in events.iter().enumerate() {
        if truncated.is_some_and(|t| index <= t) || *op == "TRUNCATE" {
            continue;
        }
        match *op {
            "DELETE" => {
                rows.remove(key);
            }
            _ => {
                rows.insert(*key, Some(format!("{key}-{name}")));
            }
        }
    }
    rows
}

fn file_rows(generated: &Generated, file: usize) -> Vec<crate::Row<'static>> {
    let mut rows: Vec<crate::Row<'static>> = Vec::new();
    for (index, (key, op, name)) in generated.events.iter().enumerate() {
        if generated.file_of[index] == file {
            let sequence = index as i64 + 1;
            let name: &'static str = Box::leak(format!("{key}-{name}").into_boxed_str());
            rows.push(if *op == "TRUNCATE" {
                (None, op, sequence, None)
            } else {
                (Some(*key), op, sequence, Some(name))
            });
        }
    }
    // Within a file, events are in no particular order.
    rows.reverse();
    rows
}

async fn apply(generated: &Generated) -> (BTreeMap<i64, Option<String>>, u64) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let loader = CdcLoader::new("memory://unused", "memory://unused")
        .source_store(Arc::clone(&store), Path::from("source"), "source")
        .target_store(Arc::clone(&store), Path::from("target"))
        .truncate_values(&["TRUNCATE"])
        .tombstone_retention(None)
        .memory_budget_rows(generated.budget)
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() });
    let put = async |name: String, rows: &[crate::Row<'static>]| {
        let bytes = highwater_test_support::data::parquet_bytes(&events(rows), 3);
        object_store::ObjectStoreExt::put(&*store, &Path::from(format!("source/{name}")), bytes.into()).await.unwrap();
    };
    let runs = generated.run_of.iter().max().copied().unwrap_or(0) + 1;
    for run in 0..runs {
        for (file, _) in generated.run_of.iter().enumerate().filter(|(_, r)| **r == run) {
            let rows = file_rows(generated, file);
            if rows.is_empty() {
                continue;
            }
            put(format!("f{file}.parquet"), &rows).await;
            if generated.replayed.contains(&file) {
                put(format!("f{file}-replayed.parquet"), &rows).await;
            }
        }
        loader.run().await.unwrap();
    }
    let read = async || match Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default()).await
    {
        Ok(table) => (rows_of(&table.read_all().await.unwrap()), table.snapshot().await.unwrap().version),
        Err(_) => (BTreeMap::new(), 0),
    };
    let (rows, version) = read().await;
    // Applying again (nothing new) changes nothing and commits nothing.
    let again = loader.run().await.unwrap();
    assert_eq!(again.commit_version, None);
    assert_eq!(read().await, (rows.clone(), version));
    (rows, version)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_target_is_the_latest_event_per_key_however_events_arrive(generated in generated()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (rows, _) = runtime.block_on(apply(&generated));
        prop_assert_eq!(rows, model(&generated.events));
    }

    #[test]
    fn one_run_equals_many(generated in generated()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut single = generated.clone();
        single.run_of = vec![0; generated.run_of.len()];
        single.replayed.clear();
        let (many, _) = runtime.block_on(apply(&generated));
        let (one, _) = runtime.block_on(apply(&single));
        prop_assert_eq!(many, one);
    }
}
