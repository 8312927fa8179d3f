//! The shared fixtures folder (`../shared/fixtures` beside the repository).
//!
//! Tests that use it skip when it is absent (a published crate has no `shared/`), but fail under
//! `CI=true`, where it must be present.

use std::path::PathBuf;

/// The fixtures folder, or `None` (with a note on stderr) when it is absent outside CI.
///
/// # Panics
/// Under `CI=true` when the folder is missing.
pub fn shared_fixtures() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    if root.is_dir() {
        return Some(root);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but {} is missing", root.display());
    eprintln!("skipped: {} not found", root.display());
    None
}
