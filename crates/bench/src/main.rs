//! The highwater peer of `shared/bench`: `highwater-bench WORKLOAD DATA_DIR OUT_DIR`.
//!
//! Runs a workload through the same library code the CLI uses and writes the bench's layout:
//! - `w1`, `w2`: the loaded rows as a highwater table at `OUT_DIR/data` (its Parquet files at the
//!   top, the log under `data/_highwater/`, which the checker does not recurse into) and
//!   `OUT_DIR/watermark.json`. The starting watermarks come from `manifest.json`, imported as
//!   exclusive bounds — as the seed's `>` did.
//! - `w3`: the target snapshot linked into `OUT_DIR/target` and adopted as a table there, then
//!   the events applied by the CDC loader; `DATA_DIR` is never written.
//!
//! The last line printed is a JSON object of phase timings (seconds), which `measure.py` keeps.
//! Threads: `BENCH_THREADS` (default 2).

use std::path::Path;
use std::time::Instant;

use highwater_core::report::LoadReport;
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let [_, workload, data, out] = args.as_slice() else {
        return Err("usage: highwater-bench {w1|w2|w3|w4} DATA_DIR OUT_DIR".into());
    };
    limit_malloc_arenas();
    let started = Instant::now();
    let threads = std::env::var("BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let setup = started.elapsed();
    std::fs::create_dir_all(out)?;
    let manifest: Value = serde_json::from_slice(&std::fs::read(Path::new(data).join("manifest.json"))?)?;
    let working = Instant::now();
    let phases = runtime.block_on(run(workload, Path::new(data), Path::new(out), &manifest))?;
    // The shape of shared/bench/peers/common.py's report: import, setup, work, then our phases.
    let mut line = serde_json::Map::new();
    line.insert("peer".into(), json!("highwater"));
    line.insert("workload".into(), json!(workload));
    line.insert("import_s".into(), json!(0.0));
    line.insert("setup_s".into(), json!(setup.as_secs_f64()));
    line.insert("work_s".into(), json!(working.elapsed().as_secs_f64()));
    line.insert("phases".into(), Value::Object(phases));
    println!("{}", Value::Object(line));
    Ok(())
}

async fn run(
    workload: &str,
    data: &Path,
    out: &Path,
    manifest: &Value,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let source = data.join("source");
    let target = out.join("data");
    let report = match workload {
        "w1" => {
            let watermark = manifest["source"]["w1"]["watermark"].as_str().ok_or("manifest: source.w1.watermark")?;
            let report = highwater_timestamp::TimestampLoader::new(path(&source), path(&target))
                .cursor("modified_date")
                .initial_watermark(watermark)
                .run()
                .await?;
            let after = report
                .watermark_after
                .as_ref()
                .and_then(highwater_core::watermark::WatermarkValue::timestamp_nanos)
                .ok_or("no watermark")?;
            let micros = (after / 1000) as i64;
            let iso = report.watermark_after.as_ref().map(ToString::to_string).unwrap_or_default();
            write_watermark(out, &json!({"rows": report.rows.written, "watermark_us": micros, "watermark": iso}))?;
            report
        }
        "w2" => {
            let watermark = manifest["source"]["w2"]["watermark"].as_i64().ok_or("manifest: source.w2.watermark")?;
            let report = highwater_sequence::SequenceLoader::new(path(&source), path(&target))
                .column("sequence_id")
                .initial_watermark(watermark)
                .run()
                .await?;
            let after = match &report.watermark_after {
                Some(highwater_core::watermark::WatermarkValue::Int64 { value }) => *value,
                _ => watermark,
            };
            write_watermark(out, &json!({"rows": report.rows.written, "watermark": after}))?;
            report
        }
        "w3" => w3(data, out).await?,
        "w4" => return w4(data, out).await,
        "scan-full" | "scan-range" => return scan(workload == "scan-range", &source, manifest).await,
        "sink" => return sink(&source, &target).await,
        other => return Err(format!("workload {other} is not implemented by this peer yet").into()),
    };
    Ok(phases(&report))
}

/// W3: the target snapshot is linked (not copied: the data stays as it is) into
/// `OUT_DIR/target`, adopted as version 0 of a table there, and the events applied to it.
/// Nothing is written under `DATA_DIR`: replaced files are links moved within `OUT_DIR`.
async fn w3(data: &Path, out: &Path) -> Result<LoadReport, Failure> {
    let started = Instant::now();
    let target = out.join("target");
    std::fs::create_dir_all(&target)?;
    let mut linked = 0;
    for entry in std::fs::read_dir(data.join("w3").join("target"))? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().ends_with(".parquet") {
            continue;
        }
        let destination = target.join(&name);
        if std::fs::hard_link(entry.path(), &destination).is_err() {
            std::fs::copy(entry.path(), &destination)?;
        }
        linked += 1;
    }
    if linked == 0 {
        return Err(format!("no Parquet files under {}", data.join("w3").join("target").display()).into());
    }
    highwater_store::Table::adopt(&path(&target), highwater_store::TableOptions::default()).await?;
    let adopted = started.elapsed();
    let mut report =
        highwater_cdc::CdcLoader::new(path(&data.join("w3").join("cdc")), path(&target)).key(&["id"]).run().await?;
    report.phases.insert(0, highwater_core::report::Phase { name: "adopt".into(), seconds: adopted.as_secs_f64() });
    Ok(report)
}

/// W4: mode (a), `w4/a` → `w4/b` into the table at `OUT_DIR` (its `inserts/`, `updates/`,
/// `deletes/` folders are the checked outputs). Then, unless `HIGHWATER_W4_MODE_B=0`, mode (b):
/// a baseline index of `w4/a` in `OUT_DIR/.mode-b` (not timed), and `w4/b` diffed against it
/// (timed: `mode_b_s`) — the whole-process wall then includes both, so the mode (a) figure for
/// the peer table comes from a run with `HIGHWATER_W4_MODE_B=0`.
async fn w4(data: &Path, out: &Path) -> Result<serde_json::Map<String, Value>, Failure> {
    let (a, b) = (path(&data.join("w4").join("a")), path(&data.join("w4").join("b")));
    let started = Instant::now();
    let report = highwater_diff::DiffLoader::new(&b, path(out)).previous(&a).key(&["id"]).run().await?;
    let mut phases = phases(&report);
    phases.insert("mode_a_s".into(), json!(started.elapsed().as_secs_f64()));
    if std::env::var("HIGHWATER_W4_MODE_B").is_ok_and(|v| v == "0") {
        return Ok(phases);
    }
    let scratch = path(&out.join(".mode-b"));
    let started = Instant::now();
    highwater_diff::DiffLoader::new(&a, &scratch).key(&["id"]).baseline(true).run().await?;
    phases.insert("index_build_s".into(), json!(started.elapsed().as_secs_f64()));
    let started = Instant::now();
    let incremental = highwater_diff::DiffLoader::new(&b, &scratch).key(&["id"]).run().await?;
    phases.insert("mode_b_s".into(), json!(started.elapsed().as_secs_f64()));
    phases.insert("mode_b".into(), Value::Object(self::phases(&incremental)));
    let counts = |r: &LoadReport| (r.rows.inserted, r.rows.updated, r.rows.deleted);
    if counts(&incremental) != counts(&report) {
        return Err(format!("mode (b) found {:?}, mode (a) {:?}", counts(&incremental), counts(&report)).into());
    }
    Ok(phases)
}

/// Scans the source: every column of every file, or only row groups past the W1 watermark.
async fn scan(ranged: bool, source: &Path, manifest: &Value) -> Result<serde_json::Map<String, Value>, Failure> {
    use highwater_core::watermark::{StartBound, TimestampUnit, WatermarkValue};
    use highwater_store::source::{ColumnRange, Scan, ScanOptions, Source, SourceOptions};
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    let listing = Source::open(&[path(source)], SourceOptions::default())?.list().await?;
    let range = if ranged {
        let micros = manifest["source"]["w1"]["watermark_us"].as_i64().ok_or("manifest: source.w1.watermark_us")?;
        Some(ColumnRange {
            column: "modified_date".into(),
            start: StartBound::Exclusive(WatermarkValue::timestamp(micros, TimestampUnit::Microsecond)),
            end: None,
            naive_zone: None,
            keep_nulls: false,
        })
    } else {
        None
    };
    let plan =
        Scan::plan(&listing, &listing.files, ScanOptions { range, batch_size: 64 * 1024, ..ScanOptions::default() })
            .await?;
    let metrics = plan.metrics();
    let overlapping: u64 = plan
        .files
        .iter()
        .flat_map(|f| f.row_groups.iter().map(move |&g| f.metadata.metadata().row_groups()[g].compressed_size() as u64))
        .sum();
    let mut stream = plan.stream();
    let mut rows = 0u64;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        rows += batch?.batch.num_rows() as u64;
    }
    let mut out = serde_json::Map::new();
    out.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    out.insert("rows".into(), json!(rows));
    out.insert("bytes_read".into(), json!(metrics.bytes_read.load(Relaxed)));
    out.insert("bytes_of_overlapping_row_groups".into(), json!(overlapping));
    out.insert("row_groups_scanned".into(), json!(metrics.row_groups_scanned.load(Relaxed)));
    out.insert("row_groups_pruned".into(), json!(metrics.row_groups_pruned.load(Relaxed)));
    out.insert("files_pruned".into(), json!(metrics.files_pruned.load(Relaxed)));
    Ok(out)
}

/// Writes every source row through the sink into a table (rows per second).
async fn sink(source: &Path, target: &Path) -> Result<serde_json::Map<String, Value>, Failure> {
    use highwater_store::source::{Scan, ScanOptions, Source, SourceOptions};
    use highwater_store::write::{ParquetSink, SinkOptions};
    let listing = Source::open(&[path(source)], SourceOptions::default())?.list().await?;
    let plan =
        Scan::plan(&listing, &listing.files, ScanOptions { batch_size: 64 * 1024, ..ScanOptions::default() }).await?;
    let schema = std::sync::Arc::clone(&plan.schema);
    let mut stream = plan.stream();
    let mut batches = Vec::new();
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        batches.push(batch?.batch);
    }
    let rows: usize = batches.iter().map(arrow_array::RecordBatch::num_rows).sum();
    let table =
        highwater_store::Table::create(&path(target), &schema, highwater_store::TableOptions::default()).await?;
    let started = Instant::now();
    let mut run = table.begin(highwater_store::RunSpec::operation(highwater_store::Operation::Load)).await?;
    let mut sink = ParquetSink::new(run.file_target(), schema, SinkOptions::default())?;
    for batch in &batches {
        sink.write(batch).await?;
    }
    for file in sink.finish().await? {
        run.add_file(file)?;
    }
    run.commit(None, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = serde_json::Map::new();
    out.insert("rows".into(), json!(rows));
    out.insert("seconds".into(), json!(seconds));
    out.insert("rows_per_second".into(), json!(rows as f64 / seconds));
    Ok(out)
}

/// glibc gives every thread that allocates its own malloc arena (up to 8 per core), and memory
/// freed into one arena is not reused by another thread: a run whose phases allocate on
/// different threads (tokio workers, blocking I/O threads) keeps every phase's peak resident.
/// Two arenas cut W3's peak RSS at 10M rows from ~600 MiB to ~320 MiB at no cost in time
/// (`MALLOC_ARENA_MAX=2` does the same for any process embedding highwater).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, reason = "one call into glibc, before any thread starts")]
fn limit_malloc_arenas() {
    const M_ARENA_MAX: i32 = -8;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn path(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn write_watermark(out: &Path, doc: &Value) -> Result<(), Failure> {
    std::fs::write(out.join("watermark.json"), serde_json::to_vec_pretty(doc)?)?;
    Ok(())
}

fn phases(report: &LoadReport) -> serde_json::Map<String, Value> {
    report.phases.iter().map(|p| (p.name.clone(), json!(p.seconds))).collect()
}
