//! 1x1 convolution: our gemm kernel vs candle's `conv2d` and vs candle's batched `matmul` with
//! a broadcast weight, on EfficientNet-Lite0's expansion, projection and head layers for a
//! 96x96 input (`cargo bench --bench pointwise`).

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use anomalymatch_models::ops::{self, builtin};
use candle_core::{Result, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};

/// `(in, out, size)` of Lite0's 1x1 convolutions at 96x96 input.
const LAYERS: [(usize, usize, usize); 8] = [
    (32, 16, 48),
    (16, 96, 48),
    (96, 24, 24),
    (144, 24, 24),
    (240, 80, 6),
    (480, 112, 6),
    (1152, 320, 3),
    (320, 1280, 3),
];

/// The 1x1 convolution as candle's broadcast batched matmul on `[N, Cin, HW]` views.
fn candle_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, cin, h, wd) = x.dims4()?;
    let cout = w.dim(0)?;
    let w = w.reshape((1, cout, cin))?.broadcast_as((n, cout, cin))?;
    w.matmul(&x.reshape((n, cin, h * wd))?)?
        .reshape((n, cout, h, wd))
}

fn bench(c: &mut Criterion) {
    let mut cases: Vec<(usize, (usize, usize, usize))> =
        LAYERS.iter().map(|&l| (common::BATCH, l)).collect();
    cases.push((common::FIXMATCH_BATCH, LAYERS[1]));
    cases.push((common::FIXMATCH_BATCH, LAYERS[6]));
    for (n, (cin, cout, size)) in cases {
        let shape = format!("n{n}_{cin}to{cout}@{size}x{size}");
        let x = Var::from_tensor(&common::randn(&[n, cin, size, size])).unwrap();
        let w = Var::from_tensor(&common::randn(&[cout, cin, 1, 1])).unwrap();
        let pw = |f: fn(&Tensor, &Tensor) -> Result<Tensor>| {
            move |x: &Tensor, w: Option<&Tensor>| f(x, w.unwrap())
        };
        common::fwd_and_bwd(
            c,
            "pointwise",
            "ours",
            &shape,
            &x,
            Some(&w),
            pw(ops::pointwise_conv2d),
        );
        common::fwd_and_bwd(
            c,
            "pointwise",
            "candle",
            &shape,
            &x,
            Some(&w),
            pw(builtin::pointwise_conv2d),
        );
        common::fwd_and_bwd(
            c,
            "pointwise",
            "candle-matmul",
            &shape,
            &x,
            Some(&w),
            pw(candle_matmul),
        );
    }
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
