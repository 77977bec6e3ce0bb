//! The command line: one subcommand per job, with the flags every job shares.

use crate::commands::{
    benchmark::BenchmarkArgs, config::ConfigArgs, discover::DiscoverArgs, label::LabelArgs,
    merge::MergeArgs, report::ReportArgs, score::ScoreArgs, serve::ServeArgs, slurm::SlurmArgs,
    train::TrainArgs, weights::WeightsArgs,
};
use anomalymatch_jobs::Result;
use anomalymatch_jobs::config::Override;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Find rare objects in large image collections from a handful of labels (AnomalyMatch:
/// FixMatch semi-supervised learning on EfficientNet, with active learning).
#[derive(Debug, Parser)]
#[command(name = "anomalymatch", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train on a handful of labels, rank every unlabelled image, and write the candidates,
    /// a contact sheet and the checkpoint (the main job; built-in data by default).
    Discover(DiscoverArgs),
    /// Train on labelled and unlabelled images to a checkpoint, or continue one.
    Train(TrainArgs),
    /// Score images with a checkpoint: every score, the top candidates and a contact sheet.
    Score(ScoreArgs),
    /// Merge the shards of `score --shard I/N` into one score file, top candidates and sheet.
    Merge(MergeArgs),
    /// Write (and with --submit, submit) Slurm job scripts: `slurm score` runs `score` as a job
    /// array of shards and merges them when all have succeeded.
    Slurm(SlurmArgs),
    /// Label in an active-learning session: train, score, ask, retrain; resumes where it stopped.
    Label(LabelArgs),
    /// Label in a web page: the candidates, one large with display controls, train and score
    /// buttons; the same session as `label`, on 127.0.0.1 with a token in the printed URL.
    Serve(ServeArgs),
    /// Run the GZ1-merger protocol of BENCHMARKS.md and print its metrics.
    Benchmark(BenchmarkArgs),
    /// Make Markdown tables of benchmark results files, or regenerate a document's tables.
    Report(ReportArgs),
    /// Print the default configuration, or check a configuration file.
    Config(ConfigArgs),
    /// Convert weight files: `weights convert IN.pth OUT.safetensors` for `model.weights`.
    Weights(WeightsArgs),
}

/// A group of flags, each overriding one configuration key when given.
pub trait Flags {
    /// Appends an override for every flag that was given.
    fn overrides(&self, all: &mut Vec<Override>);
}

/// Flags every job takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Configuration file (TOML); `anomalymatch config` prints every key.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overrides any configuration key, e.g. `--set train.lr=0.01` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Starting point of the configuration: `recommended` (the default) or `original`, the
    /// original AnomalyMatch's settings [key: preset].
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Seed of every random choice [key: seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder of the outputs [key: output.dir].
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress bars or chatter: results and errors only.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Common {
    /// The overrides of these flags and of `groups`, `--set` last so that it wins.
    pub fn overrides(&self, groups: &[&dyn Flags]) -> Result<Vec<Override>> {
        let mut all = Vec::new();
        push(
            &mut all,
            "preset",
            self.preset.clone().map(toml::Value::String),
            "--preset",
        );
        push(&mut all, "seed", self.seed.map(int), "--seed");
        push(
            &mut all,
            "output.dir",
            self.out.as_deref().map(path),
            "--out",
        );
        for g in groups {
            g.overrides(&mut all);
        }
        for s in &self.set {
            all.push(Override::parse_set(s)?);
        }
        Ok(all)
    }
}

/// Where the images are.
#[derive(Debug, Args)]
pub struct ImagesFlag {
    /// Folder of images [key: data.images; default: the built-in data/gz1-demo].
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
}

impl Flags for ImagesFlag {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(
            all,
            "data.images",
            self.images.as_deref().map(path),
            "--images",
        );
    }
}

/// The size images are decoded at and how long to train.
#[derive(Debug, Args)]
pub struct TrainingFlags {
    /// Side every image is resized to [key: data.size].
    #[arg(long, value_name = "PIXELS")]
    pub size: Option<usize>,
    /// Training iterations (per cycle in a session) [key: train.iterations].
    #[arg(long, value_name = "N")]
    pub iters: Option<usize>,
}

impl Flags for TrainingFlags {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(all, "data.size", self.size.map(int), "--size");
        push(all, "train.iterations", self.iters.map(int), "--iters");
    }
}

/// The number of active-learning cycles.
#[derive(Debug, Args)]
pub struct CyclesFlag {
    /// Cycles of the session [key: active.cycles].
    #[arg(long, value_name = "N")]
    pub cycles: Option<usize>,
}

impl Flags for CyclesFlag {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(all, "active.cycles", self.cycles.map(int), "--cycles");
    }
}

/// How many top candidates a scoring job lists and shows.
#[derive(Debug, Args)]
pub struct TopFlag {
    /// Top candidates listed and shown [key: score.top].
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
}

impl Flags for TopFlag {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(all, "score.top", self.top.map(int), "--top");
    }
}

/// The images, their starting labels, the size they are decoded at and how long to train.
#[derive(Debug, Args)]
pub struct DataFlags {
    /// The images.
    #[command(flatten)]
    pub images: ImagesFlag,
    /// Starting labels, as labeled_data.csv [key: data.labels].
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Size and iterations.
    #[command(flatten)]
    pub training: TrainingFlags,
}

impl Flags for DataFlags {
    fn overrides(&self, all: &mut Vec<Override>) {
        self.images.overrides(all);
        push(
            all,
            "data.labels",
            self.labels.as_deref().map(path),
            "--labels",
        );
        self.training.overrides(all);
    }
}

/// Adds an override of `key` from `flag` when the flag was given.
pub fn push(all: &mut Vec<Override>, key: &str, value: Option<toml::Value>, flag: &str) {
    if let Some(v) = value {
        all.push(Override::new(key, v, flag));
    }
}

/// A count or seed as a TOML integer (saturating: out-of-range values fail the range checks).
pub fn int<T: TryInto<i64>>(v: T) -> toml::Value {
    toml::Value::Integer(v.try_into().unwrap_or(i64::MAX))
}

/// A path as a TOML string.
pub fn path(p: &Path) -> toml::Value {
    toml::Value::String(p.to_string_lossy().into_owned())
}

/// A string as a TOML string.
pub fn text(s: &str) -> toml::Value {
    toml::Value::String(s.to_string())
}
