//! Decode-only throughput of each source: images per second read, decoded (or stretched),
//! resized and channel-composed by core's loader, without a model.
//!
//! ```text
//! cargo run --release -p anomalymatch-io --example source_throughput [COUNT] [SIZE]
//! ```
//!
//! The inputs (COUNT synthetic cutouts of SIZE pixels, 2000 of 128 by default) are written at
//! run time into a temporary folder by `make_bench_inputs.py` beside this file, which needs
//! Python with numpy, h5py, astropy and Pillow: HDF5 and FITS files are written by the tools
//! astronomers use. Each source is read once to warm the page cache, then timed at 64 and 96
//! pixels (best of two runs).

use anomalymatch_core::{ChannelMode, Check, DataConfig};
use anomalymatch_io::{SourceFormat, SourceOptions, open_source};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

type Failure = Box<dyn std::error::Error>;

/// Loads everything `path` holds at `size` pixels; returns images per second.
fn throughput(path: &Path, format: SourceFormat, size: usize) -> Result<f64, Failure> {
    let options = SourceOptions {
        format,
        ..SourceOptions::default()
    };
    let loader = DataConfig {
        size,
        channels: ChannelMode::Rgb,
        ..DataConfig::default()
    }
    .check()?
    .build(())?;
    let start = Instant::now();
    let mut source = open_source(path, &options)?;
    let report = loader.for_each_chunk(source.as_mut(), false, |_| Ok(()))?;
    let seconds = start.elapsed().as_secs_f64();
    if !report.failed.is_empty() {
        return Err(format!("{}: {} images failed", path.display(), report.failed.len()).into());
    }
    Ok(report.loaded as f64 / seconds)
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = args.first().map(String::as_str).unwrap_or("2000");
    let size = args.get(1).map(String::as_str).unwrap_or("128");
    let dir = tempfile::tempdir()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/make_bench_inputs.py");
    eprintln!(
        "writing {count} cutouts of {size} px into {}",
        dir.path().display()
    );
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .args([count, size])
        .status()?;
    if !status.success() {
        return Err(format!(
            "{} failed (pip install h5py astropy numpy pillow)",
            script.display()
        )
        .into());
    }
    let sources = [
        ("JPEG folder", "jpeg", SourceFormat::ImageFolder),
        ("zip of JPEGs", "images.zip", SourceFormat::Zip),
        (
            "HDF5 encoded (original layout, gzip)",
            "encoded.h5",
            SourceFormat::Hdf5,
        ),
        (
            "HDF5 cube uint8 (N,H,W,3)",
            "cube_u8.h5",
            SourceFormat::Hdf5,
        ),
        (
            "HDF5 cube float32 (N,H,W), stretched",
            "cube_f32.h5",
            SourceFormat::Hdf5,
        ),
        (
            "FITS folder float32, stretched",
            "fits",
            SourceFormat::FitsFolder,
        ),
    ];
    println!("| source ({count} images of {size} px) | 64 px images/s | 96 px images/s |");
    println!("| --- | ---: | ---: |");
    for (label, name, format) in sources {
        let path = dir.path().join(name);
        throughput(&path, format, 96)?; // warms the page cache
        let mut row = Vec::new();
        for target in [64, 96] {
            let best = (0..2)
                .map(|_| throughput(&path, format, target))
                .collect::<Result<Vec<f64>, Failure>>()?
                .into_iter()
                .fold(0.0, f64::max);
            row.push(format!("{best:.0}"));
        }
        println!("| {label} | {} | {} |", row[0], row[1]);
    }
    Ok(())
}
