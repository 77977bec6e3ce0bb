//! Progress display for long jobs: count, rate and ETA on stderr, or nothing at all.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar that can be switched off; every long job in the workspace reports through it.
///
/// It draws nothing when disabled or when stderr is not a terminal (logs and CI stay clean).
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for `total` items (a spinner with a count when the total is unknown), labelled `label`.
    pub fn new(total: Option<usize>, label: &str, enabled: bool) -> Self {
        if !enabled {
            return Progress::hidden();
        }
        let bar = match total {
            Some(n) => {
                let bar = ProgressBar::new(n as u64);
                // Templates are compile-time constants; a bad one falls back to the default style.
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta}",
                ) {
                    bar.set_style(style);
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] {spinner} {pos} {per_sec}",
                ) {
                    bar.set_style(style);
                }
                bar
            }
        };
        bar.set_message(label.to_string());
        Progress { bar: Some(bar) }
    }

    /// A progress that shows nothing.
    pub fn hidden() -> Self {
        Progress { bar: None }
    }

    /// Records `n` more items done.
    pub fn inc(&self, n: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
    }

    /// Ends the display, leaving the final count on screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
