//! Every pattern, crashed at store operations of a full run and raced by eight runners, on the
//! local filesystem and on S3 (moto in CI): 0 rows lost, 0 duplicated (count and checksum).
//!
//! Each pattern's setup commits a first run and then brings new source data; the run under test
//! is the second one, crashed at every store operation (before and after it lands).

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use highwater::store::TableOptions;
use highwater_test_support::{Backend, RaceOutcome, crash_harness, race_harness};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::{Digest, digest, parquet, put};

fn options() -> TableOptions {
    TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() }
}

/// A loader's outcome as the race harness reads it.
fn outcome(result: Result<Option<u64>, highwater::store::Error>) -> Result<RaceOutcome, String> {
    match result {
        Ok(version) => Ok(version.map_or(RaceOutcome::NothingToDo, RaceOutcome::Committed)),
        Err(highwater::store::Error::Conflict { .. }) => Ok(RaceOutcome::Conflict),
        Err(error) => Err(error.to_string()),
    }
}

/// A loader error with its store error taken out (conflicts are told apart there).
macro_rules! store_error {
    ($result:expr, $error:path) => {
        match $result {
            Ok(report) => Ok(report.commit_version),
            Err($error(error)) => Err(error),
            Err(other) => return Err(other.to_string()),
        }
    };
}

mod timestamp {
    use super::*;
    use highwater::TimestampLoader;

    pub const TARGET: &str = "target";
    /// Rows `(id, minute)`: the second file has a row at the first run's watermark minute.
    pub const ROWS: usize = 5;

    fn loader(store: &Arc<dyn ObjectStore>) -> TimestampLoader {
        TimestampLoader::new("memory://unused", "memory://unused")
            .source_store(Arc::clone(store), Path::from("source"), "source")
            .target_store(Arc::clone(store), Path::from(TARGET))
            .key(&["id"])
            .table_options(options())
    }

    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        let start = 1_767_225_600_000_000i64; // 2026-01-01T00:00:00Z
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("value", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("v{}", r.0)))) as ArrayRef),
            (
                "modified_date",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| start + r.1 * 60_000_000))
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    pub async fn setup(store: Arc<dyn ObjectStore>) {
        put(&store, "source/a.parquet", parquet(&batch(&[(1, 0), (2, 5)]))).await;
        loader(&store).run().await.unwrap();
        put(&store, "source/b.parquet", parquet(&batch(&[(3, 5), (4, 6), (5, 7)]))).await;
    }

    pub async fn run(store: Arc<dyn ObjectStore>) -> Result<RaceOutcome, String> {
        outcome(store_error!(loader(&store).run().await, highwater::timestamp::Error::Store))
    }
}

mod sequence {
    use super::*;
    use highwater::SequenceLoader;

    pub const TARGET: &str = "target";
    pub const ROWS: usize = 7;

    fn loader(store: &Arc<dyn ObjectStore>) -> SequenceLoader {
        SequenceLoader::new("memory://unused", "memory://unused")
            .source_store(Arc::clone(store), Path::from("source"), "source")
            .target_store(Arc::clone(store), Path::from(TARGET))
            .table_options(options())
    }

    fn batch(ids: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("sequence_id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            ("payload", Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("e{i}")))) as ArrayRef),
        ])
        .unwrap()
    }

    pub async fn setup(store: Arc<dyn ObjectStore>) {
        put(&store, "source/a.parquet", parquet(&batch(&[1, 2, 3]))).await;
        loader(&store).run().await.unwrap();
        put(&store, "source/b.parquet", parquet(&batch(&[4, 6, 5, 7]))).await;
    }

    pub async fn run(store: Arc<dyn ObjectStore>) -> Result<RaceOutcome, String> {
        outcome(store_error!(loader(&store).run().await, highwater::sequence::Error::Store))
    }
}

mod cdc {
    use super::*;
    use highwater::CdcLoader;

    pub const TARGET: &str = "target";
    pub const ROWS: usize = 3;

    fn loader(store: &Arc<dyn ObjectStore>) -> CdcLoader {
        CdcLoader::new("memory://unused", "memory://unused")
            .source_store(Arc::clone(store), Path::from("source"), "source")
            .target_store(Arc::clone(store), Path::from(TARGET))
            .table_options(options())
    }

    fn batch(rows: &[(i64, &str, i64, &str)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("name", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))) as ArrayRef),
            ("operation", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef),
            ("sequence_num", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef),
        ])
        .unwrap()
    }

    pub async fn setup(store: Arc<dyn ObjectStore>) {
        let first = batch(&[(1, "INSERT", 1, "a"), (2, "INSERT", 2, "b"), (3, "INSERT", 3, "c")]);
        put(&store, "source/a.parquet", parquet(&first)).await;
        loader(&store).run().await.unwrap();
        let second =
            batch(&[(2, "UPDATE", 5, "b2"), (3, "DELETE", 6, ""), (4, "INSERT", 4, "d"), (1, "UPDATE", 7, "a2")]);
        put(&store, "source/b.parquet", parquet(&second)).await;
    }

    pub async fn run(store: Arc<dyn ObjectStore>) -> Result<RaceOutcome, String> {
        outcome(store_error!(loader(&store).run().await, highwater::cdc::Error::Store))
    }
}

mod diff {
    use super::*;
    use highwater::DiffLoader;

    pub const TARGET: &str = "changes";
    /// The change rows of the second run: id 2 and 3 updated, 4 deleted, 5 inserted.
    pub const ROWS: usize = 4;

    fn loader(store: &Arc<dyn ObjectStore>) -> DiffLoader {
        DiffLoader::new("memory://unused", "memory://unused")
            .source_store(Arc::clone(store), Path::from("today"), "today")
            .target_store(Arc::clone(store), Path::from(TARGET))
            .table_options(options())
    }

    fn batch(rows: &[(i64, &str)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("v", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef),
        ])
        .unwrap()
    }

    pub async fn setup(store: Arc<dyn ObjectStore>) {
        put(&store, "today/part-0.parquet", parquet(&batch(&[(1, "a1"), (2, "a2"), (3, "a3"), (4, "a4")]))).await;
        loader(&store).run().await.unwrap();
        put(&store, "today/part-0.parquet", parquet(&batch(&[(1, "a1"), (2, "b2"), (3, "b3"), (5, "b5")]))).await;
    }

    pub async fn run(store: Arc<dyn ObjectStore>) -> Result<RaceOutcome, String> {
        outcome(store_error!(loader(&store).run().await, highwater::diff::Error::Store))
    }
}

/// The digest after the run, checked against the expected row count. A diff's watermark is
/// the time of its snapshot (the run's clock): left out.
async fn observed(store: Arc<dyn ObjectStore>, target: &str, rows: usize) -> Digest {
    let mut digest = digest(&store, target).await;
    if target == diff::TARGET {
        digest.watermark = None;
    }
    assert_eq!(digest.rows, rows, "rows lost or duplicated: {digest:?}");
    digest
}

macro_rules! reliability {
    ($pattern:ident, $crash_local:ident, $crash_s3:ident, $race_local:ident, $race_s3:ident) => {
        #[tokio::test]
        async fn $crash_local() {
            let report = crash_harness(
                Backend::Local,
                $pattern::setup,
                async |store| $pattern::run(store).await.map(|_| ()),
                async |store| observed(store, $pattern::TARGET, $pattern::ROWS).await,
            )
            .await;
            eprintln!("{}: {report:?}", stringify!($crash_local));
            assert!(report.trials >= 20, "{report:?}");
        }

        #[tokio::test]
        async fn $crash_s3() {
            if !Backend::s3_available() {
                return;
            }
            let report = crash_harness(
                Backend::S3,
                $pattern::setup,
                async |store| $pattern::run(store).await.map(|_| ()),
                async |store| observed(store, $pattern::TARGET, $pattern::ROWS).await,
            )
            .await;
            eprintln!("{}: {report:?}", stringify!($crash_s3));
            assert!(report.trials >= 20, "{report:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $race_local() {
            let report = race_harness(Backend::Local, 8, $pattern::setup, $pattern::run, async |store| {
                observed(store, $pattern::TARGET, $pattern::ROWS).await
            })
            .await;
            eprintln!("{}: {:?}", stringify!($race_local), report.outcomes);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $race_s3() {
            if !Backend::s3_available() {
                return;
            }
            let report = race_harness(Backend::S3, 8, $pattern::setup, $pattern::run, async |store| {
                observed(store, $pattern::TARGET, $pattern::ROWS).await
            })
            .await;
            eprintln!("{}: {:?}", stringify!($race_s3), report.outcomes);
        }
    };
}

reliability!(timestamp, timestamp_crash_local, timestamp_crash_s3, timestamp_race_local, timestamp_race_s3);
reliability!(sequence, sequence_crash_local, sequence_crash_s3, sequence_race_local, sequence_race_s3);
reliability!(cdc, cdc_crash_local, cdc_crash_s3, cdc_race_local, cdc_race_s3);
reliability!(diff, diff_crash_local, diff_crash_s3, diff_race_local, diff_race_s3);

#[test]
fn the_digest_sees_a_duplicated_row() {
    let one = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
    let two = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 1])) as ArrayRef)]).unwrap();
    assert_ne!(crate::digest_of(&one, None), crate::digest_of(&two, None));
}
