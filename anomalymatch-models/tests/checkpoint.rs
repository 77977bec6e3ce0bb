//! Checkpoints round-trip the whole training state and refuse models they do not fit.
#![allow(clippy::unwrap_used)]

use anomalymatch_core::checkpoint::{CheckpointState, load_checkpoint, save_checkpoint};
use anomalymatch_core::{ChannelMode, DataConfig, DataSpec, Stretch, TrainConfig};
use anomalymatch_core::{Check, Classifier};
use anomalymatch_models::{EfficientNetConfig, from_checkpoint};
use candle_core::{Device, Tensor};

fn x() -> Tensor {
    Tensor::rand(0f32, 1f32, (2, 3, 32, 32), &Device::Cpu).unwrap()
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
fn round_trip_restores_models_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let config = EfficientNetConfig::lite0();
    let model = config
        .clone()
        .with_seed(1)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let ema = model.duplicate().unwrap();
    let x = x();
    model.forward_t(&x, true).unwrap(); // move running statistics away from the EMA's
    let momentum = Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
    let state = CheckpointState {
        iteration: 1234,
        optimizer: vec![("_fc.weight.momentum".into(), momentum.clone())],
        train: TrainConfig {
            lr: 0.03,
            ..TrainConfig::default()
        },
        data: DataSpec {
            size: 32,
            channels: ChannelMode::Rgb,
            stretch: Stretch::Asinh { softening: 0.2 },
            crop: anomalymatch_core::Crop::Share(0.5),
        },
    };
    save_checkpoint(&path, &model, &ema, &state).unwrap();

    let model2 = config
        .clone()
        .with_seed(2)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let ema2 = config
        .with_seed(3)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let restored = load_checkpoint(&path, &model2, &ema2).unwrap();
    assert_eq!(restored.iteration, 1234);
    assert_eq!(restored.train, state.train);
    assert_eq!(restored.data, state.data);
    assert_eq!(restored.optimizer.len(), 1);
    assert_eq!(restored.optimizer[0].0, "_fc.weight.momentum");
    assert_eq!(max_diff(&restored.optimizer[0].1, &momentum), 0.0);
    for (a, b) in [(&model, &model2), (&ema, &ema2)] {
        assert_eq!(
            max_diff(
                &a.forward_t(&x, false).unwrap(),
                &b.forward_t(&x, false).unwrap()
            ),
            0.0
        );
    }
    assert!(
        max_diff(
            &model2.forward_t(&x, false).unwrap(),
            &ema2.forward_t(&x, false).unwrap()
        ) > 0.0
    );
    // Only the checkpoint itself is left in the folder (no temporary files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn mismatched_models_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let model = EfficientNetConfig::lite0()
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let state = CheckpointState {
        iteration: 1,
        optimizer: vec![],
        train: TrainConfig::default(),
        data: DataConfig::default().spec(),
    };
    save_checkpoint(&path, &model, &model, &state).unwrap();

    let x5 = Tensor::rand(0f32, 1f32, (1, 5, 32, 32), &Device::Cpu).unwrap();
    let five = EfficientNetConfig::lite0()
        .with_in_channels(5)
        .with_seed(9)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let before = five.forward_t(&x5, false).unwrap();
    let err = load_checkpoint(&path, &five, &five)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run.ckpt") && err.contains("5 channels"),
        "{err}"
    );
    assert_eq!(max_diff(&before, &five.forward_t(&x5, false).unwrap()), 0.0);

    let b0 = EfficientNetConfig::new(anomalymatch_models::Variant::B0)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let err = load_checkpoint(&path, &b0, &b0).unwrap_err().to_string();
    assert!(err.contains("efficientnet-b0"), "{err}");

    let classes = EfficientNetConfig::lite0()
        .with_num_classes(3)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    assert!(load_checkpoint(&path, &classes, &classes).is_err());

    // A plain weight file is not a checkpoint.
    let err = load_checkpoint(&path.with_extension("missing"), &model, &model).unwrap_err();
    assert!(err.to_string().contains("run.missing"));
    model.save(&dir.path().join("weights.safetensors")).unwrap();
    let err = load_checkpoint(&dir.path().join("weights.safetensors"), &model, &model).unwrap_err();
    assert!(
        err.to_string()
            .contains("is missing: not a training checkpoint"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_alone_rebuilds_the_scoring_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let five = EfficientNetConfig::new(anomalymatch_models::Variant::B0)
        .with_in_channels(5)
        .with_seed(4);
    let model = five.clone().check().unwrap().build(&Device::Cpu).unwrap();
    let ema = five
        .with_seed(5)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap();
    let data = DataSpec {
        size: 32,
        channels: ChannelMode::Keep(5),
        stretch: Stretch::default(),
        crop: anomalymatch_core::Crop::WHOLE,
    };
    let state = CheckpointState {
        iteration: 3,
        optimizer: vec![],
        train: TrainConfig::default(),
        data,
    };
    save_checkpoint(&path, &model, &ema, &state).unwrap();
    let (rebuilt, info) = from_checkpoint(&path, &Device::Cpu).unwrap();
    assert_eq!(info.data, data);
    assert_eq!(info.spec, ema.spec());
    assert_eq!(info.iteration, 3);
    let x5 = Tensor::rand(0f32, 1f32, (2, 5, 32, 32), &Device::Cpu).unwrap();
    // The EMA model is the one that scores.
    assert_eq!(
        max_diff(
            &rebuilt.forward_t(&x5, false).unwrap(),
            &ema.forward_t(&x5, false).unwrap()
        ),
        0.0
    );
}
