//! The `highwater` command end to end: the demo, pipelines of all four patterns, the upkeep
//! commands, bad configs, and interrupted runs (SIGKILL, SIGINT).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use highwater::store::{Table, TableOptions};

fn highwater(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_highwater")).args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A demo folder (both days run), returning its pipeline file.
fn demo(dir: &Path, rows: &str) -> PathBuf {
    let output = highwater(&["demo", "--dir", dir.to_str().unwrap(), "--rows", rows]);
    assert!(output.status.success(), "{}", text(&output));
    dir.join("pipeline.toml")
}

/// The demo's day-1 sources copied to `to`, with a pipeline file pointing at `to`.
fn fresh_sources(from: &Path, to: &Path) -> PathBuf {
    let copy = Command::new("cp")
        .args(["-rp", &from.join("sources").display().to_string(), &to.display().to_string()])
        .status()
        .unwrap();
    assert!(copy.success());
    let pipeline = std::fs::read_to_string(from.join("pipeline.toml"))
        .unwrap()
        .replace(from.to_str().unwrap(), to.to_str().unwrap());
    std::fs::write(to.join("pipeline.toml"), pipeline).unwrap();
    to.join("pipeline.toml")
}

/// Each target's rows, as sorted rendered lines.
async fn targets(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for name in ["customers", "events", "customers_cdc", "customer_changes"] {
        let location = dir.join("targets").join(name);
        let Ok(table) = Table::open(location.to_str().unwrap(), TableOptions::default()).await else { continue };
        let batch = table.read_all().await.unwrap();
        let columns: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        for row in 0..batch.num_rows() {
            all.push(format!("{name}: {}", highwater::core::key::describe_row(&batch, row, &columns)));
        }
        all.push(format!("{name}: watermark {:?}", table.snapshot().await.unwrap().watermark.map(|w| w.to_string())));
    }
    all.sort();
    all
}

fn versions(pipeline: &Path) -> String {
    let output = highwater(&["status", pipeline.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status.as_array().unwrap().iter().map(|t| format!("{}={}", t["table"], t["version"])).collect::<Vec<_>>().join(" ")
}

#[test]
fn the_demo_runs_all_four_patterns_twice() {
    let dir = tempfile::tempdir().unwrap();
    let output = highwater(&["demo", "--dir", dir.path().join("demo").to_str().unwrap(), "--rows", "2000"]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    for expected in [
        "day 1",
        "day 2",
        "customers (timestamp)",
        "events (sequence)",
        "customers_cdc (cdc)",
        "customer_changes (diff)",
        "committed version 1",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    // The demo recreates its own folder, and refuses someone else's.
    assert!(highwater(&["demo", "--dir", dir.path().join("demo").to_str().unwrap(), "--rows", "500"]).status.success());
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let refused = highwater(&["demo", "--dir", dir.path().to_str().unwrap()]);
    assert!(!refused.status.success() && text(&refused).contains("not a highwater demo folder"), "{}", text(&refused));
}

#[test]
fn a_pipeline_runs_plans_and_is_looked_after() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo(&dir.path().join("demo"), "1000");
    let path = pipeline.to_str().unwrap();
    let before = versions(&pipeline);
    assert_eq!(before, r#""customers"=1 "events"=1 "customers_cdc"=1 "customer_changes"=1"#);
    // Nothing new: every table runs, nothing is committed.
    let again = highwater(&["run", path, "--json"]);
    assert!(again.status.success(), "{}", text(&again));
    let outcomes: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(outcomes.as_array().unwrap().len(), 4);
    assert!(
        outcomes.as_array().unwrap().iter().all(|o| o["ok"] == true && o["report"]["commit_version"].is_null()),
        "{outcomes}"
    );
    assert_eq!(versions(&pipeline), before);
    // A plan commits nothing, even with new data.
    let dir_path = dir.path().join("demo");
    std::fs::copy(dir_path.join("sources/events/batch-4.parquet"), dir_path.join("sources/events/batch-5.parquet"))
        .unwrap();
    let plan = highwater(&["run", path, "--plan", "--table", "events", "--json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan[0]["report"]["planned"], true);
    assert_eq!(versions(&pipeline), before);
    // History, watermarks, restore, vacuum, compact.
    let history = highwater(&["history", path, "--table", "customers"]);
    assert!(text(&history).contains("v1") && text(&history).contains("v0"), "{}", text(&history));
    let watermarks = highwater(&["watermark", "show", path, "--json"]);
    let watermarks: serde_json::Value = serde_json::from_slice(&watermarks.stdout).unwrap();
    assert_eq!(watermarks["events"]["value"], 2500, "{watermarks}");
    let restored = highwater(&["restore", path, "--table", "events", "--version", "0"]);
    assert!(restored.status.success() && text(&restored).contains("restored as version 2"), "{}", text(&restored));
    let watermarks = highwater(&["watermark", "show", path, "--table", "events", "--json"]);
    let watermarks: serde_json::Value = serde_json::from_slice(&watermarks.stdout).unwrap();
    assert_eq!(watermarks["events"]["value"], 2000);
    let imported = highwater(&["watermark", "import", path, "--table", "events", "--value", "2100"]);
    assert!(imported.status.success() && text(&imported).contains("2000 → 2100"), "{}", text(&imported));
    let refused = highwater(&["watermark", "import", path, "--table", "customers_cdc", "--value", "7"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let seed = dir.path().join("seed-watermarks");
    let exported = highwater(&["watermark", "export", path, "--to", seed.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", text(&exported));
    assert!(std::fs::read_dir(&seed).unwrap().count() > 0);
    assert!(highwater(&["vacuum", path, "--retention", "0s"]).status.success());
    let compacted = highwater(&["compact", path, "--table", "customers"]);
    assert!(compacted.status.success(), "{}", text(&compacted));
    let missing = highwater(&["status", path, "--table", "nope"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

#[test]
fn bad_pipeline_files_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    let cases = [
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\ncursr = \"x\"\n",
            ":6:",
            "cursr",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"cdc\"\nsource = \"s\"\ntarget = \"t\"\nlookback = \"1h\"\n",
            ":6:",
            "not an option of a cdc table",
        ),
        ("[[tables]]\nname = \"a\"\npattern = \"merge\"\nsource = \"s\"\ntarget = \"t\"\n", ":3:", "merge"),
        ("[[tables]]\nname = \"a\"\npattern = \"diff\"\nsource = \"s\"\n", ":1:", "target"),
        ("[pipeline]\nconcurrency = \"four\"\n", ":2:", "concurrency"),
    ];
    for (content, line, needle) in cases {
        std::fs::write(&file, content).unwrap();
        let output = highwater(&["run", file.to_str().unwrap()]);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{out}");
        assert!(out.contains(&format!("p.toml{line}")) && out.contains(needle), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_midway_and_rerun_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    demo(&dir.path().join("demo"), "20000");
    let clean = dir.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    let clean_pipeline = fresh_sources(&dir.path().join("demo"), &clean);
    assert!(highwater(&["run", clean_pipeline.to_str().unwrap()]).status.success());
    let expected = targets(&clean).await;
    for delay in [30u64, 90, 200] {
        let killed = dir.path().join(format!("killed-{delay}"));
        std::fs::create_dir_all(&killed).unwrap();
        let pipeline = fresh_sources(&dir.path().join("demo"), &killed);
        let mut child =
            Command::new(env!("CARGO_BIN_EXE_highwater")).args(["run", pipeline.to_str().unwrap()]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let rerun = highwater(&["run", pipeline.to_str().unwrap()]);
        assert!(rerun.status.success(), "{}", text(&rerun));
        assert_eq!(targets(&killed).await, expected, "killed after {delay} ms");
    }
}

#[test]
fn sigint_stops_before_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    demo(&dir.path().join("demo"), "500");
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let pipeline = fresh_sources(&dir.path().join("demo"), &fresh);
    let child = Command::new(env!("CARGO_BIN_EXE_highwater"))
        .args(["run", pipeline.to_str().unwrap()])
        .env("HIGHWATER_TEST_START_DELAY_MS", "5000")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));
    assert!(
        !fresh.join("targets").exists()
            || std::fs::read_dir(fresh.join("targets"))
                .unwrap()
                .all(|t| { !t.unwrap().path().join("_highwater/log").exists() }),
        "nothing committed"
    );
}

#[test]
fn the_example_pipeline_parses() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/pipeline.toml");
    // `status` loads and checks the file; the example's s3 locations are not reachable here, so
    // only a configuration error (exit code 2) would be a failure of the file itself.
    let output = highwater(&["status", example.to_str().unwrap(), "--table", "nope"]);
    assert!(text(&output).contains("no table `nope`"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_debezium_topic_keeps_history_from_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let topic = dir.path().join("topic");
    std::fs::create_dir_all(&topic).unwrap();
    let envelope = |op: &str, id: i64, tier: &str, pos: i64, at: &str| {
        let image = serde_json::json!({"id": id, "tier": tier, "updated_at": at});
        let (before, after) =
            if op == "d" { (image, serde_json::Value::Null) } else { (serde_json::Value::Null, image) };
        let source = serde_json::json!({"connector": "mysql", "file": "bin.000001", "pos": pos, "row": 0});
        serde_json::json!({"op": op, "before": before, "after": after, "source": source}).to_string()
    };
    let lines = [
        envelope("c", 1, "gold", 10, "2026-01-01T00:00:00Z"),
        envelope("u", 1, "platinum", 20, "2026-02-01T00:00:00Z"),
        "null".to_owned(),
    ];
    std::fs::write(topic.join("part-0.json"), lines.join("\n")).unwrap();
    let pipeline = dir.path().join("p.toml");
    let target = dir.path().join("customers_history");
    std::fs::write(
        &pipeline,
        format!(
            "[[tables]]\nname = \"customers\"\npattern = \"cdc\"\nsource = \"{}\"\ntarget = \"{}\"\nkey = [\"id\"]\n\
             format = \"debezium\"\ncolumn_types = {{ updated_at = \"Timestamp(Microsecond, Some(\\\"UTC\\\"))\" }}\n\
             [tables.history]\ntime_column = \"updated_at\"\nhard_deletes = \"marker\"\n",
            topic.display(),
            target.display()
        ),
    )
    .unwrap();
    let output = highwater(&["run", pipeline.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    // A late event (older binlog position) arrives after: spliced in between the two versions.
    std::fs::write(topic.join("part-1.json"), envelope("u", 1, "silver", 15, "2026-01-15T00:00:00Z")).unwrap();
    let output = highwater(&["run", pipeline.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));

    let table = Table::open(target.to_str().unwrap(), TableOptions::default()).await.unwrap();
    let batch = table.read_all().await.unwrap();
    let mut rows: Vec<String> = (0..batch.num_rows())
        .map(|r| {
            highwater::core::key::describe_row(
                &batch,
                r,
                &["tier", "valid_from", "valid_to", "is_current", "is_deleted"],
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "tier=gold, valid_from=2026-01-01T00:00:00Z, valid_to=2026-01-15T00:00:00Z, is_current=false, is_deleted=false",
            "tier=platinum, valid_from=2026-02-01T00:00:00Z, valid_to=null, is_current=true, is_deleted=false",
            "tier=silver, valid_from=2026-01-15T00:00:00Z, valid_to=2026-02-01T00:00:00Z, is_current=false, is_deleted=false",
        ]
    );
}

/// The command on `s3://` URLs (moto in CI), credentials and endpoint from the `AWS_*`
/// environment as docs/cli.md says: the source is listed and read and the target committed
/// through the binary's own store opener, not a test-built store.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_on_s3_urls_loads_and_commits() {
    use highwater_test_support::Backend;
    use highwater_test_support::data::{put_parquet, source_rows};
    if !Backend::s3_available() {
        eprintln!("skipped: HIGHWATER_TEST_S3_ENDPOINT is not set");
        return;
    }
    let trial = highwater_test_support::s3_trial();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[[tables]]\nname = \"events\"\npattern = \"sequence\"\nsource = \"{url}/events\"\ntarget = \"{url}/events_loaded\"\n",
            url = trial.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_highwater"));
        command.args(args).env_remove("HIGHWATER_CRASH_AFTER_OPS");
        for (name, value) in &trial.env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let path = pipeline.to_str().unwrap();

    put_parquet(&trial.store, "events/batch-1.parquet", &source_rows(1, 1000, 7), 256).await;
    let first = run(&["run", path, "--json"]);
    assert_eq!(first[0]["ok"], true, "{first}");
    assert_eq!(first[0]["report"]["rows"]["written"], 1000, "{first}");
    assert_eq!(first[0]["report"]["commit_version"], 0, "{first}");

    put_parquet(&trial.store, "events/batch-2.parquet", &source_rows(1001, 500, 7), 256).await;
    let second = run(&["run", path, "--json"]);
    assert_eq!(second[0]["report"]["rows"]["written"], 500, "{second}");
    assert_eq!(second[0]["report"]["watermark_after"]["value"], 1_003_000, "{second}");

    // The log and the data are on S3, under the trial's prefix.
    let table = Table::open_with(
        std::sync::Arc::clone(&trial.store),
        object_store::path::Path::from("events_loaded"),
        TableOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(table.latest_version().await.unwrap(), Some(1));
    assert_eq!(table.read_all().await.unwrap().num_rows(), 1500);
    let status = run(&["status", path, "--json"]);
    assert_eq!(status[0]["version"], 1, "{status}");
}
