//! 2-D batch normalisation (Ioffe & Szegedy 2015, arXiv 1502.03167) with PyTorch's semantics
//! and explicit variable roles.
//!
//! candle-nn's `BatchNorm` keeps its running statistics in the same `VarMap` as the trained
//! parameters, so an optimiser over "all variables" would train them. Here scale and shift are
//! [`VarRole::NoDecay`] and the running statistics [`VarRole::Buffer`], which the FixMatch
//! trainer and the EMA treat differently.

use crate::ops::{self, Activation};
use anomalymatch_core::{NamedVar, VarRole};
use candle_core::{DType, Device, Result, Tensor, Var};
use std::sync::{Mutex, PoisonError};

/// What a training-mode pass records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The graph for a backward pass; batch norms update their running statistics.
    Graph,
    /// As [`Pass::Graph`], but each fused chain of convolutions and batch norms keeps only its
    /// batch statistics and runs its convolutions again in the backward pass: the same
    /// gradients for less memory and more time.
    Recompute,
    /// Nothing: the parameters are used detached, so each layer's output is freed as soon as
    /// the next one has used it. Batch norms hold their batch statistics for the next
    /// [`Pass::Graph`], which updates the running statistics with both as one batch (FixMatch's
    /// weak view, which only makes pseudo-labels, runs this way).
    Detached,
}

impl Pass {
    /// `t` as this pass uses a parameter: as it is, or detached.
    pub fn param(self, t: &Tensor) -> Tensor {
        match self {
            Pass::Graph | Pass::Recompute => t.clone(),
            Pass::Detached => t.detach(),
        }
    }

    /// Whether the pass records a graph for a backward pass.
    pub fn records(self) -> bool {
        self != Pass::Detached
    }
}

/// Batch norm over the channels of `[N, C, H, W]` tensors.
///
/// Training mode normalises with the batch's statistics (biased variance, gradients flow
/// through them) and updates the running statistics as PyTorch does:
/// `running = (1 - momentum) * running + momentum * batch`, with the unbiased batch variance.
/// Eval mode normalises with the running statistics.
#[derive(Debug)]
pub struct BatchNorm2d {
    prefix: String,
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    momentum: f64,
    eps: f64,
    /// Batch statistics of detached passes since the last update of the running ones.
    held: Mutex<Vec<ops::BatchStats>>,
}

impl BatchNorm2d {
    /// A fresh layer as PyTorch initialises it: scale 1, shift 0, running mean 0, variance 1.
    /// Variables are named `{prefix}.weight`, `.bias`, `.running_mean`, `.running_var`.
    pub fn new(
        prefix: impl Into<String>,
        channels: usize,
        momentum: f64,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        let ones = || Var::ones(channels, DType::F32, device);
        let zeros = || Var::zeros(channels, DType::F32, device);
        Ok(Self {
            prefix: prefix.into(),
            weight: ones()?,
            bias: zeros()?,
            running_mean: zeros()?,
            running_var: ones()?,
            momentum,
            eps,
            held: Mutex::new(Vec::new()),
        })
    }

    /// Normalises `x [N, C, H, W]` and applies `act` in the same pass (the fused kernels of
    /// [`crate::ops`]); in training mode also updates the running statistics.
    pub fn forward_t(&self, x: &Tensor, train: bool, act: Activation) -> Result<Tensor> {
        if train {
            return self.forward_train(x, act, Pass::Graph);
        }
        let (w, b) = (self.weight.as_tensor(), self.bias.as_tensor());
        let (mean, var) = (self.running_mean.as_tensor(), self.running_var.as_tensor());
        ops::batch_norm_eval(x, w, b, mean, var, self.eps, act)
    }

    /// Training mode as `pass` says: the batch's statistics normalise `x`, then `act`.
    pub fn forward_train(&self, x: &Tensor, act: Activation, pass: Pass) -> Result<Tensor> {
        self.check_batch(x)?;
        let (w, b) = (self.weight.as_tensor(), self.bias.as_tensor());
        let (y, stats) = ops::batch_norm_train(x, &pass.param(w), &pass.param(b), self.eps, act)?;
        self.update_running(stats, pass)?;
        Ok(y)
    }

    /// The convolution `w` followed by this layer in eval mode, as one convolution with a
    /// bias, then `act`: `w * s` and `beta - mean * s` with `s = gamma / sqrt(var + eps)` per
    /// output channel. The result is detached: inference records no graph.
    pub fn fold(&self, w: &Tensor, act: Activation) -> Result<ops::EvalConv> {
        let t = |v: &Var| v.as_tensor().detach();
        let scale = (t(&self.weight) / (t(&self.running_var) + self.eps)?.sqrt()?)?;
        let c = scale.dim(0)?;
        let weight = w.detach().broadcast_mul(&scale.reshape((c, 1, 1, 1))?)?;
        let bias = (t(&self.bias) - (t(&self.running_mean) * &scale)?)?;
        Ok(ops::EvalConv { weight, bias, act })
    }

    /// Training mode needs more than one value per channel, as in PyTorch.
    fn check_batch(&self, x: &Tensor) -> Result<()> {
        let (n, _, h, wd) = x.dims4()?;
        if n * h * wd < 2 {
            candle_core::bail!(
                "{}: batch norm in training mode needs more than one value per channel",
                self.prefix
            );
        }
        Ok(())
    }

    /// `running = (1 - momentum) * running + momentum * batch`, as PyTorch does, where the
    /// batch is this pass's images and those of the detached passes before it.
    fn update_running(&self, stats: ops::BatchStats, pass: Pass) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.push(stats);
        if !pass.records() {
            return Ok(());
        }
        let stats = pooled(std::mem::take(&mut *held))?;
        let m = self.momentum;
        let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (stats.mean * m)?)?;
        let new_var = ((self.running_var.as_tensor() * (1.0 - m))? + (stats.var * m)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)
    }

    /// Appends scale and shift ([`VarRole::NoDecay`]) and the running statistics
    /// ([`VarRole::Buffer`]) to `out`.
    pub fn push_variables(&self, out: &mut Vec<NamedVar>) {
        let entries = [
            ("weight", &self.weight, VarRole::NoDecay),
            ("bias", &self.bias, VarRole::NoDecay),
            ("running_mean", &self.running_mean, VarRole::Buffer),
            ("running_var", &self.running_var, VarRole::Buffer),
        ];
        for (name, var, role) in entries {
            out.push(NamedVar {
                name: format!("{}.{name}", self.prefix),
                var: var.clone(),
                role,
            });
        }
    }
}

/// The statistics of several batches as those of one: the count-weighted mean, and the
/// variance about it (each batch's own spread plus its mean's distance from the pooled one).
fn pooled(mut batches: Vec<ops::BatchStats>) -> Result<ops::BatchStats> {
    if batches.len() == 1
        && let Some(only) = batches.pop()
    {
        return Ok(only);
    }
    let Some(first) = batches.first() else {
        candle_core::bail!("batch norm: no statistics to pool");
    };
    let n: f64 = batches.iter().map(|b| b.count as f64).sum();
    let mut mean = first.mean.zeros_like()?;
    for b in &batches {
        mean = (mean + (&b.mean * (b.count as f64 / n))?)?;
    }
    let mut biased = mean.zeros_like()?;
    for b in &batches {
        let count = b.count as f64;
        let own = (&b.var * ((count - 1.0).max(0.0) / count))?;
        biased = (biased + ((own + (&b.mean - &mean)?.sqr()?)? * (count / n))?)?;
    }
    Ok(ops::BatchStats {
        mean,
        var: (biased * (n / (n - 1.0).max(1.0)))?,
        count: n as usize,
    })
}

/// Convolutions, each followed by its batch norm and activation: `layers` applied to `x` in
/// order, in training mode as `pass` says, as one fused node
/// ([`ops::conv_batch_norm_train`]) that updates every layer's running statistics.
pub fn conv_bn_chain(
    x: &Tensor,
    layers: &[(&Tensor, ops::Conv, &BatchNorm2d, Activation)],
    pass: Pass,
) -> Result<Tensor> {
    let params: Vec<[Tensor; 3]> = layers
        .iter()
        .map(|&(w, _, bn, _)| {
            [w, bn.weight.as_tensor(), bn.bias.as_tensor()].map(|t| pass.param(t))
        })
        .collect();
    let links: Vec<ops::ConvBn<'_>> = layers
        .iter()
        .zip(&params)
        .map(|(&(_, conv, bn, act), [weight, gamma, beta])| ops::ConvBn {
            weight,
            conv,
            gamma,
            beta,
            eps: bn.eps,
            act,
        })
        .collect();
    let (y, stats) = ops::conv_batch_norm_train(x, &links, pass == Pass::Recompute)?;
    // Spatial sizes only shrink along the chain, so the output has the fewest values.
    if let Some(&(_, _, bn, _)) = layers.last() {
        bn.check_batch(&y)?;
    }
    for (&(_, _, bn, _), s) in layers.iter().zip(stats) {
        bn.update_running(s, pass)?;
    }
    Ok(y)
}
