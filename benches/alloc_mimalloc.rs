//! A training step of two Lite0 blocks on mimalloc, with its default page purging and with
//! freed pages kept ([`anomalymatch::allocator::keep_freed_pages`]). Compare with
//! `alloc_system`.

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Impl, MbConv};
use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

fn bench(c: &mut Criterion) {
    let block = MbConv::new(common::BATCH);
    common::bench_mbconv(c, "mbconv-step", "mimalloc/ours", &block, Impl::Ours);
    anomalymatch::allocator::keep_freed_pages();
    common::bench_mbconv(c, "mbconv-step", "mimalloc-keep/ours", &block, Impl::Ours);
}

criterion_group! { name = benches; config = common::criterion(); targets = bench }
criterion_main!(benches);
