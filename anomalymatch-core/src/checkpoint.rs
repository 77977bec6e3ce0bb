//! Model files and training checkpoints in safetensors, written atomically.
//!
//! A checkpoint holds the train model, the EMA model, the optimiser state, the step count and
//! the training configuration in one file, so that a crash can never leave a model from one
//! step beside an optimiser from another. It also says everything needed to score with it and
//! nothing else ([`CheckpointInfo`]): the model's [`ModelSpec`] and settings, and the pixels it
//! was trained on ([`DataSpec`]: size, channels). Loading it into a model of another
//! architecture, channel or class count is an error naming the file.

use crate::classifier::{Classifier, ModelSpec, NamedVar, SPEC_METADATA_KEY};
use crate::error::{Cause, Error, Result};
use crate::loader::DataSpec;
use crate::train_config::TrainConfig;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const ITERATION_KEY: &str = "anomalymatch.iteration";
const TRAIN_KEY: &str = "anomalymatch.train";
const DATA_KEY: &str = "anomalymatch.data";
const SETTINGS_KEY: &str = "anomalymatch.model_settings";

/// What a checkpoint holds besides the two models' variables.
#[derive(Debug, Clone)]
pub struct CheckpointState {
    /// Training steps taken.
    pub iteration: usize,
    /// Optimiser tensors (momentum buffers) by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// The training settings of the run.
    pub train: TrainConfig,
    /// The pixels the model was trained on.
    pub data: DataSpec,
}

/// What a checkpoint says about itself, read from its header alone: enough to rebuild the
/// model and decode images as training did.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// Architecture, input channels and classes.
    pub spec: ModelSpec,
    /// The backbone's own settings ([`Classifier::settings`]), to rebuild it.
    pub settings: serde_json::Value,
    /// The pixels the model was trained on.
    pub data: DataSpec,
    /// The training settings of the run.
    pub train: TrainConfig,
    /// Training steps taken.
    pub iteration: usize,
}

impl CheckpointInfo {
    /// Reads the header of the checkpoint at `path` (not its tensors).
    pub fn read(path: &Path) -> Result<CheckpointInfo> {
        let metadata = read_header(path)?;
        let field = |key: &str| -> Result<serde_json::Value> {
            let text = metadata.get(key).ok_or_else(|| {
                let message = format!("metadata {key} is missing: not a training checkpoint");
                Error::checkpoint(path, message, None)
            })?;
            serde_json::from_str(text)
                .map_err(|e| Error::checkpoint(path, format!("metadata {key}"), Some(e.into())))
        };
        let info = CheckpointInfo {
            spec: from_value(path, SPEC_METADATA_KEY, field(SPEC_METADATA_KEY)?)?,
            settings: field(SETTINGS_KEY)?,
            data: from_value(path, DATA_KEY, field(DATA_KEY)?)?,
            train: from_value(path, TRAIN_KEY, field(TRAIN_KEY)?)?,
            iteration: from_value(path, ITERATION_KEY, field(ITERATION_KEY)?)?,
        };
        same_channels(path, &info.spec, &info.data)?;
        Ok(info)
    }
}

/// The channel count is written twice, in the model's spec and in the pixels' spec (the
/// backbone's settings are tied to the spec when its tensors load); they must agree.
fn same_channels(path: &Path, spec: &ModelSpec, data: &DataSpec) -> Result<()> {
    if spec.in_channels == data.channels.channels() {
        return Ok(());
    }
    let message = format!(
        "the model takes {} channels but the data give {} ({})",
        spec.in_channels,
        data.channels.channels(),
        data.channels
    );
    Err(Error::checkpoint(path, message, None))
}

/// Parses one metadata field, naming the file and the key on failure.
fn from_value<T: serde::de::DeserializeOwned>(
    path: &Path,
    key: &str,
    value: serde_json::Value,
) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::checkpoint(path, format!("metadata {key}"), Some(e.into())))
}

/// The metadata of a safetensors file, reading only its header.
fn read_header(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let bad = |message: String| Error::checkpoint(path, message, None);
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("too short for a safetensors file".into()))?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > file_len.saturating_sub(8) || len > 100 << 20 {
        return Err(bad(format!("header of {len} bytes does not fit the file")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let parsed: Header = serde_json::from_slice(&header)
        .map_err(|e| Error::checkpoint(path, "not a safetensors header", Some(e.into())))?;
    Ok(parsed.metadata)
}

/// Writes `model`, `ema` and `state` to `path` atomically.
pub fn save_checkpoint<C: Classifier>(
    path: &Path,
    model: &C,
    ema: &C,
    state: &CheckpointState,
) -> Result<()> {
    same_channels(path, &model.spec(), &state.data)?;
    let mut tensors = named_tensors("model.", &model.variables())?;
    tensors.extend(named_tensors("ema.", &ema.variables())?);
    for (name, t) in &state.optimizer {
        tensors.push((format!("optim.{name}"), cpu_f32(t)?));
    }
    let json = |v: serde_json::Result<String>| {
        v.map_err(|e| Error::checkpoint(path, "metadata", Some(e.into())))
    };
    let metadata = HashMap::from([
        (ITERATION_KEY.to_string(), state.iteration.to_string()),
        (
            TRAIN_KEY.to_string(),
            json(serde_json::to_string(&state.train))?,
        ),
        (
            DATA_KEY.to_string(),
            json(serde_json::to_string(&state.data))?,
        ),
        (
            SETTINGS_KEY.to_string(),
            json(serde_json::to_string(&model.settings()))?,
        ),
    ]);
    write_tensors(path, &model.spec(), tensors, metadata)
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and `ema`, returning the rest.
pub fn load_checkpoint<C: Classifier>(path: &Path, model: &C, ema: &C) -> Result<CheckpointState> {
    let info = CheckpointInfo::read(path)?;
    let file = TensorFile::open(path, &model.spec())?;
    file.load_into("model.", &model.variables())?;
    file.load_into("ema.", &ema.variables())?;
    let optimizer = file.prefixed("optim.")?;
    Ok(CheckpointState {
        iteration: info.iteration,
        optimizer,
        train: info.train,
        data: info.data,
    })
}

/// Loads only the EMA model of a checkpoint (the one that scores) into `model`.
pub fn load_ema<C: Classifier>(path: &Path, model: &C) -> Result<()> {
    TensorFile::open(path, &model.spec())?.load_into("ema.", &model.variables())
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
    let bad = |what: &str, e: Cause| Error::checkpoint(path, what, Some(e));
    let spec = serde_json::to_string(spec).map_err(|e| bad(SPEC_METADATA_KEY, e.into()))?;
    metadata.insert(SPEC_METADATA_KEY.to_string(), spec);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| bad("safetensors", e.into()))?;
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
            .map_err(|e| file.caused("not a safetensors file", e.into()))?;
        file.metadata = header.metadata().clone().unwrap_or_default();
        if let Some(saved) = file.metadata.get(SPEC_METADATA_KEY) {
            let saved: ModelSpec = serde_json::from_str(saved)
                .map_err(|e| file.caused(&format!("metadata {SPEC_METADATA_KEY}"), e.into()))?;
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
        Error::checkpoint(&self.path, message, None)
    }

    fn caused(&self, message: &str, cause: Cause) -> Error {
        Error::checkpoint(&self.path, message, Some(cause))
    }

    fn tensors(&self) -> Result<safetensors::SafeTensors<'_>> {
        safetensors::SafeTensors::deserialize(&self.bytes)
            .map_err(|e| self.caused("not a safetensors file", e.into()))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::toy::MaxMeanClassifier;
    use crate::{ChannelMode, Crop, Stretch};

    fn state(channels: ChannelMode) -> CheckpointState {
        CheckpointState {
            iteration: 3,
            optimizer: Vec::new(),
            train: TrainConfig::default(),
            data: DataSpec {
                size: 8,
                channels,
                stretch: Stretch::default(),
                crop: Crop::WHOLE,
            },
        }
    }

    #[test]
    fn the_two_channel_counts_must_agree_to_write_or_read_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (model, ema) = (
            MaxMeanClassifier::new().unwrap(),
            MaxMeanClassifier::new().unwrap(),
        );
        let good = dir.path().join("good.ckpt");
        save_checkpoint(&good, &model, &ema, &state(ChannelMode::Keep(1))).unwrap();
        assert_eq!(
            CheckpointInfo::read(&good).unwrap().data.channels,
            ChannelMode::Keep(1)
        );

        // The toy model takes one channel; RGB data contradict it, and nothing is written.
        let bad = dir.path().join("bad.ckpt");
        let e = save_checkpoint(&bad, &model, &ema, &state(ChannelMode::Rgb)).unwrap_err();
        assert!(
            e.to_string()
                .contains("takes 1 channels but the data give 3"),
            "{e}"
        );
        assert!(!bad.exists());

        // A file whose metadata contradict each other (edited by hand) is refused on reading.
        let mut metadata = read_header(&good).unwrap();
        let rgb = serde_json::to_string(&state(ChannelMode::Rgb).data).unwrap();
        metadata.insert(DATA_KEY.into(), rgb);
        metadata.remove(SPEC_METADATA_KEY);
        let tensors = named_tensors("ema.", &ema.variables()).unwrap();
        write_tensors(&bad, &model.spec(), tensors, metadata).unwrap();
        let e = CheckpointInfo::read(&bad).unwrap_err();
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
        assert!(e.to_string().contains("the data give 3"), "{e}");
    }

    #[test]
    fn a_malformed_metadata_field_names_its_key_and_keeps_the_parser_error() {
        let dir = tempfile::tempdir().unwrap();
        let model = MaxMeanClassifier::new().unwrap();
        let path = dir.path().join("bad.ckpt");
        let metadata = HashMap::from([
            (ITERATION_KEY.to_string(), "many".to_string()),
            (TRAIN_KEY.to_string(), "{}".to_string()),
            (DATA_KEY.to_string(), "{}".to_string()),
            (SETTINGS_KEY.to_string(), "{}".to_string()),
        ]);
        let tensors = named_tensors("ema.", &model.variables()).unwrap();
        write_tensors(&path, &model.spec(), tensors, metadata).unwrap();
        let e = CheckpointInfo::read(&path).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(
            text.contains("metadata anomalymatch.data: missing field"),
            "{text}"
        );
        let cause = std::error::Error::source(&e);
        assert!(
            cause.is_some_and(|c| c.is::<serde_json::Error>()),
            "{cause:?}"
        );
    }
}
