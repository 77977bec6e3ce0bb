//! Batch norm fused with the activation after it, on the CPU.
//!
//! Composed from candle ops, a training-mode batch norm is a dozen broadcast passes over the
//! activation tensor forward and more backward, each writing a fresh full-size tensor. Here the
//! statistics take one read of `x`, the normalisation plus activation one read and one write,
//! and the backward pass one read of `(x, grad)` for the per-channel sums and one more to write
//! the input gradient.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::activation::Scalar;
use super::{Activation, BatchStats, Cpu, Kernel, Operand, simd};

/// Training-mode batch norm and activation of contiguous f32 CPU tensors.
pub(super) fn train(
    x: &Tensor,
    [gamma, beta]: [&Tensor; 2],
    eps: f64,
    act: Activation,
) -> Result<(Tensor, BatchStats)> {
    let x = x.contiguous()?;
    let (n, c, h, w) = x.dims4()?;
    check_param("gamma", gamma, c)?;
    check_param("beta", beta, c)?;
    let stats = x.apply_op1_no_bwd(&Cpu(ChannelStats))?;
    let [mean, var]: [Vec<f32>; 2] = stats
        .to_vec2::<f32>()?
        .try_into()
        .map_err(|_| candle_core::Error::Msg("batch_norm: statistics are not [2, C]".into()))?;
    let op = BatchNorm::training(mean, &var, eps, act);
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, Cpu(op))?;
    let stats = BatchStats {
        mean: stats.get(0)?,
        var: (stats.get(1)? * unbiased_factor(n * h * w))?,
        count: n * h * w,
    };
    Ok((y, stats))
}

/// What turns the biased variance over `count` values into the unbiased one.
pub(super) fn unbiased_factor(count: usize) -> f64 {
    let count = count as f64;
    count / (count - 1.0).max(1.0)
}

/// Per-channel mean and biased variance of `x [N, C, H, W]`.
pub(super) fn channel_stats(x: Operand<'_>) -> Result<(Vec<f32>, Vec<f32>)> {
    let (mut mean, _) = ChannelStats.forward([x])?;
    let var = mean.split_off(mean.len() / 2);
    Ok((mean, var))
}

/// Inference-mode batch norm and activation of contiguous f32 CPU tensors.
pub(super) fn eval(
    x: &Tensor,
    params @ [gamma, beta, mean, var]: [&Tensor; 4],
    eps: f64,
    act: Activation,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    for (name, t) in ["gamma", "beta", "mean", "var"].into_iter().zip(params) {
        check_param(name, t, c)?;
    }
    let var = var.flatten_all()?.to_vec1::<f32>()?;
    let op = BatchNorm {
        mean: mean.flatten_all()?.to_vec1::<f32>()?,
        inv_std: inv_std(&var, eps),
        train: false,
        act,
    };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, Cpu(op))
}

/// Per-channel parameters must hold exactly `C` values (any shape, e.g. `[C]`).
fn check_param(name: &str, t: &Tensor, c: usize) -> Result<()> {
    if t.elem_count() != c {
        bail!(
            "batch_norm: {name} has shape {:?}, expected {c} values",
            t.shape()
        );
    }
    Ok(())
}

fn inv_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
        .collect()
}

/// Planes per rayon task for elementwise passes over `hw`-sized planes: about 16k elements.
fn planes_per_task(hw: usize) -> usize {
    (16384 / hw.max(1)).max(1)
}

/// Sums of `f(x_i, g_i) = (a, b)` over one plane, with eight lanes per sum so the loop vectorises
/// where `f` does.
#[inline(always)]
fn plane_sums(x: &[f32], g: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f64, f64) {
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let (cx, cg) = (x.chunks_exact(8), g.chunks_exact(8));
    let (mut ta, mut tb) = (0f32, 0f32);
    for (&xi, &gi) in cx.remainder().iter().zip(cg.remainder()) {
        let (u, v) = f(xi, gi);
        ta += u;
        tb += v;
    }
    for (xs, gs) in cx.zip(cg) {
        for l in 0..8 {
            let (u, v) = f(xs[l], gs[l]);
            a[l] += u;
            b[l] += v;
        }
    }
    let sum = |s: [f32; 8], t: f32| s.iter().map(|&v| v as f64).sum::<f64>() + t as f64;
    (sum(a, ta), sum(b, tb))
}

/// Per-channel reduction over `(N, H, W)` of `f` applied to `x` and a same-shaped second tensor.
///
/// Samples are split into a fixed number of groups (by the batch size alone, not the thread
/// count) that run in parallel, each reading its samples in memory order; the groups' partial
/// sums are then added in group order, so the result is deterministic. Walking one channel's
/// planes across the batch instead jumps through memory with a stride of a whole sample and
/// made this reduction a fifth of a training step.
fn channel_sums(
    x: &[f32],
    g: &[f32],
    dims: (usize, usize, usize),
    f: impl Fn(usize, f32, f32) -> (f32, f32) + Sync,
) -> Vec<(f64, f64)> {
    let (n, c, hw) = dims;
    let per_group = n.div_ceil(SUM_GROUPS).max(1);
    let partials: Vec<Vec<(f64, f64)>> = (0..n.div_ceil(per_group))
        .into_par_iter()
        .map(|group| {
            simd::wide(
                #[inline(always)]
                || {
                    let mut acc = vec![(0.0, 0.0); c];
                    for i in group * per_group..((group + 1) * per_group).min(n) {
                        for (ch, a) in acc.iter_mut().enumerate() {
                            let p = (i * c + ch) * hw;
                            let (u, v) =
                                plane_sums(&x[p..p + hw], &g[p..p + hw], |xv, gv| f(ch, xv, gv));
                            a.0 += u;
                            a.1 += v;
                        }
                    }
                    acc
                },
            )
        })
        .collect();
    let mut sums = vec![(0.0, 0.0); c];
    for part in &partials {
        for (s, p) in sums.iter_mut().zip(part) {
            s.0 += p.0;
            s.1 += p.1;
        }
    }
    sums
}

/// Sample groups of [`channel_sums`]: enough for the cores to share, few enough that the
/// partial sums stay small.
const SUM_GROUPS: usize = 16;

/// `x [N, C, H, W] -> [2, C]`: per-channel mean and biased variance.
struct ChannelStats;

impl Kernel<1> for ChannelStats {
    fn name(&self) -> &'static str {
        "batch-norm-stats"
    }

    fn forward(&self, [x]: [Operand<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let (n, c, h, w) = x.shape.dims4()?;
        let hw = h * w;
        if n * c * hw == 0 {
            bail!("batch_norm: empty input {:?}", x.shape);
        }
        let x = x.data;
        // Sums of (x - k) and (x - k)^2 with k the channel's first value: shifting by a value
        // of the data keeps E[x^2] - E[x]^2 from cancelling when the mean is large.
        let shift: Vec<f32> = (0..c).map(|ch| x[ch * hw]).collect();
        let sums = channel_sums(x, x, (n, c, hw), |ch, v, _| {
            let d = v - shift[ch];
            (d, d * d)
        });
        let count = (n * hw) as f64;
        let mut out = vec![0f32; 2 * c];
        for (ch, &(s1, s2)) in sums.iter().enumerate() {
            let m = s1 / count;
            out[ch] = (shift[ch] as f64 + m) as f32;
            out[c + ch] = (s2 / count - m * m).max(0.0) as f32;
        }
        Ok((out, Shape::from((2, c))))
    }
}

/// Normalisation with given statistics, affine transform and activation; `train` says whether
/// the statistics came from this batch (so gradients flow through them).
pub(super) struct BatchNorm {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    train: bool,
    act: Activation,
}

impl BatchNorm {
    /// Training mode: normalisation with the batch's own `mean` and biased `var`.
    pub(super) fn training(mean: Vec<f32>, var: &[f32], eps: f64, act: Activation) -> Self {
        Self {
            inv_std: inv_std(var, eps),
            mean,
            train: true,
            act,
        }
    }

    /// The mean the normalisation subtracts, per channel.
    pub(super) fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The gradients of `act(batch_norm(x))` for the output gradient `grad`: the input gradient
    /// and the `[2, C]` sums whose rows are the gradients of beta and of gamma.
    pub(super) fn gradients(
        &self,
        x: &Tensor,
        gamma: &[f32],
        beta: &[f32],
        grad: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let grad = grad.contiguous()?;
        let (scale, shift) = self.affine(gamma, beta);
        let grads = Cpu(BatchNormGrad {
            scale,
            shift,
            mean: self.mean.clone(),
            inv_std: self.inv_std.clone(),
            train: self.train,
            act: self.act,
        });
        let sums = x.apply_op2_no_bwd(&grad, &grads)?;
        let grad_x = x.apply_op3_no_bwd(&grad, &sums, &grads)?;
        Ok((grad_x, sums))
    }

    /// `act(x * scale + shift)` is the whole forward pass, per channel.
    fn affine(&self, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&self.inv_std)
            .map(|(g, s)| g * s)
            .collect();
        let shift = beta
            .iter()
            .zip(&self.mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        (scale, shift)
    }
}

impl Kernel<3> for BatchNorm {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    fn forward(&self, [x, gamma, beta]: [Operand<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let (n, c, h, w) = x.shape.dims4()?;
        let hw = h * w;
        if n * c * hw == 0 || self.mean.len() != c {
            bail!(
                "batch_norm: input {:?} does not fit {} channels",
                x.shape,
                self.mean.len()
            );
        }
        let (x, shape) = (x.data, x.shape);
        let (scale, shift) = self.affine(gamma.data, beta.data);
        let mut out = super::uninit(x.len());
        let per_task = planes_per_task(hw);
        let tasks = out.par_chunks_mut(hw * per_task).enumerate();
        with_scalar!(self.act, F => tasks.for_each(|(task, outs)| simd::wide(#[inline(always)] || {
            for (i, o) in outs.chunks_exact_mut(hw).enumerate() {
                let p = task * per_task + i;
                let (a, b) = (scale[p % c], shift[p % c]);
                for (o, &v) in o.iter_mut().zip(&x[p * hw..(p + 1) * hw]) {
                    o.write(F::forward(v * a + b));
                }
            }
        })));
        // SAFETY: every task's chunk is a whole number of `hw`-sized planes, each written in full.
        let out = unsafe { super::assume_init(out) };
        Ok((out, shape.clone()))
    }

    fn backward(
        &self,
        [x, gamma, beta]: [&Tensor; 3],
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let (grad_x, sums) = self.gradients(
            x,
            &gamma.flatten_all()?.to_vec1()?,
            &beta.flatten_all()?.to_vec1()?,
            grad,
        )?;
        let grad_beta = sums.get(0)?.reshape(beta.shape())?;
        let grad_gamma = sums.get(1)?.reshape(gamma.shape())?;
        Ok([Some(grad_x), Some(grad_gamma), Some(grad_beta)])
    }
}

/// Backward of [`BatchNorm`]: as a binary op `(x, grad_out) -> [2, C]` the per-channel sums of
/// `dz` and `dz * xhat` (which are also the gradients of beta and gamma), with `z` the input of
/// the activation; as a ternary op `(x, grad_out, sums) -> grad_x`.
struct BatchNormGrad {
    scale: Vec<f32>,
    shift: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    train: bool,
    act: Activation,
}

impl Kernel<2> for BatchNormGrad {
    fn name(&self) -> &'static str {
        "batch-norm-grad-sums"
    }

    fn forward(&self, [x, g]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let (n, c, h, w) = x.shape.dims4()?;
        if x.shape != g.shape || self.scale.len() != c {
            bail!(
                "batch_norm backward: gradient {:?} does not fit input {:?}",
                g.shape,
                x.shape
            );
        }
        let (x, g) = (x.data, g.data);
        let sums = with_scalar!(self.act, F => channel_sums(x, g, (n, c, h * w), |ch, xv, gv| {
            let dz = F::backward(xv * self.scale[ch] + self.shift[ch], gv);
            (dz, dz * (xv - self.mean[ch]) * self.inv_std[ch])
        }));
        let mut out = vec![0f32; 2 * c];
        for (ch, &(a, b)) in sums.iter().enumerate() {
            out[ch] = a as f32;
            out[c + ch] = b as f32;
        }
        Ok((out, Shape::from((2, c))))
    }
}

impl Kernel<3> for BatchNormGrad {
    fn name(&self) -> &'static str {
        "batch-norm-grad-input"
    }

    fn forward(&self, [x, g, sums]: [Operand<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let (n, c, h, w) = x.shape.dims4()?;
        let hw = h * w;
        if x.shape != g.shape || sums.shape.dims() != [2, c] || self.scale.len() != c {
            bail!(
                "batch_norm backward: shapes {:?}, {:?}, {:?} do not fit",
                x.shape,
                g.shape,
                sums.shape
            );
        }
        let (shape, x, g, sums) = (x.shape, x.data, g.data, sums.data);
        let count = (n * hw) as f32;
        let mut out = super::uninit(x.len());
        let per_task = planes_per_task(hw);
        let tasks = out.par_chunks_mut(hw * per_task).enumerate();
        with_scalar!(self.act, F => tasks.for_each(|(task, outs)| simd::wide(#[inline(always)] || {
            for (i, o) in outs.chunks_exact_mut(hw).enumerate() {
                let p = task * per_task + i;
                let ch = p % c;
                let (a, b, m, s) = (
                    self.scale[ch],
                    self.shift[ch],
                    self.mean[ch],
                    self.inv_std[ch],
                );
                // With batch statistics, the mean and variance depend on every input too:
                // dx = scale * (dz - mean(dz) - xhat * mean(dz * xhat)).
                let (mdz, mdzx) = if self.train {
                    (sums[ch] / count, sums[c + ch] / count)
                } else {
                    (0.0, 0.0)
                };
                let range = p * hw..(p + 1) * hw;
                for ((o, &xv), &gv) in o.iter_mut().zip(&x[range.clone()]).zip(&g[range]) {
                    let dz = F::backward(xv * a + b, gv);
                    o.write(a * (dz - mdz - (xv - m) * s * mdzx));
                }
            }
        })));
        // SAFETY: every task's chunk is a whole number of `hw`-sized planes, each written in full.
        let out = unsafe { super::assume_init(out) };
        Ok((out, shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{Activation, batch_norm_eval, batch_norm_train, builtin, test_util::*};
    use candle_core::Var;

    const ACTS: [Activation; 3] = [Activation::Identity, Activation::Relu6, Activation::Silu];

    /// Output, statistics and the three gradients against the composed candle ops; the input
    /// has a large mean to exercise the shifted variance.
    #[test]
    fn train_matches_candle() {
        let x = Var::from_tensor(&((random(&[3, 4, 5, 6], 31) * 3.0).unwrap() + 20.0).unwrap())
            .unwrap();
        let gamma = Var::from_tensor(&random(&[4], 32)).unwrap();
        let beta = Var::from_tensor(&(random(&[4], 33) * 3.0).unwrap()).unwrap();
        let up = random(&[3, 4, 5, 6], 34);
        for act in ACTS {
            let (a, sa) = batch_norm_train(&x, &gamma, &beta, 1e-3, act).unwrap();
            let (b, sb) = builtin::batch_norm_train(&x, &gamma, &beta, 1e-3, act).unwrap();
            assert_close(&a, &b, 1e-4);
            assert_close(&sa.mean, &sb.mean, 1e-5);
            assert_close(&sa.var, &sb.var, 1e-4);
            assert_same_grads(&a, &b, &up, &[&x, &gamma, &beta], 1e-4);
        }
    }

    #[test]
    fn eval_matches_candle() {
        let x = Var::from_tensor(&(random(&[2, 3, 4, 5], 41) * 4.0).unwrap()).unwrap();
        let gamma = Var::from_tensor(&random(&[3], 42)).unwrap();
        let beta = Var::from_tensor(&random(&[3], 43)).unwrap();
        let mean = random(&[3], 44);
        let var = (random(&[3], 45).abs().unwrap() + 0.5).unwrap();
        let up = random(&[2, 3, 4, 5], 46);
        for act in ACTS {
            let a = batch_norm_eval(&x, &gamma, &beta, &mean, &var, 1e-5, act).unwrap();
            let b = builtin::batch_norm_eval(&x, &gamma, &beta, &mean, &var, 1e-5, act).unwrap();
            assert_close(&a, &b, 1e-4);
            assert_same_grads(&a, &b, &up, &[&x, &gamma, &beta], 1e-4);
        }
    }

    #[test]
    fn rejects_wrong_parameter_count() {
        let x = random(&[1, 3, 2, 2], 51);
        let p = random(&[4], 52);
        assert!(batch_norm_train(&x, &p, &p, 1e-5, Activation::Identity).is_err());
    }
}
