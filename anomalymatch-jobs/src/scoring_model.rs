//! A checkpoint opened for scoring: the network it describes with its EMA weights, what it
//! records, and a loader that decodes images as its training did. The `score` job and the
//! Python package open checkpoints this way.

use crate::components::Trainer;
use crate::error::{JobError, Result};
use anomalymatch_core::checkpoint::CheckpointInfo;
use anomalymatch_core::{
    Check, Classifier, DataConfig, FailedImage, ImageLoader, ImageSource, ScoreOptions, Scorer,
};
use anomalymatch_models::{EfficientNet, from_checkpoint};
use candle_core::Device;
use std::path::Path;

/// A checkpoint ready to score.
pub struct ScoringModel {
    model: EfficientNet,
    info: CheckpointInfo,
    loader: ImageLoader,
}

/// Every image of a source scored, in source order.
#[derive(Debug, Clone, Default)]
pub struct ScoredImages {
    /// Names of the readable images.
    pub names: Vec<String>,
    /// Their anomaly scores.
    pub scores: Vec<f32>,
    /// Their embeddings, `dim` values each, when asked for.
    pub embeddings: Vec<f32>,
    /// Values per embedding (0 when none were asked for).
    pub dim: usize,
    /// The unreadable images.
    pub failed: Vec<FailedImage>,
}

impl ScoringModel {
    /// Opens the checkpoint at `path` on `device`. Images are decoded to the pixels it records,
    /// within the limits of `data` (chunk size, pixel ceiling, strictness).
    pub fn open(path: &Path, device: &Device, data: &DataConfig) -> Result<ScoringModel> {
        if !path.is_file() {
            let missing = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such checkpoint (train one with `anomalymatch discover` or `train`)",
            );
            return Err(JobError::io(path, missing));
        }
        let (model, info) = from_checkpoint(path, device)?;
        if info.data.size < model.min_input_size() {
            return Err(JobError::Failed(format!(
                "{}: trained at {} pixels, below the {} that {} accepts: the file is damaged",
                path.display(),
                info.data.size,
                model.min_input_size(),
                info.spec.architecture
            )));
        }
        ScoringModel::with_loader(model, info, data)
    }

    /// The EMA model of `trainer` (trained on `data`'s pixels), as a checkpoint of it would
    /// open.
    pub fn from_trainer(trainer: &Trainer, data: &DataConfig) -> Result<ScoringModel> {
        let model = trainer.ema().duplicate()?;
        let info = CheckpointInfo {
            spec: model.spec(),
            settings: model.settings(),
            data: trainer.data_spec(),
            train: trainer.config().clone(),
            iteration: trainer.iteration(),
        };
        ScoringModel::with_loader(model, info, data)
    }

    /// `model` with what it records and a loader of `data` set to its pixels.
    fn with_loader(model: EfficientNet, info: CheckpointInfo, data: &DataConfig) -> Result<Self> {
        // The checkpoint's pixels are a new value of the section: checked as such.
        let loader = data.clone().with_spec(info.data).check()?.build(())?;
        Ok(ScoringModel {
            model,
            info,
            loader,
        })
    }

    /// The network (the checkpoint's EMA model).
    pub fn model(&self) -> &EfficientNet {
        &self.model
    }

    /// What the checkpoint records: architecture, pixels, training settings, iteration.
    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }

    /// The loader that decodes images as training did.
    pub fn loader(&self) -> &ImageLoader {
        &self.loader
    }

    /// Scores every image of `source` as `options` say, reading the next chunk while the
    /// current one is scored. `on_chunk` hears the images done after each chunk; an error
    /// from it (an interrupt) stops the work.
    pub fn score_source(
        &self,
        source: &mut dyn ImageSource,
        options: ScoreOptions,
        on_chunk: &mut dyn FnMut(usize) -> anomalymatch_core::Result<()>,
    ) -> Result<ScoredImages> {
        let mut out = ScoredImages::default();
        let mut done = 0;
        Scorer::new(&self.model, options).stream(&self.loader, source, None, |chunk| {
            out.names.extend(chunk.names);
            out.scores.extend(chunk.scores);
            if let Some(e) = chunk.embeddings {
                out.dim = e.dim();
                out.embeddings
                    .extend((0..e.len()).flat_map(|i| e.row(i).to_vec()));
            }
            out.failed.extend(chunk.failed);
            done += chunk.items;
            on_chunk(done)
        })?;
        Ok(out)
    }
}
