//! The application's error: a usage error (bad command line or configuration, exit code 2) or a
//! failure of the job (exit code 1), printed as one line.

use std::process::ExitCode;

/// What stopped a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The command line or the configuration is wrong; nothing was done.
    #[error("{0}")]
    Usage(String),
    /// The job failed (a missing or unreadable file, a checkpoint that does not fit, ...).
    #[error("{0}")]
    Failed(String),
}

/// Longest error message printed, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Result alias of the application.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    /// The process exit code: 2 for usage errors, 1 for failures.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Usage(_) => ExitCode::from(2),
            AppError::Failed(_) => ExitCode::from(1),
        }
    }

    /// The message on one line: multi-line library messages are joined with `; `, and a
    /// message that echoes a huge input (a 10 MB key) is cut to [`MAX_MESSAGE_CHARS`].
    pub fn one_line(&self) -> String {
        let line = self.joined();
        match line.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((cut, _)) => format!(
                "{}... ({} more characters)",
                &line[..cut],
                line[cut..].chars().count()
            ),
            None => line,
        }
    }

    fn joined(&self) -> String {
        let text = self.to_string();
        let parts: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        match parts.as_slice() {
            [first, rest @ ..] if first.ends_with(':') && !rest.is_empty() => {
                format!("{first} {}", rest.join("; "))
            }
            _ => parts.join("; "),
        }
    }
}

impl From<anomalymatch_core::Error> for AppError {
    fn from(e: anomalymatch_core::Error) -> Self {
        match e {
            anomalymatch_core::Error::Config(_) | anomalymatch_core::Error::ConfigFile { .. } => {
                AppError::Usage(e.to_string())
            }
            other => AppError::Failed(other.to_string()),
        }
    }
}

impl From<anomalymatch_models::Error> for AppError {
    fn from(e: anomalymatch_models::Error) -> Self {
        anomalymatch_core::Error::from(e).into()
    }
}

impl From<anomalymatch_active::ActiveError> for AppError {
    fn from(e: anomalymatch_active::ActiveError) -> Self {
        anomalymatch_core::Error::from(e).into()
    }
}

impl From<anomalymatch_augment::AugmentError> for AppError {
    fn from(e: anomalymatch_augment::AugmentError) -> Self {
        AppError::Usage(e.to_string())
    }
}

impl From<anomalymatch_io::IoError> for AppError {
    fn from(e: anomalymatch_io::IoError) -> Self {
        anomalymatch_core::Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_one_line_and_codes_follow_the_kind() {
        let e: AppError =
            anomalymatch_core::Error::Config(vec!["a: bad".into(), "b: worse".into()]).into();
        assert_eq!(e.one_line(), "invalid configuration: a: bad; b: worse");
        assert_eq!(e.exit_code(), ExitCode::from(2));
        let f = AppError::Failed("x.png: gone".into());
        assert_eq!(f.exit_code(), ExitCode::from(1));
    }

    #[test]
    fn a_message_echoing_a_huge_input_is_cut() {
        let key = "k".repeat(10_000_000);
        let line = AppError::Usage(format!("unknown key {key}")).one_line();
        assert!(line.len() < MAX_MESSAGE_CHARS + 100, "{}", line.len());
        assert!(
            line.ends_with("... (9999012 more characters)"),
            "{}",
            &line[990..]
        );
    }
}
