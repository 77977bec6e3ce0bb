//! A reader for PyTorch `.pth` state dicts, including the legacy (pre-1.6, non-zip) layout
//! that the published EfficientNet-Lite weights use and that candle's own reader rejects.
//!
//! The legacy layout is a sequence of pickles followed by raw storages:
//! magic number, protocol version, system info, the state dict itself (each tensor a
//! `torch._utils._rebuild_tensor_v2` call whose storage is a persistent id
//! `('storage', StorageClass, key, location, numel, view)`), the list of storage keys, and then
//! for each key in that order the storage's element count as a little-endian `u64` followed by
//! its elements. Tensors may be views with any strides into their storage (PyTorch keeps the
//! memory format of e.g. channels-last weights), so each tensor is gathered element by element
//! from storage, offset, size and stride. Zip-format files (PyTorch >= 1.6) are handed to
//! candle's reader.

use crate::error::{Error, Result};
use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

/// The first pickle of every legacy file: protocol 2, the 10-byte long magic number
/// `0x1950a86a20f9469cfc6c`, stop. Compared as bytes because the number overflows the 64-bit
/// integers of candle's unpickler.
const LEGACY_MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// Reads every tensor of a `.pth` state dict, in file order, as `(name, tensor)` on the CPU.
///
/// Floating-point tensors come back as `f32` or `f64`, integer ones as `i64`; entries of the
/// dict that are not tensors (such as `_metadata`) are left out.
pub fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    if bytes.starts_with(b"PK\x03\x04") {
        return Ok(candle_core::pickle::read_all(path)?);
    }
    read_legacy(&bytes).map_err(|message| Error::weights(path, message))
}

/// One tensor of the state dict before its storage is read.
struct TensorRef {
    name: String,
    storage_key: String,
    dtype: DType,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// Parses the legacy layout; errors are messages, the caller adds the file name.
fn read_legacy(bytes: &[u8]) -> std::result::Result<Vec<(String, Tensor)>, String> {
    if !bytes.starts_with(&LEGACY_MAGIC_PICKLE) {
        return Err("not a PyTorch file (neither a zip nor the legacy magic number)".into());
    }
    let mut r = Cursor::new(bytes);
    r.set_position(LEGACY_MAGIC_PICKLE.len() as u64);
    let _protocol = read_pickle(&mut r, "protocol version")?;
    let _sys_info = read_pickle(&mut r, "system info")?;
    let state = read_pickle(&mut r, "state dict")?;
    let keys = match read_pickle(&mut r, "storage keys")? {
        Object::List(keys) | Object::Tuple(keys) => keys
            .into_iter()
            .map(|k| {
                k.unicode()
                    .map_err(|k| format!("storage key {k:?} is not a string"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        other => return Err(format!("storage key list is {other:?}")),
    };

    let entries = match state {
        Object::Dict(entries) => entries,
        other => return Err(format!("top-level object is not a state dict: {other:?}")),
    };
    let mut refs = Vec::new();
    for (name, value) in entries {
        let Ok(name) = name.unicode() else { continue };
        if let Some(t) = tensor_ref(name, value)? {
            refs.push(t);
        }
    }

    // Storages follow in the order of the key list, each as a u64 count and raw elements.
    let dtypes: HashMap<&str, DType> = refs
        .iter()
        .map(|t| (t.storage_key.as_str(), t.dtype))
        .collect();
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    for key in keys {
        let dtype = dtypes.get(key.as_str()).copied().unwrap_or(DType::F32);
        let mut count = [0u8; 8];
        r.read_exact(&mut count)
            .map_err(|_| format!("file ends before storage {key}"))?;
        let numel = usize::try_from(u64::from_le_bytes(count))
            .map_err(|_| format!("storage {key} is too large"))?;
        let nbytes = numel
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| format!("storage {key} is too large"))?;
        let start = r.position() as usize;
        let data = bytes
            .get(start..start + nbytes)
            .ok_or_else(|| format!("file ends inside storage {key}"))?;
        r.set_position((start + nbytes) as u64);
        let storage = Tensor::from_raw_buffer(data, dtype, &[numel], &Device::Cpu)
            .map_err(|e| format!("storage {key}: {e}"))?;
        storages.insert(key, storage);
    }

    refs.into_iter()
        .map(|t| {
            let storage = storages
                .get(&t.storage_key)
                .ok_or_else(|| format!("{}: storage {} is missing", t.name, t.storage_key))?;
            let tensor = gather(storage, t.offset, &t.size, &t.stride)
                .map_err(|e| format!("{}: {e}", t.name))?;
            Ok((t.name, tensor))
        })
        .collect()
}

/// Reads one pickle from the current position.
fn read_pickle(r: &mut Cursor<&[u8]>, what: &str) -> std::result::Result<Object, String> {
    let mut stack = Stack::empty();
    stack
        .read_loop(r)
        .map_err(|e| format!("cannot read the {what} pickle: {e}"))?;
    stack
        .finalize()
        .map_err(|e| format!("cannot read the {what} pickle: {e}"))
}

/// Recognises `_rebuild_tensor_v2(storage, offset, size, stride, ...)`; other values give `None`.
fn tensor_ref(name: String, value: Object) -> std::result::Result<Option<TensorRef>, String> {
    let Ok((callable, args)) = value.reduce() else {
        return Ok(None);
    };
    // Parameters saved as `nn.Parameter` wrap the tensor in `_rebuild_parameter(tensor, ...)`.
    let (callable, args) = match callable {
        Object::Class { class_name, .. } if class_name == "_rebuild_parameter" => {
            let inner = args
                .tuple()
                .ok()
                .and_then(|a| a.into_iter().next())
                .and_then(|t| t.reduce().ok());
            match inner {
                Some(pair) => pair,
                None => return Err(format!("{name}: malformed parameter")),
            }
        }
        other => (other, args),
    };
    match &callable {
        Object::Class { class_name, .. } if class_name == "_rebuild_tensor_v2" => {}
        _ => return Ok(None),
    }
    let bad = |what: &str| format!("{name}: malformed tensor ({what})");
    let mut args = args.tuple().map_err(|_| bad("arguments"))?.into_iter();
    let storage = args.next().ok_or_else(|| bad("storage"))?;
    let offset = args.next().ok_or_else(|| bad("offset"))?;
    let size = args.next().ok_or_else(|| bad("size"))?;
    let stride = args.next().ok_or_else(|| bad("stride"))?;

    let storage = storage.persistent_load().map_err(|_| bad("storage id"))?;
    let mut id = storage.tuple().map_err(|_| bad("storage id"))?.into_iter();
    let _tag = id.next();
    let dtype = match id.next().and_then(|c| c.class().ok()) {
        Some((_, class)) => match class.as_str() {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            other => return Err(format!("{name}: unsupported storage type {other}")),
        },
        None => return Err(bad("storage type")),
    };
    let storage_key = id
        .next()
        .and_then(|k| k.unicode().ok())
        .ok_or_else(|| bad("storage key"))?;
    let _location = id.next();
    let _numel = id.next();
    if let Some(view) = id.next()
        && view != Object::None
    {
        return Err(format!(
            "{name}: storage views of pre-1.0 PyTorch are not supported"
        ));
    }

    let to_usize = |o: Object| o.int_or_long().ok().and_then(|v| usize::try_from(v).ok());
    let dims = |o: Object, what: &str| -> std::result::Result<Vec<usize>, String> {
        o.tuple()
            .map_err(|_| bad(what))?
            .into_iter()
            .map(|d| to_usize(d).ok_or_else(|| bad(what)))
            .collect()
    };
    Ok(Some(TensorRef {
        offset: to_usize(offset).ok_or_else(|| bad("offset"))?,
        size: dims(size, "size")?,
        stride: dims(stride, "stride")?,
        name,
        storage_key,
        dtype,
    }))
}

/// Copies the strided view `(offset, size, stride)` of a flat storage into a contiguous tensor.
fn gather(
    storage: &Tensor,
    offset: usize,
    size: &[usize],
    stride: &[usize],
) -> std::result::Result<Tensor, String> {
    if size.len() != stride.len() {
        return Err(format!(
            "size {size:?} and stride {stride:?} differ in rank"
        ));
    }
    let numel: usize = size.iter().product();
    let available = storage.dim(0).map_err(|e| e.to_string())?;
    // The furthest element the view touches must lie inside the storage.
    let last = offset
        + size
            .iter()
            .zip(stride)
            .map(|(&n, &s)| n.saturating_sub(1) * s)
            .sum::<usize>();
    if numel > 0 && last >= available {
        return Err(format!(
            "view (offset {offset}, size {size:?}, stride {stride:?}) exceeds its storage of {available}"
        ));
    }
    let mut index = Vec::with_capacity(numel);
    let mut pos = vec![0usize; size.len()];
    for _ in 0..numel {
        let flat: usize = offset + pos.iter().zip(stride).map(|(&i, &s)| i * s).sum::<usize>();
        index.push(flat as u32);
        // Row-major increment of the multi-index.
        for d in (0..size.len()).rev() {
            pos[d] += 1;
            if pos[d] < size[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    let index = Tensor::from_vec(index, numel, &Device::Cpu).map_err(|e| e.to_string())?;
    storage
        .index_select(&index, 0)
        .and_then(|t| t.reshape(size))
        .map_err(|e| e.to_string())
}
