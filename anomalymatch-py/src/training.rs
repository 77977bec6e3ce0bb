//! `anomalymatch.train`: a model trained on numpy arrays with the configuration's keys.

use crate::arrays::ImageArray;
use crate::errors::py_err;
use crate::model::Model;
use crate::watch::Watch;
use anomalymatch_core::{ImageStore, Label, Loaded};
use anomalymatch_jobs::components;
use anomalymatch_jobs::scoring_model::ScoringModel;
use anomalymatch_jobs::train::train_in_memory;
use anomalymatch_jobs::{Override, Settings};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::path::PathBuf;

/// Trains a model on `images` with `labels` (`"anomaly"`/`"normal"`, or True/1 for an
/// anomaly), and `unlabelled` images for FixMatch; `config` is a dict of the TOML
/// configuration's keys (nested or dotted, `preset` included) or a path to a TOML file.
#[pyfunction]
#[pyo3(signature = (images, labels, unlabelled = None, config = None, layout = "auto", progress = true))]
pub fn train(
    py: Python<'_>,
    images: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    unlabelled: Option<&Bound<'_, PyAny>>,
    config: Option<&Bound<'_, PyAny>>,
    layout: &str,
    progress: bool,
) -> PyResult<Model> {
    let settings = settings_with(config, Vec::new())?;
    let labels = read_labels(labels)?;
    let labelled = decode(py, &settings, images, layout, "images")?;
    if labelled.images.len() != labels.len() {
        return Err(PyValueError::new_err(format!(
            "{} images but {} labels",
            labelled.images.len(),
            labels.len()
        )));
    }
    let unlabelled = match unlabelled {
        Some(u) => decode(py, &settings, u, layout, "unlabelled")?.images,
        None => {
            let b = &labelled.images;
            ImageStore::empty(b.channels(), b.height(), b.width())
        }
    };
    let mut watch = Watch::new(py, settings.train.iterations, "training", progress)?;
    let trained = py.detach(|| {
        let trainer = train_in_memory(
            &settings,
            &labelled.images,
            &labels,
            &unlabelled,
            &mut |m| watch.tick(m.iteration),
        )?;
        ScoringModel::from_trainer(&trainer, &settings.data)
    });
    watch.finish(py)?;
    Ok(Model::trained(trained.map_err(py_err)?))
}

/// The configuration: the defaults, a TOML file, or a dict of keys laid over the defaults;
/// then `extra` (the arguments that name keys).
pub fn settings_with(
    config: Option<&Bound<'_, PyAny>>,
    mut extra: Vec<Override>,
) -> PyResult<Settings> {
    let mut overrides = Vec::new();
    let mut file = None;
    match config {
        None => {}
        Some(c) => match c.cast::<PyDict>() {
            Ok(dict) => flatten(dict, "", &mut overrides)?,
            Err(_) => {
                let path: PathBuf = c.extract().map_err(|_| {
                    PyValueError::new_err(
                        "config must be None, a dict of configuration keys or a path",
                    )
                })?;
                file = Some(path);
            }
        },
    }
    overrides.append(&mut extra);
    anomalymatch_jobs::load(file.as_deref(), &overrides).map_err(py_err)
}

/// `{"train": {"lr": 0.01}}` and `{"train.lr": 0.01}` as the override `train.lr = 0.01`.
fn flatten(dict: &Bound<'_, PyDict>, prefix: &str, out: &mut Vec<Override>) -> PyResult<()> {
    for (key, value) in dict.iter() {
        let key: String = key
            .extract()
            .map_err(|_| PyValueError::new_err("config keys must be strings"))?;
        let key = format!("{prefix}{key}");
        match value.cast::<PyDict>() {
            Ok(inner) => flatten(inner, &format!("{key}."), out)?,
            Err(_) => {
                let origin = format!("config[{key:?}]");
                out.push(Override::new(&key, toml_value(&value, &key)?, &origin));
            }
        }
    }
    Ok(())
}

/// A Python value as TOML.
fn toml_value(v: &Bound<'_, PyAny>, key: &str) -> PyResult<toml::Value> {
    Ok(if v.is_instance_of::<PyBool>() {
        toml::Value::Boolean(v.extract()?)
    } else if v.is_instance_of::<PyInt>() {
        toml::Value::Integer(v.extract()?)
    } else if v.is_instance_of::<PyFloat>() {
        toml::Value::Float(v.extract()?)
    } else if v.is_instance_of::<PyString>() {
        toml::Value::String(v.extract()?)
    } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = v.extract()?;
        toml::Value::Array(
            items
                .iter()
                .map(|i| toml_value(i, key))
                .collect::<PyResult<_>>()?,
        )
    } else if let Ok(dict) = v.cast::<PyDict>() {
        let mut table = toml::Table::new();
        for (k, item) in dict.iter() {
            table.insert(k.extract()?, toml_value(&item, key)?);
        }
        toml::Value::Table(table)
    } else {
        return Err(PyValueError::new_err(format!(
            "config[{key:?}]: a {} is not a configuration value",
            v.get_type().name()?
        )));
    })
}

/// Labels from strings (`"anomaly"`, `"normal"`) or truth values (anomaly when true).
fn read_labels(labels: &Bound<'_, PyAny>) -> PyResult<Vec<Label>> {
    let items: Vec<Bound<'_, PyAny>> = labels.try_iter()?.collect::<PyResult<_>>()?;
    items
        .iter()
        .enumerate()
        .map(|(i, l)| label_of(l, &format!("labels[{i}]")))
        .collect()
}

/// One label: `"anomaly"` or `"normal"`, or a truth value (anomaly when true); `place` names
/// it in the error.
pub fn label_of(value: &Bound<'_, PyAny>, place: &str) -> PyResult<Label> {
    if let Ok(text) = value.extract::<String>() {
        let label: Label = text
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{place}: {e}")))?;
        return match label {
            Label::Unknown => Err(PyValueError::new_err(format!(
                "{place}: {text:?} is not a label to train on"
            ))),
            known => Ok(known),
        };
    }
    Ok(if value.is_truthy()? {
        Label::Anomaly
    } else {
        Label::Normal
    })
}

/// `images` decoded as the configuration's `[data]` section says; every image must decode.
fn decode(
    py: Python<'_>,
    settings: &Settings,
    images: &Bound<'_, PyAny>,
    layout: &str,
    what: &str,
) -> PyResult<Loaded> {
    let loader = components::loader(settings).map_err(py_err)?;
    let array = ImageArray::new(images)?;
    let mut source = array.source(layout, loader.spec().channels.channels())?;
    let loaded = py
        .detach(|| loader.load_all(&mut source, false))
        .map_err(py_err)?;
    if let Some(f) = loaded.report.failed.first() {
        return Err(PyValueError::new_err(format!(
            "{what}: {}: {}",
            f.origin, f.message
        )));
    }
    Ok(loaded)
}
