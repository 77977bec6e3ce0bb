//! ReLU6 and SiLU: our fused kernels vs candle's composed ops, on the largest expanded
//! activation of EfficientNet-Lite0 at 96x96 and a late one (`cargo bench --bench activation`).

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use anomalymatch_models::ops::{self, builtin};
use candle_core::{Result, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};

/// `(channels, size)`: the first expanded layer (96ch at 48x48) and a late one (1152ch at 3x3).
const SHAPES: [(usize, usize); 2] = [(96, 48), (1152, 3)];

fn bench(c: &mut Criterion) {
    type Act = fn(&Tensor) -> Result<Tensor>;
    let kinds: [(&str, Act, Act); 2] = [
        ("relu6", ops::relu6, builtin::relu6),
        ("silu", ops::silu, builtin::silu),
    ];
    for (name, ours, theirs) in kinds {
        for (ch, size) in SHAPES {
            let shape = format!("n{}_{ch}x{size}x{size}", common::BATCH);
            let x = Var::from_tensor(&common::randn(&[common::BATCH, ch, size, size])).unwrap();
            common::fwd_and_bwd(c, name, "ours", &shape, &x, None, move |x, _| ours(x));
            common::fwd_and_bwd(c, name, "candle", &shape, &x, None, move |x, _| theirs(x));
        }
    }
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
