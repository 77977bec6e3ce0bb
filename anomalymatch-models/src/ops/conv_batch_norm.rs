//! A convolution and the training-mode batch norm after it as one graph node, on the CPU.
//!
//! candle's backward pass gives every input of every op a fresh zero tensor and adds the
//! gradient to it, on the calling thread. Between a convolution and its batch norm that is a
//! zero-fill and an addition over an activation-sized tensor, about 3% of a Lite0 training step
//! per such edge summed over the network. As one node, the convolution's output stays inside
//! the op: the forward pass keeps it for the backward pass, which hands the batch norm's input
//! gradient straight to the convolution's backward kernels.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use std::sync::{Arc, Mutex, PoisonError};

use super::batch_norm::{self, BatchNorm};
use super::depthwise::DepthwiseConv;
use super::pointwise::PointwiseConv;
use super::{Activation, BatchStats, Conv};

/// `act(batch_norm(conv(x, w)))` in training mode for contiguous f32 CPU tensors.
pub(super) fn train(
    x: &Tensor,
    w: &Tensor,
    conv: Conv,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<(Tensor, BatchStats)> {
    // Three operands at most per custom op: scale and shift travel as one `[2C]` tensor, whose
    // concatenation is cheap to differentiate (channel-sized).
    let affine = Tensor::cat(&[gamma.flatten_all()?, beta.flatten_all()?], 0)?;
    let saved = Arc::new(Mutex::new(None));
    let op = ConvBatchNorm {
        conv,
        eps,
        act,
        saved: Arc::clone(&saved),
    };
    let y = x.contiguous()?.apply_op3(&w.contiguous()?, &affine, op)?;
    let state = saved.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(state) = state.as_ref() else {
        bail!("conv_batch_norm: the forward pass did not run on the CPU");
    };
    let (n, _, h, wd) = state.conv_out.dims4()?;
    let device = x.device();
    let stats = BatchStats {
        mean: Tensor::new(state.mean.as_slice(), device)?,
        var: (Tensor::new(state.var.as_slice(), device)?
            * batch_norm::unbiased_factor(n * h * wd))?,
    };
    Ok((y, stats))
}

/// What the forward pass leaves for the backward pass and for the running statistics.
struct Saved {
    /// The convolution's output, the batch norm's input.
    conv_out: Tensor,
    mean: Vec<f32>,
    /// Biased batch variance.
    var: Vec<f32>,
    norm: BatchNorm,
}

/// The fused op on `(x, w, [gamma; beta])`.
struct ConvBatchNorm {
    conv: Conv,
    eps: f64,
    act: Activation,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl ConvBatchNorm {
    fn conv_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match self.conv {
            Conv::Pointwise => PointwiseConv.cpu_fwd(s1, l1, s2, l2),
            Conv::Depthwise { stride, padding } => {
                DepthwiseConv { stride, padding }.cpu_fwd(s1, l1, s2, l2)
            }
        }
    }

    fn conv_bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        conv_out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match self.conv {
            Conv::Pointwise => PointwiseConv.bwd(x, w, conv_out, grad),
            Conv::Depthwise { stride, padding } => {
                DepthwiseConv { stride, padding }.bwd(x, w, conv_out, grad)
            }
        }
    }
}

impl CustomOp3 for ConvBatchNorm {
    fn name(&self) -> &'static str {
        "conv-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, shape) = self.conv_fwd(s1, l1, s2, l2)?;
        let c = shape.dims4()?.1;
        if l3.shape().elem_count() != 2 * c {
            bail!(
                "conv_batch_norm: scale and shift {:?} do not fit {c} channels",
                l3.shape()
            );
        }
        let layout = Layout::contiguous(&shape);
        let (mean, var) = batch_norm::channel_stats(&a, &layout)?;
        let norm = BatchNorm::training(mean.clone(), &var, self.eps, self.act);
        let start = l3.start_offset();
        let (gamma, beta) = (
            Layout::contiguous_with_offset(c, start),
            Layout::contiguous_with_offset(c, start + c),
        );
        let y = norm.cpu_fwd(&a, &layout, s3, &gamma, s3, &beta)?;
        let CpuStorage::F32(a) = a else {
            bail!("conv_batch_norm: the convolution did not return f32");
        };
        let conv_out = Tensor::from_vec(a, shape, &candle_core::Device::Cpu)?;
        let saved = Saved {
            conv_out,
            mean,
            var,
            norm,
        };
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved);
        Ok(y)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        affine: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(saved) = saved.as_ref() else {
            bail!("conv_batch_norm: backward before forward");
        };
        let affine_v = affine.flatten_all()?.to_vec1::<f32>()?;
        let (gamma, beta) = affine_v.split_at(affine_v.len() / 2);
        let (grad_a, sums) = saved.norm.backward(&saved.conv_out, gamma, beta, grad)?;
        let (grad_x, grad_w) = self.conv_bwd(x, w, &saved.conv_out, &grad_a)?;
        // `sums` rows are the gradients of beta and gamma; `affine` is gamma then beta.
        let grad_affine = Tensor::cat(&[sums.get(1)?, sums.get(0)?], 0)?;
        Ok((grad_x, grad_w, Some(grad_affine)))
    }
}

/// Checks the fused op against the same convolution and batch norm as separate ops.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{Activation, Conv, batch_norm_train, conv_batch_norm_train, test_util::*};
    use candle_core::Var;

    fn check(conv: Conv, x_dims: &[usize], w_dims: &[usize], act: Activation) {
        let x = Var::from_tensor(&random(x_dims, 61)).unwrap();
        let w = Var::from_tensor(&random(w_dims, 62)).unwrap();
        let c = w_dims[0];
        let gamma = Var::from_tensor(&random(&[c], 63)).unwrap();
        let beta = Var::from_tensor(&random(&[c], 64)).unwrap();
        let (a, sa) = conv_batch_norm_train(&x, &w, conv, &gamma, &beta, 1e-3, act).unwrap();
        let (b, sb) =
            batch_norm_train(&conv.apply(&x, &w).unwrap(), &gamma, &beta, 1e-3, act).unwrap();
        assert_close(&a, &b, 1e-5);
        assert_close(&sa.mean, &sb.mean, 1e-6);
        assert_close(&sa.var, &sb.var, 1e-6);
        let up = random(a.dims(), 65);
        let g1 = (a * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (b * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &gamma, &beta] {
            assert_close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-5);
        }
    }

    #[test]
    fn pointwise_matches_separate_ops() {
        check(
            Conv::Pointwise,
            &[3, 4, 5, 5],
            &[6, 4, 1, 1],
            Activation::Relu6,
        );
        check(
            Conv::Pointwise,
            &[2, 5, 3, 3],
            &[3, 5, 1, 1],
            Activation::Identity,
        );
    }

    #[test]
    fn depthwise_matches_separate_ops() {
        let s2 = Conv::Depthwise {
            stride: 2,
            padding: (0, 1),
        };
        let s1 = Conv::Depthwise {
            stride: 1,
            padding: (2, 2),
        };
        check(s2, &[2, 4, 8, 8], &[4, 1, 3, 3], Activation::Silu);
        check(s1, &[3, 3, 6, 6], &[3, 1, 5, 5], Activation::Relu6);
    }

    #[test]
    fn rejects_affine_of_wrong_size() {
        let x = random(&[1, 2, 3, 3], 71);
        let w = random(&[4, 2, 1, 1], 72);
        let p = random(&[3], 73);
        assert!(
            conv_batch_norm_train(&x, &w, Conv::Pointwise, &p, &p, 1e-3, Activation::Identity)
                .is_err()
        );
    }
}
