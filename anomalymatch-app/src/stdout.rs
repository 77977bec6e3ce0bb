//! Standard output that never panics, and warnings on standard error; both print text from
//! users' files (image names) with control characters escaped, so that a name cannot drive the
//! terminal.
//!
//! Standard output never panics. A reader that stops early (`discover | head -1`) closes
//! the pipe: from then on output is dropped and the job goes on to write its files, as a
//! job's files matter more than its chatter. Any other failure (a full disk behind `>`) is
//! kept and reported by [`finish`] once the job is done, as a one-line error.

use anomalymatch_core::printable;
use anomalymatch_jobs::{JobError, Report, Result};
use std::io::Write;
use std::sync::Mutex;

/// Whether output still goes out, and the first failure other than a closed pipe.
static STATE: Mutex<(bool, Option<String>)> = Mutex::new((true, None));

/// Writes `text` to standard output unless an earlier write failed, control characters other
/// than line ends and tabs escaped.
pub fn write(text: std::fmt::Arguments) {
    let text = text.to_string();
    let lines: Vec<_> = text.split('\n').map(printable).collect();
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if !state.0 {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(lines.join("\n").as_bytes())
        .and_then(|()| out.flush())
    {
        state.0 = false;
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            state.1 = Some(e.to_string());
        }
    }
}

/// The job's end: an error if standard output failed other than by a closed pipe.
pub fn finish() -> Result<()> {
    let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    match &state.1 {
        Some(e) => Err(JobError::Failed(format!("standard output: {e}"))),
        None => Ok(()),
    }
}

/// `println!` through [`write`].
macro_rules! out {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use out;

/// Prints `warning: TEXT` on standard error, every control character escaped: a warning is one
/// line, whatever the names in it hold.
pub fn write_warning(text: std::fmt::Arguments) {
    eprintln!("warning: {}", printable(&text.to_string()));
}

/// `eprintln!("warning: ...")` through [`write_warning`].
macro_rules! warning {
    ($($arg:tt)*) => {
        $crate::stdout::write_warning(format_args!($($arg)*))
    };
}
pub(crate) use warning;

/// The terminal as a job's report: chatter on standard output unless quiet, warnings on
/// standard error always, and progress bars where asked for.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    /// No chatter.
    pub quiet: bool,
    /// Progress bars.
    pub bars: bool,
}

impl Console {
    /// Chatter and bars, or neither when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Console {
            quiet,
            bars: !quiet,
        }
    }
}

impl Console {
    /// Says which files a job wrote: `wrote a, b and c`.
    pub fn wrote(&self, paths: &[std::path::PathBuf]) {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let list = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.concat(),
        };
        self.say(&format!("wrote {list}"));
    }
}

impl Report for Console {
    fn say(&self, line: &str) {
        if !self.quiet {
            out!("{line}");
        }
    }

    fn warn(&self, line: &str) {
        warning!("{line}");
    }

    fn progress(&self) -> bool {
        self.bars
    }
}
