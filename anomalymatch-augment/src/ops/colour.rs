//! Colour ops, following PIL's `ImageEnhance` and `ImageOps` definitions on `f32` values in `[0, 1]`.
//!
//! Channels: for 3-channel images "grey" is PIL's luminance
//! `L = 0.299 R + 0.587 G + 0.114 B`; for one channel it is the channel itself (so Color does
//! nothing, as in PIL's "L" mode); for any other count (2, 4, 5+ survey bands) it is the plain
//! mean of the channels, since no band weighting is universal. Every other op works on each
//! channel independently; a 4th channel is a band like the others, not alpha.
//!
//! Where PIL's semantics are 8-bit the value is quantised to the level `round(255 v)`:
//! Equalize (256-bin histogram, output levels), Posterize (bits of the level, output levels)
//! and Solarize (threshold compared with the level; the value kept or inverted is the unquantised
//! one). On 8-bit inputs these match PIL exactly. The blends (Brightness, Color, Contrast,
//! Sharpness) and AutoContrast stay continuous: PIL rounds its greyscale image, mean grey and
//! smoothed image to whole levels and truncates each result to a level, so for 8-bit inputs our
//! values lie within 1.5 levels of PIL's (usually above it by less than one).

use super::Dims;
use anomalymatch_core::Sample;

/// `degenerate + factor * (v - degenerate)`, clipped to `[0, 1]` as PIL clips extrapolation.
fn blend(degenerate: f32, v: f32, factor: f32) -> f32 {
    (degenerate + factor * (v - degenerate)).clamp(0.0, 1.0)
}

/// Writes the greyscale plane of `img` into `grey` (see the module docs per channel count).
fn greyscale(img: &[f32], dims: Dims, grey: &mut Vec<f32>) {
    let plane = dims.plane();
    grey.clear();
    match dims.c {
        1 => grey.extend_from_slice(&img[..plane]),
        3 => {
            let (r, rest) = img.split_at(plane);
            let (g, b) = rest.split_at(plane);
            grey.extend(
                r.iter()
                    .zip(g)
                    .zip(b)
                    .map(|((r, g), b)| 0.299 * r + 0.587 * g + 0.114 * b),
            );
        }
        c => {
            grey.resize(plane, 0.0);
            for ch in img.chunks_exact(plane) {
                for (s, v) in grey.iter_mut().zip(ch) {
                    *s += v;
                }
            }
            let inv = 1.0 / c as f32;
            grey.iter_mut().for_each(|s| *s *= inv);
        }
    }
}

/// PIL `ImageEnhance.Brightness`: blend with black.
pub(crate) fn brightness(img: &mut [f32], factor: f32) {
    img.iter_mut().for_each(|v| *v = blend(0.0, *v, factor));
}

/// PIL `ImageEnhance.Color`: blend each channel with the greyscale image.
pub(crate) fn color(img: &mut [f32], dims: Dims, factor: f32, grey: &mut Vec<f32>) {
    greyscale(img, dims, grey);
    for ch in img.chunks_exact_mut(dims.plane()) {
        for (v, g) in ch.iter_mut().zip(grey.iter()) {
            *v = blend(*g, *v, factor);
        }
    }
}

/// PIL `ImageEnhance.Contrast`: blend with the mean of the greyscale image.
pub(crate) fn contrast(img: &mut [f32], dims: Dims, factor: f32, grey: &mut Vec<f32>) {
    greyscale(img, dims, grey);
    // Summed in f64: a 224x224 plane in f32 would lose the low digits of the mean.
    let mean = (grey.iter().map(|&g| g as f64).sum::<f64>() / grey.len().max(1) as f64) as f32;
    img.iter_mut().for_each(|v| *v = blend(mean, *v, factor));
}

/// PIL `ImageEnhance.Sharpness`: blend with the image smoothed by PIL's SMOOTH kernel
/// `[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`, whose border pixels are left unchanged.
pub(crate) fn sharpness(img: &mut [f32], dims: Dims, factor: f32, smooth: &mut Vec<f32>) {
    let (h, w) = (dims.h, dims.w);
    if h < 3 || w < 3 {
        return; // every pixel is a border pixel: the smoothed image is the image
    }
    for ch in img.chunks_exact_mut(dims.plane()) {
        smooth.clear();
        smooth.extend_from_slice(ch);
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let at = |dy: usize, dx: usize| ch[(y + dy - 1) * w + x + dx - 1];
                let ring = at(0, 0)
                    + at(0, 1)
                    + at(0, 2)
                    + at(1, 0)
                    + at(1, 2)
                    + at(2, 0)
                    + at(2, 1)
                    + at(2, 2);
                smooth[y * w + x] = (ring + 5.0 * at(1, 1)) / 13.0;
            }
        }
        for (v, s) in ch.iter_mut().zip(smooth.iter()) {
            *v = blend(*s, *v, factor);
        }
    }
}

/// PIL `ImageOps.autocontrast` (no cutoff): per channel, map the minimum to 0 and the maximum to
/// 1 linearly; a constant channel is left unchanged.
pub(crate) fn autocontrast(img: &mut [f32], dims: Dims) {
    for ch in img.chunks_exact_mut(dims.plane()) {
        let (lo, hi) = ch
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if hi > lo {
            let scale = 1.0 / (hi - lo);
            ch.iter_mut().for_each(|v| *v = (*v - lo) * scale);
        }
    }
}

/// PIL `ImageOps.equalize`, per channel on 8-bit levels: with `step = (pixels - count of the
/// highest occupied level) / 255` (integer division), level `i` maps to
/// `(step / 2 + pixels below level i) / step`; a channel with one occupied level or a zero step
/// is left unchanged.
pub(crate) fn equalize(img: &mut [f32], dims: Dims) {
    for ch in img.chunks_exact_mut(dims.plane()) {
        let mut hist = [0usize; 256];
        for &v in ch.iter() {
            hist[u8::from_value(v) as usize] += 1;
        }
        let occupied = hist.iter().filter(|&&n| n > 0).count();
        let last = hist.iter().rev().find(|&&n| n > 0).copied().unwrap_or(0);
        let step = (ch.len() - last) / 255;
        if occupied <= 1 || step == 0 {
            continue;
        }
        let mut lut = [0f32; 256];
        let mut n = step / 2;
        for (out, count) in lut.iter_mut().zip(hist) {
            *out = ((n / step).min(255) as u8).value();
            n += count;
        }
        ch.iter_mut()
            .for_each(|v| *v = lut[u8::from_value(*v) as usize]);
    }
}

/// PIL `ImageOps.posterize`: keep the top `bits` bits of each 8-bit level.
pub(crate) fn posterize(img: &mut [f32], bits: u32) {
    let mask = !((1u32 << (8 - bits.min(8))) - 1) as u8;
    img.iter_mut()
        .for_each(|v| *v = (u8::from_value(*v) & mask).value());
}

/// PIL `ImageOps.solarize`: a value whose 8-bit level is at or above `threshold` becomes `1 - v`.
pub(crate) fn solarize(img: &mut [f32], threshold: f32) {
    img.iter_mut().for_each(|v| {
        if u8::from_value(*v) as f32 >= threshold {
            *v = 1.0 - *v;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "got {got:?}, want {want:?}");
        }
    }

    fn d(c: usize, h: usize, w: usize) -> Dims {
        Dims { c, h, w }
    }

    #[test]
    fn brightness_scales_and_clips() {
        let mut img = vec![0.2, 0.8];
        brightness(&mut img, 0.5);
        close(&img, &[0.1, 0.4]);
        let mut img = vec![0.2, 0.8];
        brightness(&mut img, 1.5);
        close(&img, &[0.3, 1.0]);
    }

    #[test]
    fn color_blends_with_luminance_or_channel_mean() {
        // Pure red: L = 0.299.
        let mut img = vec![1.0, 0.0, 0.0];
        let mut s = Vec::new();
        color(&mut img, d(3, 1, 1), 0.0, &mut s);
        close(&img, &[0.299, 0.299, 0.299]);
        let mut img = vec![1.0, 0.0, 0.0];
        color(&mut img, d(3, 1, 1), 0.5, &mut s);
        close(&img, &[0.6495, 0.1495, 0.1495]);
        // One band: its own grey, so nothing changes.
        let mut img = vec![0.3, 0.9];
        color(&mut img, d(1, 1, 2), 0.1, &mut s);
        close(&img, &[0.3, 0.9]);
        // Five bands: blend with their mean 0.5.
        let mut img = vec![0.0, 0.25, 0.5, 0.75, 1.0];
        color(&mut img, d(5, 1, 1), 0.5, &mut s);
        close(&img, &[0.25, 0.375, 0.5, 0.625, 0.75]);
    }

    #[test]
    fn contrast_blends_with_mean_grey() {
        let mut s = Vec::new();
        let mut img = vec![0.2, 0.6];
        contrast(&mut img, d(1, 1, 2), 0.5, &mut s);
        close(&img, &[0.3, 0.5]);
        // RGB: mean luminance of a red and a black pixel is 0.1495.
        let mut img = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        contrast(&mut img, d(3, 1, 2), 0.0, &mut s);
        close(&img, &[0.1495; 6]);
    }

    #[test]
    fn sharpness_blends_with_smooth_interior_only() {
        // A single bright centre pixel: SMOOTH gives it 5/13 and leaves the border alone.
        let mut s = Vec::new();
        let mut img = vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        sharpness(&mut img, d(1, 3, 3), 0.0, &mut s);
        let mut want = [0.0; 9];
        want[4] = 5.0 / 13.0;
        close(&img, &want);
        let mut img = vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        sharpness(&mut img, d(1, 3, 3), 0.5, &mut s);
        want[4] = 9.0 / 13.0;
        close(&img, &want);
        // Too small to have an interior: unchanged.
        let mut img = vec![0.1, 0.9, 0.5, 0.3];
        sharpness(&mut img, d(1, 2, 2), 0.0, &mut s);
        close(&img, &[0.1, 0.9, 0.5, 0.3]);
    }

    #[test]
    fn autocontrast_stretches_each_channel() {
        let mut img = vec![0.2, 0.4, 0.6, 0.5, 0.5, 0.5];
        autocontrast(&mut img, d(2, 1, 3));
        close(&img, &[0.0, 0.5, 1.0, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn equalize_by_hand() {
        // 300 pixels at level 10, 210 at 100, 100 at 200: step = (610 - 100) / 255 = 2, and
        // level i maps to (1 + pixels below i) / 2: 10 -> 0, 100 -> 150, 200 -> 255.
        let mut img: Vec<f32> = [(10, 300), (100, 210), (200, 100)]
            .iter()
            .flat_map(|&(l, n)| std::iter::repeat_n(l as f32 / 255.0, n))
            .collect();
        equalize(&mut img, d(1, 1, 610));
        assert!(img[..300].iter().all(|&v| v == 0.0));
        assert!(img[300..510].iter().all(|&v| v == 150.0 / 255.0));
        assert!(img[510..].iter().all(|&v| v == 1.0));
        // One occupied level: unchanged.
        let mut flat = vec![0.5; 10];
        equalize(&mut flat, d(1, 1, 10));
        assert!(flat.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn posterize_keeps_top_bits() {
        let mut img = vec![183.0 / 255.0; 3];
        posterize(&mut img[..1], 4);
        posterize(&mut img[1..2], 1);
        posterize(&mut img[2..], 8);
        close(&img, &[176.0 / 255.0, 128.0 / 255.0, 183.0 / 255.0]);
    }

    #[test]
    fn solarize_inverts_at_and_above_threshold() {
        let src = [127.0 / 255.0, 128.0 / 255.0];
        let mut img = src.to_vec();
        solarize(&mut img, 128.0);
        close(&img, &[127.0 / 255.0, 127.0 / 255.0]);
        let mut img = src.to_vec();
        solarize(&mut img, 256.0);
        close(&img, &src);
        let mut img = src.to_vec();
        solarize(&mut img, 0.0);
        close(&img, &[128.0 / 255.0, 127.0 / 255.0]);
    }
}
