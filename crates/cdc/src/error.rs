//! The one error type of `highwater-cdc`.

/// A `Result` whose error defaults to [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops a CDC apply. Whenever a run returns one, nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loader's settings contradict each other.
    #[error("invalid CDC loader settings: {0}")]
    Config(String),

    /// An event file changed in place since the last run and `rewritten_files = error`.
    #[error(
        "{file} was rewritten in place since the last run (its size or etag changed); set rewritten_files = \
         reload to read it again (replayed events are ignored) or skip"
    )]
    RewrittenFile {
        /// The file.
        file: String,
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

    /// An error of highwater-core: a bad event (unknown operation, null key or sequence, two
    /// different events with one key and sequence), named by file and row.
    #[error(transparent)]
    Core(#[from] highwater_core::Error),

    /// An arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}
