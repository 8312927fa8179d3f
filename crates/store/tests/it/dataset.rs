//! Sources: listing, the file ledger, pruning, schema checks, bad files.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use highwater_core::watermark::{StartBound, TimestampUnit, WatermarkValue};
use highwater_store::Error;
use highwater_store::source::{ColumnRange, Ledger, Scan, ScanOptions, SchemaPolicy, Source, SourceOptions};
use highwater_test_support::data::{STEP_MICROS, T0_MICROS, put_parquet, source_rows};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn source(store: &Arc<dyn ObjectStore>, options: SourceOptions) -> Source {
    Source::from_store(Arc::clone(store), Path::from("src"), "memory://src", options)
}

async fn scan_all(source: &Source, options: ScanOptions) -> Result<Vec<RecordBatch>, Error> {
    let listing = source.list().await?;
    let plan = Scan::plan(&listing, &listing.files, options).await?;
    plan.stream().map_ok(|b| b.batch).try_collect().await
}

#[tokio::test]
async fn listing_skips_hidden_and_young_files() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_parquet(&store, "src/part-0.parquet", &source_rows(1, 10, 1), 5).await;
    put_parquet(&store, "src/year=2024/part-1.parquet", &source_rows(11, 10, 1), 5).await;
    for hidden in ["src/_SUCCESS", "src/_temporary/0/part-9.parquet", "src/.part-0.parquet.crc", "src/notes.txt"] {
        store.put(&Path::from(hidden), PutPayload::from_static(b"x")).await.unwrap();
    }
    let listing = source(&store, SourceOptions::default()).list().await.unwrap();
    let keys: Vec<&str> = listing.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["memory://src/part-0.parquet", "memory://src/year=2024/part-1.parquet"]);
    assert_eq!(listing.files[1].partitions["year"].as_deref(), Some("2024"));
    let young = source(
        &store,
        SourceOptions { min_age: Some(std::time::Duration::from_secs(3600)), ..SourceOptions::default() },
    );
    let listing = young.list().await.unwrap();
    assert!(listing.files.is_empty());
    assert_eq!(listing.too_young.len(), 2);
}

#[tokio::test]
async fn ledger_classifies_new_unchanged_rewritten_and_gone() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_parquet(&store, "src/a.parquet", &source_rows(1, 10, 1), 5).await;
    put_parquet(&store, "src/b.parquet", &source_rows(11, 10, 1), 5).await;
    let source = source(&store, SourceOptions::default());
    // The first run has no ledger: its listing is the baseline.
    let first = source.list().await.unwrap();
    let baseline = Ledger::of(&first);
    let bytes = baseline.to_bytes().unwrap();
    let ledger = Ledger::from_bytes(&bytes, "ledger").unwrap();
    assert_eq!(ledger, baseline);
    // a rewritten in place, b deleted, c new.
    put_parquet(&store, "src/a.parquet", &source_rows(1, 12, 1), 5).await;
    store.delete(&Path::from("src/b.parquet")).await.unwrap();
    put_parquet(&store, "src/c.parquet", &source_rows(21, 10, 1), 5).await;
    put_parquet(&store, "src/d.parquet", &source_rows(31, 10, 1), 5).await;
    let second = source.list().await.unwrap();
    let classes = ledger.classify(&second);
    let keys = |files: &[Arc<highwater_store::source::SourceFile>]| {
        files.iter().map(|f| f.relative.clone()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&classes.new), ["c.parquet", "d.parquet"]);
    assert_eq!(keys(&classes.rewritten), ["a.parquet"]);
    assert_eq!(classes.gone, ["memory://src/b.parquet"]);
    // A file that lands after a run's listing is new to the next run, never skipped.
    let third_listing = source.list().await.unwrap();
    put_parquet(&store, "src/e.parquet", &source_rows(41, 10, 1), 5).await;
    let ledger = Ledger::of(&third_listing);
    let fourth = ledger.classify(&source.list().await.unwrap());
    assert_eq!(keys(&fourth.new), ["e.parquet"]);
    assert_eq!(fourth.unchanged.len(), 3);
}

#[tokio::test]
async fn a_range_on_the_cursor_reads_only_matching_row_groups() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // 4 files × 10 row groups of 1000 rows, arriving in time order (bench-shaped).
    for file in 0..4 {
        put_parquet(&store, &format!("src/part-{file}.parquet"), &source_rows(1 + file * 10_000, 10_000, 7), 1000)
            .await;
    }
    let source = source(&store, SourceOptions::default());
    let listing = source.list().await.unwrap();
    // The last 10% of the time range.
    let start = T0_MICROS + 36_000 * STEP_MICROS;
    let range = ColumnRange {
        column: "modified_date".into(),
        start: StartBound::Exclusive(WatermarkValue::timestamp(start, TimestampUnit::Microsecond)),
        end: None,
        naive_zone: None,
        keep_nulls: false,
    };
    let full = Scan::plan(&listing, &listing.files, ScanOptions::default()).await.unwrap();
    let full_metrics = full.metrics();
    let all: Vec<RecordBatch> = full.stream().map_ok(|b| b.batch).try_collect().await.unwrap();
    let pruned =
        Scan::plan(&listing, &listing.files, ScanOptions { range: Some(range.clone()), ..ScanOptions::default() })
            .await
            .unwrap();
    let metrics = pruned.metrics();
    let batches: Vec<_> = pruned.stream().try_collect().await.unwrap();
    // Rows past `start` live in the last 4-5 row groups (±60 s jitter, late rows up to an hour).
    assert_eq!(metrics.files_pruned.load(Ordering::Relaxed), 3);
    let scanned = metrics.row_groups_scanned.load(Ordering::Relaxed);
    assert!((1..=5).contains(&scanned), "{scanned} row groups scanned");
    assert_eq!(metrics.row_groups_pruned.load(Ordering::Relaxed), 40 - scanned);
    let rows: usize = batches.iter().map(|b| b.batch.num_rows()).sum();
    assert_eq!(rows as u64, metrics.rows_read.load(Ordering::Relaxed));
    assert!(rows <= 5000);
    let bytes = metrics.bytes_read.load(Ordering::Relaxed);
    let full_bytes = full_metrics.bytes_read.load(Ordering::Relaxed);
    // Footers (one 64 KiB suffix read per file) plus at most 1.2x the kept row groups' bytes.
    let kept_bytes: u64 = plan_kept_bytes(&listing, &range).await;
    let footers = 4 * 64 * 1024;
    assert!(bytes <= footers + kept_bytes * 12 / 10, "read {bytes}, row groups in range hold {kept_bytes}");
    assert!(bytes < full_bytes / 2, "pruned scan read {bytes} of {full_bytes} bytes");
    // Every row in the range was read: compare with a filter of the full scan.
    let expected: usize = all
        .iter()
        .map(|b| {
            let times = b
                .column_by_name("modified_date")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                .unwrap()
                .clone();
            times.iter().filter(|t| t.is_some_and(|t| t > start)).count()
        })
        .sum();
    let found: usize = batches
        .iter()
        .map(|b| {
            let times = b
                .batch
                .column_by_name("modified_date")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                .unwrap()
                .clone();
            times.iter().filter(|t| t.is_some_and(|t| t > start)).count()
        })
        .sum();
    assert_eq!(found, expected);
    // Batches know where they came from: file and row index.
    assert!(batches.iter().all(|b| b.file.relative == "part-3.parquet" && b.first_row >= 5000));
}

/// The compressed bytes of the row groups a range keeps.
async fn plan_kept_bytes(listing: &highwater_store::source::Listing, range: &ColumnRange) -> u64 {
    let plan =
        Scan::plan(listing, &listing.files, ScanOptions { range: Some(range.clone()), ..ScanOptions::default() })
            .await
            .unwrap();
    plan.files
        .iter()
        .flat_map(|f| f.row_groups.iter().map(move |&g| f.metadata.metadata().row_groups()[g].compressed_size() as u64))
        .sum()
}

#[tokio::test]
async fn hive_partitions_prune_and_become_columns() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for (day, first) in [("2024-01-01", 1), ("2024-01-02", 101), ("2024-01-03", 201)] {
        let rows = source_rows(first, 100, 3);
        let rows = rows.project(&[0, 1, 2]).unwrap();
        put_parquet(&store, &format!("src/day={day}/part-0.parquet"), &rows, 50).await;
    }
    let source = source(&store, SourceOptions::default());
    let listing = source.list().await.unwrap();
    let range = ColumnRange {
        column: "day".into(),
        start: StartBound::Exclusive(WatermarkValue::date(19_723)), // 2024-01-01
        end: None,
        naive_zone: None,
        keep_nulls: false,
    };
    let plan = Scan::plan(&listing, &listing.files, ScanOptions { range: Some(range), ..ScanOptions::default() })
        .await
        .unwrap();
    assert_eq!(plan.metrics().files_pruned.load(Ordering::Relaxed), 1);
    assert_eq!(plan.schema.field_with_name("day").unwrap().data_type(), &arrow_schema::DataType::Date32);
    let batches: Vec<RecordBatch> = plan.stream().map_ok(|b| b.batch).try_collect().await.unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 200);
    let days = arrow_cast::display::ArrayFormatter::try_new(
        batches[0].column_by_name("day").unwrap().as_ref(),
        &arrow_cast::display::FormatOptions::default(),
    )
    .unwrap()
    .value(0)
    .to_string();
    assert_eq!(days, "2024-01-02");
}

#[tokio::test]
async fn projection_decodes_only_the_named_columns() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_parquet(&store, "src/a.parquet", &source_rows(1, 1000, 1), 500).await;
    let source = source(&store, SourceOptions::default());
    let options = ScanOptions { projection: Some(vec!["sequence_id".into(), "id".into()]), ..ScanOptions::default() };
    let batches = scan_all(&source, options).await.unwrap();
    assert_eq!(
        batches[0].schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        ["sequence_id", "id"]
    );
    let error = scan_all(&source, ScanOptions { projection: Some(vec!["nope".into()]), ..ScanOptions::default() })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
}

#[tokio::test]
async fn schema_conflicts_name_file_and_column() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    put_parquet(&store, "src/a.parquet", &source_rows(1, 10, 1), 5).await;
    // b lacks `amount`; c has `id` as a string.
    let without_amount = source_rows(11, 10, 1);
    let without_amount = without_amount.project(&[0, 1, 2, 4, 5, 6, 7]).unwrap();
    put_parquet(&store, "src/b.parquet", &without_amount, 5).await;
    let source = source(&store, SourceOptions::default());
    let error = scan_all(&source, ScanOptions::default()).await.unwrap_err();
    assert!(
        matches!(&error, Error::SchemaMismatch { file, column, .. } if file.ends_with("b.parquet") && column == "amount"),
        "{error}"
    );
    // `amount` is nullable: by option, b reads it as nulls.
    let lenient =
        ScanOptions { schema: SchemaPolicy { expected: None, allow_added_nullable: true }, ..ScanOptions::default() };
    let batches = scan_all(&source, lenient).await.unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 20);
    let mistyped = RecordBatch::try_from_iter([(
        "id",
        Arc::new(arrow_array::StringArray::from(vec!["1"])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    put_parquet(&store, "src/c.parquet", &mistyped, 5).await;
    let error = scan_all(&source, ScanOptions { projection: Some(vec!["id".into()]), ..ScanOptions::default() })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::SchemaMismatch { file, column, .. } if file.ends_with("c.parquet") && column == "id"),
        "{error}"
    );
}

/// Corrupt files: each a typed error naming the file, never a panic.
#[tokio::test]
async fn bad_files_are_typed_errors_naming_the_file() {
    let good = highwater_test_support::data::parquet_bytes(&source_rows(1, 2000, 1), 500);
    let mut wrong_magic = good.to_vec();
    let length = wrong_magic.len();
    wrong_magic[length - 4..].copy_from_slice(b"PAR2");
    let mut lying_length = good.to_vec();
    lying_length[length - 8..length - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    // The first page header (right after the magic): Parquet pages carry no checksum by
    // default, so damage must hit structure to be detectable.
    let mut bad_page = good.to_vec();
    for byte in &mut bad_page[4..40] {
        *byte = 0xFF;
    }
    let cases: Vec<(&str, Bytes)> = vec![
        ("empty.parquet", Bytes::new()),
        ("truncated-footer.parquet", good.slice(..good.len() - 20)),
        ("wrong-magic.parquet", Bytes::from(wrong_magic)),
        ("lying-footer-length.parquet", Bytes::from(lying_length)),
        ("bad-page.parquet", Bytes::from(bad_page)),
        ("not-parquet.parquet", Bytes::from_static(b"id,name\n1,ada\n")),
    ];
    for (name, bytes) in cases {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store.put(&Path::from(format!("src/{name}")), PutPayload::from_bytes(bytes)).await.unwrap();
        let Err(error) = scan_all(&source(&store, SourceOptions::default()), ScanOptions::default()).await else {
            panic!("{name} read without an error")
        };
        assert!(matches!(&error, Error::CorruptFile { file, .. } if file.ends_with(name)), "{name}: {error}");
    }
}

#[tokio::test]
async fn zero_files_scan_to_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let batches = scan_all(&source(&store, SourceOptions::default()), ScanOptions::default()).await.unwrap();
    assert!(batches.is_empty());
}
