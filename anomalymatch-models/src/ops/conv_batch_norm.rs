//! A chain of convolutions, each followed by a training-mode batch norm and an activation, as
//! one graph node on the CPU (an MBConv block's expansion, depthwise and projection layers).
//!
//! candle's backward pass gives every input of every op a fresh zero tensor and adds the
//! gradient to it, on the calling thread. Inside an MBConv block that is a zero-fill and an
//! addition over an activation-sized tensor at each of five edges (convolution to batch norm,
//! batch norm to the next convolution). As one node, the intermediate tensors stay inside the
//! op: the forward pass keeps them for the backward pass, which hands each gradient straight
//! to the kernels of the layer before.

use candle_core::{Device, Result, Shape, Storage, Tensor, bail};
use std::sync::{Arc, Mutex, PoisonError};

use super::batch_norm::{self, BatchNorm};
use super::{Activation, BatchStats, Conv, ConvBn, Cpu, Kernel, Operand};

/// `links` applied in order to `x`, in training mode, for f32 CPU tensors; with `recompute`,
/// the backward pass recomputes the convolution outputs instead of the forward pass keeping them.
pub(super) fn train(
    x: &Tensor,
    links: &[ConvBn<'_>],
    recompute: bool,
) -> Result<(Tensor, Vec<BatchStats>)> {
    if links.is_empty() {
        bail!("conv_batch_norm: no layers");
    }
    // Three operands at most per custom op: the weights travel as one flat tensor, and so do
    // the scales and shifts. Differentiating the concatenation costs parameter-sized copies.
    let mut weights = Vec::with_capacity(links.len());
    let mut affine = Vec::with_capacity(2 * links.len());
    let mut specs = Vec::with_capacity(links.len());
    for link in links {
        let (c, _, _, _) = link.weight.dims4()?;
        weights.push(link.weight.flatten_all()?);
        affine.push(link.gamma.flatten_all()?);
        affine.push(link.beta.flatten_all()?);
        specs.push(LinkSpec {
            conv: link.conv,
            weight: link.weight.shape().clone(),
            channels: c,
            eps: link.eps,
            act: link.act,
        });
    }
    let saved = Arc::new(Mutex::new(Vec::new()));
    let op = ConvBnChain {
        links: specs,
        recompute,
        saved: Arc::clone(&saved),
    };
    let y = x.contiguous()?.apply_op3(
        &Tensor::cat(&weights, 0)?,
        &Tensor::cat(&affine, 0)?,
        Cpu(op),
    )?;
    let saved = saved.lock().unwrap_or_else(PoisonError::into_inner);
    let device = x.device();
    let stats = saved
        .iter()
        .map(|s| {
            Ok(BatchStats {
                mean: Tensor::new(s.norm.mean(), device)?,
                var: (Tensor::new(s.var.as_slice(), device)?
                    * batch_norm::unbiased_factor(s.count))?,
                count: s.count,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if stats.len() != links.len() {
        bail!("conv_batch_norm: the forward pass did not run on the CPU");
    }
    Ok((y, stats))
}

/// What the op needs to know of a link besides its tensors.
struct LinkSpec {
    conv: Conv,
    weight: Shape,
    channels: usize,
    eps: f64,
    act: Activation,
}

impl LinkSpec {
    /// The link's convolution weight within the chain's flat weights, from offset `at`.
    fn weight_in<'a>(&'a self, all: &'a [f32], at: usize) -> Operand<'a> {
        Operand {
            data: &all[at..at + self.weight.elem_count()],
            shape: &self.weight,
        }
    }
}

/// What the forward pass leaves, per link, for the backward pass and the running statistics.
/// A link's activated output is not kept: the backward pass recomputes it from the convolution's
/// output where the next link needs it, an elementwise pass that saves an activation-sized
/// tensor per internal link (a fifth of a default training step's peak memory). The backward
/// pass takes each convolution output as it finishes with it: by the first blocks, where the
/// tensors are largest, the later blocks' are gone (a quarter of the step's peak).
struct SavedLink {
    /// The convolution's output, the batch norm's input; the backward pass takes it (and, when
    /// the chain recomputes, first puts it there).
    conv_out: Option<Tensor>,
    /// Values per channel the batch statistics were taken over.
    count: usize,
    /// Biased batch variance (the mean is the batch norm's).
    var: Vec<f32>,
    norm: BatchNorm,
}

impl SavedLink {
    /// The link's activated output, as the forward pass computed it, from its scale and shift
    /// (the first `2 * channels` values of `affine`).
    fn output(&self, affine: &[f32], channels: usize) -> Result<Tensor> {
        let Some(conv_out) = &self.conv_out else {
            bail!("conv_batch_norm: a saved tensor was used after the backward pass");
        };
        let per_channel = Shape::from(channels);
        let operand = |data| Operand {
            data,
            shape: &per_channel,
        };
        let (y, shape) = with_operand(conv_out, |a| {
            self.norm.forward([
                a,
                operand(&affine[..channels]),
                operand(&affine[channels..2 * channels]),
            ])
        })?;
        Tensor::from_vec(y, shape, &Device::Cpu)
    }
}

/// `f` of the contiguous f32 CPU tensor `t` as a kernel operand.
fn with_operand<R>(t: &Tensor, f: impl FnOnce(Operand<'_>) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(s) = &*storage else {
        bail!("conv_batch_norm: a tensor of the chain left the CPU");
    };
    f(Operand::new(s, layout)?)
}

/// The fused op on `(x, flat weights, [gamma_1; beta_1; gamma_2; ...])`.
struct ConvBnChain {
    links: Vec<LinkSpec>,
    /// Keep only the batch statistics, and run the convolutions again in the backward pass.
    recompute: bool,
    saved: Arc<Mutex<Vec<SavedLink>>>,
}

impl ConvBnChain {
    /// Offsets of each link's weight and of its scale (the shift follows it), in elements,
    /// then the two operands' total sizes as a last entry.
    fn offsets(&self) -> Vec<(usize, usize)> {
        let mut at = vec![(0, 0)];
        for l in &self.links {
            let (w, a) = at[at.len() - 1];
            at.push((w + l.weight.elem_count(), a + 2 * l.channels));
        }
        at
    }

    /// Runs the convolutions of the forward pass again from `x`, each link's input its
    /// predecessor's output as its saved batch norm gives it, into the links' saved outputs:
    /// the same kernels on the same values give the same bits.
    fn recompute(
        &self,
        x: &Tensor,
        weights: &Tensor,
        affine: &[f32],
        saved: &mut [SavedLink],
    ) -> Result<()> {
        let mut input: Option<Tensor> = None;
        for (i, (link, &(w_at, a_at))) in self.links.iter().zip(&self.offsets()).enumerate() {
            let (a, shape) = with_operand(weights, |all| {
                let w = link.weight_in(all.data, w_at);
                with_operand(input.as_ref().unwrap_or(x), |t| link.conv.forward([t, w]))
            })?;
            saved[i].conv_out = Some(Tensor::from_vec(a, shape, &Device::Cpu)?);
            if i + 1 < self.links.len() {
                input = Some(saved[i].output(&affine[a_at..], link.channels)?);
            }
        }
        Ok(())
    }
}

impl Kernel<3> for ConvBnChain {
    fn name(&self) -> &'static str {
        "conv-batch-norm"
    }

    fn forward(&self, [x, weights, affine]: [Operand<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let offsets = self.offsets();
        let (w_len, a_len) = offsets[self.links.len()];
        if weights.data.len() != w_len || affine.data.len() != a_len {
            bail!(
                "conv_batch_norm: weights {:?} or scales and shifts {:?} do not fit the layers",
                weights.shape,
                affine.shape
            );
        }
        let mut saved = Vec::with_capacity(self.links.len());
        let mut input: Option<Tensor> = None;
        for (i, (link, &(w_at, a_at))) in self.links.iter().zip(&offsets).enumerate() {
            let w = link.weight_in(weights.data, w_at);
            let (a, shape) = match &input {
                None => link.conv.forward([x, w])?,
                Some(t) => with_operand(t, |t| link.conv.forward([t, w]))?,
            };
            let c = shape.dims4()?.1;
            if c != link.channels {
                bail!(
                    "conv_batch_norm: layer {i} gives {c} channels, expected {}",
                    link.channels
                );
            }
            let conv_out = Operand {
                data: &a,
                shape: &shape,
            };
            let (mean, var) = batch_norm::channel_stats(conv_out)?;
            let norm = BatchNorm::training(mean, &var, link.eps, link.act);
            let per_channel = Shape::from(c);
            let (gamma, beta) = (
                Operand {
                    data: &affine.data[a_at..a_at + c],
                    shape: &per_channel,
                },
                Operand {
                    data: &affine.data[a_at + c..a_at + 2 * c],
                    shape: &per_channel,
                },
            );
            let (y, _) = norm.forward([conv_out, gamma, beta])?;
            let (n, _, height, width) = shape.dims4()?;
            saved.push(SavedLink {
                conv_out: (!self.recompute)
                    .then(|| Tensor::from_vec(a, shape.clone(), &Device::Cpu))
                    .transpose()?,
                count: n * height * width,
                var,
                norm,
            });
            if i + 1 == self.links.len() {
                *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = saved;
                return Ok((y, shape));
            }
            input = Some(Tensor::from_vec(y, shape, &Device::Cpu)?);
        }
        bail!("conv_batch_norm: no layers")
    }

    fn backward(
        &self,
        [x, weights, affine]: [&Tensor; 3],
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        if saved.len() != self.links.len() {
            bail!("conv_batch_norm: backward before forward");
        }
        // Views of the weights for the kernels; the gradient is assembled by hand below.
        let weights = weights.detach();
        let affine = affine.flatten_all()?.to_vec1::<f32>()?;
        let offsets = self.offsets();
        if self.recompute {
            self.recompute(x, &weights, &affine, &mut saved)?;
        }
        // Filled from the last link back, then put in the operands' order.
        let mut grad_w = Vec::with_capacity(self.links.len());
        let mut grad_affine = Vec::with_capacity(self.links.len());
        let mut grad = grad.clone();
        let mut grad_x = None;
        // Each tensor is dropped as soon as it has served, so that the step's peak (the backward
        // pass through the first, largest blocks) holds no saved tensor of the later blocks.
        for (i, (link, &(w_at, a_at))) in self.links.iter().zip(&offsets).enumerate().rev() {
            let c = link.channels;
            let (gamma, beta) = (&affine[a_at..a_at + c], &affine[a_at + c..a_at + 2 * c]);
            let Some(conv_out) = saved[i].conv_out.take() else {
                bail!("conv_batch_norm: backward ran twice");
            };
            let (grad_a, sums) = saved[i].norm.gradients(&conv_out, gamma, beta, &grad)?;
            drop((conv_out, grad));
            let w = weights
                .narrow(0, w_at, link.weight.elem_count())?
                .reshape(&link.weight)?;
            let recomputed = match i.checked_sub(1) {
                Some(before) => {
                    let (_, a_before) = offsets[before];
                    Some(saved[before].output(&affine[a_before..], self.links[before].channels)?)
                }
                None => None,
            };
            let input = recomputed.as_ref().unwrap_or(x);
            let (_, _, h, width) = input.dims4()?;
            grad_w.push(link.conv.grad_weight(input, &w, &grad_a)?.flatten_all()?);
            drop(recomputed);
            // `sums` rows are the gradients of beta and gamma; the operand has gamma first.
            grad_affine.push(Tensor::cat(&[sums.get(1)?, sums.get(0)?], 0)?);
            if i == 0 {
                grad_x = x
                    .track_op()
                    .then(|| link.conv.grad_input((h, width), &w, &grad_a))
                    .transpose()?;
                break;
            }
            grad = link.conv.grad_input((h, width), &w, &grad_a)?;
        }
        grad_w.reverse();
        grad_affine.reverse();
        Ok([
            grad_x,
            Some(Tensor::cat(&grad_w, 0)?),
            Some(Tensor::cat(&grad_affine, 0)?),
        ])
    }
}

/// Checks the fused chain against the same convolutions and batch norms as separate ops.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{
        Activation, Conv, ConvBn, batch_norm_train, conv_batch_norm_train, test_util::*,
    };
    use candle_core::{Tensor, Var};

    /// A link's variables: weight, gamma, beta.
    fn vars(w_dims: &[usize], seed: u64) -> [Var; 3] {
        let c = w_dims[0];
        [
            Var::from_tensor(&random(w_dims, seed)).unwrap(),
            Var::from_tensor(&random(&[c], seed + 1)).unwrap(),
            Var::from_tensor(&random(&[c], seed + 2)).unwrap(),
        ]
    }

    fn check(x_dims: &[usize], layers: &[(Conv, Vec<usize>, Activation)]) {
        let x = Var::from_tensor(&random(x_dims, 61)).unwrap();
        let params: Vec<[Var; 3]> = layers
            .iter()
            .enumerate()
            .map(|(i, (_, w, _))| vars(w, 100 + 10 * i as u64))
            .collect();
        let links: Vec<ConvBn<'_>> = layers
            .iter()
            .zip(&params)
            .map(|((conv, _, act), [w, g, b])| ConvBn {
                weight: w,
                conv: *conv,
                gamma: g,
                beta: b,
                eps: 1e-3,
                act: *act,
            })
            .collect();
        let (fused, stats) = conv_batch_norm_train(&x, &links, false).unwrap();
        let mut plain: Tensor = x.as_tensor().clone();
        for (link, s) in links.iter().zip(&stats) {
            let a = link.conv.apply(&plain, link.weight).unwrap();
            let (y, st) = batch_norm_train(&a, link.gamma, link.beta, 1e-3, link.act).unwrap();
            assert_close(&s.mean, &st.mean, 1e-5);
            assert_close(&s.var, &st.var, 1e-5);
            plain = y;
        }
        assert_close(&fused, &plain, 1e-5);
        let up = random(fused.dims(), 65);
        let mut vars = vec![&x];
        vars.extend(params.iter().flatten());
        assert_same_grads(&fused, &plain, &up, &vars, 1e-4);
    }

    #[test]
    fn single_layers_match_separate_ops() {
        let pw = (Conv::Pointwise, vec![6, 4, 1, 1], Activation::Relu6);
        check(&[3, 4, 5, 5], &[pw]);
        let dw = Conv::Depthwise {
            stride: 2,
            padding: (0, 1),
        };
        check(&[2, 4, 8, 8], &[(dw, vec![4, 1, 3, 3], Activation::Silu)]);
    }

    /// An MBConv block's three layers: expansion, stride-2 depthwise, projection.
    #[test]
    fn mbconv_chain_matches_separate_ops() {
        let dw = Conv::Depthwise {
            stride: 2,
            padding: (1, 2),
        };
        check(
            &[3, 4, 9, 9],
            &[
                (Conv::Pointwise, vec![12, 4, 1, 1], Activation::Relu6),
                (dw, vec![12, 1, 5, 5], Activation::Relu6),
                (Conv::Pointwise, vec![5, 12, 1, 1], Activation::Identity),
            ],
        );
    }

    /// A pointwise link over the variables `[w, g, b]`.
    fn pointwise([w, g, b]: &[Var; 3], act: Activation) -> ConvBn<'_> {
        ConvBn {
            weight: w,
            conv: Conv::Pointwise,
            gamma: g,
            beta: b,
            eps: 1e-3,
            act,
        }
    }

    /// Recomputing the convolutions in the backward pass gives the kept tensors' gradients, bit
    /// for bit, through an MBConv chain with a stride-2 depthwise layer.
    #[test]
    fn recomputing_gives_the_kept_gradients() {
        let x = Var::from_tensor(&random(&[3, 4, 9, 9], 91)).unwrap();
        let params = [
            vars(&[12, 4, 1, 1], 92),
            vars(&[12, 1, 3, 3], 95),
            vars(&[5, 12, 1, 1], 98),
        ];
        let mut links = vec![
            pointwise(&params[0], Activation::Silu),
            pointwise(&params[2], Activation::Identity),
        ];
        let [w, gamma, beta] = &params[1];
        links.insert(
            1,
            ConvBn {
                weight: w,
                conv: Conv::Depthwise {
                    stride: 2,
                    padding: (0, 1),
                },
                gamma,
                beta,
                eps: 1e-3,
                act: Activation::Silu,
            },
        );
        let run = |recompute| -> Vec<Vec<f32>> {
            let (y, _) = conv_batch_norm_train(&x, &links, recompute).unwrap();
            let up = random(y.dims(), 99);
            let grads = (y.clone() * up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut out = vec![y.flatten_all().unwrap().to_vec1().unwrap()];
            for v in std::iter::once(&x).chain(params.iter().flatten()) {
                let g = grads.get(v.as_tensor()).unwrap();
                out.push(g.flatten_all().unwrap().to_vec1().unwrap());
            }
            out
        };
        assert!(run(false) == run(true), "outputs or gradients differ");
    }

    /// The backward pass frees what the forward pass saved, so a second one must say so.
    #[test]
    fn a_second_backward_pass_is_an_error() {
        let x = Var::from_tensor(&random(&[2, 4, 5, 5], 81)).unwrap();
        let params = vars(&[6, 4, 1, 1], 82);
        let link = pointwise(&params, Activation::Relu6);
        let (y, _) = conv_batch_norm_train(&x, &[link], false).unwrap();
        let loss = y.sum_all().unwrap();
        assert!(loss.backward().is_ok());
        let err = loss.backward().unwrap_err().to_string();
        assert!(err.contains("backward ran twice"), "{err}");
    }

    #[test]
    fn rejects_mismatched_layers() {
        let x = random(&[1, 2, 3, 3], 71);
        let params = vars(&[4, 3, 1, 1], 72);
        let link = pointwise(&params, Activation::Identity);
        assert!(conv_batch_norm_train(&x, &[link], false).is_err());
        assert!(conv_batch_norm_train(&x, &[], false).is_err());
    }
}
