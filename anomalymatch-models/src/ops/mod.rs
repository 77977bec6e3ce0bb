//! The tensor operations EfficientNet spends its time in, behind one interface.
//!
//! Models call these functions rather than candle's ops directly, so that fast CPU kernels
//! (custom ops with their own backward pass) can replace candle's built-in path where they
//! pay, while CUDA and Metal keep candle's implementation.

use candle_core::{Module, Result, Tensor};

/// Depthwise 2-D convolution: `x [N, C, H, W]`, `w [C, 1, k, k]`, symmetric zero padding.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let channels = x.dim(1)?;
    x.conv2d(w, padding, stride, 1, channels)
}

/// 1x1 convolution: `x [N, Cin, H, W]`, `w [Cout, Cin, 1, 1]`.
pub fn pointwise_conv2d(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.conv2d(w, 0, 1, 1, 1)
}

/// `min(max(x, 0), 6)`, the activation of the Lite models.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu()?.minimum(6f32)
}

/// `x * sigmoid(x)`, the activation of the B models.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    candle_nn::Activation::Silu.forward(x)
}
