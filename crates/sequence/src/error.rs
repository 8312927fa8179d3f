//! The one error type of `highwater-sequence`.

/// A `Result` whose error defaults to [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops a sequence load. Whenever a run returns one, nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loader's settings contradict each other.
    #[error("invalid sequence loader settings: {0}")]
    Config(String),

    /// A new file holds ids at or below the watermark and `late_files = error`.
    #[error(
        "{file} is a late file: it is new since the last run but holds `{column}` ids at or below the watermark {watermark}"
    )]
    LateFile {
        /// The file.
        file: String,
        /// The sequence column.
        column: String,
        /// The watermark.
        watermark: i64,
    },

    /// A file changed in place since the last run and `rewritten_files = error`.
    #[error(
        "{file} was rewritten in place since the last run (its size or etag changed); its rows may be \
         loaded already. Set rewritten_files = skip, or reload with an upsert key"
    )]
    RewrittenFile {
        /// The file.
        file: String,
    },

    /// A sequence id is null and `null_cursors = error`.
    #[error("{file} row {row}: the sequence id `{column}` is null (set null_cursors = skip or load)")]
    NullSequence {
        /// The file.
        file: String,
        /// The row within the file.
        row: u64,
        /// The sequence column.
        column: String,
    },

    /// The run would load more rows than `max_rows` allows.
    #[error("the run would load {rows} rows, more than max_rows = {max}: unexpected data volume, nothing committed")]
    TooManyRows {
        /// Rows the run found to load.
        rows: u64,
        /// The limit.
        max: u64,
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

    /// An error of highwater-core.
    #[error(transparent)]
    Core(#[from] highwater_core::Error),

    /// An arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}
