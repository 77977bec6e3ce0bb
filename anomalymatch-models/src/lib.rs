//! EfficientNet backbones for AnomalyMatch in candle: the Lite and B families, pretrained
//! weights, checkpoints, and the fast CPU kernels they run on.

pub mod ops;
