//! Training runs that resume: labelled plus unlabelled images to a checkpoint, starting fresh
//! or continuing an existing checkpoint, which must have been trained on the same pixels. The
//! run keeps its state in `OUT/train-run/` (what it was started with, the iterations it spans,
//! and its latest periodic checkpoint), so a stopped run started again with the same settings
//! continues where it stopped.

use crate::components;
use crate::config::{Config, Settings};
use crate::error::{JobError, Result};
use crate::report::Report;
use anomalymatch_core::atomic::{remove_stale_temps, write_bytes_atomic};
use anomalymatch_core::fixmatch::TrainData;
use anomalymatch_core::{ImageStore, Label, StepMetrics, UnlabelledPool};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a training run produced.
#[derive(Debug)]
pub struct Trained {
    /// The iteration the checkpoint reached.
    pub iteration: usize,
    /// The final checkpoint, `OUT/checkpoint.safetensors`.
    pub checkpoint: PathBuf,
    /// Seconds this process spent training.
    pub train_s: f64,
}

/// Trains as `config` says, continuing the checkpoint `from` when one is given, or resuming
/// a stopped run of the same settings.
pub fn train(config: &Settings, from: Option<&Path>, report: &dyn Report) -> Result<Trained> {
    let (images, labels_path) = components::images_and_labels(config)?;
    let labels_path = labels_path
        .ok_or_else(|| JobError::Usage("train needs labels: --labels FILE (data.labels)".into()))?;
    if let Some(from) = from
        && !from.is_file()
    {
        return Err(JobError::Failed(format!(
            "{}: no such checkpoint",
            from.display()
        )));
    }
    let labels = components::read_labels(&labels_path, report)?;
    let out = &config.output.dir;
    let _lock = components::prepare_output(out, None, report)?;

    let loader = components::loader(config)?;
    let spec = loader.spec();
    let model = components::model(config, spec)?;
    let mut trainer = components::trainer(config, model, spec, report.progress())?;
    let identity = Identity {
        config: config.to_config(),
        from: from.map(Path::to_path_buf),
        labels: labels_path.clone(),
        images: images.clone(),
    };
    let run = Run::new(out, identity)?;
    let span = match run.resumable() {
        Some(span) => {
            trainer.resume(&run.checkpoint())?;
            report.say(&format!(
                "resuming a stopped run at iteration {} of {}",
                trainer.iteration(),
                span.end
            ));
            span
        }
        None => {
            if let Some(from) = from {
                trainer.resume(from)?;
                report.say(&format!(
                    "continuing {} from iteration {}",
                    from.display(),
                    trainer.iteration()
                ));
            }
            let start = trainer.iteration();
            let span = start..start + config.train.iterations;
            run.begin(&span)?;
            span
        }
    };
    trainer.set_checkpoint_every(&run.checkpoint(), config.output.checkpoint_every);
    let mut pool = UnlabelledPool::new(
        components::open_source(config, &images, report)?,
        loader,
        config.data.n_to_load,
    )?;
    let labelled = components::labelled_set(&mut pool, &labels, report)?;
    let window = pool.next_window(&components::name_set(labelled.names()), report.progress())?;
    report.say(&format!(
        "training on {} labelled ({} anomalies) and {} unlabelled images",
        labelled.len(),
        labelled.count(Label::Anomaly),
        window.names.len()
    ));
    let data = TrainData {
        labelled: labelled.images(),
        labels: labelled.labels(),
        unlabelled: &window.images,
    };
    let clock = Instant::now();
    trainer.fit_span(&data, span, &mut |_| {})?;
    let train_s = clock.elapsed().as_secs_f64();
    let checkpoint = out.join("checkpoint.safetensors");
    trainer.save_checkpoint(&checkpoint)?;
    run.finish()?;
    Ok(Trained {
        iteration: trainer.iteration(),
        checkpoint,
        train_s,
    })
}

/// Trains a fresh model on images already decoded by [`components::loader`]'s loader:
/// `labelled` with their `labels`, and `unlabelled` (may be empty: supervised only). One step
/// at a time, so that `on_step` can stop the run (an interrupt) with an error; what was
/// trained so far is then dropped. Returns the trainer, whose EMA model scores.
pub fn train_in_memory(
    config: &Settings,
    labelled: &ImageStore,
    labels: &[Label],
    unlabelled: &ImageStore,
    on_step: &mut dyn FnMut(&StepMetrics) -> anomalymatch_core::Result<()>,
) -> Result<components::Trainer> {
    let spec = components::loader(config)?.spec();
    let model = components::model(config, spec)?;
    let mut trainer = components::trainer(config, model, spec, false)?;
    let data = TrainData {
        labelled,
        labels,
        unlabelled,
    };
    let span = 0..config.train.iterations;
    for it in span.clone() {
        let mut last = None;
        trainer.fit_span_until(&data, span.clone(), it + 1, &mut |m| last = Some(*m))?;
        if let Some(m) = last {
            on_step(&m)?;
        }
    }
    Ok(trainer)
}

/// What a run was started with: a rerun with an equal identity continues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Identity {
    config: Config,
    from: Option<PathBuf>,
    labels: PathBuf,
    images: PathBuf,
}

/// The record of a run in `OUT/train-run/run.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    identity: Identity,
    start: usize,
    end: usize,
}

/// The resumable state of a training run in `OUT/train-run/`.
struct Run {
    dir: PathBuf,
    identity: Identity,
}

impl Run {
    fn new(out: &Path, identity: Identity) -> Result<Self> {
        let dir = out.join("train-run");
        remove_stale_temps(&dir)?;
        Ok(Run { dir, identity })
    }

    fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }

    fn record(&self) -> PathBuf {
        self.dir.join("run.json")
    }

    /// The span of a stopped run with the same settings and a checkpoint to resume from; a
    /// record that cannot be read is another run's, and is started afresh.
    fn resumable(&self) -> Option<Range<usize>> {
        let text = std::fs::read(self.record()).ok()?;
        let saved: Record = serde_json::from_slice(&text).ok()?;
        (saved.identity == self.identity && self.checkpoint().is_file())
            .then_some(saved.start..saved.end)
    }

    /// Starts a fresh run over `span`, replacing any other.
    fn begin(&self, span: &Range<usize>) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| JobError::io(&self.dir, e))?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| JobError::io(&self.dir, e))?;
        let record = Record {
            identity: self.identity.clone(),
            start: span.start,
            end: span.end,
        };
        let text = serde_json::to_vec(&record).map_err(|e| JobError::json(self.record(), e))?;
        Ok(write_bytes_atomic(&self.record(), &text)?)
    }

    /// Removes the run's state once its final checkpoint is written.
    fn finish(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| JobError::io(&self.dir, e))
    }
}
