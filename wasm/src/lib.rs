//! highwater's snapshot diff for browsers and edge runtimes.
//!
//! Two snapshots of a keyed table as bytes — Parquet, Arrow IPC (file or stream) or CSV — in;
//! the inserts, updates and deletes by key as Arrow IPC out, with counts and the columns each
//! update changed. Or a **snapshot index** (key fingerprints and row hashes; the exact bytes the
//! native `highwater-diff` stores) to diff tomorrow's file against without today's.
//!
//! The JavaScript API (`diff`, `snapshotIndex`, `diffAgainstIndex`, `inspect`) lives in
//! [`wasm`]; this crate is also a plain Rust library with the same functions ([`diff`],
//! [`snapshot_index`], [`diff_against_index`]) so the two can be tested against each other.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
//! use highwater_wasm::{DiffOptions, diff};
//!
//! // Two snapshots as Arrow IPC stream bytes (Parquet and, with `csv`, CSV work alike).
//! fn snapshot(ids: &[i64], names: &[&str]) -> Vec<u8> {
//!     let batch = RecordBatch::try_from_iter([
//!         ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
//!         ("name", Arc::new(StringArray::from(names.to_vec())) as ArrayRef),
//!     ]).unwrap();
//!     let mut bytes = Vec::new();
//!     let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
//!     writer.write(&batch).unwrap();
//!     writer.finish().unwrap();
//!     drop(writer);
//!     bytes
//! }
//! let previous = snapshot(&[1, 2, 3], &["ada", "bob", "cy"]);
//! let current = snapshot(&[1, 2, 4], &["ada", "bo", "dan"]);
//! let options = DiffOptions::from_json(r#"{"key": ["id"]}"#)?;
//! let result = diff(previous, current, &options, &mut |_| {})?;
//! assert_eq!((result.counts.inserted, result.counts.updated, result.counts.deleted), (1, 1, 1));
//! assert_eq!(result.changed_columns["name"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limits
//! Inputs are held in memory: the bytes of both snapshots, their decoded Arrow batches (decoded
//! batch by batch from the bytes, without a second copy of the file) and the change set. A
//! wasm32 instance addresses at most 4 GiB, so keep the two inputs under about 1 GiB together;
//! native `highwater-diff` has no such limit.
//!
//! # Panics
//! highwater's own code returns errors for bad input. A panic inside a dependency's decoder on
//! a corrupt file aborts the instance in the size-tuned release build (`panic = "abort"`): the
//! call throws a `RuntimeError: unreachable` and the module must be instantiated again. Native
//! highwater catches such panics at the file boundary.

#![deny(missing_docs)]

mod error;
mod export;
mod input;
mod options;
mod run;
pub mod wasm;

pub use error::{Error, Result};
pub use export::{ipc_to_csv, preview};
pub use input::{ColumnInfo, Format, Inspection, Snapshot, decode, inspect};
pub use options::{DiffOptions, IndexOptions, IpcFormat, OutputOptions, OutputShape};
pub use run::{DiffOutput, Progress, diff, diff_against_index, snapshot_index};
