//! Batch norm fused with ReLU6: our kernel vs candle's broadcast ops, in training and inference
//! mode, on EfficientNet-Lite0 activations at 96x96 input (`cargo bench --bench batch_norm`).

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use anomalymatch_models::ops::{self, Activation, builtin};
use candle_core::{Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};

/// `(channels, size)`: the first expanded layer (96ch at 48x48) and a late one (1152ch at 3x3).
const SHAPES: [(usize, usize); 2] = [(96, 48), (1152, 3)];

fn bench(c: &mut Criterion) {
    for (ch, size) in SHAPES {
        let shape = format!("n{}_{ch}x{size}x{size}", common::BATCH);
        let x = Var::from_tensor(&common::randn(&[common::BATCH, ch, size, size])).unwrap();
        let gamma = Var::from_tensor(&common::randn(&[ch])).unwrap();
        let beta = Var::from_tensor(&common::randn(&[ch])).unwrap();
        let (mean, var) = (common::randn(&[ch]), common::randn(&[ch]).abs().unwrap());
        let (g, b) = (gamma.as_tensor(), beta.as_tensor());
        let act = Activation::Relu6;
        let train =
            |x: &Tensor, _: Option<&Tensor>| Ok(ops::batch_norm_train(x, g, b, 1e-3, act)?.0);
        let train_c =
            |x: &Tensor, _: Option<&Tensor>| Ok(builtin::batch_norm_train(x, g, b, 1e-3, act)?.0);
        let eval =
            |x: &Tensor, _: Option<&Tensor>| ops::batch_norm_eval(x, g, b, &mean, &var, 1e-3, act);
        let eval_c = |x: &Tensor, _: Option<&Tensor>| {
            builtin::batch_norm_eval(x, g, b, &mean, &var, 1e-3, act)
        };
        common::fwd_and_bwd(c, "bn-relu6-train", "ours", &shape, &x, None, train);
        common::fwd_and_bwd(c, "bn-relu6-train", "candle", &shape, &x, None, train_c);
        common::fwd_and_bwd(c, "bn-relu6-eval", "ours", &shape, &x, None, eval);
        common::fwd_and_bwd(c, "bn-relu6-eval", "candle", &shape, &x, None, eval_c);
    }
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
