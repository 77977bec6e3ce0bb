//! Errors of the augmentation crate; they convert into core's [`anomalymatch_core::Error`].

use crate::ops::Op;

/// Result alias used throughout `anomalymatch-augment`.
pub type Result<T, E = AugmentError> = std::result::Result<T, E>;

/// Everything that can go wrong when building or applying augmentations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// An op's magnitude range is reversed, not finite, or outside what the op accepts.
    #[error("{op:?}: magnitude range ({lo}, {hi}) is invalid: {reason}")]
    OpRange {
        /// The op concerned.
        op: Op,
        /// Lower end of the rejected range.
        lo: f32,
        /// Upper end of the rejected range.
        hi: f32,
        /// What the op accepts.
        reason: String,
    },
    /// A RandAugment, weak-view or Cutout setting is out of range.
    #[error("invalid augmentation setting: {0}")]
    Config(String),
    /// The images cannot be augmented as configured (e.g. quarter turns of non-square images).
    #[error("cannot augment these images: {0}")]
    Shape(String),
}

impl From<AugmentError> for anomalymatch_core::Error {
    fn from(e: AugmentError) -> Self {
        anomalymatch_core::Error::InvalidArgument(e.to_string())
    }
}
