//! The seed's call shape: `DeltaDiffLoader.detect_changes(...)`, returning its dict of changes.

use highwater_core::report::LoadReport;
use highwater_store::{Table, TableOptions};

use crate::error::Result;
use crate::loader::DiffLoader;

/// The changes of one run, as the seed's `{"inserts", "updates", "deletes"}` dict.
#[derive(Clone, Debug)]
pub struct DetectedChanges {
    /// New rows.
    pub inserts: Vec<arrow_array::RecordBatch>,
    /// Changed rows (their new values).
    pub updates: Vec<arrow_array::RecordBatch>,
    /// Keys gone.
    pub deletes: Vec<arrow_array::RecordBatch>,
    /// The run's report.
    pub report: LoadReport,
}

/// Diffs the snapshot at `source_path` against the last one and writes the changes to the
/// table at `target_path` (`inserts/`, `updates/`, `deletes/`), as the seed's
/// `DeltaDiffLoader.detect_changes` does. While the table has no snapshot index yet, the first
/// run diffs against the Parquet files of the seed's `snapshot_path`; later runs use the index.
/// The changes are read back for the caller (fine for the seed's sizes; use [`DiffLoader`] and
/// read the folders for large ones).
pub async fn detect_changes(
    source_path: &str,
    target_path: &str,
    snapshot_path: &str,
    primary_key: &str,
    table_name: &str,
) -> Result<DetectedChanges> {
    let report = DiffLoader::new(source_path, target_path)
        .key(&[primary_key])
        .table_name(table_name)
        .seed_snapshot(snapshot_path)
        .run()
        .await?;
    let mut changes = DetectedChanges { inserts: Vec::new(), updates: Vec::new(), deletes: Vec::new(), report };
    if changes.report.commit_version.is_none() {
        return Ok(changes);
    }
    let table = Table::open(target_path, TableOptions::default()).await?;
    for folder in ["inserts", "updates", "deletes"] {
        let files: Vec<String> =
            table.snapshot().await?.files.keys().filter(|p| p.starts_with(&format!("{folder}/"))).cloned().collect();
        if files.is_empty() {
            continue;
        }
        let batches = table.read_files(&files).await?;
        match folder {
            "inserts" => changes.inserts = batches,
            "updates" => changes.updates = batches,
            _ => changes.deletes = batches,
        }
    }
    Ok(changes)
}
