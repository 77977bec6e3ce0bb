//! `anomalymatch label`: the active-learning session. Train, score the pool window, show the
//! chosen candidates to the expert, journal every answer the moment it is given, retrain, and
//! repeat. Stop at any point (`q` at the terminal, Ctrl-C, a crash) and run the same command
//! again to resume where it stopped. The session lives in `OUT/session`; at the end its labels
//! are written merged over the user's label file (which is never touched) to
//! `OUT/session/labeled_data.csv`, and the remember list to `OUT/session/remembered.csv`.

use crate::assemble::{self, say};
use crate::cli::{Common, CyclesFlag, DataFlags, Flags, int, push, text};
use crate::config::{Config, Override};
use crate::error::{AppError, Result};
use crate::stdout::out;
use anomalymatch_active::session::{CycleReport, SessionObserver};
use anomalymatch_active::{FileOracle, OracleSpec, SessionEnd, SimulatedExpert, TerminalOracle};
use anomalymatch_core::{Check, Oracle};
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
    label(&config, args.common.quiet)
}

fn label(config: &Config, quiet: bool) -> Result<()> {
    let (images, labels_path) = assemble::images_and_labels(config)?;
    let session_dir = config.output.dir.join("session");
    let export = session_dir.join("labeled_data.csv");
    // Everything that can be wrong is checked before the first training step.
    let mut oracle = oracle(config, &images)?;
    let strategy = config.active.clone().check()?.build(())?;
    if let Some(user) = &labels_path
        && user.canonicalize().ok() == export.canonicalize().ok()
        && export.exists()
    {
        return Err(AppError::Usage(format!(
            "{}: the session exports its labels there, over your file; keep your labels \
             elsewhere or use another --out",
            user.display()
        )));
    }
    let mut session = assemble::session(config, &images, labels_path.as_deref(), quiet, !quiet)?;
    say(
        quiet,
        format!(
            "session {}: {} of {} cycles done, {} labels",
            session_dir.display(),
            session.cycles_done(),
            config.active.cycles,
            session.labels().len()
        ),
    );
    let end = session.run(strategy.as_ref(), oracle.as_mut(), &mut Printer)?;
    let merge = session.export_labels(labels_path.as_deref(), &export)?;
    let remembered = session_dir.join("remembered.csv");
    session.export_remembered(&remembered)?;
    out!(
        "{}: wrote {} ({} added, {} changed) and {}",
        match end {
            SessionEnd::Finished => "finished",
            SessionEnd::Stopped => "stopped; run the same command again to resume",
        },
        export.display(),
        merge.added,
        merge.changed,
        remembered.display()
    );
    Ok(())
}

/// The oracle `active.oracle` names, checked before any work: a missing answers file or ground
/// truth is an error now rather than after training.
fn oracle(config: &Config, images: &std::path::Path) -> Result<Box<dyn Oracle>> {
    let spec: OracleSpec = config.active.oracle.parse().map_err(AppError::Usage)?;
    Ok(match spec {
        OracleSpec::Terminal => Box::new(TerminalOracle::stdio()),
        OracleSpec::File(path) => {
            if !path.is_file() {
                return Err(AppError::Failed(format!(
                    "{}: no such answers file (active.oracle)",
                    path.display()
                )));
            }
            Box::new(FileOracle::new(path))
        }
        OracleSpec::Simulated => {
            let (_, truth) = assemble::truth(&config.truth, images)?.ok_or_else(|| {
                AppError::Usage("the simulated oracle needs ground truth: set truth.classes".into())
            })?;
            Box::new(SimulatedExpert::new(truth))
        }
    })
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
