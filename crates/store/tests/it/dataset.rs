//! Sources: listing, the file ledger, pruning, schema checks, bad files.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use highwater_core::report::{LoadReport, PatternReport, TimestampReport};
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

/// Parquet bytes of `batch`, uncompressed and dictionary-encoded (so that a test can find and
/// damage the encoded values).
fn uncompressed_parquet(batch: &RecordBatch) -> Vec<u8> {
    use parquet::file::properties::WriterProperties;
    let properties = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .set_dictionary_enabled(true)
        .build();
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// A file with a valid footer whose data page makes the Parquet decoder panic: the bit-packed
/// run header of the definition levels (256 levels of 1 bit: `65` = 32 groups of 8, after the
/// levels' 4-byte length 33) is changed to `0x21`, so the rest of the page is misread as runs
/// longer than the page (arrow-buffer asserts "offset + len out of bounds").
fn panicking_data_page() -> Vec<u8> {
    let values: arrow_array::Int64Array = (0..256).map(|i| (i % 5 != 0).then_some(i % 4)).collect();
    let batch = RecordBatch::try_from_iter([("k", Arc::new(values) as arrow_array::ArrayRef)]).unwrap();
    let mut bytes = uncompressed_parquet(&batch);
    let metadata =
        parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&Bytes::from(bytes.clone())).unwrap();
    let column = metadata.row_group(0).column(0);
    let (start, length) = column.byte_range();
    let data_page = usize::try_from(column.data_page_offset()).unwrap()..usize::try_from(start + length).unwrap();
    let levels: Vec<usize> = data_page.clone().filter(|&at| bytes[at..].starts_with(&[33, 0, 0, 0, 65])).collect();
    assert_eq!(levels.len(), 1, "the definition levels of the data page, once: {:?}", &bytes[data_page]);
    bytes[levels[0] + 4] = 0x21;
    bytes
}

fn panic_of<T>(run: impl FnOnce() -> T) -> Option<String> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
    outcome.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// A panic inside the Parquet decoder — while reading a footer's embedded Arrow schema (arrow-ipc)
/// or decoding a data page (parquet/arrow-buffer) — is a typed error naming the file, not a crash.
#[tokio::test]
async fn a_decoder_panic_is_a_typed_error_naming_the_file() {
    let footer = Bytes::from_static(include_bytes!("../fixtures/arrow-schema-panic.parquet"));
    let data_page = Bytes::from(panicking_data_page());
    // The raw decoders do panic on these bytes (else this test would not test the catch).
    let footer_panic =
        panic_of(|| parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(footer.clone()).map(|_| ()));
    assert!(footer_panic.is_some(), "the footer no longer panics the decoder");
    let page_panic = panic_of(|| {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data_page.clone()).unwrap().build();
        reader.unwrap().map(|batch| batch.map(|b| b.num_rows())).collect::<Vec<_>>()
    });
    assert!(page_panic.as_deref().is_some_and(|m| m.contains("out of bounds")), "{page_panic:?}");

    for (name, bytes, at_plan) in
        [("schema-panic.parquet", footer, true), ("deeper/page-panic.parquet", data_page, false)]
    {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store.put(&Path::from(format!("src/{name}")), PutPayload::from_bytes(bytes)).await.unwrap();
        let source = source(&store, SourceOptions::default());
        let listing = source.list().await.unwrap();
        let planned = Scan::plan(&listing, &listing.files, ScanOptions::default()).await;
        // A bad footer fails the plan; a bad page passes it and fails the stream.
        assert_eq!(planned.is_err(), at_plan, "{name}: {:?}", planned.as_ref().err());
        let error = match planned {
            Err(error) => error,
            Ok(plan) => plan.stream().try_collect::<Vec<_>>().await.expect_err("the page decodes"),
        };
        let key = format!("memory://src/{name}");
        assert!(
            matches!(&error, Error::CorruptFile { file, detail } if *file == key && detail.contains("the Parquet decoder panicked")),
            "{name}: {error}"
        );
    }
}

/// A source of two locations (two prefixes of one store, one a string prefix of the other) lists
/// every file of both once, keyed by location, and reads all of their rows.
#[tokio::test]
async fn a_source_over_two_locations_lists_and_reads_both() {
    let (store, _) = highwater_store::store_for("memory://two-locations").unwrap();
    put_parquet(&store, "landing/eu/part-0.parquet", &source_rows(1, 100, 1), 50).await;
    put_parquet(&store, "landing/eu/day=1/part-1.parquet", &source_rows(101, 50, 1), 50).await;
    // The same relative name under the second location is another file.
    put_parquet(&store, "landing/eu-west/part-0.parquet", &source_rows(151, 70, 1), 50).await;
    put_parquet(&store, "landing/other/part-9.parquet", &source_rows(1000, 10, 1), 50).await;
    let locations = ["memory://two-locations/landing/eu", "memory://two-locations/landing/eu-west/"];
    let source = Source::open(&locations, SourceOptions::default()).unwrap();
    let listing = source.list().await.unwrap();
    let files: Vec<(&str, usize, &str)> =
        listing.files.iter().map(|f| (f.key.as_str(), f.root, f.relative.as_str())).collect();
    assert_eq!(
        files,
        [
            ("memory://two-locations/landing/eu-west/part-0.parquet", 1, "part-0.parquet"),
            ("memory://two-locations/landing/eu/day=1/part-1.parquet", 0, "day=1/part-1.parquet"),
            ("memory://two-locations/landing/eu/part-0.parquet", 0, "part-0.parquet"),
        ]
    );
    let batches = scan_all(&source, ScanOptions::default()).await.unwrap();
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=220).collect::<Vec<i64>>());
    // The ledger tells the two `part-0.parquet` apart: a new file in one location is new alone.
    let ledger = Ledger::of(&listing);
    put_parquet(&store, "landing/eu-west/part-1.parquet", &source_rows(221, 5, 1), 50).await;
    let classes = ledger.classify(&source.list().await.unwrap());
    assert_eq!(
        classes.new.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
        ["memory://two-locations/landing/eu-west/part-1.parquet"]
    );
    assert_eq!(classes.unchanged.len(), 3);
}

#[tokio::test]
async fn a_location_that_lists_no_data_files_is_a_warning_in_the_report() {
    let (store, _) = highwater_store::store_for("memory://empty-location").unwrap();
    put_parquet(&store, "landing/eu/part-0.parquet", &source_rows(1, 10, 1), 50).await;
    // A mistyped prefix on an object store is not an error, only empty; hidden files do not count.
    store.put(&Path::from("landing/eu-wst/_SUCCESS"), PutPayload::from_static(b"")).await.unwrap();
    let locations = ["memory://empty-location/landing/eu", "memory://empty-location/landing/eu-wst"];
    let listing = Source::open(&locations, SourceOptions::default()).unwrap().list().await.unwrap();
    let mut report = LoadReport::new("t", "r", PatternReport::Timestamp(TimestampReport::default()));
    listing.note_in(&mut report);
    assert_eq!(report.files.listed, 1);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("memory://empty-location/landing/eu-wst lists no data files"));
    // A location with data warns of nothing.
    let listing = Source::open(&locations[..1], SourceOptions::default()).unwrap().list().await.unwrap();
    let mut report = LoadReport::new("t", "r", PatternReport::Timestamp(TimestampReport::default()));
    listing.note_in(&mut report);
    assert_eq!(report.warnings, Vec::<String>::new());
}

/// Hive partition pruning skips the data of pruned partitions: the rows and bytes read are those
/// of the kept partitions' row groups, and a pruned file costs its footer only.
#[tokio::test]
async fn hive_partition_pruning_reads_only_the_kept_partitions() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for (day, first) in [("2024-01-01", 1), ("2024-01-02", 101), ("2024-01-03", 201)] {
        put_parquet(&store, &format!("src/day={day}/part-0.parquet"), &source_rows(first, 100, 3), 50).await;
    }
    let source = source(&store, SourceOptions::default());
    let listing = source.list().await.unwrap();
    let range = |start: i32| ColumnRange {
        column: "day".into(),
        start: StartBound::Exclusive(WatermarkValue::date(start)),
        end: None,
        naive_zone: None,
        keep_nulls: false,
    };
    // (plan, bytes fetched by the plan, bytes fetched by the stream, rows streamed)
    let scan = async |range: Option<ColumnRange>| {
        let plan = Scan::plan(&listing, &listing.files, ScanOptions { range, ..ScanOptions::default() }).await.unwrap();
        let metrics = plan.metrics();
        let footers = metrics.bytes_read.load(Ordering::Relaxed);
        let kept_bytes: u64 = plan
            .files
            .iter()
            .flat_map(|f| f.row_groups.iter().map(|&g| f.metadata.metadata().row_groups()[g].compressed_size() as u64))
            .sum();
        let files: Vec<String> = plan.files.iter().map(|f| f.file.relative.clone()).collect();
        let batches: Vec<RecordBatch> = plan.stream().map_ok(|b| b.batch).try_collect().await.unwrap();
        let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
        let data = metrics.bytes_read.load(Ordering::Relaxed) - footers;
        (metrics, files, footers, data, kept_bytes, rows)
    };
    let (all, _, all_footers, all_data, all_kept, all_rows) = scan(None).await;
    let (pruned, files, footers, data, kept, rows) = scan(Some(range(19_723))).await; // > 2024-01-01
    assert_eq!(files, ["day=2024-01-02/part-0.parquet", "day=2024-01-03/part-0.parquet"]);
    assert_eq!(
        [
            pruned.files_pruned.load(Ordering::Relaxed),
            pruned.files_scanned.load(Ordering::Relaxed),
            pruned.row_groups_pruned.load(Ordering::Relaxed),
            pruned.row_groups_scanned.load(Ordering::Relaxed),
        ],
        [1, 2, 2, 4]
    );
    assert_eq!((all.files_pruned.load(Ordering::Relaxed), all.row_groups_scanned.load(Ordering::Relaxed)), (0, 6));
    assert_eq!((rows, pruned.rows_read.load(Ordering::Relaxed)), (200, 200));
    assert_eq!((all_rows, all.rows_read.load(Ordering::Relaxed)), (300, 300));
    // Every footer is read to plan (the schema check sees every file) ...
    assert_eq!(footers, all_footers);
    // ... but the data fetched is exactly the kept row groups': none of the pruned partition's.
    assert_eq!(data, kept, "pruned scan: {data} data bytes, its row groups hold {kept}");
    assert_eq!(all_data, all_kept);
    let pruned_file = &listing.files[0];
    assert_eq!(pruned_file.relative, "day=2024-01-01/part-0.parquet");
    assert!(data > 0 && data < all_data, "{data} of {all_data}");
    assert!(all_data - data < pruned_file.size, "the pruned partition's data is all that was saved");
    // A range past every partition reads no data at all.
    let (none, files, _, data, _, rows) = scan(Some(range(19_725))).await;
    assert!(files.is_empty());
    assert_eq!((none.files_pruned.load(Ordering::Relaxed), data, rows), (3, 0, 0));
}
