//! `anomalymatch benchmark`: the GZ1-merger protocol of `BENCHMARKS.md`, run through the same
//! labelling session users run. Per seed: a seeded start of labelled anomalies and normals,
//! then cycles of training, scoring the whole unlabelled pool (metrics on the pool), and a
//! simulated expert. With `protocol` the expert labels the highest-scored true normals and
//! true anomalies (it knows the truth when it picks); with a query strategy's name it labels
//! that strategy's picks, as a real expert would. One JSON line per cycle goes to stdout, then
//! a summary table per query. Baselines on frozen embeddings (`--baseline`) run through the
//! same protocol and get tables of their own.
//!
//! Nothing measured is lost: a killed run resumes from its last finished cycle, and every
//! finished run is appended to a results file that `anomalymatch report` makes tables of
//! ([`record`]).

use crate::stdout::{out, warning};
pub mod baselines;
mod isolation_forest;
pub mod record;

use crate::assemble;
use crate::cli::{Common, CyclesFlag, Flags, TrainingFlags, int, path, push, text};
use crate::config::{Config, Override, PROTOCOL, SUPERVISED};
use crate::error::{AppError, Result};
use anomalymatch_active::session::{CycleReport, SessionObserver};
use anomalymatch_active::{Session, SessionConfig, SimulatedExpert, by_name};
use anomalymatch_core::{FolderSource, Label, RankingMetrics, UnlabelledPool};
use clap::Args;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use record::{Results, RunFolder};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `benchmark`.
#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Folder with images/ and classes.csv [key: benchmark.data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Seeds, e.g. 42,43,44 [key: benchmark.seeds].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// `protocol` or a query strategy; repeat to compare [key: benchmark.queries].
    #[arg(long, value_name = "QUERY")]
    pub query: Vec<String>,
    /// A baseline: `probe`, `knn` or `iforest` on frozen embeddings, or `supervised` (the
    /// network trained without the unlabelled images); repeat for more
    /// [key: benchmark.baselines].
    #[arg(long, value_name = "NAME")]
    pub baseline: Vec<String>,
    /// Size and iterations per cycle.
    #[command(flatten)]
    pub training: TrainingFlags,
    /// Cycles per run.
    #[command(flatten)]
    pub cycles: CyclesFlag,
    /// The anomaly class [key: truth.anomaly_class].
    #[arg(long, value_name = "CLASS")]
    pub anomaly_class: Option<String>,
    /// File each finished run appends its lines to [key: benchmark.results; default:
    /// OUT/benchmark/results.jsonl].
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
}

impl Flags for BenchmarkArgs {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(
            all,
            "benchmark.data",
            self.data.as_deref().map(path),
            "--data",
        );
        let list = |v: Vec<toml::Value>| (!v.is_empty()).then_some(toml::Value::Array(v));
        push(
            all,
            "benchmark.seeds",
            list(self.seeds.iter().map(|&s| int(s)).collect()),
            "--seeds",
        );
        push(
            all,
            "benchmark.queries",
            list(self.query.iter().map(|q| text(q)).collect()),
            "--query",
        );
        push(
            all,
            "benchmark.baselines",
            list(self.baseline.iter().map(|q| text(q)).collect()),
            "--baseline",
        );
        self.training.overrides(all);
        self.cycles.overrides(all);
        push(
            all,
            "truth.anomaly_class",
            self.anomaly_class.as_deref().map(text),
            "--anomaly-class",
        );
        push(
            all,
            "benchmark.results",
            self.results.as_deref().map(path),
            "--results",
        );
    }
}

/// Runs `benchmark`.
pub fn run(args: BenchmarkArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args])?;
    benchmark(&config, args.common.quiet)
}

/// The protocol's data: image names in class-file order and which are anomalies.
pub struct Data {
    images: PathBuf,
    names: Vec<String>,
    truth: Vec<bool>,
    by_name: HashMap<String, Label>,
}

fn benchmark(config: &Config, quiet: bool) -> Result<()> {
    let data = read_data(config)?;
    let _lock = assemble::prepare_output(&config.output.dir, None, quiet)?;
    let b = &config.benchmark;
    let results_path = b
        .results
        .clone()
        .unwrap_or_else(|| config.output.dir.join("benchmark").join("results.jsonl"));
    let mut results = Results::open(&results_path)?;
    let mut summary: Vec<Vec<Vec<serde_json::Value>>> = vec![Vec::new(); b.queries.len()];
    let mut baseline_summary: Vec<Vec<Vec<serde_json::Value>>> =
        vec![Vec::new(); b.baselines.len()];
    let mut embeddings = None;
    for &seed in &b.seeds {
        let start = start_labels(&data, seed, b.start_anomalies, b.start_normals);
        for (k, name) in b.baselines.iter().enumerate() {
            let lines = if name == SUPERVISED {
                let run = Run::new(&baselines::supervised(config), seed, name, true)?;
                results.measure(&run, || run_one(&data, &start, &run, PROTOCOL, quiet))?
            } else {
                let run = Run::new(config, seed, name, true)?;
                results.measure(&run, || {
                    // The embeddings do not depend on the seed: the backbone is the
                    // pretrained one. Computed once, and only when a baseline must run.
                    if embeddings.is_none() {
                        embeddings = Some(baselines::embed(config, &data, quiet)?);
                    }
                    let x = embeddings.as_ref().ok_or_else(|| {
                        AppError::Failed("baseline embeddings: not computed".into())
                    })?;
                    baselines::run(name, x, &data, &start, config, seed)
                })?
            };
            baseline_summary[k].push(lines);
        }
        for (q, query) in b.queries.iter().enumerate() {
            let run = Run::new(config, seed, query, false)?;
            summary[q].push(results.measure(&run, || run_one(&data, &start, &run, query, quiet))?);
        }
    }
    for (name, runs) in b.baselines.iter().zip(&baseline_summary) {
        out!("\n--baseline {name}");
        print_summary(runs);
    }
    for (query, runs) in b.queries.iter().zip(&summary) {
        out!("\n--query {query}");
        print_summary(runs);
    }
    Ok(())
}

/// One run of the protocol: a seed and a query or baseline under the configuration.
pub struct Run {
    /// The configuration with the run's seed.
    config: Config,
    /// The query, or `baseline:NAME`: names the run's folder.
    name: String,
    /// What decides its numbers ([`record::identity`]).
    identity: serde_json::Value,
    /// Its id in the results file.
    id: String,
    /// The keys it changes from its preset.
    changed: BTreeMap<String, serde_json::Value>,
}

impl Run {
    fn new(config: &Config, seed: u64, name: &str, baseline: bool) -> Result<Self> {
        let mut config = config.clone();
        config.seed = seed;
        let name = if baseline {
            format!("baseline:{name}")
        } else {
            name.to_string()
        };
        let identity = record::identity(&config)?;
        Ok(Run {
            id: record::run_id(&identity, seed, &name),
            changed: record::changed(&config)?,
            identity,
            config,
            name,
        })
    }
}

/// Reads the class file and checks, before any work, that the protocol can run on it.
fn read_data(config: &Config) -> Result<Data> {
    let root = &config.benchmark.data;
    let images = root.join("images");
    let classes = config
        .truth
        .classes
        .clone()
        .unwrap_or_else(|| root.join("classes.csv"));
    if !images.is_dir() {
        return Err(AppError::Failed(format!(
            "{}: no such folder (benchmark.data must hold images/ and classes.csv)",
            images.display()
        )));
    }
    let table = assemble::read_classes(&classes)?;
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
        return Err(AppError::Failed(format!(
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
    quiet: bool,
) -> Result<Vec<serde_json::Value>> {
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
    for l in folder.lines.iter().take(cycles) {
        out!("{l}");
    }
    if folder.lines.len() >= cycles {
        return Ok(folder.lines[..cycles].to_vec());
    }
    let loader = assemble::loader(config)?;
    let spec = loader.spec();
    let source = FolderSource::with_names(&data.images, data.names.clone())?;
    let pool = UnlabelledPool::new(Box::new(source), loader, data.names.len())?;
    let model = assemble::model(config, spec)?;
    let trainer = assemble::trainer(config, model, spec, quiet)?;
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
        show_progress: !quiet,
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
    config: &'a Config,
    seed: u64,
    query: &'a str,
    /// The baseline the run measures, if it is one.
    baseline: Option<&'a str>,
    truth: &'a HashMap<String, Label>,
    start_anomalies: usize,
    /// The scored cycle's metrics, until it finishes.
    metrics: Option<serde_json::Value>,
    folder: RunFolder,
    /// Seconds the run spent in earlier processes.
    seconds_before: f64,
    /// Whether this process took up a run an earlier one began.
    resumed: bool,
    /// The first error of keeping the record: the session's hooks cannot return one.
    error: Option<AppError>,
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
            Err(e) => warning!(
                "seed {}, cycle {cycle}: {e}: the pool has no {} left; the data set is \
                 too small for this many cycles",
                self.seed,
                self.config.truth.anomaly_class
            ),
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
        out!("{line}");
        let kept = self.folder.finish_cycle(line);
        self.keep(kept);
    }
}

fn print_summary(runs: &[Vec<serde_json::Value>]) {
    let cycles = runs.iter().map(Vec::len).max().unwrap_or(0);
    out!(
        "\n| cycle | AUROC | AUPRC | precision top 1% | anomalies found | train s | score s | seconds \
         so far | runs |"
    );
    out!("|---|---|---|---|---|---|---|---|---|");
    for c in 0..cycles {
        let values = |key: &str| -> Vec<f64> {
            runs.iter()
                .filter_map(|r| r.get(c)?.get(key)?.as_f64())
                .collect()
        };
        let stat = |key: &str| {
            let v = values(key);
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let sd =
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
            format!("{mean:.3} ± {sd:.3}")
        };
        out!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c + 1,
            stat("auroc"),
            stat("auprc"),
            stat("p_at_1pct"),
            stat("found"),
            stat("train_s"),
            stat("score_s"),
            stat("seed_s"),
            values("auroc").len()
        );
    }
}
