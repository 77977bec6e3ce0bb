//! The active-learning session: train -> score -> query -> label -> retrain, durable on disk.
//!
//! A session lives in a folder:
//! - `journal.jsonl`: every answer, appended and synced as it is given ([`crate::journal`]);
//! - `state.json`: cycle, phase, pool position and the current query, written atomically;
//! - `checkpoint.safetensors`: the training state after the cycle's training;
//! - `ema-step-N.safetensors`: with an ensemble ([`SessionConfig::ensemble`]), the EMA model
//!   that ended a cycle's training at trainer step N, for as long as later cycles average
//!   over it.
//!
//! Labels are never kept only in memory: the current labels are always the starting labels
//! with the journal replayed over them, so a crash loses at most the answer being typed, and
//! a resumed session asks only about the candidates not yet answered. The labelled images are
//! decoded once when the session opens and then grow with each answer, taken from the pool's
//! window that was shown.
//!
//! Besides [`Session::run`], which drives whole cycles for an [`Oracle`], the session can be
//! driven step by step (a web page does): [`Session::load_window`], [`Session::train_span`],
//! [`Session::score_window`], [`Session::answer`] and [`Session::next_batch`]. Answers are
//! journalled the same way, so both drivers can take turns on one session folder.

use crate::error::{ActiveError, Result};
use crate::journal::{Event, Journal};
use anomalymatch_core::atomic::write_atomic;
use anomalymatch_core::atomic::write_bytes_atomic;
use anomalymatch_core::fixmatch::{FixMatch, StepMetrics, TrainData};
use anomalymatch_core::lock::FolderLock;
use anomalymatch_core::score::Views;
use anomalymatch_core::{
    Answer, Augmenter, Candidate, Classifier, Embeddings, FailedImage, ImageStore, Label,
    LabelTable, LabelledSet, MergeReport, Oracle, OracleOutcome, QueryInput, QueryStrategy,
    UnlabelledPool,
};
use anomalymatch_core::{ScoreOptions, Scorer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of a session, assembled from the `[active]`, `[train]` and `[score]` sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Cycles to run in total (a resumed session runs the remaining ones).
    pub cycles: usize,
    /// Training iterations per cycle.
    pub iterations: usize,
    /// Candidates shown to the oracle per cycle.
    pub queries_per_cycle: usize,
    /// Images per forward pass when scoring.
    pub score_batch: usize,
    /// Views of each image whose scores are averaged.
    #[serde(default)]
    pub score_views: Views,
    /// Scores are the mean of this many EMA models: the current one and those that ended the
    /// previous cycles of [`Session::run`] (1: the current one alone).
    #[serde(default = "one")]
    pub ensemble: usize,
    /// Seed of the query strategy.
    pub seed: u64,
    /// Draw progress bars (training, loading) on stderr.
    pub show_progress: bool,
}

fn one() -> usize {
    1
}

impl SessionConfig {
    /// How the session scores images it holds: its batch and views, no bar.
    pub fn score_options(&self) -> ScoreOptions {
        ScoreOptions {
            batch_size: self.score_batch,
            views: self.score_views,
            embeddings: false,
            progress: false,
        }
    }
}

/// The file name of an EMA snapshot (see the module's list of files) starts with this.
const SNAPSHOT_PREFIX: &str = "ema-step-";

fn snapshot_name(step: usize) -> String {
    format!("{SNAPSHOT_PREFIX}{step}.safetensors")
}

/// Where in a cycle the session is; saved so that a resumed session neither retrains nor
/// re-queries needlessly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The cycle's training has not finished.
    Train,
    /// Training is done (checkpoint written); the listed candidates are being labelled.
    Label {
        /// Names shown to the oracle this cycle, best first.
        candidates: Vec<String>,
        /// Their scores.
        scores: Vec<f32>,
    },
}

/// The session's position, written atomically after each phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// Cycles completed.
    pub cycle: usize,
    /// Phase of the current cycle.
    pub phase: Phase,
    /// Pool position at the start of the current cycle.
    pub pool_position: usize,
    /// The trainer's step count when the current cycle began: a checkpoint past it means the
    /// cycle's training finished before a crash, and is not repeated.
    #[serde(default)]
    pub cycle_start_iteration: usize,
}

/// Figures of one finished cycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleReport {
    /// Cycle number, from 1.
    pub cycle: usize,
    /// Candidates shown.
    pub queried: usize,
    /// Anomalies labelled in this cycle's batch.
    pub batch_anomalies: usize,
    /// Normals labelled in this cycle's batch.
    pub batch_normals: usize,
    /// Share of the labelled candidates that were anomalies (the query's precision).
    pub batch_precision: f64,
    /// Images whose latest answer during the session is "anomaly" (an image answered
    /// anomaly several times counts once, and not at all once corrected to normal).
    pub anomalies_found: usize,
    /// Labels per class now (starting labels included): `[normal, anomaly]`.
    pub labels_per_class: [usize; 2],
    /// Expected anomalies among the window's still unlabelled images, the sum of their
    /// scores. It is a fair estimate only when scores are calibrated probabilities, which
    /// FixMatch's are not guaranteed to be; read it as a rough indication.
    pub estimated_unfound: f64,
    /// Unlabelled images found undecodable so far and left out.
    pub unreadable: usize,
    /// Seconds spent loading the window, training, and scoring and querying (0 for phases a
    /// resumed cycle did not repeat).
    pub seconds: CycleSeconds,
}

/// Where a cycle's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CycleSeconds {
    /// Decoding the pool window.
    pub load: f64,
    /// Training (including the checkpoint).
    pub train: f64,
    /// Scoring the window and picking the candidates.
    pub score: f64,
}

/// How a call to [`Session::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// All cycles are done.
    Finished,
    /// The oracle asked to stop; [`Session::open`] resumes later.
    Stopped,
}

/// Hooks into a running session, for progress displays and benchmarks; every method does
/// nothing by default.
pub trait SessionObserver {
    /// After each training step.
    fn on_step(&mut self, metrics: &StepMetrics) {
        let _ = metrics;
    }

    /// After a cycle's training, with the window's names and their scores from the EMA model
    /// (the cycle numbered from 1).
    fn on_scored(&mut self, cycle: usize, names: &[String], scores: &[f32]) {
        let _ = (cycle, names, scores);
    }

    /// After each finished cycle, before the session's state moves past it (so a crash may
    /// repeat it once).
    fn on_cycle(&mut self, report: &CycleReport) {
        let _ = report;
    }
}

/// An observer that watches nothing.
impl SessionObserver for () {}

/// Labelled names that could not be used, counted and named when a session opens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledReport {
    /// Labelled images decoded.
    pub loaded: usize,
    /// Labelled names the image source does not hold (moved or renamed files), sorted.
    pub missing: Vec<String>,
    /// Labelled images that failed to decode.
    pub unreadable: Vec<FailedImage>,
}

/// A durable active-learning session over a trainer, an unlabelled pool and labels.
pub struct Session<C: Classifier, A: Augmenter> {
    dir: PathBuf,
    /// Held while the session is open: one writer per session folder.
    _lock: FolderLock,
    config: SessionConfig,
    trainer: FixMatch<C, A>,
    pool: UnlabelledPool,
    journal: Journal,
    state: SessionState,
    /// Current labels: starting labels with the journal replayed over them.
    labels: BTreeMap<String, Label>,
    /// The decoded images of the known labels that could be read.
    labelled: LabelledSet,
    labelled_report: LabelledReport,
    /// Remembered names with the time they were remembered.
    remembered: Vec<(String, u64)>,
    /// Images whose latest answer is "anomaly".
    found: HashSet<String>,
    /// The cycle of the last journalled answer about each name.
    answered: HashMap<String, usize>,
    /// Where the pool stood after [`Session::load_window`]: the next batch's start.
    window_end: Option<usize>,
}

impl<C: Classifier, A: Augmenter> Session<C, A> {
    /// Opens the session in `dir` (created if needed), resuming from its files if present, and
    /// decodes the labelled images once from the pool's source. The session holds `dir`'s
    /// lock while open: a second process (or a second session) on one folder is refused with
    /// an error naming the holder.
    ///
    /// `start_labels` are the user's labels; they are never written back, the session's
    /// answers live in its journal. The trainer is restored from the checkpoint if there is
    /// one. Labelled names without a readable image are counted in [`Session::labelled_report`]
    /// and left out of training; the session goes on.
    pub fn open(
        dir: &Path,
        config: SessionConfig,
        mut trainer: FixMatch<C, A>,
        mut pool: UnlabelledPool,
        start_labels: BTreeMap<String, Label>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| ActiveError::Io {
            path: dir.into(),
            source,
        })?;
        let lock = FolderLock::exclusive(dir)?;
        let journal_path = dir.join("journal.jsonl");
        let replay = Journal::replay(&journal_path)?;
        let start_known: Vec<String> = start_labels
            .iter()
            .filter(|(_, l)| l.is_known())
            .map(|(n, _)| n.clone())
            .collect();
        let mut labels = start_labels;
        let mut remembered = Vec::new();
        let mut found = HashSet::new();
        let mut answered = HashMap::new();
        for e in &replay.entries {
            answered.insert(e.name.clone(), e.cycle);
            match e.event.label() {
                Some(l) => {
                    note_found(&mut found, &e.name, l);
                    labels.insert(e.name.clone(), l);
                }
                // Journals of older versions may remember a name more than once.
                None if !remembered.iter().any(|(n, _)| *n == e.name) => {
                    remembered.push((e.name.clone(), e.time));
                }
                None => {}
            }
        }
        // Taken before the session's checkpoint is resumed: a crash between the first
        // cycle's checkpoint and its first state file must not make that training the start.
        let first_iteration = trainer.iteration();
        let checkpoint = dir.join("checkpoint.safetensors");
        if checkpoint.exists() {
            trainer.resume(&checkpoint)?;
        }
        let state = match read_state(&dir.join("state.json"))? {
            Some(s) => s,
            None => SessionState {
                cycle: 0,
                phase: Phase::Train,
                pool_position: pool.position(),
                cycle_start_iteration: first_iteration,
            },
        };
        // The labelled images in the order an uninterrupted session holds them (the starting
        // labels by name, then answers as given), so that a resumed session trains exactly as
        // it would have: FixMatch draws labelled images by position.
        let mut seen: HashSet<String> = start_known.iter().cloned().collect();
        let mut order: Vec<String> = start_known;
        for e in &replay.entries {
            if e.event.label().is_some() && seen.insert(e.name.clone()) {
                order.push(e.name.clone());
            }
        }
        order.retain(|n| labels.get(n).is_some_and(|l| l.is_known()));
        let (loaded, mut missing) = pool.load_named(&order, config.show_progress)?;
        missing.sort();
        let (names, images) = loaded.images.select_named(&loaded.names, &order)?;
        let set_labels = names.iter().map(|n| labels[n]).collect();
        let labelled = LabelledSet::new(names, set_labels, images)?;
        let labelled_report = LabelledReport {
            loaded: labelled.len(),
            missing,
            unreadable: loaded.report.failed,
        };
        pool.seek(state.pool_position)?;
        Ok(Session {
            dir: dir.into(),
            _lock: lock,
            config,
            trainer,
            pool,
            journal: Journal::open(&journal_path)?,
            state,
            labels,
            labelled,
            labelled_report,
            remembered,
            found,
            answered,
            window_end: None,
        })
    }

    /// Current labels (starting labels plus every answer so far).
    pub fn labels(&self) -> &BTreeMap<String, Label> {
        &self.labels
    }

    /// The labelled images the session trains on.
    pub fn labelled(&self) -> &LabelledSet {
        &self.labelled
    }

    /// Labelled names found missing or unreadable when the session opened.
    pub fn labelled_report(&self) -> &LabelledReport {
        &self.labelled_report
    }

    /// Names on the remember list, with Unix times.
    pub fn remembered(&self) -> &[(String, u64)] {
        &self.remembered
    }

    /// Images whose latest answer in this session is "anomaly".
    pub fn anomalies_found(&self) -> usize {
        self.found.len()
    }

    /// Cycles completed.
    pub fn cycles_done(&self) -> usize {
        self.state.cycle
    }

    /// The trainer (its EMA model scores).
    pub fn trainer(&self) -> &FixMatch<C, A> {
        &self.trainer
    }

    /// The session's position (cycle, phase, pool position), as `state.json` holds it.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The unlabelled images in memory (empty before [`Session::load_window`]).
    pub fn window(&self) -> &anomalymatch_core::Loaded {
        self.pool.window()
    }

    /// The names answered (labelled or remembered) during `cycle`, in no particular order.
    pub fn answered_in(&self, cycle: usize) -> Vec<&str> {
        self.answered
            .iter()
            .filter(|&(_, &c)| c == cycle)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Where the named image can be looked at, if it is a file of its own.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.pool.path_of(name)
    }

    /// Loads the current cycle's window of unlabelled images (labelled ones left out), the
    /// images that [`Session::train_span`] and [`Session::score_window`] work on.
    pub fn load_window(&mut self) -> Result<()> {
        self.pool.seek(self.state.pool_position)?;
        let known = self.known_names();
        self.pool.next_window(&known, self.config.show_progress)?;
        self.window_end = Some(self.pool.position());
        Ok(())
    }

    /// Moves on to the next batch of the pool: the cycle ends, its successor starts where the
    /// current window ended, the state is saved atomically, and the new window is loaded.
    pub fn next_batch(&mut self) -> Result<()> {
        if self.window_end.is_none() {
            self.load_window()?;
        }
        let next = self.window_end.unwrap_or(self.state.pool_position);
        self.state = SessionState {
            cycle: self.state.cycle + 1,
            phase: Phase::Train,
            pool_position: next,
            cycle_start_iteration: self.trainer.iteration(),
        };
        self.save_state()?;
        self.load_window()
    }

    /// Runs the training steps of `span` (trainer iterations) before `until` on the labelled
    /// images and the window, as [`FixMatch::fit_span_until`], calling `observer` after each;
    /// the caller saves
    /// the checkpoint ([`Session::save_checkpoint`]) when it likes. Taking a long run in short
    /// spans lets answers in between join the next span's labelled images.
    pub fn train_span(
        &mut self,
        span: std::ops::Range<usize>,
        until: usize,
        observer: &mut dyn FnMut(&StepMetrics),
    ) -> Result<()> {
        let data = TrainData {
            labelled: self.labelled.images(),
            labels: self.labelled.labels(),
            unlabelled: &self.pool.window().images,
        };
        Ok(self.trainer.fit_span_until(&data, span, until, observer)?)
    }

    /// Saves the training state to the session's checkpoint, which [`Session::open`] resumes.
    pub fn save_checkpoint(&self) -> Result<()> {
        self.save_model(&self.dir.join("checkpoint.safetensors"))
    }

    /// Saves the training state to `path`, atomically.
    pub fn save_model(&self, path: &Path) -> Result<()> {
        Ok(self.trainer.save_checkpoint(path)?)
    }

    /// Restores the training state from `path` (refused, with nothing changed, when it was
    /// trained on other pixels) and makes it the session's checkpoint.
    pub fn load_model(&mut self, path: &Path) -> Result<()> {
        self.trainer.resume(path)?;
        self.save_checkpoint()
    }

    /// Journals an answer about `name` given outside [`Session::run`] (a web page), synced to
    /// disk before it is applied: a label moves the image into the labelled set, a remember
    /// joins the remember list. A later answer about the same name replaces an earlier one.
    /// Remembering a name already on the list changes nothing and is not journalled again.
    pub fn answer(&mut self, name: &str, event: Event) -> Result<()> {
        let label = event.label();
        if label.is_none() && self.remembered.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        self.journal.record(self.state.cycle, name, event)?;
        self.answered.insert(name.to_string(), self.state.cycle);
        match label {
            Some(l) => {
                note_found(&mut self.found, name, l);
                self.labels.insert(name.to_string(), l);
                self.add_labelled(&[(name.to_string(), l)])?;
            }
            None => self.remembered.push((name.to_string(), now())),
        }
        Ok(())
    }

    /// The scores of the labelled images (as [`Session::score_window`]), in
    /// [`Session::labelled`] order.
    pub fn score_labelled(&self) -> Result<Vec<f32>> {
        self.scores(self.labelled.images())
    }

    /// The `k` window images `strategy` picks given the window's scores, best first, with
    /// their scores (as a cycle's query picks them).
    pub fn pick(
        &self,
        strategy: &dyn QueryStrategy,
        window_scores: &[f32],
        k: usize,
    ) -> Result<(Vec<String>, Vec<f32>)> {
        self.query_k(strategy, window_scores, k)
    }

    fn known_names(&self) -> HashSet<String> {
        self.labels
            .iter()
            .filter(|(_, l)| l.is_known())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Runs cycles until all are done or the oracle stops, reporting to `observer`.
    pub fn run(
        &mut self,
        strategy: &dyn QueryStrategy,
        oracle: &mut dyn Oracle,
        observer: &mut dyn SessionObserver,
    ) -> Result<SessionEnd> {
        while self.state.cycle < self.config.cycles {
            self.pool.seek(self.state.pool_position)?;
            let known = self.known_names();
            let mut seconds = CycleSeconds::default();
            let clock = Instant::now();
            self.pool.next_window(&known, self.config.show_progress)?;
            seconds.load = clock.elapsed().as_secs_f64();
            let next_position = self.pool.position();
            let mut window_scores = None;
            if matches!(self.state.phase, Phase::Train) {
                let clock = Instant::now();
                // A checkpoint past the cycle's start: its training ended before a crash.
                if self.trainer.iteration() == self.state.cycle_start_iteration {
                    self.train(observer)?;
                }
                seconds.train = clock.elapsed().as_secs_f64();
                let clock = Instant::now();
                let scores = self.score_window()?;
                seconds.score = clock.elapsed().as_secs_f64();
                observer.on_scored(self.state.cycle + 1, &self.pool.window().names, &scores);
                let clock = Instant::now();
                let (candidates, picked_scores) = self.query(strategy, &scores)?;
                seconds.score += clock.elapsed().as_secs_f64();
                window_scores = Some(scores);
                self.state.phase = Phase::Label {
                    candidates,
                    scores: picked_scores,
                };
                self.save_state()?;
            }
            let Phase::Label { candidates, scores } = self.state.phase.clone() else {
                continue;
            };
            let (outcome, mut report) = self.label(oracle, &candidates, &scores)?;
            report.seconds = seconds;
            if outcome == OracleOutcome::Quit {
                return Ok(SessionEnd::Stopped);
            }
            let window_scores = match window_scores {
                Some(s) => s,
                None => self.score_window()?,
            };
            report.estimated_unfound = self
                .pool
                .window()
                .names
                .iter()
                .zip(&window_scores)
                .filter(|(n, _)| !self.labels.contains_key(*n))
                .map(|(_, &s)| f64::from(s))
                .sum();
            // The observer hears of the cycle before the state moves past it: an observer that
            // keeps a record misses no cycle to a crash in between, and one that hears of a
            // cycle twice (a crash after it heard) gets the same report.
            observer.on_cycle(&report);
            self.state = SessionState {
                cycle: self.state.cycle + 1,
                phase: Phase::Train,
                pool_position: next_position,
                cycle_start_iteration: self.trainer.iteration(),
            };
            self.save_state()?;
        }
        Ok(SessionEnd::Finished)
    }

    fn train(&mut self, observer: &mut dyn SessionObserver) -> Result<()> {
        let window = self.pool.window();
        let data = TrainData {
            labelled: self.labelled.images(),
            labels: self.labelled.labels(),
            unlabelled: &window.images,
        };
        self.trainer
            .fit(&data, self.config.iterations, &mut |m| observer.on_step(m))?;
        // The snapshot goes first: a kill between the two retrains the cycle, which writes
        // the same snapshot again; the other order could leave a cycle without one. This
        // cycle scores with the snapshots before this one, the next with this one too.
        let keep = self.config.ensemble;
        if keep > 1 {
            self.trainer
                .ema()
                .save(&self.dir.join(snapshot_name(self.trainer.iteration())))?;
            let snapshots = self.snapshots(usize::MAX)?;
            for (_, old) in &snapshots[..snapshots.len().saturating_sub(keep)] {
                std::fs::remove_file(old).map_err(|source| ActiveError::Io {
                    path: old.clone(),
                    source,
                })?;
            }
        }
        self.trainer
            .save_checkpoint(&self.dir.join("checkpoint.safetensors"))?;
        Ok(())
    }

    /// The kept EMA snapshots taken before trainer step `before`, oldest first, with their
    /// steps.
    fn snapshots(&self, before: usize) -> Result<Vec<(usize, PathBuf)>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| ActiveError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut found: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let step = name
                    .to_str()?
                    .strip_prefix(SNAPSHOT_PREFIX)?
                    .strip_suffix(".safetensors")?
                    .parse()
                    .ok()?;
                (step < before).then(|| (step, e.path()))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The anomaly scores of `images`: the current EMA model's, averaged with those of the
    /// models that ended the previous cycles, up to [`SessionConfig::ensemble`] in all.
    fn scores(&self, images: &ImageStore) -> Result<Vec<f32>> {
        let options = self.config.score_options();
        let mut sum = Scorer::new(self.trainer.ema(), options).scores(images)?;
        let keep = self.config.ensemble - 1;
        if keep == 0 {
            return Ok(sum);
        }
        let snapshots = self.snapshots(self.trainer.iteration())?;
        let members = &snapshots[snapshots.len().saturating_sub(keep)..];
        for (_, path) in members {
            let model = self.trainer.ema().duplicate()?;
            model.load(path)?;
            for (s, t) in sum
                .iter_mut()
                .zip(Scorer::new(&model, options).scores(images)?)
            {
                *s += t;
            }
        }
        let n = (members.len() + 1) as f32;
        sum.iter_mut().for_each(|s| *s /= n);
        Ok(sum)
    }

    /// The scores of the current window (the EMA model's, or the ensemble's), in
    /// [`Session::window`] order.
    pub fn score_window(&self) -> Result<Vec<f32>> {
        self.scores(&self.pool.window().images)
    }

    /// Picks the cycle's candidates from the window; the labelled images take part in the
    /// query with their labels (a diversity query starts from them) but are never picked.
    fn query(
        &self,
        strategy: &dyn QueryStrategy,
        window_scores: &[f32],
    ) -> Result<(Vec<String>, Vec<f32>)> {
        self.query_k(strategy, window_scores, self.config.queries_per_cycle)
    }

    fn query_k(
        &self,
        strategy: &dyn QueryStrategy,
        window_scores: &[f32],
        k: usize,
    ) -> Result<(Vec<String>, Vec<f32>)> {
        let model = self.trainer.ema();
        let window = self.pool.window();
        let mut scores = window_scores.to_vec();
        scores.extend(self.score_labelled()?);
        let mut labels = vec![Label::Unknown; window.names.len()];
        labels.extend_from_slice(self.labelled.labels());
        let embeddings = if strategy.needs_embeddings() {
            let scorer = Scorer::new(model, self.config.score_options());
            both_embeddings(&scorer, &window.images, self.labelled.images())?
        } else {
            None
        };
        let input = QueryInput {
            scores: &scores,
            embeddings: embeddings.as_ref(),
            labels: &labels,
        };
        let picked = strategy.select(
            &input,
            k,
            anomalymatch_core::rng::derive_seed(self.config.seed, 0x7175, self.state.cycle as u64),
        )?;
        if let Some(&bad) = picked.iter().find(|&&i| i >= window.names.len()) {
            return Err(ActiveError::Strategy {
                strategy: strategy.name().to_string(),
                message: format!("picked item {bad}, which is already labelled"),
            });
        }
        Ok((
            picked.iter().map(|&i| window.names[i].clone()).collect(),
            picked.iter().map(|&i| scores[i]).collect(),
        ))
    }

    fn label(
        &mut self,
        oracle: &mut dyn Oracle,
        candidates: &[String],
        scores: &[f32],
    ) -> Result<(OracleOutcome, CycleReport)> {
        // Ask only about candidates not yet answered (a resumed cycle).
        let pending: Vec<Candidate> = candidates
            .iter()
            .zip(scores)
            .enumerate()
            .filter(|(_, (n, _))| !self.labels.get(*n).is_some_and(|l| l.is_known()))
            .map(|(rank, (n, &score))| Candidate {
                rank,
                name: n.clone(),
                score,
                path: self.pool.path_of(n),
            })
            .collect();
        let cycle = self.state.cycle;
        let mut answered: Vec<(String, Label)> = Vec::new();
        let (journal, labels, remembered, found, answered_cycles) = (
            &mut self.journal,
            &mut self.labels,
            &mut self.remembered,
            &mut self.found,
            &mut self.answered,
        );
        let outcome = oracle.label(&pending, &mut |answer| {
            let (rank, event) = match answer {
                Answer::Label { rank, label } => match Event::from_label(label) {
                    Some(e) => (rank, e),
                    None => return Ok(()),
                },
                Answer::Remember { rank } => (rank, Event::Remember),
            };
            let name = candidates.get(rank).ok_or_else(|| {
                anomalymatch_core::Error::InvalidArgument(format!(
                    "oracle answered about candidate {rank} of {}",
                    candidates.len()
                ))
            })?;
            let label = event.label();
            if label.is_none() && remembered.iter().any(|(n, _)| n == name) {
                return Ok(());
            }
            journal.record(cycle, name, event)?;
            answered_cycles.insert(name.clone(), cycle);
            match label {
                Some(l) => {
                    note_found(found, name, l);
                    labels.insert(name.clone(), l);
                    answered.push((name.clone(), l));
                }
                None => remembered.push((name.clone(), now())),
            }
            Ok(())
        });
        // Answers already journalled join the labelled images even if the oracle failed.
        self.add_labelled(&answered)?;
        let outcome = outcome?;
        let batch: Vec<Label> = candidates
            .iter()
            .filter_map(|n| self.labels.get(n).copied())
            .filter(|l| l.is_known())
            .collect();
        let batch_anomalies = batch.iter().filter(|&&l| l == Label::Anomaly).count();
        let mut per_class = [0usize; 2];
        for l in self.labels.values() {
            if let Some(c) = l.class_index() {
                per_class[c as usize] += 1;
            }
        }
        let report = CycleReport {
            cycle: cycle + 1,
            queried: candidates.len(),
            batch_anomalies,
            batch_normals: batch.len() - batch_anomalies,
            batch_precision: if batch.is_empty() {
                0.0
            } else {
                batch_anomalies as f64 / batch.len() as f64
            },
            anomalies_found: self.found.len(),
            labels_per_class: per_class,
            estimated_unfound: 0.0,
            unreadable: self.pool.unreadable().len(),
            seconds: CycleSeconds::default(),
        };
        Ok((outcome, report))
    }

    /// Adds answered images to the labelled set: their pixels come from the window they were
    /// shown in (or, for a candidate no longer in it, from the source), and they leave the
    /// window. A changed answer updates the label in place.
    fn add_labelled(&mut self, answered: &[(String, Label)]) -> Result<()> {
        let mut fresh: Vec<(String, Label)> = Vec::new();
        for (name, label) in answered {
            if !self.labelled.relabel(name, *label) {
                fresh.push((name.clone(), *label));
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let window = self.pool.window();
        let in_window: HashSet<&str> = window.names.iter().map(String::as_str).collect();
        let (in_window, elsewhere): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|(n, _)| in_window.contains(n.as_str()));
        let (names, labels): (Vec<String>, Vec<Label>) = in_window.into_iter().unzip();
        let (_, images) = window.images.select_named(&window.names, &names)?;
        self.labelled.extend(&names, &labels, &images)?;
        self.pool.remove_from_window(&names)?;
        if !elsewhere.is_empty() {
            let names: Vec<String> = elsewhere.iter().map(|(n, _)| n.clone()).collect();
            let (loaded, missing) = self.pool.load_named(&names, false)?;
            let label_of: HashMap<&str, Label> =
                elsewhere.iter().map(|(n, l)| (n.as_str(), *l)).collect();
            let labels: Vec<Label> = loaded.names.iter().map(|n| label_of[n.as_str()]).collect();
            self.labelled
                .extend(&loaded.names, &labels, &loaded.images)?;
            self.labelled_report.missing.extend(missing);
            self.labelled_report.unreadable.extend(loaded.report.failed);
        }
        Ok(())
    }

    /// Writes the current labels merged over the user's label file (if any) to `out`, in the
    /// original's `labeled_data.csv` format. The user's file itself is never written: `out`
    /// naming it is an error.
    pub fn export_labels(&self, user_file: Option<&Path>, out: &Path) -> Result<MergeReport> {
        if let Some(user) = user_file
            && same_file(user, out)
        {
            return Err(anomalymatch_core::Error::InvalidArgument(format!(
                "{}: the export would overwrite the user's label file; choose another output",
                out.display()
            ))
            .into());
        }
        let mut table = match user_file {
            Some(p) => LabelTable::read(p)?,
            None => LabelTable::new(),
        };
        let report = table.merge(self.labels.iter().map(|(n, l)| (n.as_str(), *l)));
        table.write(out)?;
        Ok(report)
    }

    /// Writes the remember list as `filename,remembered_at` (Unix seconds), atomically.
    pub fn export_remembered(&self, out: &Path) -> Result<()> {
        Ok(write_atomic(out, |w| {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record(["filename", "remembered_at"])?;
            for (name, time) in &self.remembered {
                csv.write_record([name.as_str(), &time.to_string()])?;
            }
            csv.flush()
        })?)
    }

    fn save_state(&self) -> Result<()> {
        let path = self.dir.join("state.json");
        let text = serde_json::to_vec_pretty(&self.state).map_err(|e| ActiveError::Corrupt {
            path: path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        Ok(write_bytes_atomic(&path, &text)?)
    }
}

/// Embeddings of the window followed by those of the labelled images, or `None` when the
/// model has none.
fn both_embeddings<C: Classifier>(
    scorer: &Scorer<'_, C>,
    window: &ImageStore,
    labelled: &ImageStore,
) -> Result<Option<Embeddings>> {
    let (Some(a), Some(b)) = (scorer.embeddings(window)?, scorer.embeddings(labelled)?) else {
        return Ok(None);
    };
    let mut data = Vec::with_capacity((a.len() + b.len()) * a.dim());
    for i in 0..a.len() {
        data.extend_from_slice(a.row(i));
    }
    for i in 0..b.len() {
        data.extend_from_slice(b.row(i));
    }
    Ok(Some(Embeddings::new(data, a.dim())?))
}

/// True when both paths name the same existing file (or are spelled the same).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn read_state(path: &Path) -> Result<Option<SessionState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ActiveError::Corrupt {
                path: path.into(),
                line: e.line() as u64,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ActiveError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Keeps `found` as the images whose latest answer is "anomaly".
fn note_found(found: &mut HashSet<String>, name: &str, label: Label) {
    if label == Label::Anomaly {
        found.insert(name.to_string());
    } else {
        found.remove(name);
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
