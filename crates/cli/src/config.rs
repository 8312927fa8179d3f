//! Pipeline files: TOML describing tables, each loaded by one pattern. Every key is documented
//! in `docs/pipeline.md`; unknown keys, missing fields, wrong types and options of another
//! pattern are errors naming the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What went wrong with a pipeline file.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", if *line == 0 { String::new() } else { format!(":{line}") })]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// The line (1-based); 0 when the error is about the whole file (it cannot be read).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Settings of the pipeline.
    #[serde(default)]
    pub pipeline: PipelineSettings,
    /// The tables.
    #[serde(default)]
    pub tables: Vec<toml::Spanned<TableConfig>>,
}

/// Settings of the whole pipeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Tables run at once (default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings { concurrency: default_concurrency() }
    }
}

fn default_concurrency() -> usize {
    4
}

/// The four patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternName {
    /// `highwater-timestamp`.
    Timestamp,
    /// `highwater-sequence`.
    Sequence,
    /// `highwater-cdc`.
    Cdc,
    /// `highwater-diff`.
    Diff,
}

impl PatternName {
    /// Its name in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PatternName::Timestamp => "timestamp",
            PatternName::Sequence => "sequence",
            PatternName::Cdc => "cdc",
            PatternName::Diff => "diff",
        }
    }
}

/// A float tolerance of a diff column.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceConfig {
    /// Absolute.
    #[serde(default)]
    pub absolute: f64,
    /// Relative.
    #[serde(default)]
    pub relative: f64,
}

/// SCD type 2 history of a CDC table (`[tables.history]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs, reason = "every key is documented in docs/pipeline.md")]
pub struct HistoryConfig {
    pub time_column: Option<String>,
    pub track_columns: Option<Vec<String>>,
    pub hard_deletes: Option<String>,
    pub open_end: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
    pub is_current: Option<String>,
    pub is_deleted: Option<String>,
}

/// One table: where from, where to, which pattern, its options. Options of one pattern only
/// are refused on a table of another (see `docs/pipeline.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs, reason = "every key is documented in docs/pipeline.md")]
pub struct TableConfig {
    pub name: String,
    pub pattern: Option<PatternName>,
    pub source: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub key: Vec<String>,
    // Shared by several patterns.
    pub watermark_path: Option<String>,
    pub initial_watermark: Option<toml::Value>,
    pub mode: Option<String>,
    pub end: Option<toml::Value>,
    pub late_files: Option<String>,
    pub rewritten_files: Option<String>,
    pub null_cursors: Option<String>,
    pub max_rows: Option<u64>,
    pub batch_size: Option<usize>,
    pub memory_budget_rows: Option<usize>,
    pub schema_evolution: Option<String>,
    pub codec: Option<String>,
    pub rows_per_file: Option<u64>,
    #[serde(default)]
    pub partition_by: Vec<String>,
    pub naive_timezone: Option<String>,
    // timestamp
    pub cursor: Option<String>,
    pub lookback: Option<String>,
    pub settle: Option<String>,
    pub start: Option<toml::Value>,
    pub seed_timezone: Option<String>,
    pub replace: Option<bool>,
    pub row_hash_identity: Option<bool>,
    // sequence
    pub column: Option<String>,
    pub hold_on_gap: Option<String>,
    // cdc
    pub op_column: Option<String>,
    pub sequence: Option<Vec<String>>,
    pub insert: Option<Vec<String>>,
    pub update: Option<Vec<String>>,
    pub delete: Option<Vec<String>>,
    pub truncate: Option<Vec<String>>,
    pub case_insensitive: Option<bool>,
    pub tie: Option<String>,
    pub keep_sequence: Option<bool>,
    pub tombstone_retention: Option<String>,
    pub format: Option<String>,
    pub debezium_sequence: Option<String>,
    #[serde(default)]
    pub column_types: BTreeMap<String, String>,
    pub history: Option<HistoryConfig>,
    // diff
    pub previous: Option<String>,
    pub seed_snapshot: Option<String>,
    #[serde(default)]
    pub ignore_columns: Vec<String>,
    #[serde(default)]
    pub round: BTreeMap<String, i32>,
    #[serde(default)]
    pub truncate_timestamps: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerance: BTreeMap<String, ToleranceConfig>,
    pub changed_columns: Option<bool>,
    pub output: Option<String>,
    pub keep_index: Option<bool>,
    pub baseline: Option<bool>,
    pub allow_null_keys: Option<bool>,
    pub allow_empty_snapshot: Option<bool>,
}

/// Whether a table of `pattern` takes `key` (beyond name, pattern, source(s), target, key).
fn allowed(pattern: PatternName, key: &str) -> bool {
    /// How rows are read and written.
    const WRITING: [&str; 4] = ["batch_size", "codec", "rows_per_file", "partition_by"];
    /// Zoneless timestamps in hashed or compared values, and spilling (not the sequence loader:
    /// its cursor is an integer and it holds no more than a batch).
    const VALUES: [&str; 2] = ["naive_timezone", "memory_budget_rows"];
    /// Loads from a growing source (not the diff).
    const LOADING: [&str; 4] = ["schema_evolution", "rewritten_files", "watermark_path", "initial_watermark"];
    /// Timestamp and sequence loading.
    const CURSOR: [&str; 5] = ["mode", "end", "late_files", "null_cursors", "max_rows"];
    let own: &[&str] = match pattern {
        PatternName::Timestamp => {
            &["cursor", "lookback", "settle", "start", "replace", "row_hash_identity", "seed_timezone"]
        }
        PatternName::Sequence => &["column", "hold_on_gap"],
        PatternName::Cdc => &[
            "op_column",
            "sequence",
            "insert",
            "update",
            "delete",
            "truncate",
            "case_insensitive",
            "tie",
            "keep_sequence",
            "tombstone_retention",
            "format",
            "debezium_sequence",
            "column_types",
            "history",
        ],
        PatternName::Diff => &[
            "previous",
            "seed_snapshot",
            "ignore_columns",
            "round",
            "truncate_timestamps",
            "tolerance",
            "changed_columns",
            "output",
            "keep_index",
            "baseline",
            "allow_null_keys",
            "allow_empty_snapshot",
        ],
    };
    let shared = match pattern {
        PatternName::Timestamp => [&WRITING[..], &VALUES[..], &LOADING[..], &CURSOR[..]].concat(),
        PatternName::Sequence => [&WRITING[..], &LOADING[..], &CURSOR[..]].concat(),
        PatternName::Cdc => [&WRITING[..], &VALUES[..], &LOADING[..]].concat(),
        PatternName::Diff => [&WRITING[..], &VALUES[..]].concat(),
    };
    own.contains(&key) || shared.contains(&key)
}

/// A loaded pipeline: its tables with where they were written.
#[derive(Debug)]
pub struct LoadedPipeline {
    /// The file.
    pub path: PathBuf,
    /// Its settings.
    pub settings: PipelineSettings,
    /// The tables, each with its first line.
    pub tables: Vec<(usize, TableConfig)>,
}

/// Reads and checks a pipeline file.
pub fn load(path: &Path) -> Result<LoadedPipeline, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file, path)
}

/// The 1-based line of byte offset `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// Parses a pipeline file's text.
pub fn parse(text: &str, file: &str, path: &Path) -> Result<LoadedPipeline, ConfigError> {
    let error = |line: usize, message: String| ConfigError { file: file.to_owned(), line, message };
    let pipeline: Pipeline = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |span| line_of(text, span.start));
        // The offending line itself names the key.
        let source = text.lines().nth(line.saturating_sub(1)).map(str::trim).unwrap_or_default();
        let message = e.message().trim_end();
        error(line, if source.is_empty() { message.to_owned() } else { format!("`{source}`: {message}") })
    })?;
    let mut tables = Vec::new();
    let mut names = BTreeMap::new();
    // Each `[[tables]]` header's line: table i's keys lie between header i and the next header.
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| l.trim_start().starts_with("[[tables]]")).map(|(i, _)| i).collect();
    for (index, spanned) in pipeline.tables.into_iter().enumerate() {
        let first = headers.get(index).copied().unwrap_or(0);
        let last = lines
            .iter()
            .enumerate()
            .skip(first + 1)
            .find(|(_, l)| l.trim_start().starts_with('['))
            .map_or(lines.len(), |(i, _)| i);
        let table_line = first + 1;
        let table = spanned.into_inner();
        // The line of `key = ` within this table, for messages about one key.
        // The next `[[tables]]` header ends this table's sub-tables (`[tables.history]`).
        let next_table = headers.get(index + 1).copied().unwrap_or(lines.len());
        let key_line = |key: &str| {
            if key.is_empty() {
                return table_line;
            }
            let section = format!("[tables.{key}]");
            (first..last)
                .find(|i| {
                    let line = lines[*i].trim_start();
                    line.starts_with(key) && line[key.len()..].trim_start().starts_with('=')
                })
                .or_else(|| (last..next_table).find(|i| lines[*i].trim_start().starts_with(&section)))
                .map_or(table_line, |i| i + 1)
        };
        if table.name.is_empty() {
            return Err(error(table_line, "a table needs a `name`".into()));
        }
        if let Some(previous) = names.insert(table.name.clone(), table_line) {
            return Err(error(
                table_line,
                format!("table `{}` is defined twice (first at line {previous})", table.name),
            ));
        }
        let Some(pattern) = table.pattern else {
            return Err(error(
                table_line,
                format!("table `{}` needs `pattern` = timestamp, sequence, cdc or diff", table.name),
            ));
        };
        if table.source.is_none() && table.sources.is_empty() {
            return Err(error(table_line, format!("table `{}` needs a `source`", table.name)));
        }
        if table.target.is_none() {
            return Err(error(table_line, format!("table `{}` needs a `target`", table.name)));
        }
        check_table(&table, pattern).map_err(|(key, message)| error(key_line(key), message))?;
        tables.push((table_line, table));
    }
    if pipeline.pipeline.concurrency == 0 {
        let line = lines.iter().position(|l| l.trim_start().starts_with("concurrency")).map_or(1, |i| i + 1);
        return Err(error(line, "`concurrency` must be at least 1".into()));
    }
    if tables.is_empty() {
        return Err(error(0, "the pipeline has no tables: add a `[[tables]]` section (see docs/pipeline.md)".into()));
    }
    Ok(LoadedPipeline { path: path.to_owned(), settings: pipeline.pipeline, tables })
}

/// A table's keys and values checked (its pattern known): the key at fault (`""` for the table
/// as a whole) and what is wrong.
fn check_table(table: &TableConfig, pattern: PatternName) -> Result<(), (&'static str, String)> {
    for key in present_keys(table) {
        if !allowed(pattern, key) {
            return Err((
                key,
                format!("`{key}` is not an option of a {} table (table `{}`)", pattern.as_str(), table.name),
            ));
        }
    }
    let mut locations = std::collections::BTreeSet::new();
    for location in table.source.iter().chain(&table.sources) {
        if !locations.insert(location.trim_end_matches('/')) {
            return Err((
                "sources",
                format!("table `{}` names the source {location} twice: its rows would be read twice", table.name),
            ));
        }
    }
    for (key, value) in [
        ("batch_size", table.batch_size.map(|n| n as u64)),
        ("memory_budget_rows", table.memory_budget_rows.map(|n| n as u64)),
        ("rows_per_file", table.rows_per_file),
    ] {
        if value == Some(0) {
            return Err((key, format!("`{key}` must be at least 1 (table `{}`)", table.name)));
        }
    }
    for (key, value) in [("lookback", &table.lookback), ("settle", &table.settle), ("hold_on_gap", &table.hold_on_gap)]
    {
        if let Some(value) = value {
            parse_duration(value).map_err(|e| (key, format!("`{key}`: {e}")))?;
        }
    }
    if let Some(value) = &table.tombstone_retention {
        if value != "forever" {
            parse_duration(value).map_err(|e| ("tombstone_retention", format!("`tombstone_retention`: {e}")))?;
        }
    }
    // The fuzz target compiles this file alone: the loaders' value checks are not there.
    #[cfg(not(fuzzing))]
    crate::pipeline::check_values(table)?;
    Ok(())
}

/// The option keys a table sets (beyond the ones every table has).
fn present_keys(table: &TableConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut mark = |set: bool, key: &'static str| {
        if set {
            keys.push(key);
        }
    };
    mark(table.watermark_path.is_some(), "watermark_path");
    mark(table.initial_watermark.is_some(), "initial_watermark");
    mark(table.mode.is_some(), "mode");
    mark(table.end.is_some(), "end");
    mark(table.late_files.is_some(), "late_files");
    mark(table.rewritten_files.is_some(), "rewritten_files");
    mark(table.null_cursors.is_some(), "null_cursors");
    mark(table.max_rows.is_some(), "max_rows");
    mark(table.batch_size.is_some(), "batch_size");
    mark(table.memory_budget_rows.is_some(), "memory_budget_rows");
    mark(table.schema_evolution.is_some(), "schema_evolution");
    mark(table.codec.is_some(), "codec");
    mark(table.rows_per_file.is_some(), "rows_per_file");
    mark(!table.partition_by.is_empty(), "partition_by");
    mark(table.naive_timezone.is_some(), "naive_timezone");
    mark(table.cursor.is_some(), "cursor");
    mark(table.lookback.is_some(), "lookback");
    mark(table.settle.is_some(), "settle");
    mark(table.start.is_some(), "start");
    mark(table.seed_timezone.is_some(), "seed_timezone");
    mark(table.replace.is_some(), "replace");
    mark(table.row_hash_identity.is_some(), "row_hash_identity");
    mark(table.column.is_some(), "column");
    mark(table.hold_on_gap.is_some(), "hold_on_gap");
    mark(table.op_column.is_some(), "op_column");
    mark(table.sequence.is_some(), "sequence");
    mark(table.insert.is_some(), "insert");
    mark(table.update.is_some(), "update");
    mark(table.delete.is_some(), "delete");
    mark(table.truncate.is_some(), "truncate");
    mark(table.case_insensitive.is_some(), "case_insensitive");
    mark(table.tie.is_some(), "tie");
    mark(table.keep_sequence.is_some(), "keep_sequence");
    mark(table.tombstone_retention.is_some(), "tombstone_retention");
    mark(table.previous.is_some(), "previous");
    mark(table.seed_snapshot.is_some(), "seed_snapshot");
    mark(!table.ignore_columns.is_empty(), "ignore_columns");
    mark(!table.round.is_empty(), "round");
    mark(!table.truncate_timestamps.is_empty(), "truncate_timestamps");
    mark(!table.tolerance.is_empty(), "tolerance");
    mark(table.changed_columns.is_some(), "changed_columns");
    mark(table.output.is_some(), "output");
    mark(table.keep_index.is_some(), "keep_index");
    mark(table.baseline.is_some(), "baseline");
    mark(table.allow_null_keys.is_some(), "allow_null_keys");
    mark(table.allow_empty_snapshot.is_some(), "allow_empty_snapshot");
    mark(table.format.is_some(), "format");
    mark(table.debezium_sequence.is_some(), "debezium_sequence");
    mark(!table.column_types.is_empty(), "column_types");
    mark(table.history.is_some(), "history");
    keys
}

/// `30s`, `15m`, `2h`, `7d` (and combinations: `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{text}` is not a duration like 30s, 15m, 2h or 7d")),
        };
        let value: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30s, 15m, 2h or 7d"))?;
        total = value
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(format!("`{text}` is not a duration like 30s, 15m, 2h or 7d (a unit is needed)"));
    }
    Ok(Duration::from_secs(total))
}

/// The value of `initial_watermark` / `end` as text (numbers and strings both allowed).
pub fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<LoadedPipeline, ConfigError> {
        parse(text, "p.toml", Path::new("p.toml"))
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let unknown = parse_text(
            "[[tables]]\nname = \"a\"\npattern = \"cdc\"\nsource = \"s\"\ntarget = \"t\"\nlookbak = \"1h\"\n",
        )
        .unwrap_err();
        assert_eq!(unknown.line, 6, "{unknown}");
        assert!(unknown.message.contains("lookbak"), "{unknown}");
        let wrong = parse_text(
            "[[tables]]\nname = \"a\"\npattern = \"cdc\"\nsource = \"s\"\ntarget = \"t\"\nlookback = \"1h\"\n",
        )
        .unwrap_err();
        assert_eq!((wrong.line, wrong.message.contains("not an option of a cdc table")), (6, true), "{wrong}");
        let missing = parse_text("[[tables]]\nname = \"a\"\npattern = \"diff\"\nsource = \"s\"\n").unwrap_err();
        assert!(missing.message.contains("target"), "{missing}");
        let typed = parse_text(
            "[[tables]]\nname = \"a\"\npattern = \"diff\"\nsource = \"s\"\ntarget = \"t\"\nbaseline = \"yes\"\n",
        )
        .unwrap_err();
        assert_eq!(typed.line, 6, "{typed}");
        let duration = parse_text("[[tables]]\nname = \"a\"\npattern = \"timestamp\"\nsource = \"s\"\ntarget = \"t\"\n\nlookback = \"ten minutes\"\n").unwrap_err();
        assert_eq!(duration.line, 7, "{duration}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("10").is_err());
        // Caught by the `pipeline_toml` fuzz target's duration check (its corpus keeps the input):
        // this wrapped to 13897502818169695872 s (a panic in debug builds).
        assert!(parse_duration("999999999999999999d").unwrap_err().contains("too long"));
        assert!(parse_duration("213503982334602d").unwrap_err().contains("too long"));
        assert_eq!(parse_duration("213503982334601d").unwrap(), Duration::from_secs(213_503_982_334_601 * 86_400));
        assert_eq!(parse_duration("18446744073709551615s").unwrap(), Duration::from_secs(u64::MAX));
        assert!(parse_duration("18446744073709551615s1s").unwrap_err().contains("too long"));
    }
}
