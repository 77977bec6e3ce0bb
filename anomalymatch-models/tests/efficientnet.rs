//! Architecture, modes, variables and pretrained loading of the EfficientNet models.
#![allow(clippy::unwrap_used)]

mod common;

use anomalymatch_core::{Check, Classifier, VarRole};
use anomalymatch_models::efficientnet::round_filters;
use anomalymatch_models::weights::adapt_stem;
use anomalymatch_models::{EfficientNet, EfficientNetConfig, Variant, load_pretrained};
use candle_core::{DType, Device, Tensor};

fn images(n: usize, c: usize, size: usize, seed: u64) -> Tensor {
    let dev = Device::Cpu;
    let len = n * c * size * size;
    // A deterministic pseudo-random pattern, different per seed.
    let v: Vec<f32> = (0..len)
        .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32) / 1000.0)
        .collect();
    Tensor::from_vec(v, (n, c, size, size), &dev).unwrap()
}

fn trainable_params(m: &EfficientNet) -> usize {
    m.variables()
        .iter()
        .filter(|v| v.role.is_trainable())
        .map(|v| v.var.elem_count())
        .sum()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn parameter_counts_match_the_published_models() {
    // 5,288,548 (B0) and 4,652,008 (Lite0) with the 1000-class ImageNet head.
    let b0 = EfficientNetConfig::new(Variant::B0)
        .with_num_classes(1000)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    assert_eq!(trainable_params(&b0), 5_288_548);
    assert_eq!(b0.num_blocks(), 16);
    let lite0 = EfficientNetConfig::lite0()
        .with_num_classes(1000)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    assert_eq!(trainable_params(&lite0), 4_652_008);
    assert_eq!(lite0.num_blocks(), 16);
}

#[test]
fn scaling_rules() {
    assert_eq!(round_filters(32, 1.1), 32);
    assert_eq!(round_filters(16, 1.2), 24); // rounding down by more than 10% is corrected
    assert_eq!(round_filters(1280, 2.0), 2560);
    let lite2 = EfficientNetConfig::new(Variant::Lite2)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    // Lite does not depth-scale the first and last stages: 1+3+3+4+4+5+1.
    assert_eq!(lite2.num_blocks(), 21);
    assert_eq!(lite2.feature_width(), 1280);
    let b2 = EfficientNetConfig::new(Variant::B2)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    assert_eq!(b2.num_blocks(), 23);
    assert_eq!(b2.feature_width(), 1408);
    assert_eq!("lite3".parse::<Variant>().unwrap(), Variant::Lite3);
    assert_eq!("EfficientNet_B7".parse::<Variant>().unwrap(), Variant::B7);
    assert!("b9".parse::<Variant>().is_err());
}

#[test]
fn output_shapes_for_any_channel_count() {
    for variant in [Variant::B0, Variant::Lite0] {
        for channels in [1, 5] {
            let m = EfficientNetConfig::new(variant)
                .with_in_channels(channels)
                .with_num_classes(2)
                .check()
                .unwrap()
                .build(&Device::Cpu)
                .unwrap();
            let x = images(2, channels, 64, 1);
            assert_eq!(m.forward_t(&x, false).unwrap().dims(), &[2, 2]);
            assert_eq!(m.embed(&x).unwrap().unwrap().dims(), &[2, 1280]);
            // One pass gives both, equal to the two passes apart.
            let (logits, features) = m.classify_and_embed(&x).unwrap();
            assert_eq!(max_diff(&logits, &m.forward_t(&x, false).unwrap()), 0.0);
            assert_eq!(
                max_diff(&features.unwrap(), &m.embed(&x).unwrap().unwrap()),
                0.0
            );
            assert_eq!(m.spec().in_channels, channels);
            // Wrong channel count is a clear error, not a panic.
            assert!(m.forward_t(&images(1, channels + 1, 64, 1), false).is_err());
        }
    }
}

#[test]
fn invalid_configurations_are_rejected_with_every_reason() {
    let err = EfficientNetConfig::lite0()
        .with_in_channels(0)
        .with_num_classes(0)
        .with_dropout(1.5)
        .check()
        .unwrap_err()
        .to_string();
    for field in ["in_channels", "num_classes", "dropout"] {
        assert!(err.contains(field), "{err}");
    }
}

#[test]
fn variable_roles() {
    let m = EfficientNetConfig::new(Variant::B0)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let vars = m.variables();
    let names: std::collections::HashSet<_> = vars.iter().map(|v| v.name.clone()).collect();
    assert_eq!(names.len(), vars.len(), "names are unique");
    for v in &vars {
        let want = if v.name.ends_with("running_mean") || v.name.ends_with("running_var") {
            VarRole::Buffer
        } else if v.name.ends_with(".bias") || v.name.contains("._bn") || v.name.starts_with("_bn")
        {
            VarRole::NoDecay
        } else {
            VarRole::Weight
        };
        assert_eq!(v.role, want, "{}", v.name);
    }
    assert!(names.contains("_blocks.1._se_reduce.weight"));
    let lite = EfficientNetConfig::lite0()
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    assert!(!lite.variables().iter().any(|v| v.name.contains("_se_")));
}

#[test]
fn training_mode_backpropagates_and_updates_running_statistics() {
    // B0 covers squeeze-and-excitation, which splits a block's fused layers.
    for variant in [Variant::Lite0, Variant::B0] {
        let m = EfficientNetConfig::new(variant)
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap();
        let running = |m: &EfficientNet| -> Vec<(String, Tensor)> {
            m.variables()
                .iter()
                .filter(|v| v.name.ends_with("running_var") || v.name.ends_with("running_mean"))
                .map(|v| (v.name.clone(), v.var.as_tensor().copy().unwrap()))
                .collect()
        };
        let before = running(&m);
        let x = images(4, 3, 32, 2);
        let logits = m.forward_t(&x, true).unwrap();
        let targets = Tensor::new(&[0u32, 1, 0, 1], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        let grads = loss.backward().unwrap();
        for v in m.variables().iter().filter(|v| v.role.is_trainable()) {
            assert!(
                grads.get(v.var.as_tensor()).is_some(),
                "{variant}: no gradient for {}",
                v.name
            );
        }
        for v in m.variables().iter().filter(|v| v.role == VarRole::Buffer) {
            assert!(
                grads.get(v.var.as_tensor()).is_none(),
                "{variant}: gradient for buffer {}",
                v.name
            );
        }
        for ((name, old), (_, new)) in before.iter().zip(running(&m)) {
            assert!(max_diff(old, &new) > 0.0, "{variant}: {name} not updated");
        }
    }
    let m = EfficientNetConfig::lite0()
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let x = images(4, 3, 32, 2);
    m.forward_t(&x, true).unwrap();
    // Eval mode is deterministic and leaves the statistics alone.
    let after = m.variables()[4].var.as_tensor().copy().unwrap();
    let a = m.forward_t(&x, false).unwrap();
    let b = m.forward_t(&x, false).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    assert_eq!(max_diff(&after, m.variables()[4].var.as_tensor()), 0.0);
}

/// Recomputing the fused chains' convolutions in the backward pass changes no gradient, bit for
/// bit, with drop-connect on (its masks come from the seed, the same in both runs).
#[test]
fn recomputing_in_the_backward_pass_gives_the_same_gradients() {
    for variant in [Variant::Lite0, Variant::B0] {
        let run = |recompute| -> Vec<Vec<f32>> {
            let m = EfficientNetConfig::new(variant)
                .with_seed(5)
                .with_recompute(recompute)
                .check()
                .unwrap()
                .build(&Device::Cpu)
                .unwrap();
            assert!(m.config().drop_connect > 0.0);
            let logits = m.forward_t(&images(4, 3, 32, 6), true).unwrap();
            let targets = Tensor::new(&[1u32, 0, 0, 1], &Device::Cpu).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
            let grads = loss.backward().unwrap();
            m.variables()
                .iter()
                .filter(|v| v.role.is_trainable())
                .map(|v| {
                    let g = grads.get(v.var.as_tensor()).unwrap();
                    g.flatten_all().unwrap().to_vec1().unwrap()
                })
                .collect()
        };
        assert!(run(false) == run(true), "{variant}: gradients differ");
    }
}

#[test]
fn batch_norm_follows_pytorch_momentum() {
    // A fresh layer (mean 0, var 1) after one batch: running = 0.99 * old + 0.01 * batch,
    // with the unbiased batch variance.
    let bn = anomalymatch_models::batch_norm::BatchNorm2d::new("bn", 1, 0.01, 1e-3, &Device::Cpu)
        .unwrap();
    let x = Tensor::new(&[1f32, 2., 3., 6.], &Device::Cpu)
        .unwrap()
        .reshape((4, 1, 1, 1))
        .unwrap();
    let y = bn
        .forward_t(&x, true, anomalymatch_models::ops::Activation::Identity)
        .unwrap();
    let mut vars = Vec::new();
    bn.push_variables(&mut vars);
    let mean: Vec<f32> = vars[2].var.as_tensor().to_vec1().unwrap();
    let var: Vec<f32> = vars[3].var.as_tensor().to_vec1().unwrap();
    assert!((mean[0] - 0.03).abs() < 1e-6);
    assert!((var[0] - (0.99 + 0.01 * 14.0 / 3.0)).abs() < 1e-6);
    // Output normalised with the biased variance 3.5.
    let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    assert!((y[3] - 3.0 / (3.5f32 + 1e-3).sqrt()).abs() < 1e-5);
}

#[test]
fn a_detached_batch_norm_pass_joins_the_next_update_as_one_batch() {
    use anomalymatch_models::batch_norm::{BatchNorm2d, Pass};
    use anomalymatch_models::ops::Activation::Identity;
    let values = |v: &[f32]| {
        Tensor::new(v, &Device::Cpu)
            .unwrap()
            .reshape((v.len(), 1, 1, 1))
    };
    let stats = |bn: &BatchNorm2d| {
        let mut vars = Vec::new();
        bn.push_variables(&mut vars);
        let get = |i: usize| vars[i].var.as_tensor().to_vec1::<f32>().unwrap()[0];
        (get(2), get(3))
    };
    let joint = BatchNorm2d::new("bn", 1, 0.1, 1e-3, &Device::Cpu).unwrap();
    let split = BatchNorm2d::new("bn", 1, 0.1, 1e-3, &Device::Cpu).unwrap();
    joint
        .forward_t(&values(&[1., 2., 3., 6., -4.]).unwrap(), true, Identity)
        .unwrap();
    let weak = split
        .forward_train(&values(&[3., 6., -4.]).unwrap(), Identity, Pass::Detached)
        .unwrap();
    // Nothing is recorded and the running statistics wait for the training pass.
    assert!(!weak.track_op());
    assert_eq!(stats(&split), (0.0, 1.0));
    split
        .forward_train(&values(&[1., 2.]).unwrap(), Identity, Pass::Graph)
        .unwrap();
    let ((m1, v1), (m2, v2)) = (stats(&joint), stats(&split));
    assert!(
        (m1 - m2).abs() < 1e-6 && (v1 - v2).abs() < 1e-5,
        "{m1} {v1} / {m2} {v2}"
    );
}

#[test]
fn the_weak_pass_keeps_no_graph_and_its_statistics_reach_the_running_ones() {
    let build = || {
        EfficientNetConfig::lite0()
            .with_seed(4)
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap()
    };
    let (joint, split) = (build(), build());
    let x = images(6, 3, 32, 8);
    joint.forward_t(&x, true).unwrap();
    let weak = split.forward_weak(&x.narrow(0, 2, 4).unwrap()).unwrap();
    assert!(!weak.track_op());
    assert_eq!(weak.dims(), &[4, 2]);
    let rest = split.forward_t(&x.narrow(0, 0, 2).unwrap(), true).unwrap();
    assert!(rest.track_op());
    // The stem's batch norm sees the same convolution outputs either way, so its running
    // statistics agree; later layers see differently normalised inputs.
    let stem = |m: &EfficientNet, name: &str| {
        let v = m.variables();
        let var = v.iter().find(|v| v.name == name).unwrap();
        var.var.as_tensor().copy().unwrap()
    };
    for name in ["_bn0.running_mean", "_bn0.running_var"] {
        let d = max_diff(&stem(&joint, name), &stem(&split, name));
        assert!(d < 1e-5, "{name}: {d}");
    }
}

#[test]
fn masks_repeat_with_the_seed() {
    let x = images(4, 3, 32, 3);
    let run = |seed| {
        let m = EfficientNetConfig::lite0()
            .with_seed(seed)
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap();
        m.forward_t(&x, true).unwrap()
    };
    assert_eq!(max_diff(&run(7), &run(7)), 0.0);
    assert!(max_diff(&run(7), &run(8)) > 0.0);
}

#[test]
fn duplicate_is_independent() {
    let m = EfficientNetConfig::lite0()
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let copy = m.duplicate().unwrap();
    let x = images(2, 3, 32, 4);
    assert_eq!(
        max_diff(
            &m.forward_t(&x, false).unwrap(),
            &copy.forward_t(&x, false).unwrap()
        ),
        0.0
    );
    let before = m.forward_t(&x, false).unwrap();
    for v in copy.variables() {
        v.var.set(&v.var.zeros_like().unwrap()).unwrap();
    }
    assert_eq!(max_diff(&before, &m.forward_t(&x, false).unwrap()), 0.0);
    // Training the original leaves the copy alone too.
    let frozen = copy.forward_t(&x, false).unwrap();
    m.forward_t(&x, true).unwrap();
    assert_eq!(max_diff(&frozen, &copy.forward_t(&x, false).unwrap()), 0.0);
}

#[test]
fn stem_adaptation_keeps_grey_images_equivalent() {
    let w = Tensor::new(&[1f32, 2., 6.], &Device::Cpu)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    let one: Vec<f32> = adapt_stem(&w, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(one, vec![9.0]);
    let five: Vec<f32> = adapt_stem(&w, 5)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(
        five.len() == 5 && five.iter().all(|&v| (v - 1.8).abs() < 1e-6),
        "{five:?}"
    );
    let wrong = Tensor::zeros((1, 3, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(adapt_stem(&wrong, 2).is_err());
}

#[test]
fn pretrained_weights_adapt_channels_and_head() {
    let path = anomalymatch_models::shipped_weights(anomalymatch_models::Variant::Lite0).unwrap();
    let rgb = EfficientNetConfig::lite0()
        .with_num_classes(1000)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let report = load_pretrained(&rgb, &path).unwrap();
    assert_eq!(
        (report.loaded, report.stem_adapted, report.head_reset),
        (247, None, false)
    );

    // One channel: a grey image gives the logits the RGB model gives for R = G = B.
    let grey = EfficientNetConfig::lite0()
        .with_in_channels(1)
        .with_num_classes(1000)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let report = load_pretrained(&grey, &path).unwrap();
    assert_eq!(report.stem_adapted, Some((3, 1)));
    let x = images(2, 1, 64, 5);
    let x3 = Tensor::cat(&[&x, &x, &x], 1).unwrap();
    let d = max_diff(
        &grey.forward_t(&x, false).unwrap(),
        &rgb.forward_t(&x3, false).unwrap(),
    );
    assert!(d < 1e-3, "{d}");

    // Two classes: a fresh head, the backbone's features unchanged.
    let two = common::lite0_pretrained(2);
    let x = images(2, 3, 64, 6);
    assert_eq!(
        max_diff(
            &two.embed(&x).unwrap().unwrap(),
            &rgb.embed(&x).unwrap().unwrap()
        ),
        0.0
    );
    assert_eq!(two.forward_t(&x, false).unwrap().dims(), &[2, 2]);

    // Weights of another variant are refused, naming the file, and change nothing.
    let b0 = EfficientNetConfig::new(Variant::B0)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let before = b0.forward_t(&x, false).unwrap();
    let err = load_pretrained(&b0, &path).unwrap_err().to_string();
    assert!(err.contains("efficientnet-lite0.safetensors"), "{err}");
    assert_eq!(max_diff(&before, &b0.forward_t(&x, false).unwrap()), 0.0);
}

#[test]
fn other_lite_files_are_refused_by_lite0() {
    let Some(shared) = common::shared_dir("weights/efficientnet-lite1-77cc7160.pth") else {
        return;
    };
    let m = EfficientNetConfig::lite0()
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let err = load_pretrained(&m, &shared.join("weights/efficientnet-lite1-77cc7160.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("efficientnet-lite1-77cc7160.pth"), "{err}");
    assert!(err.contains("efficientnet-lite0 expects"), "{err}");
}

#[test]
fn same_padding_puts_the_odd_pixel_after() {
    use anomalymatch_models::efficientnet::Padding;
    let pad = |size, k, s| {
        let p = Padding::same(size, k, s);
        (p.before, p.after)
    };
    assert_eq!(pad(224, 3, 2), (0, 1));
    assert_eq!(pad(112, 5, 2), (1, 2));
    assert_eq!(pad(56, 3, 1), (1, 1));
    assert_eq!(pad(56, 5, 1), (2, 2));
    // An odd input needs no extra pixel: output 4 from 7 with a 3x3 stride-2 kernel.
    assert_eq!(pad(7, 3, 2), (1, 1));
}

#[test]
fn the_smallest_input_each_variant_accepts_runs_and_one_less_does_not() {
    for variant in [Variant::Lite0, Variant::B0] {
        let m = EfficientNetConfig::new(variant)
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap();
        let min = m.min_input_size();
        assert!((8..=64).contains(&min), "{variant}: {min}");
        assert!(
            m.forward_t(&images(1, 3, min, 1), false).is_ok(),
            "{variant} at {min}"
        );
        assert!(
            m.forward_t(&images(1, 3, min - 1, 1), false).is_err(),
            "{variant} at {}",
            min - 1
        );
    }
}

/// EfficientNet-B0's published 0.39 B multiply-adds at 224x224, 1000 classes (Tan & Le 2019,
/// table 2); Lite0 has the same layers less squeeze-and-excitation, a few percent fewer.
#[test]
fn flop_counts_match_the_published_models() {
    let flops = |variant: Variant, size: usize| {
        let m = EfficientNetConfig::new(variant)
            .with_num_classes(1000)
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap();
        m.forward_flops(size)
    };
    let b0 = flops(Variant::B0, 224).unwrap() as f64;
    assert!((0.95..1.05).contains(&(b0 / 0.78e9)), "B0: {b0} FLOPs");
    let lite0 = flops(Variant::Lite0, 224).unwrap() as f64;
    assert!((0.97..1.0).contains(&(lite0 / b0)), "Lite0: {lite0} FLOPs");
    // Spatial layers scale with the pixel count; an input smaller than the stem has none.
    assert!(flops(Variant::Lite0, 96).unwrap() < flops(Variant::Lite0, 224).unwrap() / 4);
    assert_eq!(flops(Variant::Lite0, 1), None);
}
