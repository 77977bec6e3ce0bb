//! `anomalymatch.Model`: a checkpoint the command line (or `train`) wrote, scoring numpy
//! arrays with the pixel settings it was trained with.

use crate::arrays::ImageArray;
use crate::errors::py_err;
use crate::watch::Watch;
use anomalymatch_core::checkpoint::{CheckpointState, save_checkpoint};
use anomalymatch_core::{DataConfig, ScoreConfig, ScoreOptions, Views};
use anomalymatch_jobs::scoring_model::{ScoredImages, ScoringModel};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// A trained model: an AnomalyMatch checkpoint, scoring images as its training decoded them.
#[pyclass(module = "anomalymatch", frozen)]
pub struct Model {
    inner: ScoringModel,
    /// The checkpoint it was loaded from; `None` when trained in this process.
    path: Option<PathBuf>,
}

#[pymethods]
impl Model {
    /// Opens a checkpoint written by `anomalymatch discover`, `train` or `Model.save`, on
    /// `device` (`"cpu"`, `"cuda:0"`, `"metal"`).
    #[staticmethod]
    #[pyo3(signature = (path, device = "cpu"))]
    fn load(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Model> {
        let device = anomalymatch_models::parse_device(device).map_err(py_err)?;
        let inner = py
            .detach(|| ScoringModel::open(&path, &device, &DataConfig::default()))
            .map_err(py_err)?;
        Ok(Model {
            inner,
            path: Some(path),
        })
    }

    /// Writes the model as a checkpoint at `path` (atomically), which the command line's
    /// `score` and `Model.load` read.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let info = self.inner.info();
        let state = CheckpointState {
            iteration: info.iteration,
            optimizer: Vec::new(),
            train: info.train.clone(),
            data: info.data,
        };
        let model = self.inner.model();
        save_checkpoint(&path, model, model, &state).map_err(py_err)
    }

    /// Anomaly scores, a float32 array of N values in [0, 1], of `images`: uint8 or uint16
    /// pixels, or float32/float64 physical values, shaped (N, H, W), (N, H, W, C) or
    /// (N, C, H, W) (`layout` says which when the shape cannot). `views` averages the scores
    /// of `"single"`, `"flips"` or `"dihedral"` views.
    #[pyo3(signature = (images, batch_size = None, views = "single", layout = "auto", progress = false))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        batch_size: Option<usize>,
        views: &str,
        layout: &str,
        progress: bool,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let options = options(batch_size, views, false)?;
        let scored = self.run(py, images, layout, options, progress, "scoring")?;
        Ok(PyArray1::from_vec(py, scored.scores))
    }

    /// Embeddings, a float32 array (N, D), of `images` (as `score` takes them): the
    /// backbone's pooled features, for clustering or similarity search.
    #[pyo3(signature = (images, batch_size = None, layout = "auto", progress = false))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        batch_size: Option<usize>,
        layout: &str,
        progress: bool,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let options = options(batch_size, "single", true)?;
        let scored = self.run(py, images, layout, options, progress, "embedding")?;
        let (n, dim) = (scored.names.len(), scored.dim);
        PyArray1::from_vec(py, scored.embeddings).reshape([n, dim])
    }

    /// The architecture, e.g. `efficientnet-lite0`.
    #[getter]
    fn architecture(&self) -> String {
        self.inner.info().spec.architecture.clone()
    }

    /// Side in pixels the images are resized to.
    #[getter]
    fn size(&self) -> usize {
        self.inner.info().data.size
    }

    /// Bands the network takes.
    #[getter]
    fn channels(&self) -> usize {
        self.inner.info().spec.in_channels
    }

    /// Training steps the model has taken.
    #[getter]
    fn iteration(&self) -> usize {
        self.inner.info().iteration
    }

    fn __repr__(&self) -> String {
        let info = self.inner.info();
        let from = match &self.path {
            Some(p) => format!("{:?}", p.display().to_string()),
            None => "trained here".to_string(),
        };
        format!(
            "Model({from}: {}, {}, iteration {})",
            info.spec.architecture, info.data, info.iteration
        )
    }
}

impl Model {
    /// A model trained in this process.
    pub fn trained(inner: ScoringModel) -> Model {
        Model { inner, path: None }
    }

    /// Streams `images` through the scorer without the GIL; every image must be usable.
    fn run(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        layout: &str,
        options: ScoreOptions,
        progress: bool,
        what: &str,
    ) -> PyResult<ScoredImages> {
        let array = ImageArray::new(images)?;
        let mut source = array.source(layout, self.inner.info().spec.in_channels)?;
        let mut watch = Watch::new(py, array.len(), what, progress)?;
        let inner = &self.inner;
        let scored =
            py.detach(|| inner.score_source(&mut source, options, &mut |done| watch.tick(done)));
        watch.finish(py)?;
        let scored = scored.map_err(py_err)?;
        if let Some(f) = scored.failed.first() {
            return Err(PyValueError::new_err(format!(
                "{}: {} ({} of {} images unusable)",
                f.origin,
                f.message,
                scored.failed.len(),
                array.len()
            )));
        }
        Ok(scored)
    }
}

/// Scoring options from keyword arguments.
pub fn options(batch_size: Option<usize>, views: &str, embeddings: bool) -> PyResult<ScoreOptions> {
    let views: Views = serde_json::from_value(serde_json::Value::String(views.into()))
        .map_err(|e| PyValueError::new_err(format!("views: {e}")))?;
    let batch_size = batch_size.unwrap_or(ScoreConfig::default().batch_size);
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be at least 1"));
    }
    Ok(ScoreOptions {
        batch_size,
        views,
        embeddings,
        progress: false,
    })
}
