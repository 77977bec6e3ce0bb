//! Learning on real data: Lite0 fits 64 labelled Galaxy Zoo images (mergers vs ellipticals),
//! from scratch and from the pretrained weights.
#![allow(clippy::unwrap_used)]

mod common;

use anomalymatch_core::{Check, Classifier};
use anomalymatch_models::{EfficientNet, EfficientNetConfig};
// Measured before the fast depthwise kernel: about 41 s per full-batch step (64 images of
// 32x32) on 2 shared cores with candle's grouped convolution, whose backward dominates.
// The pretrained test then passed after 45 steps (1088 s); from scratch was not timed.
use candle_core::{Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use std::time::Instant;

/// Side of the downsized images: small, so that the test stays cheap.
const SIZE: u32 = 32;
/// Images per class.
const PER_CLASS: usize = 32;

/// The first `PER_CLASS` mergers (label 1) and ellipticals (label 0) of `classes.csv`, as
/// `[64, 3, SIZE, SIZE]` in `[0, 1]` and their labels.
fn gz1_batch() -> Option<(Tensor, Tensor)> {
    let shared = common::shared_dir("data/gz1-sdss/classes.csv")?;
    let dir = shared.join("data/gz1-sdss");
    let csv = std::fs::read_to_string(dir.join("classes.csv")).unwrap();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let mut counts = [0usize; 2];
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let label = match fields[3] {
            "elliptical" => 0,
            "merger" => 1,
            _ => continue,
        };
        if counts[label] == PER_CLASS {
            continue;
        }
        counts[label] += 1;
        let img = image::open(dir.join("images").join(fields[0]))
            .unwrap()
            .to_rgb8();
        let img = image::imageops::resize(&img, SIZE, SIZE, image::imageops::FilterType::Triangle);
        // Planar CHW layout.
        for c in 0..3 {
            pixels.extend(img.pixels().map(|p| p[c] as f32 / 255.0));
        }
        labels.push(label as u32);
    }
    assert_eq!(counts, [PER_CLASS; 2]);
    let n = labels.len();
    let s = SIZE as usize;
    Some((
        Tensor::from_vec(pixels, (n, 3, s, s), &Device::Cpu).unwrap(),
        Tensor::from_vec(labels, n, &Device::Cpu).unwrap(),
    ))
}

/// Full-batch AdamW until eval-mode accuracy on the 64 images is 100%; returns the steps taken.
fn fit(model: &EfficientNet, x: &Tensor, y: &Tensor, lr: f64, max_steps: usize) -> usize {
    let vars = model
        .variables()
        .into_iter()
        .filter(|v| v.role.is_trainable())
        .map(|v| v.var)
        .collect();
    let params = ParamsAdamW {
        lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(vars, params).unwrap();
    let start = Instant::now();
    for step in 1..=max_steps {
        let logits = model.forward_t(x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
        opt.backward_step(&loss).unwrap();
        if step % 5 == 0 {
            let predicted = model.forward_t(x, false).unwrap().argmax(1).unwrap();
            let correct: f32 = predicted
                .eq(y)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            println!(
                "step {step}: loss {:.4}, eval accuracy {}/{} ({:.1}s)",
                loss.to_scalar::<f32>().unwrap(),
                correct,
                y.dim(0).unwrap(),
                start.elapsed().as_secs_f32()
            );
            if correct as usize == y.dim(0).unwrap() {
                return step;
            }
        }
    }
    panic!("no 100% training accuracy after {max_steps} steps");
}

#[test]
fn lite0_from_scratch_fits_64_galaxies() {
    let Some((x, y)) = gz1_batch() else { return };
    // Faster-moving running statistics, so that eval mode catches up with a short training.
    let mut config = EfficientNetConfig::lite0().with_seed(1);
    config.bn_momentum = 0.1;
    let model = config.check().unwrap().build(&Device::Cpu).unwrap();
    let steps = fit(&model, &x, &y, 3e-3, 200);
    println!("from scratch: 100% after {steps} steps");
}

#[test]
fn pretrained_lite0_fits_64_galaxies() {
    let Some((x, y)) = gz1_batch() else { return };
    // As from scratch, faster running statistics: ImageNet's at 224 pixels do not describe
    // 32-pixel galaxies, and eval mode is what is checked.
    let mut config = EfficientNetConfig::lite0().with_seed(1);
    config.bn_momentum = 0.1;
    let model = config.check().unwrap().build(&Device::Cpu).unwrap();
    let path = anomalymatch_models::shipped_weights(anomalymatch_models::Variant::Lite0).unwrap();
    let report = anomalymatch_models::load_pretrained(&model, &path).unwrap();
    assert!(report.head_reset);
    let steps = fit(&model, &x, &y, 1e-3, 200);
    println!("pretrained: 100% after {steps} steps");
}

/// A FixMatch run resumed from a checkpoint trains exactly as an uninterrupted one: the dropout
/// and drop-connect masks follow the step, not the process.
#[test]
fn resumed_fixmatch_draws_the_masks_of_an_uninterrupted_run() {
    use anomalymatch_core::{
        ChannelMode, DataSpec, FixMatch, IdentityAugmenter, ImageBatch, ImageStore, Label, Stretch,
        TrainConfig, TrainData,
    };
    let size = 32;
    let values = |n: usize, salt: usize| {
        let v = (0..n * 3 * size * size)
            .map(|i| ((i * 7919 + salt) % 255) as f32 / 255.0)
            .collect();
        ImageStore::quantize(&ImageBatch::from_vec(v, 3, size, size).unwrap())
    };
    let (labelled, unlabelled) = (values(4, 1), values(8, 2));
    let labels = [Label::Anomaly, Label::Normal, Label::Normal, Label::Anomaly];
    let data = TrainData {
        labelled: &labelled,
        labels: &labels,
        unlabelled: &unlabelled,
    };
    let spec = DataSpec {
        size,
        channels: ChannelMode::Rgb,
        stretch: Stretch::default(),
        crop: anomalymatch_core::Crop::WHOLE,
    };
    let config = TrainConfig {
        batch_size: 2,
        uratio: 2,
        ..TrainConfig::default()
    }
    .check()
    .unwrap();
    let trainer = || {
        let model = EfficientNetConfig::lite0()
            .check()
            .unwrap()
            .build(&Device::Cpu)
            .unwrap();
        FixMatch::new(model, IdentityAugmenter, config.clone(), spec, 5).unwrap()
    };
    let mut straight = trainer();
    straight.fit(&data, 4, &mut |_| {}).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("half.safetensors");
    let mut first = trainer();
    first.fit(&data, 2, &mut |_| {}).unwrap();
    first.save_checkpoint(&checkpoint).unwrap();
    let mut resumed = trainer();
    resumed.resume(&checkpoint).unwrap();
    resumed.fit(&data, 2, &mut |_| {}).unwrap();

    for (a, b) in straight
        .model()
        .variables()
        .iter()
        .zip(resumed.model().variables())
    {
        let diff = common::max_abs(&(a.var.as_tensor() - b.var.as_tensor()).unwrap());
        assert_eq!(diff, 0.0, "{} differs after resuming", a.name);
    }
}
