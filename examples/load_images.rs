//! Loads every image of a folder at a fixed size and reports the decoding speed.
//!
//! `cargo run --release --example load_images -- [DIR] [--size 96] [--quiet]`
//!
//! DIR defaults to the shared gz1-sdss images (`../shared/data/gz1-sdss/images` next to the
//! workspace). Images are streamed chunk by chunk and dropped, so memory stays flat.

use anomalymatch::core::{FolderSource, LoaderConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut dir = None;
    let mut size = 96;
    let mut quiet = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size" => {
                let value = args.next().ok_or("--size needs a value")?;
                size = value
                    .parse()
                    .map_err(|_| format!("--size: {value:?} is not a whole number"))?;
            }
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("usage: load_images [DIR] [--size 96] [--quiet]");
                return Ok(());
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let dir = match dir {
        Some(d) => d,
        None => {
            let d =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/gz1-sdss/images");
            if !d.is_dir() {
                println!(
                    "{} not found: pass an image folder as the first argument",
                    d.display()
                );
                return Ok(());
            }
            d
        }
    };

    let loader = LoaderConfig {
        size,
        ..LoaderConfig::default()
    }
    .build()
    .map_err(|e| e.to_string())?;
    let mut source = FolderSource::open(&dir).map_err(|e| e.to_string())?;
    let threads = rayon_threads();
    let start = Instant::now();
    let report = loader
        .for_each_chunk(&mut source, !quiet, |_chunk| Ok(()))
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let total = report.loaded + report.failed.len();
    println!(
        "{}: {} images at {size}x{size} in {secs:.2} s: {:.0} images/s on {threads} threads; {} failed",
        dir.display(),
        total,
        total as f64 / secs,
        report.failed.len()
    );
    for failed in report.failed.iter().take(10) {
        println!("  failed: {}: {}", failed.origin, failed.message);
    }
    Ok(())
}

/// Threads the decoder uses (rayon's global pool: all cores unless RAYON_NUM_THREADS says otherwise).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
