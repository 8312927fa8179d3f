//! Scenarios with exact expected change sets.

use std::sync::Arc;

use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use highwater_core::report::{DiffReport, LoadReport, PatternReport};
use highwater_diff::{DiffLoader, Error, Output, Tolerance};
use highwater_store::TableOptions;

use crate::{changes, folder, snapshot};

struct Folders {
    dir: tempfile::TempDir,
}

impl Folders {
    fn new() -> Self {
        Folders { dir: tempfile::tempdir().unwrap() }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn write(&self, name: &str, batches: &[RecordBatch]) {
        snapshot(&self.dir.path().join(name), batches);
    }
    /// Mode (a): `a` → `b`.
    fn explicit(&self) -> DiffLoader {
        DiffLoader::new(self.path("b"), self.path("changes"))
            .previous(self.path("a"))
            .table_options(TableOptions { retry_delay: std::time::Duration::ZERO, ..TableOptions::default() })
    }
    /// Mode (b): against the stored index.
    fn incremental(&self) -> DiffLoader {
        DiffLoader::new(self.path("today"), self.path("changes"))
            .table_options(TableOptions { retry_delay: std::time::Duration::ZERO, ..TableOptions::default() })
    }
}

fn details(report: &LoadReport) -> DiffReport {
    match &report.details {
        PatternReport::Diff(details) => details.clone(),
        other => panic!("not a diff report: {other:?}"),
    }
}

fn rows(ids: &[i64], a: &[Option<&str>], b: &[Option<&str>]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("a", Arc::new(StringArray::from(a.to_vec())) as ArrayRef),
        ("b", Arc::new(StringArray::from(b.to_vec())) as ArrayRef),
    ])
    .unwrap()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[tokio::test]
async fn null_transitions_moves_and_plain_changes() {
    let f = Folders::new();
    f.write(
        "a",
        &[rows(
            &[1, 2, 3, 4, 5, 6],
            &[Some("x"), None, Some("m"), Some("s"), Some("k"), Some("q")],
            &[None, Some("y"), None, Some("t"), Some("k"), None],
        )],
    );
    // 1: b null → value; 2: a null → value and b value → null; 3: "m" moves from a to b;
    // 4: plain change; 5: unchanged; 6: deleted; 7: new.
    f.write(
        "b",
        &[rows(
            &[7, 1, 2, 3, 4, 5],
            &[Some("n"), Some("x"), Some("y"), None, Some("S"), Some("k")],
            &[None, Some("v"), None, Some("m"), Some("t"), Some("k")],
        )],
    );
    let report = f.explicit().run().await.unwrap();
    let got = changes(&f.path("changes"), &["id", "a", "b"], &["id"]).await;
    assert_eq!(got["inserts"], strings(&["id=7, a=n, b=null"]));
    assert_eq!(
        got["updates"],
        strings(&["id=1, a=x, b=v", "id=2, a=y, b=null", "id=3, a=null, b=m", "id=4, a=S, b=t"])
    );
    assert_eq!(got["deletes"], strings(&["id=6"]));
    let d = details(&report);
    assert_eq!((d.rows_before, d.rows_after, d.inserted, d.updated, d.deleted, d.unchanged), (6, 6, 1, 4, 1, 1));
}

#[tokio::test]
async fn column_order_encodings_negative_zero_and_nan_are_no_change() {
    let f = Folders::new();
    let a = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["x", "y", "z"])) as ArrayRef),
        ("v", Arc::new(Float64Array::from(vec![0.0, f64::NAN, 1.5])) as ArrayRef),
    ])
    .unwrap();
    let dictionary: DictionaryArray<arrow_array::types::Int8Type> = vec!["x", "y", "z"].into_iter().collect();
    let b = RecordBatch::try_from_iter([
        ("v", Arc::new(Float64Array::from(vec![-0.0, -f64::NAN, 1.5])) as ArrayRef),
        ("name", Arc::new(dictionary) as ArrayRef),
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
    ])
    .unwrap();
    f.write("a", &[a]);
    f.write("b", &[b]);
    let report = f.explicit().run().await.unwrap();
    let d = details(&report);
    assert_eq!((d.inserted, d.updated, d.deleted, d.unchanged), (0, 0, 0, 3));
}

#[tokio::test]
async fn composite_keys_do_not_collide_through_separators() {
    let f = Folders::new();
    let batch = |k1: Vec<&str>, k2: Vec<&str>, v: Vec<i64>| {
        RecordBatch::try_from_iter([
            ("k1", Arc::new(StringArray::from(k1)) as ArrayRef),
            ("k2", Arc::new(StringArray::from(k2)) as ArrayRef),
            ("v", Arc::new(Int64Array::from(v)) as ArrayRef),
        ])
        .unwrap()
    };
    f.write("a", &[batch(vec!["123-", "123"], vec!["456", "-456"], vec![1, 2])]);
    f.write("b", &[batch(vec!["123-", "123"], vec!["456", "-456"], vec![1, 3])]);
    f.explicit().key(&["k1", "k2"]).run().await.unwrap();
    let got = changes(&f.path("changes"), &["k1", "k2", "v"], &["k1", "k2"]).await;
    assert_eq!(got["updates"], strings(&["k1=123, k2=-456, v=3"]));
    assert!(got["inserts"].is_empty() && got["deletes"].is_empty());
}

#[tokio::test]
async fn tolerance_and_ignored_columns() {
    let f = Folders::new();
    let batch = |v: Vec<f64>, loaded: Vec<&str>| {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("v", Arc::new(Float64Array::from(v)) as ArrayRef),
            ("loaded_at", Arc::new(StringArray::from(loaded)) as ArrayRef),
        ])
        .unwrap()
    };
    f.write("a", &[batch(vec![1.0, 2.0, 3.0], vec!["mon", "mon", "mon"])]);
    f.write("b", &[batch(vec![1.0005, 2.1, 3.0], vec!["tue", "tue", "tue"])]);
    // Without rules every row changed (the load time), with them only id 2.
    let strict = f.explicit().run().await.unwrap();
    assert_eq!(details(&strict).updated, 3);
    let lenient = f
        .explicit()
        .ignore_columns(&["loaded_at"])
        .tolerance("v", Tolerance { absolute: 0.001, relative: 0.0 })
        .run()
        .await
        .unwrap();
    assert_eq!(details(&lenient).updated, 1);
    assert_eq!(folder(&f.path("changes"), "updates", &["id"]).await, strings(&["id=2"]));
    // A tolerance needs both snapshots.
    let error = f.incremental().tolerance("v", Tolerance::default()).run().await.unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error}");
}

#[tokio::test]
async fn an_added_column_is_a_schema_change_not_an_update_of_every_row() {
    let f = Folders::new();
    f.write("today", &[rows(&[1, 2], &[Some("x"), Some("y")], &[None, None])]);
    f.incremental().run().await.unwrap();
    let wider = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ("a", Arc::new(StringArray::from(vec![Some("x"), Some("Y")])) as ArrayRef),
        ("b", Arc::new(StringArray::from(vec![None::<&str>, None])) as ArrayRef),
        ("c", Arc::new(StringArray::from(vec!["new", "new"])) as ArrayRef),
    ])
    .unwrap();
    f.write("today", &[wider]);
    let report = f.incremental().run().await.unwrap();
    let d = details(&report);
    assert_eq!((d.updated, d.unchanged), (1, 1), "only the real change of id 2");
    assert_eq!(
        d.schema_changes.iter().map(|c| (c.column.as_str(), c.change.as_str())).collect::<Vec<_>>(),
        [("c", "added")]
    );
}

#[tokio::test]
async fn duplicate_and_null_keys_are_errors_naming_them() {
    let f = Folders::new();
    f.write("a", &[rows(&[1, 2], &[None, None], &[None, None])]);
    f.write("b", &[rows(&[1, 5], &[None, None], &[None, None]), rows(&[5], &[Some("again")], &[None])]);
    let error = f.explicit().run().await.unwrap_err();
    assert!(
        matches!(&error, Error::DuplicateKey { key, side: "new", files } if key == "id=5" && files.contains("part-0") && files.contains("part-1")),
        "{error}"
    );
    f.write("a", &[rows(&[3, 3], &[None, None], &[None, None])]);
    let error = f.explicit().run().await.unwrap_err();
    assert!(matches!(&error, Error::DuplicateKey { key, side: "older", .. } if key == "id=3"), "{error}");
    let null_key = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
        ("a", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
    ])
    .unwrap();
    f.write("b", &[null_key]);
    f.write("a", &[rows(&[1], &[None], &[None])]);
    let error = f.explicit().run().await.unwrap_err();
    assert!(error.to_string().contains("null"), "{error}");
}

/// With an index kept (mode (b)), a key twice in the new snapshot is found by the index's sort
/// — on the first run, where every key is new, and later — and still names the key and the
/// files; nothing is committed.
#[tokio::test]
async fn a_key_twice_in_an_indexed_snapshot_names_key_and_files() {
    use highwater_diff::Error;
    let f = Folders::new();
    f.write(
        "today",
        &[rows(&[1, 7], &[None, None], &[None, None]), rows(&[7, 9], &[Some("again"), None], &[None, None])],
    );
    let error = f.incremental().run().await.unwrap_err();
    assert!(
        matches!(&error, Error::DuplicateKey { key, side: "new", files } if key == "id=7" && files.contains("part-0") && files.contains("part-1")),
        "{error}"
    );
    assert!(
        highwater_store::Table::open(&f.path("changes"), TableOptions::default()).await.is_err(),
        "no table was created"
    );
    f.write("today", &[rows(&[1, 2], &[None, None], &[None, None])]);
    let first = f.incremental().run().await.unwrap();
    assert_eq!(first.commit_version, Some(0));
    // Later: the key twice is new (an insert) both times.
    f.write("today", &[rows(&[1, 2, 5], &[None, None, None], &[None, None, None]), rows(&[5], &[Some("x")], &[None])]);
    let error = f.incremental().run().await.unwrap_err();
    assert!(matches!(&error, Error::DuplicateKey { key, side: "new", .. } if key == "id=5"), "{error}");
    let table = highwater_store::Table::open(&f.path("changes"), TableOptions::default()).await.unwrap();
    assert_eq!(table.latest_version().await.unwrap(), Some(0), "the failed run committed nothing");
}

#[tokio::test]
async fn empty_snapshots_on_either_side() {
    let f = Folders::new();
    f.write("a", &[]);
    f.write("b", &[rows(&[1, 2], &[Some("x"), None], &[None, None])]);
    let report = f.explicit().run().await.unwrap();
    assert_eq!(details(&report).inserted, 2);
    f.write("a", &[rows(&[1, 2], &[Some("x"), None], &[None, None])]);
    f.write("b", &[]);
    // A snapshot location without files is refused unless an empty table is what it means.
    let error = f.explicit().run().await.unwrap_err();
    assert!(matches!(error, highwater_diff::Error::EmptySnapshot { .. }), "{error}");
    let report = f.explicit().allow_empty_snapshot(true).run().await.unwrap();
    assert_eq!(details(&report).deleted, 2);
    assert_eq!(folder(&f.path("changes"), "deletes", &["id"]).await, strings(&["id=1", "id=2"]));
    assert!(folder(&f.path("changes"), "inserts", &["id"]).await.is_empty(), "the previous change set was replaced");
}

#[tokio::test]
async fn incremental_mode_over_three_snapshots() {
    let f = Folders::new();
    f.write("today", &[rows(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")], &[None, None, None])]);
    let first = f.incremental().run().await.unwrap();
    assert_eq!(details(&first).inserted, 3, "the first snapshot is all inserts");
    // Nothing new: the same files again.
    let same = f.incremental().run().await.unwrap();
    assert_eq!(same.commit_version, None);
    f.write("today", &[rows(&[2, 3, 4], &[Some("b"), Some("C"), Some("d")], &[None, None, None])]);
    let second = f.incremental().run().await.unwrap();
    let got = changes(&f.path("changes"), &["id", "a"], &["id"]).await;
    assert_eq!(
        (got["inserts"].clone(), got["updates"].clone(), got["deletes"].clone()),
        (strings(&["id=4, a=d"]), strings(&["id=3, a=C"]), strings(&["id=1"]))
    );
    assert_eq!(details(&second).unchanged, 1);
    f.write("today", &[rows(&[2, 3, 4], &[None, Some("C"), Some("d")], &[None, None, Some("e")])]);
    let third = f.incremental().changed_columns(true).run().await;
    // The index was written without per-column hashes; asking for them now changes nothing
    // about what is compared.
    let third = third.unwrap();
    assert_eq!(details(&third).updated, 2);
    assert_eq!(
        folder(&f.path("changes"), "updates", &["id", "a", "b"]).await,
        strings(&["id=2, a=null, b=null", "id=4, a=d, b=e"])
    );
}

#[tokio::test]
async fn changed_columns_are_named_in_explicit_mode() {
    let f = Folders::new();
    f.write("a", &[rows(&[1, 2], &[Some("x"), Some("y")], &[Some("p"), Some("q")])]);
    f.write("b", &[rows(&[1, 2], &[Some("X"), Some("y")], &[Some("P"), Some("Q")])]);
    f.explicit().changed_columns(true).run().await.unwrap();
    assert_eq!(
        folder(&f.path("changes"), "updates", &["id", "_changed_columns"]).await,
        strings(&["id=1, _changed_columns=[a, b]", "id=2, _changed_columns=[b]"])
    );
}

#[tokio::test]
async fn a_change_feed_and_an_applied_target() {
    let f = Folders::new();
    f.write("a", &[rows(&[1, 2], &[Some("x"), Some("y")], &[None, None])]);
    f.write("b", &[rows(&[2, 3], &[Some("Y"), Some("z")], &[None, None])]);
    f.explicit().output(Output::ChangeFeed).run().await.unwrap();
    assert_eq!(
        folder(&f.path("changes"), "changes", &["id", "a", "_change_type"]).await,
        strings(&[
            "id=1, a=null, _change_type=delete",
            "id=2, a=Y, _change_type=update",
            "id=3, a=z, _change_type=insert"
        ])
    );
    // Applied: the target follows the snapshots.
    let applied = || {
        DiffLoader::new(f.path("today"), f.path("mirror"))
            .output(Output::Apply)
            .table_options(TableOptions { retry_delay: std::time::Duration::ZERO, ..TableOptions::default() })
    };
    f.write("today", &[rows(&[1, 2], &[Some("x"), Some("y")], &[None, None])]);
    applied().run().await.unwrap();
    f.write("today", &[rows(&[2, 3], &[Some("Y"), Some("z")], &[None, None])]);
    applied().run().await.unwrap();
    let table = highwater_store::Table::open(&f.path("mirror"), TableOptions::default()).await.unwrap();
    let all = table.read_all().await.unwrap();
    let mut got: Vec<String> =
        (0..all.num_rows()).map(|r| highwater_core::key::describe_row(&all, r, &["id", "a"])).collect();
    got.sort();
    assert_eq!(got, strings(&["id=2, a=Y", "id=3, a=z"]));
}

#[tokio::test]
async fn an_index_then_an_empty_snapshot() {
    let f = Folders::new();
    f.write("today", &[rows(&[0], &[None], &[None])]);
    f.incremental().baseline(true).run().await.unwrap();
    f.write("today", &[]);
    let report = f.incremental().allow_empty_snapshot(true).run().await.unwrap();
    assert_eq!(details(&report).deleted, 1);
    assert_eq!(folder(&f.path("changes"), "deletes", &["id"]).await, strings(&["id=0"]));
}
