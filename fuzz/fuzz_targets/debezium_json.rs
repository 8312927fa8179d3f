//! `debezium::decode_envelopes` on arbitrary bytes: never panics; what decodes has one op per
//! row, all of them known, and decodes the same again.
#![no_main]

use highwater_core::debezium::{DebeziumOptions, OP_COLUMN, decode_envelopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = DebeziumOptions::default();
    if let Ok(events) = decode_envelopes(data, "fuzz.json", &options) {
        let ops = events.batch.column_by_name(OP_COLUMN).expect("the op column");
        assert_eq!(ops.len(), events.batch.num_rows());
        let again = decode_envelopes(data, "fuzz.json", &options).expect("decodes twice");
        assert_eq!(again.batch, events.batch);
    }
});
