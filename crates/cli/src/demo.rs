//! `highwater demo`: a realistic sample under `./highwater-demo/` — customers with a
//! `modified_date`, an event log with `sequence_id`, a CDC stream, a daily full snapshot — loaded
//! by all four patterns, then changed (new, late, updated, deleted rows, a late file, a replayed
//! file) and loaded again, so that only what changed moves and the watermarks advance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// The file marking a folder as the demo's (so that a rerun may clear it).
const MARKER: &str = ".highwater-demo";
/// 2024-01-01T00:00:00Z in microseconds.
const T0: i64 = 1_704_067_200_000_000;
const CITIES: [&str; 6] = ["Berlin", "Lisbon", "Oslo", "Austin", "Osaka", "Lagos"];
const KINDS: [&str; 4] = ["view", "cart", "order", "refund"];

/// A tiny deterministic generator (splitmix64): the same demo every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn write(path: &Path, batch: &RecordBatch) -> Result<(), String> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(())
}

/// A customer row: (id, name, email, city, modified µs).
type Customer = (i64, String, String, String, i64);

fn customer(id: i64, version: u32, modified: i64, rng: &mut Rng) -> Customer {
    let city = CITIES[rng.below(CITIES.len() as u64) as usize].to_owned();
    (
        id,
        format!("Customer {id}{}", if version > 0 { format!(" v{version}") } else { String::new() }),
        format!("c{id}@example.com"),
        city,
        modified,
    )
}

fn customers(rows: &[Customer]) -> RecordBatch {
    let column = |f: &dyn Fn(&Customer) -> String| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
        ("name", column(&|r| r.1.clone())),
        ("email", column(&|r| r.2.clone())),
        ("city", column(&|r| r.3.clone())),
        (
            "modified_date",
            Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>()).with_timezone("UTC"))
                as ArrayRef,
        ),
    ])
    .unwrap_or_else(|e| unreachable!("a fixed schema: {e}"))
}

fn with_ops(batch: &RecordBatch, ops: &[&str], sequence: &[i64]) -> RecordBatch {
    let schema = batch.schema();
    let mut columns: Vec<(&str, ArrayRef)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.name() != "modified_date")
        .map(|(f, c)| (f.name().as_str(), Arc::clone(c)))
        .collect();
    columns.push(("operation", Arc::new(StringArray::from(ops.to_vec()))));
    columns.push(("sequence_num", Arc::new(Int64Array::from(sequence.to_vec()))));
    RecordBatch::try_from_iter(columns).unwrap_or_else(|e| unreachable!("a fixed schema: {e}"))
}

fn events(ids: &[i64], rng: &mut Rng) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("sequence_id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        (
            "customer_id",
            Arc::new(Int64Array::from(ids.iter().map(|_| 1 + rng.below(1000) as i64).collect::<Vec<_>>())) as ArrayRef,
        ),
        (
            "kind",
            Arc::new(StringArray::from(ids.iter().map(|_| KINDS[rng.below(4) as usize]).collect::<Vec<_>>()))
                as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(ids.iter().map(|_| rng.below(100_000) as f64 / 100.0).collect::<Vec<_>>()))
                as ArrayRef,
        ),
    ])
    .unwrap_or_else(|e| unreachable!("a fixed schema: {e}"))
}

/// The pipeline of the demo's four tables.
fn pipeline(dir: &Path) -> String {
    let p = |rel: &str| dir.join(rel).display().to_string().replace('\\', "/");
    format!(
        r#"# The demo's pipeline: one table per pattern. `highwater run` this file again after
# changing the sources, or try `highwater status` / `highwater history` on it.
[pipeline]
concurrency = 4

[[tables]]
name = "customers"
pattern = "timestamp"
source = "{customers}"
target = "{customers_target}"
cursor = "modified_date"
key = ["id"]
mode = "upsert"        # the latest version of each customer
lookback = "1h"        # re-read an hour behind the watermark for late commits

[[tables]]
name = "events"
pattern = "sequence"
source = "{events}"
target = "{events_target}"
column = "sequence_id"

[[tables]]
name = "customers_cdc"
pattern = "cdc"
source = "{cdc}"
target = "{cdc_target}"
key = ["id"]

[[tables]]
name = "customer_changes"
pattern = "diff"
source = "{snapshot}"
target = "{diff_target}"
key = ["id"]
"#,
        customers = p("sources/customers"),
        customers_target = p("targets/customers"),
        events = p("sources/events"),
        events_target = p("targets/events"),
        cdc = p("sources/customers_cdc"),
        cdc_target = p("targets/customers_cdc"),
        snapshot = p("sources/customers_snapshot"),
        diff_target = p("targets/customer_changes"),
    )
}

/// Creates (or recreates) the demo folder with its first day of data; returns the pipeline file.
pub fn prepare(dir: &Path, rows: usize) -> Result<PathBuf, String> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).map_err(|e| e.to_string())?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(format!(
                "{} exists and is not a highwater demo folder: choose another with --dir",
                dir.display()
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(MARKER), "a highwater demo folder: `highwater demo` recreates it\n")
        .map_err(|e| e.to_string())?;
    let n = rows.max(100) as i64;
    let mut rng = Rng(20_240_101);
    // Customers: one row per id, changed over the day.
    let all: Vec<Customer> = (1..=n).map(|id| customer(id, 0, T0 + id * 1_000_000, &mut rng)).collect();
    for (index, chunk) in all.chunks(all.len().div_ceil(4)).enumerate() {
        write(&dir.join(format!("sources/customers/day1-part-{index}.parquet")), &customers(chunk))?;
    }
    // The event log, with a gap of five ids the producer will deliver late.
    let ids: Vec<i64> = (1..=2 * n).filter(|id| !(n..n + 5).contains(id)).collect();
    for (index, chunk) in ids.chunks(ids.len().div_ceil(4)).enumerate() {
        write(&dir.join(format!("sources/events/batch-{index}.parquet")), &events(chunk, &mut rng))?;
    }
    // The CDC stream: every customer inserted, some updated, a few deleted; files out of order.
    let half = (n / 2) as usize;
    let inserts: Vec<Customer> = all[..half].to_vec();
    let ops: Vec<&str> = vec!["INSERT"; half];
    let sequence: Vec<i64> = (1..=half as i64).collect();
    let updated: Vec<Customer> = all[..half / 10].iter().map(|c| customer(c.0, 1, c.4, &mut rng)).collect();
    let update_ops: Vec<&str> = (0..updated.len()).map(|i| if i % 4 == 3 { "DELETE" } else { "UPDATE" }).collect();
    let update_sequence: Vec<i64> = (0..updated.len() as i64).map(|i| half as i64 + 1 + i).collect();
    write(
        &dir.join("sources/customers_cdc/cdc-0002.parquet"),
        &with_ops(&customers(&updated), &update_ops, &update_sequence),
    )?;
    write(&dir.join("sources/customers_cdc/cdc-0001.parquet"), &with_ops(&customers(&inserts), &ops, &sequence))?;
    // Today's full snapshot.
    write(&dir.join("sources/customers_snapshot/snapshot.parquet"), &customers(&all))?;
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, pipeline(dir)).map_err(|e| e.to_string())?;
    Ok(file)
}

/// The next day: new, updated and late customers; more events and the late gap; CDC updates,
/// deletes and a replayed file; a new snapshot with updates, deletes and inserts.
pub fn change(dir: &Path, rows: usize) -> Result<(), String> {
    let n = rows.max(100) as i64;
    let mut rng = Rng(20_240_102);
    let day2 = T0 + (n + 3600) * 1_000_000;
    // New customers and updates of old ones, past the watermark.
    let mut changed: Vec<Customer> = ((n + 1)..=(n + n / 10)).map(|id| customer(id, 0, day2 + id, &mut rng)).collect();
    changed.extend((1..=n / 20).map(|i| customer(i * 7 % n + 1, 2, day2 + n + i, &mut rng)));
    write(&dir.join("sources/customers/day2-part-0.parquet"), &customers(&changed))?;
    // A late file: committed late, stamped 20 minutes before the last watermark (lookback 1h).
    let late: Vec<Customer> =
        (1..=5).map(|i| customer(n + n / 10 + i, 0, T0 + n * 1_000_000 - 1_200_000_000, &mut rng)).collect();
    write(&dir.join("sources/customers/late-arrival.parquet"), &customers(&late))?;
    // Events: the next ids, and the five missing ones in a late file.
    let next: Vec<i64> = (2 * n + 1..=2 * n + n / 2).collect();
    write(&dir.join("sources/events/batch-4.parquet"), &events(&next, &mut rng))?;
    write(&dir.join("sources/events/late-gap-fill.parquet"), &events(&(n..n + 5).collect::<Vec<_>>(), &mut rng))?;
    // CDC: updates and deletes at later sequences, and a replay of an earlier file.
    let half = n / 2;
    let touched: Vec<Customer> = (0..n / 20).map(|i| customer(1 + (i * 13) % half, 3, 0, &mut rng)).collect();
    let ops: Vec<&str> = (0..touched.len()).map(|i| if i % 5 == 4 { "DELETE" } else { "UPDATE" }).collect();
    let sequence: Vec<i64> = (0..touched.len() as i64).map(|i| 10 * n + i).collect();
    write(&dir.join("sources/customers_cdc/cdc-0003.parquet"), &with_ops(&customers(&touched), &ops, &sequence))?;
    std::fs::copy(
        dir.join("sources/customers_cdc/cdc-0002.parquet"),
        dir.join("sources/customers_cdc/cdc-0002-redelivered.parquet"),
    )
    .map_err(|e| e.to_string())?;
    // The next snapshot: 2% updated, 1% deleted, 1% new.
    let mut rng = Rng(20_240_101);
    let mut snapshot: Vec<Customer> = (1..=n).map(|id| customer(id, 0, T0 + id * 1_000_000, &mut rng)).collect();
    let mut rng = Rng(7);
    snapshot.retain(|c| c.0 % 100 != 42);
    for c in snapshot.iter_mut().filter(|c| c.0 % 50 == 1) {
        *c = customer(c.0, 4, c.4, &mut rng);
    }
    snapshot.extend((1..=n / 100).map(|i| customer(10 * n + i, 0, day2, &mut rng)));
    write(&dir.join("sources/customers_snapshot/snapshot.parquet"), &customers(&snapshot))?;
    Ok(())
}
