//! A toy classifier, toy images and an in-memory image source, for tests and examples that need
//! a model but not a network.

use crate::augmenter::IdentityAugmenter;
use crate::classifier::{Classifier, ModelSpec, NamedVar, VarRole};
use crate::config::Check;
use crate::decode::ChannelMode;
use crate::error::Result;
use crate::fixmatch::FixMatch;
use crate::image::ImageBatch;
use crate::image_store::ImageStore;
use crate::label::Label;
use crate::loader::DataConfig;
use crate::rng::item_rng;
use crate::source::{ImagePayload, ImageSource, SourceImage};
use crate::train_config::TrainConfig;
use candle_core::{DType, Device, Tensor, Var};
use rand::RngExt;

/// Logistic regression on two features of an image, its brightest pixel and its mean: enough
/// to separate [`toy_images`]' anomalies, and fast enough for tests of the training loop.
pub struct MaxMeanClassifier {
    w: Var,
    b: Var,
    device: Device,
}

impl MaxMeanClassifier {
    /// A classifier on the CPU with a fixed, slightly wrong start (it prefers dark images).
    pub fn new() -> Result<Self> {
        let device = Device::Cpu;
        Ok(MaxMeanClassifier {
            w: Var::from_tensor(&Tensor::new(&[[0.1f32, -0.1], [-0.1, 0.1]], &device)?)?,
            b: Var::zeros(2, DType::F32, &device)?,
            device,
        })
    }

    fn features(&self, images: &Tensor) -> Result<Tensor> {
        let flat = images.flatten_from(1)?;
        Ok(Tensor::cat(
            &[flat.max_keepdim(1)?, flat.mean_keepdim(1)?],
            1,
        )?)
    }
}

impl Classifier for MaxMeanClassifier {
    fn forward_t(&self, images: &Tensor, _train: bool) -> Result<Tensor> {
        let f = self.features(images)?;
        Ok(f.matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())?)
    }

    fn variables(&self) -> Vec<NamedVar> {
        vec![
            NamedVar {
                name: "w".into(),
                var: self.w.clone(),
                role: VarRole::Weight,
            },
            NamedVar {
                name: "b".into(),
                var: self.b.clone(),
                role: VarRole::NoDecay,
            },
        ]
    }

    fn spec(&self) -> ModelSpec {
        ModelSpec {
            architecture: "toy-max-mean".into(),
            in_channels: 1,
            num_classes: crate::Label::CLASSES,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        self.features(images).map(Some)
    }

    fn duplicate(&self) -> Result<Self> {
        Ok(MaxMeanClassifier {
            w: Var::from_tensor(&self.w.as_tensor().copy()?)?,
            b: Var::from_tensor(&self.b.as_tensor().copy()?)?,
            device: self.device.clone(),
        })
    }
}

/// `n` one-channel `side`x`side` images of dark noise; every `anomaly_every`-th also holds a
/// bright 2x2 square and is labelled `Anomaly`.
pub fn toy_images(
    n: usize,
    side: usize,
    anomaly_every: usize,
    seed: u64,
) -> (ImageStore, Vec<Label>) {
    let mut batch = ImageBatch::zeros(n, 1, side, side);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let mut rng = item_rng(seed, 0, i as u64);
        let img = batch.image_mut(i);
        for v in img.iter_mut() {
            *v = rng.random_range(0.0..0.3);
        }
        let anomaly = anomaly_every > 0 && i % anomaly_every == 0;
        if anomaly {
            let (y, x) = (rng.random_range(0..side - 1), rng.random_range(0..side - 1));
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                img[(y + dy) * side + x + dx] = 0.9;
            }
        }
        labels.push(if anomaly {
            Label::Anomaly
        } else {
            Label::Normal
        });
    }
    (ImageStore::quantize(&batch), labels)
}

/// The `[data]` section of [`toy_images`]: one band of `side` pixels, 16 images a chunk.
pub fn toy_data(side: usize) -> DataConfig {
    DataConfig {
        size: side,
        channels: ChannelMode::Keep(1),
        chunk_size: 16,
        ..DataConfig::default()
    }
}

/// A FixMatch trainer of [`MaxMeanClassifier`] with `config`, on [`toy_data`] images of `side`
/// pixels, without augmentation.
pub fn toy_trainer(
    config: TrainConfig,
    side: usize,
    seed: u64,
) -> Result<FixMatch<MaxMeanClassifier, IdentityAugmenter>> {
    let spec = toy_data(side).spec();
    config
        .check()?
        .build((MaxMeanClassifier::new()?, IdentityAugmenter, spec, seed))
}

/// Images held in memory as an [`ImageSource`] of decoded pixels: a source for tests of
/// anything that streams.
#[derive(Debug, Clone)]
pub struct MemorySource {
    items: Vec<SourceImage>,
    position: usize,
}

impl MemorySource {
    /// Image `i` of `images` named `names[i]`, with origin `memory:NAME`.
    pub fn new(names: &[String], images: &ImageStore) -> Result<Self> {
        let items = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Ok(SourceImage {
                    name: name.clone(),
                    origin: format!("memory:{name}"),
                    payload: ImagePayload::Pixels(images.select(&[i])?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(MemorySource { items, position: 0 })
    }

    /// Inserts an item at `index` (e.g. an unreadable one).
    pub fn insert(&mut self, index: usize, item: SourceImage) {
        self.items.insert(index, item);
    }
}

impl ImageSource for MemorySource {
    fn len_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }

    fn next_chunk(&mut self, max: usize) -> Result<Vec<SourceImage>> {
        let end = self.position.saturating_add(max).min(self.items.len());
        let chunk = self.items[self.position..end].to_vec();
        self.position = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> Result<()> {
        self.position = 0;
        Ok(())
    }
}
