//! # highwater-diff
//!
//! Snapshot diff: compare today's full snapshot of a keyed table with the last one by stable
//! row hashes (row-hash spec v1) and emit inserts, updates and deletes by primary key —
//! composite keys, null-safe.
//!
//! ```text
//! mode (a): older snapshot ─► entries in memory ┐
//! mode (b): stored snapshot index ──────────────┴─► new snapshot streamed, classified by key
//!            ─► inserts / updates (full new rows) / deletes (keys) ─► commit with the new index
//! ```
//!
//! ## Guarantees
//! - **Exact**: a change is a key whose row hash changed — a null turning into a value (or
//!   back), a value moving between two columns of one type, `-0.0` vs `0.0` not; column order
//!   and encodings (`Dictionary`, `LargeUtf8`) do not count.
//! - **Keys are unique**: a key twice in a snapshot is an error naming its values and files;
//!   a null key is an error unless allowed.
//! - **Comparable**: the index records its compared columns, quantisation and hash spec; a
//!   later run never compares under other rules, and a new column is a schema change in the
//!   report, not an update of every row.
//! - **Atomic**: the change set, the new index and the snapshot's listing commit together.
//!
//! See `docs/diff.md`.

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

mod bucketed;
mod error;
mod loader;
mod old;
mod output;
mod run;
mod seed;

pub use error::{Error, Result};
pub use loader::{DiffLoader, Output, Tolerance};
pub use output::CHANGED_COLUMNS_COLUMN;
pub use run::INDEX_STATE;
pub use seed::{DetectedChanges, detect_changes};
