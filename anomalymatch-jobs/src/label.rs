//! The labelling session's driver: train, score the pool window, show the chosen candidates to
//! the oracle, journal every answer the moment it is given, retrain, and repeat. Stopped at any
//! point (the oracle's `q`, Ctrl-C, a crash), the same job started again resumes where it
//! stopped. The session lives in `OUT/session`; at the end its labels are written merged over
//! the user's label file (which is never touched) to `OUT/session/labeled_data.csv`, and the
//! remember list to `OUT/session/remembered.csv`.

use crate::components;
use crate::config::Settings;
use crate::error::{JobError, Result};
use crate::report::Report;
use anomalymatch_active::session::SessionObserver;
use anomalymatch_active::{FileOracle, OracleSpec, SessionEnd, SimulatedExpert, TerminalOracle};
use anomalymatch_core::Oracle;
use std::path::{Path, PathBuf};

/// How a labelling session ended, and what it wrote.
#[derive(Debug)]
pub struct Labelled {
    /// Finished every cycle, or stopped by the oracle (resumable).
    pub end: SessionEnd,
    /// The session's labels merged over the user's, `OUT/session/labeled_data.csv`.
    pub export: PathBuf,
    /// Labels the export adds to the user's file.
    pub added: usize,
    /// Labels of the user's file the export changes.
    pub changed: usize,
    /// The remember list, `OUT/session/remembered.csv`.
    pub remembered: PathBuf,
}

/// Runs (or resumes) the session `config` describes with the oracle `active.oracle` names;
/// `observer` hears each scored pool and finished cycle.
pub fn label(
    config: &Settings,
    report: &dyn Report,
    observer: &mut dyn SessionObserver,
) -> Result<Labelled> {
    let (images, labels_path) = components::images_and_labels(config)?;
    let session_dir = config.output.dir.join("session");
    let export = session_dir.join("labeled_data.csv");
    // Everything that can be wrong is checked before the first training step.
    let mut oracle = oracle(config, &images, report)?;
    let strategy = config.active.build(())?;
    if let Some(user) = &labels_path
        && user.canonicalize().ok() == export.canonicalize().ok()
        && export.exists()
    {
        return Err(JobError::Usage(format!(
            "{}: the session exports its labels there, over your file; keep your labels \
             elsewhere or use another --out",
            user.display()
        )));
    }
    let mut session = components::session(config, &images, labels_path.as_deref(), report)?;
    report.say(&format!(
        "session {}: {} of {} cycles done, {} labels",
        session_dir.display(),
        session.cycles_done(),
        config.active.cycles,
        session.labels().len()
    ));
    let end = session.run(strategy.as_ref(), oracle.as_mut(), observer)?;
    let merge = session.export_labels(labels_path.as_deref(), &export)?;
    let remembered = session_dir.join("remembered.csv");
    session.export_remembered(&remembered)?;
    Ok(Labelled {
        end,
        export,
        added: merge.added,
        changed: merge.changed,
        remembered,
    })
}

/// The oracle `active.oracle` names, checked before any work: a missing answers file or ground
/// truth is an error now rather than after training.
fn oracle(config: &Settings, images: &Path, report: &dyn Report) -> Result<Box<dyn Oracle>> {
    let spec: OracleSpec = config.active.oracle.parse().map_err(JobError::Usage)?;
    Ok(match spec {
        OracleSpec::Terminal => Box::new(TerminalOracle::stdio()),
        OracleSpec::File(path) => {
            if !path.is_file() {
                return Err(JobError::Failed(format!(
                    "{}: no such answers file (active.oracle)",
                    path.display()
                )));
            }
            Box::new(FileOracle::new(path))
        }
        OracleSpec::Simulated => {
            let (_, truth) =
                components::truth(&config.truth, images, report)?.ok_or_else(|| {
                    JobError::Usage(
                        "the simulated oracle needs ground truth: set truth.classes".into(),
                    )
                })?;
            Box::new(SimulatedExpert::new(truth))
        }
    })
}
