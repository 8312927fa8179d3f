//! The commands that look after a pipeline's tables: status, history, watermark, restore,
//! vacuum, compact.

use std::fmt::Write as _;
use std::time::Duration;

use highwater::core::watermark::{WatermarkKind, WatermarkValue};
use highwater::core::zone::Zone;
use highwater::store::incremental::Place;
use highwater::store::{Operation, RunSpec, Snapshot, Table, TableOptions};
use serde_json::{Value, json};

use crate::config::{LoadedPipeline, PatternName, TableConfig};

/// The tables a command applies to: all, or those named.
pub fn select<'a>(pipeline: &'a LoadedPipeline, names: &[String]) -> Result<Vec<&'a TableConfig>, String> {
    if names.is_empty() {
        return Ok(pipeline.tables.iter().map(|(_, t)| t).collect());
    }
    names
        .iter()
        .map(|name| {
            pipeline.tables.iter().map(|(_, t)| t).find(|t| t.name == *name).ok_or_else(|| {
                format!(
                    "no table `{name}` in {} (tables: {})",
                    pipeline.path.display(),
                    pipeline.tables.iter().map(|(_, t)| t.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect()
}

async fn open(table: &TableConfig) -> Result<Option<Table>, String> {
    let target = table.target.clone().unwrap_or_default();
    Place::Location(target)
        .open_table(&TableOptions::default())
        .await
        .map_err(|e| format!("table `{}`: {e}", table.name))
}

/// The table's current snapshot, `None` when it has no commits yet; errors name the table.
async fn snapshot(table: &TableConfig) -> Result<Option<Snapshot>, String> {
    match open(table).await? {
        Some(opened) => opened.snapshot().await.map(Some).map_err(|e| format!("table `{}`: {e}", table.name)),
        None => Ok(None),
    }
}

async fn require(table: &TableConfig) -> Result<Table, String> {
    open(table).await?.ok_or_else(|| {
        format!("table `{}` has no commits yet at {}", table.name, table.target.as_deref().unwrap_or(""))
    })
}

/// An operation as the JSON spells it (`load`, `compact`, …).
fn operation_name(operation: Operation) -> String {
    serde_json::to_value(operation).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn show(watermark: Option<&WatermarkValue>) -> String {
    watermark.map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// Each table's version, watermark, size and last commit.
///
/// A table that cannot be read (a store unreachable, a credential missing) does not hide the
/// others: it is listed with its error, and the errors come back beside the output.
pub async fn status(tables: &[&TableConfig], as_json: bool) -> (String, Vec<String>) {
    let mut lines = String::new();
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for table in tables {
        let snapshot = match snapshot(table).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                docs.push(json!({"table": table.name, "error": error}));
                let _ = writeln!(lines, "{:<20} cannot be read (see below)", table.name);
                errors.push(error);
                continue;
            }
        };
        let Some(snapshot) = snapshot else {
            // The same keys as a committed table's, so a script reads every entry alike.
            docs.push(json!({
                "table": table.name,
                "version": null,
                "watermark": null,
                "files": 0,
                "rows": 0,
                "bytes": 0,
                "last_commit": null,
            }));
            let _ = writeln!(lines, "{:<20} no commits yet", table.name);
            continue;
        };
        let rows: u64 = snapshot.files.values().map(|f| f.rows).sum();
        let bytes: u64 = snapshot.files.values().map(|f| f.bytes).sum();
        let last = &snapshot.last_commit;
        docs.push(json!({
            "table": table.name,
            "version": snapshot.version,
            "watermark": snapshot.watermark,
            "files": snapshot.files.len(),
            "rows": rows,
            "bytes": bytes,
            "last_commit": last,
        }));
        let _ = writeln!(
            lines,
            "{:<20} version {:<5} watermark {:<32} {} files, {} rows, {:.1} MB; last: {} at {}",
            table.name,
            snapshot.version,
            show(snapshot.watermark.as_ref()),
            snapshot.files.len(),
            rows,
            bytes as f64 / 1e6,
            operation_name(last.operation),
            last.finished_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    (if as_json { serde_json::to_string_pretty(&docs).unwrap_or_default() } else { lines }, errors)
}

/// Every commit of each table, newest first.
pub async fn history(tables: &[&TableConfig], as_json: bool) -> Result<String, String> {
    let mut lines = String::new();
    let mut docs = Vec::new();
    for table in tables {
        let Some(opened) = open(table).await? else {
            let _ = writeln!(lines, "{}: no commits yet", table.name);
            docs.push(json!({"table": table.name, "commits": []}));
            continue;
        };
        let history = opened.history().await.map_err(|e| format!("table `{}`: {e}", table.name))?;
        let _ = writeln!(lines, "{}:", table.name);
        for commit in &history {
            let _ = writeln!(
                lines,
                "  v{:<4} {}  {:<9} +{} rows -{} rows  watermark {}",
                commit.version,
                commit.finished_at.format("%Y-%m-%d %H:%M:%S"),
                operation_name(commit.operation),
                commit.rows_added,
                commit.rows_removed,
                show(commit.watermark_after.as_ref())
            );
        }
        docs.push(json!({"table": table.name, "commits": history}));
    }
    Ok(if as_json { serde_json::to_string_pretty(&docs).unwrap_or_default() } else { lines })
}

/// Each table's watermark.
pub async fn watermark_show(tables: &[&TableConfig], as_json: bool) -> Result<String, String> {
    let mut lines = String::new();
    let mut docs = serde_json::Map::new();
    for table in tables {
        let watermark = snapshot(table).await?.and_then(|s| s.watermark);
        let _ = writeln!(lines, "{:<20} {}", table.name, show(watermark.as_ref()));
        docs.insert(table.name.clone(), json!(watermark));
    }
    Ok(if as_json { serde_json::to_string_pretty(&Value::Object(docs)).unwrap_or_default() } else { lines })
}

/// Sets a table's watermark by hand, as a commit of its own (timestamp and sequence tables):
/// rows at or below it count as loaded elsewhere.
pub async fn watermark_import(
    table: &TableConfig,
    value: Option<&str>,
    from: Option<&str>,
    kind: Option<&str>,
    timezone: Option<&str>,
) -> Result<String, String> {
    let pattern = table.pattern.unwrap_or(PatternName::Timestamp);
    if !matches!(pattern, PatternName::Timestamp | PatternName::Sequence) {
        return Err(format!(
            "table `{}` is a {} table: give it `initial_watermark` (cdc) or `baseline` (diff) instead",
            table.name,
            pattern.as_str()
        ));
    }
    let previous = snapshot(table).await?.and_then(|s| s.watermark);
    let timestamp = WatermarkKind::Timestamp {
        unit: highwater::core::watermark::TimestampUnit::Microsecond,
        timezone: Some("UTC".into()),
    };
    let asked = match kind {
        None => None,
        Some("int64") => Some(WatermarkKind::Int64),
        Some("date") => Some(WatermarkKind::Date),
        Some("timestamp") => Some(timestamp.clone()),
        Some(other) => return Err(format!("--kind {other}: expected timestamp, date or int64")),
    };
    // A watermark of another kind than the cursor's would fail every later run: the table's
    // own watermark, or the pattern, decides.
    let kind = match (asked, &previous) {
        (None, Some(previous)) => previous.kind(),
        (Some(asked), Some(previous)) => {
            if previous.check_kind(&asked).is_err() {
                return Err(format!(
                    "the watermark of table `{}` is of kind {} ({previous}): a {} value would not compare with its cursor",
                    table.name,
                    previous.kind().name(),
                    asked.name()
                ));
            }
            previous.kind()
        }
        (asked, None) if pattern == PatternName::Sequence => match asked {
            None | Some(WatermarkKind::Int64) => WatermarkKind::Int64,
            Some(other) => {
                return Err(format!(
                    "table `{}` is a sequence table: its watermark is an int64 id, not a {}",
                    table.name,
                    other.name()
                ));
            }
        },
        (asked, None) => asked.unwrap_or(timestamp),
    };
    let zone = Zone::parse(timezone.unwrap_or("UTC")).map_err(|e| format!("--timezone: {e}"))?;
    let watermark = match (value, from) {
        (Some(text), _) => WatermarkValue::parse(text, &kind, &zone).map_err(|e| e.to_string())?,
        (None, Some(path)) => highwater::store::seed::import_seed_watermark(path, &table.name, &kind, &zone)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the seed's watermark table at {path} has no row for `{}`", table.name))?,
        (None, None) => return Err("give the watermark with --value, or the seed's watermark table with --from".into()),
    };
    if previous.as_ref() == Some(&watermark) {
        // A re-run of the same import (a retried script) must not add a version.
        return Ok(format!("{}: watermark {watermark} unchanged (nothing committed)\n", table.name));
    }
    let place = Place::Location(table.target.clone().unwrap_or_default());
    let schema = arrow_schema::Schema::empty();
    let mut transaction = place
        .begin(&schema, &TableOptions::default(), RunSpec::operation(Operation::Watermark))
        .await
        .map_err(|e| e.to_string())?;
    // Like a watermark imported by a loader: exclusive (its rows were loaded elsewhere).
    transaction.set_property("watermark_exclusive", Value::Bool(true));
    let committed = transaction.commit(Some(watermark.clone()), None).await.map_err(|e| e.to_string())?;
    Ok(format!(
        "{}: watermark {} → {} (version {})\n",
        table.name,
        show(previous.as_ref()),
        watermark,
        committed.version
    ))
}

/// Writes each table's watermark into the seed's (partitioned) watermark table at `path`.
pub async fn watermark_export(tables: &[&TableConfig], path: &str, timezone: Option<&str>) -> Result<String, String> {
    let zone = Zone::parse(timezone.unwrap_or("UTC")).map_err(|e| format!("--timezone: {e}"))?;
    let mut lines = String::new();
    for table in tables {
        let watermark = snapshot(table).await?.and_then(|s| s.watermark);
        let Some(watermark) = watermark else {
            let _ = writeln!(lines, "{}: no watermark yet, nothing exported", table.name);
            continue;
        };
        highwater::store::seed::write_seed_mirror(path, &table.name, &watermark, &zone)
            .await
            .map_err(|e| format!("table `{}`: {e}", table.name))?;
        let _ = writeln!(lines, "{}: {watermark} → {path}", table.name);
    }
    Ok(lines)
}

/// Rewrites the seed's flat watermark files at `path` into the partitioned layout.
pub async fn watermark_migrate(path: &str) -> Result<String, String> {
    if highwater::store::seed::seed_layout(path).await.map_err(|e| e.to_string())?
        == highwater::store::seed::SeedLayout::Missing
    {
        return Err(format!("no seed watermark table at {path}: nothing to migrate"));
    }
    let tables = highwater::store::seed::migrate_seed_watermarks(path).await.map_err(|e| e.to_string())?;
    Ok(format!("{path}: {tables} tables' watermarks now in the partitioned layout\n"))
}

/// Makes an earlier version of a table current again, as a new commit.
pub async fn restore(table: &TableConfig, version: u64) -> Result<String, String> {
    let opened = require(table).await?;
    let current = opened.snapshot().await.map_err(|e| format!("table `{}`: {e}", table.name))?.version;
    if current == version {
        return Ok(format!("{}: version {version} is the current one (nothing committed)\n", table.name));
    }
    let committed = opened.restore(version).await.map_err(|e| format!("table `{}`: {e}", table.name))?;
    Ok(format!("{}: version {version} restored as version {}\n", table.name, committed.version))
}

/// Deletes what no version within `retention` needs.
pub async fn vacuum(tables: &[&TableConfig], retention: Duration) -> Result<String, String> {
    let mut lines = String::new();
    for table in tables {
        // A table with no commit yet may still hold what dead first runs staged.
        let report = Place::Location(table.target.clone().unwrap_or_default())
            .vacuum(retention, &TableOptions::default())
            .await
            .map_err(|e| format!("table `{}`: {e}", table.name))?;
        let _ = writeln!(
            lines,
            "{}: {} objects deleted, {:.1} MB freed; versions from {} on stay readable",
            table.name,
            report.deleted.len(),
            report.bytes as f64 / 1e6,
            report.oldest_readable_version
        );
    }
    Ok(lines)
}

/// Rewrites each table's small files into larger ones (no data change).
pub async fn compact(tables: &[&TableConfig]) -> Result<String, String> {
    let mut lines = String::new();
    for table in tables {
        let Some(opened) = open(table).await? else {
            let _ = writeln!(lines, "{}: no commits yet, nothing to compact", table.name);
            continue;
        };
        let outcome = highwater::store::write::compact(&opened, highwater::store::write::CompactOptions::default())
            .await
            .map_err(|e| format!("table `{}`: {e}", table.name))?;
        let _ = match outcome.committed {
            Some(committed) => writeln!(
                lines,
                "{}: {} small files → {} ({} rows), version {}",
                table.name, outcome.files_in, outcome.files_out, outcome.rows, committed.version
            ),
            None => writeln!(lines, "{}: nothing to compact", table.name),
        };
    }
    Ok(lines)
}
