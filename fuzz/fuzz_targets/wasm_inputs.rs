//! The entry points of the wasm build on arbitrary bytes: `diff` with the bytes as either side
//! (Parquet, Arrow IPC or CSV by their first bytes), `diffAgainstIndex` with them as the index,
//! `snapshotIndex` and `inspect`. Never a panic in highwater's code (a decoder panic inside
//! parquet is caught at the file boundary and must come back as an `Input` error); what diffs
//! against itself is unchanged.
#![no_main]

use highwater_wasm::{DiffOptions, Error, IndexOptions};
use libfuzzer_sys::fuzz_target;

const GOOD: &[u8] = include_bytes!("../../wasm/tests/fixtures/previous.parquet");

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic from its hook; highwater catches decoder panics at the
    // file boundary, so print them and let them unwind (an uncaught one still aborts).
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let options = DiffOptions::from_json(r#"{"key": ["region", "id"], "preview": 5}"#).unwrap();
    let quiet = &mut |_: &highwater_wasm::Progress| {};
    if let Err(error) = highwater_wasm::diff(GOOD.to_vec(), data.to_vec(), &options, quiet) {
        check(&error);
    }
    if let Err(error) = highwater_wasm::diff(data.to_vec(), GOOD.to_vec(), &options, quiet) {
        check(&error);
    }
    if let Err(error) = highwater_wasm::diff_against_index(data, GOOD.to_vec(), &DiffOptions::default(), quiet) {
        check(&error);
    }
    let index_options = IndexOptions::from_json(r#"{"key": ["region", "id"]}"#).unwrap();
    if let Ok(index) = highwater_wasm::snapshot_index(data.to_vec(), &index_options, quiet) {
        // A snapshot that indexes diffs against its own index with no change.
        if let Ok(out) = highwater_wasm::diff_against_index(&index, data.to_vec(), &DiffOptions::default(), quiet) {
            assert_eq!(out.counts.inserted + out.counts.updated + out.counts.deleted, 0);
        }
    }
    let _ = highwater_wasm::inspect(bytes::Bytes::copy_from_slice(data));
});

fn check(error: &Error) {
    // Every failure is a typed error with a message; the kind says whose fault it is.
    assert!(!error.to_string().is_empty());
}
