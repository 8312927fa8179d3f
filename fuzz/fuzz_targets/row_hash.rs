//! The row hasher over arbitrary batches: never a panic, and every value hash equals the
//! reference encoding's (`canonical_bytes`), so the column-wise fast paths cannot drift from
//! the spec.
#![no_main]

use arbitrary::Unstructured;
use highwater_core::hash::{HashOptions, RowHasher, canonical_bytes, column_seed};
use highwater_fuzz::{ZONES, arbitrary_batch};
use libfuzzer_sys::fuzz_target;
use xxhash_rust::xxh3::xxh3_64_with_seed;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(batch) = arbitrary_batch(&mut u) else { return };
    let zone = u.choose(&ZONES).ok().map(|z| (*z).to_owned());
    let options = HashOptions { naive_timezone: zone };
    let Ok(hasher) = RowHasher::for_schema(&batch.schema(), &[], &options) else { return };
    let Ok(hashes) = hasher.hash_batch(&batch) else { return };
    assert_eq!(hashes.len(), batch.num_rows());
    let again = hasher.hash_batch(&batch).expect("hashing is deterministic");
    assert_eq!(hashes.rows(), again.rows());
    for (column, name) in hasher.columns().enumerate() {
        let array = batch.column_by_name(name).expect("hashed column exists");
        for row in 0..batch.num_rows() {
            let bytes = canonical_bytes(array.as_ref(), row, &options).expect("reference encoder agrees");
            assert_eq!(hashes.value_hash(row, column), xxh3_64_with_seed(&bytes, column_seed(name)), "{name}[{row}]");
        }
    }
});
