//! Geometric ops: PIL's affine transform with nearest-neighbour sampling, plus exact flips and
//! quarter turns.
//!
//! PIL's `Image.transform(size, AFFINE, (a, b, c, d, e, f))` fills output pixel `(x, y)` from
//! input pixel `(a x + b y + c, d x + e y + f)` evaluated at the pixel centre `(x + 0.5, y + 0.5)`
//! and rounded down; pixels that land outside the image get the fill colour. FixMatch's
//! PIL-based RandAugment passes no fill colour, so the fill is 0 (black) here too (some
//! RandAugment ports fill with grey 128; black is what FixMatch's own ops did and, for sky
//! images, close to the background). We reproduce PIL's arithmetic, including its 16.16
//! fixed-point path for general transforms and its floating-point path for pure shifts, so pixel
//! positions match PIL exactly (for images below 32768 pixels a side, where PIL uses these paths).
//! Only pixels move, so `f32` values are carried through unchanged.

use super::Dims;

/// Marks an output pixel whose source lies outside the image.
pub(crate) const OUTSIDE: u32 = u32::MAX;

/// PIL's `COORD`: -1 for negative positions (outside), else truncation.
fn coord(v: f64) -> i64 {
    if v < 0.0 { -1 } else { v as i64 }
}

/// PIL's 16.16 fixed-point conversion.
fn fix(v: f64) -> i64 {
    (v * 65536.0 + 0.5).floor() as i64
}

/// Source pixel index (or [`OUTSIDE`]) for each output pixel of PIL's affine transform `m`.
fn affine_map(dims: Dims, m: [f64; 6], map: &mut Vec<u32>) {
    let (w, h) = (dims.w as i64, dims.h as i64);
    let [a, b, c, d, e, f] = m;
    let index = |xin: i64, yin: i64| {
        if (0..w).contains(&xin) && (0..h).contains(&yin) {
            (yin * w + xin) as u32
        } else {
            OUTSIDE
        }
    };
    map.clear();
    if b == 0.0 && d == 0.0 {
        // PIL's "scale" path: separable, floating point, positions accumulated by addition.
        let mut xs = Vec::with_capacity(dims.w);
        let mut xo = c + a * 0.5;
        for _ in 0..w {
            xs.push(coord(xo));
            xo += a;
        }
        let mut yo = f + e * 0.5;
        for _ in 0..h {
            let yin = coord(yo);
            map.extend(xs.iter().map(|&xin| index(xin, yin)));
            yo += e;
        }
    } else {
        // PIL's general path: 16.16 fixed point, floor by arithmetic shift.
        let (a0, a1, a3, a4) = (fix(a), fix(b), fix(d), fix(e));
        let mut a2 = fix(c + a * 0.5 + b * 0.5);
        let mut a5 = fix(f + d * 0.5 + e * 0.5);
        for _ in 0..h {
            let (mut xx, mut yy) = (a2, a5);
            for _ in 0..w {
                map.push(index(xx >> 16, yy >> 16));
                xx += a0;
                yy += a3;
            }
            a2 += a1;
            a5 += a4;
        }
    }
}

/// Applies PIL's affine transform `m = (a, b, c, d, e, f)` with fill 0.
pub(crate) fn affine(img: &mut [f32], dims: Dims, m: [f64; 6], scratch: &mut Vec<f32>) {
    let mut map = Vec::with_capacity(dims.plane());
    affine_map(dims, m, &mut map);
    remap(img, dims, &map, scratch);
}

/// Replaces each channel by `src[map[i]]` (0 where the map says [`OUTSIDE`]).
pub(crate) fn remap(img: &mut [f32], dims: Dims, map: &[u32], scratch: &mut Vec<f32>) {
    for ch in img.chunks_exact_mut(dims.plane()) {
        scratch.clear();
        scratch.extend_from_slice(ch);
        for (v, &src) in ch.iter_mut().zip(map) {
            *v = if src == OUTSIDE {
                0.0
            } else {
                scratch[src as usize]
            };
        }
    }
}

/// Rounds to 15 decimals as PIL's `rotate` does with Python's `round(x, 15)`, which turns
/// `cos(90°)` into an exact 0.
fn round15(v: f64) -> f64 {
    (v * 1e15).round() / 1e15
}

/// PIL `Image.rotate(degrees)`: counter-clockwise about the image centre, same size, fill 0.
pub(crate) fn rotate(img: &mut [f32], dims: Dims, degrees: f32, scratch: &mut Vec<f32>) {
    let angle = (degrees as f64).rem_euclid(360.0);
    // PIL swaps in exact transposes for these angles.
    if angle == 0.0 {
        return;
    }
    if angle == 180.0 {
        return rot90(img, dims, 2, scratch);
    }
    if (angle == 90.0 || angle == 270.0) && dims.w == dims.h {
        return rot90(img, dims, (angle / 90.0) as u32, scratch);
    }
    let (cx, cy) = (dims.w as f64 / 2.0, dims.h as f64 / 2.0);
    let t = -angle.to_radians();
    let (a, b, d, e) = (
        round15(t.cos()),
        round15(t.sin()),
        round15(-t.sin()),
        round15(t.cos()),
    );
    // Input position of the output centre maps to the input centre.
    let c = a * -cx + b * -cy + cx;
    let f = d * -cx + e * -cy + cy;
    affine(img, dims, [a, b, c, d, e, f], scratch);
}

/// Mirrors left-right.
pub(crate) fn flip_h(img: &mut [f32], dims: Dims) {
    img.chunks_exact_mut(dims.w).for_each(|row| row.reverse());
}

/// Mirrors top-bottom.
pub(crate) fn flip_v(img: &mut [f32], dims: Dims) {
    for ch in img.chunks_exact_mut(dims.plane()) {
        for y in 0..dims.h / 2 {
            let (top, bottom) = ch.split_at_mut((dims.h - 1 - y) * dims.w);
            top[y * dims.w..(y + 1) * dims.w].swap_with_slice(&mut bottom[..dims.w]);
        }
    }
}

/// Turns a square image (or any image for `k = 2`) by `k` quarter turns counter-clockwise,
/// as PIL's `transpose(ROTATE_90)` applied `k` times.
pub(crate) fn rot90(img: &mut [f32], dims: Dims, k: u32, scratch: &mut Vec<f32>) {
    let (h, w) = (dims.h, dims.w);
    let k = k % 4;
    if k == 0 {
        return;
    }
    for ch in img.chunks_exact_mut(dims.plane()) {
        scratch.clear();
        scratch.extend_from_slice(ch);
        for y in 0..h {
            for x in 0..w {
                // Output (x, y) after a counter-clockwise quarter turn shows input (w-1-y, x).
                let (sx, sy) = match k {
                    1 => (w - 1 - y, x),
                    2 => (w - 1 - x, h - 1 - y),
                    _ => (y, h - 1 - x),
                };
                ch[y * w + x] = scratch[sy * w + sx];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: usize, h: usize, w: usize) -> Dims {
        Dims { c, h, w }
    }

    fn iota(n: usize) -> Vec<f32> {
        (1..=n).map(|v| v as f32).collect()
    }

    #[test]
    fn translate_samples_shifted_pixels_with_black_fill() {
        let mut s = Vec::new();
        // TranslateX 0.25 of 4 pixels: output x shows input x + 1.
        let mut img = iota(4);
        affine(&mut img, d(1, 1, 4), [1.0, 0.0, 1.0, 0.0, 1.0, 0.0], &mut s);
        assert_eq!(img, [2.0, 3.0, 4.0, 0.0]);
        let mut img = iota(4);
        affine(
            &mut img,
            d(1, 1, 4),
            [1.0, 0.0, -2.0, 0.0, 1.0, 0.0],
            &mut s,
        );
        assert_eq!(img, [0.0, 0.0, 1.0, 2.0]);
        // A fractional shift of 0.4 rounds to no move (x + 0.5 + 0.4 floors to x), 0.6 to one.
        let mut img = iota(4);
        affine(&mut img, d(1, 1, 4), [1.0, 0.0, 0.4, 0.0, 1.0, 0.0], &mut s);
        assert_eq!(img, [1.0, 2.0, 3.0, 4.0]);
        let mut img = iota(4);
        affine(&mut img, d(1, 1, 4), [1.0, 0.0, 0.6, 0.0, 1.0, 0.0], &mut s);
        assert_eq!(img, [2.0, 3.0, 4.0, 0.0]);
        // TranslateY on two channels moves both.
        let mut img = iota(4);
        affine(&mut img, d(2, 2, 1), [1.0, 0.0, 0.0, 0.0, 1.0, 1.0], &mut s);
        assert_eq!(img, [2.0, 0.0, 4.0, 0.0]);
    }

    #[test]
    fn shear_x_about_the_top_left_corner() {
        // Shear 1: output (x, y) samples floor(x + 0.5 + (y + 0.5)) = x + y + 1 in row y.
        let mut s = Vec::new();
        let mut img = iota(9);
        affine(&mut img, d(1, 3, 3), [1.0, 1.0, 0.0, 0.0, 1.0, 0.0], &mut s);
        assert_eq!(img, [2.0, 3.0, 0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // ShearY 1: output (x, y) samples row y + x + 1 of column x.
        let mut img = iota(9);
        affine(&mut img, d(1, 3, 3), [1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &mut s);
        assert_eq!(img, [4.0, 8.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn quarter_turns_are_counter_clockwise() {
        let mut s = Vec::new();
        let mut img = iota(9);
        rot90(&mut img, d(1, 3, 3), 1, &mut s);
        assert_eq!(img, [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0]);
        let mut img = iota(9);
        rot90(&mut img, d(1, 3, 3), 3, &mut s);
        assert_eq!(img, [7.0, 4.0, 1.0, 8.0, 5.0, 2.0, 9.0, 6.0, 3.0]);
        // Rotate by 90 degrees is the same exact turn; -270 and 450 too.
        for deg in [90.0, -270.0, 450.0] {
            let mut r = iota(9);
            rotate(&mut r, d(1, 3, 3), deg, &mut s);
            assert_eq!(r, [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0]);
        }
        // Half a turn of a non-square image reverses it.
        let mut img = iota(6);
        rotate(&mut img, d(1, 2, 3), 180.0, &mut s);
        assert_eq!(img, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
    }

    #[test]
    fn small_rotation_keeps_the_centre_and_blackens_corners() {
        // 45 degrees on 5x5: the centre stays, the corners come from outside.
        let mut s = Vec::new();
        let mut img = iota(25);
        rotate(&mut img, d(1, 5, 5), 45.0, &mut s);
        assert_eq!(img[12], 13.0);
        for corner in [0, 4, 20, 24] {
            assert_eq!(img[corner], 0.0);
        }
        // Counter-clockwise: the pixel right of centre (14) moves up to (12 - 5 = 7)'s place
        // after 90 degrees; after 45 it is on the up-right diagonal (index 8).
        assert_eq!(img[8], 14.0);
    }

    #[test]
    fn flips_mirror_each_channel() {
        let mut img = iota(8);
        flip_h(&mut img, d(2, 2, 2));
        assert_eq!(img, [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 7.0]);
        let mut img = iota(12);
        flip_v(&mut img, d(2, 3, 2));
        assert_eq!(
            img,
            [
                5.0, 6.0, 3.0, 4.0, 1.0, 2.0, 11.0, 12.0, 9.0, 10.0, 7.0, 8.0
            ]
        );
    }
}
