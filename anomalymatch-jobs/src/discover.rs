//! The main job: from a handful of labels, train FixMatch, rank every unlabelled image, and
//! write `candidates.csv`, `candidates.png` (a contact sheet of the top) and
//! `checkpoint.safetensors` into the output folder. Where the images have hidden classes (a
//! class file), the ranking is measured against them; they are never shown to the model.

use crate::components;
use crate::config::Settings;
use crate::error::{JobError, Result};
use crate::outputs;
use crate::report::{Report, Silent};
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::fixmatch::TrainData;
use anomalymatch_core::metrics::top_k_for_fraction;
use anomalymatch_core::{
    FailedImage, Label, Ranking, RankingMetrics, Scorer, StepMetrics, UnlabelledPool,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// The candidates an expert looks at first: the hidden-truth measure always counts them.
pub const FIRST_LOOK: usize = 32;

/// What `discover` found and wrote.
#[derive(Debug)]
pub struct Discovery {
    /// Every unlabelled image, best first.
    pub ranking: Ranking,
    /// How many of the top are on the contact sheet (`score.top`, at most the ranking).
    pub top: usize,
    /// The last training step's metrics (`None` for zero iterations).
    pub last_step: Option<StepMetrics>,
    /// Images that could not be read while scoring, in source order.
    pub unreadable: Vec<FailedImage>,
    /// The files written: the candidates, their contact sheet and the checkpoint.
    pub written: Vec<PathBuf>,
    /// The ranking measured against the hidden classes, where there are any.
    pub truth: Option<HiddenTruth>,
}

/// The ranking against hidden classes: how many anomalies an expert would meet, against what a
/// random ranking would hold at the base rate.
#[derive(Debug)]
pub struct HiddenTruth {
    /// The class file.
    pub path: PathBuf,
    /// AUROC, AUPRC and friends over the unlabelled images.
    pub metrics: RankingMetrics,
    /// Anomalies among the first [`FIRST_LOOK`] (or fewer) candidates, and that count.
    pub first_look: (usize, usize),
    /// Anomalies among the contact sheet's candidates, and that count.
    pub top: (usize, usize),
    /// Anomalies among the top 1%, and that count.
    pub top_1pct: (usize, usize),
}

impl HiddenTruth {
    /// Anomalies per unlabelled image.
    pub fn base_rate(&self) -> f64 {
        self.metrics.anomalies as f64 / self.metrics.n.max(1) as f64
    }
}

/// Runs `discover` as `config` says, telling `report` what it does.
pub fn discover(config: &Settings, report: &dyn Report) -> Result<Discovery> {
    let (images, labels_path) = components::images_and_labels(config)?;
    let labels_path = labels_path.ok_or_else(|| {
        JobError::Usage("discover needs starting labels: --labels FILE (data.labels)".into())
    })?;
    let out = &config.output.dir;
    let _lock = components::prepare_output(out, None, report)?;
    let labels = components::read_labels(&labels_path, report)?;
    let truth = components::truth(&config.truth, &images, report)?;

    let t0 = Instant::now();
    let loader = components::loader(config)?;
    let spec = loader.spec();
    let model = components::model(config, spec)?;
    let mut pool = UnlabelledPool::new(
        components::open_source(config, &images, report)?,
        loader.clone(),
        config.data.n_to_load,
    )?;
    let labelled = components::labelled_set(&mut pool, &labels, report)?;
    let known = components::name_set(labelled.names());
    let window = pool.next_window(&known, report.progress())?;
    report.say(&format!(
        "loaded {} labelled ({} anomalies) and {} unlabelled images in {:.1} s",
        labelled.len(),
        labelled.count(Label::Anomaly),
        window.names.len(),
        t0.elapsed().as_secs_f64()
    ));

    let mut trainer = components::trainer(config, model, spec, report.progress())?;
    let t1 = Instant::now();
    let mut last_step = None;
    let data = TrainData {
        labelled: labelled.images(),
        labels: labelled.labels(),
        unlabelled: &window.images,
    };
    trainer.fit(&data, config.train.iterations, &mut |m| {
        last_step = Some(*m)
    })?;
    if let Some(m) = last_step {
        report.say(&format!(
            "trained {} steps in {:.1} s: loss {:.3}, labelled accuracy {:.2}, mask ratio {:.2}",
            m.iteration,
            t1.elapsed().as_secs_f64(),
            m.loss,
            m.labelled_accuracy,
            m.mask_ratio
        ));
    }
    // The most valuable output first: the training itself.
    let checkpoint = out.join("checkpoint.safetensors");
    trainer.save_checkpoint(&checkpoint)?;

    let t2 = Instant::now();
    let (mut names, mut scores, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    let mut source = components::open_source(config, &images, &Silent)?;
    let options = config.score.options(report.progress());
    Scorer::new(trainer.ema(), options).stream(&loader, source.as_mut(), None, |chunk| {
        for (name, score) in chunk.names.into_iter().zip(chunk.scores) {
            if !known.contains(&name) {
                names.push(name);
                scores.push(score);
            }
        }
        unreadable.extend(chunk.failed);
        Ok(())
    })?;
    report.say(&format!(
        "scored {} unlabelled images in {:.1} s; {} unreadable",
        names.len(),
        t2.elapsed().as_secs_f64(),
        unreadable.len()
    ));
    for f in unreadable.iter().take(5) {
        report.warn(&format!("unreadable {}: {}", f.origin, f.message));
    }

    let ranking = Ranking::new(&names, &scores)?;
    let (csv, sheet) = (out.join("candidates.csv"), out.join("candidates.png"));
    let mut group = AtomicGroup::new();
    outputs::ranking_csv(&mut group, &csv, &ranking)?;
    let top = ranking.top(config.score.top).len();
    let sheet_entries = ranking.top(top);
    outputs::contact_sheet(
        &mut group,
        &sheet,
        sheet_entries,
        &loader,
        source.as_mut(),
        report,
    )?;
    group.commit()?;
    let truth = match truth {
        Some((path, truth)) => Some(measure(path, &truth, &names, &scores, &ranking, top)?),
        None => None,
    };
    Ok(Discovery {
        ranking,
        top,
        last_step,
        unreadable,
        written: vec![csv, sheet, checkpoint],
        truth,
    })
}

/// The ranking of `names` (scored `scores`) against the hidden classes of `path`.
fn measure(
    path: PathBuf,
    truth: &HashMap<String, Label>,
    names: &[String],
    scores: &[f32],
    ranking: &Ranking,
    top: usize,
) -> Result<HiddenTruth> {
    let is_anomaly = |n: &str| truth.get(n) == Some(&Label::Anomaly);
    let flags: Vec<bool> = names.iter().map(|n| is_anomaly(n)).collect();
    let metrics = RankingMetrics::compute(scores, &flags)?;
    let found = |k: usize| {
        let k = k.min(metrics.n);
        let hits = ranking
            .top(k)
            .iter()
            .filter(|r| is_anomaly(&r.name))
            .count();
        (hits, k)
    };
    let top_1pct = top_k_for_fraction(metrics.n, 0.01)?;
    Ok(HiddenTruth {
        first_look: found(FIRST_LOOK),
        top: found(top),
        top_1pct: found(top_1pct),
        path,
        metrics,
    })
}
