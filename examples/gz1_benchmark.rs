//! The GZ1-merger discovery protocol of `BENCHMARKS.md`: from 10 labelled mergers and 90
//! labelled normals, three cycles of FixMatch training on a pretrained EfficientNet-Lite0, each
//! followed by scoring the unlabelled pool (metrics on the pool) and a simulated expert who
//! labels the 10 highest-scored true normals and 10 highest-scored true anomalies.
//!
//! ```sh
//! cargo run --release --example gz1_benchmark -- [--seeds 42,43,44] [--size 96] [--iters 100]
//!     [--cycles 3] [--data DIR] [--anomaly-class merger] [--drop-class uncertain]
//!     [--query protocol|top|uncertainty|mix:top=0.7,uncertainty=0.2,diverse=0.1|...]...
//!     [--quiet]
//! ```
//!
//! `DIR` holds `images/` and `classes.csv` with `filename` and `class_name` columns. With
//! `--query protocol` (the default) the expert follows the protocol above, which knows the truth
//! when it picks; with a query strategy's name (`anomalymatch::active::strategy::by_name`) the
//! expert labels the strategy's 20 picks, as a real one would. `--query` may be repeated to
//! compare strategies: their runs share the first cycle's training (identical for all, so
//! its `train_s` repeats) and branch from its checkpoint. One JSON line per cycle goes to
//! stdout, then a summary per strategy; `found` counts the anomalies the expert has labelled
//! so far, including that cycle's query.

#![allow(clippy::unwrap_used)]

use anomalymatch::active::strategy::by_name;
use anomalymatch::augment::FixMatchAugmenter;
use anomalymatch::core::fixmatch::{FixMatch, TrainData};
use anomalymatch::core::score::embed_all;
use anomalymatch::core::{
    ClassTable, Config, Embeddings, FolderSource, ImageBatch, Label, LoaderConfig, QueryInput,
    RankingMetrics, Validate, anomaly_scores,
};
use anomalymatch::models::pretrained_lite0;
use candle_core::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

/// `--query` value for the BENCHMARKS.md expert: the 10 highest-scored true normals and the 10
/// highest-scored true anomalies.
const PROTOCOL: &str = "protocol";

struct Args {
    seeds: Vec<u64>,
    size: usize,
    iters: usize,
    cycles: usize,
    data: PathBuf,
    anomaly: String,
    drop: String,
    queries: Vec<String>,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seeds: vec![42, 43, 44],
        size: 96,
        iters: 100,
        cycles: 3,
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/gz1-sdss"),
        anomaly: "merger".into(),
        drop: "uncertain".into(),
        queries: Vec::new(),
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad number {v:?}"))
        };
        match flag.as_str() {
            "--seeds" => a.seeds = value()?.split(',').map(num).collect::<Result<_, _>>()?,
            "--size" => a.size = num(&value()?)? as usize,
            "--iters" => a.iters = num(&value()?)? as usize,
            "--cycles" => a.cycles = num(&value()?)? as usize,
            "--data" => a.data = value()?.into(),
            "--anomaly-class" => a.anomaly = value()?,
            "--drop-class" => a.drop = value()?,
            "--query" => a.queries.push(value()?),
            "--quiet" => a.quiet = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.queries.is_empty() {
        a.queries.push(PROTOCOL.into());
    }
    Ok(a)
}

fn main() {
    anomalymatch::threads::one_candle_thread();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    anomalymatch::allocator::keep_freed_pages();
    let args = parse_args()?;
    let classes_path = args.data.join("classes.csv");
    if !classes_path.exists() {
        println!("skipping: {} not found", classes_path.display());
        return Ok(());
    }
    let rows: Vec<(String, String)> = ClassTable::read(&classes_path)?
        .rows()
        .iter()
        .filter(|(_, c)| *c != args.drop)
        .cloned()
        .collect();

    let t = Instant::now();
    let loader = LoaderConfig {
        size: args.size,
        ..LoaderConfig::default()
    }
    .build()?;
    let mut source =
        FolderSource::with_names(args.data.join("images"), rows.iter().map(|r| r.0.clone()))?;
    let all = loader.load_all(&mut source, !args.quiet)?;
    let load_s = t.elapsed().as_secs_f64();
    if !all.report.failed.is_empty() {
        eprintln!(
            "warning: {} unreadable image(s) left out",
            all.report.failed.len()
        );
    }
    let class_of: std::collections::HashMap<&str, &str> =
        rows.iter().map(|(f, c)| (f.as_str(), c.as_str())).collect();
    let truth: Vec<bool> = all
        .names
        .iter()
        .map(|n| class_of[n.as_str()] == args.anomaly)
        .collect();
    let mut summary: Vec<Vec<Vec<serde_json::Value>>> = vec![Vec::new(); args.queries.len()];
    let ctx = Context {
        all: &all.images,
        truth: &truth,
        iters: args.iters,
        embed: args.queries.iter().any(|q| q.contains("diverse")),
    };

    for &seed in &args.seeds {
        // The seeded start: 10 anomalies and 90 normals.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut anomalies: Vec<usize> = (0..truth.len()).filter(|&i| truth[i]).collect();
        let mut normals: Vec<usize> = (0..truth.len()).filter(|&i| !truth[i]).collect();
        anomalies.shuffle(&mut rng);
        normals.shuffle(&mut rng);
        let start: Vec<usize> = anomalies[..10]
            .iter()
            .chain(&normals[..90])
            .copied()
            .collect();

        let new_trainer = || -> Result<Trainer, Box<dyn std::error::Error>> {
            let model = pretrained_lite0(3, 2, &Device::Cpu)?;
            let train = Config::default().train.validate()?;
            let mut trainer = FixMatch::new(model, FixMatchAugmenter::fixmatch(), train, seed)?;
            trainer.set_progress(!args.quiet);
            Ok(trainer)
        };
        let mut trainer = new_trainer()?;
        let first = ctx.cycle(&mut trainer, &start)?;
        let branch = std::env::temp_dir().join(format!(
            "gz1_benchmark-{}-{seed}.safetensors",
            std::process::id()
        ));
        if args.queries.len() > 1 {
            trainer.save_checkpoint(&branch)?;
        }
        for (q, query) in args.queries.iter().enumerate() {
            if q > 0 {
                trainer = new_trainer()?;
                trainer.resume(&branch)?;
            }
            let strategy = match query.as_str() {
                PROTOCOL => None,
                name => Some(by_name(name)?),
            };
            let mut labelled = start.clone();
            let mut lines = Vec::new();
            for cycle in 1..=args.cycles {
                let c = if cycle == 1 {
                    first.clone()
                } else {
                    ctx.cycle(&mut trainer, &labelled)?
                };
                let pool_truth: Vec<bool> = c.pool.iter().map(|&i| truth[i]).collect();
                let m = RankingMetrics::compute(&c.scores, &pool_truth).map_err(|e| {
                    let left = pool_truth.iter().filter(|&&t| t).count();
                    format!(
                        "seed {seed}, cycle {cycle}: {e} ({left} of {} pool images are {}); \
                         the data set is too small for this many cycles",
                        c.pool.len(),
                        args.anomaly
                    )
                })?;
                // The simulated expert labels 20 more images.
                let picked: Vec<usize> = match &strategy {
                    Some(strategy) => {
                        let unknown = vec![Label::Unknown; c.pool.len()];
                        let input = QueryInput {
                            scores: &c.scores,
                            embeddings: c.embeddings.as_ref(),
                            labels: &unknown,
                        };
                        strategy.select(&input, 20, seed + cycle as u64)?
                    }
                    None => protocol_picks(&c.scores, &pool_truth),
                };
                labelled.extend(picked.iter().map(|&j| c.pool[j]));
                let line = serde_json::json!({
                    "impl": "anomalymatch-rs", "seed": seed, "cycle": cycle, "size": args.size,
                    "iters": args.iters, "query": query, "pool": c.pool.len(),
                    "anomalies": m.anomalies, "auroc": m.auroc, "auprc": m.average_precision,
                    "p_at_1pct": m.precision_at_1pct,
                    "load_s": if cycle == 1 { load_s } else { 0.0 },
                    "train_s": c.train_s, "score_s": c.score_s,
                    "score_img_per_s": c.pool.len() as f64 / c.score_s,
                    "found": labelled.iter().filter(|&&i| truth[i]).count() - 10,
                    "queried_anomalies": picked.iter().filter(|&&j| pool_truth[j]).count(),
                });
                println!("{line}");
                lines.push(line);
            }
            summary[q].push(lines);
        }
        if args.queries.len() > 1 {
            std::fs::remove_file(&branch)?;
        }
    }
    for (query, runs) in args.queries.iter().zip(&summary) {
        println!("\n--query {query}");
        print_summary(runs);
    }
    Ok(())
}

type Trainer = FixMatch<anomalymatch::models::EfficientNet, FixMatchAugmenter>;

/// What every cycle needs: the decoded images, the truth, the iterations per cycle, and whether
/// a diversity query needs the pool's embeddings.
struct Context<'a> {
    all: &'a ImageBatch,
    truth: &'a [bool],
    iters: usize,
    embed: bool,
}

/// One cycle's training and scoring.
#[derive(Clone)]
struct Cycle {
    /// Indices of the unlabelled images.
    pool: Vec<usize>,
    /// Their anomaly scores.
    scores: Vec<f32>,
    /// Their embeddings, when a diversity query asked for them.
    embeddings: Option<Embeddings>,
    train_s: f64,
    score_s: f64,
}

impl Context<'_> {
    /// Trains `iters` steps on `labelled` (indices) and the rest as the unlabelled pool, then
    /// scores (and, if asked, embeds) the pool with the EMA model.
    fn cycle(
        &self,
        trainer: &mut Trainer,
        labelled: &[usize],
    ) -> Result<Cycle, Box<dyn std::error::Error>> {
        let in_set: std::collections::HashSet<usize> = labelled.iter().copied().collect();
        let pool: Vec<usize> = (0..self.truth.len())
            .filter(|i| !in_set.contains(i))
            .collect();
        let labels: Vec<Label> = labelled
            .iter()
            .map(|&i| {
                if self.truth[i] {
                    Label::Anomaly
                } else {
                    Label::Normal
                }
            })
            .collect();
        let labelled_images = self.all.select(labelled)?;
        let pool_images = self.all.select(&pool)?;
        let t = Instant::now();
        trainer.fit(
            &TrainData {
                labelled: &labelled_images,
                labels: &labels,
                unlabelled: &pool_images,
            },
            self.iters,
            &mut |_| {},
        )?;
        let train_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let scores = anomaly_scores(trainer.ema(), &pool_images, 256)?;
        let score_s = t.elapsed().as_secs_f64();
        let embeddings = if self.embed {
            embed_all(trainer.ema(), &pool_images, 256)?
        } else {
            None
        };
        Ok(Cycle {
            pool,
            scores,
            embeddings,
            train_s,
            score_s,
        })
    }
}

/// The BENCHMARKS.md expert: the 10 highest-scored true normals, then the 10 highest-scored
/// true anomalies (positions in the pool).
fn protocol_picks(scores: &[f32], truth: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let top_of = |want: bool| {
        order
            .iter()
            .copied()
            .filter(move |&j| truth[j] == want)
            .take(10)
    };
    top_of(false).chain(top_of(true)).collect()
}

fn print_summary(runs: &[Vec<serde_json::Value>]) {
    let Some(cycles) = runs.first().map(Vec::len) else {
        return;
    };
    println!(
        "\n| cycle | AUROC | AUPRC | precision top 1% | anomalies found | train s | score s | seeds |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in 0..cycles {
        let stat = |key: &str| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.get(c)?.get(key)?.as_f64())
                .collect();
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let sd =
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
            format!("{mean:.3} ± {sd:.3}")
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c + 1,
            stat("auroc"),
            stat("auprc"),
            stat("p_at_1pct"),
            stat("found"),
            stat("train_s"),
            stat("score_s"),
            runs.len()
        );
    }
}
