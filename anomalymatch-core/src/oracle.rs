//! The oracle trait: whoever labels queried items (a person, a file, ground truth).

use crate::error::Result;
use crate::label::Label;
use std::path::PathBuf;

/// One item shown to the oracle.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Position in the cycle's query, 0 first; answers name the candidate by it. A resumed
    /// cycle shows only the unanswered candidates, with the ranks they had.
    pub rank: usize,
    /// Image name as in label files.
    pub name: String,
    /// Anomaly score.
    pub score: f32,
    /// Where the image can be looked at, if it is a file.
    pub path: Option<PathBuf>,
}

/// One answer about one candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The candidate gets this label.
    Label {
        /// The candidate's [`Candidate::rank`].
        rank: usize,
        /// The label given; `Unknown` is treated as a skip.
        label: Label,
    },
    /// The candidate is worth keeping an eye on, whatever its label.
    Remember {
        /// The candidate's [`Candidate::rank`].
        rank: usize,
    },
}

/// Why an oracle returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OracleOutcome {
    /// It went through the candidates (answering some or all).
    Done,
    /// It asked to stop the session.
    Quit,
}

/// Labels queried candidates, possibly only some of them (a person may skip).
///
/// Answers go to `record` one at a time, as they are given, so that the caller can store each
/// durably before the next is asked for: a crash loses at most the answer being typed.
pub trait Oracle {
    /// Answers about `candidates`, each handed to `record` as soon as it is given.
    fn label(
        &mut self,
        candidates: &[Candidate],
        record: &mut dyn FnMut(Answer) -> Result<()>,
    ) -> Result<OracleOutcome>;
}
