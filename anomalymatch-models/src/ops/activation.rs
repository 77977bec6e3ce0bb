//! ReLU6 and SiLU on the CPU: one pass over the input forward, one over `(x, grad)` backward.
//!
//! candle's `relu().minimum(6)` keeps intermediate tensors for its backward pass and builds
//! about ten full-size tensors there; here each direction reads its inputs once and writes one
//! output.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::{Activation, Cpu, Kernel, Operand, simd};

/// Elements per rayon task: large enough that scheduling is negligible, small enough that both
/// cores get work on the 3x3 late layers.
const CHUNK: usize = 1 << 14;

/// ReLU6 of an f32 CPU tensor.
pub(super) fn relu6(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Cpu(Activation::Relu6))
}

/// SiLU of an f32 CPU tensor.
pub(super) fn silu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Cpu(Activation::Silu))
}

/// An activation's scalar functions, as a type: kernels are generic over it (through
/// `with_scalar!`) so each loop is compiled once per activation and vectorises, which a
/// `match` on the activation per element prevents.
pub(super) trait Scalar {
    /// The activation at `x`.
    fn forward(x: f32) -> f32;
    /// `d activation / dx` at `x`, times `g`.
    fn backward(x: f32, g: f32) -> f32;
}

/// [`Activation::Identity`].
pub(super) struct IdentityFn;
/// [`Activation::Relu6`].
pub(super) struct Relu6Fn;
/// [`Activation::Silu`].
pub(super) struct SiluFn;

impl Scalar for IdentityFn {
    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x
    }

    #[inline(always)]
    fn backward(_: f32, g: f32) -> f32 {
        g
    }
}

impl Scalar for Relu6Fn {
    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x.clamp(0.0, 6.0)
    }

    /// Zero gradient at the kinks and outside (0, 6), as candle's relu/minimum give. The test
    /// becomes a bit mask on `g`: written as `if`, LLVM turned it into one branch per vector
    /// lane inside the batch-norm reductions, which then took a fifth of a training step.
    #[inline(always)]
    fn backward(x: f32, g: f32) -> f32 {
        let keep = ((x > 0.0) & (x < 6.0)) as u32;
        f32::from_bits(g.to_bits() & keep.wrapping_neg())
    }
}

impl Scalar for SiluFn {
    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x / (1.0 + (-x).exp())
    }

    #[inline(always)]
    fn backward(x: f32, g: f32) -> f32 {
        let s = 1.0 / (1.0 + (-x).exp());
        g * s * (1.0 + x * (1.0 - s))
    }
}

impl Kernel<1> for Activation {
    fn name(&self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Relu6 => "relu6",
            Self::Silu => "silu",
        }
    }

    fn forward(&self, [x]: [Operand<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let mut out = super::uninit(x.data.len());
        // Plain loops over chunks, so that ReLU6 vectorises (a per-element parallel iterator
        // does not).
        with_scalar!(*self, F => out.par_chunks_mut(CHUNK).zip(x.data.par_chunks(CHUNK)).for_each(
            |(o, x)| simd::wide(#[inline(always)] || {
                for (o, &v) in o.iter_mut().zip(x) {
                    o.write(F::forward(v));
                }
            })
        ));
        // SAFETY: the chunks of `out` and `x` pair up one to one and every element is written.
        let out = unsafe { super::assume_init(out) };
        Ok((out, x.shape.clone()))
    }

    fn backward(&self, [x]: [&Tensor; 1], grad: &Tensor) -> Result<[Option<Tensor>; 1]> {
        let grad = grad.contiguous()?;
        Ok([Some(x.apply_op2_no_bwd(&grad, &Cpu(Gradient(*self)))?)])
    }
}

/// `(x, grad_out) -> grad_x` for an [`Activation`].
struct Gradient(Activation);

impl Kernel<2> for Gradient {
    fn name(&self) -> &'static str {
        "activation-grad"
    }

    fn forward(&self, [x, g]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        if x.shape != g.shape {
            bail!(
                "activation backward: input {:?} and gradient {:?} differ",
                x.shape,
                g.shape
            );
        }
        let mut out = super::uninit(x.data.len());
        let chunks = x.data.par_chunks(CHUNK).zip(g.data.par_chunks(CHUNK));
        with_scalar!(self.0, F => out.par_chunks_mut(CHUNK).zip(chunks).for_each(
            |(o, (x, g))| simd::wide(#[inline(always)] || {
                for ((o, &v), &d) in o.iter_mut().zip(x).zip(g) {
                    o.write(F::backward(v, d));
                }
            })
        ));
        // SAFETY: the chunks of `out`, `x` and `g` pair up one to one (equal shapes, checked
        // above) and every element is written.
        let out = unsafe { super::assume_init(out) };
        Ok((out, x.shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{builtin, test_util::*};
    use candle_core::{Tensor, Var};

    type Op = fn(&Tensor) -> candle_core::Result<Tensor>;

    /// Forward and gradient against candle's path on values spread over (-8, 8), viewed
    /// through a transpose to cover strided inputs.
    fn check(ours: Op, theirs: Op) {
        let x = Var::from_tensor(&(random(&[3, 4, 5, 6], 21) * 8.0).unwrap()).unwrap();
        for view in [x.as_tensor().clone(), x.transpose(1, 3).unwrap()] {
            let a = ours(&view).unwrap();
            let b = theirs(&view).unwrap();
            assert_close(&a, &b, 1e-5);
            let up = random(a.dims(), 22);
            assert_same_grads(&a, &b, &up, &[&x], 1e-5);
        }
    }

    #[test]
    fn relu6_matches_candle() {
        check(super::super::relu6, builtin::relu6);
    }

    #[test]
    fn silu_matches_candle() {
        check(super::super::silu, builtin::silu);
    }

    #[test]
    fn relu6_clamps_both_sides() {
        let x = Tensor::new(&[-1f32, 0.5, 7.0], &candle_core::Device::Cpu).unwrap();
        let y = super::super::relu6(&x).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, [0.0, 0.5, 6.0]);
    }
}
