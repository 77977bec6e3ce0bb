//! What long work does between chunks, with the GIL released the rest of the time: draw the
//! progress bar (`anomalymatch._progress`, tqdm where installed) and notice Ctrl-C, which
//! stops the work at the next chunk with nothing corrupted.

use pyo3::prelude::*;

/// Progress and interrupts of one job.
pub struct Watch {
    bar: Option<Py<PyAny>>,
    interrupt: Option<PyErr>,
}

impl Watch {
    /// A watch over `total` steps, drawing a bar labelled `what` when `progress` is true.
    pub fn new(py: Python<'_>, total: usize, what: &str, progress: bool) -> PyResult<Watch> {
        let bar = if progress {
            let module = py.import("anomalymatch._progress")?;
            Some(module.getattr("Bar")?.call1((total, what))?.unbind())
        } else {
            None
        };
        Ok(Watch {
            bar,
            interrupt: None,
        })
    }

    /// Called from the work, without the GIL, after each chunk: `done` steps so far. An
    /// interrupt is kept for [`Watch::finish`] and stops the work.
    pub fn tick(&mut self, done: usize) -> anomalymatch_core::Result<()> {
        Python::attach(|py| {
            if let Some(bar) = &self.bar {
                // A broken bar must not stop the work.
                let _ = bar.call_method1(py, "update_to", (done,));
            }
            match py.check_signals() {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.interrupt = Some(e);
                    Err(anomalymatch_core::Error::Interrupted)
                }
            }
        })
    }

    /// Closes the bar; the interrupt, when there was one, is the error to raise.
    pub fn finish(self, py: Python<'_>) -> PyResult<()> {
        if let Some(bar) = &self.bar {
            bar.call_method0(py, "close")?;
        }
        match self.interrupt {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
