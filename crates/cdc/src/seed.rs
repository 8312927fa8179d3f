//! The seed's call shape: `CDCLoader.process_cdc(...)`.

use highwater_core::report::LoadReport;

use crate::error::Result;
use crate::loader::CdcLoader;

/// Applies the change events at `cdc_source_path` (columns `operation` ∈
/// `INSERT`/`UPDATE`/`DELETE` and `sequence_num`) to `target_path`, keyed by `primary_key`, as
/// the seed's `CDCLoader.process_cdc` does — with per-key state, so out-of-order and replayed
/// events are harmless. `watermark_path` is the seed's watermark table: imported on the first
/// run (events at or below it were applied by the seed job) and mirrored after each commit.
pub async fn process_cdc(
    cdc_source_path: &str,
    target_path: &str,
    watermark_path: &str,
    primary_key: &str,
    table_name: &str,
) -> Result<LoadReport> {
    CdcLoader::new(cdc_source_path, target_path)
        .key(&[primary_key])
        .table_name(table_name)
        .watermark_path(watermark_path)
        .run()
        .await
}
