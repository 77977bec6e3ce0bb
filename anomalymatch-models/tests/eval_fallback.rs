//! Inference takes one folded network on every device: the fused CPU kernels and the candle-op
//! path that GPUs run must agree. A file of its own, because routing every op through candle
//! is a process-wide switch.
#![allow(clippy::unwrap_used)]

mod common;

use anomalymatch_core::{Check, Classifier, VarRole};
use anomalymatch_models::{EfficientNetConfig, Variant, ops};
use candle_core::{Device, Tensor};

#[test]
fn fused_kernels_and_candle_ops_give_the_same_inference() {
    // Lite0 (ReLU6, no squeeze-and-excitation) and B0 (SiLU, with it), with running statistics
    // far from their initial values so that folding them matters.
    for variant in [Variant::Lite0, Variant::B0] {
        let m = EfficientNetConfig::new(variant)
            .with_num_classes(3)
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap();
        for (i, v) in m.variables().iter().enumerate() {
            if v.role == VarRole::Buffer {
                let shifted = (Tensor::rand(0.5f32, 1.5, v.var.dims(), &Device::Cpu).unwrap()
                    * (1.0 + i as f64 % 3.0))
                    .unwrap();
                v.var.set(&shifted).unwrap();
            }
        }
        let x = Tensor::rand(0f32, 1f32, (3, 3, 40, 40), &Device::Cpu).unwrap();
        let fused = m.forward_t(&x, false).unwrap();
        ops::use_builtin_kernels(true);
        let candle = m.forward_t(&x, false).unwrap();
        ops::use_builtin_kernels(false);
        assert!(!fused.track_op(), "inference records no graph");
        let diff = common::max_abs(&(&fused - &candle).unwrap());
        let scale = common::max_abs(&candle);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{variant}: {diff} (scale {scale})"
        );
    }
}
