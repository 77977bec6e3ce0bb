//! Cutout: blank a random square, FixMatch's last step of the strong view.

use crate::error::{AugmentError, Result};
use crate::ops::Dims;
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// FixMatch's Cutout grey, `(125, 123, 114) / 255` for RGB.
const FIXMATCH_GREY: [f32; 3] = [125.0 / 255.0, 123.0 / 255.0, 114.0 / 255.0];

/// What fills the cut-out square.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CutoutFill {
    /// FixMatch's grey `(125, 123, 114) / 255` for 3 channels; for other channel counts the mean
    /// of those three, `120.67 / 255`, in every channel, so the square is as bright as in RGB.
    FixMatchGrey,
    /// The same value in every channel.
    Constant(f32),
    /// Each channel's mean over the image: for sky images, close to the background, so the
    /// square hides structure without adding a bright patch.
    ChannelMean,
}

/// Cutout settings: a square whose side is drawn uniformly from `[0, max_fraction]` of the
/// image side (per axis for non-square images), centred on a uniformly drawn pixel and clipped
/// to the image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cutout {
    /// Largest side as a fraction of the image side, in `[0, 1]` (FixMatch: 0.5).
    pub max_fraction: f32,
    /// The fill.
    pub fill: CutoutFill,
}

impl Cutout {
    /// FixMatch's Cutout: side up to half the image, filled with [`CutoutFill::FixMatchGrey`].
    pub fn fixmatch() -> Self {
        Cutout {
            max_fraction: 0.5,
            fill: CutoutFill::FixMatchGrey,
        }
    }

    /// Checks the settings.
    pub(crate) fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.max_fraction) {
            return Err(AugmentError::Config(format!(
                "cutout max_fraction {} is not within [0, 1]",
                self.max_fraction
            )));
        }
        if let CutoutFill::Constant(v) = self.fill
            && !v.is_finite()
        {
            return Err(AugmentError::Config(format!(
                "cutout fill {v} is not finite"
            )));
        }
        Ok(())
    }

    /// Blanks one random square of `img`.
    pub(crate) fn apply(&self, img: &mut [f32], dims: Dims, rng: &mut impl RngExt) {
        let fraction = self.max_fraction * rng.random::<f32>();
        let cy = rng.random_range(0..dims.h);
        let cx = rng.random_range(0..dims.w);
        let side_h = (fraction * dims.h as f32).round() as usize;
        let side_w = (fraction * dims.w as f32).round() as usize;
        let (y0, y1) = span(cy, side_h, dims.h);
        let (x0, x1) = span(cx, side_w, dims.w);
        for (c, ch) in img.chunks_exact_mut(dims.plane()).enumerate() {
            let fill = match self.fill {
                CutoutFill::FixMatchGrey if dims.c == 3 => FIXMATCH_GREY[c],
                CutoutFill::FixMatchGrey => FIXMATCH_GREY.iter().sum::<f32>() / 3.0,
                CutoutFill::Constant(v) => v,
                CutoutFill::ChannelMean => {
                    (ch.iter().map(|&v| v as f64).sum::<f64>() / ch.len() as f64) as f32
                }
            };
            for y in y0..y1 {
                ch[y * dims.w + x0..y * dims.w + x1].fill(fill);
            }
        }
    }
}

/// The half-open interval of `side` pixels centred on `centre`, clipped to `[0, len)`.
fn span(centre: usize, side: usize, len: usize) -> (usize, usize) {
    let start = centre.saturating_sub(side / 2);
    let end = (centre + side - side / 2).min(len);
    (start.min(end), end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn span_is_centred_and_clipped() {
        assert_eq!(span(5, 4, 10), (3, 7));
        assert_eq!(span(5, 3, 10), (4, 7));
        assert_eq!(span(0, 4, 10), (0, 2));
        assert_eq!(span(9, 4, 10), (7, 10));
        assert_eq!(span(4, 0, 10), (4, 4));
    }

    #[test]
    fn blanks_one_square_with_the_grey() {
        let dims = Dims { c: 3, h: 16, w: 16 };
        let cut = Cutout {
            max_fraction: 1.0,
            fill: CutoutFill::FixMatchGrey,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut img = vec![1.0; 3 * 256];
        cut.apply(&mut img, dims, &mut rng);
        for (c, ch) in img.chunks(256).enumerate() {
            let changed: Vec<usize> = (0..256).filter(|&i| ch[i] != 1.0).collect();
            assert!(!changed.is_empty());
            assert!(changed.iter().all(|&i| ch[i] == FIXMATCH_GREY[c]));
            // The changed pixels form a rectangle: count = rows * columns.
            let rows: std::collections::BTreeSet<_> = changed.iter().map(|i| i / 16).collect();
            let cols: std::collections::BTreeSet<_> = changed.iter().map(|i| i % 16).collect();
            assert_eq!(changed.len(), rows.len() * cols.len());
        }
    }

    #[test]
    fn other_channel_counts_use_the_mean_grey_or_channel_mean() {
        let dims = Dims { c: 5, h: 8, w: 8 };
        let mut img: Vec<f32> = (0..5 * 64).map(|i| (i / 64) as f32 * 0.2).collect();
        let cut = Cutout {
            max_fraction: 1.0,
            fill: CutoutFill::ChannelMean,
        };
        cut.apply(&mut img, dims, &mut StdRng::seed_from_u64(1));
        for (c, ch) in img.chunks(64).enumerate() {
            assert!(ch.iter().all(|&v| (v - c as f32 * 0.2).abs() < 1e-6));
        }
        let grey = Cutout {
            max_fraction: 1.0,
            fill: CutoutFill::FixMatchGrey,
        };
        let g = (125.0 + 123.0 + 114.0) / 3.0 / 255.0;
        let mut filled = 0;
        for seed in 0..8 {
            let mut img = vec![0.0; 5 * 64];
            grey.apply(&mut img, dims, &mut StdRng::seed_from_u64(seed));
            assert!(img.iter().all(|&v| v == 0.0 || (v - g).abs() < 1e-6));
            filled += img.iter().filter(|&&v| v != 0.0).count();
        }
        assert!(filled > 0);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = Cutout {
            max_fraction: 1.5,
            fill: CutoutFill::ChannelMean,
        };
        assert!(bad.check().is_err());
        let nan = Cutout {
            max_fraction: 0.5,
            fill: CutoutFill::Constant(f32::NAN),
        };
        assert!(nan.check().is_err());
        assert!(Cutout::fixmatch().check().is_ok());
    }
}
