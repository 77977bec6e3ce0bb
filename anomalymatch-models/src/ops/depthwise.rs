//! Depthwise 2-D convolution on the CPU: forward, gradient wrt the input, gradient wrt the weight.
//!
//! candle runs a grouped convolution as one convolution per channel followed by `cat`, and its
//! backward pass builds a full-size zero tensor per channel, so cost grows with `C^2`. Here each
//! `(n, c)` plane is an independent task for rayon. Every tap of the `k x k` kernel is a
//! multiply-add of one input row segment into one output row segment; for stride `s > 1` the input
//! rows are first split into `s` phases (`x[j*s + r]` for each `r`), so that every tap again reads
//! a contiguous segment and the inner loops vectorise for any stride.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::{cpu_f32, simd};

/// Depthwise convolution of a contiguous f32 CPU tensor `x [N, C, H, W]` with `w [C, 1, k, k]`.
pub(super) fn depthwise_conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    x.apply_op2(&w, DepthwiseConv { stride, padding })
}

/// Sizes of one depthwise convolution and the per-tap row offsets derived from them.
#[derive(Debug, Clone)]
struct Geometry {
    planes: usize,
    channels: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    oh: usize,
    ow: usize,
    /// Start of each phase `r` inside a phased row (phase `r` holds `x[j*s + r]`).
    phase_start: Vec<usize>,
    /// For each kernel column `kw`: where its segment starts in the phased input row, and the
    /// range `lo..hi` of output columns that read inside the image (the rest read padding).
    taps: Vec<Tap>,
}

#[derive(Debug, Clone, Copy)]
struct Tap {
    /// Index in the phased input row read by output column `lo`.
    src: usize,
    lo: usize,
    hi: usize,
}

impl Geometry {
    fn new(
        dims_x: (usize, usize, usize, usize),
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (n, channels, h, w) = dims_x;
        if stride == 0 || k == 0 {
            bail!("depthwise_conv2d: stride and kernel size must be positive");
        }
        if n * channels * h * w == 0 {
            bail!("depthwise_conv2d: empty input {n}x{channels}x{h}x{w}");
        }
        if h + 2 * padding < k || w + 2 * padding < k {
            bail!(
                "depthwise_conv2d: input {h}x{w} with padding {padding} is smaller than kernel {k}"
            );
        }
        let oh = (h + 2 * padding - k) / stride + 1;
        let ow = (w + 2 * padding - k) / stride + 1;
        // Phase r holds columns r, r+s, r+2s, ...: ceil((w - r) / s) of them.
        let phase_len: Vec<usize> = (0..stride)
            .map(|r| (w.saturating_sub(r)).div_ceil(stride))
            .collect();
        let phase_start: Vec<usize> = phase_len
            .iter()
            .scan(0, |acc, &len| {
                let start = *acc;
                *acc += len;
                Some(start)
            })
            .collect();
        // Output column o reads input column o*s + d with d = kw - padding, i.e. phase
        // r = d mod s at index o + floor(d / s).
        let taps = (0..k)
            .map(|kw| {
                let d = kw as isize - padding as isize;
                let s = stride as isize;
                let r = d.rem_euclid(s) as usize;
                let q = d.div_euclid(s);
                let lo = (-q).max(0) as usize;
                let hi = (phase_len[r] as isize - q).clamp(0, ow as isize) as usize;
                if lo >= hi {
                    // This kernel column only ever reads padding.
                    return Tap {
                        src: 0,
                        lo: 0,
                        hi: 0,
                    };
                }
                let src = phase_start[r] + (lo as isize + q) as usize;
                Tap { src, lo, hi }
            })
            .collect();
        Ok(Self {
            planes: n * channels,
            channels,
            h,
            w,
            k,
            stride,
            padding,
            oh,
            ow,
            phase_start,
            taps,
        })
    }

    /// The input row read by kernel row `kh` for output row `oh`, if it lies inside the image.
    fn input_row(&self, oh: usize, kh: usize) -> Option<usize> {
        let ih = (oh * self.stride + kh).checked_sub(self.padding)?;
        (ih < self.h).then_some(ih)
    }

    /// Rewrites a plane so that each row is stored phase by phase (a no-op copy for stride 1
    /// is avoided by the callers).
    fn phase_plane(&self, src: &[f32], dst: &mut [f32]) {
        for (srow, drow) in src.chunks_exact(self.w).zip(dst.chunks_exact_mut(self.w)) {
            for (r, &start) in self.phase_start.iter().enumerate() {
                let phase = srow.iter().skip(r).step_by(self.stride);
                for (d, &s) in drow[start..].iter_mut().zip(phase) {
                    *d = s;
                }
            }
        }
    }

    /// Inverse of [`Geometry::phase_plane`] for one row.
    fn unphase_row(&self, src: &[f32], dst: &mut [f32]) {
        for (r, &start) in self.phase_start.iter().enumerate() {
            let phase = dst.iter_mut().skip(r).step_by(self.stride);
            for (d, &s) in phase.zip(&src[start..]) {
                *d = s;
            }
        }
    }

    /// Planes per rayon task: enough work per task that scheduling stays a small overhead on
    /// the late layers, whose planes are only 3x3 or 6x6.
    fn planes_per_task(&self) -> usize {
        (8192 / (self.oh * self.ow * self.k * self.k).max(1)).max(1)
    }
}

/// Forward of one plane: `out` is overwritten; `x` is the plane in phased layout.
fn forward_plane(g: &Geometry, x: &[f32], w: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for (oh, orow) in out.chunks_exact_mut(g.ow).enumerate() {
        for kh in 0..g.k {
            let Some(ih) = g.input_row(oh, kh) else {
                continue;
            };
            let xrow = &x[ih * g.w..(ih + 1) * g.w];
            for (tap, &wv) in g.taps.iter().zip(&w[kh * g.k..(kh + 1) * g.k]) {
                let n = tap.hi - tap.lo;
                simd::axpy(wv, &xrow[tap.src..tap.src + n], &mut orow[tap.lo..tap.hi]);
            }
        }
    }
}

/// Gradient wrt one input plane: each output row scatters back through the same taps as the
/// forward pass. Rows are produced one at a time (gathering from the output rows that read
/// them) so every input-gradient row is written exactly once.
fn grad_input_plane(g: &Geometry, grad: &[f32], w: &[f32], gx: &mut [f32], row: &mut [f32]) {
    for (ih, gxrow) in gx.chunks_exact_mut(g.w).enumerate() {
        // Stride 1 needs no phasing, so accumulate straight into the result row.
        let acc: &mut [f32] = if g.stride == 1 {
            &mut *gxrow
        } else {
            &mut row[..]
        };
        acc.fill(0.0);
        for kh in 0..g.k {
            let t = ih + g.padding;
            if t < kh || (t - kh) % g.stride != 0 {
                continue;
            }
            let oh = (t - kh) / g.stride;
            if oh >= g.oh {
                continue;
            }
            let grow = &grad[oh * g.ow..(oh + 1) * g.ow];
            for (tap, &wv) in g.taps.iter().zip(&w[kh * g.k..(kh + 1) * g.k]) {
                let n = tap.hi - tap.lo;
                simd::axpy(wv, &grow[tap.lo..tap.hi], &mut acc[tap.src..tap.src + n]);
            }
        }
        if g.stride != 1 {
            g.unphase_row(row, gxrow);
        }
    }
}

/// Gradient wrt the weight from one plane: `acc[kh*k + kw]` receives the correlation of the
/// output gradient with the input shifted by that tap.
fn grad_weight_plane(g: &Geometry, x: &[f32], grad: &[f32], acc: &mut [f32]) {
    acc.fill(0.0);
    for (oh, grow) in grad.chunks_exact(g.ow).enumerate() {
        for kh in 0..g.k {
            let Some(ih) = g.input_row(oh, kh) else {
                continue;
            };
            let xrow = &x[ih * g.w..(ih + 1) * g.w];
            for (tap, a) in g.taps.iter().zip(&mut acc[kh * g.k..(kh + 1) * g.k]) {
                let n = tap.hi - tap.lo;
                *a += simd::dot(&grow[tap.lo..tap.hi], &xrow[tap.src..tap.src + n]);
            }
        }
    }
}

/// Checks `w [C, 1, k, k]` against `x [N, C, H, W]` and returns the geometry.
fn geometry(x: &Layout, w: &Layout, stride: usize, padding: usize) -> Result<Geometry> {
    let dims_x = x.shape().dims4()?;
    let (wc, one, kh, kw) = w.shape().dims4()?;
    if wc != dims_x.1 || one != 1 || kh != kw {
        bail!(
            "depthwise_conv2d: weight {:?} does not fit input {:?} (want [C, 1, k, k])",
            w.shape(),
            x.shape()
        );
    }
    Geometry::new(dims_x, kh, stride, padding)
}

/// Forward pass; its backward pass runs [`DepthwiseGradInput`] and [`DepthwiseGradWeight`].
struct DepthwiseConv {
    stride: usize,
    padding: usize,
}

impl CustomOp2 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geometry(l1, l2, self.stride, self.padding)?;
        let x = cpu_f32(s1, l1)?;
        let w = cpu_f32(s2, l2)?;
        let (ihw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let mut out = vec![0f32; g.planes * ohw];
        let per_task = g.planes_per_task();
        out.par_chunks_mut(ohw * per_task)
            .enumerate()
            .for_each_init(
                || vec![0f32; if g.stride == 1 { 0 } else { ihw }],
                |phased, (task, outs)| {
                    for (i, o) in outs.chunks_exact_mut(ohw).enumerate() {
                        let p = task * per_task + i;
                        let c = p % g.channels;
                        let xp = &x[p * ihw..(p + 1) * ihw];
                        let xp = if g.stride == 1 {
                            xp
                        } else {
                            g.phase_plane(xp, phased);
                            &phased[..]
                        };
                        forward_plane(&g, xp, &w[c * kk..(c + 1) * kk], o);
                    }
                },
            );
        let shape = Shape::from((g.planes / g.channels, g.channels, g.oh, g.ow));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, width) = x.dims4()?;
        let grad_x = grad.apply_op2_no_bwd(
            w,
            &DepthwiseGradInput {
                stride: self.stride,
                padding: self.padding,
                h,
                w: width,
            },
        )?;
        let grad_w = x.apply_op2_no_bwd(
            &grad,
            &DepthwiseGradWeight {
                stride: self.stride,
                padding: self.padding,
                k: w.dim(2)?,
            },
        )?;
        Ok((Some(grad_x), Some(grad_w)))
    }
}

/// Gradient wrt the input: `(grad_out [N, C, OH, OW], w [C, 1, k, k]) -> [N, C, H, W]`.
struct DepthwiseGradInput {
    stride: usize,
    padding: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for DepthwiseGradInput {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, gh, gw) = l1.shape().dims4()?;
        let k = l2.shape().dims4()?.2;
        let x_layout = Layout::contiguous((n, c, self.h, self.w));
        let g = geometry(&x_layout, l2, self.stride, self.padding)?;
        if (gh, gw) != (g.oh, g.ow) {
            bail!(
                "depthwise_conv2d backward: gradient {gh}x{gw}, expected {}x{}",
                g.oh,
                g.ow
            );
        }
        let grad = cpu_f32(s1, l1)?;
        let w = cpu_f32(s2, l2)?;
        let (ihw, ohw, kk) = (g.h * g.w, g.oh * g.ow, k * k);
        let mut gx = vec![0f32; g.planes * ihw];
        let per_task = g.planes_per_task();
        gx.par_chunks_mut(ihw * per_task).enumerate().for_each_init(
            || vec![0f32; g.w],
            |row, (task, gxs)| {
                for (i, gxp) in gxs.chunks_exact_mut(ihw).enumerate() {
                    let p = task * per_task + i;
                    let cc = p % g.channels;
                    let gp = &grad[p * ohw..(p + 1) * ohw];
                    grad_input_plane(&g, gp, &w[cc * kk..(cc + 1) * kk], gxp, row);
                }
            },
        );
        Ok((CpuStorage::F32(gx), Shape::from((n, c, self.h, self.w))))
    }
}

/// Gradient wrt the weight: `(x [N, C, H, W], grad_out [N, C, OH, OW]) -> [C, 1, k, k]`.
struct DepthwiseGradWeight {
    stride: usize,
    padding: usize,
    k: usize,
}

impl CustomOp2 for DepthwiseGradWeight {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = l1.shape().dims4()?.1;
        let w_layout = Layout::contiguous((c, 1, self.k, self.k));
        let g = geometry(l1, &w_layout, self.stride, self.padding)?;
        if l2.shape().dims4()? != (g.planes / c, c, g.oh, g.ow) {
            bail!(
                "depthwise_conv2d backward: gradient shape {:?} does not fit",
                l2.shape()
            );
        }
        let x = cpu_f32(s1, l1)?;
        let grad = cpu_f32(s2, l2)?;
        let (ihw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        // One partial sum per plane, then a sum over the batch in a fixed order, so the result
        // does not depend on how rayon split the work.
        let mut partial = vec![0f32; g.planes * kk];
        let per_task = g.planes_per_task();
        partial
            .par_chunks_mut(kk * per_task)
            .enumerate()
            .for_each_init(
                || vec![0f32; if g.stride == 1 { 0 } else { ihw }],
                |phased, (task, accs)| {
                    for (i, acc) in accs.chunks_exact_mut(kk).enumerate() {
                        let p = task * per_task + i;
                        let xp = &x[p * ihw..(p + 1) * ihw];
                        let xp = if g.stride == 1 {
                            xp
                        } else {
                            g.phase_plane(xp, phased);
                            &phased[..]
                        };
                        grad_weight_plane(&g, xp, &grad[p * ohw..(p + 1) * ohw], acc);
                    }
                },
            );
        let mut gw = vec![0f32; c * kk];
        for sample in partial.chunks_exact(c * kk) {
            for (a, &b) in gw.iter_mut().zip(sample) {
                *a += b;
            }
        }
        Ok((CpuStorage::F32(gw), Shape::from((c, 1, g.k, g.k))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{builtin, test_util::*};
    use candle_core::{DType, Device, Tensor, Var};

    /// Direct loops over the definition: output, grad input and grad weight for the loss
    /// `sum(out * up)`. candle's own backward fails on stride-2 inputs whose height and width
    /// differ in parity (it applies the height's output padding to the width too), so gradients
    /// are checked against this.
    fn naive(x: &Tensor, w: &Tensor, up: &Tensor, s: usize, p: usize) -> [Tensor; 3] {
        let (n, c, h, wd) = x.dims4().unwrap();
        let k = w.dim(2).unwrap();
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1);
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let wv = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let uv = up.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (mut out, mut gx, mut gw) = (
            vec![0f32; n * c * oh * ow],
            vec![0f32; xv.len()],
            vec![0f32; wv.len()],
        );
        for b in 0..n {
            for ch in 0..c {
                for (i, j) in (0..oh).flat_map(|i| (0..ow).map(move |j| (i, j))) {
                    let o = ((b * c + ch) * oh + i) * ow + j;
                    for (u, v) in (0..k).flat_map(|u| (0..k).map(move |v| (u, v))) {
                        let (ih, iw) = (
                            (i * s + u) as isize - p as isize,
                            (j * s + v) as isize - p as isize,
                        );
                        if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                            continue;
                        }
                        let xi = ((b * c + ch) * h + ih as usize) * wd + iw as usize;
                        let wi = (ch * k + u) * k + v;
                        out[o] += xv[xi] * wv[wi];
                        gx[xi] += uv[o] * wv[wi];
                        gw[wi] += uv[o] * xv[xi];
                    }
                }
            }
        }
        let dev = Device::Cpu;
        [
            Tensor::from_vec(out, (n, c, oh, ow), &dev).unwrap(),
            Tensor::from_vec(gx, x.dims(), &dev).unwrap(),
            Tensor::from_vec(gw, w.dims(), &dev).unwrap(),
        ]
    }

    /// Compares forward and both gradients with the naive loops, and with candle's grouped
    /// convolution wherever candle's backward runs; `x` may be a strided view of `var`.
    fn check_view(var: &Var, x: &Tensor, c: usize, k: usize, stride: usize) {
        let wt = Var::from_tensor(&random(&[c, 1, k, k], 2)).unwrap();
        let ours = super::super::depthwise_conv2d(x, &wt, stride, k / 2).unwrap();
        let up = random(ours.dims(), 3);
        let [out, gx, gw] = naive(x, &wt, &up, stride, k / 2);
        let theirs = builtin::depthwise_conv2d(x, &wt, stride, k / 2).unwrap();
        assert_close(&ours, &out, 1e-4);
        assert_close(&ours, &theirs, 1e-4);
        let g = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        // The naive grad is wrt the view; map it back through candle for strided inputs.
        let gx_var = if x.is_contiguous() {
            gx
        } else {
            gx.transpose(2, 3).unwrap()
        };
        assert_close(g.get(var).unwrap(), &gx_var, 1e-4);
        assert_close(g.get(&wt).unwrap(), &gw, 1e-4);
        if let Ok(g2) = (theirs * &up).unwrap().sum_all().unwrap().backward() {
            assert_close(g.get(var).unwrap(), g2.get(var).unwrap(), 1e-4);
            assert_close(g.get(&wt).unwrap(), g2.get(&wt).unwrap(), 1e-4);
        }
    }

    fn check(n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize) {
        let x = Var::from_tensor(&random(&[n, c, h, w], 1)).unwrap();
        check_view(&x, &x, c, k, stride);
    }

    #[test]
    fn stride_one_k3() {
        check(2, 3, 7, 6, 3, 1);
    }

    #[test]
    fn stride_two_k3_odd_and_even_sizes() {
        check(2, 3, 7, 9, 3, 2);
        check(3, 2, 8, 6, 3, 2);
    }

    #[test]
    fn k5_both_strides() {
        check(2, 4, 9, 7, 5, 1);
        check(2, 4, 9, 8, 5, 2);
        check(1, 2, 5, 5, 5, 2);
    }

    #[test]
    fn tiny_planes_smaller_than_kernel_reach() {
        check(2, 5, 3, 3, 5, 1);
        check(2, 5, 2, 2, 3, 2);
        check(2, 5, 1, 1, 3, 1);
    }

    #[test]
    fn non_contiguous_input() {
        let x = Var::from_tensor(&random(&[2, 3, 6, 5], 4)).unwrap();
        // A transpose of the last two axes is a strided view.
        let xt = x.transpose(2, 3).unwrap();
        assert!(!xt.is_contiguous());
        check_view(&x, &xt, 3, 3, 2);
    }

    #[test]
    fn weight_gradient_is_deterministic() {
        let x = random(&[8, 16, 12, 12], 7);
        let up = random(&[8, 16, 6, 6], 8);
        let w = Var::from_tensor(&random(&[16, 1, 3, 3], 9)).unwrap();
        let grad_w = || {
            let out = super::depthwise_conv2d(&x, &w, 2, 1).unwrap();
            let g = (out * &up).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(&w)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let first = grad_w();
        for _ in 0..3 {
            assert_eq!(grad_w(), first);
        }
    }

    #[test]
    fn rejects_mismatched_weight() {
        let x = Tensor::zeros((1, 3, 5, 5), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((4, 1, 3, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(super::depthwise_conv2d(&x, &w, 1, 1).is_err());
    }
}
