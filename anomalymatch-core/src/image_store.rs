//! Decoded images held in memory as 8-bit values: the labelled set, the pool's window and each
//! chunk the loader decodes.
//!
//! A pool of 6,608 RGB images at 96 px is 0.73 GB as `f32` and 0.18 GB as bytes. The loader
//! rounds every image to 256 levels once, as it decodes it, so training, scoring and the
//! labelling page all see the same pixels; 8 bits per sample is also what the original
//! AnomalyMatch and the surveys' own cutout services give. [`ImageStore::select`] hands out
//! `f32` copies, an [`ImageBatch`], for augmentation and the network.

use crate::error::{Error, Result};
use crate::image::ImageBatch;

/// The largest stored level, which stands for 1.0.
const TOP: f32 = 255.0;

/// Same-sized images stored contiguously as bytes, channel-first (CHW per image); level `q`
/// stands for the value `q / 255`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageStore {
    data: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
}

impl ImageStore {
    /// Bytes a stored sample takes.
    pub const SAMPLE_BYTES: usize = std::mem::size_of::<u8>();

    /// A store with no image yet, for images of the given shape.
    pub fn empty(channels: usize, height: usize, width: usize) -> Self {
        ImageStore {
            data: Vec::new(),
            channels,
            height,
            width,
        }
    }

    /// `batch` rounded to the nearest of 256 levels; values outside `[0, 1]` (and NaN) are
    /// clamped into it.
    pub fn quantize(batch: &ImageBatch) -> Self {
        ImageStore {
            data: batch.as_slice().iter().map(|&v| level(v)).collect(),
            channels: batch.channels(),
            height: batch.height(),
            width: batch.width(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.image_len()).unwrap_or(0)
    }

    /// True when the store holds no image.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Channels per image.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Samples per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The `i`-th image's levels, CHW.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// The images at `indices` (repeats allowed), in that order, as `f32` values in `[0, 1]`.
    pub fn select(&self, indices: &[usize]) -> Result<ImageBatch> {
        let mut data = Vec::with_capacity(indices.len() * self.image_len());
        for i in self.checked(indices)? {
            data.extend(self.image(i).iter().map(|&q| value(q)));
        }
        ImageBatch::from_vec(data, self.channels, self.height, self.width)
    }

    /// Every image as `f32` values in `[0, 1]`.
    pub fn to_batch(&self) -> Result<ImageBatch> {
        let data = self.data.iter().map(|&q| value(q)).collect();
        ImageBatch::from_vec(data, self.channels, self.height, self.width)
    }

    /// A new store of the images at `indices` (repeats allowed), in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<ImageStore> {
        let mut data = Vec::with_capacity(indices.len() * self.image_len());
        for i in self.checked(indices)? {
            data.extend_from_slice(self.image(i));
        }
        Ok(ImageStore {
            data,
            channels: self.channels,
            height: self.height,
            width: self.width,
        })
    }

    /// The images among `names` (this store's names, in its order) that `wanted` names, in
    /// `wanted`'s order, with their names; wanted names not in `names` are left out.
    pub fn select_named<S: AsRef<str>>(
        &self,
        names: &[String],
        wanted: &[S],
    ) -> Result<(Vec<String>, ImageStore)> {
        let at: std::collections::HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let idx: Vec<usize> = wanted
            .iter()
            .filter_map(|n| at.get(n.as_ref()).copied())
            .collect();
        let picked = idx.iter().map(|&i| names[i].clone()).collect();
        Ok((picked, self.subset(&idx)?))
    }

    /// Appends the images of `other`, which must have the same image shape unless this store is
    /// empty.
    pub fn extend(&mut self, other: &ImageStore) -> Result<()> {
        if self.data.is_empty() {
            (self.channels, self.height, self.width) = (other.channels, other.height, other.width);
        } else if (self.channels, self.height, self.width)
            != (other.channels, other.height, other.width)
        {
            return Err(Error::Shape(format!(
                "cannot append {}x{}x{} images to a store of {}x{}x{}",
                other.channels, other.height, other.width, self.channels, self.height, self.width
            )));
        }
        self.data.extend_from_slice(&other.data);
        Ok(())
    }

    /// `indices`, once each is known to name an image.
    fn checked<'a>(&self, indices: &'a [usize]) -> Result<impl Iterator<Item = usize> + 'a> {
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::InvalidArgument(format!(
                "image index {bad} out of range for {n} images"
            )));
        }
        Ok(indices.iter().copied())
    }
}

/// The level nearest `v`, clamped to `[0, 1]` first.
fn level(v: f32) -> u8 {
    // `as` saturates, and sends NaN to 0.
    (v.clamp(0.0, 1.0) * TOP).round() as u8
}

/// The value level `q` stands for; `q / 255` exactly as decoding 8-bit files gives it, so
/// such images pass through the store unchanged.
fn value(q: u8) -> f32 {
    f32::from(q) / TOP
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> ImageStore {
        let values = (0..12).map(|v| v as f32 / 11.0).collect();
        ImageStore::quantize(&ImageBatch::from_vec(values, 1, 2, 2).unwrap())
    }

    #[test]
    fn rounds_to_the_nearest_level_and_clamps() {
        let batch = ImageBatch::from_vec(vec![-0.5, 0.0, 0.5, 1.0, 7.0, f32::NAN], 1, 1, 6);
        let s = ImageStore::quantize(&batch.unwrap());
        assert_eq!(s.image(0), &[0, 0, 128, 255, 255, 0]);
        // Values within half a level come back to the level's value.
        let v = 100.4 / 255.0;
        let back = ImageStore::quantize(&ImageBatch::from_vec(vec![v], 1, 1, 1).unwrap());
        assert_eq!(back.to_batch().unwrap().as_slice(), &[100.0 / 255.0]);
    }

    #[test]
    fn eight_bit_values_pass_unchanged() {
        let values: Vec<f32> = (0..=255u8).map(|q| f32::from(q) / 255.0).collect();
        let batch = ImageBatch::from_vec(values, 1, 16, 16).unwrap();
        assert_eq!(ImageStore::quantize(&batch).to_batch().unwrap(), batch);
    }

    #[test]
    fn select_subset_and_extend() {
        let s = store();
        assert_eq!(s.len(), 3);
        let picked = s.select(&[2, 0, 2]).unwrap();
        assert_eq!(picked.image(0), s.to_batch().unwrap().image(2));
        assert_eq!(picked.image(1), s.to_batch().unwrap().image(0));
        assert!(s.select(&[3]).is_err());
        assert!(s.subset(&[0, 3]).is_err());
        let sub = s.subset(&[1]).unwrap();
        assert_eq!(sub.image(0), s.image(1));
        let mut e = ImageStore::empty(1, 2, 2);
        e.extend(&s).unwrap();
        assert_eq!(e.len(), 3);
        let three = ImageStore::quantize(&ImageBatch::zeros(1, 3, 2, 2));
        assert!(e.extend(&three).is_err());
    }

    #[test]
    fn select_named_follows_the_wanted_order_and_skips_strangers() {
        let s = store();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let (picked, images) = s.select_named(&names, &["c", "x", "a"]).unwrap();
        assert_eq!(picked, ["c", "a"]);
        assert_eq!(images.image(0), s.image(2));
        assert_eq!(images.image(1), s.image(0));
    }
}
