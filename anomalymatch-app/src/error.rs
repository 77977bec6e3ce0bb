//! How the application shows a job's error ([`JobError`]): its one line
//! ([`JobError::one_line`]) on stderr, and the exit code 2 for a usage error (bad command line
//! or configuration) or 1 for a failure of the job.

use anomalymatch_jobs::JobError;
use std::process::ExitCode;

/// The process exit code of a job's error: 2 for usage errors, 1 for failures.
pub fn exit_code(e: &JobError) -> ExitCode {
    ExitCode::from(if e.is_usage() { 2 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_with_2_and_failures_with_1() {
        let e: JobError = anomalymatch_core::Error::Config(vec!["a: bad".into()]).into();
        assert_eq!(exit_code(&e), ExitCode::from(2));
        let f = JobError::Failed("x.png: gone".into());
        assert_eq!(exit_code(&f), ExitCode::from(1));
    }
}
