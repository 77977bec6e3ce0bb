#![allow(clippy::unwrap_used)]
//! Integration tests of the sources on files written by h5py, astropy, Python's zipfile and
//! Pillow (`tests/fixtures/make_fixtures.py`). One test binary, so that it links once.

mod fits;
mod hdf5;
mod open;
mod robustness;
mod zip;

use anomalymatch_core::{
    ChannelMode, Check, DataConfig, ImageLoader, ImagePayload, ImageSource, SourceImage,
};
use std::path::{Path, PathBuf};

/// A file under `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// The fixtures' pixel pattern: image `i`, band `c`, row `y`, column `x` (6 rows, 8 columns).
pub fn pattern(i: usize, c: usize, y: usize, x: usize) -> f64 {
    (i * 37 + c * 80 + y * 8 + x) as f64
}

/// Reads the rest of `source` in chunks of at most `max`, checking each chunk's size.
pub fn drain(source: &mut dyn ImageSource, max: usize) -> Vec<SourceImage> {
    let mut all = Vec::new();
    loop {
        let chunk = source.next_chunk(max).unwrap();
        assert!(chunk.len() <= max, "chunk of {} for max {max}", chunk.len());
        if chunk.is_empty() {
            return all;
        }
        all.extend(chunk);
    }
}

/// The names of `items`.
pub fn names(items: &[SourceImage]) -> Vec<&str> {
    items.iter().map(|i| i.name.as_str()).collect()
}

/// Checks that an encoded payload is image `i` of the pattern, as 8-bit RGB (modulo 256):
/// exactly, or for `lossy` (JPEG) within a mean error of 10 levels.
pub fn assert_encoded_pattern(payload: &ImagePayload, i: usize, lossy: bool) {
    let ImagePayload::Encoded(bytes) = payload else {
        panic!("expected encoded bytes, got {payload:?}")
    };
    let image = image::load_from_memory(bytes).unwrap().to_rgb8();
    assert_eq!((image.width(), image.height()), (8, 6));
    let mut total_error = 0.0;
    for (x, y, pixel) in image.enumerate_pixels() {
        for c in 0..3 {
            let want = pattern(i, c, y as usize, x as usize) % 256.0;
            let got = f64::from(pixel.0[c]);
            assert!(
                lossy || got == want,
                "image {i} ({x},{y},{c}): {got} vs {want}"
            );
            total_error += (got - want).abs();
        }
    }
    let mean_error = total_error / (8.0 * 6.0 * 3.0);
    assert!(mean_error < 10.0, "image {i}: mean error {mean_error}");
}

/// A lenient loader of `size` pixels and `channels`.
pub fn loader(size: usize, channels: ChannelMode) -> ImageLoader {
    DataConfig {
        size,
        channels,
        chunk_size: 2,
        ..DataConfig::default()
    }
    .check()
    .unwrap()
    .build(())
    .unwrap()
}
