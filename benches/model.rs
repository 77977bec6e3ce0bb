//! EfficientNet-Lite0 end to end on the CPU at 96x96: inference (batch 256) and a FixMatch-sized
//! training step (16 labelled + 80 weak + 80 strong = 176 images: forward, backward, SGD), with
//! our kernels, and candle's built-in path as the baseline at batch 16 (its depthwise backward
//! grows with channels squared, so a full-size step would take minutes).

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

use anomalymatch::core::optim::{Sgd, SgdConfig};
use anomalymatch::core::{Check, Classifier};
use anomalymatch::models::{EfficientNet, EfficientNetConfig, ops};
use candle_core::{Device, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

const SIZE: usize = 96;

fn model() -> EfficientNet {
    EfficientNetConfig::lite0()
        .with_num_classes(anomalymatch::core::Label::CLASSES)
        .check()
        .unwrap()
        .build(&Device::Cpu)
        .unwrap()
}

fn images(n: usize) -> Tensor {
    Tensor::rand(0f32, 1f32, (n, 3, SIZE, SIZE), &Device::Cpu).unwrap()
}

/// Alternating class labels for `n` images.
fn labels(n: usize) -> Tensor {
    Tensor::from_vec(
        (0..n as u32).map(|i| i % 2).collect::<Vec<_>>(),
        n,
        &Device::Cpu,
    )
    .unwrap()
}

fn train_step(model: &EfficientNet, opt: &mut Sgd, x: &Tensor, y: &Tensor) {
    let logits = model.forward_t(x, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
    opt.step(&loss.backward().unwrap(), 0.0075).unwrap();
}

/// Ours runs as the examples do ([`anomalymatch::threads::one_candle_thread`]); candle's path
/// keeps all its threads, since its convolutions run on candle's pool.
fn candle_threads(all: bool) {
    // SAFETY: benchmarks run on this thread; the worker threads of rayon and candle never read
    // the environment, and candle reads `CANDLE_NUM_THREADS` here, on the calling thread.
    unsafe {
        if all {
            std::env::remove_var("CANDLE_NUM_THREADS");
        } else {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
    }
}

fn bench(c: &mut Criterion) {
    anomalymatch::allocator::keep_freed_pages();
    let mut g = c.benchmark_group("lite0-96px");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    let sgd = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 7.5e-4,
    };
    for (label, builtin, infer_n, train_n) in [("ours", false, 256, 176), ("candle", true, 16, 16)]
    {
        ops::use_builtin_kernels(builtin);
        candle_threads(builtin);
        let m = model();
        let x = images(infer_n);
        g.throughput(Throughput::Elements(infer_n as u64));
        g.bench_function(format!("inference-{infer_n}/{label}"), |b| {
            b.iter(|| m.forward_t(&x, false).unwrap())
        });
        let x = images(train_n);
        let y = labels(train_n);
        let mut opt = Sgd::new(m.variables(), sgd);
        g.throughput(Throughput::Elements(train_n as u64));
        g.bench_function(format!("train-step-{train_n}/{label}"), |b| {
            b.iter(|| train_step(&m, &mut opt, &x, &y))
        });
        if !builtin {
            // Our kernels at the baseline's batch too, for a like-for-like ratio.
            let x = images(16);
            let y = labels(16);
            g.throughput(Throughput::Elements(16));
            g.bench_function("inference-16/ours", |b| {
                b.iter(|| m.forward_t(&x, false).unwrap())
            });
            g.bench_function("train-step-16/ours", |b| {
                b.iter(|| train_step(&m, &mut opt, &x, &y))
            });
        }
    }
    ops::use_builtin_kernels(false);
    g.finish();
    flop_rates(&sgd);
    op_times(&sgd);
}

/// Seconds per call of `f`: the best of five, after one warm-up call.
fn best_seconds(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Achieved GFLOP/s of our inference and training step, as a share of a large matrix
/// product's on all cores (the practical peak of this machine, timed in the same run).
fn flop_rates(sgd: &SgdConfig) {
    candle_threads(true);
    let a = Tensor::rand(0f32, 1f32, (2048, 2048), &Device::Cpu).unwrap();
    let peak = 2.0 * 2048f64.powi(3) / best_seconds(|| drop(a.matmul(&a).unwrap())) / 1e9;
    candle_threads(false);
    let m = model();
    let flops = m.forward_flops(SIZE).unwrap() as f64;
    let x = images(256);
    let infer = 256.0 * flops / best_seconds(|| drop(m.forward_t(&x, false).unwrap())) / 1e9;
    let (x, y) = (images(176), labels(176));
    let mut opt = Sgd::new(m.variables(), *sgd);
    // Backward costs about two forward passes: gradients wrt the inputs and wrt the weights.
    let train = 3.0 * 176.0 * flops / best_seconds(|| train_step(&m, &mut opt, &x, &y)) / 1e9;
    println!(
        "lite0-96px: {:.3} GFLOP per image; matmul-2048 peak {peak:.0} GFLOP/s; \
         inference-256 {infer:.0} GFLOP/s ({:.0}% of peak); train-step-176 {train:.0} GFLOP/s \
         ({:.0}% of peak)",
        flops / 1e9,
        100.0 * infer / peak,
        100.0 * train / peak
    );
}

/// Where a 176-image training step's time goes: each of our kernels, forward and backward
/// (exclusive times, `ops::timing`), and the rest (candle's own ops, the optimiser, the loss).
fn op_times(sgd: &SgdConfig) {
    const STEPS: u32 = 3;
    let m = model();
    let (x, y) = (images(176), labels(176));
    let mut opt = Sgd::new(m.variables(), *sgd);
    train_step(&m, &mut opt, &x, &y);
    ops::timing::enable(true);
    let start = std::time::Instant::now();
    for _ in 0..STEPS {
        train_step(&m, &mut opt, &x, &y);
    }
    let step = start.elapsed().as_secs_f64() / f64::from(STEPS);
    ops::timing::enable(false);
    let rows = ops::timing::take();
    println!(
        "train-step-176 per op, ms per step (share of {:.0} ms):",
        1e3 * step
    );
    let mut ours = 0.0;
    for r in &rows {
        let ms = 1e3 * r.seconds / f64::from(STEPS);
        ours += ms;
        let pass = if r.backward { "backward" } else { "forward" };
        println!(
            "  {:<28} {pass:<8} {ms:8.1} ({:4.1}%)",
            r.name,
            100.0 * ms / (1e3 * step)
        );
    }
    let rest = 1e3 * step - ours;
    println!(
        "  {:<37} {rest:8.1} ({:4.1}%)",
        "candle's ops and the rest",
        100.0 * rest / (1e3 * step)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
