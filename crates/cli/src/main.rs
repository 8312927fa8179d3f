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

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
        /// Reports as JSON lines.
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
        #[arg(long, conflicts_with = "from")]
        value: Option<String>,
        /// The seed's watermark table to take it from.
        #[arg(long)]
        from: Option<String>,
        /// timestamp, date or int64 (default: the table's, or timestamp; int64 for sequence tables).
        #[arg(long)]
        kind: Option<String>,
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
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("highwater: cannot start: {error}");
            return ExitCode::from(FAILED);
        }
    };
    runtime.block_on(async {
        tokio::select! {
            code = execute(cli.command) => code,
            () = interrupted() => {
                eprintln!(
                    "highwater: interrupted — runs stopped before their commit; nothing of them is visible \
                     (their staged files go with `highwater vacuum`)"
                );
                ExitCode::from(INTERRUPTED)
            }
        }
    })
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

fn finish(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(output) => {
            print!("{output}");
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
        Command::Demo { dir, rows, json } => demo(&dir, rows, json).await,
        Command::Run { pipeline, tables, plan, json } => {
            let pipeline = match load(&pipeline) {
                Ok(pipeline) => pipeline,
                Err(code) => return code,
            };
            let selected = match commands::select(&pipeline, &tables) {
                Ok(selected) => selected,
                Err(error) => {
                    eprintln!("highwater: {error}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            let outcomes = run_tables(&selected, pipeline.settings.concurrency, plan, json).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcomes).unwrap_or_default());
            }
            let failed: Vec<&str> = outcomes.iter().filter(|o| !o.ok).map(|o| o.table.as_str()).collect();
            if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("highwater: {} of {} tables failed: {}", failed.len(), outcomes.len(), failed.join(", "));
                ExitCode::from(FAILED)
            }
        }
        Command::Status { pipeline, tables, json } => {
            with_tables(&pipeline, &tables, async |t| commands::status(t, json).await).await
        }
        Command::History { pipeline, tables, json } => {
            with_tables(&pipeline, &tables, async |t| commands::history(t, json).await).await
        }
        Command::Watermark { action } => match action {
            WatermarkCommand::Show { pipeline, tables, json } => {
                with_tables(&pipeline, &tables, async |t| commands::watermark_show(t, json).await).await
            }
            WatermarkCommand::Import { pipeline, table, value, from, kind } => {
                with_tables(&pipeline, std::slice::from_ref(&table), async |t| {
                    commands::watermark_import(t[0], value.as_deref(), from.as_deref(), kind.as_deref()).await
                })
                .await
            }
            WatermarkCommand::Export { pipeline, tables, to } => {
                with_tables(&pipeline, &tables, async |t| commands::watermark_export(t, &to).await).await
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
    finish(command(&selected).await)
}

/// Runs tables, `concurrency` at once; a failing table does not stop the others. Reports are
/// printed as tables finish (spinners on a terminal), or returned for `--json`.
async fn run_tables(tables: &[&TableConfig], concurrency: usize, plan: bool, json: bool) -> Vec<TableOutcome> {
    let terminal = std::io::stderr().is_terminal() && !json;
    let progress = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    // A hidden pause before each table starts, for the interruption tests.
    let delay =
        std::env::var("HIGHWATER_TEST_START_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
    let mut outcomes: Vec<(usize, TableOutcome)> = futures::stream::iter(tables.iter().enumerate())
        .map(|(index, table)| {
            let progress = &progress;
            let style = style.clone();
            async move {
                let spinner = terminal.then(|| {
                    let bar = progress.add(ProgressBar::new_spinner().with_style(style).with_message(format!(
                        "{}: {}",
                        table.name,
                        if plan { "planning" } else { "loading" }
                    )));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let result = pipeline::run_table(table, plan).await;
                if let Some(spinner) = spinner {
                    spinner.finish_and_clear();
                }
                let outcome = TableOutcome {
                    table: table.name.clone(),
                    pattern: table.pattern.map_or("?", config::PatternName::as_str).to_owned(),
                    ok: result.is_ok(),
                    error: result.as_ref().err().cloned(),
                    report: result.ok(),
                };
                if !json {
                    let text = match (&outcome.report, &outcome.error) {
                        (Some(report), _) => render::human(report),
                        (None, Some(error)) => format!("{} ({}) — FAILED: {error}\n", outcome.table, outcome.pattern),
                        _ => String::new(),
                    };
                    if terminal {
                        let _ = progress.println(text.trim_end());
                    } else {
                        println!("{}", text.trim_end());
                    }
                }
                (index, outcome)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
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
    let first = run_tables(&tables, 4, false, json).await;
    if let Err(error) = demo::change(dir, rows) {
        eprintln!("highwater demo: {error}");
        return ExitCode::from(FAILED);
    }
    say("\n== day 2: new, updated, late and deleted rows, a late file, a redelivered CDC file, a new snapshot ==\n");
    let second = run_tables(&tables, 4, false, json).await;
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
