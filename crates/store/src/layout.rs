//! Where everything of a table lives, relative to its root.
//!
//! ```text
//! <root>/                                  published data files (optionally Hive-partitioned)
//! <root>/_highwater/log/<version:020>.json one commit per version, put-if-absent
//! <root>/_highwater/checkpoint/<v:020>.json every N commits; _highwater/_last_checkpoint points at it
//! <root>/_highwater/state/<v:020>/...      state files of the commit of version v (`*.hwstate`)
//! <root>/_highwater/staging/<run-id>/...   data of a run in flight (`*.parquet.staged`)
//! <root>/_highwater/replaced/<v:020>/...   files version v replaced, kept until vacuum
//! ```
//! Nothing under `_highwater/` ends in `.parquet`, so a `**/*.parquet` glob of the root sees only
//! published data, and Spark/Hive skip the `_`-prefixed folder.

use object_store::path::Path;

/// The folder of all table metadata.
pub const META_DIR: &str = "_highwater";
/// The suffix of staged data files.
pub const STAGED_SUFFIX: &str = ".staged";
/// The suffix of state files.
pub const STATE_SUFFIX: &str = ".hwstate";

/// Paths of one table.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    root: Path,
}

impl Layout {
    pub(crate) fn new(root: Path) -> Self {
        Layout { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A path relative to the root (`a/b.parquet`) as a store path.
    pub(crate) fn join(&self, relative: &str) -> Path {
        let mut path = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The path of `location` relative to the root, if it lies under it.
    pub(crate) fn relative(&self, location: &Path) -> Option<String> {
        let parts: Vec<String> = location.prefix_match(&self.root)?.map(|p| p.as_ref().to_owned()).collect();
        Some(parts.join("/"))
    }

    pub(crate) fn meta(&self) -> Path {
        self.root.clone().join(META_DIR)
    }

    pub(crate) fn log_dir(&self) -> Path {
        self.meta().join("log")
    }

    pub(crate) fn log_entry(&self, version: u64) -> Path {
        self.log_dir().join(format!("{version:020}.json"))
    }

    pub(crate) fn checkpoint_dir(&self) -> Path {
        self.meta().join("checkpoint")
    }

    pub(crate) fn checkpoint(&self, version: u64) -> Path {
        self.checkpoint_dir().join(format!("{version:020}.json"))
    }

    pub(crate) fn last_checkpoint(&self) -> Path {
        self.meta().join("_last_checkpoint")
    }

    /// A state file of the commit of `version` by `run_id`; the run id keeps a losing run's
    /// files apart from the winner's.
    pub(crate) fn state_file(version: u64, run_id: &str, name: &str) -> String {
        format!("{META_DIR}/state/{version:020}/{name}-{run_id}{STATE_SUFFIX}")
    }

    pub(crate) fn staging_dir(&self, run_id: &str) -> Path {
        self.meta().join("staging").join(run_id)
    }

    /// Where a run stages the file that will be published at `relative`.
    pub(crate) fn staged_file(run_id: &str, relative: &str) -> String {
        format!("{META_DIR}/staging/{run_id}/{relative}{STAGED_SUFFIX}")
    }

    /// Where the commit of `version` keeps a file it replaced.
    pub(crate) fn replaced_file(version: u64, relative: &str) -> String {
        format!("{META_DIR}/replaced/{version:020}/{relative}")
    }

    pub(crate) fn probe(&self, run_id: &str) -> Path {
        self.meta().join(format!("_probe-{run_id}"))
    }
}

/// The version of a log entry or checkpoint file name (`^\d{20}\.json$`); anything else, such as
/// the `*#N` temporaries `LocalFileSystem` can leave behind, is not an entry.
pub(crate) fn version_of(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".json")?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_twenty_digit_json_names_are_log_entries() {
        assert_eq!(version_of("00000000000000000042.json"), Some(42));
        assert_eq!(version_of("00000000000000000042.json#1"), None);
        assert_eq!(version_of("42.json"), None);
        assert_eq!(version_of("0000000000000000004x.json"), None);
        assert_eq!(version_of("_last_checkpoint"), None);
    }

    #[test]
    fn paths_join_under_the_root() {
        let layout = Layout::new(Path::from("tables/orders"));
        assert_eq!(layout.join("year=2024/part-1.parquet").as_ref(), "tables/orders/year=2024/part-1.parquet");
        assert_eq!(layout.log_entry(7).as_ref(), "tables/orders/_highwater/log/00000000000000000007.json");
        assert_eq!(layout.relative(&Path::from("tables/orders/a/b.parquet")).as_deref(), Some("a/b.parquet"));
        assert_eq!(layout.relative(&Path::from("other/a.parquet")), None);
        assert!(!Layout::staged_file("r1", "a.parquet").ends_with(".parquet"));
    }
}
