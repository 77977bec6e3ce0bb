//! Whole FixMatch steps of the GZ1 protocol's shape (16 labelled + 80 weak + 80 strong views at
//! 96x96, pretrained Lite0) with the next step's sampling and augmentation overlapped on another
//! thread, against the same steps done one after the other.

// criterion's macros generate undocumented functions; a bench may panic on failure.
#![allow(missing_docs, clippy::unwrap_used)]

use anomalymatch::augment::FixMatchAugmenter;
use anomalymatch::core::fixmatch::TrainData;
use anomalymatch::core::{Check, DataConfig, ImageBatch, ImageStore, Label, TrainConfig};
use anomalymatch::models::{ModelConfig, ModelInput};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use std::time::Duration;

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

/// Steps per measured call: the overlap only shows from the second step of a `fit` on.
const STEPS: usize = 4;

fn images(n: usize, seed: u64) -> ImageStore {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = (0..n * 3 * 96 * 96).map(|_| rng.random::<f32>()).collect();
    ImageStore::quantize(&ImageBatch::from_vec(data, 3, 96, 96).unwrap())
}

fn bench(c: &mut Criterion) {
    // SAFETY: criterion has started no thread yet.
    unsafe { anomalymatch::threads::one_candle_thread() };
    anomalymatch::allocator::keep_freed_pages();
    let labelled = images(100, 1);
    let labels: Vec<Label> = (0..100)
        .map(|i| {
            if i < 10 {
                Label::Anomaly
            } else {
                Label::Normal
            }
        })
        .collect();
    let unlabelled = images(1000, 2);
    let data = TrainData {
        labelled: &labelled,
        labels: &labels,
        unlabelled: &unlabelled,
    };
    let mut g = c.benchmark_group("fixmatch-step");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(60))
        .throughput(Throughput::Elements(STEPS as u64));
    for (label, overlap) in [("overlapped", true), ("sequential", false)] {
        let input = ModelInput {
            in_channels: 3,
            num_classes: Label::CLASSES,
            seed: 7,
        };
        let model = ModelConfig::default()
            .check()
            .unwrap()
            .build(input)
            .unwrap();
        let mut trainer = TrainConfig::default()
            .check()
            .unwrap()
            .build((
                model,
                FixMatchAugmenter::fixmatch(),
                DataConfig::default().spec(),
                7,
            ))
            .unwrap();
        trainer.set_overlap(overlap);
        g.bench_function(label, |b| {
            b.iter(|| trainer.fit(&data, STEPS, &mut |_| {}).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
