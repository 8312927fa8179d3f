//! Scenarios with exact expected rows.

use std::time::Duration;

use highwater_core::report::{PatternReport, SequenceGap, SequenceReport};
use highwater_core::watermark::WatermarkValue;
use highwater_sequence::{Error, LateFiles, OutputMode, SequenceLoader};
use highwater_store::TableOptions;

use crate::{target_sequence, write};

struct Folders {
    dir: tempfile::TempDir,
}

impl Folders {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        Folders { dir }
    }
    fn source(&self) -> String {
        self.dir.path().join("source").to_str().unwrap().to_owned()
    }
    fn target(&self) -> String {
        self.dir.path().join("target").to_str().unwrap().to_owned()
    }
    fn loader(&self) -> SequenceLoader {
        SequenceLoader::new(self.source(), self.target())
            .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() })
    }
}

fn details(report: &highwater_core::report::LoadReport) -> SequenceReport {
    match &report.details {
        PatternReport::Sequence(details) => details.clone(),
        other => panic!("not a sequence report: {other:?}"),
    }
}

#[tokio::test]
async fn runs_load_past_the_watermark_in_order_and_report_gaps() {
    let folders = Folders::new();
    write(&folders.source(), "a.parquet", &[1, 2, 3, 5, 6]);
    let first = folders.loader().run().await.unwrap();
    assert_eq!(first.watermark_after, Some(WatermarkValue::int64(6)));
    assert_eq!(details(&first).gaps, [SequenceGap { first: 4, last: 4 }]);
    write(&folders.source(), "b.parquet", &[7, 10, 11]);
    let second = folders.loader().run().await.unwrap();
    assert_eq!(second.rows.written, 3);
    let gaps = details(&second);
    assert_eq!((gaps.gap_count, gaps.missing_ids), (1, 2));
    assert_eq!(gaps.gaps, [SequenceGap { first: 8, last: 9 }]);
    let (in_order, _) = target_sequence(&folders.target()).await;
    assert_eq!(in_order, [1, 2, 3, 5, 6, 7, 10, 11]);
}

#[tokio::test]
async fn duplicate_ids_are_loaded_once_and_reported() {
    let folders = Folders::new();
    write(&folders.source(), "a.parquet", &[1, 2, 2, 3]);
    let report = folders.loader().run().await.unwrap();
    assert_eq!((report.rows.written, details(&report).duplicates), (3, 1));
    // An id that arrives again in a new file is a duplicate too.
    write(&folders.source(), "b.parquet", &[3, 4]);
    let report = folders.loader().run().await.unwrap();
    assert_eq!((report.rows.written, details(&report).duplicates), (1, 1));
    assert_eq!(target_sequence(&folders.target()).await.1, [1, 2, 3, 4]);
}

#[tokio::test]
async fn out_of_order_input_is_written_in_order() {
    let folders = Folders::new();
    write(&folders.source(), "a.parquet", &[4, 1, 3, 2]);
    write(&folders.source(), "b.parquet", &[6, 5]);
    folders.loader().run().await.unwrap();
    let (in_order, _) = target_sequence(&folders.target()).await;
    assert_eq!(in_order, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn gaps_held_then_released_and_late_files_fill_them() {
    let folders = Folders::new();
    let held = || folders.loader().hold_on_gap(Duration::from_secs(3600));
    write(&folders.source(), "a.parquet", &[1, 2, 3, 6, 7]);
    let report = held().run().await.unwrap();
    assert_eq!(report.watermark_after, Some(WatermarkValue::int64(3)), "held before the first gap");
    assert_eq!(details(&report).held_back, 2);
    // The missing ids arrive in a new file: everything loads, in order.
    write(&folders.source(), "b.parquet", &[4, 5]);
    let report = held().run().await.unwrap();
    assert_eq!(report.watermark_after, Some(WatermarkValue::int64(7)));
    assert_eq!(target_sequence(&folders.target()).await.0, [1, 2, 3, 4, 5, 6, 7]);
    // A gap that never fills is released after the timeout.
    write(&folders.source(), "c.parquet", &[9, 10]);
    assert_eq!(held().run().await.unwrap().watermark_after, Some(WatermarkValue::int64(7)));
    let released = folders.loader().hold_on_gap(Duration::ZERO).run().await.unwrap();
    assert_eq!(released.watermark_after, Some(WatermarkValue::int64(10)));
    assert_eq!(details(&released).gaps, [SequenceGap { first: 8, last: 8 }]);
    // The id filling it arrives much later: a late file, loaded and reported.
    write(&folders.source(), "d.parquet", &[8]);
    let late = folders.loader().run().await.unwrap();
    assert_eq!((late.rows.written, late.files.late), (1, 1));
    assert_eq!(late.watermark_after, Some(WatermarkValue::int64(10)));
    assert_eq!(target_sequence(&folders.target()).await.1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    write(&folders.source(), "e.parquet", &[8, 11]);
    let error = folders.loader().late_files(LateFiles::Error).run().await;
    assert!(error.is_ok(), "8 is a duplicate, not a late row: {error:?}");
}

#[tokio::test]
async fn end_bounds_a_run_and_an_import_is_exclusive() {
    let folders = Folders::new();
    write(&folders.source(), "a.parquet", &[1, 2, 3, 4, 5, 6]);
    let report = folders.loader().initial_watermark(2).end(4).run().await.unwrap();
    assert_eq!(report.watermark_before, Some(WatermarkValue::int64(2)));
    assert_eq!(target_sequence(&folders.target()).await.1, [3, 4]);
    folders.loader().run().await.unwrap();
    assert_eq!(target_sequence(&folders.target()).await.1, [3, 4, 5, 6]);
}

#[tokio::test]
async fn upsert_by_key_orders_versions_by_sequence() {
    let folders = Folders::new();
    let source = folders.source();
    let rows = |name: &str, pairs: &[(i64, i64)], tag: &str| {
        let ids: arrow_array::ArrayRef =
            std::sync::Arc::new(arrow_array::Int64Array::from(pairs.iter().map(|p| p.0).collect::<Vec<_>>()));
        let values: arrow_array::ArrayRef = std::sync::Arc::new(arrow_array::StringArray::from(
            pairs.iter().map(|p| format!("{tag}{}", p.1)).collect::<Vec<_>>(),
        ));
        let sequence: arrow_array::ArrayRef =
            std::sync::Arc::new(arrow_array::Int64Array::from(pairs.iter().map(|p| p.1).collect::<Vec<_>>()));
        let batch =
            arrow_array::RecordBatch::try_from_iter([("id", ids), ("value", values), ("sequence_id", sequence)])
                .unwrap();
        std::fs::write(
            std::path::Path::new(&source).join(name),
            highwater_test_support::data::parquet_bytes(&batch, 3),
        )
        .unwrap();
    };
    let upsert = || folders.loader().key(&["id"]).mode(OutputMode::Upsert);
    rows("a.parquet", &[(1, 1), (2, 2)], "a");
    upsert().run().await.unwrap();
    rows("b.parquet", &[(1, 3), (1, 4)], "b");
    upsert().run().await.unwrap();
    let table = highwater_store::Table::open(&folders.target(), TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    assert_eq!(batch.num_rows(), 2);
    let values: Vec<String> = arrow_array::cast::AsArray::as_string::<i32>(batch.column_by_name("value").unwrap())
        .iter()
        .map(|v| v.unwrap().to_owned())
        .collect();
    assert!(values.contains(&"b4".to_owned()) && values.contains(&"a2".to_owned()), "{values:?}");
}

#[tokio::test]
async fn bad_input() {
    let folders = Folders::new();
    write(&folders.source(), "a.parquet", &[1, 2]);
    let error = folders.loader().column("event_id").run().await.unwrap_err();
    assert!(error.to_string().contains("event_id"), "{error}");
    let error = folders.loader().column("value").run().await.unwrap_err();
    assert!(error.to_string().contains("integer"), "{error}");
    let error = folders.loader().max_rows(1).run().await.unwrap_err();
    assert!(matches!(error, Error::TooManyRows { rows: 2, max: 1 }), "{error}");
    let planned = folders.loader().plan().await.unwrap();
    assert_eq!((planned.rows.written, planned.commit_version), (2, None));
    assert!(
        highwater_store::Table::open(&folders.target(), TableOptions::default()).await.is_err(),
        "plan created nothing"
    );
}
