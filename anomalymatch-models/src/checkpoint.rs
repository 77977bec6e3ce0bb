//! Training checkpoints: everything needed to resume FixMatch training in one safetensors file,
//! written atomically.
//!
//! Tensors are stored as `model/<name>`, `ema/<name>` and `optimizer/<name>`; the safetensors
//! metadata holds the model spec, the iteration, a format version and a free JSON blob (the
//! run's configuration, RNG seeds, ...). The file is checked completely before any variable is
//! changed, so a checkpoint for another architecture, channel count or class count is an error
//! that names the file, and leaves both models untouched.

use crate::error::{Error, Result};
use anomalymatch_core::classifier::SPEC_METADATA_KEY;
use anomalymatch_core::{Classifier, ModelSpec, NamedVar};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key of the checkpoint format version.
const VERSION_KEY: &str = "anomalymatch.checkpoint_version";
/// Metadata key of the iteration number.
const ITERATION_KEY: &str = "anomalymatch.iteration";
/// Metadata key of the caller's JSON blob.
const METADATA_KEY: &str = "anomalymatch.metadata";
/// The format written by this version.
const VERSION: &str = "1";

/// The training state besides the two networks' variables.
#[derive(Debug, Clone)]
pub struct TrainingState {
    /// Optimiser steps done so far.
    pub iteration: u64,
    /// Optimiser state as named tensors (moment estimates, momentum buffers, ...); loading
    /// returns them sorted by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// Free-form JSON: configuration, seeds, anything the trainer needs to resume.
    pub metadata: serde_json::Value,
}

/// Saves the training model, its EMA copy and `state` to `path`, atomically.
pub fn save_checkpoint<M: Classifier + ?Sized>(
    path: &Path,
    model: &M,
    ema: &M,
    state: &TrainingState,
) -> Result<()> {
    let spec = model.spec();
    if ema.spec() != spec {
        return Err(Error::weights(
            path,
            format!(
                "EMA model {:?} differs from the model {:?}",
                ema.spec(),
                spec
            ),
        ));
    }
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (prefix, vars) in [("model", model.variables()), ("ema", ema.variables())] {
        for v in vars {
            let t = v.var.as_tensor().to_device(&Device::Cpu)?;
            tensors.push((format!("{prefix}/{}", v.name), t));
        }
    }
    for (name, t) in &state.optimizer {
        tensors.push((format!("optimizer/{name}"), t.to_device(&Device::Cpu)?));
    }
    let metadata = HashMap::from([
        (SPEC_METADATA_KEY.to_string(), to_json(path, &spec)?),
        (VERSION_KEY.to_string(), VERSION.to_string()),
        (ITERATION_KEY.to_string(), state.iteration.to_string()),
        (METADATA_KEY.to_string(), to_json(path, &state.metadata)?),
    ]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| Error::weights(path, e.to_string()))?;
    anomalymatch_core::atomic::write_bytes_atomic(path, &bytes)?;
    Ok(())
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and `ema` and returns the
/// rest of the state, with optimiser tensors on the model's device.
pub fn load_checkpoint<M: Classifier + ?Sized>(
    path: &Path,
    model: &M,
    ema: &M,
) -> Result<TrainingState> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let bad = |message: String| Error::weights(path, message);
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |key: &str| {
        meta.get(key).ok_or_else(|| {
            bad(format!(
                "not an anomalymatch checkpoint (no {key} metadata)"
            ))
        })
    };
    let version = get(VERSION_KEY)?;
    if version != VERSION {
        return Err(bad(format!(
            "checkpoint format {version} is not supported (expected {VERSION})"
        )));
    }
    let saved: ModelSpec =
        serde_json::from_str(get(SPEC_METADATA_KEY)?).map_err(|e| bad(e.to_string()))?;
    for m in [model.spec(), ema.spec()] {
        if saved != m {
            return Err(bad(format!(
                "checkpoint is for {} ({} channels, {} classes), model is {} ({} channels, {} classes)",
                saved.architecture,
                saved.in_channels,
                saved.num_classes,
                m.architecture,
                m.in_channels,
                m.num_classes
            )));
        }
    }
    let iteration = get(ITERATION_KEY)?
        .parse::<u64>()
        .map_err(|e| bad(format!("bad iteration: {e}")))?;
    let metadata: serde_json::Value =
        serde_json::from_str(get(METADATA_KEY)?).map_err(|e| bad(e.to_string()))?;

    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let load = |name: &str| -> Result<Tensor> {
        let view = st
            .tensor(name)
            .map_err(|_| bad(format!("tensor {name} is missing")))?;
        Ok(candle_core::safetensors::Load::load(&view, &Device::Cpu)?)
    };
    // Read and check everything before touching either model.
    let mut updates = Vec::new();
    for (prefix, vars) in [("model", model.variables()), ("ema", ema.variables())] {
        for NamedVar { name, var, .. } in vars {
            let t = load(&format!("{prefix}/{name}"))?;
            if t.dims() != var.dims() {
                return Err(bad(format!(
                    "tensor {prefix}/{name} has shape {:?}, model expects {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            updates.push((var, t));
        }
    }
    let mut optimizer = Vec::new();
    for name in st.names() {
        if let Some(short) = name.strip_prefix("optimizer/") {
            optimizer.push((short.to_string(), load(name)?.to_device(model.device())?));
        }
    }
    optimizer.sort_by(|a, b| a.0.cmp(&b.0));
    for (var, t) in updates {
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(TrainingState {
        iteration,
        optimizer,
        metadata,
    })
}

fn to_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::weights(path, e.to_string()))
}
