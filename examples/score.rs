//! Scores a whole image collection with a trained model, streaming: images are decoded and
//! scored chunk by chunk, so memory stays flat however many there are. Writes every score
//! (`filename,score`, in folder order) and the ranked top candidates, each file atomically.
//!
//! ```sh
//! cargo run --release --example discover                  # trains; writes out/discover/checkpoint.safetensors
//! cargo run --release --example score -- [--checkpoint out/discover/checkpoint.safetensors]
//!     [--images data/gz1-mini/images] [--out out/score] [--top 100] [--size 96] [--batch 256]
//!     [--quiet]
//! ```
//!
//! Scores come from the checkpoint's EMA model, as in training.

#![allow(clippy::unwrap_used)]

use anomalymatch::core::atomic::write_atomic;
use anomalymatch::core::checkpoint::load_checkpoint;
use anomalymatch::core::{Error, FolderSource, LoaderConfig, Ranking, score_source};
use anomalymatch::models::pretrained_lite0;
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

struct Args {
    checkpoint: PathBuf,
    images: PathBuf,
    out: PathBuf,
    top: usize,
    size: usize,
    batch: usize,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        checkpoint: "out/discover/checkpoint.safetensors".into(),
        images: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gz1-mini/images"),
        out: "out/score".into(),
        top: 100,
        size: 96,
        batch: 256,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|_| format!("bad number {v:?}"));
        match flag.as_str() {
            "--checkpoint" => a.checkpoint = value()?.into(),
            "--images" => a.images = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--top" => a.top = num(value()?)?,
            "--size" => a.size = num(value()?)?,
            "--batch" => a.batch = num(value()?)?,
            "--quiet" => a.quiet = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    anomalymatch::allocator::keep_freed_pages();
    let args = parse_args()?;
    if !args.checkpoint.exists() {
        return Err(format!(
            "{} not found: train first (cargo run --release --example discover)",
            args.checkpoint.display()
        )
        .into());
    }
    let (model, ema) = (
        pretrained_lite0(3, 2, &Device::Cpu)?,
        pretrained_lite0(3, 2, &Device::Cpu)?,
    );
    load_checkpoint(&args.checkpoint, &model, &ema)?;
    drop(model);
    let loader = LoaderConfig {
        size: args.size,
        ..LoaderConfig::default()
    }
    .build()?;
    let mut source = FolderSource::open(&args.images)?;
    std::fs::create_dir_all(&args.out)?;

    // Every score goes to the file as it comes; core's atomic write renames it into place only
    // when the whole collection is done. A scoring error is kept to be returned as itself.
    let scores_path = args.out.join("scores.csv");
    let (mut best_names, mut best_scores) = (Vec::new(), Vec::new());
    let mut count = 0usize;
    let mut outcome = None;
    let t = Instant::now();
    let written = write_atomic(&scores_path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["filename", "score"])?;
        let result = score_source(
            &ema,
            &loader,
            &mut source,
            args.batch,
            !args.quiet,
            |names, scores| {
                for (n, s) in names.iter().zip(scores) {
                    csv.write_record([n.as_str(), &format!("{s:.6}")])
                        .map_err(|e| Error::io(&scores_path, e.into()))?;
                }
                count += names.len();
                // Keep the running top candidates only, so memory does not grow with the
                // collection.
                best_names.extend_from_slice(names);
                best_scores.extend_from_slice(scores);
                if best_names.len() > 4 * args.top.max(1) {
                    keep_top(&mut best_names, &mut best_scores, args.top)?;
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
        None => return Err(written.unwrap_err().into()),
    };
    written?;
    let secs = t.elapsed().as_secs_f64();
    keep_top(&mut best_names, &mut best_scores, args.top)?;
    let ranking = Ranking::new(&best_names, &best_scores)?;
    let top_path = args.out.join("top_candidates.csv");
    ranking.write_csv(&top_path)?;
    println!(
        "scored {count} images in {secs:.1} s ({:.0} images/s); {} unreadable",
        count as f64 / secs,
        report.failed.len()
    );
    for f in report.failed.iter().take(10) {
        eprintln!("  unreadable {}: {}", f.origin, f.message);
    }
    println!("wrote {} and {}", scores_path.display(), top_path.display());
    for (i, r) in ranking.top(10).iter().enumerate() {
        println!("  #{:<2} {:<28} {:.4}", i + 1, r.name, r.score);
    }
    Ok(())
}

/// Keeps the `k` highest-scored pairs, best first.
fn keep_top(
    names: &mut Vec<String>,
    scores: &mut Vec<f32>,
    k: usize,
) -> anomalymatch::core::Result<()> {
    let ranking = Ranking::new(names, scores)?;
    (*names, *scores) = ranking
        .top(k)
        .iter()
        .map(|r| (r.name.clone(), r.score))
        .unzip();
    Ok(())
}

fn main() {
    anomalymatch::threads::one_candle_thread();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
