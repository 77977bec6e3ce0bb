//! 1x1 convolution on the CPU as matrix products on the NCHW layout.
//!
//! Per sample, `out[n] = W [Cout, Cin] @ X[n] [Cin, HW]`; the backward pass is
//! `grad_x[n] = W^T @ G[n]` and `grad_W = sum_n G[n] @ X[n]^T`. The transposes are only strides
//! handed to `gemm`, so nothing but the results is materialised (candle's `conv2d` copies the
//! input into an im2col buffer and the output back out of one).

use candle_core::{Result, Shape, bail};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{Kernel, Operand};
use std::mem::MaybeUninit;

/// Planes smaller than this (in pixels) take the regrouped weight-gradient product.
const SMALL_PLANE: usize = 256;

/// The weight `[Cout, Cin]` as the left operand, or its transpose.
#[derive(Clone, Copy)]
struct Weight<'a> {
    w: &'a [f32],
    cin: usize,
    transposed: bool,
}

impl Weight<'_> {
    fn mat(self) -> Mat {
        if self.transposed {
            Mat::transposed(self.w, self.cin)
        } else {
            Mat::rows(self.w, self.cin)
        }
    }
}

/// `dst[i] = lhs [m, k] @ src[i] [k, hw]` for each of the `n` samples; writes every element
/// of `dst`.
fn per_sample_product(
    dst: &mut [MaybeUninit<f32>],
    lhs: Weight<'_>,
    src: &[f32],
    n: usize,
    (m, k, hw): (usize, usize, usize),
) {
    if hw < SMALL_PLANE {
        // Small planes: per-sample products would be tiny gemm calls dominated by packing, so
        // regroup as one [m, k] @ [k, N * HW] product.
        let srct = batch_inner(src, n, k, hw);
        let mut dstt = super::uninit(m * n * hw);
        let (_, par) = split(1);
        matmul(
            &mut dstt,
            lhs.mat(),
            Mat::rows(&srct, n * hw),
            (m, n * hw, k),
            false,
            par,
        );
        // SAFETY: a product that does not accumulate writes all of its `m x n*hw` output.
        let dstt = unsafe { super::assume_init(dstt) };
        batch_outer(&dstt, n, m, hw, dst);
        return;
    }
    let (by_sample, par) = split(n);
    let product = |(i, o): (usize, &mut [MaybeUninit<f32>])| {
        let si = &src[i * k * hw..(i + 1) * k * hw];
        matmul(o, lhs.mat(), Mat::rows(si, hw), (m, hw, k), false, par);
    };
    if by_sample {
        dst.par_chunks_mut(m * hw).enumerate().for_each(product);
    } else {
        dst.chunks_mut(m * hw).enumerate().for_each(product);
    }
}

/// `[C, N * HW] -> [N, C, HW]`, the inverse of [`batch_inner`], into `out` (all of it); one
/// sample per task.
fn batch_outer(data: &[f32], n: usize, c: usize, hw: usize, out: &mut [MaybeUninit<f32>]) {
    out.par_chunks_exact_mut(c * hw)
        .enumerate()
        .for_each(|(i, sample)| {
            for (ch, dst) in sample.chunks_exact_mut(hw).enumerate() {
                let src = (ch * n + i) * hw;
                super::write_copy(dst, &data[src..src + hw]);
            }
        });
}

/// `[N, C, HW] -> [C, N * HW]`: each channel's planes side by side; one channel per task.
fn batch_inner(data: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = super::uninit(data.len());
    out.par_chunks_exact_mut(n * hw)
        .enumerate()
        .for_each(|(ch, row)| {
            for (i, dst) in row.chunks_exact_mut(hw).enumerate() {
                let src = (i * c + ch) * hw;
                super::write_copy(dst, &data[src..src + hw]);
            }
        });
    // SAFETY: `data` holds `c` rows of `n` planes of `hw`, and each is copied to its place.
    unsafe { super::assume_init(out) }
}

/// A row-major matrix operand: pointer plus row and column strides, in elements.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

impl Mat {
    pub(super) fn rows(data: &[f32], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            rs: cols as isize,
            cs: 1,
        }
    }

    /// The transpose of the row-major `[.., cols]` matrix stored in `data`.
    pub(super) fn transposed(data: &[f32], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            rs: 1,
            cs: cols as isize,
        }
    }
}

/// `dst [m, n] (+)= lhs [m, k] @ rhs [k, n]`, accumulating into `dst` when `accumulate`;
/// otherwise every element of `dst` is written and none is read.
///
/// Callers guarantee that `lhs` and `rhs` cover `m x k` and `k x n` elements at their strides,
/// that `dst` holds `m * n` elements, and that it is initialised when `accumulate`.
pub(super) fn matmul(
    dst: &mut [MaybeUninit<f32>],
    lhs: Mat,
    rhs: Mat,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    par: Parallelism,
) {
    debug_assert_eq!(dst.len(), m * n);
    // SAFETY: dst is an exclusive m x n row-major buffer (checked above in debug builds and by
    // the callers' size computations); lhs and rhs point into live slices of at least m*k and
    // k*n elements laid out at the given strides, as the callers construct them from shapes
    // validated in `dims`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// How to split `count` independent matrix products over the cores: many products run one per
/// task on rayon (no synchronisation inside each); few products each use gemm's own threads.
fn split(count: usize) -> (bool, Parallelism) {
    let threads = rayon::current_num_threads();
    if count >= 2 * threads || threads == 1 {
        (true, Parallelism::None)
    } else {
        (false, Parallelism::Rayon(threads))
    }
}

/// `(N, Cin, HW, Cout)` from `x [N, Cin, H, W]` and `w [Cout, Cin, 1, 1]`.
fn dims(x: &Shape, w: &Shape) -> Result<(usize, usize, usize, usize)> {
    let (n, cin, h, wd) = x.dims4()?;
    let (cout, wcin, kh, kw) = w.dims4()?;
    if wcin != cin || kh != 1 || kw != 1 {
        bail!("pointwise_conv2d: weight {w:?} does not fit input {x:?}");
    }
    // Empty operands would make the per-sample chunking below degenerate.
    if n * cin * h * wd * cout == 0 {
        bail!("pointwise_conv2d: empty operand, input {x:?}, weight {w:?}");
    }
    Ok((n, cin, h * wd, cout))
}

/// The forward pass of [`super::Conv::Pointwise`]: `x [N, Cin, H, W]` and `w [Cout, Cin, 1, 1]`.
pub(super) fn forward(x: Operand<'_>, w: Operand<'_>) -> Result<(Vec<f32>, Shape)> {
    let (n, cin, hw, cout) = dims(x.shape, w.shape)?;
    let mut out = super::uninit(n * cout * hw);
    let lhs = Weight {
        w: w.data,
        cin,
        transposed: false,
    };
    per_sample_product(&mut out, lhs, x.data, n, (cout, cin, hw));
    // SAFETY: `per_sample_product` writes every element of its output.
    let out = unsafe { super::assume_init(out) };
    let (_, _, h, wd) = x.shape.dims4()?;
    Ok((out, Shape::from((n, cout, h, wd))))
}

/// Gradient wrt the input: `(grad_out [N, Cout, H, W], w [Cout, Cin, 1, 1]) -> [N, Cin, H, W]`.
pub(super) struct GradInput;

impl Kernel<2> for GradInput {
    fn name(&self) -> &'static str {
        "pointwise-conv2d-grad-input"
    }

    fn forward(&self, [g, w]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let (n, cout, h, wd) = g.shape.dims4()?;
        let (wcout, cin, _, _) = w.shape.dims4()?;
        if wcout != cout {
            bail!(
                "pointwise_conv2d backward: gradient {:?} does not fit weight {:?}",
                g.shape,
                w.shape
            );
        }
        let hw = h * wd;
        if n * cin * hw * cout == 0 {
            bail!("pointwise_conv2d backward: empty gradient {:?}", g.shape);
        }
        let mut gx = super::uninit(n * cin * hw);
        let lhs = Weight {
            w: w.data,
            cin,
            transposed: true,
        };
        per_sample_product(&mut gx, lhs, g.data, n, (cin, cout, hw));
        // SAFETY: `per_sample_product` writes every element of its output.
        let gx = unsafe { super::assume_init(gx) };
        Ok((gx, Shape::from((n, cin, h, wd))))
    }
}

/// Gradient wrt the weight: `(x [N, Cin, H, W], grad_out [N, Cout, H, W]) -> [Cout, Cin, 1, 1]`.
pub(super) struct GradWeight;

impl Kernel<2> for GradWeight {
    fn name(&self) -> &'static str {
        "pointwise-conv2d-grad-weight"
    }

    fn forward(&self, [x, g]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let (n, cin, h, wd) = x.shape.dims4()?;
        let (gn, cout, gh, gw) = g.shape.dims4()?;
        if (gn, gh, gw) != (n, h, wd) {
            bail!(
                "pointwise_conv2d backward: gradient {:?} does not fit input {:?}",
                g.shape,
                x.shape
            );
        }
        let hw = h * wd;
        if n * hw == 0 {
            bail!("pointwise_conv2d backward: empty input {:?}", x.shape);
        }
        let (x, g) = (x.data, g.data);
        let mut gw_out = super::uninit(cout * cin);
        let threads = rayon::current_num_threads();
        let par = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        if hw < SMALL_PLANE {
            // Late layers (12x12 and below): one product per sample would be dozens of tiny
            // gemm calls, each mostly packing overhead. Regrouping both operands as
            // [C, N * HW] turns the batch into the summed axis of a single product; the copies
            // are as small as the planes.
            let (gt, xt) = (batch_inner(g, n, cout, hw), batch_inner(x, n, cin, hw));
            let k = n * hw;
            let (lhs, rhs) = (Mat::rows(&gt, k), Mat::transposed(&xt, k));
            matmul(&mut gw_out, lhs, rhs, (cout, cin, k), false, par);
        } else {
            // Samples are accumulated one after another in a fixed order (gemm parallelises
            // inside each product over output blocks, never over the summed axis), so the
            // result is deterministic.
            for i in 0..n {
                let gi = &g[i * cout * hw..(i + 1) * cout * hw];
                let xi = &x[i * cin * hw..(i + 1) * cin * hw];
                let (lhs, rhs) = (Mat::rows(gi, hw), Mat::transposed(xi, hw));
                matmul(&mut gw_out, lhs, rhs, (cout, cin, hw), i > 0, par);
            }
        }
        // SAFETY: the first product (there is one, as `n * hw > 0`) does not accumulate, so it
        // writes all of `gw_out`; the later ones add to it.
        let gw_out = unsafe { super::assume_init(gw_out) };
        Ok((gw_out, Shape::from((cout, cin, 1, 1))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{builtin, test_util::*};
    use candle_core::{DType, Device, Tensor, Var};

    /// Forward and both gradients against candle's `conv2d`; `x` may be a view of `var`.
    fn check_view(var: &Var, x: &Tensor, cin: usize, cout: usize) {
        let w = Var::from_tensor(&random(&[cout, cin, 1, 1], 11)).unwrap();
        let ours = super::super::pointwise_conv2d(x, &w).unwrap();
        let theirs = builtin::pointwise_conv2d(x, &w).unwrap();
        assert_close(&ours, &theirs, 1e-4);
        let up = random(ours.dims(), 12);
        assert_same_grads(&ours, &theirs, &up, &[var, &w], 1e-4);
    }

    #[test]
    fn matches_candle_small_and_large_batch() {
        // The last shape's 17x16 planes take the per-sample weight-gradient path.
        for (n, cin, cout, h, w) in [
            (1, 3, 5, 4, 3),
            (3, 8, 4, 5, 5),
            (9, 6, 7, 3, 2),
            (3, 4, 5, 17, 16),
        ] {
            let x = Var::from_tensor(&random(&[n, cin, h, w], 10)).unwrap();
            check_view(&x, &x, cin, cout);
        }
    }

    #[test]
    fn non_contiguous_input() {
        let x = Var::from_tensor(&random(&[2, 4, 3, 5], 13)).unwrap();
        let xt = x.transpose(2, 3).unwrap();
        assert!(!xt.is_contiguous());
        check_view(&x, &xt, 4, 6);
    }

    #[test]
    fn rejects_mismatched_weight() {
        let x = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((4, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
        assert!(super::super::Conv::Pointwise.cpu(&x, &w).is_err());
    }
}
