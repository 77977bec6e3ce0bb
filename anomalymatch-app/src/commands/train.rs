//! `anomalymatch train` ([`anomalymatch_jobs::train`]): labelled plus unlabelled images to a checkpoint, starting fresh or
//! continuing an existing checkpoint (`--from`), which must have been trained on the same
//! pixels.

use crate::cli::{Common, DataFlags};
use crate::stdout::{Console, out};
use anomalymatch_jobs::Result;
use anomalymatch_jobs::train::train;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Images, labels, size and iterations.
    #[command(flatten)]
    pub data: DataFlags,
    /// A checkpoint to continue from (its iteration count and optimiser state carry on).
    #[arg(long, value_name = "CHECKPOINT")]
    pub from: Option<PathBuf>,
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.data])?;
    let trained = train(
        &config,
        args.from.as_deref(),
        &Console::new(args.common.quiet),
    )?;
    out!(
        "trained to iteration {} in {:.1} s; wrote {}",
        trained.iteration,
        trained.train_s,
        trained.checkpoint.display()
    );
    Ok(())
}
