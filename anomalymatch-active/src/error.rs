//! Errors of the active-learning crate.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = ActiveError> = std::result::Result<T, E>;

/// What can go wrong in querying, labelling and sessions.
#[derive(Debug, thiserror::Error)]
pub enum ActiveError {
    /// An error from the core crate (labels, images, training).
    #[error(transparent)]
    Core(#[from] anomalymatch_core::Error),
    /// A strategy name or mix specification was not understood.
    #[error("unknown query strategy {0:?}")]
    UnknownStrategy(String),
    /// A strategy needs something the input lacks (e.g. embeddings).
    #[error("{strategy}: {message}")]
    Strategy {
        /// The strategy's name.
        strategy: String,
        /// What is missing.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A journal or state file is malformed.
    #[error("{path}:{line}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

impl From<ActiveError> for anomalymatch_core::Error {
    fn from(e: ActiveError) -> Self {
        match e {
            ActiveError::Core(e) => e,
            ActiveError::Io { path, source } => anomalymatch_core::Error::Io { path, source },
            other => anomalymatch_core::Error::InvalidArgument(other.to_string()),
        }
    }
}
