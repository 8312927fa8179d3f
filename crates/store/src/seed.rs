//! Compatibility with the `PySpark` module's watermark table (`table_name | watermark_value |
//! last_updated`).
//!
//! - **Import**: on a table's first run, its row of the seed's table becomes the starting
//!   watermark, read in a declared zone (default UTC) as an *exclusive* bound — the seed loaded
//!   `> watermark`.
//! - **Mirror**: after each commit the loader rewrites
//!   `watermark_path/table_name=<name>/part-0.parquet` (no `table_name` column inside), so
//!   `spark.read.parquet(watermark_path)` still shows the seed's table and tables never overwrite
//!   each other. The commit log stays the source of truth.
//! - **Flat layout**: a path holding the seed's own flat files (`part-*.parquet` with a
//!   `table_name` column) is only read; [`migrate_seed_watermarks`] rewrites it once into the
//!   partitioned layout.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use futures::TryStreamExt;
use highwater_core::watermark::{WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};
use crate::source::{Scan, ScanOptions, Source, SourceOptions};

/// One row of the seed's watermark table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedWatermark {
    /// The table.
    pub table_name: String,
    /// The watermark as the seed wrote it (a naive string).
    pub watermark_value: String,
    /// When it was written (microseconds, naive), if known.
    pub last_updated: Option<i64>,
    /// Whether it comes from the partitioned layout (else from the seed's flat files).
    pub partitioned: bool,
}

/// How a watermark path is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedLayout {
    /// Nothing there yet.
    Missing,
    /// The seed's own flat files: read only, until migrated.
    Flat,
    /// `table_name=<name>/part-0.parquet` per table.
    Partitioned,
}

/// The layout of the watermark table at `location`.
pub async fn seed_layout(location: &str) -> Result<SeedLayout> {
    if crate::location::is_missing_local_folder(location) {
        return Ok(SeedLayout::Missing);
    }
    let source = Source::open(&[location], SourceOptions::default())?;
    let listing = source.list().await?;
    if listing.files.iter().any(|f| !f.relative.contains('/')) {
        Ok(SeedLayout::Flat)
    } else if listing.files.is_empty() {
        Ok(SeedLayout::Missing)
    } else {
        Ok(SeedLayout::Partitioned)
    }
}

/// Every row of the watermark table at `location` (flat or partitioned).
pub async fn read_seed_watermarks(location: &str) -> Result<Vec<SeedWatermark>> {
    // The seed's table before its first write: no rows yet (a source is never created by reading).
    if crate::location::is_missing_local_folder(location) {
        return Ok(Vec::new());
    }
    let source = Source::open(&[location], SourceOptions::default())?;
    let listing = source.list().await?;
    let mut rows = Vec::new();
    for file in &listing.files {
        let plan = Scan::plan(&listing, std::slice::from_ref(file), ScanOptions::default()).await?;
        let mut stream = plan.stream();
        while let Some(batch) = stream.try_next().await? {
            rows.extend(rows_of(&batch.batch, &file.key, file.relative.contains('/'))?);
        }
    }
    Ok(rows)
}

fn rows_of(batch: &RecordBatch, file: &str, partitioned: bool) -> Result<Vec<SeedWatermark>> {
    let column = |name: &str| {
        batch.column_by_name(name).ok_or_else(|| Error::SchemaMismatch {
            file: file.to_owned(),
            column: name.to_owned(),
            detail: "the seed's watermark table has columns table_name, watermark_value, last_updated".into(),
        })
    };
    let names = column("table_name")?;
    let values = column("watermark_value")?;
    let options = FormatOptions::default();
    let names_text = ArrayFormatter::try_new(names.as_ref(), &options)?;
    let values_text = ArrayFormatter::try_new(values.as_ref(), &options)?;
    let updated = batch
        .column_by_name("last_updated")
        .map(|c| arrow_cast::cast(c, &DataType::Timestamp(TimeUnit::Microsecond, None)))
        .transpose()?;
    let updated = updated.as_ref().and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>().cloned());
    (0..batch.num_rows())
        .filter(|row| !names.is_null(*row) && !values.is_null(*row))
        .map(|row| {
            Ok(SeedWatermark {
                table_name: names_text.value(row).to_string(),
                watermark_value: values_text.value(row).to_string(),
                last_updated: updated.as_ref().filter(|u| !u.is_null(row)).map(|u| u.value(row)),
                partitioned,
            })
        })
        .collect()
}

/// The seed's watermark of `table` as an exclusive starting bound of `kind`, read in `zone`;
/// `None` when the seed has no row for it. Two rows for one table are an error.
pub async fn import_seed_watermark(
    location: &str,
    table: &str,
    kind: &WatermarkKind,
    zone: &Zone,
) -> Result<Option<WatermarkValue>> {
    let mut rows: Vec<SeedWatermark> =
        read_seed_watermarks(location).await?.into_iter().filter(|r| r.table_name == table).collect();
    // After an interrupted migration both layouts hold the table: the partitioned one is newer.
    if rows.iter().any(|r| r.partitioned) {
        rows.retain(|r| r.partitioned);
    }
    match rows.as_slice() {
        [] => Ok(None),
        [row] => Ok(Some(WatermarkValue::parse(&row.watermark_value, kind, zone)?)),
        several => Err(Error::InvalidInput(format!(
            "the seed's watermark table at {location} has {} rows for table `{table}` ({}): it is ambiguous which one holds; keep one",
            several.len(),
            several.iter().map(|r| r.watermark_value.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Rewrites the mirror of `table`'s watermark at `location` (partitioned layout only).
pub async fn write_seed_mirror(location: &str, table: &str, watermark: &WatermarkValue, zone: &Zone) -> Result<()> {
    if seed_layout(location).await? == SeedLayout::Flat {
        return Err(Error::InvalidInput(format!(
            "{location} holds the seed's flat watermark files; highwater only reads them. Run \
             `highwater watermark migrate {location}` once to rewrite it as table_name=<name>/ folders"
        )));
    }
    write_partition(location, table, &watermark.to_seed_string(zone), chrono::Utc::now().timestamp_micros()).await
}

async fn write_partition(location: &str, table: &str, value: &str, updated_micros: i64) -> Result<()> {
    let (store, root) = crate::location::store_for(location)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("watermark_value", DataType::Utf8, true),
        Field::new("last_updated", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    let columns: Vec<ArrayRef> =
        vec![Arc::new(StringArray::from(vec![value])), Arc::new(TimestampMicrosecondArray::from(vec![updated_micros]))];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let mut bytes = Vec::new();
    {
        let mut writer =
            ArrowWriter::try_new(&mut bytes, schema, None).map_err(|e| Error::InvalidInput(e.to_string()))?;
        writer.write(&batch).map_err(|e| Error::InvalidInput(e.to_string()))?;
        writer.close().map_err(|e| Error::InvalidInput(e.to_string()))?;
    }
    let path = root.join(format!("table_name={table}")).join("part-0.parquet");
    // One PUT: a reader sees the old mirror or the new one, never half of one.
    store.put(&path, Bytes::from(bytes).into()).await.map_err(|e| Error::store("put", &path, e))?;
    Ok(())
}

/// Rewrites the seed's flat watermark files at `location` into the partitioned layout, then
/// removes the flat files. Returns how many tables it wrote. Safe to rerun after a crash.
pub async fn migrate_seed_watermarks(location: &str) -> Result<usize> {
    // Only the flat files: a rerun after a crash must not see its own partitions as duplicates.
    let rows: Vec<SeedWatermark> =
        read_seed_watermarks(location).await?.into_iter().filter(|r| !r.partitioned).collect();
    let mut by_table: BTreeMap<String, Vec<SeedWatermark>> = BTreeMap::new();
    for row in rows {
        by_table.entry(row.table_name.clone()).or_default().push(row);
    }
    if let Some((table, rows)) = by_table.iter().find(|(_, rows)| rows.len() > 1) {
        return Err(Error::InvalidInput(format!(
            "cannot migrate {location}: {} rows for table `{table}`; keep one and rerun",
            rows.len()
        )));
    }
    for (table, rows) in &by_table {
        let row = &rows[0];
        write_partition(location, table, &row.watermark_value, row.last_updated.unwrap_or_default()).await?;
    }
    let (store, root) = crate::location::store_for(location)?;
    let listed: Vec<_> = store.list(Some(&root)).try_collect().await.map_err(|e| Error::store("list", location, e))?;
    for meta in listed {
        let relative: Vec<String> = meta
            .location
            .prefix_match(&root)
            .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
            .unwrap_or_default();
        if relative.len() == 1 && !relative[0].starts_with("table_name=") {
            store.delete(&meta.location).await.map_err(|e| Error::store("delete", &meta.location, e))?;
        }
    }
    Ok(by_table.len())
}
