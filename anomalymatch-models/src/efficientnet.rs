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

use crate::batch_norm::{BatchNorm2d, conv_bn_chain};
use crate::error::Error;
use crate::ops;
use crate::ops::{Activation, Conv};
use anomalymatch_core::config::{check_below, check_range, key};
use anomalymatch_core::{Build, Check, Checked, Classifier, Label, ModelSpec, NamedVar, VarRole};
use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// One member of the EfficientNet families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// EfficientNet-B0, the base network.
    B0,
    /// EfficientNet-B1.
    B1,
    /// EfficientNet-B2.
    B2,
    /// EfficientNet-B3.
    B3,
    /// EfficientNet-B4.
    B4,
    /// EfficientNet-B5.
    B5,
    /// EfficientNet-B6.
    B6,
    /// EfficientNet-B7.
    B7,
    /// EfficientNet-Lite0, AnomalyMatch's default backbone.
    Lite0,
    /// EfficientNet-Lite1.
    Lite1,
    /// EfficientNet-Lite2.
    Lite2,
    /// EfficientNet-Lite3.
    Lite3,
    /// EfficientNet-Lite4.
    Lite4,
}

/// Width and depth coefficients, native resolution and dropout rate of a variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingParams {
    /// Multiplier of every stage's channel count.
    pub width: f64,
    /// Multiplier of every stage's number of blocks.
    pub depth: f64,
    /// The input size the variant was designed for (informational; any size works).
    pub resolution: usize,
    /// Dropout rate before the classifier.
    pub dropout: f64,
}

impl Variant {
    /// All variants, B family first.
    pub const ALL: [Variant; 13] = [
        Variant::B0,
        Variant::B1,
        Variant::B2,
        Variant::B3,
        Variant::B4,
        Variant::B5,
        Variant::B6,
        Variant::B7,
        Variant::Lite0,
        Variant::Lite1,
        Variant::Lite2,
        Variant::Lite3,
        Variant::Lite4,
    ];

    /// The scaling parameters of the paper (B) and of the TensorFlow Lite builder (Lite).
    pub fn params(self) -> ScalingParams {
        let (width, depth, resolution, dropout) = match self {
            Variant::B0 => (1.0, 1.0, 224, 0.2),
            Variant::B1 => (1.0, 1.1, 240, 0.2),
            Variant::B2 => (1.1, 1.2, 260, 0.3),
            Variant::B3 => (1.2, 1.4, 300, 0.3),
            Variant::B4 => (1.4, 1.8, 380, 0.4),
            Variant::B5 => (1.6, 2.2, 456, 0.4),
            Variant::B6 => (1.8, 2.6, 528, 0.5),
            Variant::B7 => (2.0, 3.1, 600, 0.5),
            Variant::Lite0 => (1.0, 1.0, 224, 0.2),
            Variant::Lite1 => (1.0, 1.1, 240, 0.2),
            Variant::Lite2 => (1.1, 1.2, 260, 0.3),
            Variant::Lite3 => (1.2, 1.4, 280, 0.3),
            Variant::Lite4 => (1.4, 1.8, 300, 0.3),
        };
        ScalingParams {
            width,
            depth,
            resolution,
            dropout,
        }
    }

    /// True for the Lite family.
    pub fn is_lite(self) -> bool {
        matches!(
            self,
            Variant::Lite0 | Variant::Lite1 | Variant::Lite2 | Variant::Lite3 | Variant::Lite4
        )
    }

    /// The conventional name, e.g. `efficientnet-lite0`, used as the architecture in specs.
    pub fn name(self) -> &'static str {
        match self {
            Variant::B0 => "efficientnet-b0",
            Variant::B1 => "efficientnet-b1",
            Variant::B2 => "efficientnet-b2",
            Variant::B3 => "efficientnet-b3",
            Variant::B4 => "efficientnet-b4",
            Variant::B5 => "efficientnet-b5",
            Variant::B6 => "efficientnet-b6",
            Variant::B7 => "efficientnet-b7",
            Variant::Lite0 => "efficientnet-lite0",
            Variant::Lite1 => "efficientnet-lite1",
            Variant::Lite2 => "efficientnet-lite2",
            Variant::Lite3 => "efficientnet-lite3",
            Variant::Lite4 => "efficientnet-lite4",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(|e: Error| serde::de::Error::custom(e))
    }
}

impl FromStr for Variant {
    type Err = Error;

    /// Parses `efficientnet-lite0`, `lite0`, `efficientnet_b3`, `B3` and the like.
    fn from_str(s: &str) -> Result<Self, Error> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        let key = key.strip_prefix("efficientnet-").unwrap_or(&key);
        Variant::ALL
            .into_iter()
            .find(|v| v.name().strip_prefix("efficientnet-") == Some(key))
            .ok_or_else(|| {
                Error::Config(vec![format!(
                    "unknown EfficientNet variant {s:?} (expected efficientnet-b0..b7 or \
                     efficientnet-lite0..lite4)"
                )])
            })
    }
}

/// Hyper-parameters of an EfficientNet: check them, then build the network on a device
/// (`EfficientNetConfig::lite0().check()?.build(&device)?`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EfficientNetConfig {
    /// Which network.
    pub variant: Variant,
    /// Input channels (3 for RGB; any number for multi-band data).
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Dropout rate before the classifier (the variant's rate by default).
    pub dropout: f64,
    /// Drop-connect (stochastic depth) rate of the last block; block `i` of `n` uses
    /// `rate * i / n`.
    pub drop_connect: f64,
    /// Batch-norm momentum in PyTorch's convention (weight of the new batch).
    pub bn_momentum: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
    /// Seed of the random initialisation and of the dropout and drop-connect masks.
    pub seed: u64,
}

impl EfficientNetConfig {
    /// Defaults for `variant`: 3 channels, 2 classes (normal/anomaly), the variant's dropout,
    /// drop-connect 0.2, batch-norm momentum 0.01 and epsilon 1e-3, seed 0.
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            in_channels: 3,
            num_classes: Label::CLASSES,
            dropout: variant.params().dropout,
            drop_connect: 0.2,
            bn_momentum: 0.01,
            bn_eps: 1e-3,
            seed: 0,
        }
    }

    /// Defaults for EfficientNet-Lite0, AnomalyMatch's backbone.
    pub fn lite0() -> Self {
        Self::new(Variant::Lite0)
    }

    /// Sets the number of input channels.
    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// Sets the number of output classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Sets the dropout rate before the classifier.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets the drop-connect rate of the last block.
    pub fn with_drop_connect(mut self, drop_connect: f64) -> Self {
        self.drop_connect = drop_connect;
        self
    }

    /// Sets the seed of initialisation and masks.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

impl Check for EfficientNetConfig {
    /// The ranges of every EfficientNet setting, stated here once; the `[model]` section
    /// checks its fields through this.
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        let k = |name| key(prefix, name);
        check_range(
            errors,
            k("in_channels"),
            self.in_channels,
            1,
            anomalymatch_core::loader::MAX_CHANNELS,
        );
        check_range(errors, k("num_classes"), self.num_classes, 1, 100_000);
        check_below(errors, k("dropout"), self.dropout, 0.0, 1.0);
        check_below(errors, k("drop_connect"), self.drop_connect, 0.0, 1.0);
        check_range(errors, k("bn_momentum"), self.bn_momentum, 0.0, 1.0);
        if !(self.bn_eps > 0.0 && self.bn_eps < 1.0) {
            errors.push(format!(
                "{}: must be in (0, 1), got {}",
                k("bn_eps"),
                self.bn_eps
            ));
        }
    }
}

impl Build<&Device> for EfficientNetConfig {
    type Output = EfficientNet;
    type Error = Error;

    /// A randomly initialised network on `device`.
    fn build_checked(config: &Checked<Self>, device: &Device) -> Result<EfficientNet, Error> {
        EfficientNet::build((**config).clone(), device)
    }
}

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

/// Squeeze-and-excitation keeps this fraction of the block's input channels.
const SE_RATIO: f64 = 0.25;

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

/// Draws PyTorch-default initial values from the seeded initialisation stream.
struct Init<'a> {
    rng: &'a mut StdRng,
    device: &'a Device,
}

impl Init<'_> {
    /// Uniform in `±1/sqrt(fan_in)`: PyTorch's default for `Conv2d` and `Linear` weights
    /// (Kaiming-uniform with `a = sqrt(5)`) and biases.
    fn uniform(&mut self, shape: &[usize], fan_in: usize) -> candle_core::Result<Var> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * bound)
            .collect();
        Var::from_tensor(&Tensor::from_vec(values, shape, self.device)?)
    }

    /// A convolution weight `[out, in, k, k]`.
    fn conv(&mut self, out: usize, inp: usize, k: usize) -> candle_core::Result<Var> {
        self.uniform(&[out, inp, k, k], inp * k * k)
    }
}

/// Squeeze-and-excitation (B family only).
struct SqueezeExcite {
    reduce_w: Var,
    reduce_b: Var,
    expand_w: Var,
    expand_b: Var,
}

/// An MBConv block: optional 1x1 expansion, depthwise convolution, optional
/// squeeze-and-excitation, 1x1 projection, and a residual connection with drop-connect when the
/// block keeps resolution and width.
struct MbConv {
    prefix: String,
    expand: Option<(Var, BatchNorm2d)>,
    depthwise: Var,
    bn1: BatchNorm2d,
    se: Option<SqueezeExcite>,
    project: Var,
    bn2: BatchNorm2d,
    stride: usize,
    padding: Padding,
    residual: bool,
    drop_connect: f64,
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
    stem: Var,
    stem_padding: Padding,
    bn0: BatchNorm2d,
    blocks: Vec<MbConv>,
    head: Var,
    bn1: BatchNorm2d,
    fc_w: Var,
    fc_b: Var,
    /// Mask generator for dropout and drop-connect; a mutex because `forward_t` takes `&self`.
    rng: Mutex<StdRng>,
}

impl EfficientNet {
    fn build(config: EfficientNetConfig, device: &Device) -> Result<Self, Error> {
        let p = config.variant.params();
        let lite = config.variant.is_lite();
        let (mom, eps) = (config.bn_momentum, config.bn_eps);
        let bn = |prefix: String, c: usize| BatchNorm2d::new(prefix, c, mom, eps, device);
        let mut init_rng = anomalymatch_core::rng::item_rng(config.seed, INIT_STREAM, 0);
        let mut init = Init {
            rng: &mut init_rng,
            device,
        };

        // Lite keeps stem and head at their base widths (`fix_head_stem`).
        let stem_width = if lite { 32 } else { round_filters(32, p.width) };
        let head_width = if lite {
            1280
        } else {
            round_filters(1280, p.width)
        };
        let stem = init.conv(stem_width, config.in_channels, 3)?;
        // Padding is fixed at build time for the variant's native resolution, as in the
        // PyTorch port the pretrained weights come from (`Conv2dStaticSamePadding`); at that
        // resolution it is TensorFlow's `SAME`.
        let stem_padding = Padding::same(p.resolution, 3, 2);
        let mut size = p.resolution.div_ceil(2);
        let bn0 = bn("_bn0".into(), stem_width)?;

        let last = BASE_STAGES.len() - 1;
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

        let mut blocks = Vec::with_capacity(num_blocks);
        // The first block reads the stem's actual width; for Lite3/4 the fixed 32-channel stem
        // is narrower than the scaled stage input, and TensorFlow's layers take what they get.
        let mut channels = stem_width;
        for (stage, &reps) in BASE_STAGES.iter().zip(&repeats) {
            let output = round_filters(stage.output, p.width);
            for r in 0..reps {
                let idx = blocks.len();
                let prefix = format!("_blocks.{idx}");
                let input = channels;
                let stride = if r == 0 { stage.stride } else { 1 };
                let padding = Padding::same(size, stage.kernel, stride);
                size = size.div_ceil(stride);
                let hidden = input * stage.expand;
                let expand = if stage.expand != 1 {
                    Some((
                        init.conv(hidden, input, 1)?,
                        bn(format!("{prefix}._bn0"), hidden)?,
                    ))
                } else {
                    None
                };
                let depthwise = init.conv(hidden, 1, stage.kernel)?;
                let bn1 = bn(format!("{prefix}._bn1"), hidden)?;
                let se = if lite {
                    None
                } else {
                    let squeezed = ((input as f64 * SE_RATIO) as usize).max(1);
                    Some(SqueezeExcite {
                        reduce_w: init.conv(squeezed, hidden, 1)?,
                        reduce_b: init.uniform(&[squeezed], hidden)?,
                        expand_w: init.conv(hidden, squeezed, 1)?,
                        expand_b: init.uniform(&[hidden], squeezed)?,
                    })
                };
                let project = init.conv(output, hidden, 1)?;
                let bn2 = bn(format!("{prefix}._bn2"), output)?;
                blocks.push(MbConv {
                    prefix,
                    expand,
                    depthwise,
                    bn1,
                    se,
                    project,
                    bn2,
                    stride,
                    padding,
                    residual: stride == 1 && input == output,
                    drop_connect: config.drop_connect * idx as f64 / num_blocks as f64,
                });
                channels = output;
            }
        }

        let head = init.conv(head_width, channels, 1)?;
        let bn1 = bn("_bn1".into(), head_width)?;
        let fc_w = init.uniform(&[config.num_classes, head_width], head_width)?;
        let fc_b = init.uniform(&[config.num_classes], head_width)?;
        let rng = anomalymatch_core::rng::item_rng(config.seed, MASK_STREAM, 0);
        Ok(Self {
            activation: if lite {
                Activation::Relu6
            } else {
                Activation::Silu
            },
            device: device.clone(),
            config,
            stem,
            stem_padding,
            bn0,
            blocks,
            head,
            bn1,
            fc_w,
            fc_b,
            rng: Mutex::new(rng),
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &EfficientNetConfig {
        &self.config
    }

    /// Width of the pooled features (1280 for Lite and B0).
    pub fn feature_width(&self) -> usize {
        self.head.dim(0).unwrap_or(0)
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
        let out = |s: usize, k: usize, stride: usize, pad: Padding| {
            (s + pad.before + pad.after)
                .checked_sub(k)
                .map(|v| v / stride + 1)
        };
        let dims = |v: &Var| v.dims().to_vec();
        // A convolution of weight [Cout, Cin/groups, k, k] over `pixels` output pixels.
        let conv = |w: &Var, pixels: usize| 2 * dims(w).iter().product::<usize>() * pixels;
        let mut s = out(size, 3, 2, self.stem_padding)?;
        let mut total = conv(&self.stem, s * s);
        for b in &self.blocks {
            let k = b.depthwise.dim(3).ok()?;
            let expand = b.expand.as_ref().map_or(0, |(w, _)| conv(w, s * s));
            s = out(s, k, b.stride, b.padding)?;
            let se =
                b.se.as_ref()
                    .map_or(0, |se| conv(&se.reduce_w, 1) + conv(&se.expand_w, 1));
            total += expand + conv(&b.depthwise, s * s) + se + conv(&b.project, s * s);
        }
        total += conv(&self.head, s * s) + 2 * self.fc_w.elem_count();
        Some(total as u64)
    }

    /// True when an input of `size x size` passes every layer.
    fn accepts(&self, size: usize) -> bool {
        let conv = |s: usize, k: usize, stride: usize, pad: Padding| {
            let padded = s + pad.before + pad.after;
            (padded >= k).then(|| (padded - k) / stride + 1)
        };
        let mut s = match conv(size, 3, 2, self.stem_padding) {
            Some(s) => s,
            None => return false,
        };
        for b in &self.blocks {
            let k = b.depthwise.dim(3).unwrap_or(1);
            match conv(s, k, b.stride, b.padding) {
                Some(next) => s = next,
                None => return false,
            }
        }
        true
    }

    /// Global-average-pooled features `[N, D]` before dropout and the classifier.
    pub fn features_t(&self, x: &Tensor, train: bool) -> anomalymatch_core::Result<Tensor> {
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
        if !train {
            return Ok(self.features_eval(&x)?);
        }
        let act = self.activation;
        let (x, pad) = self.stem_padding.apply(&x)?;
        let mut x = x.conv2d(&self.stem, pad, 2, 1, 1)?;
        x = self.bn0.forward_t(&x, true, act)?;
        for block in &self.blocks {
            x = self.block_train(block, &x)?;
        }
        x = conv_bn_chain(&x, &[(&self.head, Conv::Pointwise, &self.bn1, act)], true)?;
        Ok(x.mean((2, 3))?)
    }

    /// Inference: every batch norm folded into its convolution, the fused kernels of
    /// [`ops::mbconv_eval`] on the CPU, and no graph recorded. The batch runs through the
    /// network `EVAL_CHUNK` images at a time, so each layer's output stays small enough to be
    /// reused from the allocator's cache (and mostly from the CPU's) rather than freshly
    /// mapped, zeroed memory.
    fn features_eval(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let act = self.activation;
        let pad = (self.stem_padding.before, self.stem_padding.after);
        let stem = self.bn0.fold(&self.stem, act)?;
        let blocks = self
            .blocks
            .iter()
            .map(|b| self.fold_block(b))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let head = self.bn1.fold(&self.head, act)?;
        let n = x.dim(0)?;
        let parts = (0..n)
            .step_by(EVAL_CHUNK)
            .map(|start| {
                let part = x.narrow(0, start, EVAL_CHUNK.min(n - start))?;
                let mut y = ops::stem_eval(&part, &stem, 2, pad)?;
                for b in &blocks {
                    y = ops::mbconv_eval(&y, b)?;
                }
                ops::head_pool_eval(&y, &head)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }

    /// A block's layers with their batch norms folded in, detached.
    fn fold_block(&self, b: &MbConv) -> candle_core::Result<ops::EvalBlock> {
        let act = self.activation;
        let se = b.se.as_ref().map(|se| {
            let conv = |w: &Var, b: &Var, act| ops::EvalConv {
                weight: w.as_tensor().detach(),
                bias: b.as_tensor().detach(),
                act,
            };
            (
                conv(&se.reduce_w, &se.reduce_b, Activation::Silu),
                conv(&se.expand_w, &se.expand_b, Activation::Identity),
            )
        });
        Ok(ops::EvalBlock {
            expand: match &b.expand {
                Some((w, bn)) => Some(bn.fold(w, act)?),
                None => None,
            },
            depthwise: b.bn1.fold(&b.depthwise, act)?,
            stride: b.stride,
            padding: (b.padding.before, b.padding.after),
            se,
            project: b.bn2.fold(&b.project, Activation::Identity)?,
            residual: b.residual,
        })
    }

    /// One block in training mode.
    fn block_train(&self, b: &MbConv, input: &Tensor) -> candle_core::Result<Tensor> {
        let act = self.activation;
        let depthwise = Conv::Depthwise {
            stride: b.stride,
            padding: (b.padding.before, b.padding.after),
        };
        let project = (&*b.project, Conv::Pointwise, &b.bn2, Activation::Identity);
        // One fused chain per block where nothing sits between the layers (Lite); the
        // squeeze-and-excitation of the B models splits it before the projection.
        let mut layers = Vec::with_capacity(3);
        if let Some((w, bn)) = &b.expand {
            layers.push((&**w, Conv::Pointwise, bn, act));
        }
        layers.push((&*b.depthwise, depthwise, &b.bn1, act));
        if b.se.is_none() {
            layers.push(project);
        }
        let mut x = conv_bn_chain(input, &layers, true)?;
        if let Some(se) = &b.se {
            let bias = |t: &Var| t.reshape((1, t.dim(0)?, 1, 1));
            let s = x.mean_keepdim((2, 3))?;
            let s = ops::pointwise_conv2d(&s, &se.reduce_w)?.broadcast_add(&bias(&se.reduce_b)?)?;
            let s = ops::silu(&s)?;
            let s = ops::pointwise_conv2d(&s, &se.expand_w)?.broadcast_add(&bias(&se.expand_b)?)?;
            x = x.broadcast_mul(&candle_nn::ops::sigmoid(&s)?)?;
            x = conv_bn_chain(&x, &[project], true)?;
        }
        if !b.residual {
            return Ok(x);
        }
        if b.drop_connect > 0.0 {
            // Drop the whole residual branch per sample, rescaling the survivors.
            let n = x.dim(0)?;
            x = x.broadcast_mul(&self.keep_mask(&[n, 1, 1, 1], 1.0 - b.drop_connect)?)?;
        }
        x + input
    }

    /// A mask of `1/keep` with probability `keep` and `0` otherwise, drawn on the CPU from the
    /// model's seeded stream (cheap: one value per sample or per feature) so runs repeat.
    fn keep_mask(&self, shape: &[usize], keep: f64) -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let scale = (1.0 / keep) as f32;
        let values: Vec<f32> = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            (0..n)
                .map(|_| {
                    if rng.random::<f64>() < keep {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        Tensor::from_vec(values, shape, &Device::Cpu)?.to_device(&self.device)
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
        let mut x = self.features_t(images, train)?;
        if train && self.config.dropout > 0.0 {
            x = x.mul(&self.keep_mask(x.dims(), 1.0 - self.config.dropout)?)?;
        }
        let (w, b) = if train {
            (self.fc_w.as_tensor().clone(), self.fc_b.as_tensor().clone())
        } else {
            (
                self.fc_w.as_tensor().detach(),
                self.fc_b.as_tensor().detach(),
            )
        };
        Ok(x.matmul(&w.t()?)?.broadcast_add(&b)?)
    }

    fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) =
            anomalymatch_core::rng::item_rng(seed, MASK_STREAM, 0);
    }

    fn variables(&self) -> Vec<NamedVar> {
        let mut out = vec![named(
            "_conv_stem.weight".into(),
            &self.stem,
            VarRole::Weight,
        )];
        self.bn0.push_variables(&mut out);
        for b in &self.blocks {
            let p = &b.prefix;
            if let Some((w, bn)) = &b.expand {
                out.push(named(
                    format!("{p}._expand_conv.weight"),
                    w,
                    VarRole::Weight,
                ));
                bn.push_variables(&mut out);
            }
            out.push(named(
                format!("{p}._depthwise_conv.weight"),
                &b.depthwise,
                VarRole::Weight,
            ));
            b.bn1.push_variables(&mut out);
            if let Some(se) = &b.se {
                out.push(named(
                    format!("{p}._se_reduce.weight"),
                    &se.reduce_w,
                    VarRole::Weight,
                ));
                out.push(named(
                    format!("{p}._se_reduce.bias"),
                    &se.reduce_b,
                    VarRole::NoDecay,
                ));
                out.push(named(
                    format!("{p}._se_expand.weight"),
                    &se.expand_w,
                    VarRole::Weight,
                ));
                out.push(named(
                    format!("{p}._se_expand.bias"),
                    &se.expand_b,
                    VarRole::NoDecay,
                ));
            }
            out.push(named(
                format!("{p}._project_conv.weight"),
                &b.project,
                VarRole::Weight,
            ));
            b.bn2.push_variables(&mut out);
        }
        out.push(named(
            "_conv_head.weight".into(),
            &self.head,
            VarRole::Weight,
        ));
        self.bn1.push_variables(&mut out);
        out.push(named("_fc.weight".into(), &self.fc_w, VarRole::Weight));
        out.push(named("_fc.bias".into(), &self.fc_b, VarRole::NoDecay));
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

    fn duplicate(&self) -> anomalymatch_core::Result<Self> {
        let copy = EfficientNet::build(self.config.clone(), &self.device)?;
        for (dst, src) in copy.variables().iter().zip(self.variables()) {
            // `copy()` allocates new storage, so the two networks never share memory.
            dst.var.set(&src.var.as_tensor().copy()?)?;
        }
        // The copy draws its masks from a stream of its own, seeded from the original's.
        let seed = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random::<u64>();
        *copy.rng.lock().unwrap_or_else(|p| p.into_inner()) = StdRng::seed_from_u64(seed);
        Ok(copy)
    }
}

fn named(name: String, var: &Var, role: VarRole) -> NamedVar {
    NamedVar {
        name,
        var: var.clone(),
        role,
    }
}

/// Zero padding `(before, after)` of a `k x k` convolution, on both spatial axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    /// Rows (columns) of zeros above (left of) the input.
    pub before: usize,
    /// Rows (columns) of zeros below (right of) the input.
    pub after: usize,
}

impl Padding {
    /// TensorFlow's `SAME` padding for an input of `size`: the total that makes the output
    /// `ceil(size / stride)`, the odd pixel going after.
    pub fn same(size: usize, k: usize, stride: usize) -> Self {
        let out = size.div_ceil(stride);
        let total = ((out.saturating_sub(1)) * stride + k).saturating_sub(size);
        Self {
            before: total / 2,
            after: total - total / 2,
        }
    }

    /// Pads `x [N, C, H, W]` when the padding is asymmetric, returning the symmetric padding
    /// left for the convolution itself (the stem's; depthwise layers pad as they convolve).
    fn apply(self, x: &Tensor) -> candle_core::Result<(Tensor, usize)> {
        if self.before == self.after {
            return Ok((x.clone(), self.before));
        }
        let x = x
            .pad_with_zeros(2, self.before, self.after)?
            .pad_with_zeros(3, self.before, self.after)?;
        Ok((x, 0))
    }
}
