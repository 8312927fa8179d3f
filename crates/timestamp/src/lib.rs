//! # highwater-timestamp
//!
//! Timestamp-based incremental loading: each run loads the source rows whose cursor
//! (`modified_date`) lies past the table's watermark, and commits the new watermark — the largest
//! cursor it loaded — in the same atomic commit as the rows.
//!
//! ```text
//! list once ─► classify files (new / known / rewritten) ─► window (W, end] ─► prune row groups
//!   ─► dedup rows at W (and in the lookback) ─► append or upsert ─► commit data + watermark + state
//! ```
//!
//! ## Guarantees
//! - **Exactly once**: a crash anywhere, a retry or two runners at once neither lose nor
//!   duplicate a row (the commit is atomic; a loser gets a conflict and leaves nothing visible).
//! - **No row lost at the boundary**: after its own commits a run starts at the watermark
//!   *inclusively*; rows tied with it are recognised by identity (key and cursor, or file and row)
//!   and loaded once. An imported watermark is exclusive, as the seed used `>`.
//! - **No silent skips**: a new file with old rows (a late file) is loaded and reported; a file
//!   rewritten in place is refused unless told otherwise; rows past `end` or `now - settle` wait
//!   for the next run.
//! - **The watermark is the largest cursor loaded**, never `now()`, and never moves back except
//!   by `restore`.
//!
//! ## Example
//!
//! ```no_run
//! # async fn example() -> Result<(), highwater_timestamp::Error> {
//! use highwater_timestamp::TimestampLoader;
//!
//! let report = TimestampLoader::new("/data/source", "/data/target")
//!     .cursor("modified_date")
//!     .run()
//!     .await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! See `docs/timestamp.md` for every option and how each call of the `PySpark` seed maps here.

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

mod error;
mod identity;
mod loader;
mod run;
mod seed;

pub use error::{Error, Result};
pub use highwater_store::incremental::{LateFiles, NullCursors, OutputMode, RewrittenFiles};
pub use loader::{Cursor, CursorFunction, TimestampLoader};
pub use seed::load_incremental;
