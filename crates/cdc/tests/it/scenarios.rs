//! Scenarios with exact expected targets.

use std::time::Duration;

use highwater_cdc::{CdcLoader, Error, TiePolicy};
use highwater_core::report::{CdcReport, LoadReport, PatternReport};
use highwater_core::watermark::WatermarkValue;
use highwater_store::{Table, TableOptions};

use crate::{ev, expect, target, write, write_batch};

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
    fn source(&self) -> String {
        self.path("cdc")
    }
    fn target(&self) -> String {
        self.path("target")
    }
    fn loader(&self) -> CdcLoader {
        CdcLoader::new(self.source(), self.target())
            .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
    }
    async fn version(&self) -> Option<u64> {
        match Table::open(&self.target(), TableOptions::default()).await {
            Ok(table) => Some(table.snapshot().await.unwrap().version),
            Err(_) => None,
        }
    }
}

fn details(report: &LoadReport) -> CdcReport {
    match &report.details {
        PatternReport::Cdc(details) => details.clone(),
        other => panic!("not a CDC report: {other:?}"),
    }
}

#[tokio::test]
async fn the_seed_flat_format_applies_the_latest_event_per_key() {
    let folders = Folders::new();
    write(
        &folders.source(),
        "part-0.parquet",
        &[
            ev(1, "INSERT", 1, "alice"),
            ev(2, "INSERT", 2, "bob"),
            ev(1, "UPDATE", 4, "alice v2"),
            ev(3, "INSERT", 3, "carol"),
            ev(2, "DELETE", 5, ""),
        ],
    );
    let report = highwater_cdc::process_cdc(
        &folders.source(),
        &folders.target(),
        &folders.path("watermarks"),
        "id",
        "customers",
    )
    .await
    .unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "alice v2"), (3, "carol")]));
    assert_eq!(report.watermark_after, Some(WatermarkValue::int64(5)));
    let details = details(&report);
    assert_eq!(
        (details.events, details.inserted, details.deleted, details.tombstoned, details.superseded),
        (5, 2, 0, 1, 2)
    );
    // The target holds the table's columns, not the operation or the sequence.
    let table = Table::open(&folders.target(), TableOptions::default()).await.unwrap();
    let schema = table.snapshot().await.unwrap().schema;
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["id", "name"]);
    // The seed's watermark table mirrors the watermark.
    assert!(std::fs::read_dir(folders.path("watermarks")).is_ok());
}

#[tokio::test]
async fn insert_update_delete_of_one_key_within_a_run_and_across_runs() {
    let folders = Folders::new();
    write(
        &folders.source(),
        "a.parquet",
        &[ev(7, "INSERT", 1, "v1"), ev(7, "UPDATE", 2, "v2"), ev(7, "DELETE", 3, "")],
    );
    let report = folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[]));
    assert_eq!(details(&report).tombstoned, 1);

    let across = Folders::new();
    write(&across.source(), "a.parquet", &[ev(7, "INSERT", 1, "v1")]);
    let first = across.loader().run().await.unwrap();
    assert_eq!((details(&first).inserted, first.rows.inserted), (1, 1));
    write(&across.source(), "b.parquet", &[ev(7, "UPDATE", 2, "v2")]);
    let second = across.loader().run().await.unwrap();
    assert_eq!(target(&across.target()).await, expect(&[(7, "v2")]));
    assert_eq!((details(&second).updated, details(&second).inserted), (1, 0));
    write(&across.source(), "c.parquet", &[ev(7, "DELETE", 3, "")]);
    let third = across.loader().run().await.unwrap();
    assert_eq!(target(&across.target()).await, expect(&[]));
    assert_eq!((details(&third).deleted, third.watermark_after), (1, Some(WatermarkValue::int64(3))));
    // Nothing new: nothing committed.
    let version = across.version().await;
    let idle = across.loader().run().await.unwrap();
    assert_eq!((idle.commit_version, across.version().await), (None, version));
}

#[tokio::test]
async fn events_out_of_order_across_files_and_runs() {
    let folders = Folders::new();
    // The later update sits in the first file, the insert in the second.
    write(&folders.source(), "a.parquet", &[ev(1, "UPDATE", 5, "five"), ev(2, "INSERT", 2, "two")]);
    write(&folders.source(), "b.parquet", &[ev(1, "INSERT", 1, "one"), ev(2, "UPDATE", 9, "nine")]);
    folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "five"), (2, "nine")]));
    // An older event arriving in a later run never regresses the row.
    write(&folders.source(), "c.parquet", &[ev(1, "UPDATE", 3, "three"), ev(2, "UPDATE", 10, "ten")]);
    let report = folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "five"), (2, "ten")]));
    assert_eq!((details(&report).ignored_stale, details(&report).updated), (1, 1));
    assert_eq!(report.watermark_after, Some(WatermarkValue::int64(10)));
}

#[tokio::test]
async fn a_replayed_file_changes_nothing() {
    let folders = Folders::new();
    let rows = [ev(1, "INSERT", 1, "one"), ev(2, "INSERT", 2, "two"), ev(1, "UPDATE", 3, "three")];
    write(&folders.source(), "a.parquet", &rows);
    folders.loader().run().await.unwrap();
    let before = target(&folders.target()).await;
    // At-least-once delivery: the same events again, under another name.
    write(&folders.source(), "a-replayed.parquet", &rows);
    let report = folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, before);
    let details = details(&report);
    assert_eq!((details.ignored_duplicate, details.ignored_stale, report.rows.written), (2, 1, 0));
    // The same file rewritten in place is read again (the default), harmlessly.
    write(
        &folders.source(),
        "a.parquet",
        &[
            ev(1, "INSERT", 1, "one"),
            ev(2, "INSERT", 2, "two"),
            ev(1, "UPDATE", 3, "three"),
            ev(9, "INSERT", 4, "nine"),
        ],
    );
    let reread = folders.loader().run().await.unwrap();
    assert_eq!(reread.files.rewritten, 1);
    assert_eq!(target(&folders.target()).await, expect(&[(1, "three"), (2, "two"), (9, "nine")]));
    // Refused when asked.
    write(&folders.source(), "a.parquet", &rows);
    let refused = folders.loader().rewritten_files(highwater_cdc::RewrittenFiles::Error).run().await.unwrap_err();
    assert!(matches!(refused, Error::RewrittenFile { .. }), "{refused}");
}

#[tokio::test]
async fn a_late_update_after_a_delete_does_not_resurrect_the_key_while_the_tombstone_lives() {
    let folders = Folders::new();
    write(
        &folders.source(),
        "a.parquet",
        &[ev(1, "INSERT", 1, "one"), ev(1, "DELETE", 5, ""), ev(2, "INSERT", 2, "two")],
    );
    folders.loader().run().await.unwrap();
    write(&folders.source(), "b.parquet", &[ev(1, "UPDATE", 3, "late")]);
    let report = folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(2, "two")]));
    assert_eq!(details(&report).ignored_stale, 1);
    // A newer insert does bring the key back.
    write(&folders.source(), "c.parquet", &[ev(1, "INSERT", 8, "again")]);
    folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "again"), (2, "two")]));
}

#[tokio::test]
async fn after_its_tombstone_is_purged_a_late_update_applies_as_new() {
    let folders = Folders::new();
    let loader = || folders.loader().tombstone_retention(Some(Duration::ZERO));
    write(&folders.source(), "a.parquet", &[ev(1, "INSERT", 1, "one"), ev(1, "DELETE", 5, "")]);
    loader().run().await.unwrap();
    // The next run touching the key's bucket purges the tombstone (retention zero), but this
    // run's own late update still meets the tombstone first.
    write(&folders.source(), "b.parquet", &[ev(1, "UPDATE", 3, "late")]);
    let report = loader().run().await.unwrap();
    assert_eq!((details(&report).purged, details(&report).ignored_stale), (1, 1));
    assert_eq!(target(&folders.target()).await, expect(&[]));
    // Documented: without the tombstone the key is unknown, so an older event applies.
    write(&folders.source(), "c.parquet", &[ev(1, "UPDATE", 2, "resurrected")]);
    loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "resurrected")]));
}

#[tokio::test]
async fn a_truncate_removes_what_came_before_it() {
    let folders = Folders::new();
    let loader = || folders.loader().truncate_values(&["TRUNCATE"]);
    write(
        &folders.source(),
        "a.parquet",
        &[ev(1, "INSERT", 1, "one"), ev(2, "INSERT", 2, "two"), ev(3, "INSERT", 3, "three")],
    );
    loader().run().await.unwrap();
    write(
        &folders.source(),
        "b.parquet",
        &[
            ev(4, "INSERT", 10, "four"),
            (None, "TRUNCATE", 20, None),
            ev(5, "INSERT", 30, "five"),
            ev(1, "UPDATE", 15, "stale"),
        ],
    );
    let report = loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(5, "five")]));
    let d = details(&report);
    assert_eq!((d.truncates, d.ignored_stale, report.rows.deleted), (1, 2, 3));
    assert_eq!(report.watermark_after, Some(WatermarkValue::int64(30)));
    // A late truncate keeps what was written after it.
    write(
        &folders.source(),
        "c.parquet",
        &[ev(6, "INSERT", 22, "six"), (None, "TRUNCATE", 25, None), ev(7, "INSERT", 40, "seven")],
    );
    loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(5, "five"), (7, "seven")]));
    // Without the option a truncate is an unknown operation.
    write(&folders.source(), "d.parquet", &[(None, "TRUNCATE", 50, None)]);
    let error = folders.loader().run().await.unwrap_err();
    assert!(error.to_string().contains("unknown operation `TRUNCATE`"), "{error}");
}

#[tokio::test]
async fn composite_keys_and_a_two_column_sequence() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    let folders = Folders::new();
    let batch = |rows: &[(&str, i64, &str, &str, i64, &str)]| {
        RecordBatch::try_from_iter([
            ("region", Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
            ("id", Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as ArrayRef),
            ("op", Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
            ("binlog_file", Arc::new(StringArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())) as ArrayRef),
            ("binlog_pos", Arc::new(Int64Array::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())) as ArrayRef),
            ("name", Arc::new(StringArray::from(rows.iter().map(|r| r.5).collect::<Vec<_>>())) as ArrayRef),
        ])
        .unwrap()
    };
    // ("bin.000002", 5) comes after ("bin.000001", 900): the file decides first.
    write_batch(
        &folders.source(),
        "a.parquet",
        &batch(&[
            ("eu", 1, "c", "bin.000002", 5, "eu-1 later"),
            ("eu", 1, "c", "bin.000001", 900, "eu-1 earlier"),
            ("us", 1, "c", "bin.000001", 901, "us-1"),
            ("us", 2, "c", "bin.000001", 902, "us-2"),
            ("us", 2, "d", "bin.000002", 1, ""),
        ]),
    );
    let loader = folders
        .loader()
        .key(&["region", "id"])
        .op_column("op")
        .sequence(&["binlog_file", "binlog_pos"])
        .operations(&["c", "r"], &["u"], &["d"]);
    let report = loader.run().await.unwrap();
    let table = Table::open(&folders.target(), TableOptions::default()).await.unwrap();
    let all = table.read_all().await.unwrap();
    let mut rows: Vec<String> = (0..all.num_rows())
        .map(|row| highwater_core::key::describe_row(&all, row, &["region", "id", "name"]))
        .collect();
    rows.sort();
    assert_eq!(rows, ["region=eu, id=1, name=eu-1 later", "region=us, id=1, name=us-1"]);
    assert_eq!(report.watermark_after.as_ref().unwrap().to_string(), "(bin.000002, 5)");
    assert_eq!(details(&report).superseded, 2);
}

#[tokio::test]
async fn bad_events_fail_naming_file_and_row_and_commit_nothing() {
    let folders = Folders::new();
    write(&folders.source(), "a.parquet", &[ev(1, "INSERT", 1, "one")]);
    folders.loader().run().await.unwrap();
    let version = folders.version().await;
    write(&folders.source(), "b.parquet", &[ev(2, "INSERT", 2, "two"), ev(3, "UPSERT", 3, "three")]);
    let error = folders.loader().run().await.unwrap_err();
    assert!(error.to_string().contains("b.parquet row 1") && error.to_string().contains("UPSERT"), "{error}");
    assert_eq!(folders.version().await, version);
    // Case-insensitive operation values on request.
    write(&folders.source(), "b.parquet", &[ev(2, "insert", 2, "two")]);
    assert!(folders.loader().run().await.is_err());
    folders.loader().case_insensitive(true).run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "one"), (2, "two")]));

    for (rows, needle) in [
        (vec![(None, "UPDATE", 9, Some("x"))], "null"),
        (vec![ev(4, "UPDATE", 9, "x"), ev(4, "DELETE", 9, "")], "same key and sequence"),
    ] {
        let bad = Folders::new();
        write(&bad.source(), "bad.parquet", &rows);
        let error = bad.loader().run().await.unwrap_err();
        assert!(error.to_string().contains(needle) && error.to_string().contains("bad.parquet"), "{error}");
        assert_eq!(bad.version().await, None, "a failed first run leaves no table");
    }
    // A null sequence.
    let bad = Folders::new();
    let batch = arrow_array::RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(arrow_array::Int64Array::from(vec![1])) as arrow_array::ArrayRef),
        ("operation", std::sync::Arc::new(arrow_array::StringArray::from(vec!["INSERT"])) as arrow_array::ArrayRef),
        (
            "sequence_num",
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![None::<i64>])) as arrow_array::ArrayRef,
        ),
    ])
    .unwrap();
    write_batch(&bad.source(), "bad.parquet", &batch);
    let error = bad.loader().run().await.unwrap_err();
    assert!(error.to_string().contains("sequence `sequence_num` is null"), "{error}");
    // A missing key column.
    let error = bad.loader().key(&["customer_id"]).run().await.unwrap_err();
    assert!(error.to_string().contains("customer_id"), "{error}");
    // A delete may win a tie when asked.
    let tie = Folders::new();
    write(&tie.source(), "a.parquet", &[ev(4, "INSERT", 1, "x"), ev(4, "UPDATE", 9, "y"), ev(4, "DELETE", 9, "")]);
    tie.loader().tie(TiePolicy::DeleteWins).run().await.unwrap();
    assert_eq!(target(&tie.target()).await, expect(&[]));
}

#[tokio::test]
async fn events_apply_onto_an_adopted_target() {
    let folders = Folders::new();
    // The PySpark job's output: plain Parquet files.
    let existing = arrow_array::RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3])) as arrow_array::ArrayRef),
        ("name", std::sync::Arc::new(arrow_array::StringArray::from(vec!["a", "b", "c"])) as arrow_array::ArrayRef),
    ])
    .unwrap();
    write_batch(&folders.target(), "part-0.parquet", &existing);
    Table::adopt(&folders.target(), TableOptions::default()).await.unwrap();
    write(
        &folders.source(),
        "a.parquet",
        &[ev(2, "UPDATE", 10, "b2"), ev(3, "DELETE", 11, ""), ev(4, "INSERT", 12, "d")],
    );
    let plan = folders.loader().plan().await.unwrap();
    assert_eq!((plan.planned, plan.commit_version, details(&plan).tombstoned), (true, None, 1));
    assert_eq!(target(&folders.target()).await, expect(&[(1, "a"), (2, "b"), (3, "c")]), "a plan writes nothing");
    let report = folders.loader().run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(1, "a"), (2, "b2"), (4, "d")]));
    let d = details(&report);
    assert_eq!((d.inserted, d.updated, d.deleted), (1, 1, 1));
}

#[tokio::test]
async fn the_seed_watermark_skips_events_the_seed_job_applied() {
    let folders = Folders::new();
    write(
        &folders.source(),
        "a.parquet",
        &[ev(1, "INSERT", 1, "one"), ev(1, "DELETE", 2, ""), ev(2, "INSERT", 7, "two")],
    );
    let report = folders.loader().initial_watermark("5").run().await.unwrap();
    assert_eq!(target(&folders.target()).await, expect(&[(2, "two")]));
    assert_eq!((details(&report).ignored_stale, report.watermark_before), (2, Some(WatermarkValue::int64(5))));
}

#[tokio::test]
async fn a_tiny_memory_budget_spills_and_gives_the_same_target() {
    let folders = Folders::new();
    let mut rows = Vec::new();
    for id in 0..200i64 {
        rows.push((Some(id), "INSERT", id, Some("first")));
        if id % 3 == 0 {
            rows.push((Some(id), "UPDATE", 1000 + id, Some("second")));
        }
        if id % 7 == 0 {
            rows.push((Some(id), "DELETE", 2000 + id, None));
        }
    }
    rows.reverse();
    write(&folders.source(), "a.parquet", &rows);
    let report = folders.loader().memory_budget_rows(16).run().await.unwrap();
    let expected: std::collections::BTreeMap<i64, Option<String>> = (0..200i64)
        .filter(|id| id % 7 != 0)
        .map(|id| (id, Some(if id % 3 == 0 { "second" } else { "first" }.to_owned())))
        .collect();
    assert_eq!(target(&folders.target()).await, expected);
    assert_eq!(details(&report).events, rows.len() as u64);
}
