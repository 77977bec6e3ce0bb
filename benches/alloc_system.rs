//! A training step of two Lite0 blocks on the system allocator: ours vs candle's ops. Compare
//! with `alloc_mimalloc`, the same step on mimalloc (`cargo bench --bench alloc_system --bench
//! alloc_mimalloc`); the global allocator is per binary, hence two benches.

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Impl, MbConv};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let block = MbConv::new(common::BATCH);
    common::bench_mbconv(c, "mbconv-step", "system/ours", &block, Impl::Ours);
    common::bench_mbconv(c, "mbconv-step", "system/candle", &block, Impl::Candle);
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
