//! Pretrained weights: reading `.pth` and safetensors files into an [`EfficientNet`], with a
//! fresh classifier for another number of classes and an adapted stem for another number of
//! input channels.
//!
//! Stem adaptation rule: a pretrained stem kernel `W [O, c, k, k]` becomes, for `C` input
//! channels, `W' [O, C, k, k]` with every channel equal to the mean of `W` over its `c`
//! channels, scaled by `c / C`. A constant image then produces the same stem activations
//! whatever `C`, so the pretrained batch-norm statistics still fit; for `C = 1` and RGB weights
//! this is the sum of the colour kernels (a grey image seen as R = G = B).

use crate::efficientnet::{EfficientNet, EfficientNetConfig, Variant};
use crate::error::{Error, Result};
use crate::pth::read_pth;
use anomalymatch_core::checkpoint::{CheckpointInfo, load_ema};
use anomalymatch_core::{Check, Classifier};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Name of the stem convolution in state dicts.
const STEM: &str = "_conv_stem.weight";
/// Names of the classifier in state dicts.
const HEAD: [&str; 2] = ["_fc.weight", "_fc.bias"];

/// What [`load_pretrained`] did besides copying tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedReport {
    /// Number of model variables set from the file.
    pub loaded: usize,
    /// `Some((file_channels, model_channels))` when the stem kernel was adapted.
    pub stem_adapted: Option<(usize, usize)>,
    /// True when the file's classifier did not fit and the model keeps its fresh one.
    pub head_reset: bool,
}

/// Reads all tensors of a weight file: a PyTorch state dict (`.pth`, legacy or zip) or
/// safetensors, recognised by content rather than by extension.
pub fn read_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    let mut head = [0u8; 9];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        f.read(&mut head).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?
    };
    // safetensors starts with a little-endian header length and the header's opening brace.
    if n == 9 && head[8] == b'{' {
        return candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::weights_caused(path, "not a safetensors file", e));
    }
    Ok(read_pth(path)?.into_iter().collect())
}

/// Loads pretrained weights into `model`, matching tensors by name.
///
/// Every model variable must be in the file with its shape, except the stem (adapted when the
/// channel counts differ, see the module notes) and the classifier (kept freshly initialised
/// when its shape differs). Tensors of the file the model lacks are an error, except
/// `num_batches_tracked`, so a file for another variant is refused rather than half-loaded.
/// Nothing is changed unless the whole file fits.
pub fn load_pretrained(model: &EfficientNet, path: &Path) -> Result<PretrainedReport> {
    let mut tensors = read_weights(path)?;
    tensors.retain(|name, _| !name.ends_with("num_batches_tracked"));
    let mut report = PretrainedReport {
        loaded: 0,
        stem_adapted: None,
        head_reset: false,
    };
    let mut updates = Vec::new();
    for v in model.variables() {
        let Some(t) = tensors.remove(&v.name) else {
            return Err(Error::weights(
                path,
                format!(
                    "tensor {} is missing: the file is not for {}",
                    v.name,
                    model.spec().architecture
                ),
            ));
        };
        let want = v.var.dims();
        let t = if t.dims() == want {
            t
        } else if v.name == STEM
            && t.rank() == 4
            && t.dims()[0] == want[0]
            && t.dims()[2..] == want[2..]
        {
            report.stem_adapted = Some((t.dim(1)?, want[1]));
            adapt_stem(&t, want[1])?
        } else if HEAD.contains(&v.name.as_str()) {
            report.head_reset = true;
            continue;
        } else {
            return Err(Error::weights(
                path,
                format!(
                    "tensor {} has shape {:?}, {} expects {:?}",
                    v.name,
                    t.dims(),
                    model.spec().architecture,
                    want
                ),
            ));
        };
        updates.push((v.var, t));
    }
    if !tensors.is_empty() {
        let mut extra: Vec<&String> = tensors.keys().collect();
        extra.sort();
        return Err(Error::weights(
            path,
            format!(
                "{} tensor(s) that {} does not have, e.g. {}: the file is for another variant",
                extra.len(),
                model.spec().architecture,
                extra[0]
            ),
        ));
    }
    for (var, t) in updates {
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        report.loaded += 1;
    }
    Ok(report)
}

/// Converts a weight file (`.pth` or safetensors) into an f32 safetensors file with the same
/// tensor names, written atomically; `num_batches_tracked` counters are dropped because no
/// model here uses them. Returns the number of tensors written.
pub fn convert_to_safetensors(input: &Path, output: &Path) -> Result<usize> {
    let mut tensors: Vec<(String, Tensor)> = read_weights(input)?
        .into_iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, t)| Ok((name, t.to_dtype(candle_core::DType::F32)?)))
        .collect::<Result<_>>()?;
    // Sorted names make the file reproducible byte for byte.
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let source = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let metadata = HashMap::from([("source".to_string(), source)]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| Error::weights_caused(output, "safetensors", e))?;
    anomalymatch_core::atomic::write_bytes_atomic(output, &bytes)?;
    Ok(tensors.len())
}

/// Adapts a stem kernel `[O, c, k, k]` to `channels` inputs: the mean over its `c` channels,
/// repeated `channels` times and scaled by `c / channels` (see the module notes).
pub fn adapt_stem(kernel: &Tensor, channels: usize) -> Result<Tensor> {
    let (o, c, kh, kw) = kernel.dims4()?;
    if channels == 0 {
        return Err(Error::Config(vec![
            "stem must have at least one input channel".into(),
        ]));
    }
    let mean = kernel.mean_keepdim(1)?;
    let scaled = (mean * (c as f64 / channels as f64))?;
    Ok(scaled.broadcast_as((o, channels, kh, kw))?.contiguous()?)
}

/// Where shipped weights are looked for before the workspace's `weights/` folder: the Python
/// package points it at the copy inside it.
pub const WEIGHTS_DIR_VAR: &str = "ANOMALYMATCH_WEIGHTS_DIR";

/// The ImageNet weights this repository ships for `variant`, if any: EfficientNet-Lite0,
/// converted from the Apache-2.0 PyTorch release (`efficientnet-lite0.safetensors` in the
/// folder [`WEIGHTS_DIR_VAR`] names, else in `weights/` at the workspace root).
pub fn shipped_weights(variant: Variant) -> Option<PathBuf> {
    (variant == Variant::Lite0).then(|| {
        let dir = std::env::var_os(WEIGHTS_DIR_VAR).map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../weights")),
            PathBuf::from,
        );
        dir.join("efficientnet-lite0.safetensors")
    })
}

/// Rebuilds the network a training checkpoint describes, with its EMA weights (the ones that
/// score), on `device`; needs nothing but the file.
pub fn from_checkpoint(path: &Path, device: &Device) -> Result<(EfficientNet, CheckpointInfo)> {
    let info = CheckpointInfo::read(path)?;
    let config: EfficientNetConfig = serde_json::from_value(info.settings.clone())
        .map_err(|e| Error::weights_caused(path, "not an EfficientNet checkpoint", e))?;
    let model = config.check()?.build(device)?;
    load_ema(path, &model)?;
    Ok((model, info))
}
