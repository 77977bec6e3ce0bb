//! The classifier trait: what the FixMatch trainer, the scorer and the checkpoint code need
//! from a backbone, so that users can plug in their own network.

use crate::error::Result;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// How the optimiser, weight decay and EMA treat a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarRole {
    /// Trained, with weight decay (convolution and linear weights).
    Weight,
    /// Trained, without weight decay (batch-norm scale and shift, biases), as in FixMatch.
    NoDecay,
    /// Not trained by the optimiser but part of the state (batch-norm running statistics);
    /// EMA copies it instead of averaging it.
    Buffer,
}

impl VarRole {
    /// True for roles the optimiser updates.
    pub fn is_trainable(self) -> bool {
        self != VarRole::Buffer
    }
}

/// One named piece of model state.
#[derive(Debug, Clone)]
pub struct NamedVar {
    /// Stable name, used as the key in checkpoints.
    pub name: String,
    /// The storage; updating it in place updates the model.
    pub var: Var,
    /// How it is trained.
    pub role: VarRole,
}

/// What a model is, for telling whether a checkpoint fits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Architecture name, e.g. `efficientnet-lite0`.
    pub architecture: String,
    /// Input channels (3 for RGB, more for multi-band survey data).
    pub in_channels: usize,
    /// Output classes (2 for normal/anomaly).
    pub num_classes: usize,
}

/// An image classifier the trainer can fit: the backbone plug-in point.
///
/// Implementations keep all their state in [`candle_core::Var`]s listed by
/// [`Classifier::variables`]; the trainer, EMA and checkpoints work through that list only,
/// so a new backbone needs no change anywhere else.
pub trait Classifier {
    /// Logits `[N, num_classes]` for images `[N, C, H, W]`.
    ///
    /// `train` switches batch norm to batch statistics (updating running statistics) and
    /// enables dropout; FixMatch needs both modes on the same network.
    fn forward_t(&self, images: &Tensor, train: bool) -> Result<Tensor>;

    /// Logits in training mode (batch statistics, random masks) of images that only make
    /// pseudo-labels (FixMatch's weak view), with nothing recorded for a backward pass, so
    /// that none of their activations are kept. A model with batch norm holds their batch
    /// statistics and adds them to the next `forward_t(_, true)`'s update of the running
    /// statistics, as if both had been one batch. The default is `forward_t(images, true)`,
    /// detached.
    fn forward_weak(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.forward_t(images, true)?.detach())
    }

    /// Every variable with its role, in a stable order: optimiser, EMA and checkpoints use it.
    fn variables(&self) -> Vec<NamedVar>;

    /// Architecture, channel and class counts, checked when a checkpoint is loaded.
    fn spec(&self) -> ModelSpec;

    /// The device the variables live on.
    fn device(&self) -> &Device;

    /// The settings that rebuild this model (architecture details, normalisation constants),
    /// stored in checkpoints so that they can be scored with nothing else; `Null` when the
    /// model is rebuilt by other means.
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restarts the random masks of training mode (dropout, drop-connect) from `seed`.
    /// FixMatch calls it before every step with a seed derived from the step, so that a run
    /// resumed from a checkpoint draws the masks an uninterrupted run draws; models without
    /// randomness keep the default, which does nothing.
    fn reseed(&self, seed: u64) {
        let _ = seed;
    }

    /// Pooled features `[N, D]` in eval mode, for diversity-based querying; `None` when the
    /// model has no meaningful embedding.
    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        let _ = images;
        Ok(None)
    }

    /// Logits in eval mode with the pooled features they come from (`None` where the model
    /// has no embedding), from one pass through the backbone where the model can: what a
    /// scorer that keeps embeddings asks for. The default runs the two apart.
    fn classify_and_embed(&self, images: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        Ok((self.forward_t(images, false)?, self.embed(images)?))
    }

    /// An independent copy with its own variables (the EMA model is one).
    fn duplicate(&self) -> Result<Self>
    where
        Self: Sized;

    /// Writes all variables to a safetensors file, atomically, with the spec as metadata.
    fn save(&self, path: &Path) -> Result<()> {
        save_variables(path, &self.spec(), &self.variables())
    }

    /// Loads variables saved by [`Classifier::save`]; a file for another spec, or with a
    /// missing or differently shaped tensor, is an error naming the file and the tensor.
    fn load(&self, path: &Path) -> Result<()> {
        load_variables(path, &self.spec(), &self.variables())
    }
}

/// Metadata key under which the model spec is stored in safetensors files.
pub const SPEC_METADATA_KEY: &str = "anomalymatch.model_spec";

/// Saves `vars` as safetensors (f32) with `spec` in the metadata, atomically.
pub fn save_variables(path: &Path, spec: &ModelSpec, vars: &[NamedVar]) -> Result<()> {
    let tensors = crate::checkpoint::named_tensors("", vars)?;
    crate::checkpoint::write_tensors(path, spec, tensors, HashMap::new())
}

/// Loads safetensors written by [`save_variables`] into `vars`, checking spec, names and shapes.
pub fn load_variables(path: &Path, spec: &ModelSpec, vars: &[NamedVar]) -> Result<()> {
    let file = crate::checkpoint::TensorFile::open(path, spec)?;
    file.load_into("", vars)
}
