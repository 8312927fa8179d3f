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

/// A Python interpreter with pyarrow (the project's venv, as `scripts/test` sets it up), or
/// `None` (with a note) when there is none outside CI.
///
/// # Panics
/// Under `CI=true` when no such interpreter is found.
pub fn python_with_pyarrow() -> Option<PathBuf> {
    let candidates = [
        std::env::var("HIGHWATER_PYTHON").ok().map(PathBuf::from),
        std::env::var("HIGHWATER_VENV").ok().map(|venv| PathBuf::from(venv).join("bin/python")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")),
    ];
    for python in candidates.into_iter().flatten() {
        let works = std::process::Command::new(&python)
            .args(["-c", "import pyarrow"])
            .output()
            .is_ok_and(|output| output.status.success());
        if works {
            return Some(python);
        }
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but no Python with pyarrow (set HIGHWATER_PYTHON)");
    eprintln!("skipped: no Python with pyarrow (run scripts/test, or set HIGHWATER_PYTHON)");
    None
}

/// Runs a Python script with `args`, returning its standard output.
///
/// # Panics
/// When the script fails.
pub fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(python).arg("-c").arg(script).args(args).output().expect("python runs");
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
