//! The pipeline configuration: one TOML file, the original AnomalyMatch's defaults, validated
//! into a [`Checked`] value before anything uses it.
//!
//! Defaults follow the reference table of `BENCHMARKS.md` (the original's FixMatch settings);
//! image size and iterations per cycle follow the GZ1 benchmark protocol.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A configuration section that can check its own fields.
pub trait Validate {
    /// Appends one message per bad field, prefixed with the field's dotted path.
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>);

    /// Validates into a [`Checked`] value, or every problem at once.
    fn validate(self) -> Result<Checked<Self>>
    where
        Self: Sized,
    {
        let mut errors = Vec::new();
        self.check_into("", &mut errors);
        if errors.is_empty() {
            Ok(Checked(self))
        } else {
            Err(Error::Config(errors))
        }
    }
}

/// A value whose fields have been validated; only [`Validate::validate`] makes one, so code that
/// receives it need not check again.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(T);

impl<T> Checked<T> {
    /// Gives back the plain value (for editing and validating again).
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The whole pipeline's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed for every random choice (sampling, augmentation, splits, dropout).
    pub seed: u64,
    /// Where images and labels come from and how they are decoded.
    pub data: DataConfig,
    /// The backbone.
    pub model: ModelConfig,
    /// FixMatch training.
    pub train: TrainConfig,
    /// Weak and strong augmentation.
    pub augment: AugmentConfig,
    /// Scoring of unlabelled images.
    pub score: ScoreConfig,
    /// Active-learning cycles.
    pub active: ActiveConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 42,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            augment: AugmentConfig::default(),
            score: ScoreConfig::default(),
            active: ActiveConfig::default(),
        }
    }
}

impl Config {
    /// Parses TOML text; `origin` names the source in error messages.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::ConfigFile {
            path: origin.into(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a TOML file (unvalidated; call [`Validate::validate`]).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::from_toml_str(&text, path)
    }

    /// The configuration as TOML text.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Writes the configuration as TOML, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes_atomic(path, self.to_toml_string()?.as_bytes())
    }
}

impl Validate for Config {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        self.data.check_into(&join(prefix, "data"), errors);
        self.model.check_into(&join(prefix, "model"), errors);
        self.train.check_into(&join(prefix, "train"), errors);
        self.augment.check_into(&join(prefix, "augment"), errors);
        self.score.check_into(&join(prefix, "score"), errors);
        self.active.check_into(&join(prefix, "active"), errors);
    }
}

/// How images are found and decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Folder of images (JPEG, PNG, TIFF).
    pub image_dir: Option<PathBuf>,
    /// Label file in the original's `labeled_data.csv` format.
    pub label_file: Option<PathBuf>,
    /// Side in pixels that every image is resized to.
    pub size: usize,
    /// Channels fed to the model (3 for RGB; 1 or more for survey bands).
    pub channels: usize,
    /// Most unlabelled images held in memory at once (the original's `N_to_load`).
    pub n_to_load: usize,
    /// Share of labelled images held out for evaluation (0 keeps all for training).
    pub test_ratio: f64,
    /// Abort on the first unreadable image instead of counting and skipping it.
    pub strict: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            image_dir: None,
            label_file: None,
            size: 96,
            channels: 3,
            n_to_load: 10_000,
            test_ratio: 0.0,
            strict: false,
        }
    }
}

impl Validate for DataConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let f = |name| join(prefix, name);
        if !(8..=4096).contains(&self.size) {
            errors.push(format!(
                "{}: must be 8..=4096 pixels, got {}",
                f("size"),
                self.size
            ));
        }
        if !(1..=64).contains(&self.channels) {
            errors.push(format!(
                "{}: must be 1..=64, got {}",
                f("channels"),
                self.channels
            ));
        }
        if self.n_to_load == 0 {
            errors.push(format!("{}: must be at least 1", f("n_to_load")));
        }
        if !(0.0..1.0).contains(&self.test_ratio) {
            errors.push(format!(
                "{}: must be in [0, 1), got {}",
                f("test_ratio"),
                self.test_ratio
            ));
        }
    }
}

/// Which backbone and how it is regularised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Architecture name: `efficientnet-lite0`..`lite4` or `efficientnet-b0`..`b7`.
    pub architecture: String,
    /// Start from ImageNet weights (the shipped Lite0 unless `weights` is given).
    pub pretrained: bool,
    /// A weight file (`.pth` or `.safetensors`) to start from.
    pub weights: Option<PathBuf>,
    /// Dropout before the classification head.
    pub dropout: f64,
    /// Drop-connect (stochastic depth) rate, scaled by block index.
    pub drop_connect: f64,
    /// Batch-norm momentum in PyTorch's convention (weight of the new batch statistic).
    pub bn_momentum: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            architecture: "efficientnet-lite0".into(),
            pretrained: true,
            weights: None,
            dropout: 0.2,
            drop_connect: 0.2,
            bn_momentum: 0.01,
            bn_eps: 1e-3,
        }
    }
}

/// Architectures the models crate provides.
pub const ARCHITECTURES: [&str; 13] = [
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "efficientnet-lite3",
    "efficientnet-lite4",
    "efficientnet-b0",
    "efficientnet-b1",
    "efficientnet-b2",
    "efficientnet-b3",
    "efficientnet-b4",
    "efficientnet-b5",
    "efficientnet-b6",
    "efficientnet-b7",
];

impl Validate for ModelConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let f = |name| join(prefix, name);
        if !ARCHITECTURES.contains(&self.architecture.as_str()) {
            errors.push(format!(
                "{}: unknown architecture {:?} (known: {})",
                f("architecture"),
                self.architecture,
                ARCHITECTURES.join(", ")
            ));
        }
        unit_interval(&f("dropout"), self.dropout, errors);
        unit_interval(&f("drop_connect"), self.drop_connect, errors);
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            errors.push(format!(
                "{}: must be in (0, 1], got {}",
                f("bn_momentum"),
                self.bn_momentum
            ));
        }
        if self.bn_eps.is_nan() || self.bn_eps <= 0.0 {
            errors.push(format!("{}: must be > 0, got {}", f("bn_eps"), self.bn_eps));
        }
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The original's constant learning rate.
    Constant,
    /// Linear warm-up then cosine decay to zero over the run (FixMatch paper's variant).
    Cosine,
}

/// FixMatch training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Training iterations per active-learning cycle.
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
    /// Weight of the unlabelled loss.
    pub lambda_u: f64,
    /// Hard (argmax) pseudo-labels; false uses soft labels sharpened by `temperature`.
    pub hard_labels: bool,
    /// Softmax temperature for soft pseudo-labels.
    pub temperature: f64,
    /// EMA momentum of the scoring model.
    pub ema_momentum: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Warm-up iterations for the cosine schedule.
    pub warmup_iterations: usize,
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
            lambda_u: 1.0,
            hard_labels: true,
            temperature: 1.0,
            ema_momentum: 0.99,
            schedule: Schedule::Constant,
            warmup_iterations: 0,
        }
    }
}

impl Validate for TrainConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let f = |name| join(prefix, name);
        if self.batch_size == 0 {
            errors.push(format!("{}: must be at least 1", f("batch_size")));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            errors.push(format!("{}: must be > 0, got {}", f("lr"), self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            errors.push(format!(
                "{}: must be in [0, 1), got {}",
                f("momentum"),
                self.momentum
            ));
        }
        if self.nesterov && self.momentum == 0.0 {
            errors.push(format!("{}: Nesterov needs momentum > 0", f("nesterov")));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            errors.push(format!(
                "{}: must be >= 0, got {}",
                f("weight_decay"),
                self.weight_decay
            ));
        }
        unit_interval(&f("p_cutoff"), self.p_cutoff, errors);
        if !(self.lambda_u >= 0.0 && self.lambda_u.is_finite()) {
            errors.push(format!(
                "{}: must be >= 0, got {}",
                f("lambda_u"),
                self.lambda_u
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            errors.push(format!(
                "{}: must be > 0, got {}",
                f("temperature"),
                self.temperature
            ));
        }
        if !(0.0..1.0).contains(&self.ema_momentum) {
            errors.push(format!(
                "{}: must be in [0, 1), got {}",
                f("ema_momentum"),
                self.ema_momentum
            ));
        }
        if self.schedule == Schedule::Constant && self.warmup_iterations > 0 {
            errors.push(format!(
                "{}: warm-up only applies to the cosine schedule",
                f("warmup_iterations")
            ));
        }
    }
}

/// Augmentation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Preset of the strong view: `fixmatch` (RandAugment as in FixMatch) or `astro`.
    pub preset: String,
    /// Largest weak-view shift as a share of the side.
    pub translate: f64,
    /// RandAugment operations per strong view.
    pub strong_ops: usize,
    /// Largest Cutout side as a share of the image side.
    pub cutout: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            preset: "fixmatch".into(),
            translate: 0.125,
            strong_ops: 3,
            cutout: 0.5,
        }
    }
}

impl Validate for AugmentConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let f = |name| join(prefix, name);
        if !["fixmatch", "astro"].contains(&self.preset.as_str()) {
            errors.push(format!(
                "{}: unknown preset {:?} (known: fixmatch, astro)",
                f("preset"),
                self.preset
            ));
        }
        if !(0.0..=0.5).contains(&self.translate) {
            errors.push(format!(
                "{}: must be in [0, 0.5], got {}",
                f("translate"),
                self.translate
            ));
        }
        if self.strong_ops > 14 {
            errors.push(format!(
                "{}: must be at most 14, got {}",
                f("strong_ops"),
                self.strong_ops
            ));
        }
        unit_interval(&f("cutout"), self.cutout, errors);
    }
}

/// Scoring settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreConfig {
    /// Images per forward pass when scoring.
    pub batch_size: usize,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig { batch_size: 256 }
    }
}

impl Validate for ScoreConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        if self.batch_size == 0 {
            errors.push(format!(
                "{}: must be at least 1",
                join(prefix, "batch_size")
            ));
        }
    }
}

/// Active-learning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActiveConfig {
    /// Train-score-label cycles to run.
    pub cycles: usize,
    /// Items shown to the oracle per cycle.
    pub queries_per_cycle: usize,
    /// Query strategy name (see the active crate).
    pub query: String,
}

impl Default for ActiveConfig {
    fn default() -> Self {
        ActiveConfig {
            cycles: 3,
            queries_per_cycle: 20,
            query: "top".into(),
        }
    }
}

impl Validate for ActiveConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        if self.query.trim().is_empty() {
            errors.push(format!("{}: must name a strategy", join(prefix, "query")));
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn unit_interval(field: &str, v: f64, errors: &mut Vec<String>) {
    if !(0.0..=1.0).contains(&v) {
        errors.push(format!("{field}: must be in [0, 1], got {v}"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_settings_and_valid() {
        let c = Config::default().validate().unwrap();
        assert_eq!(c.train.batch_size, 16);
        assert_eq!(c.train.uratio, 5);
        assert_eq!(c.train.lr, 0.0075);
        assert_eq!(c.train.weight_decay, 7.5e-4);
        assert_eq!(c.train.p_cutoff, 0.95);
        assert_eq!(c.train.ema_momentum, 0.99);
        assert_eq!(c.model.bn_momentum, 0.01);
        assert_eq!(c.model.architecture, "efficientnet-lite0");
    }

    #[test]
    fn toml_round_trip_and_partial_files() {
        let c = Config::default();
        let text = c.to_toml_string().unwrap();
        assert_eq!(
            Config::from_toml_str(&text, Path::new("x.toml")).unwrap(),
            c
        );
        let partial = "seed = 7\n[train]\nlr = 0.03\n";
        let p = Config::from_toml_str(partial, Path::new("p.toml")).unwrap();
        assert_eq!(p.seed, 7);
        assert_eq!(p.train.lr, 0.03);
        assert_eq!(p.train.batch_size, 16);
    }

    #[test]
    fn every_bad_field_gets_one_message() {
        let mut c = Config::default();
        c.train.lr = -1.0;
        c.train.p_cutoff = 1.5;
        c.data.size = 0;
        c.model.architecture = "resnet50".into();
        let Err(Error::Config(msgs)) = c.validate() else {
            panic!("expected a config error")
        };
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("train.lr:")));
        assert!(msgs.iter().any(|m| m.starts_with("train.p_cutoff:")));
        assert!(msgs.iter().any(|m| m.starts_with("data.size:")));
        assert!(msgs.iter().any(|m| m.contains("resnet50")));
    }

    #[test]
    fn unknown_fields_and_bad_types_name_the_file() {
        let e = Config::from_toml_str("[train]\nlearning_rate = 1\n", Path::new("cfg.toml"))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cfg.toml") && msg.contains("learning_rate"),
            "{msg}"
        );
        assert!(Config::from_toml_str("[train]\nlr = \"fast\"\n", Path::new("c.toml")).is_err());
    }
}
