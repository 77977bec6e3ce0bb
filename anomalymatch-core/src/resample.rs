//! Antialiased resizing of image planes with a separable triangle (linear) filter.
//!
//! When shrinking, the filter is stretched over the shrink factor so that every source pixel
//! contributes (area-weighted averaging, no aliasing of fine structure such as tidal tails); when
//! enlarging it is plain linear interpolation. Weights are normalised per output pixel, so a
//! constant image stays exactly constant. The filter is linear and separable, so channels can be
//! mixed (e.g. into luma) after resizing instead of before, which is cheaper.

/// A sample type images are stored in, read as `f32` in its own units (0..=255 for `u8`).
pub(crate) trait Sample: Copy + Send + Sync {
    /// The value as `f32`.
    fn to_f32(self) -> f32;
}

impl Sample for u8 {
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
}

impl Sample for u16 {
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
}

impl Sample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

/// Where the samples of one channel plane lie in a buffer (interleaved or planar alike).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlaneLayout {
    /// Index of the top-left sample.
    pub offset: usize,
    /// Distance between horizontally adjacent samples.
    pub pixel_stride: usize,
    /// Distance between vertically adjacent samples.
    pub row_stride: usize,
}

/// Filter taps along one axis: output pixel `i` is the weighted sum of `count[i]` source pixels
/// from `start[i]`, with weights `weights[i * max_taps..]`.
#[derive(Debug, Clone)]
struct Axis {
    start: Vec<usize>,
    count: Vec<usize>,
    weights: Vec<f32>,
    max_taps: usize,
}

impl Axis {
    fn new(src: usize, dst: usize) -> Axis {
        let ratio = src as f64 / dst as f64;
        let scale = ratio.max(1.0);
        // Triangle of radius 1 output pixel, i.e. `scale` source pixels.
        let support = scale;
        let max_taps = (2.0 * support).ceil() as usize + 2;
        let mut axis = Axis {
            start: Vec::with_capacity(dst),
            count: Vec::with_capacity(dst),
            weights: vec![0.0; dst * max_taps],
            max_taps,
        };
        for i in 0..dst {
            let center = (i as f64 + 0.5) * ratio;
            let lo = (center - support).floor().max(0.0) as usize;
            let hi = ((center + support).ceil() as usize).min(src);
            let w = &mut axis.weights[i * max_taps..(i + 1) * max_taps];
            let mut sum = 0.0;
            for (k, j) in (lo..hi).enumerate() {
                let x = (j as f64 + 0.5 - center) / scale;
                let v = (1.0 - x.abs()).max(0.0);
                w[k] = v as f32;
                sum += v;
            }
            // The source pixel under the centre is always within half a pixel, so sum > 0.
            for v in &mut w[..hi - lo] {
                *v = (f64::from(*v) / sum) as f32;
            }
            axis.start.push(lo);
            axis.count.push(hi - lo);
        }
        axis
    }

    fn taps(&self, i: usize) -> (usize, &[f32]) {
        let w = &self.weights[i * self.max_taps..i * self.max_taps + self.count[i]];
        (self.start[i], w)
    }
}

/// Resizes planes of one fixed source size to one fixed output size, reusing its filters.
#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    src_h: usize,
    dst_w: usize,
    dst_h: usize,
    horizontal: Axis,
    vertical: Axis,
    scratch: Vec<f32>,
}

impl Resampler {
    /// Filters for `src_w x src_h` to `dst_w x dst_h` (all non-zero).
    pub fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Resampler {
        Resampler {
            src_h,
            dst_w,
            dst_h,
            horizontal: Axis::new(src_w, dst_w),
            vertical: Axis::new(src_h, dst_h),
            scratch: vec![0.0; src_h * dst_w],
        }
    }

    /// Resizes the plane of `data` at `layout` into `out` (`dst_w * dst_h` values, row-major),
    /// keeping the samples' units.
    pub fn resample<T: Sample>(&mut self, data: &[T], layout: PlaneLayout, out: &mut [f32]) {
        // Horizontal pass first: it shrinks the rows before the vertical pass reads them.
        for y in 0..self.src_h {
            let row = layout.offset + y * layout.row_stride;
            let tmp = &mut self.scratch[y * self.dst_w..(y + 1) * self.dst_w];
            for (x, t) in tmp.iter_mut().enumerate() {
                let (start, w) = self.horizontal.taps(x);
                let mut acc = 0.0;
                let mut idx = row + start * layout.pixel_stride;
                for &wk in w {
                    acc += wk * data[idx].to_f32();
                    idx += layout.pixel_stride;
                }
                *t = acc;
            }
        }
        // Vertical pass over whole rows, which the compiler vectorises.
        for y in 0..self.dst_h {
            let (start, w) = self.vertical.taps(y);
            let dst = &mut out[y * self.dst_w..(y + 1) * self.dst_w];
            dst.fill(0.0);
            for (k, &wk) in w.iter().enumerate() {
                let src = &self.scratch[(start + k) * self.dst_w..(start + k + 1) * self.dst_w];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += wk * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planar(w: usize) -> PlaneLayout {
        PlaneLayout {
            offset: 0,
            pixel_stride: 1,
            row_stride: w,
        }
    }

    #[test]
    fn constant_stays_constant() {
        for (sw, sh, dw, dh) in [(423, 423, 96, 96), (10, 7, 33, 20), (5, 5, 5, 5)] {
            let data = vec![137u8; sw * sh];
            let mut out = vec![0.0; dw * dh];
            Resampler::new(sw, sh, dw, dh).resample(&data, planar(sw), &mut out);
            assert!(out.iter().all(|&v| (v - 137.0).abs() < 1e-3), "{sw}x{sh}");
        }
    }

    #[test]
    fn same_size_is_identity_and_shrinking_averages() {
        let data: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0.0; 16];
        Resampler::new(4, 4, 4, 4).resample(&data, planar(4), &mut out);
        assert_eq!(out, data);
        // A 2x shrink of a checkerboard averages to grey: no aliasing.
        let board: Vec<f32> = (0..64).map(|i| ((i / 8 + i % 8) % 2) as f32).collect();
        let mut small = vec![0.0; 16];
        Resampler::new(8, 8, 4, 4).resample(&board, planar(8), &mut small);
        assert!(small.iter().all(|&v| (v - 0.5).abs() < 0.13), "{small:?}");
    }

    #[test]
    fn reads_interleaved_channels() {
        // Two channels interleaved: channel 1 is constant 9, channel 0 is 1.
        let data: Vec<u16> = (0..2 * 6 * 6)
            .map(|i| if i % 2 == 0 { 1 } else { 9 })
            .collect();
        let mut out = vec![0.0; 9];
        let layout = PlaneLayout {
            offset: 1,
            pixel_stride: 2,
            row_stride: 12,
        };
        Resampler::new(6, 6, 3, 3).resample(&data, layout, &mut out);
        assert!(out.iter().all(|&v| (v - 9.0).abs() < 1e-4));
    }
}
