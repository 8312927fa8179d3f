//! Key fingerprints over arbitrary key columns: never a panic; a null key is an error naming a
//! null cell unless null keys are allowed; fingerprints equal the row hash of the key columns.
#![no_main]

use arbitrary::Unstructured;
use highwater_core::Error;
use highwater_core::hash::{HashOptions, RowHasher};
use highwater_core::key::{KeyHasher, KeyOptions};
use highwater_fuzz::arbitrary_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(batch) = arbitrary_batch(&mut u) else { return };
    let schema = batch.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.is_empty() {
        return;
    }
    let take = u.int_in_range(1..=names.len()).unwrap_or(1);
    let key: Vec<&String> = names.iter().take(take).collect();
    let allow_null_keys = u.arbitrary().unwrap_or(false);
    let options = KeyOptions { allow_null_keys, hash: HashOptions::with_naive_timezone("UTC") };
    let Ok(hasher) = KeyHasher::new(&key, &options) else { return };
    match hasher.fingerprints(&batch) {
        Ok(fingerprints) => {
            let rows = RowHasher::new(&key, &options.hash).unwrap().hash_batch(&batch).unwrap();
            assert_eq!(fingerprints, rows.rows());
        }
        Err(Error::NullKey { column, row }) => {
            assert!(!allow_null_keys);
            let array = batch.column_by_name(&column).expect("named key column exists");
            assert!(array.logical_nulls().is_some_and(|n| n.is_null(row)), "{column}[{row}] is not null");
        }
        Err(_) => {}
    }
});
