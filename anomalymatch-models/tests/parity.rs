//! Parity with PyTorch: the published EfficientNet-Lite weights, loaded from their `.pth`
//! files, give PyTorch's logits and pooled features on the golden input.
#![allow(clippy::unwrap_used)]

mod common;

use anomalymatch_core::{Check, Classifier};
use anomalymatch_models::{EfficientNetConfig, Variant, load_pretrained};
use candle_core::{Device, Tensor};

/// The golden input: `x[n,c,h,w] = ((7n + 13c + 3h + 5w) mod 255) / 255`, `[2, 3, 224, 224]`.
fn golden_input() -> Tensor {
    let (n, c, h, w) = (2, 3, 224, 224);
    let mut v = Vec::with_capacity(n * c * h * w);
    for i in 0..n {
        for j in 0..c {
            for y in 0..h {
                for x in 0..w {
                    v.push(((7 * i + 13 * j + 3 * y + 5 * x) % 255) as f32 / 255.0);
                }
            }
        }
    }
    Tensor::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn check(variant: Variant, file: &str) {
    let Some(shared) = common::shared_dir("weights/golden/pytorch_reference_outputs.json") else {
        return;
    };
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared.join("weights/golden/pytorch_reference_outputs.json")).unwrap(),
    )
    .unwrap();
    let golden = &golden[variant.name()];
    let model = EfficientNetConfig::new(variant)
        .with_num_classes(1000)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let report = load_pretrained(&model, &shared.join("weights").join(file)).unwrap();
    assert_eq!(report.stem_adapted, None);
    assert!(!report.head_reset);

    let x = golden_input();
    let logits: Vec<Vec<f32>> = model.forward_t(&x, false).unwrap().to_vec2().unwrap();
    let features: Vec<Vec<f32>> = model.embed(&x).unwrap().unwrap().to_vec2().unwrap();
    let mut worst_logit = 0.0f64;
    let mut worst_sum = 0.0f64;
    let mut worst_first16 = 0.0f64;
    for i in 0..2 {
        let want: Vec<f64> = serde_json::from_value(golden["logits"][i].clone()).unwrap();
        worst_logit = worst_logit.max(max_abs_diff(&logits[i], &want));
        let want_sum = golden["pooled_features_sum"][i].as_f64().unwrap();
        let sum: f64 = features[i].iter().map(|&f| f as f64).sum();
        worst_sum = worst_sum.max((sum - want_sum).abs());
        let want16: Vec<f64> =
            serde_json::from_value(golden["pooled_features_first16"][i].clone()).unwrap();
        worst_first16 = worst_first16.max(max_abs_diff(&features[i][..16], &want16));
    }
    println!(
        "{variant}: max |logit diff| = {worst_logit:.2e}, max |pooled sum diff| = {worst_sum:.2e}, max |first 16 features diff| = {worst_first16:.2e}"
    );
    assert!(
        worst_first16 < 1e-3,
        "{variant}: pooled features differ by {worst_first16}"
    );
    assert!(
        worst_logit < 1e-3,
        "{variant}: logits differ by {worst_logit}"
    );
    assert!(
        worst_sum < 1e-2,
        "{variant}: pooled sums differ by {worst_sum}"
    );
}

#[test]
fn lite0_matches_pytorch() {
    check(Variant::Lite0, "efficientnet-lite0-57934424.pth");
}

#[test]
fn lite1_matches_pytorch() {
    check(Variant::Lite1, "efficientnet-lite1-77cc7160.pth");
}

#[test]
fn lite2_matches_pytorch() {
    check(Variant::Lite2, "efficientnet-lite2-9656183e.pth");
}

/// The converted weights shipped in `weights/` give the same logits as the `.pth` file.
#[test]
fn shipped_lite0_matches_pytorch() {
    let Some(shared) = common::shared_dir("weights/golden/pytorch_reference_outputs.json") else {
        return;
    };
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared.join("weights/golden/pytorch_reference_outputs.json")).unwrap(),
    )
    .unwrap();
    let model = common::lite0_pretrained(1000);
    let x = golden_input().narrow(0, 0, 1).unwrap();
    let logits: Vec<Vec<f32>> = model.forward_t(&x, false).unwrap().to_vec2().unwrap();
    let want: Vec<f64> =
        serde_json::from_value(golden["efficientnet-lite0"]["logits"][0].clone()).unwrap();
    let diff = max_abs_diff(&logits[0], &want);
    println!("shipped lite0: max |logit diff| = {diff:.2e}");
    assert!(diff < 1e-3);
}
