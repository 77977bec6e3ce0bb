//! How the application shows a job's error ([`JobError`]): one line on stderr, and the exit
//! code 2 for a usage error (bad command line or configuration) or 1 for a failure of the job.

use anomalymatch_jobs::JobError;
use std::process::ExitCode;

/// Longest error message printed, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// The process exit code of a job's error: 2 for usage errors, 1 for failures.
pub fn exit_code(e: &JobError) -> ExitCode {
    ExitCode::from(if e.is_usage() { 2 } else { 1 })
}

/// The message on one line: multi-line library messages are joined with `; `, and a message
/// that echoes a huge input (a 10 MB key) is cut to [`MAX_MESSAGE_CHARS`].
pub fn one_line(e: &JobError) -> String {
    let line = joined(e);
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!(
            "{}... ({} more characters)",
            &line[..cut],
            line[cut..].chars().count()
        ),
        None => line,
    }
}

fn joined(e: &JobError) -> String {
    let text = e.to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_one_line_and_codes_follow_the_kind() {
        let e: JobError =
            anomalymatch_core::Error::Config(vec!["a: bad".into(), "b: worse".into()]).into();
        assert_eq!(one_line(&e), "invalid configuration: a: bad; b: worse");
        assert_eq!(exit_code(&e), ExitCode::from(2));
        let f = JobError::Failed("x.png: gone".into());
        assert_eq!(exit_code(&f), ExitCode::from(1));
    }

    #[test]
    fn a_message_echoing_a_huge_input_is_cut() {
        let key = "k".repeat(10_000_000);
        let line = one_line(&JobError::Usage(format!("unknown key {key}")));
        assert!(line.len() < MAX_MESSAGE_CHARS + 100, "{}", line.len());
        assert!(
            line.ends_with("... (9999012 more characters)"),
            "{}",
            &line[990..]
        );
    }
}
