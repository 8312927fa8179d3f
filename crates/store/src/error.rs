//! The one error type of `highwater-store`.

use std::time::Duration;

/// A `Result` whose error defaults to [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a highwater table.
///
/// Variants name the object (its path within the store), the version and the run involved.
/// Whenever one of these is returned from a commit path, nothing of the failed run is visible.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// There is no highwater table (no commit log) at the location.
    #[error("no highwater table at {location} (no commits under {location}/_highwater/log)")]
    TableNotFound {
        /// The table's location.
        location: String,
    },

    /// `create` found a table already there.
    #[error("a highwater table already exists at {location} (version {version})")]
    TableExists {
        /// The table's location.
        location: String,
        /// Its latest version.
        version: u64,
    },

    /// Another run committed this version first. Nothing of this run is visible; rerun it on
    /// the new state.
    #[error(
        "conflict: version {version} was committed by run {winner} while run {run_id} was in flight; \
         nothing of run {run_id} is visible — rerun it"
    )]
    Conflict {
        /// The version both runs tried to commit.
        version: u64,
        /// The run that committed it.
        winner: String,
        /// This run.
        run_id: String,
    },

    /// The store silently overwrote an object written with put-if-absent, so commits could not be
    /// made atomic on it.
    #[error(
        "the store at {location} does not honour put-if-absent (a second PutMode::Create of {probe} \
         succeeded); highwater cannot commit atomically on it"
    )]
    UnsafeStore {
        /// The table's location.
        location: String,
        /// The probe object.
        probe: String,
    },

    /// A log entry or checkpoint could not be decoded.
    #[error("corrupt {kind} {path}: {reason}")]
    Corrupt {
        /// `commit`, `checkpoint`, `file list`, …
        kind: &'static str,
        /// The object.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The log skips a version.
    #[error("the commit log of {location} is missing version {missing} (found {found} after it)")]
    MissingVersion {
        /// The table's location.
        location: String,
        /// The missing version.
        missing: u64,
        /// The next version present.
        found: u64,
    },

    /// A commit or checkpoint was written by a newer highwater.
    #[error(
        "{path} has format version {found}, but this highwater reads up to version {supported}: \
         upgrade highwater to read this table"
    )]
    UnsupportedFormat {
        /// The object.
        path: String,
        /// Its format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A state file does not match the size or checksum its commit recorded.
    #[error("state file {path} is damaged: {detail}")]
    StateChecksum {
        /// The state file.
        path: String,
        /// Expected and found size or checksum.
        detail: String,
    },

    /// A committed file is neither at its final name nor where it was staged.
    #[error("publishing version {version}: {path} is missing (expected it staged at {staged})")]
    StagedFileMissing {
        /// The version being published.
        version: u64,
        /// The file's final path.
        path: String,
        /// Where it was staged.
        staged: String,
    },

    /// A run took so long that cleanup could have removed its staged files.
    #[error(
        "run {run_id} started {age:?} ago, more than half the staging retention ({retention:?}); \
         it may not commit, rerun it"
    )]
    RunTooOld {
        /// The run.
        run_id: String,
        /// How long ago it started.
        age: Duration,
        /// The staging retention.
        retention: Duration,
    },

    /// A source file could not be read as Parquet (truncated, wrong magic, a corrupt page, a
    /// panic inside the decoder).
    #[error("cannot read {file}: {detail}")]
    CorruptFile {
        /// The file (its ledger key).
        file: String,
        /// What went wrong.
        detail: String,
    },

    /// A source file's schema conflicts with the others'.
    #[error("{file}: column `{column}`: {detail}")]
    SchemaMismatch {
        /// The file.
        file: String,
        /// The column.
        column: String,
        /// How it conflicts.
        detail: String,
    },

    /// A path given as a table or source location is not usable.
    #[error("invalid location `{location}`: {reason}")]
    InvalidLocation {
        /// The location given.
        location: String,
        /// Why it was refused.
        reason: String,
    },

    /// A version was asked for that the log does not have.
    #[error("version {version} does not exist (the table is at version {latest})")]
    NoSuchVersion {
        /// The version asked for.
        version: u64,
        /// The latest version.
        latest: u64,
    },

    /// A request that contradicts the table's state (e.g. removing a file that is not live).
    #[error("{0}")]
    InvalidInput(String),

    /// An object store operation failed.
    #[error("{operation} {path}: {source}")]
    Store {
        /// `get`, `put`, `list`, …
        operation: &'static str,
        /// The object or prefix.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// An error of highwater-core.
    #[error(transparent)]
    Core(#[from] highwater_core::Error),

    /// An arrow error (schema encoding).
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl Error {
    /// Wraps an object store error with the operation and path.
    pub(crate) fn store(operation: &'static str, path: impl std::fmt::Display, source: object_store::Error) -> Self {
        Error::Store { operation, path: path.to_string(), source }
    }

    /// Whether this is an object-not-found error from the store.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Store { source: object_store::Error::NotFound { .. }, .. })
    }
}
