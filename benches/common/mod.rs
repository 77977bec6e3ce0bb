//! Shared set-up for the op benches: inputs, criterion settings, and the fwd / fwd+bwd pair
//! that every op is measured with.
//!
//! The build machine has 2 cores shared with other jobs, so settings are short and figures are
//! noisy; compare ratios within one run, not absolute times across runs.

#![allow(dead_code, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Result, Tensor, Var};
use criterion::{Criterion, SamplingMode};

/// The training batch of the speed targets; inputs are 96x96, so the stem leaves 48x48.
pub const BATCH: usize = 16;
/// The FixMatch batch (labelled + 7x unlabelled, weak and strong views).
pub const FIXMATCH_BATCH: usize = 176;

/// Short runs: ten samples, a second of warm-up, a few seconds of measurement.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// A standard-normal f32 tensor on the CPU.
pub fn randn(dims: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1f32, dims, &Device::Cpu).unwrap()
}

/// Benchmarks `op(x, w)` forward alone (group `{group}/fwd`), under `name` (which
/// implementation) and `shape`.
pub fn fwd_only(
    c: &mut Criterion,
    group: &str,
    name: &str,
    shape: &str,
    x: &Var,
    w: Option<&Var>,
    op: impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
) {
    let wt = w.map(|w| w.as_tensor());
    c.benchmark_group(format!("{group}/fwd"))
        // Flat sampling: candle's slow paths take seconds per call, and linear sampling would
        // run 55 calls for 10 samples.
        .sampling_mode(SamplingMode::Flat)
        .bench_function(format!("{name}/{shape}"), |b| {
            b.iter(|| black_box(op(x.as_tensor(), wt).unwrap()))
        });
}

/// Benchmarks `op(x, w)` forward alone (group `{group}/fwd`) and forward plus backward into
/// both inputs (`{group}/fwd+bwd`), under `name` (which implementation) and `shape`.
pub fn fwd_and_bwd(
    c: &mut Criterion,
    group: &str,
    name: &str,
    shape: &str,
    x: &Var,
    w: Option<&Var>,
    op: impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
) {
    let id = format!("{name}/{shape}");
    let wt = w.map(|w| w.as_tensor());
    c.benchmark_group(format!("{group}/fwd"))
        .bench_function(&id, |b| {
            b.iter(|| black_box(op(x.as_tensor(), wt).unwrap()))
        });
    // candle's own backward refuses some shapes; say so rather than abort the whole run.
    if let Err(e) = op(x.as_tensor(), wt).and_then(|y| y.backward()) {
        eprintln!("{id}: backward unavailable: {e}");
        return;
    }
    c.benchmark_group(format!("{group}/fwd+bwd"))
        .bench_function(&id, |b| {
            b.iter(|| black_box(op(x.as_tensor(), wt).unwrap().backward().unwrap()))
        });
}

/// Which implementation of the ops an [`MbConv`] step runs on.
#[derive(Clone, Copy)]
pub enum Impl {
    /// `anomalymatch_models::ops`, our kernels on the CPU.
    Ours,
    /// `anomalymatch_models::ops::builtin`, candle's own ops.
    Candle,
}

/// Two inverted-residual blocks of EfficientNet-Lite0 at 96x96 input (16ch@48x48 expanded
/// to 96, depthwise 3x3 stride 2, projected to 24; then 24 -> 144 -> 24 at 24x24 with the
/// skip connection): a training step's mix of ops and buffer sizes.
pub struct MbConv {
    x: Tensor,
    params: Vec<Var>,
}

impl MbConv {
    /// Random input of batch `n` and random weights.
    pub fn new(n: usize) -> Self {
        let shapes: [&[usize]; 12] = [
            &[96, 16, 1, 1],
            &[96],
            &[96, 1, 3, 3],
            &[96],
            &[24, 96, 1, 1],
            &[24],
            &[144, 24, 1, 1],
            &[144],
            &[144, 1, 3, 3],
            &[144],
            &[24, 144, 1, 1],
            &[24],
        ];
        let params = shapes
            .iter()
            .map(|s| Var::from_tensor(&(randn(s) * 0.1).unwrap()).unwrap())
            .collect();
        Self {
            x: randn(&[n, 16, 48, 48]),
            params,
        }
    }

    /// Forward and backward of both blocks (batch norms in training mode; each batch norm's
    /// shift is its parameter, its scale is one).
    pub fn step(&self, which: Impl) -> Result<()> {
        use anomalymatch_models::ops::{self, Activation, builtin};
        let p = |i: usize| self.params[i].as_tensor();
        let ones = |i: usize| Tensor::ones(p(i).dims(), p(i).dtype(), p(i).device());
        let bn = |x: &Tensor, i: usize, act: Activation| -> Result<Tensor> {
            match which {
                Impl::Ours => Ok(ops::batch_norm_train(x, &ones(i)?, p(i), 1e-3, act)?.0),
                Impl::Candle => Ok(builtin::batch_norm_train(x, &ones(i)?, p(i), 1e-3, act)?.0),
            }
        };
        type Pointwise = fn(&Tensor, &Tensor) -> Result<Tensor>;
        type Depthwise = fn(&Tensor, &Tensor, usize, (usize, usize)) -> Result<Tensor>;
        let (pw, dw): (Pointwise, Depthwise) = match which {
            Impl::Ours => (ops::pointwise_conv2d, ops::depthwise_conv2d),
            Impl::Candle => (builtin::pointwise_conv2d, builtin::depthwise_conv2d),
        };
        let h = bn(&pw(&self.x, p(0))?, 1, Activation::Relu6)?;
        let h = bn(&dw(&h, p(2), 2, (0, 1))?, 3, Activation::Relu6)?;
        let skip = bn(&pw(&h, p(4))?, 5, Activation::Identity)?;
        let h = bn(&pw(&skip, p(6))?, 7, Activation::Relu6)?;
        let h = bn(&dw(&h, p(8), 1, (1, 1))?, 9, Activation::Relu6)?;
        let y = (bn(&pw(&h, p(10))?, 11, Activation::Identity)? + skip)?;
        y.sum_all()?.backward()?;
        Ok(())
    }
}

/// Minor page faults of this process so far (Linux; `None` elsewhere): each is a fresh page
/// the kernel had to zero before handing it over.
pub fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is the 3rd field, minflt the 10th.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Benchmarks [`MbConv::step`] under `id` and prints the minor page faults per step.
pub fn bench_mbconv(c: &mut Criterion, group: &str, id: &str, block: &MbConv, which: Impl) {
    block.step(which).unwrap();
    let before = minor_faults();
    let steps = 5;
    for _ in 0..steps {
        block.step(which).unwrap();
    }
    if let (Some(a), Some(b)) = (before, minor_faults()) {
        eprintln!(
            "{group}/{id}: {} minor page faults per step",
            (b - a) / steps
        );
    }
    c.benchmark_group(group)
        .sampling_mode(SamplingMode::Flat)
        .bench_function(id, |b| b.iter(|| block.step(which).unwrap()));
}
