//! The `[model]` section: which EfficientNet, from which weights, on which device. Checked, it
//! builds the network with its pretrained weights loaded.

use crate::efficientnet::{EfficientNet, EfficientNetConfig, Variant};
use crate::error::{Error, Result};
use crate::weights::{load_pretrained, shipped_weights};
use anomalymatch_core::config::{check_path, key};
use anomalymatch_core::{Build, Check, Checked, Label};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The backbone's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `efficientnet-lite0`..`efficientnet-lite4` or `efficientnet-b0`..`efficientnet-b7`.
    pub architecture: Variant,
    /// Start from ImageNet weights: the shipped Lite0, or the file in `weights`.
    pub pretrained: bool,
    /// A weight file (`.pth` or `.safetensors`) to start from.
    pub weights: Option<PathBuf>,
    /// Dropout before the classification head.
    pub dropout: f64,
    /// Drop-connect (stochastic depth) rate of the last block, scaled down for earlier ones.
    pub drop_connect: f64,
    /// Batch-norm momentum in PyTorch's convention (weight of the new batch statistic).
    pub bn_momentum: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
    /// Where the network runs: `cpu`, `cuda`, `cuda:N` or `metal` (GPU builds only).
    pub device: String,
    /// Train with less memory and more time: the backward pass recomputes the convolution
    /// outputs that the forward pass would otherwise keep. The results are the same.
    pub recompute: bool,
}

impl Default for ModelConfig {
    /// ImageNet-pretrained EfficientNet-Lite0 on the CPU with the original's regularisation:
    /// the network's own defaults ([`EfficientNetConfig::new`]), one source for both.
    fn default() -> Self {
        let network = EfficientNetConfig::new(Variant::Lite0);
        ModelConfig {
            architecture: network.variant,
            pretrained: true,
            weights: None,
            dropout: network.dropout,
            drop_connect: network.drop_connect,
            bn_momentum: network.bn_momentum,
            bn_eps: network.bn_eps,
            device: "cpu".into(),
            recompute: network.recompute,
        }
    }
}

/// What building a model needs besides its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInput {
    /// Input channels (from the data section).
    pub in_channels: usize,
    /// Output classes (2 for normal/anomaly).
    pub num_classes: usize,
    /// Seed of the initial values and of the dropout masks.
    pub seed: u64,
}

impl ModelConfig {
    /// The network's hyper-parameters for `input`.
    pub fn network(&self, input: ModelInput) -> EfficientNetConfig {
        EfficientNetConfig {
            in_channels: input.in_channels,
            num_classes: input.num_classes,
            dropout: self.dropout,
            drop_connect: self.drop_connect,
            bn_momentum: self.bn_momentum,
            bn_eps: self.bn_eps,
            seed: input.seed,
            recompute: self.recompute,
            ..EfficientNetConfig::new(self.architecture)
        }
    }

    /// The weight file to start from: `weights`, else the one shipped for the architecture.
    fn weight_file(&self) -> Option<PathBuf> {
        self.weights
            .clone()
            .or_else(|| shipped_weights(self.architecture))
    }
}

impl Check for ModelConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        // One source for the ranges: the network's own check, on the fields this section sets.
        let network = self.network(ModelInput {
            in_channels: 3,
            num_classes: Label::CLASSES,
            seed: 0,
        });
        network.check_into(prefix, errors);
        check_path(errors, key(prefix, "weights"), self.weights.as_deref());
        if self.pretrained && self.weight_file().is_none() {
            errors.push(format!(
                "{}: no ImageNet weights ship for {}; name a .pth or .safetensors file, or set \
                 pretrained = false",
                key(prefix, "weights"),
                self.architecture
            ));
        }
        if let Err(e) = parse_device(&self.device) {
            errors.push(format!("{}: {e}", key(prefix, "device")));
        }
    }
}

impl Build<ModelInput> for ModelConfig {
    type Output = EfficientNet;
    type Error = Error;

    /// The network on its device, with the pretrained weights loaded when asked (stem adapted
    /// to the channel count, a fresh head for the class count).
    fn build_checked(config: &Checked<Self>, input: ModelInput) -> Result<EfficientNet> {
        let device = parse_device(&config.device)?;
        let model = config.network(input).check()?.build(&device)?;
        if config.pretrained
            && let Some(file) = config.weight_file()
        {
            load_pretrained(&model, &file)?;
        }
        Ok(model)
    }
}

/// The candle device named `cpu`, `cuda`, `cuda:N` or `metal`; a GPU this build was compiled
/// without is an error saying which cargo feature brings it.
pub fn parse_device(name: &str) -> Result<Device> {
    let bad = |message: String| Error::Config(vec![message]);
    match name.trim() {
        "cpu" => Ok(Device::Cpu),
        "metal" => Device::new_metal(0).map_err(|e| bad(format!("metal: {e}"))),
        gpu if gpu == "cuda" || gpu.starts_with("cuda:") => {
            let ordinal = gpu
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse::<usize>)
                .map_err(|_| bad(format!("{gpu:?}: expected cuda:N")))?;
            Device::new_cuda(ordinal).map_err(|e| bad(format!("{gpu}: {e}")))
        }
        other => Err(bad(format!(
            "unknown device {other:?} (expected cpu, cuda, cuda:N or metal)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_come_from_the_network_check_and_name_the_key() {
        let bad = ModelConfig {
            dropout: 1.5,
            bn_eps: 0.0,
            device: "tpu".into(),
            ..ModelConfig::default()
        };
        let mut errors = Vec::new();
        bad.check_into("model", &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("model.dropout:"), "{errors:?}");
        assert!(errors[1].starts_with("model.bn_eps:"), "{errors:?}");
        assert!(errors[2].starts_with("model.device:") && errors[2].contains("tpu"));
    }

    #[test]
    fn pretrained_needs_weights_where_none_ship() {
        let lite1 = ModelConfig {
            architecture: Variant::Lite1,
            ..ModelConfig::default()
        };
        let Err(anomalymatch_core::Error::Config(errors)) = lite1.clone().check() else {
            panic!("expected a config error")
        };
        assert!(errors[0].starts_with("weights:"), "{errors:?}");
        let scratch = ModelConfig {
            pretrained: false,
            ..lite1
        };
        assert!(scratch.check().is_ok());
    }

    #[test]
    fn architectures_parse_from_toml_names() {
        let c: ModelConfig = toml::from_str("architecture = \"efficientnet-b3\"").unwrap();
        assert_eq!(c.architecture, Variant::B3);
        let e = toml::from_str::<ModelConfig>("architecture = \"resnet50\"").unwrap_err();
        assert!(e.to_string().contains("resnet50"), "{e}");
    }
}
