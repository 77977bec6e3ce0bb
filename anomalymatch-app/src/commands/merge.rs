//! `anomalymatch merge` ([`anomalymatch_jobs::merge`]): the shards that `score --shard I/N` wrote to OUT, checked to be
//! complete, disjoint and from one checkpoint and source, become the global `scores.parquet`
//! (the same file a single `score` run writes), `top_candidates.csv` and the contact sheet.

use crate::cli::{Common, TopFlag};
use crate::stdout::{Console, out};
use anomalymatch_jobs::merge::merge;
use anomalymatch_jobs::{Result, outputs};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shared flags (OUT holds the shards and receives the merged files).
    #[command(flatten)]
    pub common: Common,
    /// The images, for the contact sheet [default: the source the shards record].
    #[arg(long, value_name = "PATH")]
    pub images: Option<PathBuf>,
    /// How many top candidates.
    #[command(flatten)]
    pub top: TopFlag,
}

/// Runs `merge`.
pub fn run(args: MergeArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.top])?;
    let report = Console::new(args.common.quiet);
    let m = merge(&config, args.images.as_deref(), &report)?;
    out!(
        "merged {} shards: {} images scored; {} unreadable",
        m.shards,
        m.rows,
        m.unreadable.len()
    );
    outputs::warn_unreadable(&m.unreadable, &report);
    report.wrote(&m.written);
    Ok(())
}
