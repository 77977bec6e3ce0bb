//! `anomalymatch score`: a checkpoint and images to every score (`scores.csv`, in source
//! order), the top candidates (`top_candidates.csv`) and their contact sheet
//! (`top_candidates.png`). The checkpoint alone says how to decode the images and which network
//! to build; images that do not fit it are refused before any scoring. Scoring streams chunk by
//! chunk, so memory stays flat however large the collection is, and the three files replace
//! earlier ones together, only when the whole run succeeded.

use crate::assemble::{self, say};
use crate::cli::{Common, Flags, ImagesFlag, int, push};
use crate::config::Override;
use crate::error::{AppError, Result};
use crate::outputs;
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::{Check, Ranking, score_source};
use anomalymatch_models::{from_checkpoint, parse_device};
use clap::Args;
use std::io::Write;
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
    /// Top candidates listed and shown [key: score.top].
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Images per forward pass [key: score.batch_size].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
}

impl Flags for ScoreArgs {
    fn overrides(&self, all: &mut Vec<Override>) {
        push(all, "score.top", self.top.map(int), "--top");
        push(all, "score.batch_size", self.batch.map(int), "--batch");
    }
}

/// Runs `score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.images, &args])?;
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
    // The checkpoint's pixels, whatever the configuration says: scoring must see what training saw.
    let loader = config
        .data
        .clone()
        .with_spec(info.data)
        .check()?
        .build(())?;
    let mut source = assemble::open_source(&config, &images)?;
    check_fits(&loader, source.as_mut(), &checkpoint)?;
    assemble::prepare_output(out, quiet)?;
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

    let scores_path = out.join("scores.csv");
    let top_n = config.score.top;
    let (mut best_names, mut best_scores) = (Vec::new(), Vec::new());
    let mut count = 0usize;
    let mut outcome = None;
    let t = Instant::now();
    let mut group = AtomicGroup::new();
    let written = group.write(&scores_path, |w| {
        writeln!(w, "filename,score")?;
        let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        let result = score_source(
            &model,
            &loader,
            source.as_mut(),
            config.score.batch_size,
            !quiet,
            |names, scores| {
                if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
                    return Err(anomalymatch_core::Error::InvalidArgument(format!(
                        "the checkpoint scores {} as {}: it is broken",
                        names[i], scores[i]
                    )));
                }
                for (n, s) in names.iter().zip(scores) {
                    csv.write_record([n.as_str(), &format!("{s:.6}")])
                        .map_err(|e| anomalymatch_core::Error::io(&scores_path, e.into()))?;
                }
                count += names.len();
                // Only the running top is kept, so memory does not grow with the collection.
                best_names.extend_from_slice(names);
                best_scores.extend_from_slice(scores);
                if best_names.len() > 4 * top_n {
                    keep_top(&mut best_names, &mut best_scores, top_n)?;
                }
                Ok(())
            },
        );
        let failed = result.is_err();
        outcome = Some(result);
        if failed {
            return Err(std::io::Error::other("scoring failed"));
        }
        csv.flush()
    });
    let report = match outcome {
        Some(result) => result?,
        None => {
            return Err(written.err().map_or_else(
                || AppError::Failed("scoring did not start".into()),
                Into::into,
            ));
        }
    };
    written?;
    let secs = t.elapsed().as_secs_f64();
    keep_top(&mut best_names, &mut best_scores, top_n)?;
    let ranking = Ranking::new(&best_names, &best_scores)?;
    let (top_csv, sheet) = (
        out.join("top_candidates.csv"),
        out.join("top_candidates.png"),
    );
    outputs::ranking_csv(&mut group, &top_csv, &ranking)?;
    outputs::contact_sheet(
        &mut group,
        &sheet,
        ranking.entries(),
        &loader,
        source.as_mut(),
    )?;
    group.commit()?;
    println!(
        "scored {count} images in {secs:.1} s ({:.0} images/s); {} unreadable",
        count as f64 / secs.max(1e-9),
        report.failed.len()
    );
    for f in report.failed.iter().take(5) {
        eprintln!("warning: unreadable {}: {}", f.origin, f.message);
    }
    say(
        quiet,
        format!(
            "wrote {}, {} and {}",
            scores_path.display(),
            top_csv.display(),
            sheet.display()
        ),
    );
    Ok(())
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

/// Keeps the `k` highest-scored pairs, best first.
fn keep_top(
    names: &mut Vec<String>,
    scores: &mut Vec<f32>,
    k: usize,
) -> anomalymatch_core::Result<()> {
    let ranking = Ranking::new(names, scores)?;
    (*names, *scores) = ranking
        .top(k)
        .iter()
        .map(|r| (r.name.clone(), r.score))
        .unzip();
    Ok(())
}
