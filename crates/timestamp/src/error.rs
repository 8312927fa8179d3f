//! The one error type of `highwater-timestamp`.

/// A `Result` whose error defaults to [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops a timestamp load. Whenever a run returns one, nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loader's settings contradict each other.
    #[error("invalid timestamp loader settings: {0}")]
    Config(String),

    /// A new file holds rows at or below the watermark and `late_files = error`.
    #[error(
        "{file} is a late file: it is new since the last run but holds `{column}` values at or below the \
         watermark {watermark} (set late_files = load or skip)"
    )]
    LateFile {
        /// The file.
        file: String,
        /// The cursor column.
        column: String,
        /// The watermark.
        watermark: String,
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

    /// A cursor value is null and `null_cursors = error`.
    #[error("{file} row {row}: the cursor `{column}` is null (set null_cursors = skip or load)")]
    NullCursor {
        /// The file.
        file: String,
        /// The row within the file.
        row: u64,
        /// The cursor column.
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

    /// A backfill asks for a range that is already loaded.
    #[error("the range ({start}, {end}] overlaps data already loaded ({loaded}); set replace = true to reload it")]
    RangeLoaded {
        /// The window start.
        start: String,
        /// The window end.
        end: String,
        /// The loaded ranges it overlaps.
        loaded: String,
    },

    /// Two rows of one key have the same cursor but different content.
    #[error(
        "key {key} has two rows with cursor {cursor} and different content ({first}, {second}): it is ambiguous which wins"
    )]
    AmbiguousDuplicate {
        /// The key, as `column=value` pairs.
        key: String,
        /// The cursor value.
        cursor: String,
        /// Where the first row came from.
        first: String,
        /// Where the second row came from.
        second: String,
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

    /// An error of highwater-core (hashing, keys, watermarks).
    #[error(transparent)]
    Core(#[from] highwater_core::Error),

    /// An arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}
