//! `anomalymatch slurm score ...` ([`anomalymatch_jobs::slurm`]): the same job as `score`, cut
//! into a Slurm job array of N shards plus a merge job that runs once every shard has
//! succeeded (`--dependency=afterok`). It writes, in `OUT/slurm/`, the resolved configuration,
//! the two batch scripts and `submit.sh`; with `--submit` it submits them with `sbatch` itself.

use super::score::ScoreArgs;
use crate::stdout::{Console, out};
use anomalymatch_jobs::slurm::{SlurmOptions, quote, submit, write_scripts};
use anomalymatch_jobs::{JobError, Report, Result};
use clap::{Args, Subcommand};

/// Arguments of `slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The job to run on the cluster.
    #[command(subcommand)]
    pub job: SlurmJob,
}

/// The jobs `slurm` can cut into shards.
#[derive(Debug, Subcommand)]
pub enum SlurmJob {
    /// Score a source as a job array of shards, then merge them.
    Score(SlurmScoreArgs),
}

/// Arguments of `slurm score`: those of `score`, and how the cluster runs it.
#[derive(Debug, Args)]
pub struct SlurmScoreArgs {
    /// The scoring job.
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Shards, one array task each.
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// Submit the scripts with sbatch instead of only writing them.
    #[arg(long)]
    pub submit: bool,
    /// Slurm partition of both jobs.
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Time limit of each task (Slurm's format, e.g. 02:00:00).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// CPUs per task.
    #[arg(long, value_name = "N")]
    pub cpus_per_task: Option<usize>,
    /// Memory per task (Slurm's format, e.g. 8G).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
}

/// Runs `slurm`.
pub fn run(args: SlurmArgs) -> Result<()> {
    match args.job {
        SlurmJob::Score(a) => score(a),
    }
}

fn score(args: SlurmScoreArgs) -> Result<()> {
    let s = &args.score;
    if s.shard.is_some() {
        return Err(JobError::Usage(
            "--shard: each array task takes its own shard; give --shards N instead".into(),
        ));
    }
    let options = SlurmOptions {
        shards: args.shards,
        partition: args.partition.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
    };
    let config = super::configure(&s.common, &[s])?;
    let report = Console::new(s.common.quiet);
    let program = std::env::current_exe()
        .map_err(|e| JobError::Failed(format!("cannot find this program: {e}")))?;
    let scripts = write_scripts(
        &config,
        s.checkpoint.as_deref(),
        &program,
        &options,
        &report,
    )?;
    report.say(&format!(
        "wrote {}, {}, {} and {}",
        scripts.config.display(),
        scripts.score.display(),
        scripts.merge.display(),
        scripts.submit.display()
    ));
    if !args.submit {
        out!("submit with: bash {}", quote(&scripts.submit));
        return Ok(());
    }
    let (array, merge) = submit(&scripts)?;
    out!(
        "submitted score array {array} ({} tasks) and merge {merge}",
        args.shards
    );
    Ok(())
}
