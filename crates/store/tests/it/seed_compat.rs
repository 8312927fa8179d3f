//! The seed's watermark table: import (written by pyarrow, as Spark would), the per-table
//! mirror (read back by pyarrow), and the one-time migration of the flat layout.

use highwater_core::watermark::{TimestampUnit, WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use highwater_store::seed::{
    SeedLayout, import_seed_watermark, migrate_seed_watermarks, seed_layout, write_seed_mirror,
};
use highwater_test_support::fixtures::{python_with_pyarrow, run_python};

/// The seed's table as Spark writes it: one flat part file plus `_SUCCESS`.
const WRITE_FLAT: &str = r#"
import sys, datetime, pyarrow as pa, pyarrow.parquet as pq, os
path, rows = sys.argv[1], sys.argv[2:]
names = rows[0::2]
values = rows[1::2]
table = pa.table({
    "table_name": pa.array(names, pa.string()),
    "watermark_value": pa.array(values, pa.string()),
    "last_updated": pa.array([datetime.datetime(2024, 1, 15, 10, 30)] * len(names), pa.timestamp("us")),
})
os.makedirs(path, exist_ok=True)
pq.write_table(table, os.path.join(path, "part-00000-6f2b.c000.snappy.parquet"))
open(os.path.join(path, "_SUCCESS"), "w").close()
"#;

const READ_BACK: &str = r#"
import sys, json, pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
rows = sorted(zip(table.column("table_name").to_pylist(), table.column("watermark_value").to_pylist()))
print(json.dumps({"columns": sorted(table.column_names), "rows": rows}))
"#;

fn micros() -> WatermarkKind {
    WatermarkKind::Timestamp { unit: TimestampUnit::Microsecond, timezone: Some("UTC".into()) }
}

#[tokio::test]
async fn import_migrate_and_mirror_with_pyarrow() {
    let Some(python) = python_with_pyarrow() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watermarks");
    let location = path.to_str().unwrap();
    run_python(&python, WRITE_FLAT, &[location, "my_table", "2024-01-15 10:30:00", "events", "2024-01-01"]);
    assert_eq!(seed_layout(location).await.unwrap(), SeedLayout::Flat);

    // Import: the seed's naive string, read in the declared zone, as an exclusive bound.
    let imported = import_seed_watermark(location, "my_table", &micros(), &Zone::UTC).await.unwrap().unwrap();
    assert_eq!(imported, WatermarkValue::parse("2024-01-15T10:30:00Z", &micros(), &Zone::UTC).unwrap());
    let in_berlin = import_seed_watermark(location, "my_table", &micros(), &Zone::parse("Europe/Berlin").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_berlin.to_string(), "2024-01-15T09:30:00Z", "10:30 in Berlin");
    assert!(import_seed_watermark(location, "unknown", &micros(), &Zone::UTC).await.unwrap().is_none());

    // The flat layout is only read.
    let error = write_seed_mirror(location, "my_table", &imported, &Zone::UTC).await.unwrap_err();
    assert!(error.to_string().contains("migrate"), "{error}");
    assert_eq!(migrate_seed_watermarks(location).await.unwrap(), 2);
    assert_eq!(seed_layout(location).await.unwrap(), SeedLayout::Partitioned);
    assert_eq!(migrate_seed_watermarks(location).await.unwrap(), 0, "a second migration finds nothing flat");

    // The mirror after a commit.
    let later = WatermarkValue::parse("2024-02-01 08:00:00.25", &micros(), &Zone::UTC).unwrap();
    write_seed_mirror(location, "my_table", &later, &Zone::UTC).await.unwrap();
    assert!(path.join("table_name=my_table/part-0.parquet").is_file());
    let read = run_python(&python, READ_BACK, &[location]);
    let read: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["columns"], serde_json::json!(["last_updated", "table_name", "watermark_value"]));
    assert_eq!(read["rows"], serde_json::json!([["events", "2024-01-01"], ["my_table", "2024-02-01 08:00:00.25"]]));
    assert_eq!(import_seed_watermark(location, "my_table", &micros(), &Zone::UTC).await.unwrap(), Some(later));
}

#[tokio::test]
async fn two_rows_for_one_table_are_an_error() {
    let Some(python) = python_with_pyarrow() else { return };
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("watermarks");
    let location = location.to_str().unwrap();
    run_python(&python, WRITE_FLAT, &[location, "orders", "2024-01-15 10:30:00", "orders", "2024-01-16 00:00:00"]);
    let error = import_seed_watermark(location, "orders", &micros(), &Zone::UTC).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("2 rows") && message.contains("`orders`"), "{message}");
    assert!(migrate_seed_watermarks(location).await.is_err());
}
