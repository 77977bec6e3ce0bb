//! Parallel per-image processing with per-image random generators.

use anomalymatch_core::ImageBatch;
use anomalymatch_core::rng::item_rng;
use rand::rngs::StdRng;
use rayon::prelude::*;

/// Copies `images` and runs `f` on each copy's values in parallel, with image `i`'s generator
/// `item_rng(seed, stream, i)` and a per-thread scratch buffer (whose contents `f` must not rely
/// on), so the result is the same whatever the number of threads.
pub(crate) fn map_images<F>(images: &ImageBatch, seed: u64, stream: u64, f: F) -> ImageBatch
where
    F: Fn(&mut [f32], &mut StdRng, &mut Vec<f32>) + Sync,
{
    let mut out = images.clone();
    let per = out.image_len();
    if out.is_empty() || per == 0 {
        return out;
    }
    out.as_mut_slice()
        .par_chunks_mut(per)
        .enumerate()
        .for_each_init(Vec::new, |scratch, (i, img)| {
            let mut rng = item_rng(seed, stream, i as u64);
            f(img, &mut rng, scratch);
        });
    out
}
