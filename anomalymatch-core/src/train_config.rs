//! The `[train]` section: FixMatch's settings, with the original AnomalyMatch's defaults (the
//! reference table of `BENCHMARKS.md`). Checked, it builds a [`FixMatch`] trainer.

use crate::augmenter::Augmenter;
use crate::classifier::Classifier;
use crate::config::{Build, Check, Checked, check_below, check_positive, check_range, key};
use crate::error::{Error, Result};
use crate::fixmatch::FixMatch;
use crate::loader::DataSpec;
use serde::{Deserialize, Serialize};

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The original's constant learning rate.
    Constant,
    /// Linear warm-up then FixMatch's cosine decay over each call's iterations.
    Cosine,
}

/// How a FixMatch step runs the weak view of the unlabelled images, which only makes
/// pseudo-labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeakPass {
    /// The original's: one training pass over the labelled images and both views, so batch
    /// norm takes its statistics over all of them, and the backward pass runs over all.
    #[default]
    Joint,
    /// A training pass of its own that records nothing for the backward pass
    /// ([`crate::Classifier::forward_weak`]): about 45% less backward work and activation
    /// memory at the default `uratio`. Each pass normalises with its own batch's statistics;
    /// the running statistics still see the step's images as one batch. On the protocol
    /// (original preset, seeds 42-44) it ranked a little worse than the joint pass, so it is
    /// not the default (README, "Results on real galaxies").
    Separate,
}

/// FixMatch training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Training iterations per run (per active-learning cycle in a session).
    pub iterations: usize,
    /// Labelled images per step (B).
    pub batch_size: usize,
    /// Unlabelled images per labelled image (mu): each step sees `uratio * batch_size`
    /// unlabelled images in a weak and a strong view.
    pub uratio: usize,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Use Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay, skipped for batch-norm parameters and biases.
    pub weight_decay: f64,
    /// Confidence a weak view needs for its pseudo-label to count.
    pub p_cutoff: f64,
    /// Scale `p_cutoff` per class by the class's mean weak-view probability in the step,
    /// relative to the most probable class (FreeMatch's self-adaptive class fairness, Wang et
    /// al. 2023, arXiv 2205.07246, taken per step): the rare class's pseudo-labels count
    /// without the confidence a common class needs.
    pub class_thresholds: bool,
    /// Weight of the unlabelled loss.
    pub lambda_u: f64,
    /// Hard (argmax) pseudo-labels; false uses soft labels sharpened by `temperature`.
    pub hard_labels: bool,
    /// Softmax temperature of soft pseudo-labels.
    pub temperature: f64,
    /// EMA momentum of the scoring model.
    pub ema_momentum: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Warm-up iterations of the cosine schedule.
    pub warmup_iterations: usize,
    /// How the weak view runs.
    pub weak_pass: WeakPass,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iterations: 100,
            batch_size: 16,
            uratio: 5,
            lr: 0.0075,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 7.5e-4,
            p_cutoff: 0.95,
            class_thresholds: false,
            lambda_u: 1.0,
            hard_labels: true,
            temperature: 1.0,
            ema_momentum: 0.99,
            schedule: Schedule::Constant,
            warmup_iterations: 0,
            weak_pass: WeakPass::Joint,
        }
    }
}

/// Most iterations one call may ask for; far beyond any useful run, it catches typos.
pub const MAX_ITERATIONS: usize = 10_000_000;

impl Check for TrainConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let k = |name| key(prefix, name);
        check_range(errors, k("iterations"), self.iterations, 0, MAX_ITERATIONS);
        check_range(errors, k("batch_size"), self.batch_size, 1, 4096);
        check_range(errors, k("uratio"), self.uratio, 0, 64);
        check_positive(errors, k("lr"), self.lr);
        check_below(errors, k("momentum"), self.momentum, 0.0, 1.0);
        if self.nesterov && self.momentum == 0.0 {
            errors.push(format!("{}: Nesterov needs momentum > 0", k("nesterov")));
        }
        check_range(errors, k("weight_decay"), self.weight_decay, 0.0, 1.0);
        check_range(errors, k("p_cutoff"), self.p_cutoff, 0.0, 1.0);
        check_range(errors, k("lambda_u"), self.lambda_u, 0.0, 100.0);
        check_positive(errors, k("temperature"), self.temperature);
        check_below(errors, k("ema_momentum"), self.ema_momentum, 0.0, 1.0);
        if self.schedule == Schedule::Constant && self.warmup_iterations > 0 {
            errors.push(format!(
                "{}: warm-up only applies to the cosine schedule",
                k("warmup_iterations")
            ));
        }
    }
}

/// A trainer from checked settings, the model to train, its augmenter, the pixels it sees and
/// the seed of every random draw.
impl<C: Classifier, A: Augmenter> Build<(C, A, DataSpec, u64)> for TrainConfig {
    type Output = FixMatch<C, A>;
    type Error = Error;

    fn build_checked(
        config: &Checked<Self>,
        (model, augmenter, data, seed): (C, A, DataSpec, u64),
    ) -> Result<FixMatch<C, A>> {
        FixMatch::new(model, augmenter, config.clone(), data, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_settings_and_valid() {
        let c = TrainConfig::default().check().unwrap();
        assert_eq!(c.batch_size, 16);
        assert_eq!(c.uratio, 5);
        assert_eq!(c.lr, 0.0075);
        assert_eq!(c.weight_decay, 7.5e-4);
        assert_eq!(c.p_cutoff, 0.95);
        assert_eq!(c.ema_momentum, 0.99);
    }

    #[test]
    fn bad_fields_are_named() {
        let c = TrainConfig {
            lr: -1.0,
            p_cutoff: 1.5,
            warmup_iterations: 5,
            ..TrainConfig::default()
        };
        let mut msgs = Vec::new();
        c.check_into("train", &mut msgs);
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].starts_with("train.lr:"), "{msgs:?}");
        assert!(msgs[1].starts_with("train.p_cutoff:"), "{msgs:?}");
        assert!(msgs[2].starts_with("train.warmup_iterations:"), "{msgs:?}");
    }
}
