//! The real-world cases of `shared/fixtures/snapshot-diff/` (filled in below).
