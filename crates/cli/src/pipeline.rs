//! Running a table of a pipeline: its config turned into the pattern's loader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use highwater::LoadReport;
use highwater::store::TableOptions;
use highwater::store::incremental::{LateFiles, NullCursors, OutputMode, RewrittenFiles};
use highwater::store::source::{Progress, SourceOptions};
use highwater::store::write::{Codec, SchemaEvolution, SinkOptions};

use crate::config::{HistoryConfig, PatternName, TableConfig, parse_duration, value_text};

/// A string option as one of its values (the config was checked, so errors name the table).
fn choice<T: serde::de::DeserializeOwned>(
    table: &TableConfig,
    key: &str,
    value: Option<&String>,
) -> Result<Option<T>, String> {
    value
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.clone())).map_err(|_| {
                format!("table `{}`: `{key}` = \"{v}\" is not one of its values (see docs/pipeline.md)", table.name)
            })
        })
        .transpose()
}

/// Checks the values of a table's choice options (`codec = "zstd"`, `tie = …`, the Debezium and
/// history settings) when the file is loaded, so a typo is a configuration error with its line:
/// the key at fault and the message.
pub fn check_values(table: &TableConfig) -> Result<(), (&'static str, String)> {
    let at = |key: &'static str| move |message: String| (key, message);
    sink(table).map_err(at("codec"))?;
    choice::<SchemaEvolution>(table, "schema_evolution", table.schema_evolution.as_ref())
        .map_err(at("schema_evolution"))?;
    choice::<RewrittenFiles>(table, "rewritten_files", table.rewritten_files.as_ref())
        .map_err(at("rewritten_files"))?;
    choice::<OutputMode>(table, "mode", table.mode.as_ref()).map_err(at("mode"))?;
    choice::<LateFiles>(table, "late_files", table.late_files.as_ref()).map_err(at("late_files"))?;
    choice::<NullCursors>(table, "null_cursors", table.null_cursors.as_ref()).map_err(at("null_cursors"))?;
    choice::<highwater::cdc::TiePolicy>(table, "tie", table.tie.as_ref()).map_err(at("tie"))?;
    choice::<highwater::diff::Output>(table, "output", table.output.as_ref()).map_err(at("output"))?;
    match table.format.as_deref() {
        None | Some("flat" | "debezium") => {}
        Some(other) => {
            return Err(("format", format!("table `{}`: `format` = \"{other}\" is not flat or debezium", table.name)));
        }
    }
    debezium_options(table).map_err(at("debezium_sequence"))?;
    if let Some(history) = &table.history {
        scd2(table, history).map_err(at("history"))?;
    }
    Ok(())
}

/// The Debezium options of a `format = "debezium"` table.
fn debezium_options(table: &TableConfig) -> Result<highwater::cdc::DebeziumOptions, String> {
    use highwater::cdc::SequenceSource;
    let sequence = match table.debezium_sequence.as_deref() {
        None | Some("auto") => SequenceSource::Auto,
        Some("mysql") => SequenceSource::MySql,
        Some("postgres") => SequenceSource::Postgres,
        Some("ts_ms") => SequenceSource::TsMs,
        Some(other) => {
            return Err(format!(
                "table `{}`: `debezium_sequence` = \"{other}\" is not auto, mysql, postgres or ts_ms",
                table.name
            ));
        }
    };
    let mut types = BTreeMap::new();
    for (column, text) in &table.column_types {
        let data_type: arrow_schema::DataType = text.parse().map_err(|e| {
            format!("table `{}`: column_types.{column} = \"{text}\" is not an Arrow type ({e})", table.name)
        })?;
        types.insert(column.clone(), data_type);
    }
    Ok(highwater::cdc::DebeziumOptions { sequence, types })
}

/// The SCD type 2 settings of a `[tables.history]` section.
fn scd2(table: &TableConfig, history: &HistoryConfig) -> Result<highwater::cdc::Scd2, String> {
    use highwater::cdc::{HardDeletes, Scd2, ValidTime};
    let defaults = Scd2::default();
    let hard_deletes = match history.hard_deletes.as_deref() {
        None | Some("close") => HardDeletes::Close,
        Some("marker") => HardDeletes::Marker,
        Some(other) => {
            return Err(format!("table `{}`: history.hard_deletes = \"{other}\" is not close or marker", table.name));
        }
    };
    let name = |value: &Option<String>, default: String| value.clone().unwrap_or(default);
    Ok(Scd2 {
        time: history.time_column.clone().map_or(ValidTime::Sequence, ValidTime::Column),
        track_columns: history.track_columns.clone(),
        hard_deletes,
        open_end: history.open_end.clone(),
        valid_from: name(&history.valid_from, defaults.valid_from),
        valid_to: name(&history.valid_to, defaults.valid_to),
        is_current: name(&history.is_current, defaults.is_current),
        is_deleted: name(&history.is_deleted, defaults.is_deleted),
    })
}

fn duration(value: Option<&String>) -> Option<Duration> {
    value.and_then(|v| parse_duration(v).ok())
}

fn sink(table: &TableConfig) -> Result<SinkOptions, String> {
    let mut sink = SinkOptions::default();
    if let Some(codec) = choice::<Codec>(table, "codec", table.codec.as_ref())? {
        sink.codec = codec;
    }
    if let Some(rows) = table.rows_per_file {
        sink.rows_per_file = rows;
    }
    sink.partition_by.clone_from(&table.partition_by);
    Ok(sink)
}

fn sources(table: &TableConfig) -> Vec<String> {
    table.source.iter().chain(&table.sources).cloned().collect()
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

fn keys(table: &TableConfig) -> Vec<&str> {
    table.key.iter().map(String::as_str).collect()
}

/// Runs (or plans) one table.
#[allow(clippy::too_many_lines, reason = "one arm per pattern, mapping the documented keys one by one")]
pub async fn run_table(table: &TableConfig, plan: bool, progress: Arc<Progress>) -> Result<LoadReport, String> {
    let pattern = table.pattern.ok_or_else(|| format!("table `{}` has no pattern", table.name))?;
    let sources = sources(table);
    let (first, more) = sources.split_first().ok_or_else(|| format!("table `{}` has no source", table.name))?;
    let target = table.target.clone().unwrap_or_default();
    let sink = sink(table)?;
    let evolution = choice::<SchemaEvolution>(table, "schema_evolution", table.schema_evolution.as_ref())?;
    let rewritten = choice::<RewrittenFiles>(table, "rewritten_files", table.rewritten_files.as_ref())?;
    let table_options = TableOptions::default();
    let source_options = SourceOptions { progress: Some(progress), ..SourceOptions::default() };
    let failed = |e: &dyn std::fmt::Display| e.to_string();
    tracing::info!(table = %table.name, pattern = pattern.as_str(), %target, plan, "starting");
    match pattern {
        PatternName::Timestamp => {
            let mut loader = highwater::TimestampLoader::new(first.clone(), target)
                .table_name(&table.name)
                .sink(sink)
                .table_options(table_options)
                .source_options(source_options);
            for source in more {
                loader = loader.also_source(source.clone());
            }
            if let Some(cursor) = &table.cursor {
                loader = loader.cursor(cursor.clone());
            }
            if !table.key.is_empty() {
                loader = loader.key(&keys(table));
            }
            if let Some(mode) = choice::<OutputMode>(table, "mode", table.mode.as_ref())? {
                loader = loader.mode(mode);
            }
            if let Some(zone) = &table.naive_timezone {
                loader = loader.naive_timezone(zone.clone());
            }
            if let Some(lookback) = duration(table.lookback.as_ref()) {
                loader = loader.lookback(lookback);
            }
            if let Some(settle) = duration(table.settle.as_ref()) {
                loader = loader.settle(settle);
            }
            if let Some(start) = &table.start {
                loader = loader.start(start.clone());
            }
            if let Some(end) = &table.end {
                loader = loader.end(value_text(end));
            }
            if let Some(replace) = table.replace {
                loader = loader.replace(replace);
            }
            if let Some(policy) = choice::<LateFiles>(table, "late_files", table.late_files.as_ref())? {
                loader = loader.late_files(policy);
            }
            if let Some(policy) = rewritten {
                loader = loader.rewritten_files(policy);
            }
            if let Some(policy) = choice::<NullCursors>(table, "null_cursors", table.null_cursors.as_ref())? {
                loader = loader.null_cursors(policy);
            }
            if let Some(rows) = table.max_rows {
                loader = loader.max_rows(rows);
            }
            if let Some(yes) = table.row_hash_identity {
                loader = loader.row_hash_identity(yes);
            }
            if let Some(watermark) = &table.initial_watermark {
                loader = loader.initial_watermark(value_text(watermark));
            }
            if let Some(path) = &table.watermark_path {
                loader = loader.watermark_path(path.clone());
            }
            if let Some(policy) = evolution {
                loader = loader.schema_evolution(policy);
            }
            if let Some(rows) = table.batch_size {
                loader = loader.batch_size(rows);
            }
            if let Some(rows) = table.memory_budget_rows {
                loader = loader.memory_budget_rows(rows);
            }
            if plan { loader.plan().await } else { loader.run().await }.map_err(|e| failed(&e))
        }
        PatternName::Sequence => {
            let mut loader = highwater::SequenceLoader::new(first.clone(), target)
                .table_name(&table.name)
                .sink(sink)
                .table_options(table_options)
                .source_options(source_options);
            for source in more {
                loader = loader.also_source(source.clone());
            }
            if let Some(column) = &table.column {
                loader = loader.column(column.clone());
            }
            if !table.key.is_empty() {
                loader = loader.key(&keys(table));
            }
            if let Some(mode) = choice::<OutputMode>(table, "mode", table.mode.as_ref())? {
                loader = loader.mode(mode);
            }
            if let Some(end) = &table.end {
                let end = value_text(end)
                    .parse()
                    .map_err(|_| format!("table `{}`: `end` must be an integer id", table.name))?;
                loader = loader.end(end);
            }
            if let Some(timeout) = duration(table.hold_on_gap.as_ref()) {
                loader = loader.hold_on_gap(timeout);
            }
            if let Some(policy) = choice::<LateFiles>(table, "late_files", table.late_files.as_ref())? {
                loader = loader.late_files(policy);
            }
            if let Some(policy) = rewritten {
                loader = loader.rewritten_files(policy);
            }
            if let Some(policy) = choice::<NullCursors>(table, "null_cursors", table.null_cursors.as_ref())? {
                loader = loader.null_cursors(policy);
            }
            if let Some(rows) = table.max_rows {
                loader = loader.max_rows(rows);
            }
            if let Some(watermark) = &table.initial_watermark {
                let id = value_text(watermark)
                    .parse()
                    .map_err(|_| format!("table `{}`: `initial_watermark` must be an integer id", table.name))?;
                loader = loader.initial_watermark(id);
            }
            if let Some(path) = &table.watermark_path {
                loader = loader.watermark_path(path.clone());
            }
            if let Some(policy) = evolution {
                loader = loader.schema_evolution(policy);
            }
            if let Some(rows) = table.batch_size {
                loader = loader.batch_size(rows);
            }
            if plan { loader.plan().await } else { loader.run().await }.map_err(|e| failed(&e))
        }
        PatternName::Cdc => {
            let mut loader = highwater::CdcLoader::new(first.clone(), target)
                .table_name(&table.name)
                .sink(sink)
                .table_options(table_options)
                .source_options(source_options);
            for source in more {
                loader = loader.also_source(source.clone());
            }
            match table.format.as_deref() {
                None | Some("flat") => {}
                Some("debezium") => loader = loader.debezium(debezium_options(table)?),
                Some(other) => {
                    return Err(format!("table `{}`: `format` = \"{other}\" is not flat or debezium", table.name));
                }
            }
            if !table.key.is_empty() {
                loader = loader.key(&keys(table));
            }
            if let Some(history) = &table.history {
                loader = loader.scd2(scd2(table, history)?);
            }
            if let Some(column) = &table.op_column {
                loader = loader.op_column(column.clone());
            }
            if let Some(columns) = &table.sequence {
                loader = loader.sequence(&columns.iter().map(String::as_str).collect::<Vec<_>>());
            }
            if table.insert.is_some() || table.update.is_some() || table.delete.is_some() {
                let values = |v: &Option<Vec<String>>, default: &str| -> Vec<String> {
                    v.clone().unwrap_or_else(|| vec![default.to_owned()])
                };
                let (insert, update, delete) =
                    (values(&table.insert, "INSERT"), values(&table.update, "UPDATE"), values(&table.delete, "DELETE"));
                loader = loader.operations(&strs(&insert), &strs(&update), &strs(&delete));
            }
            if let Some(values) = &table.truncate {
                loader = loader.truncate_values(&values.iter().map(String::as_str).collect::<Vec<_>>());
            }
            if let Some(yes) = table.case_insensitive {
                loader = loader.case_insensitive(yes);
            }
            if let Some(tie) = choice::<highwater::cdc::TiePolicy>(table, "tie", table.tie.as_ref())? {
                loader = loader.tie(tie);
            }
            if let Some(yes) = table.keep_sequence {
                loader = loader.keep_sequence(yes);
            }
            match table.tombstone_retention.as_deref() {
                Some("forever") => loader = loader.tombstone_retention(None),
                Some(value) => loader = loader.tombstone_retention(parse_duration(value).ok()),
                None => {}
            }
            if let Some(policy) = rewritten {
                loader = loader.rewritten_files(policy);
            }
            if let Some(zone) = &table.naive_timezone {
                loader = loader.naive_zone(zone.clone());
            }
            if let Some(watermark) = &table.initial_watermark {
                loader = loader.initial_watermark(value_text(watermark));
            }
            if let Some(path) = &table.watermark_path {
                loader = loader.watermark_path(path.clone());
            }
            if let Some(policy) = evolution {
                loader = loader.schema_evolution(policy);
            }
            if let Some(rows) = table.batch_size {
                loader = loader.batch_size(rows);
            }
            if let Some(rows) = table.memory_budget_rows {
                loader = loader.memory_budget_rows(rows);
            }
            if plan { loader.plan().await } else { loader.run().await }.map_err(|e| failed(&e))
        }
        PatternName::Diff => {
            if !more.is_empty() {
                return Err(format!("table `{}`: a snapshot diff reads one `source`", table.name));
            }
            let mut loader = highwater::DiffLoader::new(first.clone(), target)
                .table_name(&table.name)
                .sink(sink)
                .table_options(table_options)
                .source_options(source_options);
            if !table.key.is_empty() {
                loader = loader.key(&keys(table));
            }
            if let Some(previous) = &table.previous {
                loader = loader.previous(previous.clone());
            }
            if let Some(seed) = &table.seed_snapshot {
                loader = loader.seed_snapshot(seed.clone());
            }
            if !table.ignore_columns.is_empty() {
                loader = loader.ignore_columns(&table.ignore_columns.iter().map(String::as_str).collect::<Vec<_>>());
            }
            for (column, decimals) in &table.round {
                loader = loader.round(column, *decimals);
            }
            for (column, unit) in &table.truncate_timestamps {
                let unit =
                    choice::<highwater::core::watermark::TimestampUnit>(table, "truncate_timestamps", Some(unit))?
                        .unwrap_or(highwater::core::watermark::TimestampUnit::Second);
                loader = loader.truncate_timestamps(column, unit);
            }
            for (column, tolerance) in &table.tolerance {
                loader = loader.tolerance(
                    column,
                    highwater::diff::Tolerance { absolute: tolerance.absolute, relative: tolerance.relative },
                );
            }
            if let Some(yes) = table.changed_columns {
                loader = loader.changed_columns(yes);
            }
            if let Some(output) = choice::<highwater::diff::Output>(table, "output", table.output.as_ref())? {
                loader = loader.output(output);
            }
            if let Some(yes) = table.keep_index {
                loader = loader.keep_index(yes);
            }
            if let Some(yes) = table.baseline {
                loader = loader.baseline(yes);
            }
            if let Some(yes) = table.allow_empty_snapshot {
                loader = loader.allow_empty_snapshot(yes);
            }
            if let Some(yes) = table.allow_null_keys {
                loader = loader.allow_null_keys(yes);
            }
            if let Some(zone) = &table.naive_timezone {
                loader = loader.naive_zone(zone.clone());
            }
            if let Some(rows) = table.batch_size {
                loader = loader.batch_size(rows);
            }
            if let Some(rows) = table.memory_budget_rows {
                loader = loader.memory_budget_rows(rows);
            }
            if plan { loader.plan().await } else { loader.run().await }.map_err(|e| failed(&e))
        }
    }
}
