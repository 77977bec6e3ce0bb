//! The FixMatch trainer (Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with
//! Consistency and Confidence", arXiv 2001.07685), as AnomalyMatch uses it.
//!
//! Each step draws `B` labelled images (inverse class frequency, with replacement) and `uB`
//! unlabelled images (uniform, with replacement). The labelled images and a weak view of the
//! unlabelled ones, plus a strong view of the same unlabelled images, go through the network
//! in one forward pass so that batch norm sees them together. The loss is cross-entropy on the
//! labelled images plus `lambda_u` times the cross-entropy of the strong view against the weak
//! view's pseudo-label, counted only where the weak view is at least `p_cutoff` confident.
//! An exponential moving average of the weights is kept for scoring.

use crate::augmenter::Augmenter;
use crate::checkpoint::{CheckpointState, load_checkpoint, save_checkpoint};
use crate::classifier::Classifier;
use crate::config::Checked;
use crate::ema::ema_update;
use crate::error::{Error, Result};
use crate::image::ImageBatch;
use crate::image_store::ImageStore;
use crate::label::Label;
use crate::loader::DataSpec;
use crate::optim::{Sgd, SgdConfig};
use crate::progress::Progress;
use crate::rng::{derive_seed, item_rng};
use crate::train_config::{Schedule, TrainConfig, WeakPass};
use candle_core::{DType, Tensor};
use rand::RngExt;
use std::path::Path;

/// Random stream id of training steps (see [`crate::rng::derive_seed`]).
const STREAM_TRAIN: u64 = 1;
/// Random stream id of the model's training-mode masks, reseeded every step.
const STREAM_MASKS: u64 = 2;

/// What one training call works on.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Labelled images.
    pub labelled: &'a ImageStore,
    /// Their labels, all `Normal` or `Anomaly`.
    pub labels: &'a [Label],
    /// Unlabelled images (the in-memory pool).
    pub unlabelled: &'a ImageStore,
}

/// Figures of one training step, handed to the caller's observer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMetrics {
    /// Steps taken so far by this trainer, including this one (continues across cycles).
    pub iteration: usize,
    /// Total loss.
    pub loss: f32,
    /// Cross-entropy on the labelled images.
    pub sup_loss: f32,
    /// Masked cross-entropy of the strong views against the pseudo-labels.
    pub unsup_loss: f32,
    /// Share of unlabelled images whose pseudo-label passed `p_cutoff`.
    pub mask_ratio: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Accuracy on the (augmented) labelled images of the step.
    pub labelled_accuracy: f32,
}

/// A FixMatch training run: the model, its EMA copy, the optimiser and the step count.
///
/// Training continues across active-learning cycles: call [`FixMatch::fit`] again with the
/// grown labelled set. The random draws of step `t` depend only on the seed and `t`, so a run
/// resumed from a checkpoint at step `t` continues exactly as it would have.
pub struct FixMatch<C: Classifier, A: Augmenter> {
    model: C,
    ema: C,
    augmenter: A,
    config: Checked<TrainConfig>,
    data: DataSpec,
    optimizer: Sgd,
    iteration: usize,
    seed: u64,
    overlap: bool,
    show_progress: bool,
    checkpoint_every: Option<(std::path::PathBuf, usize)>,
}

/// One step's inputs, prepared (sampled and augmented) ahead of the step.
struct Batch {
    images: ImageBatch,
    targets: Vec<u32>,
    n_labelled: usize,
    n_unlabelled: usize,
}

impl<C: Classifier, A: Augmenter> FixMatch<C, A> {
    /// Starts training `model` on images decoded as `data` says; its EMA copy starts equal to
    /// it. [`crate::config::Checked::build`] on a checked [`TrainConfig`] calls this.
    pub fn new(
        model: C,
        augmenter: A,
        config: Checked<TrainConfig>,
        data: DataSpec,
        seed: u64,
    ) -> Result<Self> {
        let ema = model.duplicate()?;
        let model_on_cpu = model.device().is_cpu();
        let optimizer = Sgd::new(
            model.variables(),
            SgdConfig {
                momentum: config.momentum,
                nesterov: config.nesterov,
                weight_decay: config.weight_decay,
            },
        );
        Ok(FixMatch {
            model,
            ema,
            augmenter,
            config,
            data,
            optimizer,
            iteration: 0,
            seed,
            overlap: !model_on_cpu,
            show_progress: false,
            checkpoint_every: None,
        })
    }

    /// Whether the next step's sampling and augmentation run on another thread while the
    /// current step trains.
    ///
    /// Off by default for a model on the CPU, where both compete for the same cores: with
    /// Lite0 on 2 cores, 4 overlapped steps took 8.18 s against 8.06 s one after the other
    /// (`cargo bench --bench fixmatch`), augmentation being about 1% of a step. On by default
    /// for a GPU model, whose steps leave the CPU idle (not measured: no GPU here).
    pub fn set_overlap(&mut self, overlap: bool) {
        self.overlap = overlap;
    }

    /// Whether [`FixMatch::fit`] draws a progress bar (steps, rate, ETA) on stderr; off by
    /// default so library users stay silent unless they ask.
    pub fn set_progress(&mut self, show: bool) {
        self.show_progress = show;
    }

    /// The model being trained.
    pub fn model(&self) -> &C {
        &self.model
    }

    /// The EMA model, used for all scoring.
    pub fn ema(&self) -> &C {
        &self.ema
    }

    /// Steps taken so far.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The pixels the model is trained on.
    pub fn data_spec(&self) -> DataSpec {
        self.data
    }

    /// Saves the whole training state (both models, optimiser, step count, training settings
    /// and the data spec) to one file, atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let state = CheckpointState {
            iteration: self.iteration,
            optimizer: self.optimizer.state(),
            train: (*self.config).clone(),
            data: self.data,
        };
        save_checkpoint(path, &self.model, &self.ema, &state)
    }

    /// Restores a state saved by [`FixMatch::save_checkpoint`]; training then continues exactly
    /// where it stopped. A checkpoint trained on other pixels (size, channels) is refused
    /// before anything changes.
    pub fn resume(&mut self, path: &Path) -> Result<()> {
        let info = crate::checkpoint::CheckpointInfo::read(path)?;
        if info.data != self.data {
            let message = format!("trained on {}, this run decodes {}", info.data, self.data);
            return Err(Error::checkpoint(path, message, None));
        }
        let state = load_checkpoint(path, &self.model, &self.ema)?;
        self.optimizer.load_state(&state.optimizer)?;
        self.iteration = state.iteration;
        Ok(())
    }

    /// Runs `iterations` steps on `data`, calling `observer` after each.
    pub fn fit(
        &mut self,
        data: &TrainData<'_>,
        iterations: usize,
        observer: &mut dyn FnMut(&StepMetrics),
    ) -> Result<()> {
        let start = self.iteration;
        self.fit_span(data, start..start + iterations, observer)
    }

    /// Runs the steps of `span` (trainer iterations) that are left, from the current iteration,
    /// which must lie in it. The learning-rate schedule spans the whole of `span`, so a run
    /// resumed from a checkpoint saved inside it continues exactly as it would have.
    pub fn fit_span(
        &mut self,
        data: &TrainData<'_>,
        span: std::ops::Range<usize>,
        observer: &mut dyn FnMut(&StepMetrics),
    ) -> Result<()> {
        let end = span.end;
        self.fit_span_until(data, span, end, observer)
    }

    /// Runs the steps of `span` that are left, as [`FixMatch::fit_span`], but stops before
    /// iteration `until`: a long run taken a few steps at a time (so that others can use the
    /// trainer's data in between) follows the learning-rate schedule of the whole span.
    pub fn fit_span_until(
        &mut self,
        data: &TrainData<'_>,
        span: std::ops::Range<usize>,
        until: usize,
        observer: &mut dyn FnMut(&StepMetrics),
    ) -> Result<()> {
        check_data(data)?;
        if !(span.start..=span.end).contains(&self.iteration) {
            return Err(Error::InvalidArgument(format!(
                "training span {span:?} does not hold the trainer's iteration {}",
                self.iteration
            )));
        }
        let total = span.len();
        let start = self.iteration;
        let stop = until.min(span.end);
        if start >= stop {
            return Ok(());
        }
        let progress = Progress::new(Some(total), "training", self.show_progress);
        progress.inc(start - span.start);
        let mut current = prepare(&self.augmenter, &self.config, data, self.seed, start)?;
        for it in start..stop {
            let lr = learning_rate(&self.config, it - span.start, total);
            let next_iteration = (it + 1 < stop).then_some(it + 1);
            self.model
                .reseed(derive_seed(self.seed, STREAM_MASKS, it as u64));
            let (metrics, next) = self.step_and_prepare(&current, lr, data, next_iteration);
            let mut metrics = metrics?;
            self.iteration += 1;
            metrics.iteration = self.iteration;
            progress.inc(1);
            observer(&metrics);
            if let Some((path, every)) = &self.checkpoint_every
                && self.iteration.is_multiple_of(*every)
                && self.iteration < span.end
            {
                self.save_checkpoint(path)?;
            }
            if let Some(next) = next? {
                current = next;
            }
        }
        progress.finish();
        Ok(())
    }

    /// Saves a checkpoint to `path` every `every` iterations during [`FixMatch::fit_span`]
    /// (not at its last step, which the caller saves as it likes), so that a killed run can
    /// resume from it; `every = 0` turns it off.
    pub fn set_checkpoint_every(&mut self, path: &Path, every: usize) {
        self.checkpoint_every = (every > 0).then(|| (path.to_path_buf(), every));
    }

    /// Trains on `current` and prepares step `next_iteration`'s batch, on another thread when
    /// overlap is on, so augmentation hides behind the network's work.
    fn step_and_prepare(
        &mut self,
        current: &Batch,
        lr: f64,
        data: &TrainData<'_>,
        next_iteration: Option<usize>,
    ) -> (Result<StepMetrics>, Result<Option<Batch>>) {
        let (aug, cfg, seed) = (&self.augmenter, &self.config, self.seed);
        let (model, ema, opt) = (&self.model, &self.ema, &mut self.optimizer);
        let prepare_next = move || {
            next_iteration
                .map(|it| prepare(aug, cfg, data, seed, it))
                .transpose()
        };
        if !self.overlap || next_iteration.is_none() {
            let metrics = train_step(model, ema, opt, cfg, current, lr);
            return (metrics, prepare_next());
        }
        std::thread::scope(|s| {
            let handle = s.spawn(prepare_next);
            let metrics = train_step(model, ema, opt, cfg, current, lr);
            let next = handle
                .join()
                .unwrap_or_else(|_| Err(Error::InvalidArgument("augmentation panicked".into())));
            (metrics, next)
        })
    }
}

fn check_data(data: &TrainData<'_>) -> Result<()> {
    if data.labelled.len() != data.labels.len() {
        return Err(Error::Shape(format!(
            "{} labelled images but {} labels",
            data.labelled.len(),
            data.labels.len()
        )));
    }
    if data.labels.iter().any(|l| !l.is_known()) {
        return Err(Error::InvalidArgument(
            "labelled set contains an unknown label".into(),
        ));
    }
    if data.labelled.is_empty() {
        return Err(Error::InvalidArgument(
            "no labelled image to train on".into(),
        ));
    }
    let same_shape = |b: &ImageStore| {
        (b.channels(), b.height(), b.width())
            == (
                data.labelled.channels(),
                data.labelled.height(),
                data.labelled.width(),
            )
    };
    if !data.unlabelled.is_empty() && !same_shape(data.unlabelled) {
        return Err(Error::Shape(
            "labelled and unlabelled images differ in shape".into(),
        ));
    }
    Ok(())
}

/// Learning rate at step `k` of `total`: constant, or FixMatch's cosine `lr * cos(7 pi k / 16 K)`
/// after an optional linear warm-up.
fn learning_rate(cfg: &TrainConfig, k: usize, total: usize) -> f64 {
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Cosine => {
            if k < cfg.warmup_iterations {
                cfg.lr * (k + 1) as f64 / cfg.warmup_iterations as f64
            } else {
                let t = (k - cfg.warmup_iterations) as f64
                    / (total.saturating_sub(cfg.warmup_iterations)).max(1) as f64;
                cfg.lr * (7.0 * std::f64::consts::PI * t / 16.0).cos()
            }
        }
    }
}

/// Samples and augments the inputs of step `iteration`; depends only on the seed and `iteration`.
fn prepare<A: Augmenter>(
    augmenter: &A,
    cfg: &TrainConfig,
    data: &TrainData<'_>,
    seed: u64,
    iteration: usize,
) -> Result<Batch> {
    let step_seed = derive_seed(seed, STREAM_TRAIN, iteration as u64);
    let mut rng = item_rng(step_seed, 0, 0);
    // Inverse class frequency: pick a class uniformly, then an image of it uniformly.
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 2];
    for (i, l) in data.labels.iter().enumerate() {
        if let Some(c) = l.class_index() {
            by_class[c as usize].push(i);
        }
    }
    by_class.retain(|c| !c.is_empty());
    let mut picks = Vec::with_capacity(cfg.batch_size);
    let mut targets = Vec::with_capacity(cfg.batch_size);
    for _ in 0..cfg.batch_size {
        let class = &by_class[rng.random_range(0..by_class.len())];
        let i = class[rng.random_range(0..class.len())];
        picks.push(i);
        targets.push(data.labels[i].class_index().unwrap_or(0));
    }
    let mut images =
        augmenter.weak(&data.labelled.select(&picks)?, derive_seed(step_seed, 1, 0))?;
    let n_unlabelled = if data.unlabelled.is_empty() {
        0
    } else {
        cfg.uratio * cfg.batch_size
    };
    if n_unlabelled > 0 {
        let upicks: Vec<usize> = (0..n_unlabelled)
            .map(|_| rng.random_range(0..data.unlabelled.len()))
            .collect();
        let u = data.unlabelled.select(&upicks)?;
        images.extend(&augmenter.weak(&u, derive_seed(step_seed, 2, 0))?)?;
        images.extend(&augmenter.strong(&u, derive_seed(step_seed, 3, 0))?)?;
    }
    Ok(Batch {
        images,
        targets,
        n_labelled: picks.len(),
        n_unlabelled,
    })
}

/// One forward/backward pass, optimiser step and EMA update.
fn train_step<C: Classifier>(
    model: &C,
    ema: &C,
    optimizer: &mut Sgd,
    cfg: &TrainConfig,
    batch: &Batch,
    lr: f64,
) -> Result<StepMetrics> {
    let device = model.device();
    let x = batch.images.to_tensor(device)?;
    let (b, u) = (batch.n_labelled, batch.n_unlabelled);
    // Labelled logits, then the weak and strong views' (`None` without unlabelled images).
    let (logits_l, views) = if u > 0 && cfg.weak_pass == WeakPass::Separate {
        // The weak pass first: its batch statistics join the training pass's update.
        let weak = model.forward_weak(&x.narrow(0, b, u)?)?;
        let rest = Tensor::cat(&[x.narrow(0, 0, b)?, x.narrow(0, b + u, u)?], 0)?;
        let logits = model.forward_t(&rest, true)?;
        (
            logits.narrow(0, 0, b)?,
            Some((weak, logits.narrow(0, b, u)?)),
        )
    } else {
        let logits = model.forward_t(&x, true)?;
        let views = (u > 0)
            .then(|| -> Result<_> {
                Ok((
                    logits.narrow(0, b, u)?.detach(),
                    logits.narrow(0, b + u, u)?,
                ))
            })
            .transpose()?;
        (logits.narrow(0, 0, b)?, views)
    };
    let y = Tensor::from_slice(&batch.targets, b, device)?;
    let sup = candle_nn::loss::cross_entropy(&logits_l, &y)?;
    let (unsup, mask_ratio) = match views {
        Some((weak, strong)) => unsupervised_loss(&weak, &strong, cfg)?,
        None => (Tensor::zeros((), DType::F32, device)?, 0.0),
    };
    let loss = (&sup + (&unsup * cfg.lambda_u)?)?;
    let grads = loss.backward()?;
    optimizer.step(&grads, lr)?;
    ema_update(&ema.variables(), &model.variables(), cfg.ema_momentum)?;
    let correct = logits_l
        .detach()
        .argmax(1)?
        .eq(&y)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(StepMetrics {
        iteration: 0,
        loss: loss.to_scalar::<f32>()?,
        sup_loss: sup.to_scalar::<f32>()?,
        unsup_loss: unsup.to_scalar::<f32>()?,
        mask_ratio,
        lr,
        labelled_accuracy: correct,
    })
}

/// FixMatch's consistency loss: cross-entropy of the strong view's logits against the weak
/// view's pseudo-label (hard argmax, or soft probabilities at `temperature`), averaged over all
/// unlabelled images with the unconfident ones counted as zero.
fn unsupervised_loss(weak: &Tensor, strong: &Tensor, cfg: &TrainConfig) -> Result<(Tensor, f32)> {
    let temperature = if cfg.hard_labels {
        1.0
    } else {
        cfg.temperature
    };
    let probs = candle_nn::ops::softmax_last_dim(&(weak / temperature)?)?;
    let confidence = probs.max_keepdim(1)?.squeeze(1)?;
    let mask = if cfg.class_thresholds {
        // Each class's threshold is p_cutoff times its mean probability over the step's weak
        // views, relative to the most probable class's.
        let mean = probs.mean(0)?;
        let scale = mean.broadcast_div(&mean.max_keepdim(0)?)?;
        let threshold = (scale.index_select(&probs.argmax(1)?, 0)? * cfg.p_cutoff)?;
        confidence.ge(&threshold)?
    } else {
        confidence.ge(cfg.p_cutoff)?
    }
    .to_dtype(DType::F32)?;
    let log_p = candle_nn::ops::log_softmax(strong, 1)?;
    let per_item = if cfg.hard_labels {
        let pseudo = probs.argmax_keepdim(1)?;
        log_p.gather(&pseudo, 1)?.squeeze(1)?.neg()?
    } else {
        (&probs * &log_p)?.sum(1)?.neg()?
    };
    let loss = (per_item * &mask)?.mean_all()?;
    let ratio = mask.mean_all()?.to_scalar::<f32>()?;
    Ok((loss, ratio))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Weak views of three confident normals and one anomaly at 0.7; strong views agree.
    fn views() -> (Tensor, Tensor) {
        let p = [[0.99f32, 0.01], [0.99, 0.01], [0.99, 0.01], [0.3, 0.7]];
        let logits: Vec<f32> = p.iter().flat_map(|r| r.map(f32::ln)).collect();
        let weak = Tensor::from_vec(logits, (4, 2), &Device::Cpu).unwrap();
        (weak.clone(), weak)
    }

    #[test]
    fn class_thresholds_let_the_rare_class_count_below_the_cutoff() {
        let (weak, strong) = views();
        let fixed = TrainConfig::default();
        let (_, ratio) = unsupervised_loss(&weak, &strong, &fixed).unwrap();
        assert_eq!(ratio, 0.75, "the anomaly at 0.7 is masked at p_cutoff 0.95");
        let fair = TrainConfig {
            class_thresholds: true,
            ..TrainConfig::default()
        };
        // The anomaly class's mean probability is 0.1825 against 0.8175: its threshold is
        // 0.95 x 0.223 = 0.21, and the normals' stays 0.95.
        let (_, ratio) = unsupervised_loss(&weak, &strong, &fair).unwrap();
        assert_eq!(ratio, 1.0);
        let strict = TrainConfig {
            p_cutoff: 0.995,
            class_thresholds: true,
            ..TrainConfig::default()
        };
        let (_, ratio) = unsupervised_loss(&weak, &strong, &strict).unwrap();
        assert_eq!(ratio, 0.25, "normals at 0.99 stay below a 0.995 cutoff");
    }

    /// The toy model scores each image alone (no batch norm couples the rows), so a separate
    /// weak pass must train exactly as the joint one does.
    #[test]
    fn a_separate_weak_pass_trains_as_the_joint_one_without_batch_coupling() {
        use crate::toy::{toy_images, toy_trainer};
        let (images, labels) = toy_images(40, 8, 5, 3);
        let labelled: Vec<usize> = (0..10).collect();
        let unlabelled: Vec<usize> = (10..40).collect();
        let (xl, xu) = (
            images.subset(&labelled).unwrap(),
            images.subset(&unlabelled).unwrap(),
        );
        let data = TrainData {
            labelled: &xl,
            labels: &labels[..10],
            unlabelled: &xu,
        };
        let run = |weak_pass| {
            let config = TrainConfig {
                batch_size: 4,
                uratio: 2,
                lr: 0.1,
                p_cutoff: 0.5,
                weak_pass,
                ..TrainConfig::default()
            };
            let mut trainer = toy_trainer(config, 8, 7).unwrap();
            let mut metrics = Vec::new();
            trainer.fit(&data, 5, &mut |m| metrics.push(*m)).unwrap();
            let w: Vec<Vec<f32>> = trainer
                .model()
                .variables()
                .iter()
                .map(|v| v.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                .collect();
            (metrics, w)
        };
        let (joint, separate) = (run(WeakPass::Joint), run(WeakPass::Separate));
        assert!(joint.0.iter().any(|m| m.mask_ratio > 0.0), "{:?}", joint.0);
        for (a, b) in joint.0.iter().zip(&separate.0) {
            assert!((a.loss - b.loss).abs() < 1e-6, "{a:?} / {b:?}");
            assert_eq!(a.mask_ratio, b.mask_ratio);
        }
        for (a, b) in joint.1.iter().flatten().zip(separate.1.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{a} / {b}");
        }
    }
}
