//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the workspace, or `$ANOMALYMATCH_SHARED`; `None` (after printing why)
/// when absent, so tests that need real data or weights skip.
pub fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("ANOMALYMATCH_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    };
    if dir.join(what).exists() {
        Some(dir)
    } else {
        println!(
            "skipping: {} not found (set ANOMALYMATCH_SHARED)",
            dir.join(what).display()
        );
        None
    }
}

/// EfficientNet-Lite0 with the shipped ImageNet weights and a fresh `num_classes` head (the
/// ImageNet head itself for 1000), built as the `[model]` section builds it.
pub fn lite0_pretrained(num_classes: usize) -> anomalymatch_models::EfficientNet {
    use anomalymatch_core::Check;
    let input = anomalymatch_models::ModelInput {
        in_channels: 3,
        num_classes,
        seed: 0,
    };
    anomalymatch_models::ModelConfig::default()
        .check()
        .unwrap()
        .build(input)
        .unwrap()
}

/// The largest absolute value of an f32 tensor.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}
