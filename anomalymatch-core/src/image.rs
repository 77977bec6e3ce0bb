//! Batches of images the augmentations and the network work on: contiguous `f32` in `[N, C, H, W]`
//! order, values in `[0, 1]`. Images held in memory wait as bytes in [`crate::ImageStore`].

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// A batch of same-sized images stored contiguously, channel-first (CHW per image).
///
/// Augmentations work on this type in parallel on the CPU; [`ImageBatch::to_tensor`] hands it to
/// a model on any device.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    data: Vec<f32>,
    channels: usize,
    height: usize,
    width: usize,
}

impl ImageBatch {
    /// An all-zero batch of `n` images.
    pub fn zeros(n: usize, channels: usize, height: usize, width: usize) -> Self {
        ImageBatch {
            data: vec![0.0; n * channels * height * width],
            channels,
            height,
            width,
        }
    }

    /// Wraps `data` laid out as `[n, channels, height, width]`; its length must be a whole number of images.
    pub fn from_vec(data: Vec<f32>, channels: usize, height: usize, width: usize) -> Result<Self> {
        let per = channels * height * width;
        if per == 0 || !data.len().is_multiple_of(per) {
            return Err(Error::Shape(format!(
                "{} values is not a whole number of {channels}x{height}x{width} images",
                data.len()
            )));
        }
        Ok(ImageBatch {
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

    /// True when the batch holds no image.
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

    /// Values per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The `i`-th image as CHW values.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// The `i`-th image, mutable.
    pub fn image_mut(&mut self, i: usize) -> &mut [f32] {
        let n = self.image_len();
        &mut self.data[i * n..(i + 1) * n]
    }

    /// All values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// All values, mutable; chunk by [`ImageBatch::image_len`] to work per image.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Gives up the storage.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// A new batch made of the images at `indices` (repeats allowed), in that order.
    pub fn select(&self, indices: &[usize]) -> Result<ImageBatch> {
        let n = self.len();
        let per = self.image_len();
        let mut data = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            if i >= n {
                return Err(Error::InvalidArgument(format!(
                    "image index {i} out of range for a batch of {n}"
                )));
            }
            data.extend_from_slice(self.image(i));
        }
        Ok(ImageBatch {
            data,
            channels: self.channels,
            height: self.height,
            width: self.width,
        })
    }

    /// Appends the images of `other`, which must have the same image shape.
    pub fn extend(&mut self, other: &ImageBatch) -> Result<()> {
        if self.data.is_empty() {
            self.channels = other.channels;
            self.height = other.height;
            self.width = other.width;
        } else if (self.channels, self.height, self.width)
            != (other.channels, other.height, other.width)
        {
            return Err(Error::Shape(format!(
                "cannot append {}x{}x{} images to a batch of {}x{}x{}",
                other.channels, other.height, other.width, self.channels, self.height, self.width
            )));
        }
        self.data.extend_from_slice(&other.data);
        Ok(())
    }

    /// Copies the batch into a `[N, C, H, W]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let shape = (self.len(), self.channels, self.height, self.width);
        Ok(Tensor::from_slice(&self.data, shape, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_extend() {
        let b = ImageBatch::from_vec((0..12).map(|v| v as f32).collect(), 1, 2, 2).unwrap();
        assert_eq!(b.len(), 3);
        let s = b.select(&[2, 0, 2]).unwrap();
        assert_eq!(s.image(0), &[8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.image(1), &[0.0, 1.0, 2.0, 3.0]);
        assert!(b.select(&[3]).is_err());
        let mut e = ImageBatch::zeros(0, 1, 2, 2);
        e.extend(&b).unwrap();
        assert_eq!(e.len(), 3);
        assert!(e.extend(&ImageBatch::zeros(1, 3, 2, 2)).is_err());
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
