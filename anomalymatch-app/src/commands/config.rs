//! `anomalymatch config`: prints the default configuration with a comment on every key, or
//! checks a file (`config check FILE`).

use crate::stdout::out;
use anomalymatch_jobs::Result;
use anomalymatch_jobs::config::{DEFAULT_TOML, load};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Arguments of `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Without an action, prints the default configuration.
    #[command(subcommand)]
    pub action: Option<ConfigAction>,
}

/// What `config` does besides printing the default.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Checks a configuration file: unknown keys, bad types and out-of-range values, each
    /// named with its line or key.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// Runs `config`.
pub fn run(args: ConfigArgs) -> Result<()> {
    match args.action {
        None => crate::stdout::write(format_args!("{DEFAULT_TOML}")),
        Some(ConfigAction::Check { file }) => {
            load(Some(&file), &[])?;
            out!("{}: ok", file.display());
        }
    }
    Ok(())
}
