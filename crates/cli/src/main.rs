//! `highwater`: run incremental-loading pipelines, look after their tables, and a demo.
//!
//! Exit codes: 0 everything succeeded; 1 a table (or command) failed — the others ran; 2 a bad
//! command line or pipeline file (the file, line and key are named); 130 interrupted (SIGINT
//! or SIGTERM) — runs stopped before their commit, nothing of them is visible.

mod commands;
mod config;
mod demo;
mod pipeline;
mod render;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use highwater::store::source::Progress;

use crate::config::{LoadedPipeline, TableConfig};
use crate::render::TableOutcome;

/// Incremental loading for Arrow and Parquet: timestamp, sequence, CDC and snapshot diff.
#[derive(Debug, Parser)]
#[command(name = "highwater", version, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug); `RUST_LOG` works too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a sample source and run all four patterns on it twice (no set-up, no network).
    Demo {
        /// Where to build it (recreated if it is a demo folder).
        #[arg(long, default_value = "highwater-demo")]
        dir: PathBuf,
        /// Customers in the sample (the other sources scale with it).
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        /// Reports as one JSON document (`day1`, `day2`: each table's outcome).
        #[arg(long)]
        json: bool,
    },
    /// Run the tables of a pipeline file (all, or those named with --table).
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Report what a run would do; commit nothing.
        #[arg(long)]
        plan: bool,
        /// Reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each table's version, watermark, size and last commit.
    Status {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each table's commits, newest first.
    History {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show, set (import), export or migrate watermarks.
    Watermark {
        #[command(subcommand)]
        action: WatermarkCommand,
    },
    /// Make an earlier version of a table current again (a new commit).
    Restore {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The table.
        #[arg(long)]
        table: String,
        /// The version to restore.
        #[arg(long)]
        version: u64,
    },
    /// Delete replaced files, old state and abandoned staging no version within the retention needs.
    Vacuum {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Keep what versions of this age need (30s, 15m, 2h, 7d).
        #[arg(long, default_value = "7d")]
        retention: String,
    },
    /// Rewrite small files into larger ones (no data change).
    Compact {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum WatermarkCommand {
    /// Each table's watermark.
    Show {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a timestamp or sequence table's watermark, from a value or the seed's watermark table.
    Import {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The table.
        #[arg(long)]
        table: String,
        /// The watermark (`2024-01-15 10:30:00`, `2024-01-15T10:30:00Z`, `12345`).
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        value: Option<String>,
        /// The seed's watermark table to take it from.
        #[arg(long)]
        from: Option<String>,
        /// The kind of a first watermark (later ones keep the table's): timestamp (default) or
        /// date for timestamp tables; sequence tables' is int64.
        #[arg(long, value_parser = ["timestamp", "date", "int64"])]
        kind: Option<String>,
        /// The zone of a zoneless value or of the seed's naive watermark strings (default UTC).
        #[arg(long)]
        timezone: Option<String>,
    },
    /// Write each table's watermark into the seed's watermark table (partitioned layout).
    Export {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this table (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// The seed's watermark table.
        #[arg(long)]
        to: String,
        /// The zone the seed's naive watermark strings are written in (default UTC).
        #[arg(long)]
        timezone: Option<String>,
    },
    /// Rewrite the seed's flat watermark files into the partitioned layout.
    Migrate {
        /// The seed's watermark table.
        path: String,
    },
}

/// Exit code: a table or command failed.
const FAILED: u8 = 1;
/// Exit code: bad command line or pipeline file.
const BAD_CONFIG: u8 = 2;
/// Exit code: interrupted.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person: not in a log file, a pipe or CI, nor with NO_COLOR set.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("highwater: cannot start: {error}");
            return ExitCode::from(FAILED);
        }
    };
    runtime.block_on(execute(cli.command))
}

/// Runs a command that is not a load, stopping it on SIGINT or SIGTERM.
async fn until_interrupted(command: impl Future<Output = ExitCode>) -> ExitCode {
    tokio::select! {
        code = command => code,
        () = interrupted() => {
            eprintln!("highwater: interrupted");
            ExitCode::from(INTERRUPTED)
        }
    }
}

/// How long an interrupted process waits for its stopped runs' staged files to be deleted.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Tells what became of the runs an interruption stopped.
fn report_interruption(outcomes: &[TableOutcome], settled: bool) {
    let names = |landed: bool| -> String {
        let names: Vec<&str> =
            outcomes.iter().filter(|o| o.interrupted && o.ok == landed).map(|o| o.table.as_str()).collect();
        names.join(", ")
    };
    let (stopped, landed) = (names(false), names(true));
    let mut message = String::from("highwater: interrupted");
    if !stopped.is_empty() {
        let _ = write!(message, " — stopped before the commit, nothing of them visible: {stopped}");
    }
    if !landed.is_empty() {
        let _ = write!(message, " — interrupted during the commit, which landed whole: {landed}");
    }
    message.push_str(if settled {
        "; the stopped runs' staged files are removed"
    } else {
        "; some staged files could not be removed in time: `highwater vacuum` deletes them after the staging retention (24 h)"
    });
    eprintln!("{message}");
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn load(path: &std::path::Path) -> Result<LoadedPipeline, ExitCode> {
    config::load(path).map_err(|error| {
        eprintln!("highwater: {error}");
        ExitCode::from(BAD_CONFIG)
    })
}

/// Prints a command's output: text and JSON alike end with a newline (a shell prompt after it,
/// `jq` happy).
fn print_output(output: &str) {
    if output.is_empty() || output.ends_with('\n') {
        print!("{output}");
    } else {
        println!("{output}");
    }
}

fn finish(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(output) => {
            print_output(&output);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("highwater: {error}");
            ExitCode::from(FAILED)
        }
    }
}

async fn execute(command: Command) -> ExitCode {
    match command {
        // Loads stop their own runs on an interruption (and report what finished).
        Command::Demo { dir, rows, json } => demo(&dir, rows, json).await,
        Command::Run { pipeline, tables, plan, json } => run(&pipeline, &tables, plan, json).await,
        other => Box::pin(until_interrupted(look_after(other))).await,
    }
}

/// `highwater run`.
async fn run(pipeline: &std::path::Path, tables: &[String], plan: bool, json: bool) -> ExitCode {
    with_pipeline(pipeline, tables, async |pipeline, selected| run_selected(pipeline, selected, plan, json).await).await
}

async fn run_selected(pipeline: &LoadedPipeline, selected: &[&TableConfig], plan: bool, json: bool) -> ExitCode {
    let (outcomes, interruption) = run_tables(selected, pipeline.settings.concurrency, plan, json).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes).unwrap_or_default());
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.ok && !o.interrupted).map(|o| o.table.as_str()).collect();
    if !failed.is_empty() {
        eprintln!("highwater: {} of {} tables failed: {}", failed.len(), outcomes.len(), failed.join(", "));
    }
    if let Some(settled) = interruption {
        report_interruption(&outcomes, settled);
        ExitCode::from(INTERRUPTED)
    } else if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// The commands that look after tables.
async fn look_after(command: Command) -> ExitCode {
    match command {
        Command::Demo { .. } | Command::Run { .. } => unreachable!("loads are run by `execute`"),
        Command::Status { pipeline, tables, json } => {
            with_tables(&pipeline, &tables, async |t| {
                // What could be read is printed; the tables that could not fail the command.
                let (output, errors) = commands::status(t, json).await;
                print_output(&output);
                if errors.is_empty() { Ok(String::new()) } else { Err(errors.join("\nhighwater: ")) }
            })
            .await
        }
        Command::History { pipeline, tables, json } => {
            with_tables(&pipeline, &tables, async |t| commands::history(t, json).await).await
        }
        Command::Watermark { action } => match action {
            WatermarkCommand::Show { pipeline, tables, json } => {
                with_tables(&pipeline, &tables, async |t| commands::watermark_show(t, json).await).await
            }
            WatermarkCommand::Import { pipeline, table, value, from, kind, timezone } => {
                with_tables(&pipeline, std::slice::from_ref(&table), async |t| {
                    let (value, from, kind, zone) =
                        (value.as_deref(), from.as_deref(), kind.as_deref(), timezone.as_deref());
                    commands::watermark_import(t[0], value, from, kind, zone).await
                })
                .await
            }
            WatermarkCommand::Export { pipeline, tables, to, timezone } => {
                with_tables(&pipeline, &tables, async |t| commands::watermark_export(t, &to, timezone.as_deref()).await)
                    .await
            }
            WatermarkCommand::Migrate { path } => finish(commands::watermark_migrate(&path).await),
        },
        Command::Restore { pipeline, table, version } => {
            with_tables(&pipeline, std::slice::from_ref(&table), async |t| commands::restore(t[0], version).await).await
        }
        Command::Vacuum { pipeline, tables, retention } => {
            let retention = match config::parse_duration(&retention) {
                Ok(retention) => retention,
                Err(error) => {
                    eprintln!("highwater: --retention: {error}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            with_tables(&pipeline, &tables, async |t| commands::vacuum(t, retention).await).await
        }
        Command::Compact { pipeline, tables } => {
            with_tables(&pipeline, &tables, async |t| commands::compact(t).await).await
        }
    }
}

async fn with_tables(
    pipeline: &std::path::Path,
    names: &[String],
    command: impl AsyncFnOnce(&[&TableConfig]) -> Result<String, String>,
) -> ExitCode {
    with_pipeline(pipeline, names, async |_, selected| finish(command(selected).await)).await
}

/// Loads a pipeline file and selects the tables named (all when none is), then runs `command`;
/// a bad file or an unknown table name is a configuration error.
async fn with_pipeline(
    pipeline: &std::path::Path,
    names: &[String],
    command: impl AsyncFnOnce(&LoadedPipeline, &[&TableConfig]) -> ExitCode,
) -> ExitCode {
    let pipeline = match load(pipeline) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    let selected = match commands::select(&pipeline, names) {
        Ok(selected) => selected,
        Err(error) => {
            eprintln!("highwater: {error}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    command(&pipeline, &selected).await
}

/// Runs tables, `concurrency` at once; a failing table does not stop the others. Reports are
/// printed as tables finish (progress bars on a terminal), or returned for `--json`. SIGINT or
/// SIGTERM stops the runs still going (before their commit): they come back `interrupted`.
///
/// Returns the outcomes in pipeline order and, after an interruption, whether the stopped runs
/// settled (staged files removed, begun commits finished) in time.
async fn run_tables(
    tables: &[&TableConfig],
    concurrency: usize,
    plan: bool,
    json: bool,
) -> (Vec<TableOutcome>, Option<bool>) {
    let started = chrono::Utc::now();
    let terminal = std::io::stderr().is_terminal() && !json;
    let bars = MultiProgress::new();
    // A hidden pause before each table starts, for the interruption tests.
    let delay =
        std::env::var("HIGHWATER_TEST_START_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
    // With --json the outcomes are printed at the end, as one document.
    let say = |text: &str| match (json, terminal) {
        (true, _) => {}
        (false, true) => {
            let _ = bars.println(text);
        }
        (false, false) => println!("{text}"),
    };
    let mut runs = futures::stream::iter(tables.iter().enumerate())
        .map(|(index, table)| {
            let bars = &bars;
            let say = &say;
            async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let bar = terminal.then(|| bars.add(progress_bar(&table.name, plan)));
                let progress: Arc<Progress> = Arc::default();
                let run = pipeline::run_table(table, plan, Arc::clone(&progress));
                let result = watch(run, bar.as_ref(), &progress).await;
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                let outcome = TableOutcome {
                    table: table.name.clone(),
                    pattern: pattern_name(table),
                    ok: result.is_ok(),
                    error: result.as_ref().err().cloned(),
                    report: result.ok(),
                    interrupted: false,
                };
                match (&outcome.report, &outcome.error) {
                    (Some(report), _) => say(render::human(report).trim_end()),
                    // The JSON goes to a file or a pipe; the error must still reach the log.
                    (None, Some(error)) if json => eprintln!("highwater: table {}: {error}", outcome.table),
                    (None, Some(error)) => say(&format!("{} ({}) — FAILED: {error}", outcome.table, outcome.pattern)),
                    _ => {}
                }
                (index, outcome)
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut outcomes: Vec<(usize, TableOutcome)> = Vec::new();
    let mut stop = std::pin::pin!(interrupted());
    let stopped = loop {
        tokio::select! {
            next = runs.next() => match next {
                Some(outcome) => outcomes.push(outcome),
                None => break false,
            },
            () = &mut stop => break true,
        }
    };
    // Dropping the runs still going drops their transactions, which delete their staged files;
    // a commit that had begun finishes as a task of its own.
    drop(runs);
    let mut settled = None;
    if stopped {
        // A second Ctrl-C stops waiting: what the stopped runs staged then goes at `vacuum`.
        settled = Some(tokio::select! {
            settled = highwater::store::stopped_runs_settled(CLEANUP_TIMEOUT) => settled,
            () = interrupted() => false,
        });
        for (index, table) in tables.iter().enumerate() {
            if outcomes.iter().any(|(done, _)| *done == index) {
                continue;
            }
            let landed = if plan { None } else { landed_commit(table, started).await };
            let outcome = TableOutcome {
                table: table.name.clone(),
                pattern: pattern_name(table),
                ok: landed.is_some(),
                error: landed.is_none().then(|| "interrupted before its commit: nothing of this run is visible".into()),
                report: landed,
                interrupted: true,
            };
            match &outcome.report {
                Some(report) => say(&format!(
                    "{}\n  (interrupted during its commit, which landed whole)",
                    render::human(report).trim_end()
                )),
                None => say(&format!("{} ({}) — interrupted before its commit", outcome.table, outcome.pattern)),
            }
            outcomes.push((index, outcome));
        }
    }
    outcomes.sort_by_key(|(index, _)| *index);
    (outcomes.into_iter().map(|(_, outcome)| outcome).collect(), settled)
}

/// The report of a commit of `table` that this process began before an interruption (its
/// commit task finished it): the table's latest commit, if it started after `started`.
async fn landed_commit(table: &TableConfig, started: chrono::DateTime<chrono::Utc>) -> Option<highwater::LoadReport> {
    let place = highwater::store::incremental::Place::Location(table.target.clone()?);
    let opened = place.open_table(&highwater::store::TableOptions::default()).await.ok()??;
    let latest = opened.snapshot().await.ok()?.last_commit;
    if latest.started_at < started {
        return None;
    }
    let mut report = opened.commit(latest.version).await.ok()?.report?;
    report.commit_version = Some(latest.version);
    Some(report)
}

fn pattern_name(table: &TableConfig) -> String {
    table.pattern.map_or("?", config::PatternName::as_str).to_owned()
}

/// A table's bar: a spinner until the scan is planned, then rows read of rows to read.
fn progress_bar(name: &str, plan: bool) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {prefix}: {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::new_spinner().with_style(style).with_prefix(name.to_owned()).with_message(if plan {
        "planning"
    } else {
        "listing and planning"
    });
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Awaits a table's run, moving its bar as the source's rows are read.
async fn watch<T>(run: impl Future<Output = T>, bar: Option<&ProgressBar>, progress: &Progress) -> T {
    let Some(bar) = bar else { return run.await };
    let mut run = std::pin::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut counting = false;
    loop {
        tokio::select! {
            done = &mut run => return done,
            _ = tick.tick() => {
                let planned = progress.rows_planned();
                if planned == 0 {
                    continue;
                }
                if !counting {
                    counting = true;
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix}: [{bar:30}] {human_pos}/{human_len} rows of {msg} {elapsed}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                }
                bar.set_length(planned);
                bar.set_position(progress.rows_read().min(planned));
                let files = progress.files_planned();
                bar.set_message(format!("{files} file{}", if files == 1 { "" } else { "s" }));
            }
        }
    }
}

async fn demo(dir: &std::path::Path, rows: usize, json: bool) -> ExitCode {
    let file = match demo::prepare(dir, rows) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("highwater demo: {error}");
            return ExitCode::from(FAILED);
        }
    };
    let pipeline = match load(&file) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    let tables: Vec<&TableConfig> = pipeline.tables.iter().map(|(_, t)| t).collect();
    let say = |text: &str| {
        if !json {
            println!("{text}");
        }
    };
    say(&format!(
        "highwater demo: sources under {}/sources, one table per pattern under {}/targets (pipeline: {})\n",
        dir.display(),
        dir.display(),
        file.display()
    ));
    say("== day 1: the first load of every table ==\n");
    let (first, interruption) = run_tables(&tables, 4, false, json).await;
    if let Some(settled) = interruption {
        report_interruption(&first, settled);
        return ExitCode::from(INTERRUPTED);
    }
    if let Err(error) = demo::change(dir, rows) {
        eprintln!("highwater demo: {error}");
        return ExitCode::from(FAILED);
    }
    say("\n== day 2: new, updated, late and deleted rows, a late file, a redelivered CDC file, a new snapshot ==\n");
    let (second, interruption) = run_tables(&tables, 4, false, json).await;
    if let Some(settled) = interruption {
        report_interruption(&second, settled);
        return ExitCode::from(INTERRUPTED);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"day1": first, "day2": second})).unwrap_or_default()
        );
    }
    say(&format!(
        "\nOnly what changed moved on day 2, and each watermark advanced. Next:\n  highwater status {0}\n  highwater history {0}\n  highwater run {0} --plan",
        file.display()
    ));
    if first.iter().chain(&second).all(|o| o.ok) { ExitCode::SUCCESS } else { ExitCode::from(FAILED) }
}
