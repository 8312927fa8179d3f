//! The seed's call shape: `TimestampBasedLoader.load_incremental(...)`.

use highwater_core::report::LoadReport;

use crate::error::Result;
use crate::loader::TimestampLoader;

/// Loads rows of `source_path` whose `timestamp_column` lies past the watermark into
/// `target_path`, as the seed's `TimestampBasedLoader.load_incremental` does — with exactly-once
/// commits. `watermark_path` is the seed's watermark table: imported on the first run (as an
/// exclusive bound, read in UTC) and mirrored after each commit at
/// `watermark_path/table_name=<table_name>/`.
pub async fn load_incremental(
    source_path: &str,
    target_path: &str,
    watermark_path: &str,
    timestamp_column: &str,
    table_name: &str,
) -> Result<LoadReport> {
    TimestampLoader::new(source_path, target_path)
        .cursor(timestamp_column)
        .table_name(table_name)
        .watermark_path(watermark_path)
        .run()
        .await
}
