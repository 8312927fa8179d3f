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

/// A config error: the key at fault (`""` for the table as a whole) and the message.
pub type KeyError = (&'static str, String);

/// A string option as one of its values (the config was checked, so errors name the table).
fn choice<T: serde::de::DeserializeOwned>(
    table: &TableConfig,
    key: &'static str,
    value: Option<&String>,
) -> Result<Option<T>, KeyError> {
    value
        .map(|v| {
            // serde names the values it expected ("unknown variant `gzip`, expected one of …").
            serde_json::from_value(serde_json::Value::String(v.clone()))
                .map_err(|error| (key, format!("table `{}`: `{key}` = \"{v}\": {error}", table.name)))
        })
        .transpose()
}

/// Checks a table's values when the file is loaded, by building its loader and running the
/// loader's own check: a typo or a contradiction is a configuration error with its line, not a
/// failed run.
pub fn check_values(table: &TableConfig) -> Result<(), KeyError> {
    build(table, Arc::default())?.check().map_err(|message| ("", format!("table `{}`: {message}", table.name)))
}

/// The Debezium options of a `format = "debezium"` table.
fn debezium_options(table: &TableConfig) -> Result<highwater::cdc::DebeziumOptions, KeyError> {
    use highwater::cdc::SequenceSource;
    let sequence = match table.debezium_sequence.as_deref() {
        None | Some("auto") => SequenceSource::Auto,
        Some("mysql") => SequenceSource::MySql,
        Some("postgres") => SequenceSource::Postgres,
        Some("ts_ms") => SequenceSource::TsMs,
        Some(other) => {
            return Err((
                "debezium_sequence",
                format!(
                    "table `{}`: `debezium_sequence` = \"{other}\" is not auto, mysql, postgres or ts_ms",
                    table.name
                ),
            ));
        }
    };
    let mut types = BTreeMap::new();
    for (column, text) in &table.column_types {
        let data_type: arrow_schema::DataType = text.parse().map_err(|e| {
            (
                "column_types",
                format!("table `{}`: column_types.{column} = \"{text}\" is not an Arrow type ({e})", table.name),
            )
        })?;
        types.insert(column.clone(), data_type);
    }
    Ok(highwater::cdc::DebeziumOptions { sequence, types })
}

/// The SCD type 2 settings of a `[tables.history]` section.
fn scd2(table: &TableConfig, history: &HistoryConfig) -> Result<highwater::cdc::Scd2, KeyError> {
    use highwater::cdc::{HardDeletes, Scd2, ValidTime};
    let defaults = Scd2::default();
    let hard_deletes = match history.hard_deletes.as_deref() {
        None | Some("close") => HardDeletes::Close,
        Some("marker") => HardDeletes::Marker,
        Some(other) => {
            return Err((
                "history",
                format!("table `{}`: history.hard_deletes = \"{other}\" is not close or marker", table.name),
            ));
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

fn sink(table: &TableConfig) -> Result<SinkOptions, KeyError> {
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
pub async fn run_table(table: &TableConfig, plan: bool, progress: Arc<Progress>) -> Result<LoadReport, String> {
    let loader = build(table, progress).map_err(|(_, message)| message)?;
    let pattern = table.pattern.map_or("?", PatternName::as_str);
    tracing::info!(table = %table.name, pattern, target = table.target.as_deref().unwrap_or(""), plan, "starting");
    loader.execute(plan).await
}

/// A table's loader, built from its config without touching a store.
enum Loader {
    Timestamp(highwater::TimestampLoader),
    Sequence(highwater::SequenceLoader),
    Cdc(highwater::CdcLoader),
    Diff(highwater::DiffLoader),
}

impl Loader {
    /// The loader's own check of its settings (the one `run` and `plan` begin with).
    fn check(&self) -> Result<(), String> {
        match self {
            Loader::Timestamp(loader) => loader.check().map_err(|e| e.to_string()),
            Loader::Sequence(loader) => loader.check().map_err(|e| e.to_string()),
            Loader::Cdc(loader) => loader.check().map_err(|e| e.to_string()),
            Loader::Diff(loader) => loader.check().map_err(|e| e.to_string()),
        }
    }

    async fn execute(&self, plan: bool) -> Result<LoadReport, String> {
        match self {
            Loader::Timestamp(loader) => {
                if plan { loader.plan().await } else { loader.run().await }.map_err(|e| e.to_string())
            }
            Loader::Sequence(loader) => {
                if plan { loader.plan().await } else { loader.run().await }.map_err(|e| e.to_string())
            }
            Loader::Cdc(loader) => {
                if plan { loader.plan().await } else { loader.run().await }.map_err(|e| e.to_string())
            }
            Loader::Diff(loader) => {
                if plan { loader.plan().await } else { loader.run().await }.map_err(|e| e.to_string())
            }
        }
    }
}

/// A cursor bound of a timestamp table (`start`, `end`, `initial_watermark`): its type is the
/// cursor column's, known only when the source is read, so here it must parse as one of the
/// types a cursor can have.
fn cursor_text(table: &TableConfig, key: &'static str, text: String) -> Result<String, KeyError> {
    use highwater::core::watermark::{TimestampUnit, WatermarkKind, WatermarkValue};
    use highwater::core::zone::Zone;
    let kinds = [
        WatermarkKind::Timestamp { unit: TimestampUnit::Microsecond, timezone: None },
        WatermarkKind::Date,
        WatermarkKind::Int64,
    ];
    if kinds.iter().any(|kind| WatermarkValue::parse(&text, kind, &Zone::UTC).is_ok()) {
        Ok(text)
    } else {
        Err((key, format!("table `{}`: `{key}` = \"{text}\" is not a timestamp, a date or an integer", table.name)))
    }
}

/// An integer id of a sequence table (`end`, `initial_watermark`).
fn id(table: &TableConfig, key: &'static str, value: &toml::Value) -> Result<i64, KeyError> {
    value_text(value).parse().map_err(|_| (key, format!("table `{}`: `{key}` must be an integer id", table.name)))
}

/// Builds a table's loader from its (parsed) config; an error names the key at fault.
#[allow(clippy::too_many_lines, reason = "one arm per pattern, mapping the documented keys one by one")]
fn build(table: &TableConfig, progress: Arc<Progress>) -> Result<Loader, KeyError> {
    let whole = |message: String| ("", message);
    let pattern = table.pattern.ok_or_else(|| whole(format!("table `{}` has no pattern", table.name)))?;
    let sources = sources(table);
    let (first, more) = sources.split_first().ok_or_else(|| whole(format!("table `{}` has no source", table.name)))?;
    let target = table.target.clone().unwrap_or_default();
    let sink = sink(table)?;
    let evolution = choice::<SchemaEvolution>(table, "schema_evolution", table.schema_evolution.as_ref())?;
    let rewritten = choice::<RewrittenFiles>(table, "rewritten_files", table.rewritten_files.as_ref())?;
    let table_options = TableOptions::default();
    let source_options = SourceOptions { progress: Some(progress), ..SourceOptions::default() };
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
                loader = loader.start(cursor_text(table, "start", value_text(start))?);
            }
            if let Some(end) = &table.end {
                loader = loader.end(cursor_text(table, "end", value_text(end))?);
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
                loader = loader.initial_watermark(cursor_text(table, "initial_watermark", value_text(watermark))?);
            }
            if let Some(path) = &table.watermark_path {
                loader = loader.watermark_path(path.clone());
            }
            if let Some(zone) = &table.seed_timezone {
                loader = loader.seed_timezone(zone.clone());
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
            Ok(Loader::Timestamp(loader))
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
                loader = loader.end(id(table, "end", end)?);
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
                loader = loader.initial_watermark(id(table, "initial_watermark", watermark)?);
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
            Ok(Loader::Sequence(loader))
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
                    return Err((
                        "format",
                        format!("table `{}`: `format` = \"{other}\" is not flat or debezium", table.name),
                    ));
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
            Ok(Loader::Cdc(loader))
        }
        PatternName::Diff => {
            if !more.is_empty() {
                return Err(("sources", format!("table `{}`: a snapshot diff reads one `source`", table.name)));
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
            Ok(Loader::Diff(loader))
        }
    }
}
