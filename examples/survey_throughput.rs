//! Images per second of each survey source at 64 and 96 pixels: decoding alone (read, decode or
//! stretch, resize), and decoding plus scoring with EfficientNet-Lite0 (the network is the
//! default one, untrained: the weights do not change the cost).
//!
//! ```text
//! cargo run --release --example survey_throughput [COUNT] [SIZE]
//! ```
//!
//! The inputs (COUNT synthetic cutouts stored at SIZE pixels, 2000 of 128 by default) are
//! written by the io crate's `make_bench_inputs.py` (numpy, h5py, astropy, Pillow) into a
//! temporary folder. Each source is read once to warm the page cache before it is timed.

use anomalymatch::core::{Check, Crop, DataConfig, ImageLoader, ScoreOptions, Scorer, Views};
use anomalymatch::io::{SourceFormat, SourceOptions, open_source};
use anomalymatch::models::{ModelConfig, ModelInput};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

type Failure = Box<dyn std::error::Error>;

// Measured as the `anomalymatch` binary runs: its allocator and thread setup (src/main.rs).
#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

fn loader(size: usize) -> Result<ImageLoader, Failure> {
    Ok(DataConfig {
        size,
        // The sources are compared on the same pixels; `auto` framing would add its own pass.
        crop: Crop::WHOLE,
        ..DataConfig::default()
    }
    .check()?
    .build(())?)
}

fn main() -> Result<(), Failure> {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { anomalymatch::threads::one_candle_thread() };
    anomalymatch::allocator::keep_freed_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = args.first().map(String::as_str).unwrap_or("2000");
    let stored = args.get(1).map(String::as_str).unwrap_or("128");
    let dir = tempfile::tempdir()?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("anomalymatch-io/examples/make_bench_inputs.py");
    eprintln!(
        "writing {count} cutouts of {stored} px into {}",
        dir.path().display()
    );
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .args([count, stored])
        .status()?;
    if !status.success() {
        return Err("make_bench_inputs.py failed (pip install h5py astropy numpy pillow)".into());
    }
    let sources = [
        ("JPEG folder", "jpeg", SourceFormat::ImageFolder),
        ("zip of JPEGs", "images.zip", SourceFormat::Zip),
        ("HDF5 encoded (gzip)", "encoded.h5", SourceFormat::Hdf5),
        (
            "HDF5 cube uint8 (N,H,W,3)",
            "cube_u8.h5",
            SourceFormat::Hdf5,
        ),
        (
            "HDF5 cube float32, stretched",
            "cube_f32.h5",
            SourceFormat::Hdf5,
        ),
        (
            "FITS folder float32, stretched",
            "fits",
            SourceFormat::FitsFolder,
        ),
    ];
    let mut models = Vec::new();
    for size in [64, 96] {
        let input = ModelInput {
            in_channels: 3,
            num_classes: anomalymatch::core::Label::CLASSES,
            seed: 0,
        };
        let config = ModelConfig {
            pretrained: false,
            ..ModelConfig::default()
        };
        models.push((size, config.check()?.build(input)?));
    }
    println!(
        "| source ({count} images stored at {stored} px) | decode 64 | decode+score 64 | decode 96 | decode+score 96 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, name, format) in sources {
        let path = dir.path().join(name);
        let options = SourceOptions {
            format,
            ..SourceOptions::default()
        };
        let mut row = Vec::new();
        for (size, model) in &models {
            let loader = loader(*size)?;
            let mut source = open_source(&path, &options)?;
            loader.for_each_chunk(source.as_mut(), false, |_| Ok(()))?; // warms the page cache
            source.rewind()?;
            let t = Instant::now();
            let report = loader.for_each_chunk(source.as_mut(), false, |_| Ok(()))?;
            let decode = report.loaded as f64 / t.elapsed().as_secs_f64();
            source.rewind()?;
            let t = Instant::now();
            let options = ScoreOptions {
                batch_size: 256,
                views: Views::Single,
                embeddings: false,
                progress: false,
            };
            let (mut loaded, mut failed) = (0, 0);
            Scorer::new(model, options).stream(&loader, source.as_mut(), None, |chunk| {
                loaded += chunk.names.len();
                failed += chunk.failed.len();
                Ok(())
            })?;
            let scored = loaded as f64 / t.elapsed().as_secs_f64();
            if failed > 0 {
                return Err(format!("{label}: {failed} images failed").into());
            }
            row.push(format!("{decode:.0} | {scored:.0}"));
        }
        println!("| {label} | {} | {} |", row[0], row[1]);
    }
    Ok(())
}
