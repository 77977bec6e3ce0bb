//! The GZ1-merger protocol of `BENCHMARKS.md`, run through the same labelling session users
//! run. Per seed: a seeded start of labelled anomalies and normals, then cycles of training,
//! scoring the whole unlabelled pool (metrics on the pool), and a simulated expert. With
//! `protocol` the expert labels the highest-scored true normals and true anomalies (it knows
//! the truth when it picks); with a query strategy's name it labels that strategy's picks, as
//! a real expert would. Each finished cycle gives one JSON line. Baselines ([`baselines`]) run
//! through the same protocol.
//!
//! Nothing measured is lost: a killed run resumes from its last finished cycle, and every
//! finished run is appended to a results file ([`record`]).

pub mod baselines;
mod isolation_forest;
pub mod record;
pub mod summary;

use crate::components;
use crate::config::{PROTOCOL, SUPERVISED, Settings};
use crate::error::{JobError, Result};
use crate::report::Report;
use anomalymatch_active::session::{CycleReport, SessionObserver};
use anomalymatch_active::{Session, SessionConfig, SimulatedExpert, by_name};
use anomalymatch_core::{FolderSource, Label, RankingMetrics, UnlabelledPool};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use record::{Results, RunFolder};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// The protocol's data: image names in class-file order and which are anomalies.
pub struct Data {
    images: PathBuf,
    names: Vec<String>,
    truth: Vec<bool>,
    by_name: HashMap<String, Label>,
}

/// The lines of every run, per seed, of one query or baseline.
#[derive(Debug)]
pub struct Runs {
    /// The query (`protocol` or a strategy) or the baseline.
    pub name: String,
    /// Per seed, the lines of its cycles.
    pub seeds: Vec<Vec<Value>>,
}

/// What a benchmark measured.
#[derive(Debug)]
pub struct Measured {
    /// The baselines' runs, in `benchmark.baselines` order.
    pub baselines: Vec<Runs>,
    /// The queries' runs, in `benchmark.queries` order.
    pub queries: Vec<Runs>,
}

/// Runs the protocol as `config` says: every seed, baseline and query. Each cycle's line goes
/// to `on_line` as it finishes (or as the results file holds it); every finished run is
/// appended to the results file, its lines naming `command`, what started the benchmark.
pub fn benchmark(
    config: &Settings,
    command: &str,
    report: &dyn Report,
    on_line: &mut dyn FnMut(&Value),
) -> Result<Measured> {
    let data = read_data(config, report)?;
    let _lock = components::prepare_output(&config.output.dir, None, report)?;
    let b = &config.benchmark;
    let results_path = b
        .results
        .clone()
        .unwrap_or_else(|| config.output.dir.join("benchmark").join("results.jsonl"));
    let mut results = Results::open(&results_path, command, report)?;
    let runs = |names: &[String]| -> Vec<Runs> {
        names
            .iter()
            .map(|name| Runs {
                name: name.clone(),
                seeds: Vec::new(),
            })
            .collect()
    };
    let mut measured = Measured {
        baselines: runs(&b.baselines),
        queries: runs(&b.queries),
    };
    let mut embeddings = None;
    for &seed in &b.seeds {
        let start = start_labels(&data, seed, b.start_anomalies, b.start_normals);
        for baseline in &mut measured.baselines {
            let name = baseline.name.as_str();
            let lines = if name == SUPERVISED {
                let run = Run::new(&baselines::supervised(config)?, seed, name, true)?;
                results.measure(&run, on_line, |on_line| {
                    run_one(&data, &start, &run, PROTOCOL, report, on_line)
                })?
            } else {
                let run = Run::new(config, seed, name, true)?;
                results.measure(&run, on_line, |on_line| {
                    // The embeddings do not depend on the seed: the backbone is the
                    // pretrained one. Computed once, and only when a baseline must run.
                    if embeddings.is_none() {
                        embeddings = Some(baselines::embed(config, &data, report)?);
                    }
                    let x = embeddings.as_ref().ok_or_else(|| {
                        JobError::Failed("baseline embeddings: not computed".into())
                    })?;
                    baselines::run(name, x, &data, &start, config, seed, on_line)
                })?
            };
            baseline.seeds.push(lines);
        }
        for query in &mut measured.queries {
            let run = Run::new(config, seed, &query.name, false)?;
            let lines = results.measure(&run, on_line, |on_line| {
                run_one(&data, &start, &run, &query.name, report, on_line)
            })?;
            query.seeds.push(lines);
        }
    }
    Ok(measured)
}

/// One run of the protocol: a seed and a query or baseline under the configuration.
pub struct Run {
    /// The configuration with the run's seed.
    config: Settings,
    /// The query, or `baseline:NAME`: names the run's folder.
    name: String,
    /// What decides its numbers ([`record::identity`]).
    identity: Value,
    /// Its id in the results file.
    id: String,
    /// The keys it changes from its preset.
    changed: BTreeMap<String, Value>,
}

impl Run {
    fn new(config: &Settings, seed: u64, name: &str, baseline: bool) -> Result<Self> {
        let mut config = config.clone();
        config.seed = seed;
        let name = if baseline {
            format!("baseline:{name}")
        } else {
            name.to_string()
        };
        let plain = config.to_config();
        let identity = record::identity(&plain)?;
        Ok(Run {
            id: record::run_id(&identity, seed, &name),
            changed: record::changed(&plain)?,
            identity,
            config,
            name,
        })
    }
}

/// Reads the class file and checks, before any work, that the protocol can run on it.
fn read_data(config: &Settings, report: &dyn Report) -> Result<Data> {
    let root = &config.benchmark.data;
    let images = root.join("images");
    let classes = config
        .truth
        .classes
        .clone()
        .unwrap_or_else(|| root.join("classes.csv"));
    if !images.is_dir() {
        return Err(JobError::Failed(format!(
            "{}: no such folder (benchmark.data must hold images/ and classes.csv)",
            images.display()
        )));
    }
    let table = components::read_classes(&classes, report)?;
    let truth_cfg = &config.truth;
    let by_name = table.labels(&truth_cfg.anomaly_class, &truth_cfg.drop_classes);
    // In file order, each file once (a file listed twice was named by `read_classes`).
    let mut seen = std::collections::HashSet::new();
    let names: Vec<String> = table
        .rows()
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| by_name.contains_key(f) && seen.insert(f.clone()))
        .collect();
    let truth: Vec<bool> = names.iter().map(|n| by_name[n] == Label::Anomaly).collect();
    let anomalies = truth.iter().filter(|&&t| t).count();
    let normals = truth.len() - anomalies;
    let b = &config.benchmark;
    if anomalies <= b.start_anomalies || normals <= b.start_normals {
        return Err(JobError::Failed(format!(
            "{}: {anomalies} image(s) of class {:?} and {normals} other(s); the protocol labels \
             {} anomalies and {} normals at the start (benchmark.start_anomalies, \
             start_normals) and needs more of each left in the pool",
            classes.display(),
            truth_cfg.anomaly_class,
            b.start_anomalies,
            b.start_normals
        )));
    }
    Ok(Data {
        images,
        names,
        truth,
        by_name,
    })
}

/// The seeded start: `anomalies` anomalies and `normals` normals drawn at random.
fn start_labels(
    data: &Data,
    seed: u64,
    anomalies: usize,
    normals: usize,
) -> BTreeMap<String, Label> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut a: Vec<usize> = (0..data.truth.len()).filter(|&i| data.truth[i]).collect();
    let mut n: Vec<usize> = (0..data.truth.len()).filter(|&i| !data.truth[i]).collect();
    a.shuffle(&mut rng);
    n.shuffle(&mut rng);
    a[..anomalies]
        .iter()
        .map(|&i| (data.names[i].clone(), Label::Anomaly))
        .chain(
            n[..normals]
                .iter()
                .map(|&i| (data.names[i].clone(), Label::Normal)),
        )
        .collect()
}

/// One seed and query: a session over the whole pool, its cycles as JSON lines. The run's
/// folder resumes a killed run from its last finished cycle.
fn run_one(
    data: &Data,
    start: &BTreeMap<String, Label>,
    run: &Run,
    query: &str,
    report: &dyn Report,
    on_line: &mut dyn FnMut(&Value),
) -> Result<Vec<Value>> {
    let started = Instant::now();
    let config = &run.config;
    let seed = config.seed;
    let dir = config.output.dir.join("benchmark").join(format!(
        "seed-{seed}-{}",
        run.name.replace([':', ',', '=', '/'], "_")
    ));
    let folder = RunFolder::open(&dir, &run.identity)?;
    let cycles = config.active.cycles;
    let resumed = !folder.lines.is_empty();
    folder.lines.iter().take(cycles).for_each(&mut *on_line);
    if folder.lines.len() >= cycles {
        return Ok(folder.lines[..cycles].to_vec());
    }
    let loader = components::loader(config)?;
    let spec = loader.spec();
    let source = FolderSource::with_names(&data.images, data.names.clone())?;
    let pool = UnlabelledPool::new(Box::new(source), loader, data.names.len())?;
    let model = components::model(config, spec)?;
    let trainer = components::trainer(config, model, spec, report.progress())?;
    let protocol = query == PROTOCOL;
    let session_config = SessionConfig {
        cycles,
        iterations: config.train.iterations,
        // The protocol's expert walks down the whole ranking until it has its quota.
        queries_per_cycle: if protocol {
            data.names.len()
        } else {
            config.active.queries_per_cycle
        },
        score_batch: config.score.batch_size,
        score_views: config.score.views,
        ensemble: config.active.ensemble,
        seed,
        show_progress: report.progress(),
    };
    let strategy = by_name(if protocol { "top" } else { query })?;
    let mut expert = SimulatedExpert::new(data.by_name.clone());
    if protocol {
        expert = expert.with_quota(config.benchmark.expert_per_class);
    }
    let mut session = Session::open(&dir, session_config, trainer, pool, start.clone())?;
    // A cycle resumed during the expert's turn: what it labelled counts against its quota.
    expert = expert.with_answered(session.answered_in(session.cycles_done()));
    let mut observer = Recorder {
        config,
        report,
        on_line,
        seed,
        query,
        baseline: run.name.strip_prefix("baseline:"),
        truth: &data.by_name,
        start_anomalies: config.benchmark.start_anomalies,
        metrics: None,
        seconds_before: folder.seconds_before(),
        folder,
        resumed,
        error: None,
        started,
    };
    session.run(strategy.as_ref(), &mut expert, &mut observer)?;
    if let Some(e) = observer.error {
        return Err(e);
    }
    Ok(observer.folder.lines)
}

/// Computes the pool metrics when the pool is scored, keeps them in the run's folder, and
/// prints and keeps a JSON line per finished cycle.
struct Recorder<'a> {
    config: &'a Settings,
    report: &'a dyn Report,
    /// Where each finished cycle's line goes.
    on_line: &'a mut dyn FnMut(&Value),
    seed: u64,
    query: &'a str,
    /// The baseline the run measures, if it is one.
    baseline: Option<&'a str>,
    truth: &'a HashMap<String, Label>,
    start_anomalies: usize,
    /// The scored cycle's metrics, until it finishes.
    metrics: Option<Value>,
    folder: RunFolder,
    /// Seconds the run spent in earlier processes.
    seconds_before: f64,
    /// Whether this process took up a run an earlier one began.
    resumed: bool,
    /// The first error of keeping the record: the session's hooks cannot return one.
    error: Option<JobError>,
    /// When this process took the run up: its seconds so far go in each line.
    started: Instant,
}

impl Recorder<'_> {
    fn keep(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

impl SessionObserver for Recorder<'_> {
    fn on_scored(&mut self, cycle: usize, names: &[String], scores: &[f32]) {
        let truth: Vec<bool> = names
            .iter()
            .map(|n| self.truth[n] == Label::Anomaly)
            .collect();
        match RankingMetrics::compute(scores, &truth) {
            Ok(m) => {
                let v = serde_json::json!({
                    "cycle": cycle, "pool": names.len(), "anomalies": m.anomalies,
                    "auroc": m.auroc, "auprc": m.average_precision,
                    "p_at_1pct": m.precision_at_1pct,
                });
                let saved = self.folder.save_scored(&v);
                self.keep(saved);
                self.metrics = Some(v);
            }
            Err(e) => self.report.warn(&format!(
                "seed {}, cycle {cycle}: {e}: the pool has no {} left; the data set is \
                 too small for this many cycles",
                self.seed, self.config.truth.anomaly_class
            )),
        }
    }

    fn on_cycle(&mut self, r: &CycleReport) {
        // A cycle scored by an earlier process (killed during the expert's turn) kept its
        // metrics in the run's folder.
        let Some(m) = self.metrics.take().or_else(|| self.folder.scored(r.cycle)) else {
            return;
        };
        let s = &r.seconds;
        let pool = m["pool"].as_f64().unwrap_or(0.0);
        let mut line = serde_json::json!({
            "impl": "anomalymatch-rs", "seed": self.seed, "cycle": r.cycle,
            "preset": self.config.preset, "size": self.config.data.size,
            "crop": self.config.data.crop, "iters": self.config.train.iterations,
            "query": self.query, "pool": m["pool"], "anomalies": m["anomalies"],
            "auroc": m["auroc"], "auprc": m["auprc"], "p_at_1pct": m["p_at_1pct"],
            "load_s": s.load, "train_s": s.train, "score_s": s.score,
            "seed_s": self.seconds_before + self.started.elapsed().as_secs_f64(),
            "resumed": self.resumed,
            // A cycle scored by an earlier process has no rate of its own.
            "score_img_per_s": (s.score > 0.0).then(|| pool / s.score),
            "found": r.anomalies_found, "queried_anomalies": r.batch_anomalies,
            "labelled_anomalies": self.start_anomalies + r.anomalies_found,
        });
        if let Some(name) = self.baseline {
            line["baseline"] = name.into();
        }
        (self.on_line)(&line);
        let kept = self.folder.finish_cycle(line);
        self.keep(kept);
    }
}
