//! Errors of the core crate: every variant that concerns a file names it.

use std::path::PathBuf;

/// Result alias used throughout `anomalymatch-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A label file has a bad header or row.
    #[error("{}: {message}", at_line(path, *line))]
    LabelFile {
        /// The label file.
        path: PathBuf,
        /// 1-based line number (0 when the problem is not tied to a line, and not shown).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// An image could not be read or decoded.
    #[error("{path}: unreadable image: {source}")]
    Image {
        /// The image file (or `archive:member` for images inside containers).
        path: PathBuf,
        /// What the reader or decoder said.
        source: crate::decode::DecodeError,
    },
    /// A collection of images (an archive, an HDF5 or FITS file, a folder) cannot be read as
    /// one, or an item inside it is unusable.
    #[error("{path}: {message}{}", caused(.cause))]
    Source {
        /// The file or folder (with `:item` appended where one item is at fault).
        path: PathBuf,
        /// What is wrong.
        message: String,
        /// The reader's error underneath, where there is one (zip, HDF5, FITS, Parquet).
        #[source]
        cause: Option<Cause>,
    },
    /// Some images of a load were unreadable and strict mode was asked for.
    #[error("{count} unreadable image(s), first: {first}")]
    UnreadableImages {
        /// How many failed.
        count: usize,
        /// The first failure, with its file name.
        first: String,
    },
    /// A configuration was rejected; one message per bad field.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// A configuration file could not be parsed.
    #[error("{path}: {message}")]
    ConfigFile {
        /// The configuration file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// Another process holds the lock of a folder this one would write.
    #[error("{}: in use by {holder}; wait for it to finish or stop it", dir.display())]
    Locked {
        /// The locked folder.
        dir: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
    },
    /// A tensor or buffer had the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An argument was outside what the function accepts.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A checkpoint or weight file is malformed or does not fit the model it is loaded into.
    #[error("{path}: {message}{}", caused(.cause))]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong, naming the metadata key or tensor where there is one.
        message: String,
        /// The parser's error underneath, where there is one (JSON, safetensors).
        #[source]
        cause: Option<Cause>,
    },
    /// The caller stopped the work (Ctrl-C in a notebook); what it had finished is kept.
    #[error("interrupted")]
    Interrupted,
    /// An error from candle (tensor maths).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// An error underneath another, kept so that callers can walk down to it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `: cause` for a message followed by its cause, or nothing.
pub fn caused(cause: &Option<Cause>) -> String {
    cause.as_ref().map_or(String::new(), |c| format!(": {c}"))
}

/// `path:line`, or the path alone for line 0 (a problem of the whole file).
fn at_line(path: &std::path::Path, line: u64) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

impl Error {
    /// A [`Error::Checkpoint`] about `path`, with the parser's error underneath where there is
    /// one.
    pub fn checkpoint(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
        cause: Option<Cause>,
    ) -> Self {
        Error::Checkpoint {
            path: path.into(),
            message: message.into(),
            cause,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
