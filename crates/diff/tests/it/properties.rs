//! For random pairs of snapshots: applying the change set of (A, B) to A gives B; the explicit
//! mode, the index mode and the bucketed (spilling) path find the same changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use highwater_diff::DiffLoader;
use highwater_store::TableOptions;
use proptest::prelude::*;

use crate::{changes, snapshot};

type Rows = BTreeMap<i64, (Option<String>, Option<i64>)>;

fn batch(rows: &[(i64, Option<String>, Option<i64>)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
        ("name", Arc::new(StringArray::from(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())) as ArrayRef),
        ("n", Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap()
}

fn rows() -> impl Strategy<Value = Rows> {
    prop::collection::btree_map(
        0i64..40,
        (
            prop::option::of(prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just(String::new())]),
            prop::option::of(0i64..3),
        ),
        0..25,
    )
}

/// A snapshot as 1–3 files (rows in reverse key order, to not rely on any order).
fn files(rows: &Rows, split: usize) -> Vec<RecordBatch> {
    let all: Vec<(i64, Option<String>, Option<i64>)> =
        rows.iter().rev().map(|(k, (a, b))| (*k, a.clone(), *b)).collect();
    if all.is_empty() {
        return Vec::new();
    }
    let parts = split.clamp(1, all.len());
    all.chunks(all.len().div_ceil(parts)).map(batch).collect()
}

fn parse(line: &str) -> (i64, Option<String>, Option<i64>) {
    let mut id = 0;
    let mut name = None;
    let mut n = None;
    for part in line.split(", ") {
        match part.split_once('=') {
            Some(("id", v)) => id = v.parse().unwrap(),
            Some(("name", "null")) => name = None,
            Some(("name", v)) => name = Some(v.to_owned()),
            Some(("n", "null")) => n = None,
            Some(("n", v)) => n = Some(v.parse().unwrap()),
            _ => {}
        }
    }
    (id, name, n)
}

async fn diff(dir: &std::path::Path, loader: DiffLoader) -> BTreeMap<&'static str, Vec<String>> {
    let target = dir.join("changes");
    loader
        .allow_empty_snapshot(true)
        .table_options(TableOptions { retry_delay: std::time::Duration::ZERO, ..TableOptions::default() })
        .run()
        .await
        .unwrap();
    changes(target.to_str().unwrap(), &["id", "name", "n"], &["id"]).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn applying_the_changes_gives_the_new_snapshot_in_every_mode(a in rows(), b in rows(), split in 1usize..4) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
            snapshot(&dir.path().join("a"), &files(&a, split));
            snapshot(&dir.path().join("b"), &files(&b, 4 - split));
            let explicit = diff(dir.path(), DiffLoader::new(path("b"), path("changes")).previous(path("a"))).await;
            // Apply: A + inserts + updates - deletes = B.
            let mut applied = a.clone();
            for line in &explicit["deletes"] {
                let (id, _, _) = parse(line);
                prop_assert!(applied.remove(&id).is_some(), "deleted {id} was not in A");
            }
            for kind in ["inserts", "updates"] {
                for line in &explicit[kind] {
                    let (id, name, n) = parse(line);
                    prop_assert_eq!(kind == "updates", a.contains_key(&id));
                    applied.insert(id, (name, n));
                }
            }
            prop_assert_eq!(&applied, &b);
            // The bucketed, spilling path finds the same.
            let bucketed = diff(dir.path(), DiffLoader::new(path("b"), path("changes")).previous(path("a")).memory_budget_rows(1)).await;
            prop_assert_eq!(&bucketed, &explicit);
            // The index mode too: a baseline of A, then B against it.
            std::fs::remove_dir_all(dir.path().join("changes")).unwrap();
            snapshot(&dir.path().join("today"), &files(&a, split));
            DiffLoader::new(path("today"), path("changes")).baseline(true).allow_empty_snapshot(true).run().await.unwrap();
            snapshot(&dir.path().join("today"), &files(&b, 4 - split));
            let incremental = diff(dir.path(), DiffLoader::new(path("today"), path("changes"))).await;
            prop_assert_eq!(&incremental, &explicit);
            Ok(())
        })?;
    }
}
