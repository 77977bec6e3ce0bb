//! An active-learning session through the library: a pretrained Lite0, the built-in data, a
//! query strategy, and a simulated expert who answers from the hidden classes. The session
//! journals every answer in its folder and resumes there when run again; the `anomalymatch
//! label` command is this with a person, a file or a simulation as the oracle.
//!
//! `cargo run --release --example session`

use anomalymatch::active::session::{CycleReport, SessionObserver};
use anomalymatch::active::{ActiveConfig, Session, SessionConfig, SimulatedExpert};
use anomalymatch::augment::AugmentConfig;
use anomalymatch::core::{
    Check, ClassTable, DataConfig, FolderSource, LabelTable, TrainConfig, UnlabelledPool, Views,
};
use anomalymatch::models::{ModelConfig, ModelInput};
use std::error::Error;
use std::path::Path;

/// Prints what each cycle found.
struct Report;

impl SessionObserver for Report {
    fn on_cycle(&mut self, r: &CycleReport) {
        println!(
            "cycle {}: {} of {} shown were mergers; {} found so far",
            r.cycle, r.batch_anomalies, r.queried, r.anomalies_found
        );
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gz1-mini");
    let start = LabelTable::read(&root.join("labeled_data.csv"))?
        .rows()
        .iter()
        .map(|r| (r.filename.clone(), r.label))
        .collect();
    let truth = ClassTable::read(&root.join("classes.csv"))?.labels("merger", &[]);

    let data = DataConfig::default().check()?;
    let spec = data.spec();
    let source = Box::new(FolderSource::open(root.join("images"))?);
    let pool = UnlabelledPool::new(source, data.build(())?, data.n_to_load)?;
    let input = ModelInput {
        in_channels: spec.channels.channels(),
        num_classes: anomalymatch::core::Label::CLASSES,
        seed: 7,
    };
    let model = ModelConfig::default().check()?.build(input)?;
    let augmenter = AugmentConfig::default().check()?.build(())?;
    let trainer = TrainConfig::default()
        .check()?
        .build((model, augmenter, spec, 7))?;
    let active = ActiveConfig {
        cycles: 2,
        queries_per_cycle: 10,
        query: "mix:top=0.7,diverse=0.3".into(),
        ..ActiveConfig::default()
    }
    .check()?;
    let config = SessionConfig {
        cycles: active.cycles,
        iterations: 20,
        queries_per_cycle: active.queries_per_cycle,
        score_batch: 128,
        score_views: Views::Single,
        ensemble: 1,
        seed: 7,
        show_progress: true,
    };
    let dir = std::env::temp_dir().join("anomalymatch-session-example");
    let mut session = Session::open(&dir, config, trainer, pool, start)?;
    let strategy = active.build(())?;
    session.run(
        strategy.as_ref(),
        &mut SimulatedExpert::new(truth),
        &mut Report,
    )?;
    println!(
        "{} labels; the journal is in {}",
        session.labels().len(),
        dir.display()
    );
    Ok(())
}
