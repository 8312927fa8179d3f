//! Test machinery shared by highwater's crates (not published).
//!
//! - [`FaultStore`]: an `ObjectStore` that fails, crashes (before or after an operation lands)
//!   or slows down on command.
//! - [`crash_harness`] and [`race_harness`]: crash a run at every store operation and check the
//!   outcome after a restart; race K runners and check exactly one wins each version.
//! - [`Backend`]: fresh isolated stores — memory, a local folder, and the S3 server of
//!   `HIGHWATER_TEST_S3_ENDPOINT` (required under `CI=true`).
//! - [`fixtures`]: the shared real-world fixtures (`../shared/fixtures`), required under CI.

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

mod backend;
pub mod data;
mod fault;
pub mod fixtures;
mod harness;

pub use backend::{Backend, Fixture};
#[cfg(feature = "s3")]
pub use backend::{S3Trial, s3_trial};
pub use fault::{Fault, FaultStore, OpKind};
pub use harness::{CrashReport, RaceOutcome, RaceReport, crash_harness, race_harness};
