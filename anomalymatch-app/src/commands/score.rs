//! `anomalymatch score`: a checkpoint and images to every score (`scores.parquet`: name, origin,
//! score and optionally the embedding, in source order), the top candidates
//! (`top_candidates.csv`) and their contact sheet (`top_candidates.png`). The checkpoint alone
//! says how to decode the images and which network to build; images that do not fit it are
//! refused before any scoring. Scoring streams part by part with reading overlapping the
//! network, so memory stays flat however large the collection is; finished parts are kept in
//! `OUT/score-run`, so a stopped run resumes where it was, and the final files replace earlier
//! ones together, only when the whole run succeeded. With `--shard I/N` it scores one shard
//! into `scores-shard-I-of-N.parquet`, for `anomalymatch merge`.

use crate::assemble::{self, say};
use crate::cli::{Common, Flags, ImagesFlag, TopFlag, int, push};
use crate::config::{Config, Override};
use crate::error::{AppError, Result};
use crate::outputs;
use crate::score_run::{RunFolder, RunSpec, Scorer, assemble, sha256_file, source_stamp};
use crate::shard::Shard;
use crate::stdout::out;
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::{Check, DataSpec};
use anomalymatch_models::{from_checkpoint, parse_device};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// The images.
    #[command(flatten)]
    pub images: ImagesFlag,
    /// The checkpoint [default: OUT/checkpoint.safetensors, as `discover` and `train` write].
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// How many top candidates.
    #[command(flatten)]
    pub top: TopFlag,
    /// Images per forward pass [key: score.batch_size].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Score only shard I of N (from 0): a contiguous run of whole parts of the source, written
    /// to OUT/scores-shard-I-of-N.parquet for `anomalymatch merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Also write each image's embedding to the score file [key: score.embeddings].
    #[arg(long)]
    pub embeddings: bool,
}

/// Every flag of `score`, its groups included: `slurm score` takes the same ones.
impl Flags for ScoreArgs {
    fn overrides(&self, all: &mut Vec<Override>) {
        self.images.overrides(all);
        self.top.overrides(all);
        push(all, "score.batch_size", self.batch.map(int), "--batch");
        if self.embeddings {
            push(
                all,
                "score.embeddings",
                Some(toml::Value::Boolean(true)),
                "--embeddings",
            );
        }
    }
}

/// Runs `score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args])?;
    let shard = match &args.shard {
        Some(text) => text.parse::<Shard>()?,
        None => Shard::WHOLE,
    };
    let quiet = args.common.quiet;
    let out = &config.output.dir;
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| out.join("checkpoint.safetensors"));
    if !checkpoint.is_file() {
        return Err(AppError::Failed(format!(
            "{}: no such checkpoint (train one with `anomalymatch discover` or `train`)",
            checkpoint.display()
        )));
    }
    let (images, _) = assemble::images_and_labels(&config)?;
    let device = parse_device(&config.model.device)?;
    let (model, info) = from_checkpoint(&checkpoint, &device)?;
    if info.data.size < model.min_input_size() {
        return Err(AppError::Failed(format!(
            "{}: trained at {} pixels, below the {} that {} accepts: the file is damaged",
            checkpoint.display(),
            info.data.size,
            model.min_input_size(),
            info.spec.architecture
        )));
    }
    // The checkpoint's pixels: scoring must see what training saw. A setting that asks for
    // other pixels cannot be honoured, and is refused rather than ignored.
    let asked = pixel_conflicts(&config, &info.data);
    if !asked.is_empty() {
        return Err(AppError::Usage(format!(
            "{}: the checkpoint decodes images as it was trained ({}), but {}; drop the \
             setting, or score with a checkpoint trained that way",
            checkpoint.display(),
            info.data,
            asked.join(", ")
        )));
    }
    let loader = config
        .data
        .clone()
        .with_spec(info.data)
        .check()?
        .build(())?;
    let mut source = assemble::open_source(&config, &images, true)?;
    check_fits(&loader, source.as_mut(), &checkpoint)?;
    // Shards of one run write side by side; each locks only its own part of the folder.
    let part = (shard != Shard::WHOLE).then(|| format!("shard-{}-of-{}", shard.index, shard.count));
    let _lock = assemble::prepare_output(out, part.as_deref(), quiet)?;
    say(
        quiet,
        format!(
            "scoring {} with {} ({}, {}, iteration {})",
            images.display(),
            checkpoint.display(),
            info.spec.architecture,
            info.data,
            info.iteration
        ),
    );

    let items = match source.len_hint() {
        Some(n) => n,
        None => {
            let n = source.skip(usize::MAX)?;
            source.rewind()?;
            n
        }
    };
    let spec = RunSpec {
        checkpoint: absolute(&checkpoint)?,
        checkpoint_sha256: sha256_file(&checkpoint)?,
        source: absolute(&images)?,
        source_options: config.source.clone(),
        items,
        source_stamp: source_stamp(&images)?,
        source_fingerprint: source.fingerprint(),
        data: loader.spec(),
        max_pixels: config.data.max_pixels,
        batch_size: config.score.batch_size,
        views: config.score.views,
        chunk_size: config.data.chunk_size,
        part_size: config.score.part_size,
        embeddings: config.score.embeddings,
        shard,
    };
    let whole = shard == Shard::WHOLE;
    let (run_dir, scores_path) = if whole {
        (out.join("score-run"), out.join("scores.parquet"))
    } else {
        let (i, n) = (shard.index, shard.count);
        (
            out.join(format!("score-run-{i}-of-{n}")),
            out.join(shard_file_name(shard)),
        )
    };
    let (run, done) = RunFolder::open(&run_dir, &spec)?;
    if done > 0 {
        say(
            quiet,
            format!(
                "resuming: {done} of {} part(s) already scored in {}",
                spec.parts().len(),
                run_dir.display()
            ),
        );
    }
    let t = Instant::now();
    let scorer = Scorer {
        model: &model,
        loader: &loader,
        batch_size: config.score.batch_size,
        views: config.score.views,
        embeddings: config.score.embeddings,
    };
    let scored = scorer.score_missing(&run, source.as_mut(), !quiet)?;
    let secs = t.elapsed().as_secs_f64();

    let mut group = AtomicGroup::new();
    let assembled = assemble(
        &mut group,
        &scores_path,
        &run.part_files(),
        &spec,
        config.score.top,
    )?;
    let mut written = vec![scores_path];
    if whole {
        written.extend(outputs::top_candidates(
            &mut group,
            out,
            &assembled.top,
            &loader,
            source.as_mut(),
        )?);
    }
    group.commit()?;
    run.remove()?;
    out!(
        "scored {} images{} in {secs:.1} s ({:.0} images/s); {} unreadable",
        assembled.rows,
        if whole {
            String::new()
        } else {
            format!(" (shard {shard}, items {:?})", spec.shard_items())
        },
        scored as f64 / secs.max(1e-9),
        assembled.unreadable.len()
    );
    outputs::warn_unreadable(&assembled.unreadable);
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    say(quiet, format!("wrote {}", names.join(", ")));
    Ok(())
}

/// The score file of one shard, as `merge` finds it.
pub fn shard_file_name(shard: Shard) -> String {
    format!("scores-shard-{}-of-{}.parquet", shard.index, shard.count)
}

/// `path` made absolute, so that the run's record means the same from any folder.
pub fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| AppError::Failed(format!("{}: {e}", path.display())))
}

/// Decodes the first readable image as the checkpoint wants it, so that images that do not fit
/// (fewer bands than the checkpoint's channels) fail before any scoring.
fn check_fits(
    loader: &anomalymatch_core::ImageLoader,
    source: &mut dyn anomalymatch_core::ImageSource,
    checkpoint: &std::path::Path,
) -> Result<()> {
    let first = source.next_chunk(16)?;
    source.rewind()?;
    let loaded = loader.clone().decode_chunk(&first)?;
    if loaded.names.is_empty()
        && let Some(f) = loaded.report.failed.first()
    {
        return Err(AppError::Failed(format!(
            "{}: does not fit {} (which wants {}): {}",
            f.origin,
            checkpoint.display(),
            loader.spec(),
            f.message
        )));
    }
    Ok(())
}

/// The `[data]` pixel keys set away from their preset's value (so asked for by the user) to
/// something other than what the checkpoint was trained with, as `key = value was asked`.
fn pixel_conflicts(config: &Config, trained: &DataSpec) -> Vec<String> {
    let asked = config.data.spec();
    let preset = Config::of_preset(config.preset).data.spec();
    fn refused<T: PartialEq>(asked: T, preset: T, trained: T) -> bool {
        asked != preset && asked != trained
    }
    [
        (
            "data.size",
            refused(asked.size, preset.size, trained.size),
            asked.size.to_string(),
        ),
        (
            "data.channels",
            refused(asked.channels, preset.channels, trained.channels),
            asked.channels.to_string(),
        ),
        (
            "data.stretch",
            refused(asked.stretch, preset.stretch, trained.stretch),
            format!("{:?}", asked.stretch),
        ),
        (
            "data.crop",
            refused(asked.crop, preset.crop, trained.crop),
            asked.crop.to_string(),
        ),
    ]
    .into_iter()
    .filter(|(_, refused, _)| *refused)
    .map(|(key, _, value)| format!("{key} = {value} was asked"))
    .collect()
}
