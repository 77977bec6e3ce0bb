#![allow(clippy::unwrap_used)]
//! A session with a toy classifier and the simulated expert: several cycles, a crash in the
//! middle of labelling, a resume, and no label lost or duplicated.

use anomalymatch_active::journal::{Event, Journal};
use anomalymatch_active::session::{
    CycleReport, Session, SessionConfig, SessionEnd, SessionObserver,
};
use anomalymatch_active::{SimulatedExpert, by_name};
use anomalymatch_core::toy::{MaxMeanClassifier, MemorySource, toy_data, toy_images, toy_trainer};
use anomalymatch_core::{
    Answer, Candidate, Check, Classifier, IdentityAugmenter, Label, LabelTable, Oracle,
    OracleOutcome, ScoreOptions, Scorer, TrainConfig, UnlabelledPool, Views,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Gives `budget` answers, then dies the way a killed process does: no clean-up at all.
struct Crashing {
    inner: SimulatedExpert,
    budget: usize,
}

impl Oracle for Crashing {
    fn label(
        &mut self,
        candidates: &[Candidate],
        record: &mut dyn FnMut(Answer) -> anomalymatch_core::Result<()>,
    ) -> anomalymatch_core::Result<OracleOutcome> {
        let budget = &mut self.budget;
        self.inner.label(candidates, &mut |a| {
            if *budget == 0 {
                panic!("simulated crash");
            }
            *budget -= 1;
            record(a)
        })
    }
}

fn session(
    dir: &std::path::Path,
    start: &BTreeMap<String, Label>,
) -> Session<MaxMeanClassifier, IdentityAugmenter> {
    session_with(dir, start, 1)
}

/// A session over the toy images scoring with an ensemble of `ensemble` EMA models.
fn session_with(
    dir: &std::path::Path,
    start: &BTreeMap<String, Label>,
    ensemble: usize,
) -> Session<MaxMeanClassifier, IdentityAugmenter> {
    let (images, _) = toy_images(120, 8, 10, 5);
    let names: Vec<String> = (0..120).map(|i| format!("img{i:03}.png")).collect();
    let loader = toy_data(8).check().unwrap().build(()).unwrap();
    let pool = UnlabelledPool::new(
        Box::new(MemorySource::new(&names, &images).unwrap()),
        loader,
        60,
    )
    .unwrap();
    let train = TrainConfig {
        lr: 0.1,
        ..TrainConfig::default()
    };
    let trainer = toy_trainer(train, 8, 9).unwrap();
    let config = SessionConfig {
        cycles: 4,
        iterations: 8,
        queries_per_cycle: 5,
        score_batch: 64,
        score_views: Views::Single,
        ensemble,
        seed: 1,
        show_progress: false,
    };
    Session::open(dir, config, trainer, pool, start.clone()).unwrap()
}

/// The toy images' labels in order, and by name.
fn truth() -> (Vec<Label>, HashMap<String, Label>) {
    let (_, labels) = toy_images(120, 8, 10, 5);
    let by_name = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| (format!("img{i:03}.png"), l))
        .collect();
    (labels, by_name)
}

/// Keeps every cycle report.
#[derive(Default)]
struct Reports(Vec<CycleReport>);

impl SessionObserver for Reports {
    fn on_cycle(&mut self, report: &CycleReport) {
        self.0.push(report.clone());
    }
}

#[test]
fn crash_mid_cycle_then_resume_loses_and_duplicates_nothing() {
    let (truth_labels, truth) = truth();
    // Start: 2 anomalies and 6 normals.
    let start: BTreeMap<String, Label> = [0usize, 10, 1, 2, 3, 4, 5, 6]
        .iter()
        .map(|&i| (format!("img{i:03}.png"), truth_labels[i]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let top = by_name("top").unwrap();

    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = session(dir.path(), &start);
        let mut oracle = Crashing {
            inner: SimulatedExpert::new(truth.clone()),
            budget: 7,
        };
        let _ = s.run(top.as_ref(), &mut oracle, &mut ());
    }));
    assert!(
        crashed.is_err(),
        "the oracle should have crashed the session"
    );
    let journal = dir.path().join("journal.jsonl");
    assert_eq!(Journal::replay(&journal).unwrap().entries.len(), 7);

    let mut s = session(dir.path(), &start);
    assert_eq!(s.cycles_done(), 1, "cycle 1 finished before the crash");
    assert_eq!(s.labels().len(), start.len() + 7);
    assert_eq!(
        s.labelled().len(),
        start.len() + 7,
        "answers before the crash are trained on"
    );
    let mut reports = Reports::default();
    let end = s
        .run(
            top.as_ref(),
            &mut SimulatedExpert::new(truth.clone()),
            &mut reports,
        )
        .unwrap();
    let reports = reports.0;
    assert_eq!(end, SessionEnd::Finished);
    assert_eq!(s.cycles_done(), 4);
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[0].cycle, 2);
    assert!(reports.iter().all(|r| r.queried == 5));

    let entries = Journal::replay(&journal).unwrap().entries;
    assert_eq!(entries.len(), 20, "4 cycles x 5 answers");
    let unique: HashSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(unique.len(), 20, "no image labelled twice");
    for e in &entries {
        assert_eq!(Some(truth[&e.name]), e.event.label(), "{}", e.name);
        assert!(
            !start.contains_key(&e.name),
            "starting labels are never re-asked"
        );
        assert_eq!(s.labels()[&e.name], truth[&e.name]);
    }
    assert_eq!(s.labels().len(), start.len() + 20);
    assert_eq!(
        s.labelled().len(),
        start.len() + 20,
        "every answer joined the training set"
    );
    for (name, label) in s.labelled().names().iter().zip(s.labelled().labels()) {
        assert_eq!(*label, truth[name], "{name}");
    }
    let found = entries
        .iter()
        .filter(|e| e.event.label() == Some(Label::Anomaly))
        .count();
    assert_eq!(reports.last().unwrap().anomalies_found, found);
    // The 10 unlabelled anomalies are easy for the toy model: top-score querying finds most.
    assert!(found >= 8, "found {found} of 10 anomalies");
    assert_eq!(
        reports
            .last()
            .unwrap()
            .labels_per_class
            .iter()
            .sum::<usize>(),
        start.len() + 20
    );

    // Export over the user's file: the file itself is untouched, its extra column survives.
    let user = dir.path().join("labeled_data.csv");
    let mut text = String::from("filename,label,note\n");
    for (n, l) in &start {
        text.push_str(&format!("{n},{l},from user\n"));
    }
    std::fs::write(&user, &text).unwrap();
    let out = dir.path().join("export.csv");
    let merge = s.export_labels(Some(&user), &out).unwrap();
    assert_eq!((merge.added, merge.changed), (20, 0));
    assert_eq!(std::fs::read_to_string(&user).unwrap(), text);
    let exported = LabelTable::read(&out).unwrap();
    assert_eq!(exported.len(), start.len() + 20);
    assert_eq!(exported.row("img001.png").unwrap().extra, ["from user"]);
}

#[test]
fn a_crash_between_the_first_checkpoint_and_state_does_not_train_the_cycle_twice() {
    let (truth_labels, truth) = truth();
    let start: BTreeMap<String, Label> = [0usize, 10, 1, 2]
        .iter()
        .map(|&i| (format!("img{i:03}.png"), truth_labels[i]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    {
        // The first cycle's training and checkpoint, then a kill before state.json is written.
        let mut s = session(dir.path(), &start);
        s.load_window().unwrap();
        s.train_span(0..8, 8, &mut |_| {}).unwrap();
        s.save_checkpoint().unwrap();
    }
    assert!(!dir.path().join("state.json").exists());
    let mut s = session(dir.path(), &start);
    assert_eq!(s.trainer().iteration(), 8);
    assert_eq!(s.state().cycle_start_iteration, 0);
    let top = by_name("top").unwrap();
    s.run(top.as_ref(), &mut SimulatedExpert::new(truth), &mut ())
        .unwrap();
    assert_eq!(
        s.trainer().iteration(),
        4 * 8,
        "4 cycles of 8 iterations, the first not repeated"
    );
}

#[test]
fn an_ensemble_averages_the_models_that_ended_the_previous_cycles() {
    let (truth_labels, truth) = truth();
    let start: BTreeMap<String, Label> = [0usize, 10, 1, 2, 3, 4, 5, 6]
        .iter()
        .map(|&i| (format!("img{i:03}.png"), truth_labels[i]))
        .collect();
    let top = by_name("top").unwrap();
    let snapshots = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ema-step-"))
            .collect();
        v.sort();
        v
    };
    let alone = tempfile::tempdir().unwrap();
    let mut s = session_with(alone.path(), &start, 1);
    s.run(
        top.as_ref(),
        &mut SimulatedExpert::new(truth.clone()),
        &mut (),
    )
    .unwrap();
    assert!(snapshots(alone.path()).is_empty());

    let dir = tempfile::tempdir().unwrap();
    let mut s = session_with(dir.path(), &start, 2);
    s.run(top.as_ref(), &mut SimulatedExpert::new(truth), &mut ())
        .unwrap();
    // 4 cycles of 8 steps: the last two cycles' models are kept, older ones removed.
    assert_eq!(
        snapshots(dir.path()),
        ["ema-step-24.safetensors", "ema-step-32.safetensors"]
    );
    // The scores are the mean of the current EMA model's and the previous cycle's.
    let images = &s.window().images;
    let options = ScoreOptions {
        batch_size: 64,
        views: Views::Single,
        embeddings: false,
        progress: false,
    };
    let current = Scorer::new(s.trainer().ema(), options)
        .scores(images)
        .unwrap();
    let previous = s.trainer().ema().duplicate().unwrap();
    previous
        .load(&dir.path().join("ema-step-24.safetensors"))
        .unwrap();
    let before = Scorer::new(&previous, options).scores(images).unwrap();
    assert_ne!(current, before, "the two models should differ");
    let got = s.score_window().unwrap();
    for ((g, c), b) in got.iter().zip(&current).zip(&before) {
        assert!((g - (c + b) / 2.0).abs() < 1e-6, "{g} {c} {b}");
    }
}

#[test]
fn repeated_answers_count_once_and_a_session_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let start = BTreeMap::new();
    {
        let mut s = session(dir.path(), &start);
        let second = std::panic::catch_unwind(|| session(dir.path(), &BTreeMap::new()));
        assert!(second.is_err(), "a second session opened the same folder");
        for _ in 0..5 {
            s.answer("img001.png", Event::Anomaly).unwrap();
        }
        assert_eq!(s.anomalies_found(), 1);
        s.answer("img001.png", Event::Normal).unwrap();
        assert_eq!(s.anomalies_found(), 0, "a corrected answer is not a find");
        for _ in 0..4 {
            s.answer("img002.png", Event::Remember).unwrap();
        }
        assert_eq!(s.remembered().len(), 1);
    }
    let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
    assert_eq!(journal.matches("remember").count(), 1, "{journal}");
    let s = session(dir.path(), &start);
    assert_eq!((s.anomalies_found(), s.remembered().len()), (0, 1));
}
