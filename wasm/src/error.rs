//! The one error type of highwater-wasm; in JavaScript each becomes an `Error` with the same
//! message.

use arrow_schema::ArrowError;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input could not be read: bad bytes, an unknown format, a CSV value of the wrong type.
    #[error("{input}: {detail}")]
    Input {
        /// Which input (`previous`, `current`, `index`).
        input: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The options are malformed (an unknown field, a missing key, a bad type name).
    #[error("options: {0}")]
    Options(String),
    /// The diff itself refused: a missing key column, a duplicate or null key, an incompatible
    /// index (the native message).
    #[error(transparent)]
    Diff(#[from] highwater_core::Error),
    /// Writing the results failed.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
