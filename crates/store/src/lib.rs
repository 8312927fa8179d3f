//! # highwater-store
//!
//! highwater's table format on object storage: a folder of published data files plus a commit
//! log under `_highwater/`, written so that a crash at any point, a retry, or two runners at once
//! never lose or duplicate a row. The pattern crates (timestamp, sequence, CDC, diff) stage their
//! output through a [`Transaction`] and commit it together with their watermark and state.
//!
//! ```text
//! <target>/part-….parquet                   what plain Parquet readers see
//! <target>/_highwater/log/<v:020>.json      one commit per version (put-if-absent)
//! <target>/_highwater/checkpoint/…          every N commits, + _last_checkpoint
//! <target>/_highwater/state/<v>/….hwstate   pattern state (ledgers, boundary keys, …)
//! <target>/_highwater/staging/<run>/…       data of runs in flight
//! <target>/_highwater/replaced/<v>/…        files replaced by version v, kept until vacuum
//! ```
//!
//! ## Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), highwater_store::Error> {
//! use bytes::Bytes;
//! use highwater_core::report::Pattern;
//! use highwater_core::watermark::WatermarkValue;
//! use highwater_store::{RunSpec, Table, TableOptions};
//! use arrow_schema::{DataType, Field, Schema};
//!
//! let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
//! let table = Table::create("memory://docs/orders", &schema, TableOptions::default()).await?;
//!
//! let mut run = table.begin(RunSpec::load(Pattern::Sequence)).await?;
//! run.put_file("part-1.parquet", Bytes::from_static(b"not really parquet"), 10).await?;
//! run.put_state("ledger", Bytes::from_static(b"{}")).await?;
//! let committed = run.commit(Some(WatermarkValue::int64(10)), None).await?;
//! assert_eq!(committed.version, 1);
//!
//! let snapshot = table.snapshot().await?;
//! assert_eq!(snapshot.watermark, Some(WatermarkValue::int64(10)));
//! assert_eq!(snapshot.files.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Guarantees
//! - **Atomic visibility.** A version exists exactly when its log entry does. The entry is
//!   written with `PutMode::Create` after every file it names is durable; losing that race is a
//!   typed [`Error::Conflict`] and nothing of the loser becomes visible.
//! - **Recovery.** Every open (and every `begin`) finishes the publish of a committed version
//!   that a crash interrupted; every step of publishing is idempotent.
//! - **Bad metadata fails loudly.** A truncated or invalid commit, a missing version, a format
//!   newer than this build, a state file whose checksum does not match, a staged file missing at
//!   publish: each is a typed error naming the object.
//! - **Durability** follows the store: on object stores a commit is durable when its PUT
//!   returns; `LocalFileSystem` does not fsync, so local tables are crash-consistent at the OS
//!   level only.
//! - **Put-if-absent is required.** Creating a table probes it and refuses a store that silently
//!   overwrites. `InMemory`, `LocalFileSystem` (on filesystems with hard links) and S3 with
//!   conditional writes honour it.
//!
//! ## Features
//! | feature | adds |
//! |---|---|
//! | `aws` | `s3://` locations, configured from `AWS_*` environment variables |
//! | `gcp` | `gs://` locations, from `GOOGLE_*` environment variables |
//! | `azure` | `az://` locations, from `AZURE_*` environment variables |
//! | `crash-points` | tests only: `HIGHWATER_CRASH_AFTER_OPS=N` aborts the process after its N-th store operation (the kill tests of `docs/reliability.md`) |

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

mod abandoned;
mod adopt;
mod commit;
#[cfg(feature = "crash-points")]
pub mod crash_points;
mod error;
pub mod incremental;
mod io;
mod layout;
mod location;
mod publish;
pub mod seed;
pub mod source;
mod table;
mod transaction;
mod upkeep;
pub mod write;

#[doc(hidden)]
pub use abandoned::stopped_runs_settled;
pub use commit::last_checkpoint_from_json;
pub use commit::{
    Checkpoint, Commit, CommitInfo, DataFile, FORMAT_VERSION, Operation, PersistedSchema, PublishMode, Snapshot,
    StateFileRef,
};
pub use error::{Error, Result};
pub use layout::{META_DIR, STAGED_SUFFIX, STATE_SUFFIX};
pub use location::store_for;
pub use table::{Table, TableOptions};
pub use transaction::{Committed, FileTarget, RunSpec, Transaction, new_run_id, partition_values};
pub use upkeep::{LocatedFile, VacuumReport};
