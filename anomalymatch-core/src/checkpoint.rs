//! Training checkpoints: the train model, the EMA model, the optimiser state, the step count
//! and the configuration in one safetensors file, written atomically.
//!
//! One file rather than several so that a crash can never leave a model from one step beside
//! an optimiser from another.

use crate::classifier::{Classifier, ModelSpec, NamedVar, SPEC_METADATA_KEY};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

const ITERATION_KEY: &str = "anomalymatch.iteration";
const CONFIG_KEY: &str = "anomalymatch.config";

/// What a checkpoint holds besides the two models' variables.
#[derive(Debug, Clone)]
pub struct CheckpointState {
    /// Training steps taken.
    pub iteration: usize,
    /// Optimiser tensors (momentum buffers) by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// The configuration the run used, as JSON text (for the record and for resuming).
    pub config_json: String,
}

/// Writes `model`, `ema` and `state` to `path` atomically.
pub fn save_checkpoint<C: Classifier>(
    path: &Path,
    model: &C,
    ema: &C,
    state: &CheckpointState,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (prefix, vars) in [("model.", model.variables()), ("ema.", ema.variables())] {
        for v in vars {
            tensors.push((format!("{prefix}{}", v.name), cpu_f32(v.var.as_tensor())?));
        }
    }
    for (name, t) in &state.optimizer {
        tensors.push((format!("optim.{name}"), cpu_f32(t)?));
    }
    let bad = |message: String| Error::Checkpoint {
        path: path.into(),
        message,
    };
    let spec = serde_json::to_string(&model.spec()).map_err(|e| bad(e.to_string()))?;
    let metadata = HashMap::from([
        (SPEC_METADATA_KEY.to_string(), spec),
        (ITERATION_KEY.to_string(), state.iteration.to_string()),
        (CONFIG_KEY.to_string(), state.config_json.clone()),
    ]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| bad(e.to_string()))?;
    crate::atomic::write_bytes_atomic(path, &bytes)
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and `ema`, returning the rest.
///
/// A checkpoint of another architecture, channel or class count is an error naming the file.
pub fn load_checkpoint<C: Classifier>(path: &Path, model: &C, ema: &C) -> Result<CheckpointState> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |message: String| Error::Checkpoint {
        path: path.into(),
        message,
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or_else(|| bad("not an anomalymatch checkpoint (no metadata)".into()))?;
    let get = |key: &str| {
        meta.get(key)
            .cloned()
            .ok_or_else(|| bad(format!("metadata {key} is missing")))
    };
    let saved: ModelSpec =
        serde_json::from_str(&get(SPEC_METADATA_KEY)?).map_err(|e| bad(e.to_string()))?;
    let spec = model.spec();
    if saved != spec {
        return Err(bad(format!(
            "checkpoint is for {} ({} channels, {} classes), model is {} ({} channels, {} classes)",
            saved.architecture,
            saved.in_channels,
            saved.num_classes,
            spec.architecture,
            spec.in_channels,
            spec.num_classes
        )));
    }
    let iteration: usize = get(ITERATION_KEY)?
        .parse()
        .map_err(|_| bad("iteration is not a number".into()))?;
    let config_json = get(CONFIG_KEY)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let tensor = |name: &str| -> Result<Tensor> {
        let view = st
            .tensor(name)
            .map_err(|_| bad(format!("tensor {name} is missing")))?;
        Ok(candle_core::safetensors::Load::load(&view, &Device::Cpu)?)
    };
    for (prefix, vars) in [("model.", model.variables()), ("ema.", ema.variables())] {
        for v in &vars {
            assign(v, &tensor(&format!("{prefix}{}", v.name))?, path)?;
        }
    }
    let mut optimizer = Vec::new();
    for name in st.names() {
        if let Some(key) = name.strip_prefix("optim.") {
            optimizer.push((key.to_string(), tensor(name)?));
        }
    }
    optimizer.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(CheckpointState {
        iteration,
        optimizer,
        config_json,
    })
}

fn assign(v: &NamedVar, t: &Tensor, path: &Path) -> Result<()> {
    if t.dims() != v.var.dims() {
        return Err(Error::Checkpoint {
            path: path.into(),
            message: format!(
                "tensor {} has shape {:?}, model expects {:?}",
                v.name,
                t.dims(),
                v.var.dims()
            ),
        });
    }
    v.var
        .set(&t.to_dtype(v.var.dtype())?.to_device(v.var.device())?)?;
    Ok(())
}

fn cpu_f32(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)
}
