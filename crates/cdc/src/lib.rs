//! # highwater-cdc
//!
//! Change data capture: apply INSERT/UPDATE/DELETE events — an operation column and a sequence
//! per event — to a keyed target table, in sequence order, exactly once.
//!
//! ```text
//! new event files (ledger) ─► decode ─► by key bucket: key state ─► reduce (latest per key)
//!   ─► merge writer (only files that may hold the keys) ─► commit data + key state + ledger
//! ```
//!
//! ## Guarantees
//! - **Latest per key wins** by sequence (one column, or several compared lexicographically),
//!   whatever order events arrive in — across files, runs and replays. The per-key state
//!   (last applied sequence and after-image hash; tombstones of deleted keys; a table-level
//!   truncate marker) decides what applies; there is no global skip below a watermark.
//! - **Replay-safe**: an exact duplicate (key, sequence, operation, after-image) is ignored; two
//!   *different* events of one key at one sequence are an error naming both, unless the tie
//!   policy lets a delete win.
//! - **No resurrection**: a late event older than a delete is ignored while the key's tombstone
//!   lives (`tombstone_retention`, 7 days by default); purged tombstones are reported.
//! - **Bad input commits nothing**: an unknown operation (with file and row), a missing key or
//!   sequence column, a null key (except in a truncate) or a null sequence fails the run.
//! - **Exactly once**: a crash, a retry or a concurrent run never applies an event twice or
//!   loses one; data, key state, ledger and watermark commit together.
//! - **Bounded memory**: events past `memory_budget_rows` are spilled by key bucket and applied
//!   bucket by bucket; the merge writer spills its changes the same way.
//!
//!
//! ## Sources and targets
//! - Flat events (the seed's format: an operation column and a sequence), or Debezium change
//!   events ([`CdcLoader::debezium`]): JSON lines with or without the schema wrapper, or Parquet
//!   files of envelope columns; the source position is the sequence.
//! - SCD type 1 (the latest row per key, default) or SCD type 2 ([`CdcLoader::scd2`]): every
//!   version with `valid_from`/`valid_to`/`is_current`, tracked columns, deletes that close or
//!   mark, and late events spliced into the history at their place.
//!
//! See `docs/cdc.md` for every option and how the `PySpark` seed's calls map here.

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

mod bucket;
mod debezium;
mod error;
mod events;
mod history;
mod input;
mod loader;
mod run;
mod seed;
mod state;

pub use error::{Error, Result};
pub use highwater_core::cdc::{EventOp, TiePolicy};
pub use highwater_core::debezium::{DebeziumOptions, SequenceSource};
pub use highwater_core::scd2::HardDeletes;
pub use highwater_store::incremental::RewrittenFiles;
pub use history::{Scd2, ValidTime};
pub use loader::CdcLoader;
pub use seed::process_cdc;
