//! The one error type of `highwater-diff`.

/// A `Result` whose error defaults to [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops a snapshot diff. Whenever a run returns one, nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loader's settings contradict each other.
    #[error("invalid diff settings: {0}")]
    Config(String),

    /// A key appears twice in one snapshot.
    #[error("the key ({key}) appears more than once in the {side} snapshot, in {files}: keys must be unique")]
    DuplicateKey {
        /// The key values.
        key: String,
        /// `new` or `old`.
        side: &'static str,
        /// The files holding it.
        files: String,
    },

    /// The snapshot location holds no data file (see `DiffLoader::allow_empty_snapshot`).
    #[error(
        "the snapshot at {location} has no data files: refusing to diff it as an empty table (every row \
         would be reported deleted); if the table is empty now, set allow_empty_snapshot"
    )]
    EmptySnapshot {
        /// The snapshot's location.
        location: String,
    },

    /// A state file of the table could not be read.
    #[error("state `{name}` of the table is damaged: {detail}")]
    State {
        /// The state's name.
        name: String,
        /// What is wrong.
        detail: String,
    },

    /// An error of the table or its source.
    #[error(transparent)]
    Store(#[from] highwater_store::Error),

    /// An error of highwater-core (a null key, an index made under other rules, …).
    #[error(transparent)]
    Core(#[from] highwater_core::Error),

    /// An arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}
