//! The JavaScript API: `diff`, `snapshotIndex`, `diffAgainstIndex`, `inspect` and `version`.
//!
//! Bytes in are `Uint8Array`s (copied once into the module's memory); bytes out are new
//! `Uint8Array`s of Arrow IPC, readable with `tableFromIPC` of the `apache-arrow` package.
//! Options are plain objects (see the TypeScript types); an unknown option is an error. Every
//! error is a JavaScript `Error` carrying the native message.

// wasm-bindgen hands JavaScript values over by value; the exports borrow what they can.
#![allow(clippy::needless_pass_by_value)]

use js_sys::{Function, Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::options::{DiffOptions, IndexOptions};
use crate::run::{DiffOutput, Progress, SchemaChange};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** How snapshots are compared. */
export interface CompareOptions {
  /** The key column(s). Required, except against an index (which knows its key). */
  key?: string[];
  /** Columns not compared (still carried in the change set). */
  ignore?: string[];
  /** Float columns rounded to this many decimals before hashing. */
  round?: Record<string, number>;
  /** Timestamp columns truncated to this unit before hashing. */
  truncate?: Record<string, "s" | "ms" | "us" | "ns">;
  /** Keep per-column hashes so updates name their changed columns (default true). */
  changedColumns?: boolean;
  /** Treat a null key as a value instead of an error. */
  allowNullKeys?: boolean;
  /** The zone of naive timestamps, e.g. "UTC" or "Europe/Berlin". */
  naiveZone?: string;
  /** CSV column types by name, as Arrow type names ("Int64", "Float64", "Date32", ...). */
  csvSchema?: Record<string, string>;
  /** Rows per decoded batch (default 8192). */
  batchSize?: number;
}

/** Options of `diff` and `diffAgainstIndex`. */
export interface DiffOptions extends CompareOptions {
  /** Float columns equal within |a - b| <= absolute + relative * |b| (`diff` only). */
  tolerance?: Record<string, { absolute?: number; relative?: number }>;
  /** One feed with `_change_type` ("feed", default) or three tables ("split"). */
  output?: "feed" | "split";
  /** Arrow IPC stream (default) or file format. */
  ipc?: "stream" | "file";
  /** Return the current snapshot's index (default: false for diff, true against an index). */
  index?: boolean;
  /** Return the first this-many changes as display strings in `preview`. */
  preview?: number;
}

export interface DiffCounts {
  rowsBefore: number;
  rowsAfter: number;
  inserted: number;
  updated: number;
  deleted: number;
  unchanged: number;
}

export interface SchemaChange {
  column: string;
  change: "added" | "removed" | "type_changed";
  before?: string;
  after?: string;
}

export type SnapshotFormat = "parquet" | "arrow-file" | "arrow-stream" | "csv";

export interface DiffResult {
  counts: DiffCounts;
  /** Per column, how many updates changed it. */
  changedColumns: Record<string, number>;
  schemaChanges: SchemaChange[];
  formats: { previous?: SnapshotFormat; current: SnapshotFormat };
  /** The change feed (output "feed"): the rows, `_changed_columns`, `_change_type`. */
  changes?: Uint8Array;
  /** output "split": the three tables. */
  inserts?: Uint8Array;
  updates?: Uint8Array;
  deletes?: Uint8Array;
  /** The current snapshot's index, when asked for. */
  index?: Uint8Array;
  /** With `preview: n`: the first n changes, values as display strings, lists as arrays. */
  preview?: Record<string, string | string[] | null>[];
  /** The preview's columns in table order. */
  previewColumns?: string[];
}

export interface Progress {
  stage: "read previous" | "read current" | "read snapshot" | "diff" | "write";
  done: number;
  /** 0 when unknown. */
  total: number;
}

export type ProgressCallback = (progress: Progress) => void;

export interface Inspection {
  format: SnapshotFormat;
  /** Known from Parquet metadata and Arrow; null for CSV. */
  rows: number | null;
  columns: { name: string; type: string; nullable: boolean }[];
}
"#;

/// The library and hash-spec versions.
#[wasm_bindgen(js_name = version)]
pub fn version() -> String {
    format!("highwater-wasm {} (row-hash spec v{})", env!("CARGO_PKG_VERSION"), highwater_core::hash::HASH_SPEC_VERSION)
}

/// Diffs two snapshots (Parquet, Arrow IPC or CSV bytes) by key.
#[wasm_bindgen(js_name = diff, unchecked_return_type = "DiffResult")]
pub fn diff(
    previous: Vec<u8>,
    current: Vec<u8>,
    #[wasm_bindgen(unchecked_param_type = "DiffOptions")] options: &JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "ProgressCallback")] progress: Option<Function>,
) -> Result<JsValue, JsError> {
    let options = DiffOptions::from_json(&stringify(options)?)?;
    let out = crate::run::diff(previous, current, &options, &mut reporter(progress.as_ref()))?;
    result(&out)
}

/// The snapshot index of a snapshot: the bytes native `highwater-diff` stores.
#[wasm_bindgen(js_name = snapshotIndex)]
pub fn snapshot_index(
    bytes: Vec<u8>,
    #[wasm_bindgen(unchecked_param_type = "CompareOptions")] options: &JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "ProgressCallback")] progress: Option<Function>,
) -> Result<Vec<u8>, JsError> {
    let options = IndexOptions::from_json(&stringify(options)?)?;
    Ok(crate::run::snapshot_index(bytes, &options, &mut reporter(progress.as_ref()))?)
}

/// Diffs a snapshot against the index of the previous one.
#[wasm_bindgen(js_name = diffAgainstIndex, unchecked_return_type = "DiffResult")]
pub fn diff_against_index(
    index: &[u8],
    current: Vec<u8>,
    #[wasm_bindgen(unchecked_optional_param_type = "DiffOptions")] options: &JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "ProgressCallback")] progress: Option<Function>,
) -> Result<JsValue, JsError> {
    let json = if options.is_undefined() || options.is_null() { "{}".to_owned() } else { stringify(options)? };
    let options = DiffOptions::from_json(&json)?;
    let out = crate::run::diff_against_index(index, current, &options, &mut reporter(progress.as_ref()))?;
    result(&out)
}

/// An Arrow IPC table (a change set) as CSV bytes with a header line.
#[wasm_bindgen(js_name = toCsv)]
pub fn to_csv(ipc: Vec<u8>) -> Result<Vec<u8>, JsError> {
    Ok(crate::export::ipc_to_csv(ipc)?)
}

/// The format, row count (when known) and columns of a snapshot, without diffing it.
#[wasm_bindgen(js_name = inspect, unchecked_return_type = "Inspection")]
pub fn inspect(bytes: Vec<u8>) -> Result<JsValue, JsError> {
    let inspection = crate::input::inspect(bytes.into())?;
    parse(&serde_json::to_string(&inspection)?)
}

fn stringify(options: &JsValue) -> Result<String, JsError> {
    if options.is_undefined() || options.is_null() {
        return Err(JsError::new("options: required, e.g. { key: [\"id\"] }"));
    }
    let json = js_sys::JSON::stringify(options).map_err(|_| JsError::new("options: not serialisable as JSON"))?;
    Ok(String::from(json))
}

fn parse(json: &str) -> Result<JsValue, JsError> {
    js_sys::JSON::parse(json).map_err(|_| JsError::new("internal: a result did not parse as JSON"))
}

/// A progress reporter calling `callback` (errors it throws are ignored: progress is advisory).
fn reporter(callback: Option<&Function>) -> impl FnMut(&Progress) + '_ {
    move |progress: &Progress| {
        if let Some(callback) = callback {
            if let Ok(json) = serde_json::to_string(progress) {
                if let Ok(value) = js_sys::JSON::parse(&json) {
                    let _ = callback.call1(&JsValue::NULL, &value);
                }
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    counts: Counts,
    changed_columns: &'a std::collections::BTreeMap<String, u64>,
    schema_changes: &'a [SchemaChange],
    formats: Formats,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    preview: &'a [serde_json::Value],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    preview_columns: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    rows_before: u64,
    rows_after: u64,
    inserted: u64,
    updated: u64,
    deleted: u64,
    unchanged: u64,
}

#[derive(Serialize)]
struct Formats {
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<crate::Format>,
    current: crate::Format,
}

fn result(out: &DiffOutput) -> Result<JsValue, JsError> {
    let c = out.counts;
    let summary = Summary {
        counts: Counts {
            rows_before: c.rows_before,
            rows_after: c.rows_after,
            inserted: c.inserted,
            updated: c.updated,
            deleted: c.deleted,
            unchanged: c.unchanged,
        },
        changed_columns: &out.changed_columns,
        schema_changes: &out.schema_changes,
        formats: Formats { previous: out.formats.0, current: out.formats.1 },
        preview: &out.preview,
        preview_columns: &out.preview_columns,
    };
    let object: Object = parse(&serde_json::to_string(&summary)?)?.unchecked_into();
    let set = |name: &str, bytes: &[u8]| {
        Reflect::set(&object, &JsValue::from_str(name), &Uint8Array::from(bytes))
            .map_err(|_| JsError::new("internal: could not set a result field"))
    };
    for (name, bytes) in &out.tables {
        set(name, bytes)?;
    }
    if let Some(index) = &out.index {
        set("index", index)?;
    }
    Ok(object.into())
}
