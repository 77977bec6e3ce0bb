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

/// Where an image's rows lie in a buffer: `channels` interleaved samples per pixel, rows of
/// `src_w * channels` contiguous samples `row_stride` apart (planar data is one channel per call).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowLayout {
    /// Index of the first sample of the top row.
    pub offset: usize,
    /// Distance between the starts of consecutive rows.
    pub row_stride: usize,
    /// Interleaved channels per pixel.
    pub channels: usize,
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
        axis.tighten();
        axis
    }

    /// Shrinks the weight stride to the largest tap count actually used, so that padded
    /// zero taps cost nothing in the tap-major loop.
    fn tighten(&mut self) {
        let used = self.count.iter().copied().max().unwrap_or(0).max(1);
        if used == self.max_taps {
            return;
        }
        let mut weights = vec![0.0; self.count.len() * used];
        for (i, dst) in weights.chunks_exact_mut(used).enumerate() {
            dst.copy_from_slice(&self.weights[i * self.max_taps..i * self.max_taps + used]);
        }
        self.weights = weights;
        self.max_taps = used;
    }

    fn taps(&self, i: usize) -> (usize, &[f32]) {
        let w = &self.weights[i * self.max_taps..i * self.max_taps + self.count[i]];
        (self.start[i], w)
    }
}

/// Resizes images of one fixed source size to one fixed output size, reusing its filters.
#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    src_w: usize,
    dst_w: usize,
    dst_h: usize,
    horizontal: Axis,
    vertical: Axis,
    /// Horizontal weights transposed to `[tap][output x]`.
    horizontal_by_tap: Vec<f32>,
}

impl Resampler {
    /// Filters for `src_w x src_h` to `dst_w x dst_h` (all non-zero).
    pub fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Resampler {
        let horizontal = Axis::new(src_w, dst_w);
        let taps = horizontal.max_taps;
        let mut horizontal_by_tap = vec![0.0; taps * dst_w];
        for x in 0..dst_w {
            for k in 0..taps {
                horizontal_by_tap[k * dst_w + x] = horizontal.weights[x * taps + k];
            }
        }
        Resampler {
            src_w,
            dst_w,
            dst_h,
            vertical: Axis::new(src_h, dst_h),
            horizontal_by_tap,
            horizontal,
        }
    }

    /// Resizes the image of `data` at `layout` into `out`: one `dst_w * dst_h` plane per channel,
    /// channel after channel, keeping the samples' units.
    pub fn resample<T: Sample>(&self, data: &[T], layout: RowLayout, out: &mut [f32]) {
        let c = layout.channels;
        let row_len = self.src_w * c;
        let taps = self.horizontal.max_taps;
        let plane = self.dst_w * self.dst_h;
        // One vertically filtered row, followed by `taps` pixels of zeros so that the padded
        // (zero-weight) taps of the horizontal pass stay in bounds.
        let mut column = vec![0.0f32; (self.src_w + taps) * c];
        for y in 0..self.dst_h {
            // Vertical pass first, over whole interleaved rows: contiguous, all channels at
            // once, and the compiler vectorises the conversion and multiply-add.
            let (start, w) = self.vertical.taps(y);
            let acc = &mut column[..row_len];
            acc.fill(0.0);
            for (k, &wk) in w.iter().enumerate() {
                let first = layout.offset + (start + k) * layout.row_stride;
                for (a, s) in acc.iter_mut().zip(&data[first..first + row_len]) {
                    *a += wk * s.to_f32();
                }
            }
            // Horizontal pass in tap-major order: every output pixel is its own accumulator,
            // so the additions are independent instead of one dependency chain per pixel.
            for ch in 0..c {
                let dst = &mut out[ch * plane + y * self.dst_w..ch * plane + (y + 1) * self.dst_w];
                dst.fill(0.0);
                for k in 0..taps {
                    let wk = &self.horizontal_by_tap[k * self.dst_w..(k + 1) * self.dst_w];
                    for ((d, &w), &start) in dst.iter_mut().zip(wk).zip(&self.horizontal.start) {
                        *d += w * column[(start + k) * c + ch];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planar(w: usize) -> RowLayout {
        RowLayout {
            offset: 0,
            row_stride: w,
            channels: 1,
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
    fn reads_interleaved_channels_into_planes() {
        // Two channels interleaved: channel 0 is 1, channel 1 is 9, after a one-sample offset.
        let mut data: Vec<u16> = vec![500];
        data.extend((0..2 * 6 * 6).map(|i| if i % 2 == 0 { 1 } else { 9 }));
        let mut out = vec![0.0; 18];
        let layout = RowLayout {
            offset: 1,
            row_stride: 12,
            channels: 2,
        };
        Resampler::new(6, 6, 3, 3).resample(&data, layout, &mut out);
        assert!(out[..9].iter().all(|&v| (v - 1.0).abs() < 1e-4));
        assert!(out[9..].iter().all(|&v| (v - 9.0).abs() < 1e-4));
    }
}
