//! The background jobs the page starts (train, score, next batch), one at a time on their own
//! thread, reporting progress to the event stream.
//!
//! Jobs take the session's lock for one training step or one chunk of images at a time, so an
//! answer given meanwhile waits at most that long and is never lost; it joins the labelled
//! images of the next training step.

use super::state::{Progress, Shared};
use anomalymatch_core::Classifier;
use anomalymatch_core::Scorer;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

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
                p.message = e;
            }
        });
        drop(busy);
    });
    Ok(())
}

fn set(shared: &Shared, f: impl FnOnce(&mut Progress)) {
    shared.progress.send_modify(f);
}

fn run(shared: &Arc<Shared>, job: Job) -> Result<(), String> {
    let text = |e: anomalymatch_active::ActiveError| e.to_string();
    match job {
        Job::Train(n) => train(shared, n)?,
        Job::Score => {}
        Job::Next => {
            set(shared, |p| p.message = "loading the next window".into());
            let mut served = shared.served();
            served.session.next_batch().map_err(text)?;
            served.scores.clear();
        }
    }
    score(shared)
}

fn train(shared: &Arc<Shared>, n: usize) -> Result<(), String> {
    let start = shared.served().session.trainer().iteration();
    let span = start..start + n;
    let clock = Instant::now();
    for it in span.clone() {
        let mut last = None;
        shared
            .served()
            .session
            .train_span(span.clone(), it + 1, &mut |m| last = Some(*m))
            .map_err(|e| format!("training: {e}"))?;
        let done = it + 1 - start;
        let rate = done as f64 / clock.elapsed().as_secs_f64().max(1e-9);
        set(shared, |p| {
            p.done = done;
            p.total = n;
            p.loss = last.map(|m| m.loss);
            p.mask_ratio = last.map(|m| m.mask_ratio);
            p.rate = Some(rate);
            p.eta_s = Some((n - done) as f64 / rate);
            p.message = format!("iteration {}", it + 1);
        });
    }
    // The model survives a restart, as a labelling session's does.
    shared
        .served()
        .session
        .save_checkpoint()
        .map_err(|e| e.to_string())
}

/// Scores the window a chunk at a time with a copy of the EMA model (so answers go on
/// meanwhile), then the images answered in this cycle, and warms the gallery's thumbnails.
fn score(shared: &Arc<Shared>) -> Result<(), String> {
    let text = |e: anomalymatch_core::Error| e.to_string();
    let (model, names) = {
        let served = shared.served();
        let model = served.session.trainer().ema().duplicate().map_err(text)?;
        (model, served.session.window().names.clone())
    };
    let total = names.len();
    set(shared, |p| {
        p.job = "score".into();
        p.done = 0;
        p.total = total;
        p.loss = None;
        p.mask_ratio = None;
        p.message = "scoring".into();
    });
    let clock = Instant::now();
    let mut scores = HashMap::with_capacity(total);
    let scorer = Scorer::new(&model, shared.score);
    for chunk in names.chunks(shared.score.batch_size.max(1)) {
        let (picked, images) = {
            let served = shared.served();
            let window = served.session.window();
            window
                .images
                .select_named(&window.names, chunk)
                .map_err(text)?
        };
        let s = scorer.scores(&images).map_err(text)?;
        scores.extend(picked.into_iter().zip(s));
        let done = scores.len();
        let rate = done as f64 / clock.elapsed().as_secs_f64().max(1e-9);
        set(shared, |p| {
            p.done = done;
            p.rate = Some(rate);
            p.eta_s = Some(total.saturating_sub(done) as f64 / rate);
        });
    }
    let warm: Vec<String> = {
        let mut served = shared.served();
        let cycle = served.session.state().cycle;
        let answered: Vec<String> = served
            .session
            .answered_in(cycle)
            .into_iter()
            .map(String::from)
            .collect();
        let labelled = served.session.labelled();
        let (names, images) = labelled
            .images()
            .select_named(labelled.names(), &answered)
            .map_err(text)?;
        let s = scorer.scores(&images).map_err(text)?;
        scores.extend(names.into_iter().zip(s));
        served.scores = scores;
        let mut items = served.items();
        items.sort_by(|a, b| {
            b.score
                .unwrap_or(f32::MIN)
                .total_cmp(&a.score.unwrap_or(f32::MIN))
        });
        items.into_iter().take(200).map(|i| i.name).collect()
    };
    set(shared, |p| p.message = "preparing thumbnails".into());
    shared.display.warm(&warm);
    set(shared, |p| p.message = format!("scored {total} images"));
    Ok(())
}
