//! The highwater peer of `shared/bench`: `highwater-bench WORKLOAD DATA_DIR OUT_DIR`.
//!
//! Runs a workload through the same library code the CLI uses and writes the bench's layout:
//! - `w1`, `w2`: the loaded rows as a highwater table at `OUT_DIR/data` (its Parquet files at the
//!   top, the log under `data/_highwater/`, which the checker does not recurse into) and
//!   `OUT_DIR/watermark.json`. The starting watermarks come from `manifest.json`, imported as
//!   exclusive bounds — as the seed's `>` did.
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
            let after = report.watermark_after.as_ref().and_then(highwater_core::watermark::WatermarkValue::timestamp_nanos).ok_or("no watermark")?;
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
        other => return Err(format!("workload {other} is not implemented by this peer yet").into()),
    };
    Ok(phases(&report))
}

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
