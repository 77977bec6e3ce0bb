//! The `anomalymatch` application: one binary whose subcommands run the library's jobs
//! (`discover`, `train`, `score`, `label`, `serve`, `benchmark`, `config`) from one TOML configuration.
//!
//! The application only assembles: each crate owns its configuration section and builds its
//! component from it; this crate parses the command line ([`cli`]), reads and checks the
//! configuration ([`config`]), and runs one module per subcommand ([`commands`]). Errors are
//! one line on stderr; the exit code is 0 on success, 2 for a usage error (command line or
//! configuration) and 1 for any other failure.

pub mod cli;
pub mod commands;
pub mod error;
pub mod serve;
mod stdout;

use clap::Parser;
use std::process::ExitCode;

/// Runs the command line of this process and returns its exit code.
pub fn run() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match commands::run(cli.command).and_then(|()| stdout::finish()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", anomalymatch_core::printable(&e.one_line()));
            error::exit_code(&e)
        }
    }
}
