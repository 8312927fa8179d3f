//! A real `highwater` process killed at deterministic points of real runs on the local
//! filesystem: `HIGHWATER_CRASH_AFTER_OPS=N` (the `crash-points` feature of the test build)
//! aborts it right after its N-th store operation — no unwinding, no destructors, as a SIGKILL.
//! For each pattern, 20 points spread over a whole run; after each, a rerun must leave the target
//! equal to an uninterrupted run's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use highwater::store::{Table, TableOptions};

use crate::{Digest, table_digest};

/// Crash points per pattern.
const POINTS: u64 = 20;

fn highwater(args: &[&str], crash_after: Option<u64>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_highwater"));
    command.args(args).env_remove("HIGHWATER_CRASH_AFTER_OPS");
    if let Some(n) = crash_after {
        command.env("HIGHWATER_CRASH_AFTER_OPS", n.to_string());
    }
    command.output().unwrap()
}

/// The demo's sources (both days), built once per test process.
fn demo_sources() -> &'static Path {
    static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let output = highwater(&["demo", "--dir", dir.path().to_str().unwrap(), "--rows", "300"], None);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        dir
    })
    .path()
}

/// A fresh folder with the demo's sources, no targets, and a pipeline pointing there.
fn fresh() -> (tempfile::TempDir, PathBuf) {
    let demo = demo_sources();
    let dir = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .args(["-rp", &demo.join("sources").display().to_string(), &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(copy.success());
    let pipeline = std::fs::read_to_string(demo.join("pipeline.toml"))
        .unwrap()
        .replace(demo.to_str().unwrap(), dir.path().to_str().unwrap());
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, pipeline).unwrap();
    (dir, file)
}

fn run(pipeline: &Path, table: &str, crash_after: Option<u64>) -> Output {
    highwater(&["run", pipeline.to_str().unwrap(), "--table", table], crash_after)
}

async fn target(dir: &Path, table: &str) -> Digest {
    let location = dir.join("targets").join(table);
    let table = Table::open(location.to_str().unwrap(), TableOptions::default()).await.unwrap();
    table_digest(&table).await
}

/// Whether a run of `table` dies at operation `n` (else it completes).
fn dies_at(table: &str, n: u64) -> bool {
    let (_dir, pipeline) = fresh();
    let output = run(&pipeline, table, Some(n));
    if output.status.success() {
        return false;
    }
    assert_eq!(output.status.code(), None, "not killed: {}", String::from_utf8_lossy(&output.stderr));
    true
}

/// The store operations of a clean run of `table`: the last point it dies at.
fn operations(table: &str) -> u64 {
    let mut high = 8;
    while dies_at(table, high) {
        high *= 2;
    }
    let mut low = high / 2; // dies at `low` (or `low` is below the first probe)
    while high - low > 1 {
        let middle = u64::midpoint(low, high);
        if dies_at(table, middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

async fn killed_and_rerun(table: &str) {
    let (clean_dir, clean) = fresh();
    let output = run(&clean, table, None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = target(clean_dir.path(), table).await;
    assert!(expected.rows > 0, "{expected:?}");

    let total = operations(table);
    assert!(total >= POINTS, "{table}: only {total} operations");
    let points: Vec<u64> = (0..POINTS).map(|point| 1 + point * (total - 1) / (POINTS - 1)).collect();
    eprintln!("{table}: {total} store operations; killed after operations {points:?}");
    for n in points {
        let (dir, pipeline) = fresh();
        let killed = run(&pipeline, table, Some(n));
        assert_eq!(killed.status.code(), None, "{table}: a run did not die at operation {n} of {total}");
        let rerun = run(&pipeline, table, None);
        assert!(
            rerun.status.success(),
            "{table}: the rerun after a kill at operation {n} of {total} failed: {}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        assert_eq!(target(dir.path(), table).await, expected, "{table}: killed at operation {n} of {total}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_killed_at_twenty_points() {
    killed_and_rerun("customers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_killed_at_twenty_points() {
    killed_and_rerun("events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_killed_at_twenty_points() {
    killed_and_rerun("customers_cdc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_killed_at_twenty_points() {
    killed_and_rerun("customer_changes").await;
}
