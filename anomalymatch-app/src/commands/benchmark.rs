//! `anomalymatch benchmark` ([`anomalymatch_jobs::benchmark`]): the GZ1-merger protocol of
//! `BENCHMARKS.md`, run through the same labelling session users run. One JSON line per cycle
//! goes to stdout as it finishes, then a summary table per query and per baseline. A killed
//! run resumes from its last finished cycle, and every finished run is appended to a results
//! file that `anomalymatch report` makes tables of.

use crate::cli::{Common, CyclesFlag, Flags, TrainingFlags, int, path, push, text};
use crate::stdout::{Console, out};
use anomalymatch_jobs::benchmark::record::command_line;
use anomalymatch_jobs::benchmark::{Runs, benchmark};
use anomalymatch_jobs::{Override, Result};
use clap::Args;
use std::path::PathBuf;

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
    let command = command_line("anomalymatch", std::env::args().skip(1));
    let report = Console::new(args.common.quiet);
    let measured = benchmark(&config, &command, &report, &mut |line| out!("{line}"))?;
    for runs in &measured.baselines {
        out!("\n--baseline {}", runs.name);
        print_summary(runs);
    }
    for runs in &measured.queries {
        out!("\n--query {}", runs.name);
        print_summary(runs);
    }
    Ok(())
}

/// The mean and spread over seeds of each cycle's metrics, as a Markdown table.
fn print_summary(runs: &Runs) {
    let runs = &runs.seeds;
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
