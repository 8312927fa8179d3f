//! The options of the JavaScript API, as plain objects (camelCase). Unknown fields are errors:
//! a typo must not silently compare the wrong columns.

use std::collections::BTreeMap;

use highwater_core::diff::{DiffSpec, Quantize, Tolerance};
use highwater_core::hash::HashOptions;
use highwater_core::watermark::TimestampUnit;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How a snapshot is compared: shared by [`DiffOptions`] and [`IndexOptions`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IndexOptions {
    /// The key columns (required; composite keys are several).
    pub key: Vec<String>,
    /// Columns not compared (still carried in the change set).
    pub ignore: Vec<String>,
    /// Float columns rounded to this many decimals before hashing.
    pub round: BTreeMap<String, i32>,
    /// Timestamp columns truncated to this unit (`"s"`, `"ms"`, `"us"`, `"ns"`) before hashing.
    pub truncate: BTreeMap<String, TimestampUnit>,
    /// Keep one hash per compared column so updates can name the columns they changed
    /// (default `true`; part of the index, like native `changed_columns`).
    pub changed_columns: Option<bool>,
    /// Treat a null key as a value instead of an error.
    pub allow_null_keys: bool,
    /// The zone of naive (zone-less) timestamps, e.g. `"UTC"` or `"Europe/Berlin"`.
    pub naive_zone: Option<String>,
    /// The types of CSV columns by name, as Arrow type names (`"Int64"`, `"Float64"`, `"Utf8"`,
    /// `"Date32"`, `"Timestamp(Microsecond, Some(\"UTC\"))"`, `"Decimal128(10, 2)"`).
    pub csv_schema: Option<BTreeMap<String, String>>,
    /// Rows per decoded batch (default 8192).
    pub batch_size: Option<usize>,
}

/// The options of a diff: how to compare, and what to return. In JSON one flat object: the
/// fields of [`IndexOptions`] and these.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// How to compare (the key and the compared columns).
    pub compare: IndexOptions,
    /// What to return.
    pub output: OutputOptions,
}

/// What a diff returns, beyond how it compares.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutputOptions {
    /// Float columns compared by value within a tolerance instead of by hash (two snapshots
    /// only: an index keeps no values).
    pub tolerance: BTreeMap<String, Tolerance>,
    /// One change feed with a `_change_type` column (`"feed"`, the default) or three tables
    /// (`"split"`); `output` in JSON.
    #[serde(rename = "output")]
    pub shape: OutputShape,
    /// Arrow IPC stream (the default, what `tableFromIPC` reads) or file format.
    pub ipc: IpcFormat,
    /// Also return the first this-many changes as display strings (for a page's table).
    pub preview: usize,
    /// Also return the current snapshot's index (default `false` for `diff`, `true` for
    /// `diffAgainstIndex`).
    pub index: Option<bool>,
}

/// The shape of a change set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputShape {
    /// One table: the rows plus `_change_type` (and `_changed_columns` when kept).
    #[default]
    Feed,
    /// Three tables: inserts, updates (with `_changed_columns`), deletes (key columns).
    Split,
}

/// The Arrow IPC flavour of the outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpcFormat {
    /// The streaming format.
    #[default]
    Stream,
    /// The file (random access) format.
    File,
}

impl IndexOptions {
    /// Parses options from JSON (what the JavaScript object stringifies to).
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Options(e.to_string()))
    }

    pub(crate) fn check_key(&self) -> Result<()> {
        if self.key.is_empty() {
            return Err(Error::Options("`key` is required: the column(s) identifying a row".into()));
        }
        Ok(())
    }

    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(8192).max(1)
    }

    pub(crate) fn column_hashes(&self) -> bool {
        self.changed_columns.unwrap_or(true)
    }

    /// The spec comparing every column of `schema` but the key, `ignore` and `extra_ignored`.
    pub(crate) fn spec(&self, schema: &arrow_schema::Schema, extra_ignored: &[String]) -> Result<DiffSpec> {
        self.check_key()?;
        let mut ignore: Vec<String> = self.ignore.clone();
        ignore.extend(extra_ignored.iter().cloned());
        ignore.retain(|c| schema.field_with_name(c).is_ok());
        let mut spec = DiffSpec::for_schema(schema, &self.key, &ignore)?;
        spec.quantize = self.quantize();
        spec.column_hashes = self.column_hashes();
        spec.hash = self.hash_options();
        spec.allow_null_keys = self.allow_null_keys;
        Ok(spec)
    }

    pub(crate) fn quantize(&self) -> Quantize {
        Quantize { decimals: self.round.clone(), timestamps: self.truncate.clone() }
    }

    pub(crate) fn hash_options(&self) -> HashOptions {
        HashOptions { naive_timezone: self.naive_zone.clone() }
    }
}

impl DiffOptions {
    /// The fields that say what to return; the others say how to compare.
    const OUTPUT_FIELDS: [&str; 5] = ["tolerance", "output", "ipc", "index", "preview"];

    /// Parses options from JSON (what the JavaScript object stringifies to).
    pub fn from_json(json: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| Error::Options(e.to_string());
        let value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
        let serde_json::Value::Object(mut compare) = value else {
            return Err(Error::Options("expected an object, e.g. {\"key\": [\"id\"]}".into()));
        };
        let mut output = serde_json::Map::new();
        for field in Self::OUTPUT_FIELDS {
            if let Some(value) = compare.remove(field) {
                output.insert(field.to_owned(), value);
            }
        }
        Ok(DiffOptions {
            compare: serde_json::from_value(serde_json::Value::Object(compare)).map_err(bad)?,
            output: serde_json::from_value(serde_json::Value::Object(output)).map_err(bad)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_errors_and_defaults_are_sane() {
        let error = DiffOptions::from_json(r#"{"key": ["id"], "ignroe": ["x"]}"#).unwrap_err();
        assert!(error.to_string().contains("ignroe"), "{error}");
        let options = DiffOptions::from_json(r#"{"key": ["id"], "tolerance": {"p": {"absolute": 0.5}}}"#).unwrap();
        assert_eq!(options.compare.key, ["id"]);
        assert_eq!(options.output.shape, OutputShape::Feed);
        assert_eq!(options.output.ipc, IpcFormat::Stream);
        assert!(options.compare.column_hashes());
        assert!((options.output.tolerance["p"].absolute - 0.5).abs() < f64::EPSILON);
        let error = DiffOptions::from_json("[1]").unwrap_err();
        assert!(error.to_string().contains("expected an object"), "{error}");
        let error = DiffOptions::from_json(r#"{"key": []}"#).unwrap().compare.check_key().unwrap_err();
        assert!(error.to_string().contains("`key` is required"), "{error}");
        let error = DiffOptions::from_json(r#"{"key": ["id"], "output": "three"}"#).unwrap_err();
        assert!(error.to_string().contains("three"), "{error}");
    }
}
