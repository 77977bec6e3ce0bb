//! RandAugment as FixMatch uses it: `n` ops drawn with replacement, each with a magnitude drawn
//! uniformly from its range, then Cutout.

use crate::cutout::Cutout;
use crate::error::{AugmentError, Result};
use crate::ops::{Dims, Op, OpSpec};
use crate::parallel::map_images;
use anomalymatch_core::ImageBatch;
use rand::RngExt;

/// Stream id of the strong view's per-image generators (ASCII "STRONG").
pub const STRONG_STREAM: u64 = 0x5354_524F_4E47;

/// A checked RandAugment configuration: build it with [`RandAugment::new`] or a preset.
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugment {
    ops: Vec<OpSpec>,
    n: usize,
    cutout: Option<Cutout>,
}

impl RandAugment {
    /// Validates an op list, the number of ops applied per image, and an optional Cutout.
    pub fn new(ops: Vec<OpSpec>, n: usize, cutout: Option<Cutout>) -> Result<Self> {
        if n > 0 && ops.is_empty() {
            return Err(AugmentError::Config(format!(
                "cannot draw {n} op(s) from an empty list"
            )));
        }
        for spec in &ops {
            spec.check()?;
        }
        if let Some(cut) = &cutout {
            cut.check()?;
        }
        Ok(RandAugment { ops, n, cutout })
    }

    /// FixMatch's strong view: 3 ops from the 14 of [`Op::FIXMATCH`] with their FixMatch ranges,
    /// then [`Cutout::fixmatch`].
    pub fn fixmatch() -> Self {
        RandAugment {
            ops: Op::FIXMATCH.into_iter().map(OpSpec::fixmatch).collect(),
            n: 3,
            cutout: Some(Cutout::fixmatch()),
        }
    }

    /// The ops drawn from.
    pub fn ops(&self) -> &[OpSpec] {
        &self.ops
    }

    /// Ops applied per image.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The Cutout applied last, if any.
    pub fn cutout(&self) -> Option<&Cutout> {
        self.cutout.as_ref()
    }

    /// Augments every image, in parallel; image `i` uses `item_rng(seed, STRONG_STREAM, i)`, so
    /// the result does not depend on the number of threads.
    pub fn apply(&self, images: &ImageBatch, seed: u64) -> Result<ImageBatch> {
        let dims = Dims::of(images);
        for spec in &self.ops {
            spec.op.check_shape(dims)?;
        }
        Ok(map_images(
            images,
            seed,
            STRONG_STREAM,
            |img, rng, scratch| {
                self.augment_one(img, dims, rng, scratch);
            },
        ))
    }

    /// Draws and applies the ops and the Cutout to one image.
    pub(crate) fn augment_one(
        &self,
        img: &mut [f32],
        dims: Dims,
        rng: &mut impl RngExt,
        scratch: &mut Vec<f32>,
    ) {
        for _ in 0..self.n {
            let spec = self.ops[rng.random_range(0..self.ops.len())];
            let magnitude = spec.op.sample(spec.range.0, spec.range.1, rng);
            spec.op.apply(magnitude, img, dims, scratch);
        }
        if let Some(cut) = &self.cutout {
            cut.apply(img, dims, rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_specs() {
        let bad = |ops: Vec<OpSpec>, n| RandAugment::new(ops, n, None).is_err();
        assert!(bad(vec![], 1));
        assert!(bad(vec![OpSpec::new(Op::Rotate, 10.0, -10.0)], 1));
        assert!(bad(vec![OpSpec::new(Op::Brightness, -0.5, 0.5)], 1));
        assert!(bad(vec![OpSpec::new(Op::Posterize, 4.2, 4.8)], 1));
        assert!(bad(vec![OpSpec::new(Op::Posterize, 0.0, 8.0)], 1));
        assert!(bad(vec![OpSpec::new(Op::Solarize, 0.0, 300.0)], 1));
        assert!(bad(vec![OpSpec::new(Op::TranslateX, f32::NAN, 0.1)], 1));
        assert!(!bad(vec![], 0));
        assert!(!bad(vec![OpSpec::new(Op::Posterize, 4.2, 5.0)], 2));
        let cut = Cutout {
            max_fraction: -0.1,
            fill: crate::CutoutFill::FixMatchGrey,
        };
        assert!(RandAugment::new(vec![], 0, Some(cut)).is_err());
    }

    #[test]
    fn fixmatch_preset_is_valid() {
        let f = RandAugment::fixmatch();
        let checked = RandAugment::new(f.ops().to_vec(), f.n(), f.cutout().copied()).unwrap();
        assert_eq!(checked, f);
        assert_eq!(f.ops().len(), 14);
    }

    #[test]
    fn rot90_needs_square_images() {
        let r = RandAugment::new(vec![OpSpec::new(Op::Rot90, 1.0, 3.0)], 1, None).unwrap();
        assert!(r.apply(&ImageBatch::zeros(1, 1, 4, 5), 0).is_err());
        assert!(r.apply(&ImageBatch::zeros(1, 1, 4, 4), 0).is_ok());
    }

    #[test]
    fn n_zero_without_cutout_is_identity() {
        let r = RandAugment::new(Op::FIXMATCH.map(OpSpec::fixmatch).to_vec(), 0, None).unwrap();
        let b = ImageBatch::from_vec((0..48).map(|v| v as f32 / 48.0).collect(), 3, 4, 4).unwrap();
        assert_eq!(r.apply(&b, 5).unwrap(), b);
    }
}
