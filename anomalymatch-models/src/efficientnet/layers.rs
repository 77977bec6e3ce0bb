//! The layers of an EfficientNet: stem, MBConv block with its squeeze-and-excitation, head and
//! classifier. Each builds its variables, runs in training mode, folds its batch norms for
//! inference, and lists its variables under the PyTorch port's names.

use crate::batch_norm::{BatchNorm2d, Pass, conv_bn_chain};
use crate::ops::{self, Activation, Conv};
use anomalymatch_core::{NamedVar, VarRole};
use candle_core::{Device, Result, Tensor, Var};
use rand::RngExt;
use rand::rngs::StdRng;
use std::sync::Mutex;

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
    fn apply(self, x: &Tensor) -> Result<(Tensor, usize)> {
        if self.before == self.after {
            return Ok((x.clone(), self.before));
        }
        let x = x
            .pad_with_zeros(2, self.before, self.after)?
            .pad_with_zeros(3, self.before, self.after)?;
        Ok((x, 0))
    }

    /// `(before, after)`, as the kernels in [`ops`] take it.
    fn pair(self) -> (usize, usize) {
        (self.before, self.after)
    }

    /// The output side of a `k x k` convolution with `stride` over a `size x size` input, or
    /// `None` where the padded input is smaller than the kernel.
    fn output(self, size: usize, k: usize, stride: usize) -> Option<usize> {
        (size + self.before + self.after)
            .checked_sub(k)
            .map(|v| v / stride + 1)
    }
}

/// Floating-point operations (a multiply-add counts two) of a convolution with weight
/// `[Cout, Cin / groups, k, k]` over `pixels` output pixels.
fn conv_flops(w: &Var, pixels: usize) -> usize {
    2 * w.dims().iter().product::<usize>() * pixels
}

/// Makes the layers' variables: PyTorch-default initial values drawn in build order from the
/// seeded initialisation stream, and batch norms as PyTorch initialises them.
pub(super) struct Init<'a> {
    pub(super) rng: StdRng,
    pub(super) device: &'a Device,
    /// Batch-norm momentum and epsilon.
    pub(super) bn: (f64, f64),
}

impl Init<'_> {
    /// Uniform in `±1/sqrt(fan_in)`: PyTorch's default for `Conv2d` and `Linear` weights
    /// (Kaiming-uniform with `a = sqrt(5)`) and biases.
    fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Var> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * bound)
            .collect();
        Var::from_tensor(&Tensor::from_vec(values, shape, self.device)?)
    }

    /// A convolution weight `[out, in, k, k]`.
    fn conv(&mut self, out: usize, inp: usize, k: usize) -> Result<Var> {
        self.uniform(&[out, inp, k, k], inp * k * k)
    }

    /// A batch norm over `channels`, its variables named `{prefix}.weight` and so on.
    fn bn(&self, prefix: String, channels: usize) -> Result<BatchNorm2d> {
        let (momentum, eps) = self.bn;
        BatchNorm2d::new(prefix, channels, momentum, eps, self.device)
    }
}

/// The dropout and drop-connect masks of training mode, from a seeded stream; a mutex because
/// the forward pass takes `&self`.
pub(super) struct Masks {
    pub(super) rng: Mutex<StdRng>,
    pub(super) device: Device,
}

impl Masks {
    /// A mask of `1/keep` with probability `keep` and `0` otherwise, drawn on the CPU (cheap:
    /// one value per sample or per feature) and moved to the device, so runs repeat.
    pub(super) fn keep(&self, shape: &[usize], keep: f64) -> Result<Tensor> {
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

    /// Replaces the stream.
    pub(super) fn reseed(&self, rng: StdRng) {
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = rng;
    }

    /// A seed drawn from the stream, for a copy's own stream.
    pub(super) fn fork_seed(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random::<u64>()
    }
}

/// A variable under its state-dict name.
fn named(name: String, var: &Var, role: VarRole) -> NamedVar {
    NamedVar {
        name,
        var: var.clone(),
        role,
    }
}

/// The stem: a stride-2 3x3 convolution, its batch norm (`_bn0`) and the activation.
pub(super) struct Stem {
    conv: Var,
    padding: Padding,
    bn: BatchNorm2d,
}

impl Stem {
    const KERNEL: usize = 3;
    const STRIDE: usize = 2;

    /// `width` output channels. The padding is fixed at build time for the variant's native
    /// `resolution`, as in the PyTorch port the pretrained weights come from
    /// (`Conv2dStaticSamePadding`); at that resolution it is TensorFlow's `SAME`.
    pub(super) fn new(
        init: &mut Init<'_>,
        in_channels: usize,
        width: usize,
        resolution: usize,
    ) -> Result<Self> {
        Ok(Self {
            conv: init.conv(width, in_channels, Self::KERNEL)?,
            padding: Padding::same(resolution, Self::KERNEL, Self::STRIDE),
            bn: init.bn("_bn0".into(), width)?,
        })
    }

    /// The output side for a `size x size` input, if the input is large enough.
    pub(super) fn output(&self, size: usize) -> Option<usize> {
        self.padding.output(size, Self::KERNEL, Self::STRIDE)
    }

    /// The output side and the convolution's FLOPs for a `size x size` input.
    pub(super) fn flops(&self, size: usize) -> Option<(usize, usize)> {
        let s = self.output(size)?;
        Some((s, conv_flops(&self.conv, s * s)))
    }

    /// Training mode: the batch norm uses the batch's statistics and updates its running ones.
    pub(super) fn forward_train(&self, x: &Tensor, act: Activation, pass: Pass) -> Result<Tensor> {
        let (x, pad) = self.padding.apply(x)?;
        let x = ops::conv2d_train(&x, &pass.param(&self.conv), pad, Self::STRIDE)?;
        self.bn.forward_train(&x, act, pass)
    }

    /// The inference pass with the batch norm folded into `conv` (see [`Self::fold`]).
    pub(super) fn eval(&self, x: &Tensor, conv: &ops::EvalConv) -> Result<Tensor> {
        ops::stem_eval(x, conv, Self::STRIDE, self.padding.pair())
    }

    /// The convolution with its batch norm folded in, then `act`, detached.
    pub(super) fn fold(&self, act: Activation) -> Result<ops::EvalConv> {
        self.bn.fold(&self.conv, act)
    }

    /// Appends the layer's variables, in state-dict order, to `out`.
    pub(super) fn push_variables(&self, out: &mut Vec<NamedVar>) {
        out.push(named(
            "_conv_stem.weight".into(),
            &self.conv,
            VarRole::Weight,
        ));
        self.bn.push_variables(out);
    }
}

/// Squeeze-and-excitation keeps this fraction of the block's input channels.
const SE_RATIO: f64 = 0.25;

/// Squeeze-and-excitation (B family only): channels scaled by a gate computed from their means
/// by two 1x1 convolutions with biases, SiLU between them and a sigmoid after.
struct SqueezeExcite {
    reduce_w: Var,
    reduce_b: Var,
    expand_w: Var,
    expand_b: Var,
}

impl SqueezeExcite {
    /// For a block of `input` channels expanded to `hidden`.
    fn new(init: &mut Init<'_>, input: usize, hidden: usize) -> Result<Self> {
        let squeezed = ((input as f64 * SE_RATIO) as usize).max(1);
        Ok(Self {
            reduce_w: init.conv(squeezed, hidden, 1)?,
            reduce_b: init.uniform(&[squeezed], hidden)?,
            expand_w: init.conv(hidden, squeezed, 1)?,
            expand_b: init.uniform(&[hidden], squeezed)?,
        })
    }

    /// FLOPs of the two convolutions, which see one pixel each.
    fn flops(&self) -> usize {
        conv_flops(&self.reduce_w, 1) + conv_flops(&self.expand_w, 1)
    }

    /// `x` with each channel scaled by its gate, in training mode.
    fn forward_train(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let p = |t: &Var| pass.param(t);
        let bias = |t: &Var| p(t).reshape((1, t.dim(0)?, 1, 1));
        let s = x.mean_keepdim((2, 3))?;
        let s =
            ops::pointwise_conv2d(&s, &p(&self.reduce_w))?.broadcast_add(&bias(&self.reduce_b)?)?;
        let s = ops::silu(&s)?;
        let s =
            ops::pointwise_conv2d(&s, &p(&self.expand_w))?.broadcast_add(&bias(&self.expand_b)?)?;
        x.broadcast_mul(&candle_nn::ops::sigmoid(&s)?)
    }

    /// The two convolutions, detached, as the fused inference kernel takes them.
    fn fold(&self) -> (ops::EvalConv, ops::EvalConv) {
        let conv = |w: &Var, b: &Var, act| ops::EvalConv {
            weight: w.as_tensor().detach(),
            bias: b.as_tensor().detach(),
            act,
        };
        (
            conv(&self.reduce_w, &self.reduce_b, Activation::Silu),
            conv(&self.expand_w, &self.expand_b, Activation::Identity),
        )
    }

    /// Appends the variables, named under the block's `prefix`, to `out`.
    fn push_variables(&self, prefix: &str, out: &mut Vec<NamedVar>) {
        let entries = [
            ("_se_reduce.weight", &self.reduce_w, VarRole::Weight),
            ("_se_reduce.bias", &self.reduce_b, VarRole::NoDecay),
            ("_se_expand.weight", &self.expand_w, VarRole::Weight),
            ("_se_expand.bias", &self.expand_b, VarRole::NoDecay),
        ];
        for (name, var, role) in entries {
            out.push(named(format!("{prefix}.{name}"), var, role));
        }
    }
}

/// What one MBConv block is built from: its place in the network and its shape.
pub(super) struct BlockSpec {
    /// Position among all blocks; the variables are named `_blocks.{index}...`.
    pub(super) index: usize,
    /// Input and output channels.
    pub(super) input: usize,
    pub(super) output: usize,
    /// Depthwise kernel size and stride.
    pub(super) kernel: usize,
    pub(super) stride: usize,
    /// Expansion ratio of the hidden width; 1 means no expansion layer.
    pub(super) expand: usize,
    /// The depthwise layer's `SAME` padding at the variant's native resolution.
    pub(super) padding: Padding,
    /// Whether the block has squeeze-and-excitation (the B family).
    pub(super) squeeze_excite: bool,
    /// Drop-connect rate of the residual branch.
    pub(super) drop_connect: f64,
}

/// An MBConv block: optional 1x1 expansion, depthwise convolution, optional
/// squeeze-and-excitation, 1x1 projection, and a residual connection with drop-connect when the
/// block keeps resolution and width.
pub(super) struct MbConv {
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

impl MbConv {
    /// The block `spec` describes, named `_blocks.{index}` as in the PyTorch port.
    pub(super) fn new(init: &mut Init<'_>, spec: &BlockSpec) -> Result<Self> {
        let prefix = format!("_blocks.{}", spec.index);
        let hidden = spec.input * spec.expand;
        let expand = if spec.expand != 1 {
            let w = init.conv(hidden, spec.input, 1)?;
            Some((w, init.bn(format!("{prefix}._bn0"), hidden)?))
        } else {
            None
        };
        let depthwise = init.conv(hidden, 1, spec.kernel)?;
        let bn1 = init.bn(format!("{prefix}._bn1"), hidden)?;
        let se = if spec.squeeze_excite {
            Some(SqueezeExcite::new(init, spec.input, hidden)?)
        } else {
            None
        };
        let project = init.conv(spec.output, hidden, 1)?;
        let bn2 = init.bn(format!("{prefix}._bn2"), spec.output)?;
        Ok(Self {
            prefix,
            expand,
            depthwise,
            bn1,
            se,
            project,
            bn2,
            stride: spec.stride,
            padding: spec.padding,
            residual: spec.stride == 1 && spec.input == spec.output,
            drop_connect: spec.drop_connect,
        })
    }

    /// The output side for a `size x size` input, if the input is large enough.
    pub(super) fn output(&self, size: usize) -> Option<usize> {
        let k = self.depthwise.dim(3).ok()?;
        self.padding.output(size, k, self.stride)
    }

    /// The output side and the block's FLOPs for a `size x size` input.
    pub(super) fn flops(&self, size: usize) -> Option<(usize, usize)> {
        let expand = self
            .expand
            .as_ref()
            .map_or(0, |(w, _)| conv_flops(w, size * size));
        let s = self.output(size)?;
        let se = self.se.as_ref().map_or(0, SqueezeExcite::flops);
        let pixels = s * s;
        let flops =
            expand + conv_flops(&self.depthwise, pixels) + se + conv_flops(&self.project, pixels);
        Some((s, flops))
    }

    /// The depthwise layer as a [`Conv`].
    fn depthwise_conv(&self) -> Conv {
        Conv::Depthwise {
            stride: self.stride,
            padding: self.padding.pair(),
        }
    }

    /// The block in training mode, its drop-connect masks drawn from `masks`.
    pub(super) fn forward_train(
        &self,
        input: &Tensor,
        act: Activation,
        masks: &Masks,
        pass: Pass,
    ) -> Result<Tensor> {
        let project = (
            &*self.project,
            Conv::Pointwise,
            &self.bn2,
            Activation::Identity,
        );
        // One fused chain per block where nothing sits between the layers (Lite); the
        // squeeze-and-excitation of the B models splits it before the projection.
        let mut layers = Vec::with_capacity(3);
        if let Some((w, bn)) = &self.expand {
            layers.push((&**w, Conv::Pointwise, bn, act));
        }
        layers.push((&*self.depthwise, self.depthwise_conv(), &self.bn1, act));
        if self.se.is_none() {
            layers.push(project);
        }
        let mut x = conv_bn_chain(input, &layers, pass)?;
        if let Some(se) = &self.se {
            x = se.forward_train(&x, pass)?;
            x = conv_bn_chain(&x, &[project], pass)?;
        }
        if !self.residual {
            return Ok(x);
        }
        if self.drop_connect > 0.0 {
            // Drop the whole residual branch per sample, rescaling the survivors.
            let n = x.dim(0)?;
            x = x.broadcast_mul(&masks.keep(&[n, 1, 1, 1], 1.0 - self.drop_connect)?)?;
        }
        x + input
    }

    /// The block's layers with their batch norms folded in, detached.
    pub(super) fn fold(&self, act: Activation) -> Result<ops::EvalBlock> {
        Ok(ops::EvalBlock {
            expand: match &self.expand {
                Some((w, bn)) => Some(bn.fold(w, act)?),
                None => None,
            },
            depthwise: self.bn1.fold(&self.depthwise, act)?,
            stride: self.stride,
            padding: self.padding.pair(),
            se: self.se.as_ref().map(SqueezeExcite::fold),
            project: self.bn2.fold(&self.project, Activation::Identity)?,
            residual: self.residual,
        })
    }

    /// Appends the layer's variables, in state-dict order, to `out`.
    pub(super) fn push_variables(&self, out: &mut Vec<NamedVar>) {
        let p = &self.prefix;
        if let Some((w, bn)) = &self.expand {
            out.push(named(
                format!("{p}._expand_conv.weight"),
                w,
                VarRole::Weight,
            ));
            bn.push_variables(out);
        }
        out.push(named(
            format!("{p}._depthwise_conv.weight"),
            &self.depthwise,
            VarRole::Weight,
        ));
        self.bn1.push_variables(out);
        if let Some(se) = &self.se {
            se.push_variables(p, out);
        }
        out.push(named(
            format!("{p}._project_conv.weight"),
            &self.project,
            VarRole::Weight,
        ));
        self.bn2.push_variables(out);
    }
}

/// The head: a 1x1 convolution, its batch norm (`_bn1`) and the activation, then the global
/// average pool.
pub(super) struct Head {
    conv: Var,
    bn: BatchNorm2d,
}

impl Head {
    /// `width` features from `input` channels.
    pub(super) fn new(init: &mut Init<'_>, input: usize, width: usize) -> Result<Self> {
        Ok(Self {
            conv: init.conv(width, input, 1)?,
            bn: init.bn("_bn1".into(), width)?,
        })
    }

    /// Width of the pooled features.
    pub(super) fn width(&self) -> usize {
        self.conv.dim(0).unwrap_or(0)
    }

    /// The convolution's FLOPs on a `size x size` input.
    pub(super) fn flops(&self, size: usize) -> usize {
        conv_flops(&self.conv, size * size)
    }

    /// Pooled features `[N, D]` in training mode.
    pub(super) fn forward_train(&self, x: &Tensor, act: Activation, pass: Pass) -> Result<Tensor> {
        let layer = (&*self.conv, Conv::Pointwise, &self.bn, act);
        conv_bn_chain(x, &[layer], pass)?.mean((2, 3))
    }

    /// The convolution with its batch norm folded in, then `act`, detached.
    pub(super) fn fold(&self, act: Activation) -> Result<ops::EvalConv> {
        self.bn.fold(&self.conv, act)
    }

    /// Appends the layer's variables, in state-dict order, to `out`.
    pub(super) fn push_variables(&self, out: &mut Vec<NamedVar>) {
        out.push(named(
            "_conv_head.weight".into(),
            &self.conv,
            VarRole::Weight,
        ));
        self.bn.push_variables(out);
    }
}

/// The classifier (`_fc`): a linear layer on the pooled features.
pub(super) struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    /// `classes` logits from `input` features.
    pub(super) fn new(init: &mut Init<'_>, input: usize, classes: usize) -> Result<Self> {
        Ok(Self {
            weight: init.uniform(&[classes, input], input)?,
            bias: init.uniform(&[classes], input)?,
        })
    }

    /// `2 * weights`: one multiply-add per weight.
    pub(super) fn flops(&self) -> usize {
        2 * self.weight.elem_count()
    }

    /// Logits for `x [N, D]`; outside training the weights are detached so no graph is
    /// recorded.
    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (w, b) = if train {
            (
                self.weight.as_tensor().clone(),
                self.bias.as_tensor().clone(),
            )
        } else {
            (
                self.weight.as_tensor().detach(),
                self.bias.as_tensor().detach(),
            )
        };
        x.matmul(&w.t()?)?.broadcast_add(&b)
    }

    /// Appends the layer's variables, in state-dict order, to `out`.
    pub(super) fn push_variables(&self, out: &mut Vec<NamedVar>) {
        out.push(named("_fc.weight".into(), &self.weight, VarRole::Weight));
        out.push(named("_fc.bias".into(), &self.bias, VarRole::NoDecay));
    }
}
