//! EfficientNet-B0..B7 and EfficientNet-Lite0..Lite4.
//!
//! EfficientNet: Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
//! Neural Networks", arXiv 1905.11946. A stack of MBConv blocks (inverted residuals from
//! MobileNetV2, Sandler et al. 2018, arXiv 1801.04381) with squeeze-and-excitation
//! (Hu et al. 2018, arXiv 1709.01507) and SiLU, scaled in width and depth per variant.
//!
//! EfficientNet-Lite (TensorFlow TPU repository, `models/official/efficientnet/lite`, 2020) is
//! the mobile-friendly family AnomalyMatch uses by default: no squeeze-and-excitation, ReLU6
//! instead of SiLU, a stem (32 channels) and head (1280 channels) that are not width-scaled,
//! and first and last stages whose repeats are not depth-scaled.
//!
//! Variable names follow the PyTorch ports (`_conv_stem.weight`, `_blocks.3._bn1.running_var`,
//! `_fc.bias`, ...), so published state dicts load by name. Convolutions use TensorFlow's `SAME`
//! padding computed once for the variant's native resolution (224 for Lite0), as the PyTorch
//! port of the published weights does (`Conv2dStaticSamePadding`); symmetric `k / 2` padding
//! or padding recomputed for other input sizes shifts stride-2 layers by a pixel and changes
//! the logits by up to 2.6 on the golden input. With this rule our logits match PyTorch's to
//! about 1e-5 (see `tests/parity.rs`).

mod layers;
mod variant;

pub use layers::Padding;
pub use variant::{EfficientNetConfig, ScalingParams, Variant};

use crate::batch_norm::Pass;
use crate::error::Error;
use crate::ops::{self, Activation};
use anomalymatch_core::rng::item_rng;
use anomalymatch_core::{Classifier, ModelSpec, NamedVar};
use candle_core::{DType, Device, Tensor};
use layers::{BlockSpec, Head, Init, Linear, Masks, MbConv, Stem};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::Mutex;

/// One stage of the B0 base network: kernel, repeats, stride, expansion and output channels
/// (each stage's input is the previous stage's output, the first stage's the stem).
struct Stage {
    kernel: usize,
    repeats: usize,
    stride: usize,
    expand: usize,
    output: usize,
}

/// The seven stages of EfficientNet-B0 (Tan & Le 2019, table 1), shared by all variants.
#[rustfmt::skip]
const BASE_STAGES: [Stage; 7] = [
    Stage { kernel: 3, repeats: 1, stride: 1, expand: 1, output: 16 },
    Stage { kernel: 3, repeats: 2, stride: 2, expand: 6, output: 24 },
    Stage { kernel: 5, repeats: 2, stride: 2, expand: 6, output: 40 },
    Stage { kernel: 3, repeats: 3, stride: 2, expand: 6, output: 80 },
    Stage { kernel: 5, repeats: 3, stride: 1, expand: 6, output: 112 },
    Stage { kernel: 5, repeats: 4, stride: 2, expand: 6, output: 192 },
    Stage { kernel: 3, repeats: 1, stride: 1, expand: 6, output: 320 },
];

/// Scales a channel count by `width`, rounded to a multiple of 8 but never down by more than
/// 10% (the reference implementation's `round_filters`).
pub fn round_filters(filters: usize, width: f64) -> usize {
    const DIVISOR: usize = 8;
    let scaled = filters as f64 * width;
    let rounded = DIVISOR.max((scaled + DIVISOR as f64 / 2.0) as usize / DIVISOR * DIVISOR);
    if (rounded as f64) < 0.9 * scaled {
        rounded + DIVISOR
    } else {
        rounded
    }
}

/// Scales a stage's number of blocks by `depth`, rounding up.
fn round_repeats(repeats: usize, depth: f64) -> usize {
    (repeats as f64 * depth).ceil() as usize
}

/// Every block's shape, in order: the B0 stages scaled for `config`'s variant, with each
/// depthwise layer's `SAME` padding at the variant's native resolution. The first block reads
/// the stem's actual width: for Lite3/4 the fixed 32-channel stem is narrower than the scaled
/// stage input, and TensorFlow's layers take what they get.
fn block_specs(config: &EfficientNetConfig, stem_width: usize) -> Vec<BlockSpec> {
    let p = config.variant.params();
    let lite = config.variant.is_lite();
    let last = BASE_STAGES.len() - 1;
    // Lite keeps the repeats of its first and last stages (`fix_head_stem`).
    let repeats: Vec<usize> = BASE_STAGES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if lite && (i == 0 || i == last) {
                s.repeats
            } else {
                round_repeats(s.repeats, p.depth)
            }
        })
        .collect();
    let num_blocks: usize = repeats.iter().sum();
    let mut specs = Vec::with_capacity(num_blocks);
    let (mut size, mut channels) = (p.resolution.div_ceil(2), stem_width);
    for (stage, &reps) in BASE_STAGES.iter().zip(&repeats) {
        let output = round_filters(stage.output, p.width);
        for r in 0..reps {
            let index = specs.len();
            let stride = if r == 0 { stage.stride } else { 1 };
            specs.push(BlockSpec {
                index,
                input: channels,
                output,
                kernel: stage.kernel,
                stride,
                expand: stage.expand,
                padding: Padding::same(size, stage.kernel, stride),
                squeeze_excite: !lite,
                drop_connect: config.drop_connect * index as f64 / num_blocks as f64,
            });
            size = size.div_ceil(stride);
            channels = output;
        }
    }
    specs
}

/// An EfficientNet classifier; build it with [`EfficientNetConfig::init`].
///
/// Randomness is seeded by [`EfficientNetConfig::seed`]: initial values and the dropout and
/// drop-connect masks of training mode come from two [`StdRng`] streams derived from it, the
/// masks drawn on the CPU (one value per sample or feature) and moved to the device, so a run
/// repeats exactly on the same inputs. A [`Classifier::duplicate`] gets its own mask stream.
pub struct EfficientNet {
    config: EfficientNetConfig,
    device: Device,
    activation: Activation,
    stem: Stem,
    blocks: Vec<MbConv>,
    head: Head,
    fc: Linear,
    masks: Masks,
}

impl EfficientNet {
    fn build(config: EfficientNetConfig, device: &Device) -> Result<Self, Error> {
        let p = config.variant.params();
        let lite = config.variant.is_lite();
        let mut init = Init {
            rng: item_rng(config.seed, INIT_STREAM, 0),
            device,
            bn: (config.bn_momentum, config.bn_eps),
        };
        // Lite keeps stem and head at their base widths (`fix_head_stem`).
        let (stem_width, head_width) = if lite {
            (32, 1280)
        } else {
            (round_filters(32, p.width), round_filters(1280, p.width))
        };
        let stem = Stem::new(&mut init, config.in_channels, stem_width, p.resolution)?;
        let specs = block_specs(&config, stem_width);
        let blocks = specs
            .iter()
            .map(|spec| MbConv::new(&mut init, spec))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let channels = specs.last().map_or(stem_width, |s| s.output);
        let head = Head::new(&mut init, channels, head_width)?;
        let fc = Linear::new(&mut init, head_width, config.num_classes)?;
        let masks = Masks {
            rng: Mutex::new(item_rng(config.seed, MASK_STREAM, 0)),
            device: device.clone(),
        };
        let activation = if lite {
            Activation::Relu6
        } else {
            Activation::Silu
        };
        Ok(Self {
            config,
            device: device.clone(),
            activation,
            stem,
            blocks,
            head,
            fc,
            masks,
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &EfficientNetConfig {
        &self.config
    }

    /// Width of the pooled features (1280 for Lite and B0).
    pub fn feature_width(&self) -> usize {
        self.head.width()
    }

    /// Number of MBConv blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The smallest square input side the network accepts: every convolution must see at least
    /// its kernel once padded (the padding is fixed for the variant's native resolution).
    pub fn min_input_size(&self) -> usize {
        (1..=anomalymatch_core::loader::MAX_SIZE)
            .find(|&size| self.accepts(size))
            .unwrap_or(usize::MAX)
    }

    /// Floating-point operations (a multiply-add counts two) of one forward pass on a
    /// `size x size` image, over the convolutions and the classifier; `None` when the size is
    /// too small. The model bench divides by it to report achieved GFLOP/s.
    pub fn forward_flops(&self, size: usize) -> Option<u64> {
        let (mut s, mut total) = self.stem.flops(size)?;
        for b in &self.blocks {
            let (next, flops) = b.flops(s)?;
            (s, total) = (next, total + flops);
        }
        total += self.head.flops(s) + self.fc.flops();
        Some(total as u64)
    }

    /// True when an input of `size x size` passes every layer.
    fn accepts(&self, size: usize) -> bool {
        let mut s = self.stem.output(size);
        for b in &self.blocks {
            s = s.and_then(|s| b.output(s));
        }
        s.is_some()
    }

    /// Global-average-pooled features `[N, D]` before dropout and the classifier.
    pub fn features_t(&self, x: &Tensor, train: bool) -> anomalymatch_core::Result<Tensor> {
        self.features(x, train.then_some(self.graph_pass()))
    }

    /// The pass that records a graph, as the configuration trades memory for time.
    fn graph_pass(&self) -> Pass {
        if self.config.recompute {
            Pass::Recompute
        } else {
            Pass::Graph
        }
    }

    /// The pooled features in eval mode (`None`) or in a training pass.
    fn features(&self, x: &Tensor, train: Option<Pass>) -> anomalymatch_core::Result<Tensor> {
        let (_, c, _, _) = x.dims4()?;
        if c != self.config.in_channels {
            return Err(anomalymatch_core::Error::Shape(format!(
                "{} expects {} input channels, got images {:?}",
                self.config.variant,
                self.config.in_channels,
                x.dims()
            )));
        }
        let x = x.to_dtype(DType::F32)?;
        let Some(pass) = train else {
            return Ok(self.features_eval(&x)?);
        };
        let act = self.activation;
        let mut x = self.stem.forward_train(&x, act, pass)?;
        for block in &self.blocks {
            x = block.forward_train(&x, act, &self.masks, pass)?;
        }
        Ok(self.head.forward_train(&x, act, pass)?)
    }

    /// Logits in eval mode (`None`) or in a training pass, with dropout in training.
    fn logits(&self, images: &Tensor, train: Option<Pass>) -> anomalymatch_core::Result<Tensor> {
        let mut x = self.features(images, train)?;
        if train.is_some() && self.config.dropout > 0.0 {
            x = x.mul(&self.masks.keep(x.dims(), 1.0 - self.config.dropout)?)?;
        }
        Ok(self.fc.forward_t(&x, train.is_some_and(Pass::records))?)
    }

    /// Inference: every batch norm folded into its convolution, the fused kernels of
    /// [`ops::mbconv_eval`] on the CPU, and no graph recorded. The batch runs through the
    /// network `EVAL_CHUNK` images at a time, so each layer's output stays small enough to be
    /// reused from the allocator's cache (and mostly from the CPU's) rather than freshly
    /// mapped, zeroed memory.
    fn features_eval(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let act = self.activation;
        let stem = self.stem.fold(act)?;
        let blocks = self
            .blocks
            .iter()
            .map(|b| b.fold(act))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let head = self.head.fold(act)?;
        let n = x.dim(0)?;
        let parts = (0..n)
            .step_by(EVAL_CHUNK)
            .map(|start| {
                let part = x.narrow(0, start, EVAL_CHUNK.min(n - start))?;
                let mut y = self.stem.eval(&part, &stem)?;
                for b in &blocks {
                    y = ops::mbconv_eval(&y, b)?;
                }
                ops::head_pool_eval(&y, &head)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }
}

/// Images per pass through the network in inference (see `features_eval`).
const EVAL_CHUNK: usize = 64;

/// Stream ids of [`anomalymatch_core::rng::item_rng`] for initial values and for masks.
const INIT_STREAM: u64 = 0x1E17;
const MASK_STREAM: u64 = 0xD209;

impl Classifier for EfficientNet {
    /// Logits for `images [N, C, H, W]`.
    ///
    /// In training mode, backpropagating through a stride-2 convolution needs square inputs:
    /// candle 0.11's convolution backward derives the output padding from the height alone.
    fn forward_t(&self, images: &Tensor, train: bool) -> anomalymatch_core::Result<Tensor> {
        self.logits(images, train.then_some(self.graph_pass()))
    }

    fn forward_weak(&self, images: &Tensor) -> anomalymatch_core::Result<Tensor> {
        self.logits(images, Some(Pass::Detached))
    }

    fn reseed(&self, seed: u64) {
        self.masks.reseed(item_rng(seed, MASK_STREAM, 0));
    }

    fn variables(&self) -> Vec<NamedVar> {
        let mut out = Vec::new();
        self.stem.push_variables(&mut out);
        for b in &self.blocks {
            b.push_variables(&mut out);
        }
        self.head.push_variables(&mut out);
        self.fc.push_variables(&mut out);
        out
    }

    fn spec(&self) -> ModelSpec {
        ModelSpec {
            architecture: self.config.variant.name().to_string(),
            in_channels: self.config.in_channels,
            num_classes: self.config.num_classes,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// The [`EfficientNetConfig`], from which [`crate::from_checkpoint`] rebuilds the network.
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
    }

    /// The pooled features in eval mode (1280 wide for Lite and B0).
    fn embed(&self, images: &Tensor) -> anomalymatch_core::Result<Option<Tensor>> {
        Ok(Some(self.features_t(images, false)?))
    }

    fn classify_and_embed(
        &self,
        images: &Tensor,
    ) -> anomalymatch_core::Result<(Tensor, Option<Tensor>)> {
        let features = self.features_t(images, false)?;
        Ok((self.fc.forward_t(&features, false)?, Some(features)))
    }

    fn duplicate(&self) -> anomalymatch_core::Result<Self> {
        let copy = EfficientNet::build(self.config.clone(), &self.device)?;
        for (dst, src) in copy.variables().iter().zip(self.variables()) {
            // `copy()` allocates new storage, so the two networks never share memory.
            dst.var.set(&src.var.as_tensor().copy()?)?;
        }
        // The copy draws its masks from a stream of its own, seeded from the original's.
        copy.masks
            .reseed(StdRng::seed_from_u64(self.masks.fork_seed()));
        Ok(copy)
    }
}
