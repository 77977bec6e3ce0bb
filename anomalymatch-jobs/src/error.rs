//! The jobs' error: what stopped a job, with the component's own error kept as its cause, so
//! that a caller can walk down to the I/O or decode error. Each is a usage error (the command
//! line or the configuration is wrong; nothing was done) or a failure of the job.

/// What stopped a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The configuration or an argument is wrong; nothing was done.
    #[error("{0}")]
    Usage(String),
    /// The job failed for a reason of its own (a missing checkpoint, a data set too small).
    #[error("{0}")]
    Failed(String),
    /// A configuration file or `--set` override does not read as TOML, or not as a
    /// configuration (an unknown key, a value of the wrong type).
    #[error("{place}: {}", .source.message().trim())]
    Config {
        /// The file and line (`path:line`), or the override, at fault.
        place: String,
        /// The parser's error.
        source: toml::de::Error,
    },
    /// A job's own record (a run's `run.json`, a training record) does not read or write as
    /// the JSON the job writes there.
    #[error("{}: {source}", .path.display())]
    Json {
        /// The record.
        path: std::path::PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A core error: labels, images, training, atomic writes.
    #[error(transparent)]
    Core(#[from] anomalymatch_core::Error),
    /// A model error: weights and checkpoints.
    #[error(transparent)]
    Models(#[from] anomalymatch_models::Error),
    /// An augmentation error (its settings).
    #[error(transparent)]
    Augment(#[from] anomalymatch_augment::AugmentError),
    /// An active-learning error: strategies, oracles, the session's files.
    #[error(transparent)]
    Active(#[from] anomalymatch_active::ActiveError),
    /// A survey-source or score-file error.
    #[error(transparent)]
    Io(#[from] anomalymatch_io::IoError),
}

/// Longest one-line message ([`JobError::one_line`]), in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Result alias of the jobs.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

impl JobError {
    /// An I/O failure on `path`, kept as the cause.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        JobError::Core(anomalymatch_core::Error::io(path, source))
    }

    /// A record at `path` that does not read or write as JSON.
    pub fn json(path: impl Into<std::path::PathBuf>, source: serde_json::Error) -> Self {
        JobError::Json {
            path: path.into(),
            source,
        }
    }

    /// The message on one line, as the command line prints it: multi-line library messages
    /// are joined with `; `, and a message that echoes a huge input (a 10 MB key) is cut to
    /// [`MAX_MESSAGE_CHARS`].
    pub fn one_line(&self) -> String {
        let text = self.to_string();
        let parts: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let line = match parts.as_slice() {
            [first, rest @ ..] if first.ends_with(':') && !rest.is_empty() => {
                format!("{first} {}", rest.join("; "))
            }
            _ => parts.join("; "),
        };
        match line.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((cut, _)) => format!(
                "{}... ({} more characters)",
                &line[..cut],
                line[cut..].chars().count()
            ),
            None => line,
        }
    }

    /// True when the configuration, the command line or another input of the user is wrong
    /// (exit code 2), false when the job failed (exit code 1).
    pub fn is_usage(&self) -> bool {
        use anomalymatch_core::Error as Core;
        let core_usage = |e: &Core| matches!(e, Core::Config(_) | Core::ConfigFile { .. });
        match self {
            JobError::Usage(_) | JobError::Config { .. } | JobError::Augment(_) => true,
            JobError::Failed(_) | JobError::Json { .. } => false,
            JobError::Core(e) => core_usage(e),
            JobError::Models(e) => match e {
                anomalymatch_models::Error::Config(_) => true,
                anomalymatch_models::Error::Core(e) => core_usage(e),
                _ => false,
            },
            JobError::Active(anomalymatch_active::ActiveError::Core(e)) => core_usage(e),
            JobError::Active(_) => false,
            JobError::Io(anomalymatch_io::IoError::Core(e)) => core_usage(e),
            JobError::Io(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_kept_down_to_the_io_error() {
        let gone = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = JobError::io("labels.csv", gone);
        assert_eq!(e.to_string(), "labels.csv: gone");
        let cause = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            cause.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        assert!(!e.is_usage());
    }

    #[test]
    fn messages_become_one_line() {
        let e: JobError =
            anomalymatch_core::Error::Config(vec!["a: bad".into(), "b: worse".into()]).into();
        assert_eq!(e.one_line(), "invalid configuration: a: bad; b: worse");
    }

    #[test]
    fn a_message_echoing_a_huge_input_is_cut() {
        let key = "k".repeat(10_000_000);
        let line = JobError::Usage(format!("unknown key {key}")).one_line();
        assert!(line.len() < MAX_MESSAGE_CHARS + 100, "{}", line.len());
        assert!(
            line.ends_with("... (9999012 more characters)"),
            "{}",
            &line[990..]
        );
    }

    #[test]
    fn configuration_errors_are_usage_errors_from_any_crate() {
        let config = || anomalymatch_core::Error::Config(vec!["a: bad".into()]);
        assert!(JobError::from(config()).is_usage());
        assert!(JobError::from(anomalymatch_models::Error::Core(config())).is_usage());
        assert!(JobError::from(anomalymatch_active::ActiveError::Core(config())).is_usage());
        let strategy = anomalymatch_active::ActiveError::UnknownStrategy("x".into());
        assert!(!JobError::from(strategy).is_usage());
    }
}
