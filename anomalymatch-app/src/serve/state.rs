//! What the server shares between requests: the session (behind one lock, so that answers from
//! several tabs are journalled one after another and the last one wins), the scores of the
//! current candidates, the display images, and the progress of the one background job that
//! may run at a time.

use super::images::{Display, lock};
use anomalymatch_core::Label;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

/// The session a server drives, as every job opens it.
pub type ServedSession = anomalymatch_jobs::components::LabelSession;

/// The session and what the page shows of it.
pub struct Served {
    /// The labelling session (journal, labels, trainer, pool).
    pub session: ServedSession,
    /// Scores by name of the current candidates, from the last scoring.
    pub scores: HashMap<String, f32>,
    /// Candidates of a finished `score` run (name, score), when the page shows them instead of
    /// the pool's window.
    pub from_file: Option<Vec<(String, f32)>>,
}

/// One candidate as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Image name.
    pub name: String,
    /// Anomaly score, when scored.
    pub score: Option<f32>,
    /// `anomaly` or `normal` when labelled.
    pub label: Option<&'static str>,
    /// On the remember list.
    pub remembered: bool,
}

/// Label counts shown on the page.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Images labelled normal (starting labels included).
    pub normal: usize,
    /// Images labelled anomaly (starting labels included).
    pub anomaly: usize,
    /// Names on the remember list.
    pub remembered: usize,
}

impl Served {
    /// The current candidates, unsorted: the file's, or the window's plus those answered in
    /// this cycle (which have left the window for the labelled set).
    pub fn items(&self) -> Vec<Item> {
        let remembered = self.remembered_names();
        let names: Vec<(&str, Option<f32>)> = match &self.from_file {
            Some(list) => list.iter().map(|(n, s)| (n.as_str(), Some(*s))).collect(),
            None => {
                let window = &self.session.window().names;
                let in_window: HashSet<&str> = window.iter().map(String::as_str).collect();
                let mut answered = self.session.answered_in(self.session.state().cycle);
                answered.retain(|n| !in_window.contains(n));
                answered.sort_unstable();
                window
                    .iter()
                    .map(String::as_str)
                    .chain(answered)
                    .map(|n| (n, self.scores.get(n).copied()))
                    .collect()
            }
        };
        let labels = self.session.labels();
        names
            .into_iter()
            .map(|(name, score)| Item {
                name: name.to_string(),
                score,
                label: labels
                    .get(name)
                    .filter(|l| l.is_known())
                    .map(|l| l.as_str()),
                remembered: remembered.contains(name),
            })
            .collect()
    }

    /// The names on the remember list (a name remembered twice counts once).
    fn remembered_names(&self) -> HashSet<&str> {
        self.session
            .remembered()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Whether `name` is one of the session's images the page may show and label.
    pub fn knows(&self, name: &str) -> bool {
        self.session.window().names.iter().any(|n| n == name)
            || self.session.labels().contains_key(name)
            || self.scores.contains_key(name)
            || self
                .from_file
                .as_ref()
                .is_some_and(|l| l.iter().any(|(n, _)| n == name))
    }

    /// Counts of labels and remembered names.
    pub fn counts(&self) -> Counts {
        let labels = self.session.labels();
        let count = |l| labels.values().filter(|&&x| x == l).count();
        let remembered = self.remembered_names();
        Counts {
            normal: count(Label::Normal),
            anomaly: count(Label::Anomaly),
            remembered: remembered.len(),
        }
    }
}

/// The progress of the current or last background job, sent to the page as events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// `load`, `train`, `score` or `next`; empty before the first job.
    pub job: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Steps (iterations, images) done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// Last training loss.
    pub loss: Option<f32>,
    /// Last share of unlabelled images above the pseudo-label cutoff.
    pub mask_ratio: Option<f32>,
    /// Steps per second.
    pub rate: Option<f64>,
    /// Seconds left at that rate.
    pub eta_s: Option<f64>,
    /// A line for the page (the error of a failed job).
    pub message: String,
}

/// Everything the request handlers share.
pub struct Shared {
    /// The access token.
    pub token: String,
    /// The port served (names the token's cookie).
    pub port: u16,
    /// Served on a loopback address only: requests must name the loopback as their host.
    pub local_only: bool,
    /// The session, locked for each answer and each training step.
    pub served: Mutex<Served>,
    /// The display images.
    pub display: Display,
    /// The current job's progress; the event stream watches it.
    pub progress: watch::Sender<Progress>,
    /// True while a background job runs (one at a time).
    pub busy: AtomicBool,
    /// The session folder (exports and saved models go here).
    pub dir: PathBuf,
    /// The user's label file, merged under the session's labels on export (never written).
    pub user_labels: Option<PathBuf>,
    /// The configured query strategy (`active.query`), the page's default strategy sort.
    pub query: String,
    /// How the page's jobs score: the `[score]` section's batch and views.
    pub score: anomalymatch_core::ScoreOptions,
}

impl Shared {
    /// The session, locked.
    pub fn served(&self) -> MutexGuard<'_, Served> {
        lock(&self.served)
    }

    /// The session alone, locked: what the library's session jobs drive.
    pub fn session(&self) -> SessionGuard<'_> {
        SessionGuard(self.served())
    }
}

/// The served lock, seen as the session it guards.
pub struct SessionGuard<'a>(MutexGuard<'a, Served>);

impl Deref for SessionGuard<'_> {
    type Target = ServedSession;
    fn deref(&self) -> &ServedSession {
        &self.0.session
    }
}

impl DerefMut for SessionGuard<'_> {
    fn deref_mut(&mut self) -> &mut ServedSession {
        &mut self.0.session
    }
}
