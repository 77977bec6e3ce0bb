//! A dense convolution for training whose backward pass skips the input's gradient when the
//! input needs none.
//!
//! candle's `conv2d` always computes the gradient of its input, a transposed convolution as
//! costly as the weight's gradient. A network's stem convolves the images, which need no
//! gradient: at 176 images of 96x96 the wasted transposed convolution took 230 ms a step.
//! Here candle's own `conv2d` makes the output and candle's own formula the weight's gradient,
//! so the values are the same bits as candle's.

use candle_core::{Device, Result, Shape, Tensor};

use super::{Cpu, Kernel, Operand};

/// `conv2d(x, w)` with zero padding `padding` on every side, stride `stride` and no dilation,
/// for f32 CPU tensors of an input that tracks no gradient.
pub(super) fn train(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Cpu(Conv2d { padding, stride }))
}

/// candle's `conv2d` as one graph node whose backward pass gives only the weight's gradient.
struct Conv2d {
    padding: usize,
    stride: usize,
}

impl Kernel<2> for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn forward(&self, [x, w]: [Operand<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        // The operands are borrowed slices; candle's op needs tensors, so they are copied in
        // and the output out (the images and the stem's output: a few ms a step).
        let x = Tensor::from_slice(x.data, x.shape, &Device::Cpu)?;
        let w = Tensor::from_slice(w.data, w.shape, &Device::Cpu)?;
        let y = x.conv2d(&w, self.padding, self.stride, 1, 1)?;
        Ok((y.flatten_all()?.to_vec1()?, y.shape().clone()))
    }

    fn backward(&self, [x, w]: [&Tensor; 2], grad: &Tensor) -> Result<[Option<Tensor>; 2]> {
        if x.track_op() {
            candle_core::bail!("conv2d: the input's gradient is not computed here");
        }
        // candle's weight gradient of `conv2d`: the input's channels as the batch, convolved
        // with the output gradient's, strides and dilations swapped.
        let g = x
            .transpose(0, 1)?
            .conv2d(&grad.transpose(0, 1)?, self.padding, 1, self.stride, 1)?
            .transpose(0, 1)?;
        let (_, _, k0, k1) = w.dims4()?;
        let (_, _, g0, g1) = g.dims4()?;
        let g = if (g0, g1) != (k0, k1) {
            g.narrow(2, 0, k0)?.narrow(3, 0, k1)?
        } else {
            g
        };
        Ok([None, Some(g)])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{conv2d_train, test_util::random};
    use candle_core::{Tensor, Var};

    /// Output and weight gradient are candle's, bit for bit, for inputs that leave a remainder
    /// the stride cannot reach (the gradient is then cut to the kernel) and inputs that do not.
    #[test]
    fn matches_candles_conv2d_bit_for_bit() {
        for (side, padding, stride) in [(9, 0, 2), (10, 0, 2), (10, 1, 2), (7, 1, 1)] {
            let x = random(&[3, 2, side, side], 91);
            let w = Var::from_tensor(&random(&[4, 2, 3, 3], 92)).unwrap();
            let out = (side + 2 * padding - 3) / stride + 1;
            let up = random(&[3, 4, out, out], 93);
            let ours = conv2d_train(&x, &w, padding, stride).unwrap();
            let theirs = x.conv2d(&w, padding, stride, 1, 1).unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(flat(&ours), flat(&theirs));
            let ga = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (theirs * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert_eq!(flat(ga.get(&w).unwrap()), flat(gb.get(&w).unwrap()));
        }
    }

    /// An input that needs its gradient gets it, through candle's own op.
    #[test]
    fn a_tracked_input_gets_its_gradient() {
        let x = Var::from_tensor(&random(&[2, 2, 7, 7], 94)).unwrap();
        let w = Var::from_tensor(&random(&[3, 2, 3, 3], 95)).unwrap();
        let g = conv2d_train(&x, &w, 1, 2)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&x).is_some() && g.get(&w).is_some());
    }
}
