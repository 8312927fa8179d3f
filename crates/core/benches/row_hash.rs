//! Row hashing throughput on the bench generator's row shape: the six data columns of
//! `shared/bench/gen.py` (`name` and `amount` 5% null), 1M rows in batches of 8192.
//!
//! Target (issue #3): ≤ 30 ms per 1M rows on one core.

#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use highwater_core::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use highwater_core::hash::{HashOptions, RowHasher, RowHashes};
use highwater_core::key::{KeyHasher, KeyOptions};

const ROWS: usize = 1_000_000;
const BATCH: usize = 8192;
const FIRST: [&str; 6] = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald"];
const LAST: [&str; 6] = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth"];
const DOMAINS: [&str; 4] = ["example.com", "example.org", "mail.test", "corp.test"];
const CATEGORIES: [&str; 20] = [
    "electronics",
    "books",
    "clothing",
    "home",
    "garden",
    "toys",
    "sports",
    "beauty",
    "grocery",
    "automotive",
    "music",
    "movies",
    "health",
    "office",
    "pets",
    "baby",
    "tools",
    "jewelry",
    "shoes",
    "travel",
];

/// splitmix64: a deterministic generator, enough for benchmark data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn batches() -> Vec<RecordBatch> {
    let mut rng = Rng(20_240_101);
    let mut out = Vec::new();
    let mut id = 0usize;
    while id < ROWS {
        let n = BATCH.min(ROWS - id);
        let mut names = Vec::with_capacity(n);
        let mut emails = Vec::with_capacity(n);
        let mut amounts = Vec::with_capacity(n);
        let mut categories = Vec::with_capacity(n);
        let mut active = Vec::with_capacity(n);
        let mut modified = Vec::with_capacity(n);
        for offset in 0..n {
            let row = id + offset + 1;
            names.push((!rng.chance(5)).then(|| format!("{} {}", FIRST[rng.below(6)], LAST[rng.below(6)])));
            emails.push(format!("user{row}@{}", DOMAINS[rng.below(4)]));
            amounts.push((!rng.chance(5)).then(|| (rng.below(1_000_000) as f64) / 100.0));
            categories.push(CATEGORIES[rng.below(20)]);
            active.push(rng.chance(85));
            modified.push(1_704_067_200_000_000 + row as i64 * 250_000);
        }
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("name", Arc::new(StringArray::from(names))),
            ("email", Arc::new(StringArray::from(emails))),
            ("amount", Arc::new(Float64Array::from(amounts))),
            ("category", Arc::new(StringArray::from(categories))),
            ("is_active", Arc::new(BooleanArray::from(active))),
            ("modified_date", Arc::new(TimestampMicrosecondArray::from(modified).with_timezone("UTC"))),
        ];
        out.push(RecordBatch::try_from_iter(columns).unwrap());
        id += n;
    }
    out
}

fn row_hash(c: &mut Criterion) {
    let batches = batches();
    let hasher = RowHasher::for_schema(&batches[0].schema(), &[], &HashOptions::default()).unwrap();
    let mut group = c.benchmark_group("row_hash");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    group.bench_function("six_bench_columns_1m_rows", |b| {
        let mut hashes = RowHashes::default();
        b.iter(|| {
            let mut checksum = 0u128;
            for batch in &batches {
                hasher.hash_batch_into(batch, &mut hashes).unwrap();
                checksum ^= hashes.rows()[0];
            }
            checksum
        });
    });
    let ids: Vec<RecordBatch> = (0..ROWS.div_ceil(BATCH))
        .map(|chunk| {
            let start = (chunk * BATCH) as i64;
            let ids = highwater_core::arrow::array::Int64Array::from_iter_values(start..start + BATCH as i64);
            RecordBatch::try_from_iter([("id", Arc::new(ids) as ArrayRef)]).unwrap()
        })
        .collect();
    let key = KeyHasher::new(["id"], &KeyOptions::default()).unwrap();
    group.bench_function("int64_key_fingerprints_1m_rows", |b| {
        b.iter(|| ids.iter().map(|batch| key.fingerprints(batch).unwrap()[0]).fold(0u128, |a, f| a ^ f));
    });
    group.finish();
}

criterion_group!(benches, row_hash);
criterion_main!(benches);
