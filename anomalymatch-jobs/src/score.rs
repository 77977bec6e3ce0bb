//! Scoring runs: a checkpoint and images to every score (`scores.parquet`: name, origin, score
//! and optionally the embedding, in source order), the top candidates (`top_candidates.csv`)
//! and their contact sheet (`top_candidates.png`). The checkpoint alone says how to decode the
//! images and which network to build; images that do not fit it are refused before any
//! scoring. Scoring streams part by part with reading overlapping the network, so memory stays
//! flat however large the collection is; finished parts are kept in `OUT/score-run`, so a
//! stopped run resumes where it was, and the final files replace earlier ones together, only
//! when the whole run succeeded. One shard of a run writes `scores-shard-I-of-N.parquet`, for
//! [`crate::merge`].

use crate::components;
use crate::config::{Config, Settings};
use crate::error::{JobError, Result};
use crate::outputs;
use crate::report::Report;
use crate::score_run::{RunFolder, RunSpec, assemble, sha256_file, source_stamp};
use crate::scoring_model::ScoringModel;
use crate::shard::Shard;
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::{DataSpec, FailedImage, ScoreOptions, Scorer};
use anomalymatch_models::parse_device;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a scoring run wrote.
#[derive(Debug)]
pub struct Scored {
    /// Rows in the score file.
    pub rows: usize,
    /// Images this process scored (fewer than the rows when it resumed a run).
    pub scored: usize,
    /// Seconds this process spent scoring.
    pub score_s: f64,
    /// The shard scored.
    pub shard: Shard,
    /// The source's items the shard covers.
    pub items: Range<usize>,
    /// Unreadable images, in source order.
    pub unreadable: Vec<FailedImage>,
    /// The files written: the score file, and for a whole run the top candidates and sheet.
    pub written: Vec<PathBuf>,
}

/// Scores the images `config` names with `checkpoint` (default: `OUT/checkpoint.safetensors`,
/// as `discover` and `train` write), or one `shard` of them.
pub fn score(
    config: &Settings,
    checkpoint: Option<&Path>,
    shard: Shard,
    report: &dyn Report,
) -> Result<Scored> {
    let out = &config.output.dir;
    let checkpoint =
        checkpoint.map_or_else(|| out.join("checkpoint.safetensors"), Path::to_path_buf);
    let (images, _) = components::images_and_labels(config)?;
    let device = parse_device(&config.model.device)?;
    let opened = ScoringModel::open(&checkpoint, &device, &config.data)?;
    let (info, loader) = (opened.info(), opened.loader());
    // The checkpoint's pixels: scoring must see what training saw. A setting that asks for
    // other pixels cannot be honoured, and is refused rather than ignored.
    let asked = pixel_conflicts(config, &info.data);
    if !asked.is_empty() {
        return Err(JobError::Usage(format!(
            "{}: the checkpoint decodes images as it was trained ({}), but {}; drop the \
             setting, or score with a checkpoint trained that way",
            checkpoint.display(),
            info.data,
            asked.join(", ")
        )));
    }
    let mut source = components::open_source(config, &images, report)?;
    check_fits(loader, source.as_mut(), &checkpoint)?;
    // Shards of one run write side by side; each locks only its own part of the folder.
    let part = (shard != Shard::WHOLE).then(|| format!("shard-{}-of-{}", shard.index, shard.count));
    let _lock = components::prepare_output(out, part.as_deref(), report)?;
    report.say(&format!(
        "scoring {} with {} ({}, {}, iteration {})",
        images.display(),
        checkpoint.display(),
        info.spec.architecture,
        info.data,
        info.iteration
    ));

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
        source_options: (*config.source).clone(),
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
    let (run, done) = RunFolder::open(&run_dir, &spec, report)?;
    if done > 0 {
        report.say(&format!(
            "resuming: {done} of {} part(s) already scored in {}",
            spec.parts().len(),
            run_dir.display()
        ));
    }
    let t = Instant::now();
    let options = ScoreOptions {
        embeddings: config.score.embeddings,
        ..config.score.options(report.progress())
    };
    let scorer = Scorer::new(opened.model(), options);
    let scored = run.score_missing(&scorer, loader, source.as_mut())?;
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
            loader,
            source.as_mut(),
            report,
        )?);
    }
    group.commit()?;
    run.remove()?;
    Ok(Scored {
        rows: assembled.rows,
        scored,
        score_s: secs,
        shard,
        items: spec.shard_items(),
        unreadable: assembled.unreadable,
        written,
    })
}

/// The score file of one shard, as `merge` finds it.
pub fn shard_file_name(shard: Shard) -> String {
    format!("scores-shard-{}-of-{}.parquet", shard.index, shard.count)
}

/// `path` made absolute, so that the run's record means the same from any folder.
pub fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| JobError::io(path, e))
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
        return Err(JobError::Failed(format!(
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
fn pixel_conflicts(config: &Settings, trained: &DataSpec) -> Vec<String> {
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
