//! Augmentations for FixMatch (Sohn et al., NeurIPS 2020, arXiv 2001.07685) as AnomalyMatch
//! (Gómez et al., arXiv 2505.03509) uses them.
//!
//! - The weak view ([`WeakAugment`]): random flip and a small random shift with reflection
//!   padding.
//! - The strong view ([`RandAugment`]): `n` ops drawn from a list such as FixMatch's fourteen
//!   ([`Op::FIXMATCH`]), each with a random magnitude, then [`Cutout`]. The ops follow PIL's
//!   definitions, which FixMatch's RandAugment calls; [`ops::colour`] and [`ops::geometry`] say
//!   exactly how and where working in `f32` differs.
//! - [`FixMatchAugmenter`] joins both into core's [`anomalymatch_core::Augmenter`], with presets
//!   [`FixMatchAugmenter::fixmatch`] and [`FixMatchAugmenter::astro`] for sky images.
//!
//! Images are core's [`anomalymatch_core::ImageBatch`] (`f32` in `[0, 1]`, any number of
//! channels); 8-bit pixels come in and out through [`anomalymatch_core::ImageStore`]. Every
//! image gets its own generator, `item_rng(seed, stream, index)`, and batches are processed in
//! parallel with rayon, so the output for a seed is the same whatever the number of threads.

pub mod config;
pub mod cutout;
pub mod error;
pub mod ops;
mod parallel;
pub mod presets;
pub mod randaugment;
pub mod weak;

pub use config::{AugmentConfig, AugmentPreset};
pub use cutout::{Cutout, CutoutFill};
pub use error::{AugmentError, Result};
pub use ops::{Op, OpSpec};
pub use presets::{FixMatchAugmenter, astro_ops};
pub use randaugment::{RandAugment, STRONG_STREAM};
pub use weak::{Padding, WEAK_STREAM, WeakAugment, WeakConfig};
