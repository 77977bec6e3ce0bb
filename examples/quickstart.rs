//! The library end to end on the built-in data: decode the labelled and unlabelled images,
//! train FixMatch on a pretrained EfficientNet-Lite0 for a few steps, score every unlabelled
//! image with the EMA model and print the most anomalous. Every component comes from its
//! configuration section, checked then built; the `anomalymatch discover` command does the same
//! with outputs and reports.
//!
//! `cargo run --release --example quickstart`

use anomalymatch::augment::AugmentConfig;
use anomalymatch::core::fixmatch::TrainData;
use anomalymatch::core::{
    Check, DataConfig, FolderSource, LabelTable, LabelledSet, Ranking, ScoreConfig, Scorer,
    TrainConfig, UnlabelledPool,
};
use anomalymatch::models::{ModelConfig, ModelInput};
use std::error::Error;
use std::path::Path;

fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gz1-mini");
    let labels = LabelTable::read(&root.join("labeled_data.csv"))?;
    let known: Vec<String> = labels
        .rows()
        .iter()
        .filter(|r| r.label.is_known())
        .map(|r| r.filename.clone())
        .collect();

    // [data]: how images are decoded; the pool holds the unlabelled ones.
    let data = DataConfig::default().check()?;
    let spec = data.spec();
    let source = Box::new(FolderSource::open(root.join("images"))?);
    let mut pool = UnlabelledPool::new(source, data.build(())?, data.n_to_load)?;
    let (loaded, missing) = pool.load_named(&known, false)?;
    println!(
        "{} labelled images, {} not found",
        loaded.names.len(),
        missing.len()
    );
    let label_of = |n: &String| labels.get(n);
    let set_labels = loaded.names.iter().map(label_of).collect();
    let labelled = LabelledSet::new(loaded.names, set_labels, loaded.images)?;
    let exclude = labelled.names().iter().cloned().collect();
    let window = pool.next_window(&exclude, false)?;

    // [model], [augment] and [train]: the backbone, its two views, and the trainer around them.
    let input = ModelInput {
        in_channels: spec.channels.channels(),
        num_classes: anomalymatch::core::Label::CLASSES,
        seed: 42,
    };
    let model = ModelConfig::default().check()?.build(input)?;
    let augmenter = AugmentConfig::default().check()?.build(())?;
    let train = TrainConfig {
        iterations: 10,
        ..TrainConfig::default()
    }
    .check()?;
    let mut trainer = train.build((model, augmenter, spec, 42))?;
    let batch = TrainData {
        labelled: labelled.images(),
        labels: labelled.labels(),
        unlabelled: &window.images,
    };
    trainer.fit(&batch, train.iterations, &mut |m| {
        println!(
            "step {:>2}: loss {:.3}, mask ratio {:.2}",
            m.iteration, m.loss, m.mask_ratio
        )
    })?;

    // Scores come from the EMA model; the ranking puts the most anomalous first.
    let scorer = Scorer::new(trainer.ema(), ScoreConfig::default().options(false));
    let scores = scorer.scores(&window.images)?;
    let ranking = Ranking::new(&window.names, &scores)?;
    for (i, r) in ranking.top(5).iter().enumerate() {
        println!("#{} {} {:.3}", i + 1, r.name, r.score);
    }
    Ok(())
}
