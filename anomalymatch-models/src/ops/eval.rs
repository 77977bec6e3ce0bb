//! Inference-only CPU kernels for a network whose batch norms are folded into its convolutions:
//! the stem, one whole MBConv block, and the head with its global average pool.
//!
//! Each kernel works on a group of samples at a time, one group per rayon task, with every
//! intermediate (the expanded activation, the depthwise output) in per-task buffers that stay
//! in cache, where running layer by layer over the batch would stream each intermediate through
//! memory several times (convolution, batch norm, activation). Nothing here records a graph.
//!
//! Within a group, activations are laid out `[C, G * HW]`: each channel's `G` planes side by
//! side, so a 1x1 convolution is one matrix product with `G * HW` columns. Groups are single
//! samples where planes are large, and grow on the late layers (6x6, 3x3), where a product per
//! sample would be too narrow to run at speed.

use candle_core::{Result, Shape, bail};
use rayon::prelude::*;

use super::activation::Scalar;
use super::pointwise::{Mat, matmul};
use super::{Activation, Kernel, Operand, simd};
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// Columns a group aims for in its matrix products.
const GROUP_COLUMNS: usize = 256;

/// A folded layer's weight and bias as CPU slices.
#[derive(Clone, Copy)]
pub(super) struct Layer<'a> {
    pub(super) w: &'a [f32],
    pub(super) b: &'a [f32],
    pub(super) act: Activation,
}

impl Layer<'_> {
    fn outputs(&self) -> usize {
        self.b.len()
    }

    /// `dst [Cout, cols] = act(W [Cout, Cin] @ src [Cin, cols] + b (+ residual))`: one matrix
    /// product (accumulating onto the residual where there is one), then one pass that adds
    /// the bias and applies the activation while the rows are in cache.
    fn pointwise(&self, src: Mat, cols: usize, dst: &mut Vec<f32>, residual: Option<&[f32]>) {
        let (m, k) = (self.outputs(), self.w.len() / self.outputs());
        fit(dst, m * cols);
        if let Some(r) = residual {
            dst.copy_from_slice(r);
        }
        // SAFETY: `dst` is initialised; the product only writes f32 values into it.
        let out = unsafe { as_uninit(dst) };
        matmul(
            out,
            Mat::rows(self.w, k),
            src,
            (m, cols, k),
            residual.is_some(),
            gemm::Parallelism::None,
        );
        bias_act(dst, cols, self.b, self.act);
    }
}

/// An initialised buffer as the output of a product.
///
/// # Safety
/// Only initialised values may be written through the result.
unsafe fn as_uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; the caller writes only valid values.
    unsafe { &mut *(v as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// Sizes a reused buffer, keeping its allocation: stale values are left for the caller to
/// overwrite, which spares a zeroing pass per layer.
fn fit(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v.truncate(len);
}

/// `x[c] = act(x[c] + b[c])` for each row `c` of `cols` values.
fn bias_act(x: &mut [f32], cols: usize, b: &[f32], act: Activation) {
    with_scalar!(act, F => {
        for (row, &b) in x.chunks_exact_mut(cols).zip(b) {
            row.iter_mut().for_each(|v| *v = <F as Scalar>::forward(*v + b));
        }
    })
}

/// `x = act(x)` in place.
fn activate(x: &mut [f32], act: Activation) {
    with_scalar!(act, F => x.iter_mut().for_each(|v| *v = <F as Scalar>::forward(*v)))
}

/// The slices of a block, checked against each other and the input channels.
pub(super) struct Block<'a> {
    pub(super) expand: Option<Layer<'a>>,
    pub(super) depthwise: Layer<'a>,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) padding: (usize, usize),
    /// Squeeze-and-excitation: reduce, then expand (SiLU between, a sigmoid gate after).
    pub(super) se: Option<(Layer<'a>, Layer<'a>)>,
    pub(super) project: Layer<'a>,
    pub(super) residual: bool,
}

/// The samples of each task: enough columns for an efficient product, but at least four tasks
/// per thread so the cores share the batch evenly.
fn group_size(n: usize, hw: usize) -> usize {
    let fair = n.div_ceil(4 * rayon::current_num_threads());
    GROUP_COLUMNS.div_ceil(hw).min(fair).max(1)
}

/// `[G, C, HW]` samples into `[C, G * HW]`.
fn gather(x: &[f32], g: usize, c: usize, hw: usize, out: &mut Vec<f32>) {
    fit(out, c * g * hw);
    for (ch, row) in out.chunks_exact_mut(g * hw).enumerate() {
        for (i, dst) in row.chunks_exact_mut(hw).enumerate() {
            dst.copy_from_slice(&x[(i * c + ch) * hw..(i * c + ch + 1) * hw]);
        }
    }
}

/// `[C, G * HW]` into `[G, C, HW]` samples, writing all of `out`.
fn scatter(x: &[f32], g: usize, c: usize, hw: usize, out: &mut [MaybeUninit<f32>]) {
    for (i, sample) in out.chunks_exact_mut(c * hw).enumerate().take(g) {
        for (ch, dst) in sample.chunks_exact_mut(hw).enumerate() {
            super::write_copy(dst, &x[(ch * g + i) * hw..(ch * g + i + 1) * hw]);
        }
    }
}

/// A worker thread's buffers, kept from group to group and from call to call: fresh
/// activation-sized allocations would each cost the kernel's page zeroing.
#[derive(Default)]
struct Buffers {
    input: Vec<f32>,
    expanded: Vec<f32>,
    depthwise: Vec<f32>,
    output: Vec<f32>,
    padded: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::default();
}

/// Runs `f` with this thread's [`Buffers`].
fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    BUFFERS.with(|b| f(&mut b.borrow_mut()))
}

/// Runs `f(first_sample, samples, input [Cin, G * HW], buffers)` over groups of `x [N, Cin, HW]`,
/// in parallel, handing each group its `[G, out_per_sample]` chunk of `out`; `f` must leave that
/// chunk's values, laid out `[Cout, G * out_hw]`, in `buffers.output`.
fn for_groups(
    x: &[f32],
    (n, cin, hw): (usize, usize, usize),
    (cout, out_hw): (usize, usize),
    f: impl Fn(usize, &[f32], &mut Buffers) + Sync,
) -> Vec<f32> {
    let g = group_size(n, hw);
    let mut out = super::uninit(n * cout * out_hw);
    out.par_chunks_mut(g * cout * out_hw)
        .enumerate()
        .for_each(|(task, chunk)| {
            with_buffers(|buf| {
                simd::wide(
                    #[inline(always)]
                    || {
                        let samples = chunk.len() / (cout * out_hw);
                        let first = task * g;
                        let x = &x[first * cin * hw..(first + samples) * cin * hw];
                        let mut input = std::mem::take(&mut buf.input);
                        let src = if samples == 1 {
                            x
                        } else {
                            gather(x, samples, cin, hw, &mut input);
                            &input
                        };
                        f(samples, src, buf);
                        buf.input = input;
                        scatter(&buf.output, samples, cout, out_hw, chunk);
                    },
                )
            })
        });
    // SAFETY: every chunk is written in full by `scatter`.
    unsafe { super::assume_init(out) }
}

impl Kernel<1> for Block<'_> {
    fn name(&self) -> &'static str {
        "mbconv-eval"
    }

    fn forward(&self, [x]: [Operand<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let (x, (n, cin, h, w)) = (x.data, x.shape.dims4()?);
        let hidden = self.depthwise.outputs();
        let cout = self.project.outputs();
        let kk = self.kernel * self.kernel;
        let expand_ok = match &self.expand {
            Some(e) => e.outputs() == hidden && e.w.len() == hidden * cin,
            None => hidden == cin,
        };
        let se_ok = self.se.as_ref().is_none_or(|(r, e)| {
            r.w.len() == r.outputs() * hidden
                && e.outputs() == hidden
                && e.w.len() == hidden * r.outputs()
        });
        if !expand_ok
            || !se_ok
            || self.depthwise.w.len() != hidden * kk
            || self.project.w.len() != cout * hidden
        {
            bail!("mbconv-eval: weights do not fit an input of {cin} channels");
        }
        let (k, stride, (before, after)) = (self.kernel, self.stride, self.padding);
        let (ph, pw) = (h + before + after, w + before + after);
        if ph < k || pw < k || stride == 0 {
            bail!("mbconv-eval: input {h}x{w} is smaller than the kernel {k}");
        }
        let (oh, ow) = ((ph - k) / stride + 1, (pw - k) / stride + 1);
        let (hw, ohw) = (h * w, oh * ow);
        if self.residual && (hw != ohw || cin != cout) {
            bail!("mbconv-eval: a residual block must keep its shape");
        }
        // The depthwise taps as [k * k, C], each tap's weights a contiguous row across channels.
        let dw = self.depthwise;
        let taps: Vec<f32> = (0..kk)
            .flat_map(|t| (0..hidden).map(move |c| dw.w[c * kk + t]))
            .collect();
        let conv = Depthwise {
            taps: &taps,
            bias: dw.b,
            act: dw.act,
            k,
            stride,
            before,
            input: (h, w),
            output: (oh, ow),
        };
        let out = for_groups(x, (n, cin, hw), (cout, ohw), |g, src, buf| {
            // Pixel-major [G * HW, hidden] from here to the projection: the depthwise
            // convolution then runs across channels, vectorised, and the transposes are only
            // strides handed to the matrix products.
            let expanded: &mut Vec<f32> = &mut buf.expanded;
            let pixels = g * hw;
            fit(expanded, pixels * hidden);
            match &self.expand {
                Some(e) => {
                    // SAFETY: `expanded` is initialised; the product only writes f32 values.
                    let dst = unsafe { as_uninit(expanded) };
                    matmul(
                        dst,
                        Mat::transposed(src, pixels),
                        Mat::transposed(e.w, cin),
                        (pixels, hidden, cin),
                        false,
                        gemm::Parallelism::None,
                    );
                    with_scalar!(e.act, F => for row in expanded.chunks_exact_mut(hidden) {
                        for (v, &b) in row.iter_mut().zip(e.b) {
                            *v = <F as Scalar>::forward(*v + b);
                        }
                    });
                }
                None => {
                    for (c, plane) in src.chunks_exact(pixels).enumerate() {
                        for (p, &v) in plane.iter().enumerate() {
                            expanded[p * hidden + c] = v;
                        }
                    }
                }
            }
            let d = &mut buf.depthwise;
            fit(d, g * ohw * hidden);
            for (x, out) in expanded
                .chunks_exact(hw * hidden)
                .zip(d.chunks_exact_mut(ohw * hidden))
            {
                conv.run(x, out, &mut buf.padded);
            }
            if let Some((reduce, expand)) = &self.se {
                for sample in d.chunks_exact_mut(ohw * hidden) {
                    excite(sample, hidden, reduce, expand);
                }
            }
            let residual = self.residual.then_some(src);
            let projected = g * ohw;
            self.project.pointwise(
                Mat::transposed(d, hidden),
                projected,
                &mut buf.output,
                residual,
            );
        });
        Ok((out, Shape::from((n, cout, oh, ow))))
    }
}

/// Squeeze-and-excitation of one sample `d [HW, C]`, in place: its channels scaled by
/// `sigmoid(expand(reduce(mean over the pixels)))`, each of the two with its own activation.
fn excite(d: &mut [f32], c: usize, reduce: &Layer<'_>, expand: &Layer<'_>) {
    let sq = reduce.outputs();
    let pixels = d.len() / c;
    let mut means = vec![0.0f32; c];
    for row in d.chunks_exact(c) {
        means.iter_mut().zip(row).for_each(|(m, &v)| *m += v);
    }
    means.iter_mut().for_each(|m| *m /= pixels as f32);
    let mut squeezed: Vec<f32> = (0..sq)
        .map(|j| simd::dot(&reduce.w[j * c..(j + 1) * c], &means) + reduce.b[j])
        .collect();
    activate(&mut squeezed, reduce.act);
    let mut gates: Vec<f32> = (0..c)
        .map(|ch| simd::dot(&expand.w[ch * sq..(ch + 1) * sq], &squeezed) + expand.b[ch])
        .collect();
    activate(&mut gates, expand.act);
    gates
        .iter_mut()
        .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
    for row in d.chunks_exact_mut(c) {
        row.iter_mut().zip(&gates).for_each(|(x, &g)| *x *= g);
    }
}

/// Channels handled together by the depthwise kernel: two AVX registers of accumulators.
const LANES: usize = 16;

/// A depthwise convolution with bias and activation on one pixel-major sample.
struct Depthwise<'a> {
    /// `[k * k, C]`.
    taps: &'a [f32],
    bias: &'a [f32],
    act: Activation,
    k: usize,
    stride: usize,
    before: usize,
    input: (usize, usize),
    output: (usize, usize),
}

/// Output pixels of a row computed together: each tap's weights are loaded once for all of
/// them, and their independent accumulators keep the FMA units busy instead of waiting on one
/// chain of additions.
const PIXELS: usize = 4;

impl Depthwise<'_> {
    /// `out [OH * OW, C]` from `x [H * W, C]`, through `padded`, a copy of `x` with the zero
    /// padding around it: every output pixel then reads all `k * k` taps, `LANES` channels at
    /// a time in registers.
    fn run(&self, x: &[f32], out: &mut [f32], padded: &mut Vec<f32>) {
        let c = self.bias.len();
        let (w, (oh, ow)) = (self.input.1, self.output);
        let (ph, pw) = (
            (oh - 1) * self.stride + self.k,
            (ow - 1) * self.stride + self.k,
        );
        padded.clear();
        padded.resize(ph * pw * c, 0.0);
        for (i, row) in x.chunks_exact(w * c).enumerate().take(ph - self.before) {
            let at = ((i + self.before) * pw + self.before) * c;
            let cols = (w * c).min((pw - self.before) * c);
            padded[at..at + cols].copy_from_slice(&row[..cols]);
        }
        let full = c - c % LANES;
        // Compiled for FMA here: outside such a context, `mul_add` is a library call.
        with_scalar!(self.act, F => simd::wide(#[inline(always)] || {
            let emit = |dst: &mut [f32], acc: &[f32]| {
                for (d, &v) in dst.iter_mut().zip(acc) {
                    *d = <F as Scalar>::forward(v);
                }
            };
            for o in 0..oh {
                let mut q = 0;
                while q < ow {
                    let n = if q + PIXELS <= ow { PIXELS } else { 1 };
                    let at = |p: usize, start: usize| (o * ow + q + p) * c + start;
                    for start in (0..full).step_by(LANES) {
                        if n == PIXELS {
                            let acc = self.sum::<PIXELS>(padded, pw, (o, q), start);
                            for (p, a) in acc.iter().enumerate() {
                                emit(&mut out[at(p, start)..at(p, start) + LANES], a);
                            }
                        } else {
                            let [a] = self.sum::<1>(padded, pw, (o, q), start);
                            emit(&mut out[at(0, start)..at(0, start) + LANES], &a);
                        }
                    }
                    for p in 0..n {
                        // Channels past the last full `LANES`, one at a time.
                        for ch in full..c {
                            let v = self.sum_channel(padded, pw, (o, q + p), ch);
                            out[at(p, ch)] = <F as Scalar>::forward(v);
                        }
                    }
                    q += n;
                }
            }
        }))
    }

    /// Bias plus taps for the `P` output pixels from `(o, q)` along the row, channels
    /// `start..start + LANES`, read from the padded sample `pw` pixels wide.
    #[inline(always)]
    fn sum<const P: usize>(
        &self,
        padded: &[f32],
        pw: usize,
        (o, q): (usize, usize),
        start: usize,
    ) -> [[f32; LANES]; P] {
        let (c, k, s) = (self.bias.len(), self.k, self.stride);
        let mut bias = [0f32; LANES];
        bias.copy_from_slice(&self.bias[start..start + LANES]);
        let mut acc = [bias; P];
        for kh in 0..k {
            for kw in 0..k {
                let tap = &self.taps[(kh * k + kw) * c + start..][..LANES];
                for (p, a) in acc.iter_mut().enumerate() {
                    let pixel = (o * s + kh) * pw + (q + p) * s + kw;
                    let src = &padded[pixel * c + start..][..LANES];
                    for l in 0..LANES {
                        a[l] = tap[l].mul_add(src[l], a[l]);
                    }
                }
            }
        }
        acc
    }

    /// Bias plus taps for output pixel `(o, q)`, channel `ch` alone.
    fn sum_channel(&self, padded: &[f32], pw: usize, (o, q): (usize, usize), ch: usize) -> f32 {
        let (c, k, s) = (self.bias.len(), self.k, self.stride);
        let mut acc = self.bias[ch];
        for kh in 0..k {
            for kw in 0..k {
                let pixel = (o * s + kh) * pw + q * s + kw;
                acc = self.taps[(kh * k + kw) * c + ch].mul_add(padded[pixel * c + ch], acc);
            }
        }
        acc
    }
}

/// The stem: a dense `k x k` convolution with stride and `(before, after)` zero padding, as a
/// matrix product over each sample's unfolded patches.
pub(super) struct Stem<'a> {
    pub(super) layer: Layer<'a>,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) padding: (usize, usize),
}

impl Kernel<1> for Stem<'_> {
    fn name(&self) -> &'static str {
        "stem-eval"
    }

    fn forward(&self, [x]: [Operand<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let (x, (n, cin, h, w)) = (x.data, x.shape.dims4()?);
        let (k, st, (before, after)) = (self.kernel, self.stride, self.padding);
        let cout = self.layer.outputs();
        if self.layer.w.len() != cout * cin * k * k {
            bail!("stem-eval: weights do not fit an input of {cin} channels");
        }
        let (ph, pw) = (h + before + after, w + before + after);
        if ph < k || pw < k || st == 0 {
            bail!("stem-eval: input {h}x{w} is smaller than the kernel {k}");
        }
        let (oh, ow) = ((ph - k) / st + 1, (pw - k) / st + 1);
        let ohw = oh * ow;
        // One sample per task: the unfolded patches of a sample are already a wide product.
        let mut out = super::uninit(n * cout * ohw);
        out.par_chunks_mut(cout * ohw)
            .enumerate()
            .for_each(|(i, chunk)| {
                with_buffers(|buf| {
                    simd::wide(
                        #[inline(always)]
                        || {
                            let sample = &x[i * cin * h * w..(i + 1) * cin * h * w];
                            unfold(
                                sample,
                                (cin, h, w),
                                (k, st, before),
                                (oh, ow),
                                &mut buf.input,
                            );
                            self.layer.pointwise(
                                Mat::rows(&buf.input, ohw),
                                ohw,
                                &mut buf.output,
                                None,
                            );
                            super::write_copy(chunk, &buf.output);
                        },
                    )
                })
            });
        // SAFETY: every sample's chunk is written in full.
        let out = unsafe { super::assume_init(out) };
        Ok((out, Shape::from((n, cout, oh, ow))))
    }
}

/// The patches of `x [C, H, W]` as columns: `out [C * k * k, OH * OW]`, zero where a patch
/// reaches into the padding.
fn unfold(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    (k, stride, before): (usize, usize, usize),
    (oh, ow): (usize, usize),
    out: &mut Vec<f32>,
) {
    // Every element is written: a patch value, or zero for the padding.
    fit(out, c * k * k * oh * ow);
    out.fill(0.0);
    for (r, row) in out.chunks_exact_mut(oh * ow).enumerate() {
        let (ch, kh, kw) = (r / (k * k), r / k % k, r % k);
        for o in 0..oh {
            let Some(ih) = (o * stride + kh).checked_sub(before).filter(|&v| v < h) else {
                continue;
            };
            let src = &x[(ch * h + ih) * w..(ch * h + ih + 1) * w];
            for (q, v) in row[o * ow..(o + 1) * ow].iter_mut().enumerate() {
                if let Some(iw) = (q * stride + kw).checked_sub(before).filter(|&v| v < w) {
                    *v = src[iw];
                }
            }
        }
    }
}

/// The head: a 1x1 convolution and its activation, then the mean over each plane, giving
/// `[N, Cout]` without the full-size activation ever leaving cache.
pub(super) struct HeadPool<'a>(pub(super) Layer<'a>);

impl Kernel<1> for HeadPool<'_> {
    fn name(&self) -> &'static str {
        "head-pool-eval"
    }

    fn forward(&self, [x]: [Operand<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let (x, (n, cin, h, w)) = (x.data, x.shape.dims4()?);
        let cout = self.0.outputs();
        if self.0.w.len() != cout * cin {
            bail!("head-pool-eval: weights do not fit an input of {cin} channels");
        }
        let hw = h * w;
        let out = for_groups(x, (n, cin, hw), (cout, 1), |g, src, buf| {
            self.0
                .pointwise(Mat::rows(src, g * hw), g * hw, &mut buf.expanded, None);
            buf.output.clear();
            buf.output.extend(
                buf.expanded
                    .chunks_exact(hw)
                    .map(|plane| plane.iter().sum::<f32>() / hw as f32),
            );
        });
        Ok((out, Shape::from((n, cout))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::test_util::{assert_close, random};
    use super::super::{
        Activation, Conv, EvalBlock, EvalConv, head_pool_eval, mbconv_builtin, mbconv_eval,
        stem_eval,
    };
    use candle_core::Tensor;

    fn conv(cout: usize, cin: usize, k: usize, act: Activation, seed: u64) -> EvalConv {
        EvalConv {
            weight: (random(&[cout, cin, k, k], seed) * 0.5).unwrap(),
            bias: random(&[cout], seed + 1),
            act,
        }
    }

    fn block(cin: usize, cout: usize, expand: usize, stride: usize, se: bool) -> EvalBlock {
        let hidden = cin * expand;
        EvalBlock {
            expand: (expand > 1).then(|| conv(hidden, cin, 1, Activation::Relu6, 1)),
            depthwise: conv(hidden, 1, 3, Activation::Silu, 3),
            stride,
            padding: if stride == 2 { (0, 1) } else { (1, 1) },
            se: se.then(|| {
                (
                    conv(4, hidden, 1, Activation::Silu, 5),
                    conv(hidden, 4, 1, Activation::Identity, 7),
                )
            }),
            project: conv(cout, hidden, 1, Activation::Identity, 9),
            residual: stride == 1 && cin == cout,
        }
    }

    /// Every block shape the networks use, on large planes (one sample per group) and on small
    /// ones (several samples per group, the batch not a multiple of the group).
    #[test]
    fn fused_blocks_match_candle_ops() {
        let cases = [
            (8, 8, 1, 1, false),
            (8, 12, 6, 2, false),
            (12, 12, 6, 1, false),
            (12, 12, 4, 1, true),
            (8, 16, 3, 2, true),
        ];
        for (size, n) in [(20, 3), (4, 37)] {
            for (i, &(cin, cout, e, s, se)) in cases.iter().enumerate() {
                let b = block(cin, cout, e, s, se);
                let x = random(&[n, cin, size, size], 20 + i as u64);
                let fused = mbconv_eval(&x, &b).unwrap();
                assert_close(&fused, &mbconv_builtin(&x, &b).unwrap(), 1e-4);
                assert!(!fused.track_op());
            }
        }
    }

    #[test]
    fn fused_stem_and_head_match_candle_ops() {
        let x = random(&[5, 3, 17, 17], 30);
        let stem = conv(8, 3, 3, Activation::Relu6, 31);
        let padded = x
            .pad_with_zeros(2, 0, 1)
            .unwrap()
            .pad_with_zeros(3, 0, 1)
            .unwrap();
        let want = padded.conv2d(&stem.weight, 0, 2, 1, 1).unwrap();
        let want = want
            .broadcast_add(&stem.bias.reshape((1, 8, 1, 1)).unwrap())
            .unwrap();
        let want = super::super::builtin::relu6(&want).unwrap();
        assert_close(&stem_eval(&x, &stem, 2, (0, 1)).unwrap(), &want, 1e-4);

        let head = conv(16, 8, 1, Activation::Silu, 33);
        let y = random(&[37, 8, 3, 3], 34);
        let want = head
            .builtin(&y, Conv::Pointwise)
            .unwrap()
            .mean((2, 3))
            .unwrap();
        assert_close(&head_pool_eval(&y, &head).unwrap(), &want, 1e-4);
    }

    #[test]
    fn weights_that_do_not_fit_are_an_error() {
        let b = block(8, 8, 6, 1, false);
        let x = Tensor::zeros(
            (2, 4, 8, 8),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        );
        let err = mbconv_eval(&x.unwrap(), &b).unwrap_err().to_string();
        assert!(err.contains("4 channels"), "{err}");
    }
}
