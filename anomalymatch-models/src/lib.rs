//! EfficientNet backbones for AnomalyMatch in candle: the Lite and B families, pretrained
//! weights, and the fast CPU kernels they run on.
//!
//! ```no_run
//! use anomalymatch_core::{Check, Classifier};
//! use anomalymatch_models::{EfficientNetConfig, ModelConfig, ModelInput};
//! # fn main() -> anomalymatch_models::Result<()> {
//! let device = candle_core::Device::Cpu;
//! // Random initialisation, five-band images, normal/anomaly.
//! let scratch = EfficientNetConfig::lite0().with_in_channels(5).check()?.build(&device)?;
//! // The `[model]` section's default: ImageNet Lite0 shipped in `weights/`, stem adapted to
//! // one band, a fresh 2-class head.
//! let input = ModelInput { in_channels: 1, num_classes: anomalymatch_core::Label::CLASSES, seed: 0 };
//! let pretrained = ModelConfig::default().check()?.build(input)?;
//! # let _ = (scratch.spec(), pretrained.spec());
//! # Ok(())
//! # }
//! ```

pub mod batch_norm;
pub mod config;
pub mod efficientnet;
pub mod error;
pub mod ops;
pub mod pth;
pub mod weights;

pub use config::{ModelConfig, ModelInput, parse_device};
pub use efficientnet::{EfficientNet, EfficientNetConfig, Variant};
pub use error::{Error, Result};
pub use weights::{from_checkpoint, load_pretrained, shipped_weights};
