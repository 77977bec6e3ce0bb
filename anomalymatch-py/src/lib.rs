//! AnomalyMatch for Python: the `anomalymatch` package's native module,
//! `anomalymatch._anomalymatch`, built by maturin (`pyproject.toml`).
//!
//! The bindings are thin: every job is the engine's ([`anomalymatch_jobs`]), numpy arrays are
//! read as cubes ([`anomalymatch_io::cube`]) and stream through the one scorer, and errors carry
//! the message the command line prints. Work runs with the GIL released; between chunks it
//! takes the GIL back for a moment to draw progress and to notice Ctrl-C
//! ([`watch::Watch`]). Everything sits behind the `python` feature, so that the workspace
//! builds and tests on a machine without Python.

#[cfg(feature = "python")]
mod arrays;
#[cfg(feature = "python")]
mod errors;
#[cfg(feature = "python")]
mod files;
#[cfg(feature = "python")]
mod model;
#[cfg(feature = "python")]
mod session;
#[cfg(feature = "python")]
mod training;
#[cfg(feature = "python")]
mod watch;

#[cfg(feature = "python")]
use pyo3::prelude::*;

/// The command line's allocator, for the Rust side of the module.
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

/// The native module.
#[cfg(feature = "python")]
#[pymodule]
fn _anomalymatch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    anomalymatch::allocator::keep_freed_pages();
    m.add_class::<model::Model>()?;
    m.add_class::<session::Session>()?;
    m.add_function(wrap_pyfunction!(files::score_files, m)?)?;
    m.add_function(wrap_pyfunction!(training::train, m)?)?;
    m.add(
        "AnomalyMatchError",
        m.py().get_type::<errors::AnomalyMatchError>(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
