//! Errors of the models crate; they convert into [`anomalymatch_core::Error`] so that
//! callers of the [`anomalymatch_core::Classifier`] trait see one error type.

use anomalymatch_core::error::{Cause, caused};
use std::path::PathBuf;

/// Result alias used throughout `anomalymatch-models`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building models or reading weights and checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A weight or checkpoint file is unreadable, malformed, or does not fit the model.
    #[error("{path}: {message}{}", caused(.cause))]
    Weights {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, naming the tensor where there is one.
        message: String,
        /// The parser's error underneath, where there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// A model configuration was rejected; one message per bad field.
    #[error("invalid model configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from candle (tensor maths).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error from the core crate (atomic writes, variable loading).
    #[error(transparent)]
    Core(#[from] anomalymatch_core::Error),
}

impl Error {
    /// A [`Error::Weights`] for `path`.
    pub(crate) fn weights(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// A [`Error::Weights`] for `path` with the parser's error underneath.
    pub(crate) fn weights_caused(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Weights {
            path: path.into(),
            message: message.into(),
            cause: Some(cause.into()),
        }
    }
}

impl From<Error> for anomalymatch_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Weights {
                path,
                message,
                cause,
            } => anomalymatch_core::Error::checkpoint(path, message, cause),
            Error::Config(messages) => anomalymatch_core::Error::Config(messages),
            Error::Io { path, source } => anomalymatch_core::Error::Io { path, source },
            Error::Candle(e) => anomalymatch_core::Error::Candle(e),
            Error::Core(e) => e,
        }
    }
}
