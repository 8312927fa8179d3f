//! # highwater-sequence
//!
//! Sequence-based incremental loading: each run loads the source rows whose monotonic id
//! (`sequence_id`) lies past the table's watermark — the largest id loaded — in sequence order,
//! and commits the new watermark in the same atomic commit as the rows.
//!
//! ```text
//! list once ─► classify files ─► (W, end] pruned by id statistics ─► skip duplicates
//!   ─► hold before the first gap (optional) ─► write in id order ─► commit rows + watermark
//! ```
//!
//! ## Guarantees
//! - **Exactly once**: a crash, a retry or a concurrent run never loses or duplicates a row; the
//!   loaded ids are kept as an interval set, so an id is loaded once even when it arrives again.
//! - **In order**: each data file holds its rows in sequence order, files numbered in order.
//! - **Gaps are reported**, with the first missing ranges; with `hold_on_gap` the run stops
//!   before the first missing id until it has been missing for the timeout, and a late file
//!   that fills a gap is loaded (and reported).
//! - **The watermark is the largest id loaded**, never a guess.
//!
//! See `docs/sequence.md` for every option and how the `PySpark` seed's calls map here.

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

mod error;
mod loader;
mod run;
mod seed;

pub use error::{Error, Result};
pub use highwater_store::incremental::{LateFiles, NullCursors, OutputMode, RewrittenFiles};
pub use loader::SequenceLoader;
pub use seed::load_incremental;
