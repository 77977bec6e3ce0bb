//! `anomalymatch.Session`: the labelling session of the command line's `label` and `serve`,
//! driven from a notebook. Answers are journalled the moment they are given, so a kernel that
//! dies loses none; the same `Session(out_dir, ...)` resumes it.

use crate::arrays::ImageArray;
use crate::errors::py_err;
use crate::training::{label_of, settings_with};
use crate::watch::Watch;
use anomalymatch_active::by_name;
use anomalymatch_active::journal::Event;
use anomalymatch_core::{ImageSource, Label, ScoreOptions};
use anomalymatch_jobs::components::{self, LabelSession};
use anomalymatch_jobs::shared_session;
use anomalymatch_jobs::{Override, Silent};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A labelling session over `images` (a folder, zip, HDF5 or FITS file, or a numpy array),
/// kept in `out_dir/session`, starting from `labels` (a label file, or a dict of labels by
/// name).
#[pyclass(module = "anomalymatch", frozen)]
pub struct Session {
    session: Mutex<LabelSession>,
    /// Scores by name from the last `score()`.
    scores: Mutex<HashMap<String, f32>>,
    score: ScoreOptions,
    query: String,
    /// The user's label file, which the export merges over; `None` for a dict of labels.
    labels: Option<PathBuf>,
    dir: PathBuf,
}

#[pymethods]
impl Session {
    /// Opens (or resumes) the session; `config` is as `train` takes it. An array's images are
    /// named by `names` (by their index, `"0"`, `"1"`, ..., without), read as `layout` says,
    /// and copied, so the array may change afterwards.
    #[new]
    #[pyo3(signature = (out_dir, images, labels = None, config = None, names = None, layout = "auto"))]
    fn new(
        py: Python<'_>,
        out_dir: PathBuf,
        images: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyAny>>,
        names: Option<Vec<String>>,
        layout: &str,
    ) -> PyResult<Session> {
        let text = |p: &PathBuf| p.display().to_string();
        let mut extra = vec![Override::new("output.dir", text(&out_dir), "out_dir")];
        let images_path: Option<PathBuf> = images.extract().ok();
        if let Some(path) = &images_path {
            extra.push(Override::new("data.images", text(path), "images"));
        }
        let (label_file, start) = match labels {
            None => (None, BTreeMap::new()),
            Some(l) => match l.cast::<PyDict>() {
                Ok(dict) => (None, labels_by_name(dict)?),
                Err(_) => {
                    let path: PathBuf = l.extract().map_err(|_| {
                        PyValueError::new_err("labels must be None, a label file or a dict")
                    })?;
                    extra.push(Override::new("data.labels", text(&path), "labels"));
                    (Some(path), BTreeMap::new())
                }
            },
        };
        let settings = settings_with(config, extra)?;
        let images = match images_path {
            Some(_) if names.is_some() => {
                return Err(PyValueError::new_err(
                    "names are for an array of images; a file or folder names its own",
                ));
            }
            Some(path) => Images::Path(path),
            None => {
                let array = ImageArray::new(images)?;
                let bands = components::loader(&settings)
                    .map_err(py_err)?
                    .spec()
                    .channels
                    .channels();
                let mut cube = array.source(layout, bands)?;
                if let Some(names) = names {
                    cube = cube
                        .with_names(names)
                        .map_err(|e| PyValueError::new_err(format!("names: {e}")))?;
                }
                Images::Array(Box::new(cube.into_owned()))
            }
        };
        let session = py
            .detach(|| -> anomalymatch_jobs::Result<LabelSession> {
                let source = match images {
                    Images::Path(path) => components::open_source(&settings, &path, &Silent)?,
                    Images::Array(cube) => cube,
                };
                let start = match &label_file {
                    Some(path) => components::read_labels(path, &Silent)?,
                    None => start,
                };
                let mut s = components::session_over(&settings, source, start, &Silent)?;
                s.load_window()?;
                Ok(s)
            })
            .map_err(py_err)?;
        Ok(Session {
            session: Mutex::new(session),
            scores: Mutex::new(HashMap::new()),
            score: settings.score.options(false),
            query: settings.active.query.clone(),
            labels: label_file,
            dir: settings.output.dir.join("session"),
        })
    }

    /// Trains `iterations` more steps (answers given meanwhile join the next step), then
    /// saves the session's checkpoint.
    #[pyo3(signature = (iterations, progress = true))]
    fn train(&self, py: Python<'_>, iterations: usize, progress: bool) -> PyResult<()> {
        let mut watch = Watch::new(py, iterations, "training", progress)?;
        let done = py.detach(|| {
            // An interrupt stops at the next step; the checkpoint keeps the last save.
            shared_session::train(|| self.lock(), iterations, &mut |step| {
                watch.tick(step.done)
            })
        });
        watch.finish(py)?;
        done.map_err(py_err)
    }

    /// Scores the current window and this cycle's answers; returns the scores by name.
    #[pyo3(signature = (progress = true))]
    fn score(&self, py: Python<'_>, progress: bool) -> PyResult<HashMap<String, f32>> {
        let total = self.lock().window().names.len();
        let mut watch = Watch::new(py, total, "scoring", progress)?;
        let scores = py.detach(|| {
            shared_session::score(|| self.lock(), self.score, &mut |step| {
                watch.tick(step.done)
            })
        });
        watch.finish(py)?;
        let scores = scores.map_err(py_err)?;
        *self.scores.lock().unwrap_or_else(PoisonError::into_inner) = scores.clone();
        Ok(scores)
    }

    /// The `n` unlabelled images of the window that `strategy` (default: the configuration's
    /// `active.query`) would show next, best first, with their scores; needs `score()` first.
    #[pyo3(signature = (n = 10, strategy = None))]
    fn candidates(&self, n: usize, strategy: Option<&str>) -> PyResult<Vec<(String, f32)>> {
        let strategy = by_name(strategy.unwrap_or(&self.query))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        let session = self.lock();
        let window = &session.window().names;
        let window_scores: Option<Vec<f32>> =
            window.iter().map(|n| scores.get(n).copied()).collect();
        let Some(window_scores) = window_scores else {
            return Err(PyValueError::new_err(
                "the window has unscored images: call score() first",
            ));
        };
        let (names, picked) = session
            .pick(strategy.as_ref(), &window_scores, n)
            .map_err(py_err)?;
        Ok(names.into_iter().zip(picked).collect())
    }

    /// Records an answer about `name`: `"anomaly"`, `"normal"` or `"remember"`; journalled
    /// before this returns.
    fn label(&self, name: &str, answer: &str) -> PyResult<()> {
        let event = match answer {
            "anomaly" => Event::Anomaly,
            "normal" => Event::Normal,
            "remember" => Event::Remember,
            other => {
                return Err(PyValueError::new_err(format!(
                    "answer must be \"anomaly\", \"normal\" or \"remember\", got {other:?}"
                )));
            }
        };
        self.lock().answer(name, event).map_err(py_err)
    }

    /// The session's labels, starting labels included, by name.
    fn labels(&self) -> HashMap<String, String> {
        let session = self.lock();
        session
            .labels()
            .iter()
            .filter(|(_, l)| l.is_known())
            .map(|(n, l)| (n.clone(), l.as_str().to_string()))
            .collect()
    }

    /// Moves on to the next window of the pool (the cycle ends).
    fn next_window(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.lock().next_batch()).map_err(py_err)?;
        self.scores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }

    /// Writes the labels merged over the starting label file (never changed) to
    /// `out_dir/session/labeled_data.csv`, and the remember list to `remembered.csv`; returns
    /// the two paths.
    fn export(&self) -> PyResult<(PathBuf, PathBuf)> {
        let session = self.lock();
        let labels = self.dir.join("labeled_data.csv");
        session
            .export_labels(self.labels.as_deref(), &labels)
            .map_err(py_err)?;
        let remembered = self.dir.join("remembered.csv");
        session.export_remembered(&remembered).map_err(py_err)?;
        Ok((labels, remembered))
    }
}

/// Where a session's images come from.
enum Images {
    /// A source the command line reads.
    Path(PathBuf),
    /// A numpy array's images, copied.
    Array(Box<dyn ImageSource>),
}

/// Starting labels from a dict of `name: "anomaly" | "normal" | truth value`.
fn labels_by_name(dict: &Bound<'_, PyDict>) -> PyResult<BTreeMap<String, Label>> {
    dict.iter()
        .map(|(name, label)| {
            let name: String = name
                .extract()
                .map_err(|_| PyValueError::new_err("labels: names must be strings"))?;
            let label = label_of(&label, &format!("labels[{name:?}]"))?;
            Ok((name, label))
        })
        .collect()
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, LabelSession> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
