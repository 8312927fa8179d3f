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
        (
            "[[tables]]\nname = \"a\"\npattern = \"diff\"\nsource = \"s\"\ntarget = \"t\"\ncodec = \"gzip\"\n",
            ":6:",
            "expected one of `snappy`, `zstd`, `none`",
        ),
        ("[pipeline]\n\nconcurrency = 0\n", ":3:", "at least 1"),
        ("[pipeline]\nconcurrency = 2\n", "", "no tables"),
        // Values a loader would refuse are refused when the file is loaded, with their line.
        (
            "[[tables]]\nname = \"a\"\npattern = \"sequence\"\nsource = \"s\"\ntarget = \"t\"\nend = \"abc\"\n",
            ":6:",
            "integer id",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\nstart = \"tomorrow\"\n",
            ":6:",
            "not a timestamp, a date or an integer",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\nmode = \"upsert\"\n",
            ":1:",
            "upsert mode needs a key",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\nnaive_timezone = \"Mars/Olympus\"\n",
            ":1:",
            "Mars/Olympus",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\nseed_timezone = \"Moon/Base\"\n",
            ":1:",
            "Moon/Base",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"sequence\"\nsource = \"s\"\ntarget = \"t\"\nnaive_timezone = \"UTC\"\n",
            ":6:",
            "not an option of a sequence table",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\nsources = [\"s/\"]\ntarget = \"t\"\n",
            ":5:",
            "twice",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\nrows_per_file = 0\n",
            ":6:",
            "at least 1",
        ),
        (
            "[[tables]]\nname = \"a\"\npattern = \"cdc\"\nsource = \"s\"\ntarget = \"t\"\n\n[tables.history]\nhard_deletes = \"drop\"\n",
            ":7:",
            "close or marker",
        ),
    ];
    for (content, line, needle) in cases {
        std::fs::write(&file, content).unwrap();
        let output = highwater(&["run", file.to_str().unwrap()]);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{out}");
        assert!(out.contains(&format!("p.toml{line}")) && out.contains(needle), "{out}");
    }
    // `start` takes a TOML date-time as `end` does.
    std::fs::write(
        &file,
        "[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\nstart = 2024-01-01T00:05:00Z\n",
    )
    .unwrap();
    let output = highwater(&["status", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    // A file that is not there is named without a made-up line number.
    let missing = dir.path().join("nofile.toml");
    let output = highwater(&["run", missing.to_str().unwrap()]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("nofile.toml: cannot read") && !out.contains(":0:"), "{out}");
}

#[test]
fn output_to_a_pipe_is_plain_and_ends_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo(&dir.path().join("demo"), "300");
    let pipeline = pipeline.to_str().unwrap();
    for args in [
        vec!["status", pipeline, "--json"],
        vec!["history", pipeline, "--json"],
        vec!["watermark", "show", pipeline, "--json"],
        vec!["watermark", "show", pipeline],
        vec!["status", pipeline],
    ] {
        let output = highwater(&args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        assert!(output.stdout.ends_with(b"\n"), "{args:?} ends without a newline: {}", text(&output));
        if args.contains(&"--json") {
            serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap();
        }
    }
    // Logs and reports on a pipe carry no colour codes, and no time prints as "-0.00 s".
    let output = highwater(&["-vv", "run", pipeline, "--plan"]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("INFO") || out.contains("DEBUG"), "logs at -vv: {out}");
    assert!(!out.contains('\u{1b}'), "colour codes on a pipe: {out}");
    assert!(!out.contains("-0.00"), "{out}");
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

/// Files under any `_highwater/staging/` of the targets in `dir`.
fn staged_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(path: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.to_string_lossy().contains("/_highwater/staging/") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&dir.join("targets"), &mut found);
    found
}

/// Tables of `dir` with a commit.
fn committed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("targets"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| t.path().join("_highwater/log").read_dir().is_ok_and(|mut log| log.next().is_some()))
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A run of the demo's four tables on fresh targets, stopped by `signal` while one of them is
/// paused after its first write to `_highwater/{pause}/` (staging: staged, not committed; log:
/// the commit written, not yet returned); `others_first` waits for the other three to commit
/// before the signal. Returns (exit code, stdout, stderr, dir).
fn interrupted_run(
    signal: &str,
    pause: &str,
    json: bool,
    others_first: bool,
) -> (Option<i32>, String, String, tempfile::TempDir) {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    demo(&dir.path().join("demo"), "500");
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let pipeline = fresh_sources(&dir.path().join("demo"), &fresh);
    let mut args = vec!["run", pipeline.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_highwater"))
        .args(&args)
        .env("HIGHWATER_PAUSE_AFTER", pause)
        .env("HIGHWATER_PAUSE_MS", if pause == "log" { "1500" } else { "60000" })
        .env_remove("HIGHWATER_CRASH_AFTER_OPS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(highwater::store::crash_points::PAUSED) {
        assert!(stderr.read_line(&mut seen).unwrap() > 0, "the run ended without pausing: {seen}");
    }
    if others_first {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while committed(&fresh).len() < 3 {
            assert!(std::time::Instant::now() < deadline, "the other tables did not commit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    (status.code(), stdout, seen, dir)
}

#[test]
fn sigint_mid_run_removes_the_staged_files_and_reports_what_finished() {
    let (code, stdout, stderr, dir) = interrupted_run("-INT", "staging", true, true);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped before the commit, nothing of them visible")
            && stderr.contains("staged files are removed"),
        "{stderr}"
    );
    let fresh = dir.path().join("fresh");
    assert_eq!(staged_files(&fresh), Vec::<PathBuf>::new(), "{stderr}");
    let outcomes: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 4, "{stdout}");
    // The paused run is the one stopped; the other three committed (one may have been finishing
    // its commit when the signal came: then it is reported interrupted, its commit landed).
    let stopped: Vec<&serde_json::Value> = outcomes.iter().filter(|o| o["ok"] != true).collect();
    assert_eq!(stopped.len(), 1, "{stdout}");
    assert_eq!(stopped[0]["interrupted"], true);
    let name = stopped[0]["table"].as_str().unwrap();
    for outcome in outcomes.iter().filter(|o| o["ok"] == true) {
        assert_eq!(outcome["report"]["commit_version"], 0, "{outcome}");
        if outcome["interrupted"] != true {
            assert!(outcome.get("interrupted").is_none(), "only present when true: {outcome}");
        }
    }
    let mut expected: Vec<String> =
        outcomes.iter().filter(|o| o["ok"] == true).map(|o| o["table"].as_str().unwrap().to_owned()).collect();
    expected.sort();
    assert_eq!(committed(&fresh), expected, "{name} committed nothing");
    // The next run loads the stopped table as if nothing had happened.
    let rerun = highwater(&["run", fresh.join("pipeline.toml").to_str().unwrap(), "--table", name]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert!(text(&rerun).contains("committed version 0"), "{}", text(&rerun));
}

#[test]
fn sigterm_mid_run_stops_every_run_before_its_commit() {
    let (code, stdout, stderr, dir) = interrupted_run("-TERM", "staging", false, false);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stdout.contains("interrupted before its commit"), "{stdout}");
    let fresh = dir.path().join("fresh");
    assert_eq!(staged_files(&fresh), Vec::<PathBuf>::new(), "{stderr}");
    // The paused table never commits; any other either committed whole or not at all.
    let interrupted = stdout.lines().filter(|l| l.contains("interrupted before its commit")).count();
    assert!(interrupted >= 1, "{stdout}");
    assert_eq!(committed(&fresh).len(), 4 - interrupted, "{stdout}");
}

#[test]
fn an_interruption_during_a_commit_lets_it_land_whole_and_reports_it() {
    let (code, stdout, stderr, dir) = interrupted_run("-INT", "log", true, false);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted during the commit, which landed whole"), "{stderr}");
    let fresh = dir.path().join("fresh");
    assert_eq!(staged_files(&fresh), Vec::<PathBuf>::new(), "{stderr}");
    let outcomes: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    // The paused commit landed (another table's may have been under way too); a stopped run
    // committed nothing.
    let committed_now = committed(&fresh);
    let mut landed = Vec::new();
    for outcome in outcomes.as_array().unwrap() {
        let table = outcome["table"].as_str().unwrap();
        if outcome["ok"] == true {
            assert_eq!(outcome["report"]["commit_version"], 0, "{outcome}");
            assert!(committed_now.iter().any(|c| c == table), "{table}: {stdout}");
            if outcome["interrupted"] == true {
                landed.push(table.to_owned());
            }
        } else {
            assert_eq!(outcome["interrupted"], true, "{outcome}");
            assert!(!committed_now.iter().any(|c| c == table), "stopped, yet committed: {table}: {stdout}");
        }
    }
    assert!(!landed.is_empty(), "{stdout}");
    let name = &landed[0];
    // Published whole: the table reads, and the next run finds nothing new to load.
    let again = highwater(&["run", fresh.join("pipeline.toml").to_str().unwrap(), "--table", name, "--json"]);
    assert!(again.status.success(), "{}", text(&again));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(again[0]["report"]["commit_version"].is_null(), "{again}");
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

/// The demo's day-1 sources and pipeline in `dir/fresh`, no target written yet.
fn fresh_pipeline(dir: &Path) -> (PathBuf, PathBuf) {
    demo(&dir.join("demo"), "500");
    let fresh = dir.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let pipeline = fresh_sources(&dir.join("demo"), &fresh);
    (fresh, pipeline)
}

fn outcomes(output: &Output) -> Vec<serde_json::Value> {
    let parsed: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)));
    parsed.as_array().unwrap().clone()
}

#[test]
fn one_failing_table_does_not_stop_the_others_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (fresh, pipeline) = fresh_pipeline(dir.path());
    let config = std::fs::read_to_string(&pipeline).unwrap().replace("sources/events\"", "sources/no-such-events\"");
    std::fs::write(&pipeline, config).unwrap();
    let output = highwater(&["run", pipeline.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("events") && stderr.contains("no-such-events"), "{stderr}");
    let outcomes = outcomes(&output);
    assert_eq!(outcomes.len(), 4);
    for outcome in &outcomes {
        let keys: Vec<&String> = outcome.as_object().unwrap().keys().collect();
        if outcome["table"] == "events" {
            assert_eq!(outcome["ok"], false);
            assert_eq!(keys, ["error", "ok", "pattern", "table"], "stable field names: {outcome}");
            assert!(outcome["error"].as_str().unwrap().contains("no such folder"), "{outcome}");
        } else {
            assert_eq!(outcome["ok"], true, "{outcome}");
            assert_eq!(keys, ["ok", "pattern", "report", "table"], "stable field names: {outcome}");
            assert!(outcome["report"]["commit_version"].is_u64(), "{outcome}");
        }
    }
    assert_eq!(committed(&fresh), ["customer_changes", "customers", "customers_cdc"]);
    assert!(!fresh.join("targets/events").exists(), "a failed first run leaves no target folder");
}

#[test]
fn a_plan_on_fresh_targets_counts_what_the_run_then_loads_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (fresh, pipeline) = fresh_pipeline(dir.path());
    let path = pipeline.to_str().unwrap();
    let plan = highwater(&["run", path, "--plan", "--json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(!fresh.join("targets").exists(), "a plan creates no target folder");
    let run = highwater(&["run", path, "--json"]);
    assert!(run.status.success(), "{}", text(&run));
    let counts = |outcomes: Vec<serde_json::Value>| -> Vec<String> {
        let mut counts: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let (report, rows) = (&o["report"], &o["report"]["rows"]);
                format!(
                    "{} read={} inserted={} updated={} deleted={} watermark={}",
                    o["table"],
                    rows["read"],
                    rows["inserted"],
                    rows["updated"],
                    rows["deleted"],
                    report["watermark_after"]
                )
            })
            .collect();
        counts.sort();
        counts
    };
    let planned = outcomes(&plan);
    assert!(planned.iter().all(|o| o["report"]["planned"] == true && o["report"]["commit_version"].is_null()));
    let planned = counts(planned);
    assert!(planned.iter().all(|c| !c.contains("inserted=0 ")), "every table has rows to insert: {planned:?}");
    assert_eq!(planned, counts(outcomes(&run)));
}

#[test]
fn watermarks_export_import_and_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo(&dir.path().join("demo"), "500");
    let path = pipeline.to_str().unwrap();
    let seed = dir.path().join("seed-watermarks");
    let seed = seed.to_str().unwrap();
    let shown = |table: &str| {
        let output = highwater(&["watermark", "show", path, "--table", table, "--json"]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()[table]["value"].clone()
    };
    let exported = highwater(&["watermark", "export", path, "--to", seed]);
    assert!(exported.status.success(), "{}", text(&exported));
    let before = versions(&pipeline);

    // Importing what the table already has commits nothing: a retried script is harmless.
    let same = highwater(&["watermark", "import", path, "--table", "events", "--from", seed]);
    assert!(same.status.success() && text(&same).contains("unchanged"), "{}", text(&same));
    assert_eq!(versions(&pipeline), before);

    // Moved by hand, then taken back from the exported seed table.
    let moved = highwater(&["watermark", "import", path, "--table", "events", "--value", "100"]);
    assert!(moved.status.success(), "{}", text(&moved));
    assert_eq!(shown("events"), 100);
    let back = highwater(&["watermark", "import", path, "--table", "events", "--from", seed]);
    assert!(back.status.success() && text(&back).contains("100 → 1250"), "{}", text(&back));
    assert_eq!(shown("events"), 1250);
    let customers = shown("customers");
    let timestamp = highwater(&["watermark", "import", path, "--table", "customers", "--from", seed]);
    assert!(timestamp.status.success() && text(&timestamp).contains("unchanged"), "{}", text(&timestamp));
    assert_eq!(shown("customers"), customers);

    // v0 and v1 are the demo's days, v2 the hand-made move (the unchanged import added none).
    let restored = highwater(&["restore", path, "--table", "events", "--version", "2"]);
    assert!(restored.status.success() && text(&restored).contains("as version 4"), "{}", text(&restored));
    assert_eq!(shown("events"), 100);
    let unknown = highwater(&["watermark", "import", path, "--table", "events", "--from", &format!("{seed}-nope")]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    // Restoring the current version commits nothing.
    let again = highwater(&["restore", path, "--table", "events", "--version", "4"]);
    assert!(again.status.success() && text(&again).contains("is the current one"), "{}", text(&again));
    assert!(versions(&pipeline).contains("\"events\"=4"), "{}", versions(&pipeline));

    // A kind that does not match the table's watermark would fail every later run: refused.
    for (table, value, kind) in [("events", "2024-01-01", "date"), ("customers", "100", "int64")] {
        let wrong = highwater(&["watermark", "import", path, "--table", table, "--value", value, "--kind", kind]);
        assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
        assert!(text(&wrong).contains("would not compare with its cursor"), "{}", text(&wrong));
    }
    // The table's own kind, named or not, is taken (a timestamp's unit and zone kept), and a
    // naive value is read in --timezone.
    let named = highwater(&[
        "watermark",
        "import",
        path,
        "--table",
        "customers",
        "--value",
        "2020-01-01 01:00:00",
        "--kind",
        "timestamp",
        "--timezone",
        "+01:00",
    ]);
    assert!(named.status.success(), "{}", text(&named));
    assert!(text(&named).contains("2020-01-01T00:00:00"), "{}", text(&named));
    let runs = highwater(&["run", path, "--table", "customers", "--plan"]);
    assert!(runs.status.success(), "{}", text(&runs));
    // Bad command lines are exit code 2.
    for args in [
        vec!["watermark", "import", path, "--table", "events", "--value", "1", "--kind", "datetime"],
        vec!["watermark", "import", path, "--table", "events"],
    ] {
        let bad = highwater(&args);
        assert_eq!(bad.status.code(), Some(2), "{args:?}: {}", text(&bad));
    }
}

#[test]
fn status_shows_every_table_it_can_read_and_fails_for_the_one_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo(&dir.path().join("demo"), "300");
    // The events table's newest commit is damaged: that table cannot be read.
    let log = dir.path().join("demo/targets/events/_highwater/log/00000000000000000001.json");
    std::fs::write(&log, b"{ not json").unwrap();
    let output = highwater(&["status", pipeline.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let entries: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    for entry in entries {
        if entry["table"] == "events" {
            assert!(entry["error"].as_str().unwrap().contains("events"), "{entry}");
        } else {
            assert_eq!(entry["version"], 1, "{entry}");
        }
    }
    assert!(String::from_utf8_lossy(&output.stderr).contains("highwater: table `events`"), "{}", text(&output));
}

#[test]
fn never_committed_tables_have_every_key_in_json_and_are_named_by_upkeep() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pipeline) = fresh_pipeline(dir.path());
    let path = pipeline.to_str().unwrap();
    let status = highwater(&["status", path, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for entry in status.as_array().unwrap() {
        let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["bytes", "files", "last_commit", "rows", "table", "version", "watermark"], "{entry}");
        assert!(entry["version"].is_null() && entry["rows"] == 0, "{entry}");
    }
    let history = highwater(&["history", path, "--json"]);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 4, "{history}");
    assert!(history.as_array().unwrap().iter().all(|t| t["commits"] == serde_json::json!([])), "{history}");
    let compact = highwater(&["compact", path, "--table", "customers"]);
    assert!(compact.status.success() && text(&compact).contains("customers: no commits yet"), "{}", text(&compact));
    let export = highwater(&["watermark", "export", path, "--to", dir.path().join("seed").to_str().unwrap()]);
    assert!(export.status.success() && text(&export).contains("events: no watermark yet"), "{}", text(&export));
}

#[test]
fn migrate_rewrites_a_flat_seed_table_and_refuses_a_missing_one() {
    use highwater::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("watermarks");
    std::fs::create_dir_all(&flat).unwrap();
    // The seed's table as Spark writes it: one flat part file plus `_SUCCESS`.
    let batch = RecordBatch::try_from_iter([
        ("table_name", Arc::new(StringArray::from(vec!["orders", "events"])) as _),
        ("watermark_value", Arc::new(StringArray::from(vec!["2024-01-15 10:30:00", "42"])) as _),
        ("last_updated", Arc::new(TimestampMicrosecondArray::from(vec![0_i64, 0])) as _),
    ])
    .unwrap();
    std::fs::write(
        flat.join("part-00000-6f2b.c000.snappy.parquet"),
        highwater_test_support::data::parquet_bytes(&batch, 1024),
    )
    .unwrap();
    std::fs::write(flat.join("_SUCCESS"), "").unwrap();
    let migrated = highwater(&["watermark", "migrate", flat.to_str().unwrap()]);
    assert!(migrated.status.success() && text(&migrated).contains("2 tables"), "{}", text(&migrated));
    assert!(flat.join("table_name=orders").is_dir() && flat.join("table_name=events").is_dir());
    let again = highwater(&["watermark", "migrate", flat.to_str().unwrap()]);
    assert!(again.status.success() && text(&again).contains("0 tables"), "{}", text(&again));

    let missing = dir.path().join("nowhere");
    let refused = highwater(&["watermark", "migrate", missing.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("nothing to migrate"), "{}", text(&refused));
    assert!(!missing.exists(), "nothing created");
}
