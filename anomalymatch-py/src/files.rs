//! `anomalymatch.score_files`: any source the command line reads (a folder of images, a zip
//! archive, an HDF5 or FITS file), streamed through a checkpoint.

use crate::errors::py_err;
use crate::model::options;
use crate::watch::Watch;
use anomalymatch_core::DataConfig;
use anomalymatch_io::SourceOptions;
use anomalymatch_jobs::scoring_model::ScoringModel;
use numpy::PyArray1;
use pyo3::prelude::*;
use std::path::PathBuf;

/// Names, scores and the unreadable images (`(name, message)`) of `source` scored with
/// `checkpoint`; the package's `score_files` wraps it.
#[pyfunction]
#[pyo3(signature = (source, checkpoint, batch_size = None, views = "single", device = "cpu", progress = true))]
#[allow(clippy::type_complexity)]
pub fn score_files<'py>(
    py: Python<'py>,
    source: PathBuf,
    checkpoint: PathBuf,
    batch_size: Option<usize>,
    views: &str,
    device: &str,
    progress: bool,
) -> PyResult<(
    Vec<String>,
    Bound<'py, PyArray1<f32>>,
    Vec<(String, String)>,
)> {
    let options = options(batch_size, views, false)?;
    let device = anomalymatch_models::parse_device(device).map_err(py_err)?;
    let (model, mut images) = py
        .detach(|| -> anomalymatch_jobs::Result<_> {
            let model = ScoringModel::open(&checkpoint, &device, &DataConfig::default())?;
            let images = anomalymatch_io::open_source(&source, &SourceOptions::default())?;
            Ok((model, images))
        })
        .map_err(py_err)?;
    let total = images.len_hint().unwrap_or(0);
    let mut watch = Watch::new(py, total, "scoring", progress)?;
    let scored =
        py.detach(|| model.score_source(images.as_mut(), options, &mut |done| watch.tick(done)));
    watch.finish(py)?;
    let scored = scored.map_err(py_err)?;
    let failed = scored
        .failed
        .into_iter()
        .map(|f| (f.origin, f.message))
        .collect();
    Ok((scored.names, PyArray1::from_vec(py, scored.scores), failed))
}
