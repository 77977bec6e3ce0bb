//! Depthwise 2-D convolution on the CPU: forward, gradient wrt the input, gradient wrt the weight.
//!
//! candle runs a grouped convolution as one convolution per channel followed by `cat`, and its
//! backward pass builds a full-size zero tensor per channel, so cost grows with `C^2`. Here each
//! `(n, c)` plane is an independent task for rayon.
//!
//! Within a plane, the input is copied once into a zero-padded, polyphase layout: for stride `s`,
//! phase `(a, b)` holds padded pixels `(i*s + a, j*s + b)` as an `Lh x Lw` image. Output pixel
//! `(o, q)` then reads tap `(kh, kw)` at `(o + kh/s, q + kw/s)` of phase `(kh%s, kw%s)`: the same
//! offset for every output pixel. So each tap is one long multiply-add over the whole plane
//! (rows laid out `Lw` apart, the extra columns computed and dropped) rather than one short one
//! per row and border case; that is what keeps the 6x6 and 3x3 late layers fast.

use candle_core::{Result, Shape, bail};
use rayon::prelude::*;

use super::{Kernel, Operand, simd};
use std::mem::MaybeUninit;

/// Sizes of one depthwise convolution and of its polyphase layout.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    planes: usize,
    channels: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    /// Zero rows (columns) above (left of) the input; the polyphase layout makes asymmetric
    /// padding free, where padding the tensor first would cost two copies each way.
    before: usize,
    oh: usize,
    ow: usize,
    /// Rows and columns of each phase image.
    lh: usize,
    lw: usize,
}

impl Geometry {
    fn new(
        dims_x: (usize, usize, usize, usize),
        k: usize,
        stride: usize,
        (before, after): (usize, usize),
    ) -> Result<Self> {
        let (n, channels, h, w) = dims_x;
        if stride == 0 || k == 0 {
            bail!("depthwise_conv2d: stride and kernel size must be positive");
        }
        if n * channels * h * w == 0 {
            bail!("depthwise_conv2d: empty input {n}x{channels}x{h}x{w}");
        }
        let (ph, pw) = (h + before + after, w + before + after);
        if ph < k || pw < k {
            bail!(
                "depthwise_conv2d: input {h}x{w} with padding ({before}, {after}) is smaller than kernel {k}"
            );
        }
        Ok(Self {
            planes: n * channels,
            channels,
            h,
            w,
            k,
            stride,
            before,
            oh: (ph - k) / stride + 1,
            ow: (pw - k) / stride + 1,
            lh: ph.div_ceil(stride),
            lw: pw.div_ceil(stride),
        })
    }

    fn phase_len(&self) -> usize {
        self.lh * self.lw
    }

    /// Length of the flat output run: every row `Lw` wide except the last, which stops at `OW`
    /// so no tap reads past its phase image.
    fn run_len(&self) -> usize {
        (self.oh - 1) * self.lw + self.ow
    }

    /// Where tap `(kh, kw)` reads, relative to the output position: its phase image and offset.
    fn tap(&self, kh: usize, kw: usize) -> (usize, usize) {
        let s = self.stride;
        let phase = (kh % s) * s + kw % s;
        (phase * self.phase_len(), (kh / s) * self.lw + kw / s)
    }

    /// Where input pixel `(ih, iw)` lives in the polyphase layout.
    fn phased_index(&self, ih: usize, iw: usize) -> usize {
        let (ph, pw) = (ih + self.before, iw + self.before);
        let s = self.stride;
        ((ph % s) * s + pw % s) * self.phase_len() + (ph / s) * self.lw + pw / s
    }

    /// Copies a plane into the polyphase layout; the padding stays zero.
    fn phase_in(&self, plane: &[f32], phased: &mut [f32]) {
        phased.fill(0.0);
        let s = self.stride;
        for (ih, row) in plane.chunks_exact(self.w).enumerate() {
            // The input columns of each column phase are every `s`-th, from the first whose
            // padded index falls in that phase; they land side by side in the phase's row.
            for first in 0..s.min(self.w) {
                let start = self.phased_index(ih, first);
                let dst = &mut phased[start..];
                for (d, &v) in dst.iter_mut().zip(row[first..].iter().step_by(s)) {
                    *d = v;
                }
            }
        }
    }

    /// Gathers a plane back out of the polyphase layout (the padding is dropped), writing all
    /// of `plane`.
    fn phase_out(&self, phased: &[f32], plane: &mut [MaybeUninit<f32>]) {
        for (ih, row) in plane.chunks_exact_mut(self.w).enumerate() {
            if self.stride == 1 {
                let start = self.phased_index(ih, 0);
                super::write_copy(row, &phased[start..start + self.w]);
            } else {
                for (iw, v) in row.iter_mut().enumerate() {
                    v.write(phased[self.phased_index(ih, iw)]);
                }
            }
        }
    }

    /// Copies an output-sized plane into rows `Lw` apart, the extra columns zero.
    fn widen(&self, plane: &[f32], wide: &mut [f32]) {
        wide.fill(0.0);
        for (row, wrow) in plane.chunks_exact(self.ow).zip(wide.chunks_mut(self.lw)) {
            wrow[..self.ow].copy_from_slice(row);
        }
    }

    /// Planes per rayon task: enough work per task that scheduling stays a small overhead on
    /// the late layers, whose planes are only 3x3 or 6x6.
    fn planes_per_task(&self) -> usize {
        (8192 / (self.oh * self.ow * self.k * self.k).max(1)).max(1)
    }
}

/// Per-task buffers: the polyphase input (or input gradient) and an output-sized plane with
/// rows `Lw` apart.
struct Scratch {
    phased: Vec<f32>,
    wide: Vec<f32>,
}

impl Scratch {
    fn new(g: &Geometry) -> Self {
        Self {
            phased: vec![0.0; g.stride * g.stride * g.phase_len()],
            wide: vec![0.0; g.oh * g.lw],
        }
    }
}

/// Forward of one plane into `out` (all of it).
fn forward_plane(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    out: &mut [MaybeUninit<f32>],
    t: &mut Scratch,
) {
    g.phase_in(x, &mut t.phased);
    let len = g.run_len();
    let acc = &mut t.wide[..len];
    acc.fill(0.0);
    for (i, &wv) in w.iter().enumerate() {
        let (phase, off) = g.tap(i / g.k, i % g.k);
        simd::axpy(wv, &t.phased[phase + off..phase + off + len], acc);
    }
    for (row, wrow) in out.chunks_exact_mut(g.ow).zip(t.wide.chunks(g.lw)) {
        super::write_copy(row, &wrow[..g.ow]);
    }
}

/// Gradient wrt one input plane: every tap scatters the (widened) output gradient back into the
/// polyphase layout, which is then gathered into `gx` (all of it).
fn grad_input_plane(
    g: &Geometry,
    grad: &[f32],
    w: &[f32],
    gx: &mut [MaybeUninit<f32>],
    t: &mut Scratch,
) {
    g.widen(grad, &mut t.wide);
    t.phased.fill(0.0);
    let len = g.run_len();
    for (i, &wv) in w.iter().enumerate() {
        let (phase, off) = g.tap(i / g.k, i % g.k);
        simd::axpy(
            wv,
            &t.wide[..len],
            &mut t.phased[phase + off..phase + off + len],
        );
    }
    g.phase_out(&t.phased, gx);
}

/// Gradient wrt the weight from one plane: `acc[kh*k + kw]` is the correlation of the output
/// gradient with the input as tap `(kh, kw)` reads it.
fn grad_weight_plane(
    g: &Geometry,
    x: &[f32],
    grad: &[f32],
    acc: &mut [MaybeUninit<f32>],
    t: &mut Scratch,
) {
    g.phase_in(x, &mut t.phased);
    // The extra columns of the widened gradient are zero, so they add nothing.
    g.widen(grad, &mut t.wide);
    let len = g.run_len();
    for (i, a) in acc.iter_mut().enumerate() {
        let (phase, off) = g.tap(i / g.k, i % g.k);
        a.write(simd::dot(
            &t.wide[..len],
            &t.phased[phase + off..phase + off + len],
        ));
    }
}

/// Checks `w [C, 1, k, k]` against `x [N, C, H, W]` and returns the geometry.
fn geometry(x: &Shape, w: &Shape, stride: usize, padding: (usize, usize)) -> Result<Geometry> {
    let dims_x = x.dims4()?;
    let (wc, one, kh, kw) = w.dims4()?;
    if wc != dims_x.1 || one != 1 || kh != kw {
        bail!("depthwise_conv2d: weight {w:?} does not fit input {x:?} (want [C, 1, k, k])");
    }
    Geometry::new(dims_x, kh, stride, padding)
}

/// Runs `f(plane, chunk_of_out, scratch)` for every plane, `out` split into `per_plane`-sized
/// chunks, planes grouped into rayon tasks that each own one [`Scratch`]; `f` must write all of
/// its chunk.
fn for_planes(
    g: &Geometry,
    out: &mut [MaybeUninit<f32>],
    per_plane: usize,
    f: impl Fn(usize, &mut [MaybeUninit<f32>], &mut Scratch) + Sync,
) {
    let per_task = g.planes_per_task();
    out.par_chunks_mut(per_plane * per_task)
        .enumerate()
        .for_each_init(
            || Scratch::new(g),
            |scratch, (task, chunk)| {
                simd::wide(
                    #[inline(always)]
                    || {
                        for (i, o) in chunk.chunks_exact_mut(per_plane).enumerate() {
                            f(task * per_task + i, o, scratch);
                        }
                    },
                )
            },
        );
}

/// The forward pass of [`super::Conv::Depthwise`]: `x [N, C, H, W]` and `w [C, 1, k, k]`.
pub(super) fn forward(
    x: Operand<'_>,
    w: Operand<'_>,
    stride: usize,
    padding: (usize, usize),
) -> Result<(Vec<f32>, Shape)> {
    let g = geometry(x.shape, w.shape, stride, padding)?;
    let (ihw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let mut out = super::uninit(g.planes * ohw);
    for_planes(&g, &mut out, ohw, |p, o, t| {
        let c = p % g.channels;
        let (xp, wc) = (
            &x.data[p * ihw..(p + 1) * ihw],
            &w.data[c * kk..(c + 1) * kk],
        );
        forward_plane(&g, xp, wc, o, t);
    });
    // SAFETY: `for_planes` hands every plane's chunk to `forward_plane`, which writes it.
    let out = unsafe { super::assume_init(out) };
    let shape = Shape::from((g.planes / g.channels, g.channels, g.oh, g.ow));
    Ok((out, shape))
}

/// Gradient wrt the input: `(grad_out [N, C, OH, OW], w [C, 1, k, k]) -> [N, C, H, W]`.
pub(super) struct GradInput {
    pub(super) stride: usize,
    pub(super) padding: (usize, usize),
    /// The input's height and width, which the output gradient does not determine.
    pub(super) h: usize,
    pub(super) w: usize,
}

impl Kernel<2> for GradInput {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-input"
    }

    fn forward(&self, [grad, w]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let (n, c, gh, gw) = grad.shape.dims4()?;
        let x_shape = Shape::from((n, c, self.h, self.w));
        let g = geometry(&x_shape, w.shape, self.stride, self.padding)?;
        if (gh, gw) != (g.oh, g.ow) {
            bail!(
                "depthwise_conv2d backward: gradient {gh}x{gw}, expected {}x{}",
                g.oh,
                g.ow
            );
        }
        let (ihw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let mut gx = super::uninit(g.planes * ihw);
        for_planes(&g, &mut gx, ihw, |p, o, t| {
            let cc = p % g.channels;
            let gp = &grad.data[p * ohw..(p + 1) * ohw];
            grad_input_plane(&g, gp, &w.data[cc * kk..(cc + 1) * kk], o, t);
        });
        // SAFETY: `for_planes` hands every plane's chunk to `grad_input_plane`, which writes it.
        let gx = unsafe { super::assume_init(gx) };
        Ok((gx, x_shape))
    }
}

/// Gradient wrt the weight: `(x [N, C, H, W], grad_out [N, C, OH, OW]) -> [C, 1, k, k]`.
pub(super) struct GradWeight {
    pub(super) stride: usize,
    pub(super) padding: (usize, usize),
    /// The kernel size.
    pub(super) k: usize,
}

impl Kernel<2> for GradWeight {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-weight"
    }

    fn forward(&self, [x, grad]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let c = x.shape.dims4()?.1;
        let w_shape = Shape::from((c, 1, self.k, self.k));
        let g = geometry(x.shape, &w_shape, self.stride, self.padding)?;
        if grad.shape.dims4()? != (g.planes / c, c, g.oh, g.ow) {
            bail!(
                "depthwise_conv2d backward: gradient shape {:?} does not fit",
                grad.shape
            );
        }
        let (ihw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        // One partial sum per plane, then a sum over the batch in a fixed order, so the result
        // does not depend on how rayon split the work.
        let mut partial = super::uninit(g.planes * kk);
        for_planes(&g, &mut partial, kk, |p, acc, t| {
            let xp = &x.data[p * ihw..(p + 1) * ihw];
            let gp = &grad.data[p * ohw..(p + 1) * ohw];
            grad_weight_plane(&g, xp, gp, acc, t);
        });
        // SAFETY: `grad_weight_plane` writes all `kk` sums of every plane.
        let partial = unsafe { super::assume_init(partial) };
        let mut gw = vec![0f32; c * kk];
        for sample in partial.chunks_exact(c * kk) {
            for (a, &b) in gw.iter_mut().zip(sample) {
                *a += b;
            }
        }
        Ok((gw, w_shape))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{builtin, test_util::*};
    use candle_core::{DType, Device, Tensor, Var};

    /// The CPU kernel itself, whatever [`super::super::use_builtin_kernels`] says.
    fn kernel(
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        padding: (usize, usize),
    ) -> candle_core::Result<Tensor> {
        super::super::Conv::Depthwise { stride, padding }.cpu(x, w)
    }

    /// Direct loops over the definition: output, grad input and grad weight for the loss
    /// `sum(out * up)`. candle's own backward fails on stride-2 inputs whose height and width
    /// differ in parity (it applies the height's output padding to the width too), so gradients
    /// are checked against this.
    fn naive(
        x: &Tensor,
        w: &Tensor,
        up: &Tensor,
        s: usize,
        (p, after): (usize, usize),
    ) -> [Tensor; 3] {
        let (n, c, h, wd) = x.dims4().unwrap();
        let k = w.dim(2).unwrap();
        let (oh, ow) = ((h + p + after - k) / s + 1, (wd + p + after - k) / s + 1);
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
    fn check_view(var: &Var, x: &Tensor, c: usize, k: usize, stride: usize, pad: (usize, usize)) {
        let wt = Var::from_tensor(&random(&[c, 1, k, k], 2)).unwrap();
        let ours = super::super::depthwise_conv2d(x, &wt, stride, pad).unwrap();
        let up = random(ours.dims(), 3);
        let [out, gx, gw] = naive(x, &wt, &up, stride, pad);
        let theirs = builtin::depthwise_conv2d(x, &wt, stride, pad).unwrap();
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
        check_view(&x, &x, c, k, stride, (k / 2, k / 2));
    }

    #[test]
    fn asymmetric_same_padding() {
        // TensorFlow's SAME padding of the stride-2 Lite layers at even sizes.
        for (k, pad) in [(3, (0, 1)), (5, (1, 2))] {
            let x = Var::from_tensor(&random(&[2, 3, 8, 6], 1)).unwrap();
            check_view(&x, &x, 3, k, 2, pad);
            check_view(&x, &x, 3, k, 1, pad);
        }
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
        check_view(&x, &xt, 3, 3, 2, (1, 1));
    }

    #[test]
    fn weight_gradient_is_deterministic() {
        let x = random(&[8, 16, 12, 12], 7);
        let up = random(&[8, 16, 6, 6], 8);
        let w = Var::from_tensor(&random(&[16, 1, 3, 3], 9)).unwrap();
        let grad_w = || {
            let out = kernel(&x, &w, 2, (1, 1)).unwrap();
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
    fn constant_input_gets_no_gradient() {
        let x = random(&[2, 3, 5, 5], 14);
        let w = Var::from_tensor(&random(&[3, 1, 3, 3], 15)).unwrap();
        let ours = kernel(&x, &w, 1, (1, 1)).unwrap();
        let theirs = builtin::depthwise_conv2d(&x, &w, 1, (1, 1)).unwrap();
        let g1 = ours.sum_all().unwrap().backward().unwrap();
        let g2 = theirs.sum_all().unwrap().backward().unwrap();
        assert!(g1.get(&x).is_none());
        assert_close(g1.get(&w).unwrap(), g2.get(&w).unwrap(), 1e-4);
    }

    #[test]
    fn rejects_mismatched_weight() {
        let x = Tensor::zeros((1, 3, 5, 5), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((4, 1, 3, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(kernel(&x, &w, 1, (1, 1)).is_err());
    }
}
