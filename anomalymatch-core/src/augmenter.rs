//! The augmenter trait: FixMatch's two views of a batch.

use crate::error::Result;
use crate::image::ImageBatch;

/// Produces FixMatch's weak and strong views of a batch of images.
///
/// Both methods are seeded so that a run can be repeated exactly; implementations must give
/// the same output for the same seed whatever the number of threads (derive one generator
/// per image with [`crate::rng::item_rng`]).
pub trait Augmenter: Send + Sync {
    /// The weak view (flip and small shift in the original), whose predictions become pseudo-labels.
    fn weak(&self, images: &ImageBatch, seed: u64) -> Result<ImageBatch>;

    /// The strong view (RandAugment and Cutout in the original), trained to match the pseudo-labels.
    fn strong(&self, images: &ImageBatch, seed: u64) -> Result<ImageBatch>;
}

/// An augmenter that returns its input unchanged: a baseline and a test double.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityAugmenter;

impl Augmenter for IdentityAugmenter {
    fn weak(&self, images: &ImageBatch, _seed: u64) -> Result<ImageBatch> {
        Ok(images.clone())
    }

    fn strong(&self, images: &ImageBatch, _seed: u64) -> Result<ImageBatch> {
        Ok(images.clone())
    }
}
