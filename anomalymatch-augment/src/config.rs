//! The `[augment]` section: which preset, how far the weak view shifts, how many RandAugment
//! ops the strong view applies and how large its Cutout is. Checked, it builds the augmenter.

use crate::cutout::{Cutout, CutoutFill};
use crate::error::AugmentError;
use crate::ops::{Op, OpSpec};
use crate::presets::{FixMatchAugmenter, astro_ops};
use crate::randaugment::RandAugment;
use crate::weak::{WeakAugment, WeakConfig};
use anomalymatch_core::config::key;
use anomalymatch_core::{Build, Check, Checked};
use serde::{Deserialize, Serialize};

/// The augmentation presets (key `augment.preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentPreset {
    /// FixMatch as published: left-right flips and shifts; RandAugment over its 14 ops;
    /// Cutout filled with grey.
    Fixmatch,
    /// For sky images, which have no up: all eight flips and quarter turns, no op that
    /// changes band ratios, Cutout filled with each band's mean (see [`astro_ops`]).
    Astro,
}

/// Augmentation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// The preset the other keys adjust.
    pub preset: AugmentPreset,
    /// Largest weak-view shift as a share of the side.
    pub translate: f32,
    /// RandAugment operations per strong view.
    pub strong_ops: usize,
    /// Largest Cutout side as a share of the image side (0 turns Cutout off).
    pub cutout: f32,
}

impl Default for AugmentConfig {
    /// FixMatch's settings.
    fn default() -> Self {
        AugmentConfig {
            preset: AugmentPreset::Fixmatch,
            translate: 0.125,
            strong_ops: 3,
            cutout: 0.5,
        }
    }
}

impl AugmentConfig {
    /// The weak and strong views, each checked by its own type (the one place their ranges
    /// are stated).
    fn views(&self) -> Result<(WeakAugment, RandAugment), AugmentError> {
        let (weak, ops, fill) = match self.preset {
            AugmentPreset::Fixmatch => (
                WeakConfig::fixmatch(),
                Op::FIXMATCH.into_iter().map(OpSpec::fixmatch).collect(),
                CutoutFill::FixMatchGrey,
            ),
            AugmentPreset::Astro => (WeakConfig::astro(), astro_ops(), CutoutFill::ChannelMean),
        };
        let weak = WeakAugment::new(WeakConfig {
            max_shift: self.translate,
            ..weak
        })?;
        let cutout = (self.cutout > 0.0).then_some(Cutout {
            max_fraction: self.cutout,
            fill,
        });
        Ok((weak, RandAugment::new(ops, self.strong_ops, cutout)?))
    }
}

impl Check for AugmentConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        if self.strong_ops > 16 {
            errors.push(format!(
                "{}: must be at most 16, got {}",
                key(prefix, "strong_ops"),
                self.strong_ops
            ));
        }
        if let Err(e) = self.views() {
            let field = match &e {
                AugmentError::Config(m) if m.contains("max_shift") => "translate",
                AugmentError::Config(m) if m.contains("cutout") => "cutout",
                _ => "preset",
            };
            errors.push(format!("{}: {e}", key(prefix, field)));
        }
    }
}

impl Build<()> for AugmentConfig {
    type Output = FixMatchAugmenter;
    type Error = AugmentError;

    fn build_checked(config: &Checked<Self>, _: ()) -> Result<FixMatchAugmenter, AugmentError> {
        let (weak, strong) = config.views()?;
        Ok(FixMatchAugmenter::new(weak, strong))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_fixmatch_and_keys_are_named() {
        // The defaults are FixMatch as published, and `astro` changes what its docs say.
        let built = AugmentConfig::default().check().unwrap().build(()).unwrap();
        let published = FixMatchAugmenter::new(
            WeakAugment::new(WeakConfig::fixmatch()).unwrap(),
            RandAugment::fixmatch(),
        );
        assert_eq!(built, published);
        let astro = AugmentConfig {
            preset: AugmentPreset::Astro,
            ..AugmentConfig::default()
        };
        let cutout = Cutout {
            max_fraction: 0.5,
            fill: CutoutFill::ChannelMean,
        };
        let documented = FixMatchAugmenter::new(
            WeakAugment::new(WeakConfig::astro()).unwrap(),
            RandAugment::new(astro_ops(), 3, Some(cutout)).unwrap(),
        );
        assert_eq!(astro.check().unwrap().build(()).unwrap(), documented);
        let mut errors = Vec::new();
        AugmentConfig {
            translate: 0.9,
            strong_ops: 40,
            ..AugmentConfig::default()
        }
        .check_into("augment", &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("augment.strong_ops:"), "{errors:?}");
        assert!(errors[1].starts_with("augment.translate:"), "{errors:?}");
    }
}
