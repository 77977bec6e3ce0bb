//! `anomalymatch benchmark`: the GZ1-merger protocol of `BENCHMARKS.md`, run through the same
//! labelling session users run. Per seed: a seeded start of labelled anomalies and normals,
//! then cycles of training, scoring the whole unlabelled pool (metrics on the pool), and a
//! simulated expert. With `protocol` the expert labels the highest-scored true normals and
//! true anomalies (it knows the truth when it picks); with a query strategy's name it labels
//! that strategy's picks, as a real expert would. One JSON line per cycle goes to stdout, then
//! a summary table per query. Baselines on frozen embeddings (`--baseline`) run through the
//! same protocol and get tables of their own.

pub mod baselines;
mod isolation_forest;

use crate::assemble;
use crate::cli::{Common, CyclesFlag, Flags, TrainingFlags, int, path, push, text};
use crate::config::{Config, Override, PROTOCOL};
use crate::error::{AppError, Result};
use anomalymatch_active::session::{CycleReport, SessionObserver};
use anomalymatch_active::{Session, SessionConfig, SimulatedExpert, by_name};
use anomalymatch_core::{ClassTable, FolderSource, Label, RankingMetrics, UnlabelledPool};
use clap::Args;
use rand::SeedableRng;
use rand::seq::SliceRandom;
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
    /// A baseline on frozen embeddings, `probe`, `knn` or `iforest`; repeat for more
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
    assemble::prepare_output(&config.output.dir, quiet)?;
    let b = &config.benchmark;
    let mut summary: Vec<Vec<Vec<serde_json::Value>>> = vec![Vec::new(); b.queries.len()];
    let mut baseline_summary: Vec<Vec<Vec<serde_json::Value>>> =
        vec![Vec::new(); b.baselines.len()];
    // The embeddings do not depend on the seed: the backbone is the pretrained one.
    let embeddings = if b.baselines.is_empty() {
        None
    } else {
        Some(baselines::embed(config, &data, quiet)?)
    };
    for &seed in &b.seeds {
        let start = start_labels(&data, seed, b.start_anomalies, b.start_normals);
        if let Some(x) = &embeddings {
            for (k, name) in b.baselines.iter().enumerate() {
                let lines = baselines::run(name, x, &data, &start, config, seed)?;
                baseline_summary[k].push(lines);
            }
        }
        for (q, query) in b.queries.iter().enumerate() {
            let lines = run_one(config, &data, &start, seed, query, quiet)?;
            summary[q].push(lines);
        }
    }
    for (name, runs) in b.baselines.iter().zip(&baseline_summary) {
        println!("\n--baseline {name}");
        print_summary(runs);
    }
    for (query, runs) in b.queries.iter().zip(&summary) {
        println!("\n--query {query}");
        print_summary(runs);
    }
    Ok(())
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
    let table = ClassTable::read(&classes)?;
    let truth_cfg = &config.truth;
    let by_name = table.labels(&truth_cfg.anomaly_class, &truth_cfg.drop_classes);
    let names: Vec<String> = table
        .rows()
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| by_name.contains_key(f))
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

/// One seed and query: a fresh session over the whole pool, its cycles as JSON lines.
fn run_one(
    config: &Config,
    data: &Data,
    start: &BTreeMap<String, Label>,
    seed: u64,
    query: &str,
    quiet: bool,
) -> Result<Vec<serde_json::Value>> {
    let started = Instant::now();
    let dir = config.output.dir.join("benchmark").join(format!(
        "seed-{seed}-{}",
        query.replace([':', ',', '=', '/'], "_")
    ));
    // A benchmark run starts afresh; an old one in the same place is replaced.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| AppError::Failed(format!("{}: {e}", dir.display())))?;
    }
    let loader = assemble::loader(config)?;
    let spec = loader.spec();
    let source = FolderSource::with_names(&data.images, data.names.clone())?;
    let pool = UnlabelledPool::new(Box::new(source), loader, data.names.len())?;
    let mut run_config = config.clone();
    run_config.seed = seed;
    let model = assemble::model(&run_config, spec)?;
    let trainer = assemble::trainer(&run_config, model, spec, quiet)?;
    let protocol = query == PROTOCOL;
    let session_config = SessionConfig {
        cycles: config.active.cycles,
        iterations: config.train.iterations,
        // The protocol's expert walks down the whole ranking until it has its quota.
        queries_per_cycle: if protocol {
            data.names.len()
        } else {
            config.active.queries_per_cycle
        },
        score_batch: config.score.batch_size,
        score_views: config.score.views,
        seed,
        show_progress: !quiet,
    };
    let strategy = by_name(if protocol { "top" } else { query })?;
    let mut expert = SimulatedExpert::new(data.by_name.clone());
    if protocol {
        expert = expert.with_quota(config.benchmark.expert_per_class);
    }
    let mut session = Session::open(&dir, session_config, trainer, pool, start.clone())?;
    let mut observer = Recorder {
        config,
        seed,
        query,
        truth: &data.by_name,
        start_anomalies: config.benchmark.start_anomalies,
        metrics: None,
        lines: Vec::new(),
        started,
    };
    session.run(strategy.as_ref(), &mut expert, &mut observer)?;
    Ok(observer.lines)
}

/// Computes the pool metrics when the pool is scored and prints a JSON line per cycle.
struct Recorder<'a> {
    config: &'a Config,
    seed: u64,
    query: &'a str,
    truth: &'a HashMap<String, Label>,
    start_anomalies: usize,
    metrics: Option<(usize, Result<RankingMetrics, String>)>,
    lines: Vec<serde_json::Value>,
    /// When the seed's run began: its seconds so far go in each line.
    started: Instant,
}

impl SessionObserver for Recorder<'_> {
    fn on_scored(&mut self, _cycle: usize, names: &[String], scores: &[f32]) {
        let truth: Vec<bool> = names
            .iter()
            .map(|n| self.truth[n] == Label::Anomaly)
            .collect();
        let m = RankingMetrics::compute(scores, &truth).map_err(|e| {
            format!(
                "{e}: the pool has no {} left; the data set is too small for this many cycles",
                self.config.truth.anomaly_class
            )
        });
        self.metrics = Some((names.len(), m));
    }

    fn on_cycle(&mut self, r: &CycleReport) {
        let Some((pool, metrics)) = self.metrics.take() else {
            return;
        };
        let m = match metrics {
            Ok(m) => m,
            Err(e) => {
                eprintln!("warning: seed {}, cycle {}: {e}", self.seed, r.cycle);
                return;
            }
        };
        let s = &r.seconds;
        let line = serde_json::json!({
            "impl": "anomalymatch-rs", "seed": self.seed, "cycle": r.cycle,
            "preset": self.config.preset, "size": self.config.data.size,
            "crop": self.config.data.crop, "iters": self.config.train.iterations,
            "query": self.query, "pool": pool, "anomalies": m.anomalies,
            "auroc": m.auroc, "auprc": m.average_precision, "p_at_1pct": m.precision_at_1pct,
            "load_s": s.load, "train_s": s.train, "score_s": s.score,
            "seed_s": self.started.elapsed().as_secs_f64(),
            "score_img_per_s": pool as f64 / s.score.max(1e-9),
            "found": r.anomalies_found, "queried_anomalies": r.batch_anomalies,
            "labelled_anomalies": self.start_anomalies + r.anomalies_found,
        });
        println!("{line}");
        self.lines.push(line);
    }
}

fn print_summary(runs: &[Vec<serde_json::Value>]) {
    let cycles = runs.iter().map(Vec::len).max().unwrap_or(0);
    println!(
        "\n| cycle | AUROC | AUPRC | precision top 1% | anomalies found | train s | score s | seconds \
         so far | runs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
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
        println!(
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
