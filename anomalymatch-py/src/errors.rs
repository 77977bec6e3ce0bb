//! The engine's errors as Python exceptions, with the message the command line prints: usage
//! errors (a bad option, a shape that cannot fit) are `ValueError`, a missing file is
//! `FileNotFoundError`, an interrupt is `KeyboardInterrupt`, and any other failure is
//! `AnomalyMatchError`.

use anomalymatch_jobs::JobError;
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    _anomalymatch,
    AnomalyMatchError,
    PyRuntimeError,
    "A job failed (an unreadable file, a damaged checkpoint); the message says which."
);

/// The Python exception of `e`.
pub fn to_py(e: JobError) -> PyErr {
    let line = e.one_line();
    if e.is_usage() {
        return PyValueError::new_err(line);
    }
    if matches!(&e, JobError::Core(anomalymatch_core::Error::Interrupted)) {
        return PyKeyboardInterrupt::new_err(line);
    }
    let not_found = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::NotFound);
    if not_found {
        return PyFileNotFoundError::new_err(line);
    }
    AnomalyMatchError::new_err(line)
}

/// Any component error, through the engine's.
pub fn py_err(e: impl Into<JobError>) -> PyErr {
    to_py(e.into())
}
