//! The commit: one JSON object per table version, the contract between runs.
//!
//! A commit records everything a later run (or a reader of an older version) needs: what run
//! made it and when, the table schema, the watermark before and after, the data files added and
//! removed, the state files the pattern keeps (with size and checksum), and the run's report.
//! Anything proportional to rows or files (a long file list, the source ledger, key state) lives
//! in a state file, so a commit stays small. Every field has an encoding of our own: the schema
//! is an Arrow IPC schema message (a cross-language standard), not a serde dump of arrow types.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use highwater_core::report::{LoadReport, Pattern};
use highwater_core::watermark::WatermarkValue;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// What kind of change a commit made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// An empty table came into being.
    Create,
    /// An existing Parquet folder became the table.
    Adopt,
    /// A pattern's run loaded data.
    Load,
    /// Small files were rewritten into larger ones (no data change).
    Compact,
    /// The table went back to an earlier version's data and watermark.
    Restore,
    /// The watermark was set by hand (`highwater watermark import`); no data changed.
    Watermark,
}

/// How a commit's data becomes visible to plain folder readers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// Data is staged under `_highwater/staging/` and moved to its final name after the commit
    /// (a rename on a local disk; copy + delete on object stores). Replaced files move under
    /// `_highwater/replaced/`. Plain readers of the folder only ever see committed data.
    #[default]
    Rename,
    /// Data is written at its final name and replaced files stay in place until vacuum: no copy,
    /// for tables read only through the log.
    Direct,
}

/// A data file of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the table root (`year=2024/part-….parquet`).
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Hive partition values, from the path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_values: BTreeMap<String, Option<String>>,
    /// Where publishing moves the file from (relative to the root); `None` when it is already at
    /// its final name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_from: Option<String>,
}

/// A state file a commit refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFileRef {
    /// Path relative to the table root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// `xxh3-128:<hex>` of the file's bytes.
    pub checksum: String,
}

/// The table schema as persisted: an Arrow IPC schema message (base64) plus a readable summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersistedSchema {
    /// The IPC-encoded schema (an Arrow stream holding only the schema message), base64.
    pub ipc: String,
    /// `name: type` of each field, for people reading the log; never read back.
    #[serde(default)]
    pub fields: Vec<String>,
}

impl PersistedSchema {
    /// Encodes a schema.
    pub fn encode(schema: &Schema) -> Result<Self> {
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, schema)?;
            writer.finish()?;
        }
        let fields = schema
            .fields()
            .iter()
            .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "" } else { " not null" }))
            .collect();
        Ok(PersistedSchema { ipc: BASE64.encode(bytes), fields })
    }

    /// Decodes the schema.
    pub fn decode(&self) -> Result<SchemaRef> {
        let bytes = BASE64
            .decode(&self.ipc)
            .map_err(|e| arrow_schema::ArrowError::IpcError(format!("schema is not valid base64: {e}")))?;
        // The push decoder slices each message out of the bytes it has: a length field that lies
        // cannot make it allocate more than the bytes hold (the pull `StreamReader` allocates what
        // a message header claims). arrow-ipc panics on some malformed schemas: that becomes an
        // error too.
        let decode = || {
            let mut decoder = arrow_ipc::reader::StreamDecoder::new();
            let mut rest = highwater_core::arrow::buffer::Buffer::from(bytes);
            while decoder.schema().is_none() && !rest.is_empty() {
                decoder.decode(&mut rest)?;
            }
            decoder.schema().ok_or_else(|| arrow_schema::ArrowError::IpcError("no schema message".into()))
        };
        let schema = std::panic::catch_unwind(decode).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned());
            Err(arrow_schema::ArrowError::IpcError(format!(
                "the Arrow IPC decoder panicked: {}",
                message.unwrap_or_default()
            )))
        })?;
        Ok(schema)
    }
}

/// One version of the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The format of this object; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The table version this commit makes.
    pub version: u64,
    /// The run that made it.
    pub run_id: String,
    /// What it did.
    pub operation: Operation,
    /// The loading pattern, for load commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the commit was written.
    pub finished_at: DateTime<Utc>,
    /// How the added files are published.
    #[serde(default)]
    pub publish: PublishMode,
    /// Whether publishing keeps replaced files under `_highwater/replaced/` (else deletes them).
    #[serde(default = "yes")]
    pub retain_replaced: bool,
    /// The table schema at this version.
    pub schema: PersistedSchema,
    /// The watermark the run started from.
    pub watermark_before: Option<WatermarkValue>,
    /// The watermark this version is at.
    pub watermark_after: Option<WatermarkValue>,
    /// Files this version added (empty when spilled).
    #[serde(default)]
    pub added: Vec<DataFile>,
    /// A state file holding `added` when the list is long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_spill: Option<StateFileRef>,
    /// Files this version removed (empty when spilled).
    #[serde(default)]
    pub removed: Vec<DataFile>,
    /// A state file holding `removed` when the list is long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_spill: Option<StateFileRef>,
    /// Every state file of the table at this version, by name (`ledger`, `boundary`, …):
    /// unchanged entries are carried forward from the previous version.
    #[serde(default)]
    pub state: BTreeMap<String, StateFileRef>,
    /// Small pattern properties (JSON) carried with the version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
    /// The version of the row-hash spec any persisted hash follows.
    pub hash_spec_version: u32,
    /// The run's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<LoadReport>,
}

impl Commit {
    /// Parses a commit, checking its format version and that it is the version its name says.
    pub fn from_json(bytes: &[u8], path: &str, expected_version: u64) -> Result<Self> {
        check_format(bytes, "commit", path)?;
        let commit: Commit = serde_json::from_slice(bytes).map_err(|e| corrupt("commit", path, &e))?;
        if commit.version != expected_version {
            return Err(Error::Corrupt {
                kind: "commit",
                path: path.to_owned(),
                reason: format!("it says version {}, its name says {expected_version}", commit.version),
            });
        }
        Ok(commit)
    }

    /// The commit as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

fn yes() -> bool {
    true
}

/// Reads `format_version` before decoding the whole object, so that a newer format is reported
/// as such and not as a decoding error.
pub(crate) fn peek_format_version(bytes: &[u8], kind: &'static str, path: &str) -> Result<u32> {
    #[derive(Deserialize)]
    struct Header {
        format_version: u32,
    }
    let header: Header = serde_json::from_slice(bytes).map_err(|e| corrupt(kind, path, &e))?;
    Ok(header.format_version)
}

pub(crate) fn corrupt(kind: &'static str, path: &str, error: &serde_json::Error) -> Error {
    let reason = if error.is_eof() { format!("truncated ({error})") } else { error.to_string() };
    Error::Corrupt { kind, path: path.to_owned(), reason }
}

/// The state of the table at one version, rebuilt from the log.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The version.
    pub version: u64,
    /// The schema.
    pub schema: SchemaRef,
    /// The watermark.
    pub watermark: Option<WatermarkValue>,
    /// The live data files by path.
    pub files: BTreeMap<String, DataFile>,
    /// The state files by name.
    pub state: BTreeMap<String, StateFileRef>,
    /// Pattern properties.
    pub properties: BTreeMap<String, serde_json::Value>,
    /// The commit that made this version (without its file lists).
    pub last_commit: CommitInfo,
}

impl Snapshot {
    /// Total rows of the live files.
    pub fn rows(&self) -> u64 {
        self.files.values().map(|f| f.rows).sum()
    }
}

/// The summary of a commit that `history` lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// The version.
    pub version: u64,
    /// The run.
    pub run_id: String,
    /// What it did.
    pub operation: Operation,
    /// The pattern, for loads.
    pub pattern: Option<Pattern>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it committed.
    pub finished_at: DateTime<Utc>,
    /// The watermark before.
    pub watermark_before: Option<WatermarkValue>,
    /// The watermark after.
    pub watermark_after: Option<WatermarkValue>,
    /// Files added.
    pub files_added: u64,
    /// Files removed.
    pub files_removed: u64,
    /// Rows in the added files.
    pub rows_added: u64,
    /// Rows in the removed files.
    pub rows_removed: u64,
}

impl CommitInfo {
    /// The summary of a commit whose file lists are resolved.
    pub fn of(commit: &Commit, added: &[DataFile], removed: &[DataFile]) -> Self {
        CommitInfo {
            version: commit.version,
            run_id: commit.run_id.clone(),
            operation: commit.operation,
            pattern: commit.pattern,
            started_at: commit.started_at,
            finished_at: commit.finished_at,
            watermark_before: commit.watermark_before.clone(),
            watermark_after: commit.watermark_after.clone(),
            files_added: added.len() as u64,
            files_removed: removed.len() as u64,
            rows_added: added.iter().map(|f| f.rows).sum(),
            rows_removed: removed.iter().map(|f| f.rows).sum(),
        }
    }
}

/// A checkpoint: the whole table state at one version, so readers need not replay the log from
/// the start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format of this object.
    pub format_version: u32,
    /// The version it describes.
    pub version: u64,
    /// The schema.
    pub schema: PersistedSchema,
    /// The watermark.
    pub watermark: Option<WatermarkValue>,
    /// Live files (empty when spilled).
    #[serde(default)]
    pub files: Vec<DataFile>,
    /// A state file listing the live files when there are many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_spill: Option<StateFileRef>,
    /// State files by name.
    #[serde(default)]
    pub state: BTreeMap<String, StateFileRef>,
    /// Pattern properties.
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
    /// The last commit.
    pub last_commit: CommitInfo,
}

impl Checkpoint {
    /// Parses a checkpoint, checking its format version and that it describes the version its
    /// name says.
    pub fn from_json(bytes: &[u8], path: &str, expected_version: u64) -> Result<Self> {
        check_format(bytes, "checkpoint", path)?;
        let checkpoint: Checkpoint = serde_json::from_slice(bytes).map_err(|e| corrupt("checkpoint", path, &e))?;
        if checkpoint.version != expected_version {
            return Err(Error::Corrupt {
                kind: "checkpoint",
                path: path.to_owned(),
                reason: format!("it describes version {}, its name says {expected_version}", checkpoint.version),
            });
        }
        Ok(checkpoint)
    }
}

/// `_last_checkpoint`: a hint to the newest checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LastCheckpoint {
    pub format_version: u32,
    pub version: u64,
}

/// The version `_last_checkpoint` (at `path`) points at, checking its format version. Public
/// for the fuzz targets only.
#[doc(hidden)]
pub fn last_checkpoint_from_json(bytes: &[u8], path: &str) -> Result<u64> {
    check_format(bytes, "checkpoint pointer", path)?;
    let pointer: LastCheckpoint = serde_json::from_slice(bytes).map_err(|e| corrupt("checkpoint pointer", path, &e))?;
    Ok(pointer.version)
}

/// Refuses an object of a newer format than this build reads.
fn check_format(bytes: &[u8], kind: &'static str, path: &str) -> Result<()> {
    let format = peek_format_version(bytes, kind, path)?;
    if format > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat { path: path.to_owned(), found: format, supported: FORMAT_VERSION });
    }
    Ok(())
}

/// Decodes a schema, mapping errors to a corrupt-object error naming `path`.
pub(crate) fn decode_schema(schema: &PersistedSchema, kind: &'static str, path: &str) -> Result<SchemaRef> {
    schema.decode().map_err(|e| Error::Corrupt { kind, path: path.to_owned(), reason: format!("schema: {e}") })
}

/// An empty schema.
pub(crate) fn empty_schema() -> SchemaRef {
    Arc::new(Schema::empty())
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, TimeUnit};

    use super::*;

    #[test]
    fn schema_survives_the_ipc_encoding() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new_list("tags", Field::new("item", DataType::Utf8, true), true),
        ]);
        let persisted = PersistedSchema::encode(&schema).unwrap();
        assert_eq!(persisted.decode().unwrap().as_ref(), &schema);
        assert_eq!(persisted.fields[0], "id: Int64 not null");
    }

    // Found by the `commit_json` fuzz target: a 4 KB commit whose schema message claimed 2 GiB
    // of metadata made the pull reader allocate it; a claimed body could abort the process.
    #[test]
    fn lying_schema_lengths_are_errors_not_allocations() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch};
        let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
        }
        let message = |at: usize| i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        // A stream starting with the batch message, whose body length is made to claim ~8 EiB.
        let batch_at = 8 + message(0);
        let meta = &bytes[batch_at + 8..batch_at + 8 + message(batch_at)];
        let body = arrow_ipc::root_as_message(meta).unwrap().bodyLength();
        let field = batch_at + 8 + meta.windows(8).position(|w| w == body.to_le_bytes()).unwrap();
        let mut lying = bytes.clone();
        lying[field..field + 8].copy_from_slice(&0x7fff_ffff_ffff_0000_i64.to_le_bytes());
        let persisted = PersistedSchema { ipc: BASE64.encode(&lying[batch_at..]), fields: Vec::new() };
        assert!(persisted.decode().is_err());
        // A schema message claiming 2 GiB of metadata.
        let mut lying = bytes.clone();
        lying[4..8].copy_from_slice(&0x7fff_0000_i32.to_le_bytes());
        let persisted = PersistedSchema { ipc: BASE64.encode(&lying), fields: Vec::new() };
        assert!(persisted.decode().is_err());
        let honest = PersistedSchema { ipc: BASE64.encode(&bytes), fields: Vec::new() };
        assert_eq!(honest.decode().unwrap(), batch.schema());
    }

    // arrow-ipc panics on unknown type ids in a schema (`Type <UNKNOWN 59> not supported`).
    #[test]
    fn schema_decoder_panics_are_errors() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let bytes = BASE64.decode(PersistedSchema::encode(&schema).unwrap().ipc).unwrap();
        let mut panicked = 0;
        for at in 8..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] = 59;
            if let Err(error) = (PersistedSchema { ipc: BASE64.encode(&changed), fields: Vec::new() }).decode() {
                panicked += usize::from(error.to_string().contains("decoder panicked"));
            }
        }
        assert!(panicked > 0, "no byte of the schema message is a type id");
    }

    #[test]
    fn newer_formats_and_truncation_are_named() {
        let newer = br#"{"format_version": 9, "version": 1}"#;
        let error = Commit::from_json(newer, "log/1.json", 1).unwrap_err();
        assert!(matches!(error, Error::UnsupportedFormat { found: 9, .. }), "{error}");
        let error = Commit::from_json(br#"{"format_version": 1, "vers"#, "log/1.json", 1).unwrap_err();
        assert!(error.to_string().contains("truncated") && error.to_string().contains("log/1.json"), "{error}");
    }
}
