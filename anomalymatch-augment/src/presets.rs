//! Ready-made augmenters: FixMatch's, and one for sky images.

use crate::config::{AugmentConfig, AugmentPreset};
use crate::ops::{Op, OpSpec};
use crate::randaugment::RandAugment;
use crate::weak::WeakAugment;
use anomalymatch_core::{Augmenter, Check, ImageBatch};

/// The ops of the `astro` strong view.
///
/// Sky images have no up or down, so any rotation, flips and quarter turns are free; Rotate
/// uses the full ±180 degrees. Ops that change a galaxy's colour, which can be what makes it
/// interesting, are left out: Color (desaturates), and AutoContrast, Equalize, Posterize and
/// Solarize, which remap each band on its own and so change band ratios. Brightness scales all
/// bands alike; Contrast and Sharpness are kept as FixMatch has them (Contrast pulls every band
/// towards the same grey, which lowers colour differences but never reorders them).
pub fn astro_ops() -> Vec<OpSpec> {
    let mut ops: Vec<OpSpec> = [
        Op::Identity,
        Op::Brightness,
        Op::Contrast,
        Op::Sharpness,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateX,
        Op::TranslateY,
        Op::FlipH,
        Op::FlipV,
        Op::Rot90,
    ]
    .into_iter()
    .map(OpSpec::fixmatch)
    .collect();
    ops.push(OpSpec::new(Op::Rotate, -180.0, 180.0));
    ops
}

/// FixMatch's two views as one [`Augmenter`]: a weak view and a RandAugment strong view.
#[derive(Debug, Clone, PartialEq)]
pub struct FixMatchAugmenter {
    /// The weak view.
    pub weak: WeakAugment,
    /// The strong view.
    pub strong: RandAugment,
}

impl FixMatchAugmenter {
    /// Combines a weak and a strong view.
    pub fn new(weak: WeakAugment, strong: RandAugment) -> Self {
        FixMatchAugmenter { weak, strong }
    }

    /// FixMatch as published: [`crate::WeakConfig::fixmatch`] and [`RandAugment::fixmatch`].
    pub fn fixmatch() -> Self {
        Self::preset(AugmentPreset::Fixmatch)
    }

    /// For sky images: [`crate::WeakConfig::astro`] (adds top-bottom flips and quarter turns), and a
    /// strong view of 3 ops from [`astro_ops`] then Cutout filled with each band's mean (close to
    /// the sky background) rather than grey.
    pub fn astro() -> Self {
        Self::preset(AugmentPreset::Astro)
    }

    /// A preset with the `[augment]` section's defaults, built by that section: the one place
    /// a preset's views are spelled out. The defaults are checked by the tests, so failure
    /// here is a bug.
    fn preset(preset: AugmentPreset) -> Self {
        AugmentConfig {
            preset,
            ..AugmentConfig::default()
        }
        .check()
        .expect("a preset with default settings is valid")
        .build(())
        .expect("a preset with default settings builds")
    }
}

impl Augmenter for FixMatchAugmenter {
    fn weak(&self, images: &ImageBatch, seed: u64) -> anomalymatch_core::Result<ImageBatch> {
        Ok(self.weak.apply(images, seed)?)
    }

    fn strong(&self, images: &ImageBatch, seed: u64) -> anomalymatch_core::Result<ImageBatch> {
        Ok(self.strong.apply(images, seed)?)
    }
}
