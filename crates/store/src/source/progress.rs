//! Progress of a run's source scans, for a caller to watch while the run goes on.
//!
//! A loader's source options take an `Arc<Progress>`; every scan of that source adds the rows
//! it planned (known from the footers, before decoding) and the rows it decoded. Counters only
//! grow and are read without locks, so a progress bar polls them at its own pace.

use std::sync::atomic::{AtomicU64, Ordering};

/// Rows and files of a source: planned to be read, and read so far.
#[derive(Debug, Default)]
pub struct Progress {
    files_planned: AtomicU64,
    rows_planned: AtomicU64,
    rows_read: AtomicU64,
}

impl Progress {
    /// Files that scans will decode (after pruning).
    pub fn files_planned(&self) -> u64 {
        self.files_planned.load(Ordering::Relaxed)
    }

    /// Rows in the row groups that scans will decode.
    pub fn rows_planned(&self) -> u64 {
        self.rows_planned.load(Ordering::Relaxed)
    }

    /// Rows decoded so far.
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }

    pub(crate) fn planned(&self, files: u64, rows: u64) {
        self.files_planned.fetch_add(files, Ordering::Relaxed);
        self.rows_planned.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, rows: u64) {
        self.rows_read.fetch_add(rows, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let progress = Progress::default();
        progress.planned(2, 100);
        progress.planned(1, 50);
        progress.read(60);
        assert_eq!((progress.files_planned(), progress.rows_planned(), progress.rows_read()), (3, 150, 60));
    }
}
