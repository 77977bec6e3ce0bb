//! `anomalymatch label` ([`anomalymatch_jobs::label`]): the active-learning session at the
//! terminal. Train, score the pool window, show the chosen candidates to the expert, journal
//! every answer the moment it is given, retrain, and repeat. Stop at any point (`q` at the
//! terminal, Ctrl-C, a crash) and run the same command again to resume where it stopped; a
//! line per cycle says what the expert found.

use crate::cli::{Common, CyclesFlag, DataFlags, Flags, int, push, text};
use crate::stdout::{Console, out};
use anomalymatch_active::SessionEnd;
use anomalymatch_active::session::{CycleReport, SessionObserver};
use anomalymatch_jobs::label::label;
use anomalymatch_jobs::{Override, Result};
use clap::Args;

/// Arguments of `label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Images, labels, size and iterations per cycle.
    #[command(flatten)]
    pub data: DataFlags,
    /// terminal, file:ANSWERS.csv or simulated [key: active.oracle].
    #[arg(long, value_name = "ORACLE")]
    pub oracle: Option<String>,
    /// Query strategy, e.g. top, uncertainty or mix:top=0.7,diverse=0.3 [key: active.query].
    #[arg(long, value_name = "STRATEGY")]
    pub query: Option<String>,
    /// Cycles of the session.
    #[command(flatten)]
    pub cycles: CyclesFlag,
    /// Candidates shown per cycle [key: active.queries_per_cycle].
    #[arg(long, value_name = "N")]
    pub per_cycle: Option<usize>,
}

impl Flags for LabelArgs {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(
            all,
            "active.oracle",
            self.oracle.as_deref().map(text),
            "--oracle",
        );
        push(
            all,
            "active.query",
            self.query.as_deref().map(text),
            "--query",
        );
        self.cycles.overrides(all);
        push(
            all,
            "active.queries_per_cycle",
            self.per_cycle.map(int),
            "--per-cycle",
        );
    }
}

/// Runs `label`.
pub fn run(args: LabelArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.data, &args])?;
    let l = label(&config, &Console::new(args.common.quiet), &mut Printer)?;
    out!(
        "{}: wrote {} ({} added, {} changed) and {}",
        match l.end {
            SessionEnd::Finished => "finished",
            SessionEnd::Stopped => "stopped; run the same command again to resume",
        },
        l.export.display(),
        l.added,
        l.changed,
        l.remembered.display()
    );
    Ok(())
}

/// Prints a line per finished cycle.
struct Printer;

impl SessionObserver for Printer {
    fn on_cycle(&mut self, r: &CycleReport) {
        // A sum over no image is -0.0 in Rust, which would print as "-0".
        let left = if r.estimated_unfound > 0.0 {
            r.estimated_unfound
        } else {
            0.0
        };
        out!(
            "cycle {}: {} of {} shown were anomalies; {} found so far; labels normal/anomaly \
             {}/{}; about {:.0} anomalies left in the window; {} unreadable image(s) left out",
            r.cycle,
            r.batch_anomalies,
            r.queried,
            r.anomalies_found,
            r.labels_per_class[0],
            r.labels_per_class[1],
            left,
            r.unreadable
        );
    }
}
