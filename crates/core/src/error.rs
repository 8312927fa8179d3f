//! The one error type of `highwater-core`.

use arrow_schema::{ArrowError, DataType};

/// A `Result` whose error defaults to [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `highwater-core`.
///
/// Variants name the column, row and value involved so that a message can be acted on without a
/// debugger. Functions of this crate never panic on input data; they return one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A column the caller asked for is not in the batch or schema.
    #[error("column `{column}` not found (available: {available})")]
    ColumnNotFound {
        /// The missing column.
        column: String,
        /// The columns that exist, comma separated.
        available: String,
    },

    /// The same column was named twice in one selection.
    #[error("column `{column}` is listed more than once")]
    DuplicateColumn {
        /// The repeated column.
        column: String,
    },

    /// A column's type has no canonical encoding in the row-hash spec.
    #[error("column `{column}` has type {data_type}, which row-hash spec v1 does not encode")]
    UnsupportedType {
        /// The column (a dotted path for nested fields).
        column: String,
        /// Its Arrow type.
        data_type: DataType,
    },

    /// A naive timestamp (no time zone) was met without a declared zone.
    #[error(
        "column `{column}` holds naive timestamps (no time zone); declare the zone they are in \
         (e.g. `naive_timezone = \"UTC\"`)"
    )]
    NaiveTimestamp {
        /// The column.
        column: String,
    },

    /// A time zone name or offset could not be parsed.
    #[error("unknown time zone `{zone}`: {reason}")]
    InvalidTimezone {
        /// The text given.
        zone: String,
        /// Why it was refused.
        reason: String,
    },

    /// A naive local time does not exist in the declared zone (it falls into a DST gap).
    #[error("column `{column}` row {row}: local time {local} does not exist in zone {zone}")]
    NonexistentLocalTime {
        /// The column.
        column: String,
        /// The row within its batch.
        row: usize,
        /// The local time.
        local: String,
        /// The declared zone.
        zone: String,
    },

    /// A value lies outside the range a conversion can represent.
    #[error("column `{column}` row {row}: value out of range ({detail})")]
    OutOfRange {
        /// The column.
        column: String,
        /// The row within its batch.
        row: usize,
        /// What overflowed.
        detail: String,
    },

    /// A key column holds a null and the caller did not allow null keys.
    #[error("key column `{column}` is null at row {row}")]
    NullKey {
        /// The key column.
        column: String,
        /// The row within its batch.
        row: usize,
    },

    /// A key appears twice in one snapshot.
    #[error("the key ({key}) appears twice in {side}: keys must be unique")]
    DuplicateKey {
        /// The key values (`id=5, region=eu`).
        key: String,
        /// Which snapshot (`the new snapshot`).
        side: String,
        /// The key's fingerprint, to find the rows again.
        fingerprint: u128,
    },

    /// A watermark's text could not be parsed as the expected type.
    #[error("cannot parse watermark `{input}` as {expected}: {reason}")]
    ParseWatermark {
        /// The text given.
        input: String,
        /// The type it was parsed as.
        expected: String,
        /// Why it failed.
        reason: String,
    },

    /// Two watermark values of different kinds were combined.
    #[error("watermark type mismatch: expected {expected}, found {found}")]
    WatermarkTypeMismatch {
        /// The kind the table uses.
        expected: String,
        /// The kind that was supplied.
        found: String,
    },

    /// Input was structurally invalid (e.g. batches whose schemas disagree).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// An error from arrow.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

impl Error {
    /// A [`Error::ColumnNotFound`] listing the columns there are.
    pub fn column_not_found(column: &str, available: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let available: Vec<String> = available.into_iter().map(|c| c.as_ref().to_owned()).collect();
        Error::ColumnNotFound { column: column.to_owned(), available: available.join(", ") }
    }
}
