//! The snapshot index's stored formats: format 2 (written) leaves the key fingerprints out, and
//! format 1 (which stored them) is still read, to the same index.
//!
//! `fixtures/previous.format1.index` is the index the native diff stored for the wasm fixtures'
//! `previous` snapshot before format 2; `previous.format2.index` is the same snapshot's index now
//! (also `wasm/tests/fixtures/previous.index`).

use highwater_core::diff::SnapshotIndex;
use highwater_core::diff::index::INDEX_FORMAT;

const FORMAT_1: &[u8] = include_bytes!("fixtures/previous.format1.index");
const FORMAT_2: &[u8] = include_bytes!("fixtures/previous.format2.index");

#[test]
fn a_format_1_index_reads_as_the_format_2_one_and_rewrites_to_its_bytes() {
    let old = SnapshotIndex::from_bytes(FORMAT_1).unwrap();
    let new = SnapshotIndex::from_bytes(FORMAT_2).unwrap();
    assert_eq!((old.meta.format, new.meta.format), (1, INDEX_FORMAT));
    assert_eq!(old.schema, new.schema, "the same entry columns in memory, fingerprints first");
    assert_eq!(old.buckets, new.buckets, "fingerprints computed again equal the stored ones");
    assert_eq!(old.into_bytes().unwrap(), FORMAT_2, "a format-1 index is written back as format 2");
    assert!(FORMAT_2.len() < FORMAT_1.len());
}
