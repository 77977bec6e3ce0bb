//! A dense `k x k` convolution (every input channel to every output channel, as EfficientNet's
//! stem) on the CPU, as an im2col copy followed by the 1x1 convolution's matrix products.
//!
//! `cols [N, C*k*k, OH, OW]` holds, for each output pixel, the `k x k` patch of every input
//! channel it sees; the weight `[Cout, C, k, k]` read as `[Cout, C*k*k, 1, 1]` is then a 1x1
//! convolution of `cols`. candle's own `conv2d` runs on one thread here (see
//! `crate::threads`), and its backward pass also computes the gradient of the input images,
//! which nothing needs; this path computes the input gradient only when asked.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::cpu_f32;

/// Geometry of one dense convolution.
#[derive(Debug, Clone, Copy)]
pub(super) struct Im2Col {
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) padding: (usize, usize),
}

impl Im2Col {
    /// Output rows (columns) for an input of `size` rows (columns).
    fn out_size(&self, size: usize) -> Result<usize> {
        let padded = size + self.padding.0 + self.padding.1;
        if padded < self.k || self.stride == 0 {
            bail!(
                "dense conv: input of {size} pixels with padding {:?} is smaller than the {}x{} kernel",
                self.padding,
                self.k,
                self.k
            );
        }
        Ok((padded - self.k) / self.stride + 1)
    }

    /// The input pixel that patch offset `i` of output pixel `o` reads, if inside the image.
    #[inline(always)]
    fn source(&self, o: usize, i: usize, size: usize) -> Option<usize> {
        (o * self.stride + i)
            .checked_sub(self.padding.0)
            .filter(|&p| p < size)
    }

    /// `x [N, C, H, W] -> cols [N, C*k*k, OH, OW]`, differentiable wrt `x`.
    pub(super) fn cols(self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(self)
    }

    /// The input gradient from the gradient of `cols`: every patch entry adds back to the
    /// pixel it was copied from. `(h, w)` is the input's size.
    pub(super) fn col2im(&self, grad_cols: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let (n, ckk, oh, ow) = grad_cols.dims4()?;
        let kk = self.k * self.k;
        if ckk % kk != 0 || self.out_size(h)? != oh || self.out_size(w)? != ow {
            bail!(
                "dense conv backward: gradient {:?} does not fit",
                grad_cols.shape()
            );
        }
        let c = ckk / kk;
        let g = grad_cols.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut gx = vec![0f32; n * c * h * w];
        // One input plane per task: its pixels only receive from its own channel's patches.
        gx.par_chunks_mut(h * w).enumerate().for_each(|(p, plane)| {
            let (ni, ci) = (p / c, p % c);
            for i in 0..self.k {
                for j in 0..self.k {
                    let row = ((ni * c + ci) * kk + i * self.k + j) * oh * ow;
                    for y in 0..oh {
                        let Some(sy) = self.source(y, i, h) else {
                            continue;
                        };
                        for x in 0..ow {
                            if let Some(sx) = self.source(x, j, w) {
                                plane[sy * w + sx] += g[row + y * ow + x];
                            }
                        }
                    }
                }
            }
        });
        Tensor::from_vec(gx, (n, c, h, w), grad_cols.device())
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = (self.out_size(h)?, self.out_size(w)?);
        let x = cpu_f32(s, l)?;
        let (k, ohw) = (self.k, oh * ow);
        let mut out = super::uninit(n * c * k * k * ohw);
        // One output row (an input channel's patch offset) per task.
        out.par_chunks_mut(ohw).enumerate().for_each(|(r, dst)| {
            let (plane, ij) = (r / (k * k), r % (k * k));
            let (i, j) = (ij / k, ij % k);
            let src = &x[plane * h * w..(plane + 1) * h * w];
            for (y, row) in dst.chunks_exact_mut(ow).enumerate() {
                let sy = self.source(y, i, h);
                for (xo, d) in row.iter_mut().enumerate() {
                    let v = match (sy, self.source(xo, j, w)) {
                        (Some(sy), Some(sx)) => src[sy * w + sx],
                        _ => 0.0,
                    };
                    d.write(v);
                }
            }
        });
        // SAFETY: the chunks are the `n * c * k * k` rows of `oh * ow`, each written in full.
        let out = unsafe { super::assume_init(out) };
        Ok((CpuStorage::F32(out), Shape::from((n, c * k * k, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        Ok(Some(self.col2im(grad, (h, w))?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{Conv, builtin, test_util::*};
    use candle_core::Var;

    /// Output and both gradients against candle's `conv2d` (on a padded input).
    fn check(x_dims: &[usize], w_dims: &[usize], stride: usize, padding: (usize, usize)) {
        let x = Var::from_tensor(&random(x_dims, 81)).unwrap();
        let w = Var::from_tensor(&random(w_dims, 82)).unwrap();
        let conv = Conv::Dense { stride, padding };
        let a = conv.apply(&x, &w).unwrap();
        let b = builtin::dense_conv2d(&x, &w, stride, padding).unwrap();
        assert_close(&a, &b, 1e-5);
        let up = random(a.dims(), 83);
        let g1 = (a * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (b * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w] {
            assert_close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-4);
        }
    }

    #[test]
    fn matches_candle_with_same_padding() {
        // The Lite stem: 3x3, stride 2, the odd pixel after.
        check(&[2, 3, 8, 8], &[5, 3, 3, 3], 2, (0, 1));
        check(&[2, 3, 7, 7], &[4, 3, 3, 3], 2, (1, 1));
        check(&[1, 2, 6, 6], &[3, 2, 3, 3], 1, (1, 1));
        check(&[1, 1, 6, 6], &[2, 1, 5, 5], 2, (1, 2));
    }

    #[test]
    fn input_smaller_than_kernel_is_an_error() {
        let x = random(&[1, 1, 2, 2], 84);
        let w = random(&[1, 1, 5, 5], 85);
        assert!(
            Conv::Dense {
                stride: 1,
                padding: (0, 0)
            }
            .apply(&x, &w)
            .is_err()
        );
    }
}
