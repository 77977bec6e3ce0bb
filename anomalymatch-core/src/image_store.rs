//! Decoded images held in memory as 8-bit values: the labelled set, the pool's window and each
//! chunk the loader decodes.
//!
//! A pool of 6,608 RGB images at 96 px is 0.73 GB as `f32` and 0.18 GB as bytes. The loader
//! rounds every image to 256 levels once, as it decodes it, so training, scoring and the
//! labelling page all see the same pixels; 8 bits per sample is also what the original
//! AnomalyMatch and the surveys' own cutout services give. [`crate::Images::select`] hands out
//! `f32` copies, an [`ImageBatch`], for augmentation and the network.

use crate::image::{ImageBatch, Images, Sample};

/// The largest stored level, which stands for 1.0.
const TOP: f32 = 255.0;

/// Same-sized images stored contiguously as bytes, channel-first (CHW per image); level `q`
/// stands for the value `q / 255`.
pub type ImageStore = Images<u8>;

impl Sample for u8 {
    /// `q / 255` exactly as decoding 8-bit files gives it, so such images pass through the
    /// store unchanged.
    fn value(self) -> f32 {
        f32::from(self) / TOP
    }

    /// The level nearest `v`, clamped to `[0, 1]` first.
    fn from_value(v: f32) -> Self {
        // `as` saturates, and sends NaN to 0.
        (v.clamp(0.0, 1.0) * TOP).round() as u8
    }
}

impl ImageStore {
    /// `batch` rounded to the nearest of 256 levels; values outside `[0, 1]` (and NaN) are
    /// clamped into it.
    pub fn quantize(batch: &ImageBatch) -> Self {
        batch.map(u8::from_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_the_nearest_level_and_clamps() {
        let batch = ImageBatch::from_vec(vec![-0.5, 0.0, 0.5, 1.0, 7.0, f32::NAN], 1, 1, 6);
        let s = ImageStore::quantize(&batch.unwrap());
        assert_eq!(s.image(0), &[0, 0, 128, 255, 255, 0]);
        // Values within half a level come back to the level's value.
        let v = 100.4 / 255.0;
        let back = ImageStore::quantize(&ImageBatch::from_vec(vec![v], 1, 1, 1).unwrap());
        assert_eq!(back.to_batch().as_slice(), &[100.0 / 255.0]);
    }

    #[test]
    fn eight_bit_values_pass_unchanged() {
        let values: Vec<f32> = (0..=255u8).map(|q| f32::from(q) / 255.0).collect();
        let batch = ImageBatch::from_vec(values, 1, 16, 16).unwrap();
        assert_eq!(ImageStore::quantize(&batch).to_batch(), batch);
    }

    #[test]
    fn bytes_select_to_their_values_and_subset_as_bytes() {
        let values = (0..12).map(|v| v as f32 / 11.0).collect();
        let s = ImageStore::quantize(&ImageBatch::from_vec(values, 1, 2, 2).unwrap());
        let picked = s.select(&[2, 0]).unwrap();
        assert_eq!(picked.image(0), s.to_batch().image(2));
        assert_eq!(picked.image(1), s.to_batch().image(0));
        assert_eq!(s.subset(&[1]).unwrap().image(0), s.image(1));
        assert_eq!(ImageStore::SAMPLE_BYTES, 1);
    }
}
