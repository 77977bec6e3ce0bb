//! EfficientNet backbones for AnomalyMatch in candle: the Lite and B families, pretrained
//! weights, checkpoints, and the fast CPU kernels they run on.

pub mod batch_norm;
pub mod checkpoint;
pub mod efficientnet;
pub mod error;
pub mod ops;
pub mod pth;
pub mod weights;

pub use checkpoint::{TrainingState, load_checkpoint, save_checkpoint};
pub use efficientnet::{EfficientNet, EfficientNetConfig, Variant};
pub use error::{Error, Result};
pub use weights::{load_pretrained, pretrained_lite0};
