//! # highwater
//!
//! Incremental loading for Arrow and Parquet on object storage — the four patterns of the data
//! warehouse, each committed atomically with its watermark so that a crash, a retry or two
//! runners at once never lose or duplicate a row:
//!
//! | pattern | loads | crate (feature) |
//! |---|---|---|
//! | [`timestamp`] | rows whose `modified_date` is past the watermark, boundary and lookback deduplicated | `highwater-timestamp` (`timestamp`) |
//! | [`sequence`] | rows whose monotonic id is past the watermark, in order, gaps reported | `highwater-sequence` (`sequence`) |
//! | change data capture ([`cdc`]) | INSERT/UPDATE/DELETE events applied by key, latest wins, replay-safe | `highwater-cdc` (`cdc`) |
//! | snapshot diff ([`diff`]) | inserts, updates and deletes between two full snapshots | `highwater-diff` (`diff`) |
//!
//! Underneath: [`core`] (hashing, watermarks, change sets: no I/O, builds for wasm32) and
//! [`store`] (the table format on `object_store`: commit log, state, recovery, upkeep).
//! Local paths, `file://` and `memory://` locations always work; `s3://`, `gs://` and `az://`
//! need the features `aws`, `gcp` and `azure`.
//!
//! # Guide
//!
//! ## A first load
//! Every loader is a builder: where the rows come from, where the table goes, what to track.
//! `run()` loads and commits; `plan()` reports what a run would do without writing.
//!
//! ```no_run
//! # #[cfg(feature = "timestamp")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use highwater::TimestampLoader;
//!
//! let report = TimestampLoader::new("s3://lake/raw/customers", "s3://lake/warehouse/customers")
//!     .cursor("modified_date")
//!     .key(&["id"])
//!     .lookback(Duration::from_secs(600)) // re-read 10 minutes for late commits
//!     .run()
//!     .await?;
//! println!("{report}"); // rows, files, watermark before → after, commit version
//! # Ok(()) }
//! ```
//!
//! ## Where the watermark lives
//! Not in a side table: in the target table's own commit log (`<target>/_highwater/log/`), in
//! the same atomic commit as the rows it describes. Coming from the `PySpark` seed, give the
//! loader the seed's `watermark_path`: the first run imports the seed's watermark, and every
//! commit mirrors the new one back, so both can run side by side while you migrate.
//!
//! ## Object stores
//! Locations are local paths, `file://`, `s3://`, `gs://`, `az://` or `memory://` URLs;
//! credentials come from the environment as `object_store` reads them (`AWS_*`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_*`). Commits rely on put-if-absent, which local
//! disks, S3 and S3-compatible stores that honour `If-None-Match` provide.
//!
//! ## Running many tables
//! The `highwater` binary (crate `highwater-cli`) runs pipelines of tables described in TOML
//! (`highwater run pipeline.toml`), shows status and history, restores versions and vacuums;
//! `highwater demo` shows all four patterns on generated data in seconds.
//!
//! ## Reading the results
//! A target is a folder of Parquet files any engine reads (`**/*.parquet` sees only published
//! data); readers that need snapshot isolation read through the log ([`store::Table::scan`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # #[cfg(feature = "sequence")]
//! # {
//! use std::sync::Arc;
//! use highwater::arrow::array::{ArrayRef, Int64Array, RecordBatch};
//!
//! let dir = tempfile::tempdir()?;
//! let source = dir.path().join("events");
//! std::fs::create_dir_all(&source)?;
//! let batch = RecordBatch::try_from_iter([("sequence_id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef)])?;
//! std::fs::write(source.join("part-0.parquet"), highwater_test_support::data::parquet_bytes(&batch, 2))?;
//!
//! let target = dir.path().join("loaded");
//! let report = highwater::SequenceLoader::new(source.to_str().unwrap(), target.to_str().unwrap()).run().await?;
//! assert_eq!(report.rows.written, 3);
//! let table = highwater::store::Table::open(target.to_str().unwrap(), Default::default()).await?;
//! assert_eq!(table.read_all().await?.num_rows(), 3);
//! # }
//! # Ok(()) }
//! ```

#![deny(missing_docs, unsafe_code, rustdoc::broken_intra_doc_links)]

pub use highwater_core as core;
pub use highwater_core::arrow;
pub use highwater_core::report::LoadReport;
pub use highwater_store as store;

/// Timestamp loading (`highwater-timestamp`).
#[cfg(feature = "timestamp")]
pub use highwater_timestamp as timestamp;
#[cfg(feature = "timestamp")]
pub use highwater_timestamp::TimestampLoader;

/// Sequence loading (`highwater-sequence`).
#[cfg(feature = "sequence")]
pub use highwater_sequence as sequence;
#[cfg(feature = "sequence")]
pub use highwater_sequence::SequenceLoader;

/// Change data capture (`highwater-cdc`).
#[cfg(feature = "cdc")]
pub use highwater_cdc as cdc;
#[cfg(feature = "cdc")]
pub use highwater_cdc::CdcLoader;

/// Snapshot diff (`highwater-diff`).
#[cfg(feature = "diff")]
pub use highwater_diff as diff;
#[cfg(feature = "diff")]
pub use highwater_diff::DiffLoader;
