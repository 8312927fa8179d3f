//! Bench-shaped test data: the source table of `shared/bench/gen.py` in miniature.
//!
//! Rows arrive roughly in `modified_date` order (±60 s jitter, a few late commits, ties at the
//! millisecond), with a strictly increasing `sequence_id` that has gaps; `name` and `amount` are
//! 5% null. Seeded, so every test sees the same rows.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// 2024-01-01T00:00:00Z in microseconds.
pub const T0_MICROS: i64 = 1_704_067_200_000_000;
/// One row every quarter second.
pub const STEP_MICROS: i64 = 250_000;

const NAMES: [&str; 6] =
    ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth"];
const CATEGORIES: [&str; 5] = ["books", "toys", "garden", "music", "tools"];

/// The source schema of the bench: id, name, email, amount, category, `is_active`,
/// `modified_date` (timestamp us UTC), `sequence_id`.
pub fn source_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("is_active", DataType::Boolean, true),
        Field::new("modified_date", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("sequence_id", DataType::Int64, false),
    ]))
}

/// splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Source rows with ids `first..first + rows` (1-based row numbers drive time and sequence).
///
/// # Panics
/// Never for valid sizes (the columns always match the schema).
pub fn source_rows(first: i64, rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng(seed ^ first as u64);
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let name: StringArray = ids.iter().map(|_| (rng.below(20) != 0).then(|| NAMES[rng.below(6) as usize])).collect();
    let email: StringArray = ids.iter().map(|id| Some(format!("user{id}@example.com"))).collect();
    let amount: Float64Array =
        ids.iter().map(|_| (rng.below(20) != 0).then(|| rng.below(100_000) as f64 / 100.0)).collect();
    let category: StringArray = ids.iter().map(|_| Some(CATEGORIES[rng.below(5) as usize])).collect();
    let active: BooleanArray = ids.iter().map(|_| Some(rng.below(100) < 85)).collect();
    let modified: Vec<i64> = ids
        .iter()
        .map(|id| {
            let jitter = rng.below(120_000_000) as i64 - 60_000_000;
            let late = if rng.below(200) == 0 { rng.below(3_600_000_000) as i64 } else { 0 };
            let micros = T0_MICROS + id * STEP_MICROS + jitter - late;
            micros - micros.rem_euclid(1000)
        })
        .collect();
    let sequence: Vec<i64> = ids.iter().map(|id| 1_000_000 + id * 2).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(name),
        Arc::new(email),
        Arc::new(amount),
        Arc::new(category),
        Arc::new(active),
        Arc::new(TimestampMicrosecondArray::from(modified).with_timezone("UTC")),
        Arc::new(Int64Array::from(sequence)),
    ];
    RecordBatch::try_new(source_schema(), columns).expect("columns of the source schema")
}

/// `batch` as Parquet bytes with row groups of `row_group_rows`.
///
/// # Panics
/// When the batch cannot be encoded.
pub fn parquet_bytes(batch: &RecordBatch, row_group_rows: usize) -> Bytes {
    let properties = WriterProperties::builder().set_max_row_group_row_count(Some(row_group_rows)).build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).expect("a writer");
    writer.write(batch).expect("rows written");
    writer.close().expect("file closed");
    Bytes::from(bytes)
}

/// Writes `batch` as a Parquet file at `path` of `store`.
///
/// # Panics
/// When the store refuses the write.
pub async fn put_parquet(store: &Arc<dyn ObjectStore>, path: &str, batch: &RecordBatch, row_group_rows: usize) {
    store.put(&Path::from(path), PutPayload::from_bytes(parquet_bytes(batch, row_group_rows))).await.expect("put");
}
