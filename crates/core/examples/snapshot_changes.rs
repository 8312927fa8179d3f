//! Hashes two generated snapshots of a customer table and prints how many rows changed.
//!
//! ```text
//! cargo run --release -p highwater-core --example snapshot_changes [ROWS]
//! ```
//!
//! Snapshot B is snapshot A with 1% of the rows updated (null transitions included), 0.5%
//! deleted and 0.5% inserted, and its columns in another order. Only key fingerprints and row
//! hashes are compared, exactly as highwater's snapshot diff does; the counts printed are checked
//! against what the generator changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use highwater_core::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use highwater_core::hash::{HashOptions, RowHasher};
use highwater_core::key::{KeyHasher, KeyOptions};

const BATCH: usize = 8192;

/// One customer row.
#[derive(Clone)]
struct Customer {
    id: i64,
    name: Option<String>,
    email: String,
    amount: Option<f64>,
    active: bool,
    modified_micros: i64,
}

/// splitmix64, enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn customer(rng: &mut Rng, id: i64) -> Customer {
    const NAMES: [&str; 6] =
        ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth"];
    Customer {
        id,
        name: (rng.below(20) != 0).then(|| NAMES[rng.below(6) as usize].to_owned()),
        email: format!("user{id}@example.com"),
        amount: (rng.below(20) != 0).then(|| rng.below(100_000) as f64 / 100.0),
        active: rng.below(100) < 85,
        modified_micros: 1_704_067_200_000_000 + rng.below(31_536_000_000_000) as i64,
    }
}

/// Rows as batches; `reordered` puts the columns in another order (hashes must not care).
fn batches(rows: &[Customer], reordered: bool) -> Vec<RecordBatch> {
    rows.chunks(BATCH)
        .map(|chunk| {
            let mut columns: Vec<(&str, ArrayRef)> = vec![
                ("id", Arc::new(chunk.iter().map(|c| c.id).collect::<Int64Array>())),
                ("name", Arc::new(chunk.iter().map(|c| c.name.clone()).collect::<StringArray>())),
                ("email", Arc::new(chunk.iter().map(|c| Some(c.email.clone())).collect::<StringArray>())),
                ("amount", Arc::new(chunk.iter().map(|c| c.amount).collect::<Float64Array>())),
                ("is_active", Arc::new(chunk.iter().map(|c| Some(c.active)).collect::<BooleanArray>())),
                (
                    "modified_date",
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(chunk.iter().map(|c| c.modified_micros))
                            .with_timezone("UTC"),
                    ),
                ),
            ];
            if reordered {
                columns.reverse();
            }
            RecordBatch::try_from_iter(columns).expect("columns of equal length")
        })
        .collect()
}

/// key fingerprint → row hash of the non-key columns, for every row of a snapshot.
fn index(batches: &[RecordBatch], key: &KeyHasher, values: &RowHasher) -> highwater_core::Result<HashMap<u128, u128>> {
    let mut index = HashMap::new();
    for batch in batches {
        let keys = key.fingerprints(batch)?;
        let hashes = values.hash_batch(batch)?;
        index.extend(keys.into_iter().zip(hashes.rows().iter().copied()));
    }
    Ok(index)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(1_000_000);
    let mut rng = Rng(20_240_101);
    let before: Vec<Customer> = (1..=rows as i64).map(|id| customer(&mut rng, id)).collect();

    // B = A with 1% updated, 0.5% deleted, 0.5% inserted.
    let (mut updated, mut deleted) = (0usize, 0usize);
    let mut after = Vec::with_capacity(rows);
    for row in &before {
        match rng.below(1000) {
            0..=9 => {
                let mut changed = row.clone();
                // A null transition or a new value, always a real change.
                changed.name = match &row.name {
                    Some(_) if rng.below(2) == 0 => None,
                    Some(name) => Some(format!("{name} Jr")),
                    None => Some("Changed Name".to_owned()),
                };
                after.push(changed);
                updated += 1;
            }
            10..=14 => deleted += 1,
            _ => after.push(row.clone()),
        }
    }
    let inserted = rows / 200;
    after.extend((0..inserted as i64).map(|i| customer(&mut rng, rows as i64 + 1 + i)));

    let started = Instant::now();
    let (a, b) = (batches(&before, false), batches(&after, true));
    let key = KeyHasher::new(["id"], &KeyOptions::default())?;
    let values = RowHasher::for_schema(&a[0].schema(), &["id"], &HashOptions::default())?;
    let old = index(&a, &key, &values)?;
    let new = index(&b, &key, &values)?;
    let found_inserted = new.keys().filter(|k| !old.contains_key(k)).count();
    let found_deleted = old.keys().filter(|k| !new.contains_key(k)).count();
    let found_updated = new.iter().filter(|(k, h)| old.get(k).is_some_and(|o| o != *h)).count();
    let elapsed = started.elapsed();

    println!("snapshot A: {} rows, snapshot B: {} rows (columns reordered)", before.len(), after.len());
    println!(
        "inserted {found_inserted}, updated {found_updated}, deleted {found_deleted} (hashed and compared in {elapsed:.2?})"
    );
    if (found_inserted, found_updated, found_deleted) != (inserted, updated, deleted) {
        return Err(format!("expected +{inserted} ~{updated} -{deleted}").into());
    }
    println!("matches what the generator changed: +{inserted} ~{updated} -{deleted}");
    Ok(())
}
