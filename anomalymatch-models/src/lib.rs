//! EfficientNet backbones for AnomalyMatch in candle: the Lite and B families, pretrained
//! weights, and the fast CPU kernels they run on.
//!
//! ```no_run
//! use anomalymatch_core::Classifier;
//! use anomalymatch_models::{EfficientNetConfig, pretrained_lite0};
//! # fn main() -> anomalymatch_models::Result<()> {
//! let device = candle_core::Device::Cpu;
//! // Random initialisation, five-band images, normal/anomaly.
//! let scratch = EfficientNetConfig::lite0().with_in_channels(5).init(&device)?;
//! // ImageNet weights shipped in `weights/`, stem adapted to one band, fresh 2-class head.
//! let pretrained = pretrained_lite0(1, 2, &device)?;
//! # let _ = (scratch.spec(), pretrained.spec());
//! # Ok(())
//! # }
//! ```

pub mod batch_norm;
pub mod efficientnet;
pub mod error;
pub mod ops;
pub mod pth;
pub mod weights;

pub use efficientnet::{EfficientNet, EfficientNetConfig, Variant};
pub use error::{Error, Result};
pub use weights::{load_pretrained, pretrained_lite0};
