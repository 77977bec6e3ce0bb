//! Decodes every image of a folder at the protocol's 96x96 and reports images/s, streaming
//! chunk by chunk so memory stays flat.
//!
//! `cargo run --release --example load_images [DIR]` (default: `../shared/data/gz1-sdss/images`)

use anomalymatch::core::{Check, DataConfig, FolderSource};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/gz1-sdss/images"),
        PathBuf::from,
    );
    let loader = DataConfig::default().check()?.build(())?;
    let mut source = FolderSource::open(&dir)?;
    let t = Instant::now();
    let report = loader.for_each_chunk(&mut source, true, |_| Ok(()))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}: {} images in {secs:.2} s ({:.0} images/s), {} unreadable",
        dir.display(),
        report.loaded,
        report.loaded as f64 / secs,
        report.failed.len()
    );
    Ok(())
}
