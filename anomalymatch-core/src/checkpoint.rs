//! Model files and training checkpoints in safetensors, written atomically.
//!
//! A checkpoint holds the train model, the EMA model, the optimiser state, the step count and
//! the configuration in one file, so that a crash can never leave a model from one step beside
//! an optimiser from another. Every file carries the model's [`ModelSpec`]; loading it into a
//! model of another architecture, channel or class count is an error naming the file.

use crate::classifier::{Classifier, ModelSpec, NamedVar, SPEC_METADATA_KEY};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    let mut tensors = named_tensors("model.", &model.variables())?;
    tensors.extend(named_tensors("ema.", &ema.variables())?);
    for (name, t) in &state.optimizer {
        tensors.push((format!("optim.{name}"), cpu_f32(t)?));
    }
    let metadata = HashMap::from([
        (ITERATION_KEY.to_string(), state.iteration.to_string()),
        (CONFIG_KEY.to_string(), state.config_json.clone()),
    ]);
    write_tensors(path, &model.spec(), tensors, metadata)
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and `ema`, returning the rest.
pub fn load_checkpoint<C: Classifier>(path: &Path, model: &C, ema: &C) -> Result<CheckpointState> {
    let file = TensorFile::open(path, &model.spec())?;
    let iteration: usize = file
        .metadata(ITERATION_KEY)?
        .parse()
        .map_err(|_| file.error("iteration is not a number".into()))?;
    let config_json = file.metadata(CONFIG_KEY)?;
    file.load_into("model.", &model.variables())?;
    file.load_into("ema.", &ema.variables())?;
    let optimizer = file.prefixed("optim.")?;
    Ok(CheckpointState {
        iteration,
        optimizer,
        config_json,
    })
}

/// The variables as CPU f32 tensors named `prefix + name`.
pub(crate) fn named_tensors(prefix: &str, vars: &[NamedVar]) -> Result<Vec<(String, Tensor)>> {
    vars.iter()
        .map(|v| Ok((format!("{prefix}{}", v.name), cpu_f32(v.var.as_tensor())?)))
        .collect()
}

/// Writes `tensors` with `spec` and `metadata` as one safetensors file, atomically.
pub(crate) fn write_tensors(
    path: &Path,
    spec: &ModelSpec,
    tensors: Vec<(String, Tensor)>,
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let bad = |message: String| Error::Checkpoint {
        path: path.into(),
        message,
    };
    let spec = serde_json::to_string(spec).map_err(|e| bad(e.to_string()))?;
    metadata.insert(SPEC_METADATA_KEY.to_string(), spec);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| bad(e.to_string()))?;
    crate::atomic::write_bytes_atomic(path, &bytes)
}

/// A safetensors file read whole, whose spec has been checked against a model's.
pub(crate) struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads `path` and checks that it was saved for `spec` (files without a spec are accepted,
    /// so that plain safetensors weights load too).
    pub(crate) fn open(path: &Path, spec: &ModelSpec) -> Result<TensorFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut file = TensorFile {
            path: path.into(),
            bytes,
            metadata: HashMap::new(),
        };
        let (_, header) = safetensors::SafeTensors::read_metadata(&file.bytes)
            .map_err(|e| file.error(e.to_string()))?;
        file.metadata = header.metadata().clone().unwrap_or_default();
        if let Some(saved) = file.metadata.get(SPEC_METADATA_KEY) {
            let saved: ModelSpec =
                serde_json::from_str(saved).map_err(|e| file.error(e.to_string()))?;
            if &saved != spec {
                return Err(file.error(format!(
                    "saved for {} ({} channels, {} classes), model is {} ({} channels, {} classes)",
                    saved.architecture,
                    saved.in_channels,
                    saved.num_classes,
                    spec.architecture,
                    spec.in_channels,
                    spec.num_classes
                )));
            }
        }
        Ok(file)
    }

    fn error(&self, message: String) -> Error {
        Error::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }

    fn metadata(&self, key: &str) -> Result<String> {
        self.metadata
            .get(key)
            .cloned()
            .ok_or_else(|| self.error(format!("metadata {key} is missing")))
    }

    fn tensors(&self) -> Result<safetensors::SafeTensors<'_>> {
        safetensors::SafeTensors::deserialize(&self.bytes).map_err(|e| self.error(e.to_string()))
    }

    /// Sets every variable from the tensor named `prefix + name`; all names and shapes are
    /// checked before any variable changes, so a bad file leaves the model as it was.
    pub(crate) fn load_into(&self, prefix: &str, vars: &[NamedVar]) -> Result<()> {
        let st = self.tensors()?;
        let mut loaded = Vec::with_capacity(vars.len());
        for v in vars {
            let name = format!("{prefix}{}", v.name);
            let view = st
                .tensor(&name)
                .map_err(|_| self.error(format!("tensor {name} is missing")))?;
            let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)?;
            if t.dims() != v.var.dims() {
                return Err(self.error(format!(
                    "tensor {name} has shape {:?}, model expects {:?}",
                    t.dims(),
                    v.var.dims()
                )));
            }
            loaded.push(t);
        }
        for (v, t) in vars.iter().zip(loaded) {
            v.var
                .set(&t.to_dtype(v.var.dtype())?.to_device(v.var.device())?)?;
        }
        Ok(())
    }

    /// Every tensor whose name starts with `prefix`, with the prefix removed, sorted by name.
    fn prefixed(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let st = self.tensors()?;
        let mut out = Vec::new();
        for (name, view) in st.tensors() {
            if let Some(key) = name.strip_prefix(prefix) {
                let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)?;
                out.push((key.to_string(), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn cpu_f32(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)
}
