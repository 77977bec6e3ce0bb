//! Shared set-up for the op benches: inputs, criterion settings, and the fwd / fwd+bwd pair
//! that every op is measured with.
//!
//! The build machine has 2 cores shared with other jobs, so settings are short and figures are
//! noisy; compare ratios within one run, not absolute times across runs.

#![allow(dead_code, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Result, Tensor, Var};
use criterion::Criterion;

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
