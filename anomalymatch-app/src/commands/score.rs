//! `anomalymatch score` ([`anomalymatch_jobs::score`]): a checkpoint and images to every score (`scores.parquet`: name, origin,
//! score and optionally the embedding, in source order), the top candidates
//! (`top_candidates.csv`) and their contact sheet (`top_candidates.png`). The checkpoint alone
//! says how to decode the images and which network to build; images that do not fit it are
//! refused before any scoring. Scoring streams part by part with reading overlapping the
//! network, so memory stays flat however large the collection is; finished parts are kept in
//! `OUT/score-run`, so a stopped run resumes where it was, and the final files replace earlier
//! ones together, only when the whole run succeeded. With `--shard I/N` it scores one shard
//! into `scores-shard-I-of-N.parquet`, for `anomalymatch merge`.

use crate::cli::{Common, Flags, ImagesFlag, TopFlag, int, push};
use crate::stdout::{Console, out};
use anomalymatch_jobs::score::score;
use anomalymatch_jobs::{Override, Result, Shard, outputs};
use clap::Args;
use std::path::PathBuf;

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
    let report = Console::new(args.common.quiet);
    let s = score(&config, args.checkpoint.as_deref(), shard, &report)?;
    out!(
        "scored {} images{} in {:.1} s ({:.0} images/s); {} unreadable",
        s.rows,
        if shard == Shard::WHOLE {
            String::new()
        } else {
            format!(" (shard {shard}, items {:?})", s.items)
        },
        s.score_s,
        s.scored as f64 / s.score_s.max(1e-9),
        s.unreadable.len()
    );
    outputs::warn_unreadable(&s.unreadable, &report);
    report.wrote(&s.written);
    Ok(())
}
