//! Scenarios with exact expected rows.

use std::time::Duration;

use highwater_core::report::PatternReport;
use highwater_core::watermark::WatermarkValue;
use highwater_store::TableOptions;
use highwater_timestamp::{Error, LateFiles, NullCursors, OutputMode, RewrittenFiles, TimestampLoader};

use crate::{Folders, MINUTE, T, target_ids, target_rows, write_rows};

fn loader(folders: &Folders) -> TimestampLoader {
    TimestampLoader::new(folders.source(), folders.target())
        .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
}

fn at(minutes: i64) -> WatermarkValue {
    WatermarkValue::timestamp(T + minutes * MINUTE, highwater_core::watermark::TimestampUnit::Microsecond)
}

fn details(report: &highwater_core::report::LoadReport) -> highwater_core::report::TimestampReport {
    match &report.details {
        PatternReport::Timestamp(details) => details.clone(),
        other => panic!("not a timestamp report: {other:?}"),
    }
}

#[tokio::test]
async fn first_run_loads_everything_then_only_what_is_new() {
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 0), (2, 1), (3, 2)]);
    let first = loader(&folders).run().await.unwrap();
    assert_eq!(first.rows.written, 3);
    assert_eq!(first.watermark_before, None);
    assert_eq!(first.watermark_after, Some(at(2)));
    assert_eq!(first.commit_version, Some(0), "the first run creates the table");
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3]);

    folders.write("b.parquet", &[(4, 3), (5, 4)]);
    let second = loader(&folders).run().await.unwrap();
    assert_eq!((second.rows.written, second.files.new), (2, 1));
    assert_eq!(second.watermark_before, Some(at(2)));
    assert_eq!(second.watermark_after, Some(at(4)));
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3, 4, 5]);

    // Nothing new: nothing to commit.
    let third = loader(&folders).run().await.unwrap();
    assert_eq!((third.rows.written, third.commit_version), (0, None));
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn ties_at_the_watermark_arriving_after_a_run_load_once() {
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 0), (2, 5)]);
    loader(&folders).key(&["id"]).run().await.unwrap();
    // Rows with the watermark's cursor committed later by another writer, and a copy of row 2.
    folders.write("b.parquet", &[(3, 5), (4, 5), (2, 5), (5, 6)]);
    let report = loader(&folders).key(&["id"]).run().await.unwrap();
    assert_eq!(report.rows.written, 3);
    // Row 2 at the boundary was loaded before: its re-read in a and its copy in b are skipped.
    assert_eq!(details(&report).boundary_duplicates, 2);
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3, 4, 5]);
    // Without a key, identity is the file and row: the same file is never loaded twice.
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 0), (2, 5)]);
    loader(&folders).run().await.unwrap();
    folders.write("b.parquet", &[(3, 5)]);
    loader(&folders).run().await.unwrap();
    loader(&folders).run().await.unwrap();
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3]);
}

#[tokio::test]
async fn late_rows_inside_and_beyond_the_lookback() {
    for (policy, expected) in [(LateFiles::Load, vec![1, 2, 3, 4, 5]), (LateFiles::Skip, vec![1, 2, 3, 4])] {
        let folders = Folders::new();
        let loader = || loader(&folders).key(&["id"]).lookback(Duration::from_secs(3600)).late_files(policy);
        folders.write("a.parquet", &[(1, 0), (2, 100), (3, 110)]);
        loader().run().await.unwrap();
        // A snapshot-style re-export: rows already loaded, a late row inside the lookback (80,
        // 30 minutes before the watermark) and one beyond it (20).
        folders.write("b.parquet", &[(2, 100), (3, 110), (4, 80), (5, 20)]);
        let report = loader().run().await.unwrap();
        let details = details(&report);
        // Rows 3 (at the watermark) and 2 (inside the lookback) were loaded before: their re-reads
        // in a and their copies in b are skipped.
        assert_eq!((details.boundary_duplicates, details.lookback_duplicates), (2, 2));
        assert_eq!(report.late_files.len(), 1, "b holds a row beyond the lookback: a late file");
        assert_eq!(report.watermark_after, Some(at(110)));
        assert_eq!(target_ids(&folders.target()).await, expected, "{policy:?}");
    }
}

#[tokio::test]
async fn a_late_file_is_loaded_and_reported_or_refused() {
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 10), (2, 20)]);
    loader(&folders).run().await.unwrap();
    folders.write("late.parquet", &[(3, 5), (4, 6)]);
    let error = loader(&folders).late_files(LateFiles::Error).run().await.unwrap_err();
    assert!(matches!(&error, Error::LateFile { file, .. } if file.ends_with("late.parquet")), "{error}");
    assert_eq!(target_ids(&folders.target()).await, [1, 2], "nothing committed");
    let report = loader(&folders).run().await.unwrap();
    assert_eq!(report.rows.written, 2);
    assert_eq!((report.files.late, report.late_files[0].ends_with("late.parquet")), (1, true));
    assert_eq!(report.watermark_after, Some(at(20)), "late rows never move the watermark back");
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_file_rewritten_in_place() {
    let folders = Folders::new();
    let file = std::path::Path::new(&folders.source()).join("a.parquet");
    write_rows(&file, &[(1, 0)], "v");
    loader(&folders).run().await.unwrap();
    write_rows(&file, &[(1, 0), (2, 1)], "w");
    let error = loader(&folders).run().await.unwrap_err();
    assert!(matches!(&error, Error::RewrittenFile { file } if file.ends_with("a.parquet")), "{error}");
    let skipped = loader(&folders).rewritten_files(RewrittenFiles::Skip).run().await.unwrap();
    assert_eq!((skipped.rows.written, skipped.rewritten_files.len()), (0, 1));
    assert!(loader(&folders).run().await.is_err(), "skipping does not forget the file was rewritten");
    assert!(loader(&folders).rewritten_files(RewrittenFiles::Reload).run().await.is_err(), "reload needs upsert");
    // In upsert mode the file is read again and merged by key: no duplicate.
    let upsert = || loader(&folders).key(&["id"]).mode(OutputMode::Upsert);
    upsert().rewritten_files(RewrittenFiles::Reload).run().await.unwrap();
    assert_eq!(target_rows(&folders.target()).await, [(1, "w1".to_owned()), (2, "w2".to_owned())]);
}

#[tokio::test]
async fn the_same_instant_in_different_zones() {
    // The seed's naive string in Berlin: 12:30 local is 11:30Z = T + 90 minutes.
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 89), (2, 90), (3, 91)]);
    let report =
        loader(&folders).initial_watermark("2024-01-15 12:30:00").seed_timezone("Europe/Berlin").run().await.unwrap();
    assert_eq!(report.watermark_before, Some(at(90)));
    assert_eq!(target_ids(&folders.target()).await, [3], "the imported bound is exclusive");

    // A naive cursor column declared to be in +02:00: 13:31 local is 11:31Z (T + 91 minutes).
    let folders = Folders::new();
    let local = |minutes: i64| T + (minutes + 120) * MINUTE;
    let naive = arrow_array::TimestampMicrosecondArray::from(vec![local(91), local(89)]);
    let batch = arrow_array::RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef),
        ("value", std::sync::Arc::new(arrow_array::StringArray::from(vec!["a", "b"])) as arrow_array::ArrayRef),
        ("modified_date", std::sync::Arc::new(naive) as arrow_array::ArrayRef),
    ])
    .unwrap();
    std::fs::write(
        std::path::Path::new(&folders.source()).join("naive.parquet"),
        highwater_test_support::data::parquet_bytes(&batch, 10),
    )
    .unwrap();
    let undeclared = loader(&folders).run().await.unwrap_err();
    assert!(undeclared.to_string().contains("naive"), "{undeclared}");
    let report =
        loader(&folders).naive_timezone("+02:00").initial_watermark("2024-01-15T11:30:00Z").run().await.unwrap();
    assert_eq!(target_ids(&folders.target()).await, [1]);
    assert_eq!(report.watermark_after.unwrap().timestamp_nanos(), Some(i128::from(T + 91 * MINUTE) * 1000));
}

#[tokio::test]
async fn settle_holds_rows_back_and_the_next_run_loads_them_once() {
    let folders = Folders::new();
    let now = chrono::Utc::now().timestamp_micros();
    let minutes_ago = |m: i64| (now - m * MINUTE - T) / MINUTE;
    folders.write("a.parquet", &[(1, minutes_ago(120)), (2, minutes_ago(1))]);
    let first = loader(&folders).settle(Duration::from_secs(3600)).run().await.unwrap();
    assert_eq!(first.rows.written, 1);
    assert_eq!(details(&first).held_back, 1);
    assert_eq!(target_ids(&folders.target()).await, [1]);
    let second = loader(&folders).run().await.unwrap();
    assert_eq!(second.rows.written, 1);
    loader(&folders).run().await.unwrap();
    assert_eq!(target_ids(&folders.target()).await, [1, 2]);
}

#[tokio::test]
async fn backfill_refused_over_loaded_ranges_unless_replace() {
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 10), (2, 40), (3, 120), (4, 130)]);
    loader(&folders).initial_watermark("2024-01-15T11:40:00Z").run().await.unwrap();
    assert_eq!(target_ids(&folders.target()).await, [3, 4]);
    // (T+0, T+60] was never loaded: a backfill takes it.
    let backfill = || loader(&folders).start("2024-01-15T10:00:00Z").end("2024-01-15T11:00:00Z");
    let report = backfill().run().await.unwrap();
    assert_eq!(report.rows.written, 2);
    assert_eq!(report.watermark_after, Some(at(130)), "a backfill below the watermark keeps it");
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3, 4]);
    // Again: refused, nothing committed.
    let error = backfill().run().await.unwrap_err();
    assert!(matches!(error, Error::RangeLoaded { .. }), "{error}");
    // With replace the range is reloaded, not duplicated.
    write_rows(&std::path::Path::new(&folders.source()).join("b.parquet"), &[(5, 30)], "v");
    backfill().replace(true).run().await.unwrap();
    assert_eq!(target_ids(&folders.target()).await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn upsert_latest_cursor_wins_and_never_regresses() {
    let folders = Folders::new();
    let upsert = || loader(&folders).key(&["id"]).mode(OutputMode::Upsert);
    let source = std::path::Path::new(&folders.source()).to_path_buf();
    write_rows(&source.join("a.parquet"), &[(1, 10), (2, 10)], "a");
    upsert().run().await.unwrap();
    write_rows(&source.join("b.parquet"), &[(1, 20)], "b");
    upsert().run().await.unwrap();
    // An older version of row 1 arrives late: the target keeps the newer one.
    write_rows(&source.join("c.parquet"), &[(1, 15), (2, 15)], "c");
    let report = upsert().run().await.unwrap();
    assert_eq!(report.late_files.len(), 1);
    assert_eq!(target_rows(&folders.target()).await, [(1, "b1".to_owned()), (2, "c2".to_owned())]);
    // Duplicate keys within a run resolve by cursor.
    write_rows(&source.join("d.parquet"), &[(3, 30), (3, 31)], "d");
    upsert().run().await.unwrap();
    assert_eq!(target_rows(&folders.target()).await.len(), 3);
    // Equal key and cursor with different content: an error naming the key.
    write_rows(&source.join("e1.parquet"), &[(4, 40)], "x");
    write_rows(&source.join("e2.parquet"), &[(4, 40)], "y");
    let error = upsert().run().await.unwrap_err();
    assert!(matches!(&error, Error::AmbiguousDuplicate { key, .. } if key == "id=4"), "{error}");
}

#[tokio::test]
async fn null_cursors_and_volume_guard() {
    let folders = Folders::new();
    let batch = arrow_array::RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef),
        ("value", std::sync::Arc::new(arrow_array::StringArray::from(vec!["a", "b"])) as arrow_array::ArrayRef),
        (
            "modified_date",
            std::sync::Arc::new(arrow_array::TimestampMicrosecondArray::from(vec![Some(T), None]).with_timezone("UTC"))
                as arrow_array::ArrayRef,
        ),
    ])
    .unwrap();
    std::fs::write(
        std::path::Path::new(&folders.source()).join("a.parquet"),
        highwater_test_support::data::parquet_bytes(&batch, 10),
    )
    .unwrap();
    let error = loader(&folders).run().await.unwrap_err();
    assert!(matches!(&error, Error::NullCursor { row: 1, file, .. } if file.ends_with("a.parquet")), "{error}");
    let error = loader(&folders).null_cursors(NullCursors::Skip).max_rows(0).run().await.unwrap_err();
    assert!(matches!(error, Error::TooManyRows { rows: 1, max: 0 }), "{error}");
    let report = loader(&folders).null_cursors(NullCursors::Skip).run().await.unwrap();
    assert_eq!((report.rows.written, details(&report).null_cursors), (1, 1));
    // `plan` computes the same counts and commits nothing.
    folders.write("b.parquet", &[(3, 5)]);
    let planned = loader(&folders).null_cursors(NullCursors::Skip).plan().await.unwrap();
    assert!(planned.planned && planned.commit_version.is_none());
    assert_eq!(planned.rows.written, 1);
    assert_eq!(target_ids(&folders.target()).await, [1]);
}

#[tokio::test]
async fn a_plan_refuses_what_the_run_would_refuse_before_writing() {
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 0)]);
    let sink = highwater_store::write::SinkOptions { partition_by: vec!["region".into()], ..Default::default() };
    let error = loader(&folders).sink(sink.clone()).plan().await.unwrap_err();
    assert!(error.to_string().contains("partition column `region`"), "{error}");
    let error = loader(&folders).sink(sink).run().await.unwrap_err();
    assert!(error.to_string().contains("partition column `region`"), "{error}");
    assert!(
        highwater_store::Table::open(&folders.target(), TableOptions::default()).await.is_err(),
        "nothing committed"
    );
    // Settings a loader refuses are refused by `check`, before any I/O.
    let error = loader(&folders).mode(OutputMode::Upsert).check().unwrap_err();
    assert!(error.to_string().contains("upsert mode needs a key"), "{error}");
    let error = loader(&folders).naive_timezone("Mars/Olympus").check().unwrap_err();
    assert!(error.to_string().contains("Mars/Olympus"), "{error}");
    assert!(loader(&folders).check().is_ok());
}

#[tokio::test]
async fn a_key_column_missing_or_null_is_an_error() {
    let folders = Folders::new();
    folders.write("a.parquet", &[(1, 0)]);
    let error = loader(&folders).key(&["customer_id"]).mode(OutputMode::Upsert).run().await.unwrap_err();
    assert!(error.to_string().contains("customer_id"), "{error}");
    let error = loader(&folders).cursor("updated_at").run().await.unwrap_err();
    assert!(error.to_string().contains("updated_at"), "{error}");
}
