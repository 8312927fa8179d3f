//! `SnapshotIndex::from_bytes` on arbitrary bytes: an error or an index, never a panic, and no
//! allocation sized by a length the bytes merely claim. A decoded index is usable: its buckets
//! read at coarser and finer bucket bits, and an empty snapshot diffs against it. Its encoding
//! (`to_bytes`) decodes to the same index, which encodes to the same bytes again.
#![no_main]

use highwater_core::diff::{SnapshotIndex, diff_against_index};
use libfuzzer_sys::fuzz_target;

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic from its hook; highwater catches arrow-ipc's decoder
    // panics, so print them and let them unwind (an uncaught one still aborts).
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let Ok(index) = SnapshotIndex::from_bytes(data) else { return };
    assert_eq!(index.buckets.len(), 1 << index.meta.bucket_bits);
    let own = index.meta.bucket_bits;
    for bits in [own.saturating_sub(1), own, own + 1] {
        for bucket in [0, (1usize << bits) - 1] {
            let _ = index.bucket(bucket, bits);
        }
    }
    let _ = diff_against_index(&index, &[]);
    let _ = index.check_compatible(&index.meta.spec);

    let Ok(bytes) = index.to_bytes() else { return };
    let again = SnapshotIndex::from_bytes(&bytes).expect("an index's own bytes decode");
    assert_eq!(again.meta, index.meta);
    assert_eq!(again.schema, index.schema);
    assert_eq!(again.buckets, index.buckets);
    assert_eq!(again.to_bytes().expect("encodes again"), bytes, "the encoding is not stable");
});
