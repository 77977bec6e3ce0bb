//! `anomalymatch slurm score ...`: the same job as `score`, cut into a Slurm job array of N
//! shards plus a merge job that runs once every shard has succeeded
//! (`--dependency=afterok`). It writes, in `OUT/slurm/`, the resolved configuration, the two
//! batch scripts and `submit.sh`; with `--submit` it submits them with `sbatch` itself.

use super::score::{ScoreArgs, absolute};
use crate::assemble::{self, say};
use crate::error::{AppError, Result};
use crate::stdout::out;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

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
        return Err(AppError::Usage(
            "--shard: each array task takes its own shard; give --shards N instead".into(),
        ));
    }
    if args.shards == 0 || args.shards > 100_000 {
        return Err(AppError::Usage(format!(
            "--shards {}: must be between 1 and 100000",
            args.shards
        )));
    }
    let mut config = super::configure(&s.common, &[s])?.into_inner();
    let quiet = s.common.quiet;
    // Every path absolute: the tasks run in whatever folder Slurm starts them in.
    let (images, _) = assemble::images_and_labels(&config)?;
    config.data.images = Some(absolute(&images)?);
    config.data.labels = None;
    config.output.dir = absolute(&config.output.dir)?;
    let out = config.output.dir.clone();
    let checkpoint = absolute(
        &s.checkpoint
            .clone()
            .unwrap_or_else(|| out.join("checkpoint.safetensors")),
    )?;
    if !checkpoint.is_file() {
        return Err(AppError::Failed(format!(
            "{}: no such checkpoint",
            checkpoint.display()
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| AppError::Failed(format!("cannot find this program: {e}")))?;
    let dir = scripts_dir(&out);
    std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
    let config_path = dir.join("config.toml");
    let text = toml::to_string(&config).map_err(|e| fail(&config_path, e))?;
    write_text(&config_path, &text)?;
    let score_script = dir.join("score.sbatch");
    let merge_script = dir.join("merge.sbatch");
    let n = args.shards;
    let mut head = Vec::new();
    if let Some(p) = &args.partition {
        head.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(t) = &args.time {
        head.push(format!("#SBATCH --time={t}"));
    }
    if let Some(c) = args.cpus_per_task {
        head.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(m) = &args.mem {
        head.push(format!("#SBATCH --mem={m}"));
    }
    let head = head.join("\n");
    let (exe_q, config_q) = (quote(&exe), quote(&config_path));
    write_text(
        &score_script,
        &format!(
            "#!/bin/bash\n#SBATCH --job-name=anomalymatch-score\n#SBATCH --array=0-{last}\n\
             #SBATCH --output={log}\n{head}\nset -euo pipefail\n\
             exec {exe_q} score --quiet --config {config_q} --checkpoint {ckpt} \
             --shard \"$SLURM_ARRAY_TASK_ID/{n}\"\n",
            last = n - 1,
            log = dir.join("score-%A_%a.log").display(),
            ckpt = quote(&checkpoint),
        ),
    )?;
    write_text(
        &merge_script,
        &format!(
            "#!/bin/bash\n#SBATCH --job-name=anomalymatch-merge\n#SBATCH --output={log}\n\
             {head}\nset -euo pipefail\nexec {exe_q} merge --quiet --config {config_q}\n",
            log = dir.join("merge-%j.log").display(),
        ),
    )?;
    let submit = dir.join("submit.sh");
    write_text(
        &submit,
        &format!(
            "#!/bin/bash\n# Submits the score array, then the merge once every task succeeded.\n\
             set -euo pipefail\narray=$(sbatch --parsable {})\narray=${{array%%;*}}\n\
             merge=$(sbatch --parsable --dependency=afterok:$array {})\n\
             echo \"score array $array, merge ${{merge%%;*}}\"\n",
            quote(&score_script),
            quote(&merge_script)
        ),
    )?;
    say(
        quiet,
        format!(
            "wrote {}, {}, {} and {}",
            config_path.display(),
            score_script.display(),
            merge_script.display(),
            submit.display()
        ),
    );
    if !args.submit {
        out!("submit with: bash {}", quote(&submit));
        return Ok(());
    }
    let array = sbatch(&[score_script.as_os_str()])?;
    let dependency = format!("--dependency=afterok:{array}");
    let merge = sbatch(&[dependency.as_ref(), merge_script.as_os_str()])?;
    out!("submitted score array {array} ({n} tasks) and merge {merge}");
    Ok(())
}

/// Runs `sbatch --parsable ARGS` and returns the job id.
fn sbatch(args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .map_err(|e| AppError::Failed(format!("sbatch: {e} (is Slurm installed here?)")))?;
    if !out.status.success() {
        return Err(AppError::Failed(format!(
            "sbatch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(AppError::Failed("sbatch printed no job id".into()));
    }
    Ok(id)
}

/// A path quoted for bash.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    anomalymatch_core::atomic::write_bytes_atomic(path, text.as_bytes())?;
    Ok(())
}

fn fail(path: &Path, e: impl std::fmt::Display) -> AppError {
    AppError::Failed(format!("{}: {e}", path.display()))
}

/// The scripts' folder of a run writing to `out`.
pub fn scripts_dir(out: &Path) -> PathBuf {
    out.join("slurm")
}
