//! Where a job's messages go. Jobs print nothing: they tell a [`Report`] what they did and what
//! they worked around, and it decides whether progress bars are drawn. The application prints
//! to the terminal; a notebook or a test may keep the lines or drop them ([`Silent`]).

/// The listener of a job's chatter, warnings and progress.
pub trait Report: Sync {
    /// A line about what the job did (loaded, trained, wrote, resumed).
    fn say(&self, line: &str);
    /// A problem the job worked around: images left out (always with their count), rows that
    /// conflict, a run that could not be resumed.
    fn warn(&self, line: &str);
    /// Whether long steps draw progress bars (count, rate, ETA) on the terminal.
    fn progress(&self) -> bool;
}

/// A report that drops everything and draws no progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Report for Silent {
    fn say(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn progress(&self) -> bool {
        false
    }
}
