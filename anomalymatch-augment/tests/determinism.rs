//! Seeded, reproducible, thread-count independent augmentation through core's `Augmenter`.

use anomalymatch_augment::{FixMatchAugmenter, Op, OpSpec, RandAugment, WeakAugment, WeakConfig};
use anomalymatch_core::{Augmenter, Error, ImageBatch, ImageStore};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn noise(n: usize, c: usize, h: usize, w: usize) -> ImageBatch {
    let mut rng = StdRng::seed_from_u64(11);
    let data = (0..n * c * h * w).map(|_| rng.random::<f32>()).collect();
    ImageBatch::from_vec(data, c, h, w).expect("whole images")
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}

#[test]
fn same_seed_same_output_whatever_the_thread_count() {
    for (aug, channels) in [
        (FixMatchAugmenter::fixmatch(), 3),
        (FixMatchAugmenter::fixmatch(), 1),
        (FixMatchAugmenter::astro(), 5),
    ] {
        let images = noise(24, channels, 20, 20);
        let run = |threads| {
            in_pool(threads, || {
                (
                    aug.weak(&images, 7).unwrap(),
                    aug.strong(&images, 7).unwrap(),
                )
            })
        };
        let (w1, s1) = run(1);
        let (w2, s2) = run(2);
        let bits = |b: &ImageBatch| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&w1), bits(&w2));
        assert_eq!(bits(&s1), bits(&s2));
        assert_ne!(w1, images, "the weak view changes something");
        assert_ne!(s1, images, "the strong view changes something");
        assert_ne!(
            aug.weak(&images, 8).unwrap(),
            w1,
            "another seed, another view"
        );
        assert_ne!(
            aug.strong(&images, 8).unwrap(),
            s1,
            "another seed, another view"
        );
        // Images of one batch get different draws.
        assert_ne!(s1.image(0), s1.image(1));
    }
}

#[test]
fn views_stay_in_range() {
    let images = noise(64, 3, 16, 16);
    for aug in [FixMatchAugmenter::fixmatch(), FixMatchAugmenter::astro()] {
        for seed in 0..4 {
            for out in [
                aug.weak(&images, seed).unwrap(),
                aug.strong(&images, seed).unwrap(),
            ] {
                assert!(out.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
                assert_eq!(out.len(), images.len());
            }
        }
    }
}

#[test]
fn every_op_runs_on_any_channel_count() {
    let all = [Op::FIXMATCH.as_slice(), &[Op::FlipH, Op::FlipV, Op::Rot90]].concat();
    for channels in [1, 2, 3, 4, 7] {
        let images = noise(3, channels, 9, 9);
        for op in &all {
            let (_, hi) = op.fixmatch_range();
            let out = op.apply_to(hi, &images).unwrap();
            assert_eq!(out.channels(), channels);
            assert!(out.as_slice().iter().all(|v| v.is_finite()), "{op:?}");
        }
    }
}

#[test]
fn u8_images_through_the_augmenter() {
    let levels: Vec<u8> = (0..2 * 3 * 8 * 8).map(|i| (i * 7 % 256) as u8).collect();
    let images = ImageStore::from_vec(levels.clone(), 3, 8, 8)
        .unwrap()
        .to_batch();
    // Posterize to 4 bits only: every output level has its low 4 bits clear.
    let strong = RandAugment::new(vec![OpSpec::new(Op::Posterize, 4.0, 4.0)], 2, None).unwrap();
    let out = ImageStore::quantize(&strong.apply(&images, 1).unwrap()).into_vec();
    assert!(out.iter().all(|v| v & 0x0f == 0));
    assert_eq!(out.len(), levels.len());
}

#[test]
fn errors_convert_into_core_invalid_argument() {
    let aug = FixMatchAugmenter::astro();
    let wide = ImageBatch::zeros(2, 3, 8, 12);
    match aug.weak(&wide, 0) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("square"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(aug.strong(&wide, 0).is_err());
    // FixMatch's own views work on any shape, and on an empty batch.
    let fm = FixMatchAugmenter::fixmatch();
    assert_eq!(fm.weak(&wide, 0).unwrap().len(), 2);
    assert!(
        fm.strong(&ImageBatch::zeros(0, 3, 8, 8), 0)
            .unwrap()
            .is_empty()
    );
    let err: Error = WeakAugment::new(WeakConfig {
        hflip: 2.0,
        ..WeakConfig::fixmatch()
    })
    .unwrap_err()
    .into();
    assert!(matches!(err, Error::InvalidArgument(_)));
}
