//! The store's error type.

/// Why a store request failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the state database thread for {path}")]
    Thread {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot migrate the state database to the current schema")]
    Migrate(#[from] rusqlite_migration::Error),
    #[error("a state database query failed")]
    Sql(#[from] rusqlite::Error),
    /// The named object (e.g. `instance web`) is already stored.
    #[error("{0} already exists")]
    Duplicate(String),
    /// A stored value is not one this version knows; it is never guessed.
    #[error("the {column} of row {row} in table {table} is {value:?}, which is not a known value")]
    Corrupt {
        table: &'static str,
        row: String,
        column: &'static str,
        value: String,
    },
    /// A stored JSON document no longer matches its type.
    #[error("the {column} of row {row} in table {table} cannot be decoded")]
    Undecodable {
        table: &'static str,
        row: String,
        column: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The database thread is gone (it panicked or the store was closed).
    #[error("the state database thread has stopped, so the request was not answered")]
    Stopped,
}

impl StoreError {
    /// Maps a constraint violation on insert to [`StoreError::Duplicate`]
    /// naming `what`; other errors pass through.
    pub(crate) fn on_insert(e: rusqlite::Error, what: impl FnOnce() -> String) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Self::Duplicate(what())
            }
            other => other.into(),
        }
    }
}
