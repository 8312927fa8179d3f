//! # highwater-core
//!
//! The sans-I/O heart of [highwater](https://github.com/highwater-rs/highwater): the primitives
//! every incremental-loading pattern shares, with no engine, no runtime and no storage
//! dependency. It builds for `wasm32-unknown-unknown`, so the browser build of the snapshot diff
//! and the native loaders hash, compare and report with the very same code.
//!
//! | module | what it holds |
//! |---|---|
//! | [`hash`] | row-hash spec v1: stable 128-bit row hashes, column-wise over a `RecordBatch` |
//! | [`key`] | composite primary keys → 128-bit fingerprints, null-key policy, buckets |
//! | [`watermark`] | watermark values and kinds, total order, the seed's string form, windows, lookback |
//! | [`interval`] | sets of loaded ranges (backfill refusal, sequence gaps) |
//! | [`cdc`] | the pure reduction of change events: latest per key, replay-safe, tombstones, truncates |
//! | [`scd2`] | SCD type 2 history of a key as a pure function of its events: late events spliced in |
//! | [`diff`] | snapshot diff by key fingerprint and row hash; the snapshot index format |
//! | [`change`] | `ChangeKind`, `ChangeSet` and the change-feed encoding |
//! | [`report`] | `LoadReport`, shared by every pattern, the CLI and wasm |
//! | [`zone`] | declared zones for naive timestamps |
//!
//! ## Example: how many rows changed between two snapshots
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use highwater_core::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
//! use highwater_core::hash::{HashOptions, RowHasher};
//! use highwater_core::key::{KeyHasher, KeyOptions};
//!
//! let snapshot = |names: Vec<Option<&str>>, amounts: Vec<f64>| {
//!     RecordBatch::try_from_iter([
//!         ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
//!         ("name", Arc::new(StringArray::from(names)) as _),
//!         ("amount", Arc::new(Float64Array::from(amounts)) as _),
//!     ])
//! };
//! let before = snapshot(vec![Some("ada"), Some("alan"), None], vec![1.0, 2.0, 3.0])?;
//! let after = snapshot(vec![Some("ada"), None, None], vec![1.0, 2.0, -0.0 + 3.0])?;
//!
//! let key = KeyHasher::new(["id"], &KeyOptions::default())?;
//! let values = RowHasher::for_schema(&before.schema(), &["id"], &HashOptions::default())?;
//! let old: HashMap<u128, u128> = key.fingerprints(&before)?.into_iter()
//!     .zip(values.hash_batch(&before)?.into_rows()).collect();
//! let changed = key.fingerprints(&after)?.into_iter()
//!     .zip(values.hash_batch(&after)?.into_rows())
//!     .filter(|(k, h)| old.get(k) != Some(h))
//!     .count();
//! assert_eq!(changed, 1); // only id 2: its name became null
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//! - No I/O, no async runtime, no panics on input data: every failure is a typed [`Error`]
//!   naming the column, row or value.
//! - Everything this crate persists (row hashes, fingerprints, watermarks, reports) has an
//!   encoding of its own, written down and pinned by golden vectors; nothing depends on `ahash`,
//!   Rust's `Hash`, or arrow's internal formats.
//!
//! ## Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `chrono-tz` | yes | IANA zone names (`Europe/Berlin`) for naive timestamps; without it, UTC and fixed offsets |
//!
//! highwater uses arrow **59**; [`arrow`] re-exports the arrow crates this crate's API takes, so
//! you can match versions without naming them.

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

pub mod cdc;
pub mod change;
pub mod debezium;
pub mod diff;
mod error;
pub mod hash;
pub mod interval;
pub mod key;
pub mod report;
pub mod scd2;
pub mod watermark;
pub mod zone;

pub use error::{Error, Result};

/// The arrow crates of highwater's API (arrow 59).
pub mod arrow {
    pub use arrow_array as array;
    pub use arrow_buffer as buffer;
    pub use arrow_cast as cast;
    pub use arrow_data as data;
    pub use arrow_schema as schema;
    pub use arrow_select as select;
}
