//! Training and scoring a labelling session that someone answers meanwhile: the labelling page,
//! or a notebook that labels between steps.
//!
//! The session sits behind the caller's lock. These jobs take it for one training step or one
//! chunk of images at a time, so an answer given meanwhile waits at most that long, is
//! journalled at once, and joins the labelled images of the next step. Scoring works on a copy
//! of the EMA model so that answers go on while a chunk is scored.

use crate::error::Result;
use anomalymatch_active::Session;
use anomalymatch_core::{Augmenter, Classifier, ScoreOptions, Scorer};
use std::collections::HashMap;
use std::ops::DerefMut;
use std::time::Instant;

/// How far a job has come, after each step (training iteration, or chunk of images scored).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Step {
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// Loss of the last training step (training only).
    pub loss: Option<f32>,
    /// Share of unlabelled images above the pseudo-label cutoff in the last step (training
    /// only).
    pub mask_ratio: Option<f32>,
    /// Steps per second so far.
    pub rate: f64,
}

impl Step {
    fn new(done: usize, total: usize, clock: Instant) -> Step {
        Step {
            done,
            total,
            rate: done as f64 / clock.elapsed().as_secs_f64().max(1e-9),
            ..Step::default()
        }
    }

    /// Seconds left at the current rate.
    pub fn eta_s(&self) -> f64 {
        self.total.saturating_sub(self.done) as f64 / self.rate.max(1e-9)
    }
}

/// Trains `iterations` more steps of the session `lock` gives, one lock per step, then saves
/// its checkpoint so that the model survives a restart as a labelling session's does. An
/// error from `on_step` (an interrupt) stops before the next step, without saving.
pub fn train<C, A, G>(
    lock: impl Fn() -> G,
    iterations: usize,
    on_step: &mut dyn FnMut(&Step) -> anomalymatch_core::Result<()>,
) -> Result<()>
where
    C: Classifier,
    A: Augmenter,
    G: DerefMut<Target = Session<C, A>>,
{
    let start = lock().trainer().iteration();
    let span = start..start + iterations;
    let clock = Instant::now();
    for it in span.clone() {
        let mut last = None;
        lock().train_span(span.clone(), it + 1, &mut |m| last = Some(*m))?;
        on_step(&Step {
            loss: last.map(|m| m.loss),
            mask_ratio: last.map(|m| m.mask_ratio),
            ..Step::new(it + 1 - start, iterations, clock)
        })?;
    }
    Ok(lock().save_checkpoint()?)
}

/// Scores the session's pool window a chunk at a time, then the images answered in the current
/// cycle (which have left the window for the labelled set); returns the scores by name. An
/// error from `on_step` (an interrupt) stops before the next chunk.
pub fn score<C, A, G>(
    lock: impl Fn() -> G,
    options: ScoreOptions,
    on_step: &mut dyn FnMut(&Step) -> anomalymatch_core::Result<()>,
) -> Result<HashMap<String, f32>>
where
    C: Classifier,
    A: Augmenter,
    G: DerefMut<Target = Session<C, A>>,
{
    let (model, names) = {
        let session = lock();
        let model = session.trainer().ema().duplicate()?;
        (model, session.window().names.clone())
    };
    let total = names.len();
    let clock = Instant::now();
    let scorer = Scorer::new(&model, options);
    let mut scores = HashMap::with_capacity(total);
    for chunk in names.chunks(options.batch_size.max(1)) {
        let (picked, images) = {
            let session = lock();
            let window = session.window();
            window.images.select_named(&window.names, chunk)?
        };
        scores.extend(picked.into_iter().zip(scorer.scores(&images)?));
        on_step(&Step::new(scores.len(), total, clock))?;
    }
    let (names, images) = {
        let session = lock();
        let answered = session.answered_in(session.state().cycle);
        let labelled = session.labelled();
        labelled
            .images()
            .select_named(labelled.names(), &answered)?
    };
    scores.extend(names.into_iter().zip(scorer.scores(&images)?));
    Ok(scores)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use anomalymatch_active::journal::Event;
    use anomalymatch_active::session::SessionConfig;
    use anomalymatch_core::toy::{
        MaxMeanClassifier, MemorySource, toy_data, toy_images, toy_trainer,
    };
    use anomalymatch_core::{Check, IdentityAugmenter, Label, TrainConfig, UnlabelledPool, Views};
    use std::collections::BTreeMap;
    use std::sync::{Mutex, MutexGuard};

    type Toy = Session<MaxMeanClassifier, IdentityAugmenter>;

    /// A session over 60 toy images with a window of 20 and two starting labels.
    fn toy_session(dir: &std::path::Path) -> Toy {
        let (images, _) = toy_images(60, 8, 10, 5);
        let names: Vec<String> = (0..60).map(|i| format!("img{i:02}.png")).collect();
        let loader = toy_data(8).check().unwrap().build(()).unwrap();
        let source = MemorySource::new(&names, &images).unwrap();
        let pool = UnlabelledPool::new(Box::new(source), loader, 20).unwrap();
        let trainer = toy_trainer(TrainConfig::default(), 8, 4).unwrap();
        let config = SessionConfig {
            cycles: 2,
            iterations: 3,
            queries_per_cycle: 4,
            score_batch: 7,
            score_views: Views::Single,
            ensemble: 1,
            seed: 1,
            show_progress: false,
        };
        let start = BTreeMap::from([
            ("img00.png".to_string(), Label::Normal),
            ("img01.png".to_string(), Label::Anomaly),
        ]);
        let mut session = Session::open(dir, config, trainer, pool, start).unwrap();
        session.load_window().unwrap();
        session
    }

    #[test]
    fn training_steps_one_lock_at_a_time_and_keeps_answers_given_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Mutex::new(toy_session(dir.path()));
        let lock = || shared.lock().unwrap();
        let answered = lock().window().names[3].clone();
        let mut steps = Vec::new();
        train(lock, 3, &mut |s: &Step| {
            steps.push(*s);
            if s.done == 1 {
                // What the page does between two steps: the lock is free here.
                let mut session: MutexGuard<'_, Toy> = shared.lock().unwrap();
                session.answer(&answered, Event::Anomaly).unwrap();
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(steps.iter().map(|s| s.done).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(steps.iter().all(|s| s.total == 3 && s.loss.is_some()));
        assert_eq!(steps[2].eta_s(), 0.0);
        let session = lock();
        assert_eq!(session.trainer().iteration(), 3);
        assert_eq!(session.labels().get(&answered), Some(&Label::Anomaly));
    }

    #[test]
    fn scoring_covers_the_window_and_this_cycles_answers_chunk_by_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Mutex::new(toy_session(dir.path()));
        let lock = || shared.lock().unwrap();
        let answered = lock().window().names[0].clone();
        lock().answer(&answered, Event::Normal).unwrap();
        let window = lock().window().names.clone();
        let options = ScoreOptions {
            batch_size: 7,
            views: Views::Single,
            embeddings: false,
            progress: false,
        };
        let mut done = Vec::new();
        let scores = score(lock, options, &mut |s: &Step| {
            done.push((s.done, s.total));
            Ok(())
        })
        .unwrap();
        // 19 images left in the window, in chunks of 7.
        assert_eq!(window.len(), 19);
        assert_eq!(done, [(7, 19), (14, 19), (19, 19)]);
        assert_eq!(scores.len(), 20);
        assert!(window.iter().all(|n| scores.contains_key(n)));
        assert!(scores.contains_key(&answered));
        assert!(scores.values().all(|s| s.is_finite()));
    }
}
