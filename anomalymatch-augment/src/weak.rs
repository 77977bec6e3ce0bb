//! FixMatch's weak view: random flips and a small random shift with padding.
//!
//! The original FixMatch flips left-right with probability 0.5 and shifts by up to 12.5% of the
//! side, padding by reflection (pad 12.5%, then crop at a random offset). AnomalyMatch's code
//! shifts only vertically because of an argument slip; we shift on both axes, as FixMatch
//! intended. The shift in pixels is a whole number drawn uniformly from `[-p, p]` per axis, with
//! `p = floor(max_shift * side)` (12 for 96 pixels, 28 for 224).

use crate::error::{AugmentError, Result};
use crate::ops::Dims;
use crate::ops::geometry::{OUTSIDE, remap};
use crate::parallel::map_images;
use anomalymatch_core::ImageBatch;
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Stream id of the weak view's per-image generators (ASCII "WEAK").
pub const WEAK_STREAM: u64 = 0x5745_414B;

/// How pixels shifted in from outside the image are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    /// Mirror about the edge pixel without repeating it (`... c b | a b c ...`), as FixMatch's
    /// `reflect` padding; keeps the image statistics and adds no hard edge.
    Reflect,
    /// Zeros (black).
    Zero,
}

/// Weak-view settings; check them with [`WeakAugment::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeakConfig {
    /// Probability of a left-right flip, in `[0, 1]` (FixMatch: 0.5).
    pub hflip: f32,
    /// Probability of a top-bottom flip, in `[0, 1]` (FixMatch: 0; sky images: 0.5).
    pub vflip: f32,
    /// Turn by 0, 1, 2 or 3 quarter turns, each equally likely (square images only; FixMatch: off).
    pub rot90: bool,
    /// Largest shift as a fraction of the side, in `[0, 0.5]` (FixMatch: 0.125).
    pub max_shift: f32,
    /// How shifted-in pixels are filled.
    pub padding: Padding,
}

impl WeakConfig {
    /// FixMatch's weak view: left-right flip with p = 0.5, shift up to 12.5% with reflection.
    pub fn fixmatch() -> Self {
        WeakConfig {
            hflip: 0.5,
            vflip: 0.0,
            rot90: false,
            max_shift: 0.125,
            padding: Padding::Reflect,
        }
    }

    /// For sky images, which have no up or down: FixMatch's weak view plus top-bottom flips and
    /// quarter turns, which together give all eight symmetries of the square.
    pub fn astro() -> Self {
        WeakConfig {
            vflip: 0.5,
            rot90: true,
            ..WeakConfig::fixmatch()
        }
    }
}

/// A checked weak-view configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeakAugment {
    config: WeakConfig,
}

impl WeakAugment {
    /// Checks the settings.
    pub fn new(config: WeakConfig) -> Result<Self> {
        let prob = |name: &str, p: f32| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(AugmentError::Config(format!(
                    "weak {name} probability {p} is not within [0, 1]"
                )))
            }
        };
        prob("hflip", config.hflip)?;
        prob("vflip", config.vflip)?;
        if !(0.0..=0.5).contains(&config.max_shift) {
            return Err(AugmentError::Config(format!(
                "weak max_shift {} is not within [0, 0.5]",
                config.max_shift
            )));
        }
        Ok(WeakAugment { config })
    }

    /// The settings.
    pub fn config(&self) -> &WeakConfig {
        &self.config
    }

    /// Augments every image, in parallel; image `i` uses `item_rng(seed, WEAK_STREAM, i)`, so the
    /// result does not depend on the number of threads.
    pub fn apply(&self, images: &ImageBatch, seed: u64) -> Result<ImageBatch> {
        let dims = Dims::of(images);
        if self.config.rot90 && dims.h != dims.w {
            return Err(AugmentError::Shape(format!(
                "weak quarter turns need square images, got {}x{}",
                dims.h, dims.w
            )));
        }
        Ok(map_images(
            images,
            seed,
            WEAK_STREAM,
            |img, rng, scratch| {
                let map = self.draw_map(dims, rng);
                remap(img, dims, &map, scratch);
            },
        ))
    }

    /// Draws one image's flips, turn and shift, and returns the source pixel of each output pixel.
    fn draw_map(&self, dims: Dims, rng: &mut impl RngExt) -> Vec<u32> {
        let c = &self.config;
        let hflip = rng.random::<f32>() < c.hflip;
        let vflip = rng.random::<f32>() < c.vflip;
        let turns = if c.rot90 {
            rng.random_range(0..4u32)
        } else {
            0
        };
        let (h, w) = (dims.h as i64, dims.w as i64);
        let pad = |side: i64| ((c.max_shift * side as f32).floor() as i64).min(side - 1);
        let (ph, pw) = (pad(h), pad(w));
        let dy = rng.random_range(-ph..=ph);
        let dx = rng.random_range(-pw..=pw);
        let padded = |i: i64, n: i64| -> Option<i64> {
            if (0..n).contains(&i) {
                Some(i)
            } else {
                match c.padding {
                    Padding::Zero => None,
                    // |shift| < n, so one reflection lands inside.
                    Padding::Reflect if i < 0 => Some(-i),
                    Padding::Reflect => Some(2 * (n - 1) - i),
                }
            }
        };
        // Undo the shift, then the flips (both per axis), then the turn: the reverse of
        // applying them.
        let ys: Vec<Option<i64>> = (0..h)
            .map(|y| padded(y + dy, h).map(|y1| if vflip { h - 1 - y1 } else { y1 }))
            .collect();
        let xs: Vec<Option<i64>> = (0..w)
            .map(|x| padded(x + dx, w).map(|x1| if hflip { w - 1 - x1 } else { x1 }))
            .collect();
        let mut map = Vec::with_capacity(dims.plane());
        for &y2 in &ys {
            map.extend(xs.iter().map(|&x2| match (y2, x2) {
                (Some(y2), Some(x2)) => {
                    let (sx, sy) = match turns {
                        0 => (x2, y2),
                        1 => (w - 1 - y2, x2),
                        2 => (w - 1 - x2, h - 1 - y2),
                        _ => (y2, h - 1 - x2),
                    };
                    (sy * w + sx) as u32
                }
                _ => OUTSIDE,
            }));
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ramp(c: usize, h: usize, w: usize) -> ImageBatch {
        let n = c * h * w;
        ImageBatch::from_vec((0..n).map(|v| v as f32 / n as f32).collect(), c, h, w).unwrap()
    }

    #[test]
    fn rejects_bad_settings() {
        let ok = WeakConfig::fixmatch();
        assert!(WeakAugment::new(ok).is_ok());
        assert!(WeakAugment::new(WeakConfig { hflip: 1.5, ..ok }).is_err());
        assert!(WeakAugment::new(WeakConfig { vflip: -0.1, ..ok }).is_err());
        assert!(
            WeakAugment::new(WeakConfig {
                max_shift: 0.7,
                ..ok
            })
            .is_err()
        );
        assert!(
            WeakAugment::new(WeakConfig {
                max_shift: f32::NAN,
                ..ok
            })
            .is_err()
        );
        let astro = WeakAugment::new(WeakConfig::astro()).unwrap();
        assert!(astro.apply(&ImageBatch::zeros(1, 1, 4, 6), 0).is_err());
    }

    #[test]
    fn certain_flip_without_shift_mirrors() {
        let cfg = WeakConfig {
            hflip: 1.0,
            max_shift: 0.0,
            ..WeakConfig::fixmatch()
        };
        let b = ramp(2, 3, 4);
        let out = WeakAugment::new(cfg).unwrap().apply(&b, 1).unwrap();
        let mut want = b.clone();
        want.as_mut_slice().chunks_mut(4).for_each(|r| r.reverse());
        assert_eq!(out, want);
    }

    #[test]
    fn reflect_shift_by_hand() {
        // A 1x5 row shifted so that output x samples x + 2: [2, 3, 4, 3, 2] (reflect) or
        // [2, 3, 4, 0, 0] (zero). Find a seed whose draw is dx = +2, dy = 0 on a 1-row image.
        let dims = Dims { c: 1, h: 1, w: 5 };
        for (padding, want) in [
            (Padding::Reflect, [2.0, 3.0, 4.0, 3.0, 2.0]),
            (Padding::Zero, [2.0, 3.0, 4.0, 0.0, 0.0]),
        ] {
            let weak = WeakAugment::new(WeakConfig {
                hflip: 0.0,
                max_shift: 0.5,
                padding,
                ..WeakConfig::fixmatch()
            })
            .unwrap();
            let found = (0..200u64).find_map(|s| {
                let map = weak.draw_map(dims, &mut StdRng::seed_from_u64(s));
                (map[0] == 2 && map[1] == 3).then_some(map)
            });
            let map = found.expect("some seed draws a shift of +2");
            let src = [0.0, 1.0, 2.0, 3.0, 4.0];
            let got: Vec<f32> = map
                .iter()
                .map(|&i| if i == OUTSIDE { 0.0 } else { src[i as usize] })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn astro_view_is_a_symmetry_of_the_square_without_shift() {
        let cfg = WeakConfig {
            max_shift: 0.0,
            ..WeakConfig::astro()
        };
        let b = ramp(1, 4, 4);
        let weak = WeakAugment::new(cfg).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let out = weak.apply(&b, seed).unwrap();
            // A permutation of the pixels that keeps the corners on corners.
            let mut sorted = out.as_slice().to_vec();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, b.as_slice());
            let corners = [0, 3, 12, 15].map(|i| out.as_slice()[i]);
            let mut want = [0, 3, 12, 15].map(|i| b.as_slice()[i]);
            let mut got = corners;
            got.sort_by(f32::total_cmp);
            want.sort_by(f32::total_cmp);
            assert_eq!(got, want);
            seen.insert(
                out.as_slice()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(seen.len(), 8, "all eight symmetries of the square appear");
    }
}
