//! The file ledger: every source file a run saw, committed with the run.
//!
//! Comparing a new listing with the previous run's ledger tells each file apart: **new** (not
//! seen before), **unchanged**, **rewritten** in place (same path, other size, etag or version),
//! or **gone**. The patterns build their no-silent-skip rules on it (late files, rewritten
//! files, CDC's new-files-only). The ledger is a state file: an Arrow IPC stream of
//! `(key, size, etag, version)` sorted by key.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;

use super::{Listing, SourceFile};
use crate::error::{Error, Result};

/// What the ledger knows of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Size in bytes.
    pub size: u64,
    /// The store's etag.
    pub etag: Option<String>,
    /// The store's object version.
    pub version: Option<String>,
}

/// Files seen by a run, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: BTreeMap<String, LedgerEntry>,
}

/// A listing classified against the previous ledger.
#[derive(Clone, Debug, Default)]
pub struct FileClasses {
    /// Not in the previous ledger.
    pub new: Vec<Arc<SourceFile>>,
    /// In it, with the same size, etag and version.
    pub unchanged: Vec<Arc<SourceFile>>,
    /// In it under the same key, but with another size, etag or version.
    pub rewritten: Vec<Arc<SourceFile>>,
    /// In it, but not listed any more.
    pub gone: Vec<String>,
}

impl Ledger {
    /// The ledger of a listing.
    pub fn of(listing: &Listing) -> Self {
        Ledger {
            entries: listing
                .files
                .iter()
                .map(|f| {
                    (f.key.clone(), LedgerEntry { size: f.size, etag: f.etag.clone(), version: f.version.clone() })
                })
                .collect(),
        }
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no file.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of a key.
    pub fn get(&self, key: &str) -> Option<&LedgerEntry> {
        self.entries.get(key)
    }

    /// Whether this ledger records a file `previous` did not, or a file differently: what a
    /// run must commit. Files only gone from the listing are not worth a commit (a source
    /// emptied, or a listing that misses a file, changes nothing loaded).
    pub fn adds_to(&self, previous: Option<&Ledger>) -> bool {
        match previous {
            None => true,
            Some(previous) => self.entries.iter().any(|(key, entry)| previous.entries.get(key) != Some(entry)),
        }
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, key: String, entry: LedgerEntry) {
        self.entries.insert(key, entry);
    }

    /// Classifies `listing` against this (the previous run's) ledger.
    pub fn classify(&self, listing: &Listing) -> FileClasses {
        let mut classes = FileClasses::default();
        for file in &listing.files {
            match self.entries.get(&file.key) {
                None => classes.new.push(Arc::clone(file)),
                Some(entry) if same(entry, file) => classes.unchanged.push(Arc::clone(file)),
                Some(_) => classes.rewritten.push(Arc::clone(file)),
            }
        }
        let listed: std::collections::BTreeSet<&str> = listing.files.iter().map(|f| f.key.as_str()).collect();
        classes.gone = self.entries.keys().filter(|k| !listed.contains(k.as_str())).cloned().collect();
        classes
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("size", DataType::UInt64, false),
            Field::new("etag", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, true),
        ]))
    }

    /// The ledger as a state file (Arrow IPC stream, sorted by key).
    pub fn to_bytes(&self) -> Result<Bytes> {
        let keys: StringArray = self.entries.keys().map(Some).collect();
        let sizes: UInt64Array = self.entries.values().map(|e| Some(e.size)).collect();
        let etags: StringArray = self.entries.values().map(|e| e.etag.as_deref()).collect();
        let versions: StringArray = self.entries.values().map(|e| e.version.as_deref()).collect();
        let columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(sizes), Arc::new(etags), Arc::new(versions)];
        let batch = RecordBatch::try_new(Self::schema(), columns)?;
        let mut bytes = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &Self::schema())?;
            writer.write(&batch)?;
            writer.finish()?;
        }
        Ok(Bytes::from(bytes))
    }

    /// Reads a ledger state file; `path` names it in errors.
    pub fn from_bytes(bytes: &Bytes, path: &str) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt { kind: "ledger", path: path.to_owned(), reason };
        let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes.clone()), None)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut entries = BTreeMap::new();
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(e.to_string()))?;
            if batch.num_columns() != 4 {
                return Err(corrupt(format!("{} columns, expected 4", batch.num_columns())));
            }
            let keys = batch.column(0).as_string_opt::<i32>().ok_or_else(|| corrupt("key is not utf8".into()))?;
            let sizes =
                batch.column(1).as_primitive_opt::<UInt64Type>().ok_or_else(|| corrupt("size is not uint64".into()))?;
            let etags = batch.column(2).as_string_opt::<i32>().ok_or_else(|| corrupt("etag is not utf8".into()))?;
            let versions =
                batch.column(3).as_string_opt::<i32>().ok_or_else(|| corrupt("version is not utf8".into()))?;
            for row in 0..batch.num_rows() {
                let optional = |array: &StringArray| (!array.is_null(row)).then(|| array.value(row).to_owned());
                entries.insert(
                    keys.value(row).to_owned(),
                    LedgerEntry { size: sizes.value(row), etag: optional(etags), version: optional(versions) },
                );
            }
        }
        Ok(Ledger { entries })
    }
}

/// The same file: equal size, and equal etag and version where both sides have them.
fn same(entry: &LedgerEntry, file: &SourceFile) -> bool {
    let equal_if_known = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    entry.size == file.size && equal_if_known(&entry.etag, &file.etag) && equal_if_known(&entry.version, &file.version)
}
