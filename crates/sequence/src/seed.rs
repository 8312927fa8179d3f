//! The seed's call shape: `SequenceBasedLoader.load_incremental(...)`.

use highwater_core::report::LoadReport;

use crate::error::Result;
use crate::loader::SequenceLoader;

/// Loads rows of `source_path` whose `sequence_column` lies past the watermark into
/// `target_path`, in order, as the seed's `SequenceBasedLoader.load_incremental` does — with
/// exactly-once commits and gap reports. `watermark_path` is the seed's watermark table:
/// imported on the first run and mirrored after each commit.
pub async fn load_incremental(
    source_path: &str,
    target_path: &str,
    watermark_path: &str,
    sequence_column: &str,
    table_name: &str,
) -> Result<LoadReport> {
    SequenceLoader::new(source_path, target_path)
        .column(sequence_column)
        .table_name(table_name)
        .watermark_path(watermark_path)
        .run()
        .await
}
