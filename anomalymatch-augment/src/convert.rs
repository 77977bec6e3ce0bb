//! 8-bit images: the augmenters work on `f32`, so `u8` pixels are converted on the way in and out.
//!
//! Levels map to `v / 255` and back with rounding. For 8-bit inputs the geometric ops, Equalize,
//! Posterize and Solarize then give exactly PIL's levels, and the blends and AutoContrast are
//! within one or two levels of PIL's (PIL truncates where we round; see [`crate::ops::colour`]).

use anomalymatch_core::{ImageBatch, Result};

/// A batch from 8-bit values laid out `[n, channels, height, width]`.
pub fn batch_from_u8(
    data: &[u8],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<ImageBatch> {
    let values = data.iter().map(|&v| v as f32 / 255.0).collect();
    ImageBatch::from_vec(values, channels, height, width)
}

/// The batch's values as 8-bit levels, `round(255 v)` clipped to `[0, 255]`.
pub fn batch_to_u8(images: &ImageBatch) -> Vec<u8> {
    images
        .as_slice()
        .iter()
        .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_level() {
        let levels: Vec<u8> = (0..=255).collect();
        let b = batch_from_u8(&levels, 1, 16, 16).unwrap();
        assert_eq!(b.as_slice()[255], 1.0);
        assert_eq!(batch_to_u8(&b), levels);
        assert!(batch_from_u8(&levels, 3, 16, 16).is_err());
    }
}
