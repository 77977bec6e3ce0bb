//! The tensor operations EfficientNet spends its time in, behind one interface.
//!
//! Models call these functions rather than candle's ops directly, so that fast CPU kernels
//! (custom ops with their own backward pass) can replace candle's built-in path where they
//! pay, while CUDA and Metal keep candle's implementation. The fast path is taken for f32 tensors
//! on the CPU; everything else goes to [`builtin`].
//!
//! A BatchNorm module with `weight`, `bias`, `running_mean` and `running_var` of shape `[C]`
//! (PyTorch's names) and the activation that follows it calls, in training,
//! `let (y, stats) = batch_norm_train(&x, &weight, &bias, eps, act)?` and then updates its
//! running averages from `stats` (detached tensors); in inference it calls
//! `batch_norm_eval(&x, &weight, &bias, &running_mean, &running_var, eps, act)`. Both replace
//! BatchNorm + [`relu6`] / [`silu`] by one pass (use [`Activation::Identity`] where no
//! activation follows, as after a projection convolution). Where convolutions and their batch
//! norms follow each other directly, [`conv_batch_norm_train`] runs the whole chain in training
//! as one graph node (see `crate::batch_norm::conv_bn_chain`).
//!
//! Inner loops are compiled for AVX2 and FMA where the CPU has them, chosen at run time, so the
//! crate needs no `-C target-cpu` flag.
//!
//! Threads: these kernels run on rayon's pool, while candle's own elementwise ops (residual
//! adds, its gradient accumulation) use a second, spin-waiting pool that competes for the same
//! cores. A CPU training binary ran a two-block Lite0 step in 91 ms instead of 133 ms with
//! `CANDLE_NUM_THREADS=1` (`cargo bench --bench alloc_mimalloc`, 2 cores), and a full Lite0
//! step in 2.92 s instead of 3.50 s (`cargo bench --bench model`). Setting
//! `RAYON_NUM_THREADS` also spares candle a read of `/proc/cpuinfo` in each of its thread-count
//! queries.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail,
};
use std::mem::MaybeUninit;

/// Runs `$body` with `$f` naming the [`activation::Scalar`] type of the [`Activation`] `$act`,
/// so the loops inside are compiled once per activation.
macro_rules! with_scalar {
    ($act:expr, $f:ident => $body:expr) => {
        match $act {
            $crate::ops::Activation::Identity => {
                type $f = $crate::ops::activation::IdentityFn;
                $body
            }
            $crate::ops::Activation::Relu6 => {
                type $f = $crate::ops::activation::Relu6Fn;
                $body
            }
            $crate::ops::Activation::Silu => {
                type $f = $crate::ops::activation::SiluFn;
                $body
            }
        }
    };
}

mod activation;
mod batch_norm;
mod conv2d;
mod conv_batch_norm;
mod depthwise;
mod eval;
mod pointwise;
mod simd;
pub mod timing;

/// Depthwise 2-D convolution: `x [N, C, H, W]`, `w [C, 1, k, k]`, zero padding
/// `(before, after)` on both spatial axes (TensorFlow's SAME puts the odd pixel after).
pub fn depthwise_conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: (usize, usize),
) -> Result<Tensor> {
    if fast_path(&[x, w]) {
        Conv::Depthwise { stride, padding }.cpu(x, w)
    } else {
        builtin::depthwise_conv2d(x, w, stride, padding)
    }
}

/// 1x1 convolution: `x [N, Cin, H, W]`, `w [Cout, Cin, 1, 1]`.
pub fn pointwise_conv2d(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if fast_path(&[x, w]) {
        Conv::Pointwise.cpu(x, w)
    } else {
        builtin::pointwise_conv2d(x, w)
    }
}

/// A dense convolution `x [N, Cin, H, W] * w [Cout, Cin, k, k]` with zero padding `padding`
/// and stride `stride`, in training: where `x` needs no gradient (a stem's images), the
/// backward pass computes only the weight's, with the same values as candle's `conv2d`.
pub fn conv2d_train(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if fast_path(&[x, w]) && !x.track_op() {
        conv2d::train(x, w, padding, stride)
    } else {
        x.conv2d(w, padding, stride, 1, 1)
    }
}

/// `min(max(x, 0), 6)`, the activation of the Lite models.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    if fast_path(&[x]) {
        activation::relu6(x)
    } else {
        builtin::relu6(x)
    }
}

/// `x * sigmoid(x)`, the activation of the B models.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if fast_path(&[x]) {
        activation::silu(x)
    } else {
        builtin::silu(x)
    }
}

/// A convolution that a batch norm follows, as [`conv_batch_norm_train`] fuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// [`pointwise_conv2d`].
    Pointwise,
    /// [`depthwise_conv2d`] with this stride and `(before, after)` padding.
    Depthwise {
        /// Step between output pixels.
        stride: usize,
        /// Zero padding before and after, on both spatial axes.
        padding: (usize, usize),
    },
}

impl Conv {
    /// The convolution alone.
    pub fn apply(self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        match self {
            Conv::Pointwise => pointwise_conv2d(x, w),
            Conv::Depthwise { stride, padding } => depthwise_conv2d(x, w, stride, padding),
        }
    }

    /// The CPU kernel, recorded for backprop.
    fn cpu(self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&w.contiguous()?, Cpu(self))
    }

    /// The CPU gradient wrt the input, whose height and width are `h` and `w`.
    fn grad_input(self, (h, width): (usize, usize), w: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let grad = grad.contiguous()?;
        match self {
            Conv::Pointwise => grad.apply_op2_no_bwd(w, &Cpu(pointwise::GradInput)),
            Conv::Depthwise { stride, padding } => {
                let op = depthwise::GradInput {
                    stride,
                    padding,
                    h,
                    w: width,
                };
                grad.apply_op2_no_bwd(w, &Cpu(op))
            }
        }
    }

    /// The CPU gradient wrt the weight `w`, for the input `x`.
    fn grad_weight(self, x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let grad = grad.contiguous()?;
        match self {
            Conv::Pointwise => x.apply_op2_no_bwd(&grad, &Cpu(pointwise::GradWeight)),
            Conv::Depthwise { stride, padding } => {
                let k = w.dim(2)?;
                let op = depthwise::GradWeight { stride, padding, k };
                x.apply_op2_no_bwd(&grad, &Cpu(op))
            }
        }
    }
}

impl Kernel<2> for Conv {
    fn name(&self) -> &'static str {
        match self {
            Conv::Pointwise => "pointwise-conv2d",
            Conv::Depthwise { .. } => "depthwise-conv2d",
        }
    }

    fn forward(&self, [x, w]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        match *self {
            Conv::Pointwise => pointwise::forward(x, w),
            Conv::Depthwise { stride, padding } => depthwise::forward(x, w, stride, padding),
        }
    }

    fn backward(&self, [x, w]: [&Tensor; 2], grad: &Tensor) -> Result<[Option<Tensor>; 2]> {
        // Inputs outside the graph (the images, frozen weights) need no gradient.
        let (_, _, h, width) = x.dims4()?;
        let gx = x
            .track_op()
            .then(|| self.grad_input((h, width), w, grad))
            .transpose()?;
        let gw = w
            .track_op()
            .then(|| self.grad_weight(x, w, grad))
            .transpose()?;
        Ok([gx, gw])
    }
}

/// One layer of [`conv_batch_norm_train`]: a convolution, then a batch norm with scale `gamma`,
/// shift `beta` and epsilon `eps`, then `act`.
#[derive(Debug, Clone, Copy)]
pub struct ConvBn<'a> {
    /// Convolution weight, `[Cout, Cin, k, k]` or `[C, 1, k, k]` for depthwise.
    pub weight: &'a Tensor,
    /// Which convolution.
    pub conv: Conv,
    /// Batch-norm scale, `[Cout]`.
    pub gamma: &'a Tensor,
    /// Batch-norm shift, `[Cout]`.
    pub beta: &'a Tensor,
    /// Batch-norm epsilon.
    pub eps: f64,
    /// The activation after the batch norm.
    pub act: Activation,
}

/// Training-mode `links` applied to `x` in order, each `act(batch_norm(conv(x)))`, with the
/// batch statistics of every batch norm (detached).
///
/// On the CPU the whole chain is one graph node whose intermediate tensors stay out of
/// candle's graph: its backward pass then skips a zero-filled gradient buffer and an addition
/// per edge: a Lite0 training step at 96x96 took 1.93 s instead of 2.36 s with separate
/// convolution and batch-norm nodes (`cargo bench --bench model`, 2 cores). Gradients flow to
/// `x` and to every weight, `gamma` and `beta`.
///
/// With `recompute`, the CPU node keeps only the batch statistics, not the convolutions'
/// outputs, and its backward pass runs the convolutions again: the same gradients, bit for bit,
/// for less memory and more time. Elsewhere candle's graph keeps what it keeps.
pub fn conv_batch_norm_train(
    x: &Tensor,
    links: &[ConvBn<'_>],
    recompute: bool,
) -> Result<(Tensor, Vec<BatchStats>)> {
    let fast = fast_path(&[x])
        && links
            .iter()
            .all(|l| fast_path(&[l.weight, l.gamma, l.beta]));
    if fast {
        return conv_batch_norm::train(x, links, recompute);
    }
    let mut y = x.clone();
    let mut stats = Vec::with_capacity(links.len());
    for l in links {
        let (out, s) =
            batch_norm_train(&l.conv.apply(&y, l.weight)?, l.gamma, l.beta, l.eps, l.act)?;
        y = out;
        stats.push(s);
    }
    Ok((y, stats))
}

/// The activation fused into [`batch_norm_train`] and [`batch_norm_eval`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// No activation: plain batch norm.
    Identity,
    /// [`relu6`].
    Relu6,
    /// [`silu`].
    Silu,
}

/// Batch statistics of a training-mode batch norm, per channel, for the running averages.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// Mean over batch and space, `[C]`.
    pub mean: Tensor,
    /// Unbiased variance over batch and space, `[C]` (what PyTorch's running variance
    /// averages; the normalisation itself uses the biased one).
    pub var: Tensor,
    /// Values per channel the statistics were taken over (`N * H * W`).
    pub count: usize,
}

/// Training-mode batch norm followed by `act`, in one pass forward and two backward:
/// `act(gamma * (x - mean) / sqrt(var + eps) + beta)` with `x [N, C, H, W]`, `gamma, beta [C]`.
///
/// Gradients flow to `x`, `gamma` and `beta` through the batch statistics; the returned
/// [`BatchStats`] are detached. A BatchNorm module updates its running averages from them:
/// `running = (1 - momentum) * running + momentum * stats` (PyTorch's momentum is 0.1).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<(Tensor, BatchStats)> {
    if fast_path(&[x, gamma, beta]) {
        batch_norm::train(x, [gamma, beta], eps, act)
    } else {
        builtin::batch_norm_train(x, gamma, beta, eps, act)
    }
}

/// Inference-mode batch norm followed by `act`, using running statistics `mean, var [C]`:
/// one pass over `x`. Gradients flow to `x`, `gamma` and `beta` (the statistics are constants).
pub fn batch_norm_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<Tensor> {
    if fast_path(&[x, gamma, beta, mean, var]) {
        batch_norm::eval(x, [gamma, beta, mean, var], eps, act)
    } else {
        builtin::batch_norm_eval(x, gamma, beta, mean, var, eps, act)
    }
}

/// A convolution with its inference-mode batch norm folded in, then an activation:
/// `act(conv(x, weight) + bias)`. Its tensors are detached, so nothing built from them records
/// a graph.
#[derive(Debug, Clone)]
pub struct EvalConv {
    /// `[Cout, Cin, k, k]`, or `[C, 1, k, k]` for a depthwise convolution.
    pub weight: Tensor,
    /// `[Cout]`.
    pub bias: Tensor,
    /// The activation after the bias.
    pub act: Activation,
}

impl EvalConv {
    /// `act(conv(x) + bias)` as candle ops, for devices without the fused kernels.
    fn builtin(&self, x: &Tensor, conv: Conv) -> Result<Tensor> {
        self.bias_act(&conv.apply(x, &self.weight)?)
    }

    /// `act(y + bias)` as candle ops, the bias broadcast over `y [N, C, H, W]`'s channels.
    fn bias_act(&self, y: &Tensor) -> Result<Tensor> {
        let c = self.bias.dim(0)?;
        let y = y.broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?;
        builtin::activation(&y, self.act)
    }
}

/// An MBConv block in inference mode, batch norms folded: expansion (absent where the
/// expansion ratio is 1), depthwise convolution, squeeze-and-excitation (B models), projection,
/// and the residual addition where the block keeps its shape.
#[derive(Debug, Clone)]
pub struct EvalBlock {
    /// The 1x1 expansion.
    pub expand: Option<EvalConv>,
    /// The depthwise convolution.
    pub depthwise: EvalConv,
    /// Its stride.
    pub stride: usize,
    /// Its `(before, after)` zero padding on both spatial axes.
    pub padding: (usize, usize),
    /// Squeeze-and-excitation as two 1x1 convolutions with biases: reduce (SiLU) and expand
    /// (a sigmoid gate).
    pub se: Option<(EvalConv, EvalConv)>,
    /// The 1x1 projection.
    pub project: EvalConv,
    /// Whether the input is added to the output.
    pub residual: bool,
}

/// Runs `f` on the CPU slices of `convs`' weights and biases, read in place.
fn with_layers<R>(
    convs: &[&EvalConv],
    f: impl FnOnce(&[eval::Layer<'_>]) -> Result<R>,
) -> Result<R> {
    let guards: Vec<_> = convs
        .iter()
        .flat_map(|c| [&c.weight, &c.bias])
        .map(|t| t.storage_and_layout())
        .collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        match &**storage {
            candle_core::Storage::Cpu(cpu) => slices.push(cpu_f32(cpu, layout)?),
            _ => bail!("fused inference kernels need CPU weights"),
        }
    }
    let layers: Vec<eval::Layer<'_>> = convs
        .iter()
        .zip(slices.chunks_exact(2))
        .map(|(c, s)| eval::Layer {
            w: s[0],
            b: s[1],
            act: c.act,
        })
        .collect();
    f(&layers)
}

fn eval_fast_path(x: &Tensor, convs: &[&EvalConv]) -> bool {
    fast_path(&[x]) && convs.iter().all(|c| fast_path(&[&c.weight, &c.bias]))
}

/// The stem in inference mode: a dense `k x k` convolution of `x [N, Cin, H, W]` with stride
/// and `(before, after)` zero padding, then bias and activation.
pub fn stem_eval(
    x: &Tensor,
    conv: &EvalConv,
    stride: usize,
    (before, after): (usize, usize),
) -> Result<Tensor> {
    if !eval_fast_path(x, &[conv]) {
        let x = x
            .pad_with_zeros(2, before, after)?
            .pad_with_zeros(3, before, after)?;
        return conv.bias_act(&x.conv2d(&conv.weight, 0, stride, 1, 1)?);
    }
    let kernel = conv.weight.dim(3)?;
    with_layers(&[conv], |l| {
        let stem = eval::Stem {
            layer: l[0],
            kernel,
            stride,
            padding: (before, after),
        };
        x.contiguous()?.apply_op1_no_bwd(&Cpu(stem))
    })
}

/// One MBConv block in inference mode on `x [N, C, H, W]`; on the CPU one fused kernel that
/// keeps the block's intermediates in cache.
pub fn mbconv_eval(x: &Tensor, b: &EvalBlock) -> Result<Tensor> {
    let mut convs: Vec<&EvalConv> = b.expand.iter().collect();
    convs.push(&b.depthwise);
    if let Some((r, e)) = &b.se {
        convs.extend([r, e]);
    }
    convs.push(&b.project);
    if !eval_fast_path(x, &convs) {
        return mbconv_builtin(x, b);
    }
    let kernel = b.depthwise.weight.dim(3)?;
    with_layers(&convs, |l| {
        let mut l = l.iter().copied();
        let mut next = || {
            l.next()
                .ok_or_else(|| candle_core::Error::Msg("mbconv-eval".into()))
        };
        let block = eval::Block {
            expand: b.expand.as_ref().map(|_| next()).transpose()?,
            depthwise: next()?,
            kernel,
            stride: b.stride,
            padding: b.padding,
            se: b
                .se
                .as_ref()
                .map(|_| Ok::<_, candle_core::Error>((next()?, next()?)))
                .transpose()?,
            project: next()?,
            residual: b.residual,
        };
        x.contiguous()?.apply_op1_no_bwd(&Cpu(block))
    })
}

fn mbconv_builtin(x: &Tensor, b: &EvalBlock) -> Result<Tensor> {
    let mut y = match &b.expand {
        Some(e) => e.builtin(x, Conv::Pointwise)?,
        None => x.clone(),
    };
    let depthwise = Conv::Depthwise {
        stride: b.stride,
        padding: b.padding,
    };
    y = b.depthwise.builtin(&y, depthwise)?;
    if let Some((reduce, expand)) = &b.se {
        let s = reduce.builtin(&y.mean_keepdim((2, 3))?, Conv::Pointwise)?;
        let s = expand.builtin(&s, Conv::Pointwise)?;
        y = y.broadcast_mul(&candle_nn::ops::sigmoid(&s)?)?;
    }
    y = b.project.builtin(&y, Conv::Pointwise)?;
    if b.residual { y + x } else { Ok(y) }
}

/// The head in inference mode: a 1x1 convolution of `x [N, Cin, H, W]`, bias and activation,
/// then the mean over each plane, `[N, Cout]`.
pub fn head_pool_eval(x: &Tensor, conv: &EvalConv) -> Result<Tensor> {
    if !eval_fast_path(x, &[conv]) {
        return conv.builtin(x, Conv::Pointwise)?.mean((2, 3));
    }
    with_layers(&[conv], |l| {
        x.contiguous()?.apply_op1_no_bwd(&Cpu(eval::HeadPool(l[0])))
    })
}

/// candle's own implementation of each op: the path for GPUs and non-f32 tensors, and the
/// reference that tests and benches compare the fast kernels against.
pub mod builtin {
    use super::{Activation, BatchStats};
    use candle_core::{D, Module, Result, Tensor};

    /// Depthwise convolution as candle's grouped convolution (one group per channel); the
    /// input is padded first where `(before, after)` differ, as candle pads symmetrically.
    pub fn depthwise_conv2d(
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        (before, after): (usize, usize),
    ) -> Result<Tensor> {
        let channels = x.dim(1)?;
        if before == after {
            return x.conv2d(w, before, stride, 1, channels);
        }
        x.pad_with_zeros(2, before, after)?
            .pad_with_zeros(3, before, after)?
            .conv2d(w, 0, stride, 1, channels)
    }

    /// 1x1 convolution as candle's `conv2d`.
    pub fn pointwise_conv2d(x: &Tensor, w: &Tensor) -> Result<Tensor> {
        x.conv2d(w, 0, 1, 1, 1)
    }

    /// ReLU6 as `relu` followed by `minimum`.
    pub fn relu6(x: &Tensor) -> Result<Tensor> {
        x.relu()?.minimum(6f32)
    }

    /// SiLU as candle-nn's activation.
    pub fn silu(x: &Tensor) -> Result<Tensor> {
        candle_nn::Activation::Silu.forward(x)
    }

    /// `act` as candle ops.
    pub fn activation(x: &Tensor, act: Activation) -> Result<Tensor> {
        match act {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu6 => relu6(x),
            Activation::Silu => silu(x),
        }
    }

    /// Training-mode batch norm and activation as broadcast candle ops.
    pub fn batch_norm_train(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
        act: Activation,
    ) -> Result<(Tensor, BatchStats)> {
        let (n, c, h, w) = x.dims4()?;
        let count = (n * h * w) as f64;
        // Mean and biased variance over (N, H, W), as [1, C, 1, 1].
        let flat = x.transpose(0, 1)?.reshape((c, n * h * w))?;
        let mean = flat.mean_keepdim(D::Minus1)?;
        let var = flat.broadcast_sub(&mean)?.sqr()?.mean_keepdim(D::Minus1)?;
        let y = normalize(
            x,
            gamma,
            beta,
            &mean.reshape((1, c, 1, 1))?,
            &var.reshape((1, c, 1, 1))?,
            eps,
        )?;
        let stats = BatchStats {
            mean: mean.flatten_all()?.detach(),
            var: (var.flatten_all()? * (count / (count - 1.0).max(1.0)))?.detach(),
            count: n * h * w,
        };
        Ok((activation(&y, act)?, stats))
    }

    /// Inference-mode batch norm and activation as broadcast candle ops.
    pub fn batch_norm_eval(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
        act: Activation,
    ) -> Result<Tensor> {
        let c = x.dim(1)?;
        let y = normalize(
            x,
            gamma,
            beta,
            &mean.reshape((1, c, 1, 1))?,
            &var.reshape((1, c, 1, 1))?,
            eps,
        )?;
        activation(&y, act)
    }

    fn normalize(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let c = x.dim(1)?;
        let inv_std = (var + eps)?.sqrt()?.recip()?;
        x.broadcast_sub(mean)?
            .broadcast_mul(&inv_std)?
            .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
            .broadcast_add(&beta.reshape((1, c, 1, 1))?)
    }
}

/// Whether every tensor is f32 on the CPU, where the custom kernels apply.
/// Set by [`use_builtin_kernels`]: route every op through candle's built-in path.
static FORCE_BUILTIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Routes every op of this module through candle's built-in path (`true`) or back to the fast
/// CPU kernels (`false`), process-wide: the baseline of the model benchmarks, and a way to rule
/// our kernels out when a result looks wrong.
pub fn use_builtin_kernels(on: bool) {
    FORCE_BUILTIN.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn fast_path(tensors: &[&Tensor]) -> bool {
    !FORCE_BUILTIN.load(std::sync::atomic::Ordering::Relaxed)
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// The f32 elements of a contiguous CPU storage, in layout order.
fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("custom CPU kernel called on a non-contiguous tensor"),
    }
}

/// An operand of a [`Kernel`]: the f32 elements of a contiguous CPU tensor, and its shape.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    shape: &'a Shape,
}

impl<'a> Operand<'a> {
    /// The operand that `layout` (contiguous, or an error) makes of `storage`.
    fn new(storage: &'a CpuStorage, layout: &'a Layout) -> Result<Self> {
        Ok(Self {
            data: cpu_f32(storage, layout)?,
            shape: layout.shape(),
        })
    }
}

/// A CPU kernel on `N` f32 operands, each kernel's own part of a custom op: [`Cpu`] makes it
/// candle's `CustomOp1`, `CustomOp2` or `CustomOp3`, so the storage extraction, contiguity
/// check and output wrapping are written once here instead of in every kernel.
trait Kernel<const N: usize>: Send + Sync {
    /// The op's name in candle's errors.
    fn name(&self) -> &'static str;

    /// The output's elements, in order, and its shape.
    fn forward(&self, inputs: [Operand<'_>; N]) -> Result<(Vec<f32>, Shape)>;

    /// The gradients wrt the inputs for the output gradient `grad`; kernels that only run
    /// outside the graph keep candle's refusal.
    fn backward(&self, _inputs: [&Tensor; N], _grad: &Tensor) -> Result<[Option<Tensor>; N]> {
        Err(candle_core::Error::BackwardNotSupported { op: self.name() })
    }
}

/// A [`Kernel`] as a candle custom op, on the CPU only.
struct Cpu<K>(K);

/// Runs `kernel` on the storages of its operands.
fn run<const N: usize>(
    kernel: &impl Kernel<N>,
    operands: [(&CpuStorage, &Layout); N],
) -> Result<(CpuStorage, Shape)> {
    let mut inputs = Vec::with_capacity(N);
    for (storage, layout) in operands {
        inputs.push(Operand::new(storage, layout)?);
    }
    let inputs: [Operand<'_>; N] = inputs
        .try_into()
        .map_err(|_| candle_core::Error::Msg(format!("{}: operand count", kernel.name())))?;
    let (out, shape) = timing::timed(kernel.name(), false, || kernel.forward(inputs))?;
    Ok((CpuStorage::F32(out), shape))
}

impl<K: Kernel<1>> CustomOp1 for Cpu<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        run(&self.0, [(s, l)])
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let [gx] = timing::timed(self.0.name(), true, || self.0.backward([x], grad))?;
        Ok(gx)
    }
}

impl<K: Kernel<2>> CustomOp2 for Cpu<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        run(&self.0, [(s1, l1), (s2, l2)])
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [ga, gb] = timing::timed(self.0.name(), true, || self.0.backward([a, b], grad))?;
        Ok((ga, gb))
    }
}

impl<K: Kernel<3>> CustomOp3 for Cpu<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        run(&self.0, [(s1, l1), (s2, l2), (s3, l3)])
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [ga, gb, gc] = timing::timed(self.0.name(), true, || self.0.backward([a, b, c], grad))?;
        Ok((ga, gb, gc))
    }
}

/// An op output of `len` elements for a kernel that writes every element (through
/// [`MaybeUninit::write`] or [`write_copy`]) before the buffer is read: zeroing a fresh
/// activation-sized buffer first would cost a memory pass, about 6% of a training step.
fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` elements need no initialisation, and the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

/// The buffer of [`uninit`] once every element has been written.
///
/// # Safety
/// Every element of `v` must have been written.
unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: the same allocation, element layout, length and capacity (`MaybeUninit<f32>` has
    // the layout of `f32`); the caller guarantees that every element is initialised.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

/// Copies `src` into the start of `dst`, initialising those elements.
#[inline(always)]
fn write_copy(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

#[cfg(test)]
mod test_util {
    #![allow(clippy::unwrap_used)]

    use candle_core::{Device, Tensor, Var};

    /// A reproducible tensor with values in [-1, 1) (a small LCG keeps tests free of RNG crates).
    ///
    /// It first fills and frees a larger heap block with NaN, so that op outputs allocated
    /// after it likely reuse poisoned memory: a kernel that leaves an element of its
    /// [`super::uninit`] output unwritten then fails the comparisons instead of passing on
    /// fresh zeroed pages.
    pub fn random(dims: &[usize], seed: u64) -> Tensor {
        let n: usize = dims.iter().product();
        drop(std::hint::black_box(vec![f32::NAN; 4 * n + 1024]));
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
    }

    /// Asserts equal shapes and elementwise `|a - b| <= tol * max(1, |b|)`.
    pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32) {
        assert_eq!(a.dims(), b.dims());
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol * y.abs().max(1.0),
                "element {i}: {x} vs {y}"
            );
        }
    }

    /// Asserts that the losses `sum(a * up)` and `sum(b * up)` have gradients wrt each of
    /// `vars` within `tol` of each other, as [`assert_close`] compares them.
    pub fn assert_same_grads(a: &Tensor, b: &Tensor, up: &Tensor, vars: &[&Var], tol: f32) {
        let grads = |t: &Tensor| (t * up).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (grads(a), grads(b));
        for v in vars {
            assert_close(g1.get(v).unwrap(), g2.get(v).unwrap(), tol);
        }
    }
}
