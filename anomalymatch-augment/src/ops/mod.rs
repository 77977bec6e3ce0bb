//! The image operations RandAugment draws from, their magnitude ranges, and how they are applied.
//!
//! Each op follows the definition of the PIL call used by FixMatch's RandAugment (see the
//! `colour` and `geometry` modules for the exact semantics and where working in `f32` differs).

pub mod colour;
pub mod geometry;

use crate::error::{AugmentError, Result};
use anomalymatch_core::ImageBatch;
use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Shape of one CHW image; the ops work on one image's values at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub fn of(images: &ImageBatch) -> Self {
        Dims {
            c: images.channels(),
            h: images.height(),
            w: images.width(),
        }
    }

    /// Pixels per channel.
    pub fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// One image operation. The first fourteen are FixMatch's RandAugment pool; the last three are
/// the free symmetries of sky images used by the `astro` preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Stretches each channel so that its minimum becomes 0 and its maximum 1 (PIL `autocontrast`).
    AutoContrast,
    /// Blends with black by a factor (PIL `ImageEnhance.Brightness`).
    Brightness,
    /// Blends with the greyscale image by a factor (PIL `ImageEnhance.Color`).
    Color,
    /// Blends with the mean grey level by a factor (PIL `ImageEnhance.Contrast`).
    Contrast,
    /// Equalises each channel's 256-level histogram (PIL `ImageOps.equalize`).
    Equalize,
    /// Leaves the image unchanged.
    Identity,
    /// Keeps the top `magnitude` bits of each 8-bit level (PIL `ImageOps.posterize`).
    Posterize,
    /// Rotates by `magnitude` degrees counter-clockwise about the centre (PIL `Image.rotate`).
    Rotate,
    /// Blends with the 3x3-smoothed image by a factor (PIL `ImageEnhance.Sharpness`).
    Sharpness,
    /// Shears horizontally: output `(x, y)` samples input `(x + magnitude * y, y)`.
    ShearX,
    /// Shears vertically: output `(x, y)` samples input `(x, y + magnitude * x)`.
    ShearY,
    /// Inverts levels at or above the threshold `magnitude` in `[0, 256]` (PIL `ImageOps.solarize`).
    Solarize,
    /// Shifts by `magnitude` times the width: output `(x, y)` samples input `(x + magnitude * width, y)`.
    TranslateX,
    /// Shifts by `magnitude` times the height: output `(x, y)` samples input `(x, y + magnitude * height)`.
    TranslateY,
    /// Mirrors left-right.
    FlipH,
    /// Mirrors top-bottom.
    FlipV,
    /// Turns by `magnitude` quarter turns counter-clockwise (square images only).
    Rot90,
}

/// How an op reads its magnitude.
enum Magnitude {
    /// The op takes none; its range is ignored.
    None,
    /// A real number within `[min, max]`.
    Real { min: f32, max: f32 },
    /// A whole number within `[min, max]`, drawn uniformly among the integers of the range.
    Integer { min: f32, max: f32 },
}

impl Op {
    /// FixMatch's RandAugment pool, in the order of the paper's table.
    pub const FIXMATCH: [Op; 14] = [
        Op::AutoContrast,
        Op::Brightness,
        Op::Color,
        Op::Contrast,
        Op::Equalize,
        Op::Identity,
        Op::Posterize,
        Op::Rotate,
        Op::Sharpness,
        Op::ShearX,
        Op::ShearY,
        Op::Solarize,
        Op::TranslateX,
        Op::TranslateY,
    ];

    /// The magnitude range FixMatch draws from (FixMatch paper, table of RandAugment ops);
    /// `(0, 0)` for ops without a magnitude, `(1, 3)` quarter turns for [`Op::Rot90`].
    pub fn fixmatch_range(self) -> (f32, f32) {
        match self {
            Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => (0.05, 0.95),
            Op::Posterize => (4.0, 8.0),
            Op::Rotate => (-30.0, 30.0),
            Op::ShearX | Op::ShearY | Op::TranslateX | Op::TranslateY => (-0.3, 0.3),
            Op::Solarize => (0.0, 256.0),
            Op::Rot90 => (1.0, 3.0),
            Op::AutoContrast | Op::Equalize | Op::Identity | Op::FlipH | Op::FlipV => (0.0, 0.0),
        }
    }

    /// True when the op reads a magnitude.
    pub fn takes_magnitude(self) -> bool {
        !matches!(self.magnitude(), Magnitude::None)
    }

    fn magnitude(self) -> Magnitude {
        match self {
            // Factors above 1 extrapolate (with clipping) as PIL allows.
            Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => Magnitude::Real {
                min: 0.0,
                max: f32::MAX,
            },
            Op::Posterize => Magnitude::Integer { min: 1.0, max: 8.0 },
            Op::Rotate => Magnitude::Real {
                min: -360.0,
                max: 360.0,
            },
            // Beyond a shear of 10 almost every pixel falls outside the image.
            Op::ShearX | Op::ShearY => Magnitude::Real {
                min: -10.0,
                max: 10.0,
            },
            Op::TranslateX | Op::TranslateY => Magnitude::Real {
                min: -1.0,
                max: 1.0,
            },
            Op::Solarize => Magnitude::Real {
                min: 0.0,
                max: 256.0,
            },
            Op::Rot90 => Magnitude::Integer { min: 0.0, max: 3.0 },
            Op::AutoContrast | Op::Equalize | Op::Identity | Op::FlipH | Op::FlipV => {
                Magnitude::None
            }
        }
    }

    /// Checks that `(lo, hi)` is a usable magnitude range for this op.
    pub(crate) fn check_range(self, lo: f32, hi: f32) -> Result<()> {
        let bad = |reason: String| AugmentError::OpRange {
            op: self,
            lo,
            hi,
            reason,
        };
        if !lo.is_finite() || !hi.is_finite() || lo > hi {
            return Err(bad("need finite lo <= hi".into()));
        }
        match self.magnitude() {
            Magnitude::None => Ok(()),
            Magnitude::Real { min, max } => {
                if lo < min || hi > max {
                    Err(bad(format!("must lie within [{min}, {max}]")))
                } else {
                    Ok(())
                }
            }
            Magnitude::Integer { min, max } => {
                if lo < min || hi > max || lo.ceil() > hi.floor() {
                    Err(bad(format!(
                        "must lie within [{min}, {max}] and contain a whole number"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Draws a magnitude uniformly from `(lo, hi)`, already checked by [`Op::check_range`].
    pub(crate) fn sample(self, lo: f32, hi: f32, rng: &mut impl RngExt) -> f32 {
        match self.magnitude() {
            Magnitude::None => 0.0,
            Magnitude::Real { .. } => lo + (hi - lo) * rng.random::<f32>(),
            Magnitude::Integer { .. } => {
                rng.random_range(lo.ceil() as i32..=hi.floor() as i32) as f32
            }
        }
    }

    /// Errors when the op cannot be applied to images of this shape.
    pub(crate) fn check_shape(self, dims: Dims) -> Result<()> {
        if self == Op::Rot90 && dims.h != dims.w {
            return Err(AugmentError::Shape(format!(
                "Rot90 needs square images, got {}x{}",
                dims.h, dims.w
            )));
        }
        Ok(())
    }

    /// Applies the op with `magnitude` to one CHW image in place; `scratch` is working memory
    /// whose contents on entry do not matter.
    pub(crate) fn apply(self, magnitude: f32, img: &mut [f32], dims: Dims, scratch: &mut Vec<f32>) {
        match self {
            Op::AutoContrast => colour::autocontrast(img, dims),
            Op::Brightness => colour::brightness(img, magnitude),
            Op::Color => colour::color(img, dims, magnitude, scratch),
            Op::Contrast => colour::contrast(img, dims, magnitude, scratch),
            Op::Equalize => colour::equalize(img, dims),
            Op::Identity => {}
            Op::Posterize => colour::posterize(img, magnitude as u32),
            Op::Rotate => geometry::rotate(img, dims, magnitude, scratch),
            Op::Sharpness => colour::sharpness(img, dims, magnitude, scratch),
            Op::ShearX => geometry::affine(
                img,
                dims,
                [1.0, magnitude as f64, 0.0, 0.0, 1.0, 0.0],
                scratch,
            ),
            Op::ShearY => geometry::affine(
                img,
                dims,
                [1.0, 0.0, 0.0, magnitude as f64, 1.0, 0.0],
                scratch,
            ),
            Op::Solarize => colour::solarize(img, magnitude),
            Op::TranslateX => {
                let dx = magnitude as f64 * dims.w as f64;
                geometry::affine(img, dims, [1.0, 0.0, dx, 0.0, 1.0, 0.0], scratch)
            }
            Op::TranslateY => {
                let dy = magnitude as f64 * dims.h as f64;
                geometry::affine(img, dims, [1.0, 0.0, 0.0, 0.0, 1.0, dy], scratch)
            }
            Op::FlipH => geometry::flip_h(img, dims),
            Op::FlipV => geometry::flip_v(img, dims),
            Op::Rot90 => geometry::rot90(img, dims, magnitude as u32, scratch),
        }
    }

    /// Applies the op with a fixed `magnitude` to every image of a batch (in parallel), e.g. to
    /// inspect it; the magnitude must lie within what the op accepts.
    pub fn apply_to(self, magnitude: f32, images: &ImageBatch) -> Result<ImageBatch> {
        self.check_range(magnitude, magnitude)?;
        let dims = Dims::of(images);
        self.check_shape(dims)?;
        let mut out = images.clone();
        if out.is_empty() {
            return Ok(out);
        }
        let per = out.image_len();
        out.as_mut_slice()
            .par_chunks_mut(per)
            .for_each_init(Vec::new, |scratch, img| {
                self.apply(magnitude, img, dims, scratch)
            });
        Ok(out)
    }
}

/// An op with the range its magnitude is drawn from, e.g. `OpSpec::new(Op::Rotate, -30.0, 30.0)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpSpec {
    /// The operation.
    pub op: Op,
    /// Magnitudes are drawn uniformly from `[range.0, range.1]` (ignored by ops without one).
    pub range: (f32, f32),
}

impl OpSpec {
    /// An op with a magnitude range; checked when the spec is given to
    /// [`crate::RandAugment::new`].
    pub fn new(op: Op, lo: f32, hi: f32) -> Self {
        OpSpec {
            op,
            range: (lo, hi),
        }
    }

    /// An op with FixMatch's range for it ([`Op::fixmatch_range`]).
    pub fn fixmatch(op: Op) -> Self {
        let (lo, hi) = op.fixmatch_range();
        OpSpec::new(op, lo, hi)
    }

    /// Checks the range against what the op accepts.
    pub(crate) fn check(&self) -> Result<()> {
        self.op.check_range(self.range.0, self.range.1)
    }
}
