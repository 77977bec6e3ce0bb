//! Scoring on a Slurm cluster: the same job as [`crate::score`], cut into a job array of N
//! shards plus a merge job that runs once every shard has succeeded (`--dependency=afterok`).
//! [`write_scripts`] writes, in `OUT/slurm/`, the resolved configuration (every path absolute:
//! tasks start in whatever folder Slurm gives them), the two batch scripts and `submit.sh`;
//! [`submit`] submits them with `sbatch`.

use crate::components;
use crate::config::Settings;
use crate::error::{JobError, Result};
use crate::report::Report;
use crate::score::absolute;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the cluster runs the array: shards and the `#SBATCH` resources of both jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    /// Shards, one array task each.
    pub shards: usize,
    /// Slurm partition.
    pub partition: Option<String>,
    /// Time limit of each task, in Slurm's format (e.g. `02:00:00`).
    pub time: Option<String>,
    /// CPUs per task.
    pub cpus_per_task: Option<usize>,
    /// Memory per task, in Slurm's format (e.g. `8G`).
    pub mem: Option<String>,
}

/// The files [`write_scripts`] wrote.
#[derive(Debug)]
pub struct SlurmScripts {
    /// The resolved configuration the tasks read.
    pub config: PathBuf,
    /// The array of scoring tasks.
    pub score: PathBuf,
    /// The merge job.
    pub merge: PathBuf,
    /// `submit.sh`: submits both, the merge after every task succeeded.
    pub submit: PathBuf,
}

/// Writes the scripts that score the images `config` names with `checkpoint` (default:
/// `OUT/checkpoint.safetensors`) as `options.shards` array tasks of `program` (this
/// application's executable), then merge them. Everything is checked before a file is
/// written.
pub fn write_scripts(
    config: &Settings,
    checkpoint: Option<&Path>,
    program: &Path,
    options: &SlurmOptions,
    report: &dyn Report,
) -> Result<SlurmScripts> {
    if options.shards == 0 || options.shards > 100_000 {
        return Err(JobError::Usage(format!(
            "--shards {}: must be between 1 and 100000",
            options.shards
        )));
    }
    let head = directives(options)?;
    // Every path absolute: the tasks run in whatever folder Slurm starts them in.
    let images = absolute(&components::images_and_labels(config)?.0)?;
    let mut resolved = config.to_config();
    resolved.data.images = Some(images.clone());
    resolved.data.labels = None;
    resolved.output.dir = absolute(&resolved.output.dir)?;
    let out = resolved.output.dir.clone();
    let checkpoint = absolute(
        &checkpoint.map_or_else(|| out.join("checkpoint.safetensors"), Path::to_path_buf),
    )?;
    if !checkpoint.is_file() {
        return Err(JobError::Failed(format!(
            "{}: no such checkpoint",
            checkpoint.display()
        )));
    }
    let exe = absolute(program)?;
    for (what, path) in [
        ("this program's path", &exe),
        ("output.dir", &out),
        ("data.images", &images),
        ("--checkpoint", &checkpoint),
    ] {
        script_safe(what, &path.display().to_string())?;
    }
    let n = options.shards;
    let items = components::open_source(config, &images, report)?
        .len_hint()
        .unwrap_or(0);
    let parts = items.div_ceil(resolved.score.part_size.max(1));
    if n > parts {
        report.warn(&format!(
            "--shards {n} but {items} image(s) make only {parts} part(s) of \
             score.part_size {}: {} array task(s) will have nothing to score",
            resolved.score.part_size,
            n - parts
        ));
    }
    if n > SLURM_MAX_ARRAY_SIZE {
        report.warn(&format!(
            "--shards {n} writes --array=0-{}, above Slurm's default MaxArraySize \
             ({SLURM_MAX_ARRAY_SIZE}); sbatch refuses it unless the cluster raised that limit",
            n - 1
        ));
    }
    let dir = scripts_dir(&out);
    std::fs::create_dir_all(&dir).map_err(|e| JobError::io(&dir, e))?;
    let config_path = dir.join("config.toml");
    let text = toml::to_string(&resolved)
        .map_err(|e| JobError::Failed(format!("{}: {e}", config_path.display())))?;
    write_text(&config_path, &text)?;
    let score_script = dir.join("score.sbatch");
    let merge_script = dir.join("merge.sbatch");
    let (exe_q, config_q) = (quote(&exe), quote(&config_path));
    write_text(
        &score_script,
        &format!(
            "#!/bin/bash\n#SBATCH --job-name=anomalymatch-score\n#SBATCH --array=0-{last}\n\
             #SBATCH --output={log}\n{head}\nset -euo pipefail\n\
             exec {exe_q} score --quiet --config {config_q} --checkpoint {ckpt} \
             --shard \"$SLURM_ARRAY_TASK_ID/{n}\"\n",
            last = n - 1,
            log = sbatch_path(&dir, "score-%A_%a.log"),
            ckpt = quote(&checkpoint),
        ),
    )?;
    write_text(
        &merge_script,
        &format!(
            "#!/bin/bash\n#SBATCH --job-name=anomalymatch-merge\n#SBATCH --output={log}\n\
             {head}\nset -euo pipefail\nexec {exe_q} merge --quiet --config {config_q}\n",
            log = sbatch_path(&dir, "merge-%j.log"),
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
    Ok(SlurmScripts {
        config: config_path,
        score: score_script,
        merge: merge_script,
        submit,
    })
}

/// Submits `scripts`: the array, then the merge once every task succeeded. Returns the job
/// ids of both.
pub fn submit(scripts: &SlurmScripts) -> Result<(String, String)> {
    let array = sbatch(&[scripts.score.as_os_str()])?;
    let dependency = format!("--dependency=afterok:{array}");
    let merge = sbatch(&[dependency.as_ref(), scripts.merge.as_os_str()])?;
    Ok((array, merge))
}

/// Slurm's default MaxArraySize: array indices run from 0 to one less than this.
const SLURM_MAX_ARRAY_SIZE: usize = 1001;

/// The `#SBATCH` lines of the resource options, each checked in Slurm's own format first: a
/// value written into a job script must not be able to become a line of its own.
fn directives(args: &SlurmOptions) -> Result<String> {
    let mut head = Vec::new();
    if let Some(p) = &args.partition {
        let ok = !p.is_empty()
            && p.split(',').all(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            });
        if !ok {
            return Err(option_error(
                "--partition",
                p,
                "a partition name (letters, digits, '_', '-', '.'; several joined by ',')",
            ));
        }
        head.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(t) = &args.time {
        if !is_slurm_time(t) {
            return Err(option_error(
                "--time",
                t,
                "Slurm's time format: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED",
            ));
        }
        head.push(format!("#SBATCH --time={t}"));
    }
    if let Some(c) = args.cpus_per_task {
        if c == 0 {
            return Err(option_error("--cpus-per-task", "0", "at least 1"));
        }
        head.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(m) = &args.mem {
        if !is_slurm_size(m) {
            return Err(option_error(
                "--mem",
                m,
                "Slurm's size format: a whole number with an optional unit K, M, G or T (e.g. 8G)",
            ));
        }
        head.push(format!("#SBATCH --mem={m}"));
    }
    Ok(head.join("\n"))
}

/// A usage error naming the option and the value (escaped: it may hold control characters).
fn option_error(option: &str, value: &str, expected: &str) -> JobError {
    JobError::Usage(format!(
        "{option} {}: expected {expected}",
        value.escape_debug()
    ))
}

/// Whether `t` is a time limit as sbatch reads one.
fn is_slurm_time(t: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    if ["unlimited", "infinite"].contains(&t.to_ascii_lowercase().as_str()) {
        return true;
    }
    let (days, clock) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    if days.is_some_and(|d| !number(d)) {
        return false;
    }
    let fields: Vec<&str> = clock.split(':').collect();
    // With days: H, H:M or H:M:S; without: M, M:S or H:M:S.
    fields.len() <= 3 && fields.iter().all(|f| number(f))
}

/// Whether `m` is a memory size as sbatch reads one.
fn is_slurm_size(m: &str) -> bool {
    let digits = m.trim_end_matches(|c: char| "KMGTkmgt".contains(c));
    m.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.len() <= 15
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Refuses a value bound for a job script that holds a control character (a newline would
/// start a new shell line there) or a double quote (it would end the quoted `#SBATCH` path).
fn script_safe(what: &str, value: &str) -> Result<()> {
    if value.chars().any(|c| c.is_control() || c == '"') {
        return Err(JobError::Usage(format!(
            "{what} {}: a path written into a Slurm script cannot hold control characters or '\"'",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// `dir/file` as an `#SBATCH --output=` value: double-quoted (sbatch keeps spaces inside
/// quotes), with a literal `%` doubled so that Slurm's filename patterns leave it alone.
/// `file` is ours and may use those patterns.
fn sbatch_path(dir: &Path, file: &str) -> String {
    format!(
        "\"{}/{file}\"",
        dir.display().to_string().replace('%', "%%")
    )
}

/// Runs `sbatch --parsable ARGS` and returns the job id.
fn sbatch(args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .map_err(|e| JobError::Failed(format!("sbatch: {e} (is Slurm installed here?)")))?;
    if !out.status.success() {
        return Err(JobError::Failed(format!(
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
        return Err(JobError::Failed("sbatch printed no job id".into()));
    }
    Ok(id)
}

/// A path quoted for bash.
pub fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    anomalymatch_core::atomic::write_bytes_atomic(path, text.as_bytes())?;
    Ok(())
}

/// The scripts' folder of a run writing to `out`.
fn scripts_dir(out: &Path) -> PathBuf {
    out.join("slurm")
}
