//! Merging the shards that scoring runs of `I/N` wrote to OUT: checked to be complete,
//! disjoint and from one checkpoint and source, they become the global `scores.parquet` (the
//! same file a single run writes), `top_candidates.csv` and the contact sheet.

use crate::components;
use crate::config::Settings;
use crate::error::{JobError, Result};
use crate::outputs;
use crate::report::Report;
use crate::score_run::{RunSpec, assemble, read_metadata};
use crate::shard::Shard;
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::{Check, FailedImage};
use anomalymatch_io::ScoresFile;
use std::path::{Path, PathBuf};

/// What merging wrote.
#[derive(Debug)]
pub struct Merged {
    /// Shards merged.
    pub shards: usize,
    /// Rows in the merged score file.
    pub rows: usize,
    /// Unreadable images, in source order.
    pub unreadable: Vec<FailedImage>,
    /// The score file, the top candidates and their contact sheet.
    pub written: Vec<PathBuf>,
}

/// Merges the shards in `output.dir`; the contact sheet is drawn from `images` when given
/// (the images moved since scoring), else from the source the shards record.
pub fn merge(config: &Settings, images: Option<&Path>, report: &dyn Report) -> Result<Merged> {
    let images_named = images.is_some();
    let out = &config.output.dir;
    let shards = find_shards(out)?;
    let spec = check_shards(&shards)?;
    let _lock = components::prepare_output(out, None, report)?;
    let whole = spec.with_shard(Shard::WHOLE);
    let mut group = AtomicGroup::new();
    let scores_path = out.join("scores.parquet");
    let files: Vec<PathBuf> = shards.iter().map(|s| s.path.clone()).collect();
    let assembled = assemble(&mut group, &scores_path, &files, &whole, config.score.top)?;
    let images = images.map_or_else(|| spec.source.clone(), Path::to_path_buf);
    // The shards' pixels are a new value of the section: checked as such.
    let loader = (*config.data)
        .clone()
        .with_spec(spec.data)
        .check()?
        .build(())?;
    let mut source = anomalymatch_io::open_source(&images, &spec.source_options)?;
    // The contact sheet is drawn from the images as they are now: they must be the ones the
    // shards scored.
    let now = source.fingerprint();
    if !images_named && spec.source_fingerprint.is_some() && now != spec.source_fingerprint {
        return Err(JobError::Failed(format!(
            "{}: the images' listing (names, sizes or modification times) changed since the \
             shards were scored ({} then, {} now); score them again",
            images.display(),
            spec.source_fingerprint.as_deref().unwrap_or_default(),
            now.as_deref().unwrap_or("none")
        )));
    }
    let mut written = vec![scores_path];
    written.extend(outputs::top_candidates(
        &mut group,
        out,
        &assembled.top,
        &loader,
        source.as_mut(),
        report,
    )?);
    group.commit()?;
    Ok(Merged {
        shards: shards.len(),
        rows: assembled.rows,
        unreadable: assembled.unreadable,
        written,
    })
}

/// One shard's score file and what it records.
struct ShardFile {
    path: PathBuf,
    spec: RunSpec,
    rows: usize,
    unreadable: usize,
}

/// The shard files in `out` (`scores-shard-I-of-N.parquet`), by shard.
fn find_shards(out: &Path) -> Result<Vec<ShardFile>> {
    let entries = std::fs::read_dir(out).map_err(|e| JobError::io(out, e))?;
    let mut shards = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JobError::io(out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(named) = shard_of_name(&name) else {
            continue;
        };
        let path = entry.path();
        let file = ScoresFile::open(&path)?;
        let (spec, unreadable) = read_metadata(&file, &path)?;
        if spec.shard != named {
            return Err(JobError::Failed(format!(
                "{}: holds shard {} but is named for shard {named}",
                path.display(),
                spec.shard
            )));
        }
        shards.push(ShardFile {
            path,
            spec,
            rows: file.len(),
            unreadable: unreadable.len(),
        });
    }
    if shards.is_empty() {
        return Err(JobError::Failed(format!(
            "{}: no shard to merge (scores-shard-I-of-N.parquet, written by `anomalymatch \
             score --shard I/N`)",
            out.display()
        )));
    }
    shards.sort_by_key(|s| (s.spec.shard.count, s.spec.shard.index));
    Ok(shards)
}

/// The shard of a file name `scores-shard-I-of-N.parquet`.
fn shard_of_name(name: &str) -> Option<Shard> {
    let rest = name
        .strip_prefix("scores-shard-")?
        .strip_suffix(".parquet")?;
    let (i, n) = rest.split_once("-of-")?;
    Some(Shard {
        index: i.parse().ok()?,
        count: n.parse().ok()?,
    })
}

/// Checks that the shards are one run's (same checkpoint, source and settings), that every
/// shard of it is there once, and that each is complete; returns the run's spec.
fn check_shards(shards: &[ShardFile]) -> Result<RunSpec> {
    let first = &shards[0];
    let count = first.spec.shard.count;
    for s in shards {
        let mismatch = |what: &str| {
            Err(JobError::Failed(format!(
                "{} and {}: {what} differ: not shards of one run",
                first.path.display(),
                s.path.display()
            )))
        };
        if s.spec.shard.count != count {
            return mismatch("the shard counts");
        }
        let differences = s
            .spec
            .with_shard(Shard::WHOLE)
            .differences(&first.spec.with_shard(Shard::WHOLE));
        if !differences.is_empty() {
            return mismatch(&differences.join(", "));
        }
    }
    let present: Vec<usize> = shards.iter().map(|s| s.spec.shard.index).collect();
    let missing: Vec<String> = (0..count)
        .filter(|i| !present.contains(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(JobError::Failed(format!(
            "shard(s) {} missing: score them with `anomalymatch score --shard I/{count}`",
            missing.join(", ")
        )));
    }
    // Sorted and complete, so each index appears once; their item ranges then tile the source.
    let mut next = 0;
    for s in shards {
        let items = s.spec.shard_items();
        if items.start != next {
            return Err(JobError::Failed(format!(
                "{}: covers items {items:?}, expected from {next}: shards overlap or leave a gap",
                s.path.display()
            )));
        }
        next = items.end;
        if s.rows + s.unreadable != items.len() {
            return Err(JobError::Failed(format!(
                "{}: {} scored and {} unreadable images, but the shard has {}: incomplete",
                s.path.display(),
                s.rows,
                s.unreadable,
                items.len()
            )));
        }
    }
    if next != first.spec.items {
        return Err(JobError::Failed(format!(
            "the shards cover {next} of the source's {} items",
            first.spec.items
        )));
    }
    Ok(first.spec.clone())
}
