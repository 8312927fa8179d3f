//! Inside wasm32 (run under Node by `wasm-bindgen-test-runner`): the row-hash golden vectors of
//! `crates/core/tests/golden/` and the pinned native diff fixtures. Native and wasm hashing
//! cannot drift apart without this failing.
//!
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner cargo test -p
//! highwater-wasm --target wasm32-unknown-unknown --features tz` (`tz`: some vectors name IANA
//! zones); with `WASM_BINDGEN_USE_BROWSER=1` the same tests run in headless Chromium.
#![cfg(target_arch = "wasm32")]

#[path = "../../crates/core/tests/golden/cases.rs"]
#[allow(dead_code, clippy::pedantic)]
mod cases;

use highwater_core::hash::{HashOptions, RowHasher};
use highwater_core::key::{KeyHasher, KeyOptions};
use highwater_wasm::{DiffOptions, IndexOptions};
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const GOLDEN: &str = include_str!("../../crates/core/tests/golden/row_hash_v1.json");

#[wasm_bindgen_test]
fn row_hash_v1_golden_vectors() {
    let (_, cases) = cases::load(GOLDEN).unwrap();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for case in &cases {
        let options = HashOptions { naive_timezone: case.naive_timezone.clone() };
        let hasher = RowHasher::for_schema(&case.batch.schema(), &[], &options).unwrap();
        let hashes = hasher.hash_batch(&case.batch).unwrap();
        let rows: Vec<String> = hashes.rows().iter().map(|h| cases::hex128(*h)).collect();
        let columns: std::collections::BTreeMap<String, Vec<String>> = hasher
            .columns()
            .enumerate()
            .map(|(i, name)| (name.to_owned(), hashes.column(i).iter().map(|h| cases::hex64(*h)).collect()))
            .collect();
        let expect = &case.json["expect"];
        if expect["rows"] != json!(rows) || expect["columns"] != json!(columns) {
            failures.push(case.name.clone());
        }
        if let Some(key) = &case.key {
            let keys = KeyHasher::new(key, &KeyOptions { allow_null_keys: false, hash: options.clone() }).unwrap();
            let fingerprints: Vec<String> =
                keys.fingerprints(&case.batch).unwrap().iter().map(|f| cases::hex128(*f)).collect();
            if expect["fingerprints"] != json!(fingerprints) {
                failures.push(format!("{} (fingerprints)", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "wasm hashes differ from the golden vectors: {failures:?}");
}

#[wasm_bindgen_test]
fn the_native_fixtures_diff_identically() {
    let previous = include_bytes!("fixtures/previous.parquet").to_vec();
    let current = include_bytes!("fixtures/current.snappy.parquet").to_vec();
    let options = DiffOptions::from_json(r#"{"key": ["region", "id"]}"#).unwrap();
    let out = highwater_wasm::diff(previous.clone(), current.clone(), &options, &mut |_| {}).unwrap();
    assert_eq!(out.table("changes").unwrap(), include_bytes!("fixtures/expected-diff.arrows"));
    let index = highwater_wasm::snapshot_index(
        previous,
        &IndexOptions::from_json(r#"{"key": ["region", "id"]}"#).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(index, include_bytes!("fixtures/previous.index"));
    let out = highwater_wasm::diff_against_index(&index, current, &DiffOptions::from_json("{}").unwrap(), &mut |_| {})
        .unwrap();
    assert_eq!(out.table("changes").unwrap(), include_bytes!("fixtures/expected-against-index.arrows"));
    assert_eq!(out.index.unwrap(), include_bytes!("fixtures/current.index"));
}
