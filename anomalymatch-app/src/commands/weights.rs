//! `anomalymatch weights convert IN OUT`: a PyTorch EfficientNet state dict (`.pth`, including
//! the legacy pre-1.6 layout) to safetensors with the same tensor names, for `model.weights`.

use crate::stdout::Console;
use anomalymatch_jobs::{Report, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Arguments of `weights`.
#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// What to do with weight files.
    #[command(subcommand)]
    pub action: WeightsAction,
}

/// The actions of `weights`.
#[derive(Debug, Subcommand)]
pub enum WeightsAction {
    /// Converts a `.pth` (or safetensors) weight file to an f32 safetensors file, written
    /// atomically.
    Convert {
        /// The weight file read.
        input: PathBuf,
        /// The safetensors file written.
        output: PathBuf,
        /// Prints nothing on success.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Runs `weights`.
pub fn run(args: WeightsArgs) -> Result<()> {
    match args.action {
        WeightsAction::Convert {
            input,
            output,
            quiet,
        } => {
            let n = anomalymatch_models::weights::convert_to_safetensors(&input, &output)?;
            Console::new(quiet).say(&format!("{}: {n} tensors written", output.display()));
        }
    }
    Ok(())
}
