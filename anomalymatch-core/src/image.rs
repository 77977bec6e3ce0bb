//! Same-sized images stored contiguously in `[N, C, H, W]` order: [`ImageBatch`] as `f32` in
//! `[0, 1]` for the augmentations and the network, and [`crate::ImageStore`] as bytes for images
//! held in memory. Both are [`Images`], generic over the [`Sample`] type.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// A pixel sample type images can be stored in; each stands for a value in `[0, 1]`.
pub trait Sample: Copy + Default + Send + Sync + 'static {
    /// The value in `[0, 1]` this sample stands for.
    fn value(self) -> f32;

    /// The sample nearest `v`.
    fn from_value(v: f32) -> Self;
}

impl Sample for f32 {
    fn value(self) -> f32 {
        self
    }

    fn from_value(v: f32) -> Self {
        v
    }
}

/// Images as `f32` values in `[0, 1]`: what augmentations work on in parallel on the CPU, and
/// what [`ImageBatch::to_tensor`] hands to a model on any device.
pub type ImageBatch = Images<f32>;

/// Same-sized images stored contiguously, channel-first (CHW per image).
#[derive(Debug, Clone, PartialEq)]
pub struct Images<T> {
    data: Vec<T>,
    channels: usize,
    height: usize,
    width: usize,
}

impl<T: Sample> Images<T> {
    /// Bytes a stored sample takes.
    pub const SAMPLE_BYTES: usize = std::mem::size_of::<T>();

    /// No image yet, for images of the given shape.
    pub fn empty(channels: usize, height: usize, width: usize) -> Self {
        Self::zeros(0, channels, height, width)
    }

    /// `n` all-zero images.
    pub fn zeros(n: usize, channels: usize, height: usize, width: usize) -> Self {
        Images {
            data: vec![T::default(); n * channels * height * width],
            channels,
            height,
            width,
        }
    }

    /// Wraps `data` laid out as `[n, channels, height, width]`; its length must be a whole number of images.
    pub fn from_vec(data: Vec<T>, channels: usize, height: usize, width: usize) -> Result<Self> {
        let per = channels * height * width;
        if per == 0 || !data.len().is_multiple_of(per) {
            return Err(Error::Shape(format!(
                "{} values is not a whole number of {channels}x{height}x{width} images",
                data.len()
            )));
        }
        Ok(Images {
            data,
            channels,
            height,
            width,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.image_len()).unwrap_or(0)
    }

    /// True when there is no image.
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

    /// The `i`-th image as CHW samples.
    pub fn image(&self, i: usize) -> &[T] {
        let n = self.image_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// The `i`-th image, mutable.
    pub fn image_mut(&mut self, i: usize) -> &mut [T] {
        let n = self.image_len();
        &mut self.data[i * n..(i + 1) * n]
    }

    /// All samples.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// All samples, mutable; chunk by [`Images::image_len`] to work per image.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives up the storage.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The images at `indices` (repeats allowed), in that order, as `f32` values in `[0, 1]`.
    pub fn select(&self, indices: &[usize]) -> Result<ImageBatch> {
        let mut data = Vec::with_capacity(indices.len() * self.image_len());
        for i in self.checked(indices)? {
            data.extend(self.image(i).iter().map(|&q| q.value()));
        }
        Images::from_vec(data, self.channels, self.height, self.width)
    }

    /// Every image as `f32` values in `[0, 1]`.
    pub fn to_batch(&self) -> ImageBatch {
        self.map(T::value)
    }

    /// The same images with `f` applied to every sample; [`Images::to_batch`] and
    /// [`crate::ImageStore::quantize`] are the two conversions.
    pub(crate) fn map<U: Sample>(&self, f: impl Fn(T) -> U) -> Images<U> {
        Images {
            data: self.data.iter().map(|&q| f(q)).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// The images at `indices` (repeats allowed), in that order, stored as these are.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let mut data = Vec::with_capacity(indices.len() * self.image_len());
        for i in self.checked(indices)? {
            data.extend_from_slice(self.image(i));
        }
        Ok(Images {
            data,
            channels: self.channels,
            height: self.height,
            width: self.width,
        })
    }

    /// The images among `names` (these images' names, in order) that `wanted` names, in
    /// `wanted`'s order, with their names; wanted names not in `names` are left out.
    pub fn select_named<S: AsRef<str>>(
        &self,
        names: &[String],
        wanted: &[S],
    ) -> Result<(Vec<String>, Self)> {
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

    /// Appends the images of `other`, which must have the same image shape unless there is no
    /// image yet.
    pub fn extend(&mut self, other: &Self) -> Result<()> {
        if self.data.is_empty() {
            (self.channels, self.height, self.width) = (other.channels, other.height, other.width);
        } else if (self.channels, self.height, self.width)
            != (other.channels, other.height, other.width)
        {
            return Err(Error::Shape(format!(
                "cannot append {}x{}x{} images to {}x{}x{} ones",
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

impl ImageBatch {
    /// Copies the batch into a `[N, C, H, W]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let shape = (self.len(), self.channels, self.height, self.width);
        Ok(Tensor::from_slice(&self.data, shape, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> ImageBatch {
        ImageBatch::from_vec((0..12).map(|v| v as f32).collect(), 1, 2, 2).unwrap()
    }

    #[test]
    fn select_subset_and_extend() {
        let b = batch();
        assert_eq!(b.len(), 3);
        let s = b.select(&[2, 0, 2]).unwrap();
        assert_eq!(s.image(0), &[8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.image(1), &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(b.subset(&[2, 0, 2]).unwrap(), s);
        assert!(b.select(&[3]).is_err());
        assert!(b.subset(&[0, 3]).is_err());
        let mut e = ImageBatch::empty(1, 2, 2);
        e.extend(&b).unwrap();
        assert_eq!(e.len(), 3);
        assert!(e.extend(&ImageBatch::zeros(1, 3, 2, 2)).is_err());
    }

    #[test]
    fn select_named_follows_the_wanted_order_and_skips_strangers() {
        let b = batch();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let (picked, images) = b.select_named(&names, &["c", "x", "a"]).unwrap();
        assert_eq!(picked, ["c", "a"]);
        assert_eq!(images.image(0), b.image(2));
        assert_eq!(images.image(1), b.image(0));
    }

    #[test]
    fn rejects_partial_images() {
        assert!(ImageBatch::from_vec(vec![0.0; 5], 1, 2, 2).is_err());
    }

    #[test]
    fn to_tensor_has_nchw_shape() {
        let b = ImageBatch::zeros(2, 3, 4, 5);
        let t = b.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 4, 5]);
    }
}
