//! Depthwise convolution: our CPU kernel vs candle's grouped `conv2d`, on EfficientNet-Lite0's
//! depthwise layers for a 96x96 input (`cargo bench --bench depthwise`).

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use anomalymatch_models::efficientnet::Padding;
use anomalymatch_models::ops::{self, builtin};
use candle_core::{Result, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};

/// `(channels, size, kernel, stride)` of Lite0's depthwise layers at 96x96 input
/// (stem stride 2 gives 48x48, then stage strides 1, 2, 2, 2, 1, 2, 1).
const LAYERS: [(usize, usize, usize, usize); 8] = [
    (32, 48, 3, 1),
    (96, 48, 3, 2),
    (144, 24, 5, 2),
    (240, 12, 5, 1),
    (240, 12, 3, 2),
    (480, 6, 5, 1),
    (672, 6, 5, 2),
    (1152, 3, 3, 1),
];

fn bench(c: &mut Criterion) {
    let mut cases: Vec<(usize, (usize, usize, usize, usize))> =
        LAYERS.iter().map(|&l| (common::BATCH, l)).collect();
    // The FixMatch batch on the largest and a late layer, where a run stays short.
    cases.push((common::FIXMATCH_BATCH, LAYERS[0]));
    cases.push((common::FIXMATCH_BATCH, LAYERS[5]));
    for (n, (ch, size, k, s)) in cases {
        let shape = format!("n{n}_{ch}x{size}x{size}_k{k}s{s}");
        let x = Var::from_tensor(&common::randn(&[n, ch, size, size])).unwrap();
        let w = Var::from_tensor(&common::randn(&[ch, 1, k, k])).unwrap();
        // As the model pads: TensorFlow's SAME at the native resolution, where these layers'
        // sizes are even too (so the odd pixel of stride 2 goes after, as here).
        let Padding { before, after } = Padding::same(size, k, s);
        let pad = (before, after);
        let dw = |f: fn(&Tensor, &Tensor, usize, (usize, usize)) -> Result<Tensor>| {
            move |x: &_, w: Option<&_>| f(x, w.unwrap(), s, pad)
        };
        common::fwd_and_bwd(
            c,
            "depthwise",
            "ours",
            &shape,
            &x,
            Some(&w),
            dw(ops::depthwise_conv2d),
        );
        // candle's backward at batch 176 takes tens of seconds per call (its cost grows with
        // C^2 * N); its forward alone gives the ratio there.
        let candle = if n == common::BATCH {
            common::fwd_and_bwd
        } else {
            common::fwd_only
        };
        candle(
            c,
            "depthwise",
            "candle",
            &shape,
            &x,
            Some(&w),
            dw(builtin::depthwise_conv2d),
        );
    }
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
