//! Errors of the I/O crate: every variant that concerns a file names it, and the item inside it
//! where there is one.

use anomalymatch_core::error::{Cause, caused};
use std::path::{Path, PathBuf};

/// Result alias of `anomalymatch-io`.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing survey files.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not in the format expected, or an item inside it is unusable.
    #[error("{path}: {message}{}", caused(.cause))]
    Format {
        /// The file concerned (with `:item` appended where one item is at fault).
        path: PathBuf,
        /// What is wrong.
        message: String,
        /// The reader's error underneath, where there is one (zip, HDF5, FITS, Parquet).
        #[source]
        cause: Option<Cause>,
    },
    /// An error from the core crate.
    #[error(transparent)]
    Core(#[from] anomalymatch_core::Error),
}

impl IoError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error about `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        IoError::Format {
            path: path.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// A format error about `path` with the reader's error underneath; the message says what
    /// was being read, and the cause's text follows it.
    pub fn format_caused(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        IoError::Format {
            path: path.into(),
            message: message.into(),
            cause: Some(cause.into()),
        }
    }

    /// A format error about one item inside `path` (a dataset, an HDU, a member), reported as
    /// `path:item: message`.
    pub fn item(path: &Path, item: &str, message: impl Into<String>) -> Self {
        IoError::Format {
            path: PathBuf::from(format!("{}:{item}", path.display())),
            message: message.into(),
            cause: None,
        }
    }
}

impl From<IoError> for anomalymatch_core::Error {
    fn from(e: IoError) -> Self {
        match e {
            IoError::Core(e) => e,
            IoError::Io { path, source } => anomalymatch_core::Error::Io { path, source },
            IoError::Format {
                path,
                message,
                cause,
            } => anomalymatch_core::Error::Source {
                path,
                message,
                cause,
            },
        }
    }
}
