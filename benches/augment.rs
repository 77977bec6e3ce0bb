//! Augmentation throughput: images/s of FixMatch's weak and strong views on RGB batches of the
//! sizes training uses (176 images at 96x96, 32 at 224x224), and the augmentation time of one
//! FixMatch step at 96x96 (16 labelled + 80 unlabelled weak views, 80 strong views).
//!
//! `cargo bench --bench augment`. Images are synthetic (a smooth pattern plus noise): the
//! ops' cost does not depend on content. The baseline in the same run is core's
//! `IdentityAugmenter` (a copy of the batch), so figures can be read as ratios to a copy
//! when the machine is shared.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use anomalymatch_augment::FixMatchAugmenter;
use anomalymatch_core::{Augmenter, IdentityAugmenter, ImageBatch};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

fn batch(n: usize, side: usize) -> ImageBatch {
    let mut rng = StdRng::seed_from_u64(0);
    let mut data = Vec::with_capacity(n * 3 * side * side);
    for i in 0..n * 3 {
        for y in 0..side {
            for x in 0..side {
                let wave = ((x + i) as f32 * 0.1).sin() * ((y as f32) * 0.07).cos();
                data.push((0.5 + 0.3 * wave + 0.1 * rng.random::<f32>()).clamp(0.0, 1.0));
            }
        }
    }
    ImageBatch::from_vec(data, 3, side, side).expect("whole images")
}

fn views(c: &mut Criterion) {
    let aug = FixMatchAugmenter::fixmatch();
    let mut group = c.benchmark_group("augment");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (side, n) in [(96, 176), (224, 32)] {
        let images = batch(n, side);
        group.throughput(Throughput::Elements(n as u64));
        let id = format!("{side}x{side}x{n}");
        group.bench_with_input(BenchmarkId::new("copy", &id), &images, |b, im| {
            b.iter(|| black_box(IdentityAugmenter.weak(im, 1).expect("copy")))
        });
        group.bench_with_input(BenchmarkId::new("weak", &id), &images, |b, im| {
            b.iter(|| black_box(aug.weak(im, 1).expect("weak view")))
        });
        group.bench_with_input(BenchmarkId::new("strong", &id), &images, |b, im| {
            b.iter(|| black_box(aug.strong(im, 1).expect("strong view")))
        });
    }
    // One FixMatch step's augmentation at 96x96: 96 weak views, 80 strong views.
    let weak_in = batch(16 + 80, 96);
    let strong_in = batch(80, 96);
    group.throughput(Throughput::Elements(176));
    group.bench_function("fixmatch_step_96", |b| {
        b.iter(|| {
            black_box(aug.weak(&weak_in, 2).expect("weak view"));
            black_box(aug.strong(&strong_in, 3).expect("strong view"));
        })
    });
    group.finish();
}

criterion_group!(benches, views);
criterion_main!(benches);
