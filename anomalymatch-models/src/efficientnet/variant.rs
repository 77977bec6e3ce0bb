//! The EfficientNet variants and the hyper-parameters a network is built from.

use super::EfficientNet;
use crate::error::Error;
use anomalymatch_core::config::{check_below, check_range, key};
use anomalymatch_core::{Build, Check, Checked, Label};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One member of the EfficientNet families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// EfficientNet-B0, the base network.
    B0,
    /// EfficientNet-B1.
    B1,
    /// EfficientNet-B2.
    B2,
    /// EfficientNet-B3.
    B3,
    /// EfficientNet-B4.
    B4,
    /// EfficientNet-B5.
    B5,
    /// EfficientNet-B6.
    B6,
    /// EfficientNet-B7.
    B7,
    /// EfficientNet-Lite0, AnomalyMatch's default backbone.
    Lite0,
    /// EfficientNet-Lite1.
    Lite1,
    /// EfficientNet-Lite2.
    Lite2,
    /// EfficientNet-Lite3.
    Lite3,
    /// EfficientNet-Lite4.
    Lite4,
}

/// Width and depth coefficients, native resolution and dropout rate of a variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingParams {
    /// Multiplier of every stage's channel count.
    pub width: f64,
    /// Multiplier of every stage's number of blocks.
    pub depth: f64,
    /// The input size the variant was designed for (informational; any size works).
    pub resolution: usize,
    /// Dropout rate before the classifier.
    pub dropout: f64,
}

impl Variant {
    /// All variants, B family first.
    pub const ALL: [Variant; 13] = [
        Variant::B0,
        Variant::B1,
        Variant::B2,
        Variant::B3,
        Variant::B4,
        Variant::B5,
        Variant::B6,
        Variant::B7,
        Variant::Lite0,
        Variant::Lite1,
        Variant::Lite2,
        Variant::Lite3,
        Variant::Lite4,
    ];

    /// The scaling parameters of the paper (B) and of the TensorFlow Lite builder (Lite).
    pub fn params(self) -> ScalingParams {
        let (width, depth, resolution, dropout) = match self {
            Variant::B0 => (1.0, 1.0, 224, 0.2),
            Variant::B1 => (1.0, 1.1, 240, 0.2),
            Variant::B2 => (1.1, 1.2, 260, 0.3),
            Variant::B3 => (1.2, 1.4, 300, 0.3),
            Variant::B4 => (1.4, 1.8, 380, 0.4),
            Variant::B5 => (1.6, 2.2, 456, 0.4),
            Variant::B6 => (1.8, 2.6, 528, 0.5),
            Variant::B7 => (2.0, 3.1, 600, 0.5),
            Variant::Lite0 => (1.0, 1.0, 224, 0.2),
            Variant::Lite1 => (1.0, 1.1, 240, 0.2),
            Variant::Lite2 => (1.1, 1.2, 260, 0.3),
            Variant::Lite3 => (1.2, 1.4, 280, 0.3),
            Variant::Lite4 => (1.4, 1.8, 300, 0.3),
        };
        ScalingParams {
            width,
            depth,
            resolution,
            dropout,
        }
    }

    /// True for the Lite family.
    pub fn is_lite(self) -> bool {
        matches!(
            self,
            Variant::Lite0 | Variant::Lite1 | Variant::Lite2 | Variant::Lite3 | Variant::Lite4
        )
    }

    /// The conventional name, e.g. `efficientnet-lite0`, used as the architecture in specs.
    pub fn name(self) -> &'static str {
        match self {
            Variant::B0 => "efficientnet-b0",
            Variant::B1 => "efficientnet-b1",
            Variant::B2 => "efficientnet-b2",
            Variant::B3 => "efficientnet-b3",
            Variant::B4 => "efficientnet-b4",
            Variant::B5 => "efficientnet-b5",
            Variant::B6 => "efficientnet-b6",
            Variant::B7 => "efficientnet-b7",
            Variant::Lite0 => "efficientnet-lite0",
            Variant::Lite1 => "efficientnet-lite1",
            Variant::Lite2 => "efficientnet-lite2",
            Variant::Lite3 => "efficientnet-lite3",
            Variant::Lite4 => "efficientnet-lite4",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(|e: Error| serde::de::Error::custom(e))
    }
}

impl FromStr for Variant {
    type Err = Error;

    /// Parses `efficientnet-lite0`, `lite0`, `efficientnet_b3`, `B3` and the like.
    fn from_str(s: &str) -> Result<Self, Error> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        let key = key.strip_prefix("efficientnet-").unwrap_or(&key);
        Variant::ALL
            .into_iter()
            .find(|v| v.name().strip_prefix("efficientnet-") == Some(key))
            .ok_or_else(|| {
                Error::Config(vec![format!(
                    "unknown EfficientNet variant {s:?} (expected efficientnet-b0..b7 or \
                     efficientnet-lite0..lite4)"
                )])
            })
    }
}

/// Hyper-parameters of an EfficientNet: check them, then build the network on a device
/// (`EfficientNetConfig::lite0().check()?.build(&device)?`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EfficientNetConfig {
    /// Which network.
    pub variant: Variant,
    /// Input channels (3 for RGB; any number for multi-band data).
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Dropout rate before the classifier (the variant's rate by default).
    pub dropout: f64,
    /// Drop-connect (stochastic depth) rate of the last block; block `i` of `n` uses
    /// `rate * i / n`.
    pub drop_connect: f64,
    /// Batch-norm momentum in PyTorch's convention (weight of the new batch).
    pub bn_momentum: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
    /// Seed of the random initialisation and of the dropout and drop-connect masks.
    pub seed: u64,
    /// Trade time for memory in training: the fused convolution chains keep only their batch
    /// statistics and recompute the rest in the backward pass, with the same gradients. How a
    /// network trains, not what it is, so checkpoints do not record it.
    #[serde(skip)]
    pub recompute: bool,
}

impl EfficientNetConfig {
    /// Defaults for `variant`: 3 channels, 2 classes (normal/anomaly), the variant's dropout,
    /// drop-connect 0.2, batch-norm momentum 0.01 and epsilon 1e-3, seed 0.
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            in_channels: 3,
            num_classes: Label::CLASSES,
            dropout: variant.params().dropout,
            drop_connect: 0.2,
            bn_momentum: 0.01,
            bn_eps: 1e-3,
            seed: 0,
            recompute: false,
        }
    }

    /// Defaults for EfficientNet-Lite0, AnomalyMatch's backbone.
    pub fn lite0() -> Self {
        Self::new(Variant::Lite0)
    }

    /// Sets the number of input channels.
    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// Sets the number of output classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Sets the dropout rate before the classifier.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets the drop-connect rate of the last block.
    pub fn with_drop_connect(mut self, drop_connect: f64) -> Self {
        self.drop_connect = drop_connect;
        self
    }

    /// Sets the seed of initialisation and masks.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets whether training recomputes the convolution outputs in the backward pass.
    pub fn with_recompute(mut self, recompute: bool) -> Self {
        self.recompute = recompute;
        self
    }
}

impl Check for EfficientNetConfig {
    /// The ranges of every EfficientNet setting, stated here once; the `[model]` section
    /// checks its fields through this.
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let k = |name| key(prefix, name);
        check_range(
            errors,
            k("in_channels"),
            self.in_channels,
            1,
            anomalymatch_core::loader::MAX_CHANNELS,
        );
        check_range(errors, k("num_classes"), self.num_classes, 1, 100_000);
        check_below(errors, k("dropout"), self.dropout, 0.0, 1.0);
        check_below(errors, k("drop_connect"), self.drop_connect, 0.0, 1.0);
        check_range(errors, k("bn_momentum"), self.bn_momentum, 0.0, 1.0);
        if !(self.bn_eps > 0.0 && self.bn_eps < 1.0) {
            errors.push(format!(
                "{}: must be in (0, 1), got {}",
                k("bn_eps"),
                self.bn_eps
            ));
        }
    }
}

impl Build<&Device> for EfficientNetConfig {
    type Output = EfficientNet;
    type Error = Error;

    /// A randomly initialised network on `device`.
    fn build_checked(config: &Checked<Self>, device: &Device) -> Result<EfficientNet, Error> {
        EfficientNet::build((**config).clone(), device)
    }
}
