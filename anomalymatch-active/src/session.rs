//! The active-learning session: train -> score -> query -> label -> retrain, durable on disk.
//!
//! A session lives in a folder:
//! - `journal.jsonl`: every answer, appended and synced as it is given ([`crate::journal`]);
//! - `state.json`: cycle, phase, pool position and the current query, written atomically;
//! - `checkpoint.safetensors`: the training state after the cycle's training.
//!
//! Labels are never kept only in memory: the current labels are always the starting labels
//! with the journal replayed over them, so a crash loses at most the answer being typed, and
//! a resumed session asks only about the candidates not yet answered.

use crate::error::{ActiveError, Result};
use crate::journal::{Event, Journal};
use anomalymatch_core::atomic::write_bytes_atomic;
use anomalymatch_core::fixmatch::{FixMatch, StepMetrics, TrainData};
use anomalymatch_core::score::{anomaly_scores, embed_all};
use anomalymatch_core::{
    Answer, Augmenter, Candidate, Classifier, ImageBatch, Label, Oracle, OracleOutcome, QueryInput,
    QueryStrategy,
};
use anomalymatch_core::{LabelTable, MergeReport};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Where a session's images come from: the labelled ones by name, the unlabelled ones as a
/// rotating pool of bounded chunks (the original's `N_to_load`).
pub trait ImageStore {
    /// Decodes the named images (all must exist).
    fn load(&mut self, names: &[String]) -> anomalymatch_core::Result<ImageBatch>;

    /// The next chunk of unlabelled images from the current position, leaving out `exclude`
    /// (names already labelled); the position moves past the chunk and wraps around.
    fn next_chunk(
        &mut self,
        exclude: &HashSet<String>,
    ) -> anomalymatch_core::Result<(Vec<String>, ImageBatch)>;

    /// Current position in the unlabelled collection, for resuming.
    fn position(&self) -> usize;

    /// Moves to a position returned by [`ImageStore::position`].
    fn seek(&mut self, position: usize) -> anomalymatch_core::Result<()>;

    /// Where a person can look at the image, if it is a file.
    fn path_of(&self, name: &str) -> Option<PathBuf>;

    /// Unlabelled images found undecodable so far and left out of training and scoring.
    fn unreadable(&self) -> usize {
        0
    }
}

/// Settings of a session.
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
    /// Seed of the query strategy.
    pub seed: u64,
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
    /// Anomaly labels given during the session so far.
    pub anomalies_found: usize,
    /// Labels per class now (starting labels included): `[normal, anomaly]`.
    pub labels_per_class: [usize; 2],
    /// Expected anomalies among the scored unlabelled images, the sum of their scores. It is
    /// a fair estimate only when scores are calibrated probabilities, which FixMatch's are
    /// not guaranteed to be; read it as a rough upper-level indication.
    pub estimated_unfound: f64,
    /// Unlabelled images found undecodable so far ([`ImageStore::unreadable`]).
    pub unreadable: usize,
}

/// How a call to [`Session::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// All cycles are done.
    Finished,
    /// The oracle asked to stop; [`Session::open`] resumes later.
    Stopped,
}

/// A durable active-learning session over a trainer, an image store and a query strategy.
pub struct Session<C: Classifier, A: Augmenter, S: ImageStore> {
    dir: PathBuf,
    config: SessionConfig,
    trainer: FixMatch<C, A>,
    store: S,
    journal: Journal,
    state: SessionState,
    /// Current labels: starting labels with the journal replayed over them.
    labels: BTreeMap<String, Label>,
    /// Remembered names with the time they were remembered.
    remembered: Vec<(String, u64)>,
    anomalies_found: usize,
}

impl<C: Classifier, A: Augmenter, S: ImageStore> Session<C, A, S> {
    /// Opens the session in `dir` (created if needed), resuming from its files if present.
    ///
    /// `start_labels` are the user's labels; they are never written back, the session's
    /// answers live in its journal. The trainer is restored from the checkpoint if there is one.
    pub fn open(
        dir: &Path,
        config: SessionConfig,
        mut trainer: FixMatch<C, A>,
        mut store: S,
        start_labels: BTreeMap<String, Label>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| ActiveError::Io {
            path: dir.into(),
            source,
        })?;
        let journal_path = dir.join("journal.jsonl");
        let replay = Journal::replay(&journal_path)?;
        let mut labels = start_labels;
        let mut remembered = Vec::new();
        let mut anomalies_found = 0;
        for e in &replay.entries {
            match e.event.label() {
                Some(l) => {
                    anomalies_found += usize::from(l == Label::Anomaly);
                    labels.insert(e.name.clone(), l);
                }
                None => remembered.push((e.name.clone(), e.time)),
            }
        }
        let state = match read_state(&dir.join("state.json"))? {
            Some(s) => s,
            None => SessionState {
                cycle: 0,
                phase: Phase::Train,
                pool_position: store.position(),
            },
        };
        let checkpoint = dir.join("checkpoint.safetensors");
        if checkpoint.exists() {
            trainer.resume(&checkpoint)?;
        }
        store.seek(state.pool_position)?;
        Ok(Session {
            dir: dir.into(),
            config,
            trainer,
            store,
            journal: Journal::open(&journal_path)?,
            state,
            labels,
            remembered,
            anomalies_found,
        })
    }

    /// Current labels (starting labels plus every answer so far).
    pub fn labels(&self) -> &BTreeMap<String, Label> {
        &self.labels
    }

    /// Names on the remember list, with Unix times.
    pub fn remembered(&self) -> &[(String, u64)] {
        &self.remembered
    }

    /// Cycles completed.
    pub fn cycles_done(&self) -> usize {
        self.state.cycle
    }

    /// The trainer (its EMA model scores).
    pub fn trainer(&self) -> &FixMatch<C, A> {
        &self.trainer
    }

    /// Runs cycles until all are done or the oracle stops, reporting each finished cycle.
    pub fn run(
        &mut self,
        strategy: &dyn QueryStrategy,
        oracle: &mut dyn Oracle,
        on_step: &mut dyn FnMut(&StepMetrics),
        on_cycle: &mut dyn FnMut(&CycleReport),
    ) -> Result<SessionEnd> {
        while self.state.cycle < self.config.cycles {
            let pool_start = self.state.pool_position;
            self.store.seek(pool_start)?;
            let known: HashSet<String> = self.labels.keys().cloned().collect();
            let (names, images) = self.store.next_chunk(&known)?;
            let next_position = self.store.position();
            if matches!(self.state.phase, Phase::Train) {
                self.train(&images, on_step)?;
                let (candidates, scores) = self.query(strategy, &names, &images)?;
                self.state.phase = Phase::Label { candidates, scores };
                self.save_state()?;
            }
            let Phase::Label { candidates, scores } = self.state.phase.clone() else {
                continue;
            };
            let (outcome, report) = self.label(oracle, &candidates, &scores, &names, &images)?;
            if outcome == OracleOutcome::Quit {
                return Ok(SessionEnd::Stopped);
            }
            self.state = SessionState {
                cycle: self.state.cycle + 1,
                phase: Phase::Train,
                pool_position: next_position,
            };
            self.save_state()?;
            on_cycle(&report);
        }
        Ok(SessionEnd::Finished)
    }

    fn train(&mut self, pool: &ImageBatch, on_step: &mut dyn FnMut(&StepMetrics)) -> Result<()> {
        let (names, labels): (Vec<String>, Vec<Label>) = self
            .labels
            .iter()
            .filter(|(_, l)| l.is_known())
            .map(|(n, l)| (n.clone(), *l))
            .unzip();
        let labelled = self.store.load(&names)?;
        let data = TrainData {
            labelled: &labelled,
            labels: &labels,
            unlabelled: pool,
        };
        self.trainer.fit(&data, self.config.iterations, on_step)?;
        self.trainer
            .save_checkpoint(&self.dir.join("checkpoint.safetensors"))?;
        Ok(())
    }

    fn query(
        &self,
        strategy: &dyn QueryStrategy,
        names: &[String],
        images: &ImageBatch,
    ) -> Result<(Vec<String>, Vec<f32>)> {
        let model = self.trainer.ema();
        let scores = anomaly_scores(model, images, self.config.score_batch)?;
        let embeddings = embed_all(model, images, self.config.score_batch)?;
        let current = vec![Label::Unknown; names.len()];
        let input = QueryInput {
            scores: &scores,
            embeddings: embeddings.as_ref(),
            labels: &current,
        };
        let picked = strategy.select(
            &input,
            self.config.queries_per_cycle,
            anomalymatch_core::rng::derive_seed(self.config.seed, 0x7175, self.state.cycle as u64),
        )?;
        Ok((
            picked.iter().map(|&i| names[i].clone()).collect(),
            picked.iter().map(|&i| scores[i]).collect(),
        ))
    }

    fn label(
        &mut self,
        oracle: &mut dyn Oracle,
        candidates: &[String],
        scores: &[f32],
        pool_names: &[String],
        pool: &ImageBatch,
    ) -> Result<(OracleOutcome, CycleReport)> {
        // Ask only about candidates not yet answered (a resumed cycle).
        let pending: Vec<Candidate> = candidates
            .iter()
            .zip(scores)
            .enumerate()
            .filter(|(_, (n, _))| !self.labels.get(*n).is_some_and(|l| l.is_known()))
            .map(|(rank, (n, &score))| Candidate {
                index: rank,
                rank,
                name: n.clone(),
                score,
                path: self.store.path_of(n),
            })
            .collect();
        let cycle = self.state.cycle;
        let (journal, labels, remembered, found) = (
            &mut self.journal,
            &mut self.labels,
            &mut self.remembered,
            &mut self.anomalies_found,
        );
        let outcome = oracle.label(&pending, &mut |answer| {
            let (index, event) = match answer {
                Answer::Label { index, label } => match Event::from_label(label) {
                    Some(e) => (index, e),
                    None => return Ok(()),
                },
                Answer::Remember { index } => (index, Event::Remember),
            };
            let name = candidates.get(index).ok_or_else(|| {
                anomalymatch_core::Error::InvalidArgument(format!(
                    "oracle answered about unknown candidate {index}"
                ))
            })?;
            journal.record(cycle, name, event)?;
            match event.label() {
                Some(l) => {
                    *found += usize::from(l == Label::Anomaly);
                    labels.insert(name.clone(), l);
                }
                None => remembered.push((name.clone(), now())),
            }
            Ok(())
        })?;
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
        let still_unlabelled: Vec<usize> = pool_names
            .iter()
            .enumerate()
            .filter(|(_, n)| !self.labels.contains_key(*n))
            .map(|(i, _)| i)
            .collect();
        let estimated_unfound = if still_unlabelled.is_empty() {
            0.0
        } else {
            let rest = pool.select(&still_unlabelled)?;
            anomaly_scores(self.trainer.ema(), &rest, self.config.score_batch)?
                .iter()
                .map(|&s| f64::from(s))
                .sum()
        };
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
            anomalies_found: self.anomalies_found,
            labels_per_class: per_class,
            estimated_unfound,
            unreadable: self.store.unreadable(),
        };
        Ok((outcome, report))
    }

    /// Writes the current labels merged over the user's label file (if any) to `out`, in the
    /// original's `labeled_data.csv` format; the user's file itself is never written.
    pub fn export_labels(&self, user_file: Option<&Path>, out: &Path) -> Result<MergeReport> {
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
        let mut text = String::from("filename,remembered_at\n");
        for (name, time) in &self.remembered {
            let quoted = if name.contains([',', '"', '\n']) {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name.clone()
            };
            text.push_str(&format!("{quoted},{time}\n"));
        }
        Ok(write_bytes_atomic(out, text.as_bytes())?)
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

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
