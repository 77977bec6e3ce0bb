//! The background jobs the page starts (train, score, next batch), one at a time on their own
//! thread, reporting progress to the event stream.
//!
//! The jobs themselves are the library's ([`anomalymatch_jobs::shared_session`]): they take the
//! session's lock for one training step or one chunk of images at a time, so an answer given
//! meanwhile waits at most that long and is never lost.

use super::state::{Progress, Shared};
use anomalymatch_jobs::JobError;
use anomalymatch_jobs::shared_session::{self, Step};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Train this many iterations, then score.
    Train(usize),
    /// Score the window and the images answered in this cycle.
    Score,
    /// Rotate the pool to the next window, then score.
    Next,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Train(_) => "train",
            Job::Score => "score",
            Job::Next => "next",
        }
    }
}

/// Marks the server busy for the life of the guard; `None` when another job holds it.
pub struct Busy(Arc<Shared>);

impl Busy {
    /// Takes the busy flag, or `None` when a job runs.
    pub fn take(shared: &Arc<Shared>) -> Option<Busy> {
        shared
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Busy(shared.clone()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Starts `job` on its own thread; `Err` when another job is running.
pub fn start(shared: &Arc<Shared>, job: Job) -> Result<(), String> {
    let busy = Busy::take(shared).ok_or("another job is running; wait for it to finish")?;
    let shared = shared.clone();
    set(&shared, |p| {
        *p = Progress {
            job: job.name().into(),
            state: "running".into(),
            ..Progress::default()
        }
    });
    std::thread::spawn(move || {
        let outcome = run(&shared, job);
        set(&shared, |p| match outcome {
            Ok(()) => p.state = "done".into(),
            Err(e) => {
                p.state = "failed".into();
                p.message = e.one_line();
            }
        });
        drop(busy);
    });
    Ok(())
}

fn set(shared: &Shared, f: impl FnOnce(&mut Progress)) {
    shared.progress.send_modify(f);
}

/// Shows a job's step on the page.
fn show(shared: &Shared, step: &Step, message: String) {
    set(shared, |p| {
        p.done = step.done;
        p.total = step.total;
        p.loss = step.loss;
        p.mask_ratio = step.mask_ratio;
        p.rate = Some(step.rate);
        p.eta_s = Some(step.eta_s());
        p.message = message;
    });
}

fn run(shared: &Arc<Shared>, job: Job) -> Result<(), JobError> {
    let session = || shared.session();
    match job {
        Job::Train(n) => shared_session::train(session, n, &mut |step| {
            show(shared, step, format!("iteration {}", step.done));
            Ok(())
        })?,
        Job::Score => {}
        Job::Next => {
            set(shared, |p| p.message = "loading the next window".into());
            let mut served = shared.served();
            served.session.next_batch()?;
            served.scores.clear();
        }
    }
    set(shared, |p| {
        *p = Progress {
            job: "score".into(),
            message: "scoring".into(),
            ..std::mem::take(p)
        }
    });
    let scores = shared_session::score(session, shared.score, &mut |step| {
        show(shared, step, "scoring".into());
        Ok(())
    })?;
    let total = scores.len();
    let warm: Vec<String> = {
        let mut served = shared.served();
        served.scores = scores;
        let mut items = served.items();
        items.sort_by(|a, b| {
            b.score
                .unwrap_or(f32::MIN)
                .total_cmp(&a.score.unwrap_or(f32::MIN))
        });
        items.into_iter().take(200).map(|i| i.name).collect()
    };
    // The gallery's first page of thumbnails is ready when the page asks for it.
    set(shared, |p| p.message = "preparing thumbnails".into());
    shared.display.warm(&warm);
    set(shared, |p| p.message = format!("scored {total} images"));
    Ok(())
}
