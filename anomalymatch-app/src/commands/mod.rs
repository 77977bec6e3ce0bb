//! One module per subcommand; each reads the configuration with its flags applied, assembles
//! the components from their sections, and runs.

pub mod benchmark;
pub mod config;
pub mod discover;
pub mod label;
pub mod merge;
pub mod report;
pub mod score;
pub mod serve;
pub mod slurm;
pub mod train;
pub mod weights;

use crate::cli::{Command, Common, Flags};
use anomalymatch_jobs::{Result, Settings, load};

/// Runs one subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Discover(a) => discover::run(a),
        Command::Train(a) => train::run(a),
        Command::Score(a) => score::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Slurm(a) => slurm::run(a),
        Command::Label(a) => label::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Benchmark(a) => benchmark::run(a),
        Command::Report(a) => report::run(a),
        Command::Config(a) => config::run(a),
        Command::Weights(a) => weights::run(a),
    }
}

/// The checked configuration of a job: the file of `--config`, then the job's flags, then
/// `--set`.
pub fn configure(common: &Common, groups: &[&dyn Flags]) -> Result<Settings> {
    load(common.config.as_deref(), &common.overrides(groups)?)
}
