//! Find anomaly candidates in a folder of images from a handful of labels: train FixMatch on a
//! pretrained EfficientNet-Lite0, score every unlabelled image with the EMA model, and write the
//! ranking (CSV), a contact sheet of the top candidates (PNG) and the training checkpoint.
//!
//! ```sh
//! cargo run --release --example discover                      # built-in data/gz1-mini
//! cargo run --release --example discover -- --images DIR --labels labeled_data.csv \
//!     [--out out/discover] [--iters 40] [--size 96] [--seed 42] [--top 32] [--quiet]
//! ```
//!
//! With the built-in data, whose hidden classes ship in `classes.csv`, it also reports how many
//! mergers the top candidates hold; the labels it trains on never include them.

#![allow(clippy::unwrap_used)]

use anomalymatch::augment::FixMatchAugmenter;
use anomalymatch::core::fixmatch::{FixMatch, TrainData};
use anomalymatch::core::{
    ClassTable, Config, FolderDataset, FolderSource, ImageBatch, LabelTable, LoaderConfig, Ranking,
    RankingMetrics, Validate, anomaly_scores,
};
use anomalymatch::models::pretrained_lite0;
use candle_core::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

struct Args {
    images: PathBuf,
    labels: PathBuf,
    out: PathBuf,
    iters: usize,
    size: usize,
    seed: u64,
    top: usize,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        images: root.join("data/gz1-mini/images"),
        labels: root.join("data/gz1-mini/labeled_data.csv"),
        out: PathBuf::from("out/discover"),
        iters: 40,
        size: 96,
        seed: 42,
        top: 32,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v:?}"));
        match flag.as_str() {
            "--images" => a.images = value()?.into(),
            "--labels" => a.labels = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--iters" => a.iters = num(value()?)? as usize,
            "--size" => a.size = num(value()?)? as usize,
            "--seed" => a.seed = num(value()?)?,
            "--top" => a.top = num(value()?)? as usize,
            "--quiet" => a.quiet = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn main() {
    anomalymatch::threads::one_candle_thread();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    anomalymatch::allocator::keep_freed_pages();
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let t0 = Instant::now();

    let table = LabelTable::read(&args.labels)?;
    let loader = LoaderConfig {
        size: args.size,
        ..LoaderConfig::default()
    }
    .build()?;
    let labels = table.rows().iter().map(|r| (r.filename.clone(), r.label));
    let data = FolderDataset::open(&args.images, labels, &loader, !args.quiet)?;
    if !data.report.missing.is_empty() {
        eprintln!(
            "warning: {} labelled file(s) not found, first: {}",
            data.report.missing.len(),
            data.report.missing[0]
        );
    }
    let mut source = FolderSource::with_names(&args.images, data.unlabelled.clone())?;
    let pool = loader.load_all(&mut source, !args.quiet)?;
    for f in pool
        .report
        .failed
        .iter()
        .chain(&data.report.labelled_load.failed)
    {
        eprintln!("warning: skipped unreadable {}: {}", f.origin, f.message);
    }
    println!(
        "loaded {} labelled ({} anomalies) and {} unlabelled images in {:.1} s",
        data.labelled.len(),
        data.labelled.count(anomalymatch::core::Label::Anomaly),
        pool.names.len(),
        t0.elapsed().as_secs_f64()
    );

    let model = pretrained_lite0(3, 2, &Device::Cpu)?;
    let train = Config::default().train.validate()?;
    let mut trainer = FixMatch::new(model, FixMatchAugmenter::fixmatch(), train, args.seed)?;
    trainer.set_progress(!args.quiet);
    let t1 = Instant::now();
    let mut last = None;
    trainer.fit(
        &TrainData {
            labelled: data.labelled.images(),
            labels: data.labelled.labels(),
            unlabelled: &pool.images,
        },
        args.iters,
        &mut |m| last = Some(*m),
    )?;
    if let Some(m) = last {
        println!(
            "trained {} steps in {:.1} s: loss {:.3}, labelled accuracy {:.2}, mask ratio {:.2}",
            m.iteration,
            t1.elapsed().as_secs_f64(),
            m.loss,
            m.labelled_accuracy,
            m.mask_ratio
        );
    }

    let t2 = Instant::now();
    let scores = anomaly_scores(trainer.ema(), &pool.images, 128)?;
    println!(
        "scored {} images in {:.1} s",
        scores.len(),
        t2.elapsed().as_secs_f64()
    );
    let ranking = Ranking::new(&pool.names, &scores)?;
    let csv = args.out.join("candidates.csv");
    ranking.write_csv(&csv)?;
    let sheet = args.out.join("top_candidates.png");
    write_contact_sheet(&sheet, &ranking, &pool.names, &pool.images, args.top)?;
    let ckpt = args.out.join("checkpoint.safetensors");
    trainer.save_checkpoint(&ckpt)?;
    println!(
        "wrote {}, {} and {}",
        csv.display(),
        sheet.display(),
        ckpt.display()
    );
    for (i, r) in ranking.top(10).iter().enumerate() {
        println!("  #{:<2} {:<28} {:.4}", i + 1, r.name, r.score);
    }
    report_hidden_truth(&args.images, &pool.names, &scores, &ranking, args.top);
    Ok(())
}

/// The top candidates as a grid of tiles, best first, left to right, top to bottom; each tile
/// has a bar along its bottom edge whose length is the score.
fn write_contact_sheet(
    path: &Path,
    ranking: &Ranking,
    names: &[String],
    images: &ImageBatch,
    top: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let (h, w) = (images.height(), images.width());
    let cols = 8;
    let chosen = ranking.top(top);
    let rows = chosen.len().div_ceil(cols).max(1);
    let mut sheet = image::RgbImage::new((cols * (w + 2)) as u32, (rows * (h + 2)) as u32);
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for (k, r) in chosen.iter().enumerate() {
        let img = images.image(index[r.name.as_str()]);
        let (ox, oy) = ((k % cols) * (w + 2) + 1, (k / cols) * (h + 2) + 1);
        let plane = h * w;
        for y in 0..h {
            for x in 0..w {
                let px = |c: usize| {
                    (img[(c.min(images.channels() - 1)) * plane + y * w + x] * 255.0).round() as u8
                };
                let bar = y + 3 >= h && (x as f32) < r.score * w as f32;
                let rgb = if bar {
                    [255, 200, 0]
                } else {
                    [px(0), px(1), px(2)]
                };
                sheet.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(rgb));
            }
        }
    }
    let tmp = path.with_extension("png.tmp");
    sheet.save_with_format(&tmp, image::ImageFormat::Png)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// For folders laid out like gz1 (`images/` beside `classes.csv`), how many mergers the ranking
/// put on top; the classes were never shown to the model.
fn report_hidden_truth(
    images: &Path,
    names: &[String],
    scores: &[f32],
    ranking: &Ranking,
    top: usize,
) {
    let Some(classes) = images.parent().map(|p| p.join("classes.csv")) else {
        return;
    };
    let Ok(table) = ClassTable::read(&classes) else {
        return;
    };
    let labels = table.labels("merger", None);
    let is_merger = |name: &str| labels.get(name) == Some(&anomalymatch::core::Label::Anomaly);
    let truth: Vec<bool> = names.iter().map(|n| is_merger(n)).collect();
    let in_top = ranking
        .top(top)
        .iter()
        .filter(|r| is_merger(&r.name))
        .count();
    if let Ok(m) = RankingMetrics::compute(scores, &truth) {
        println!(
            "hidden truth ({}): {in_top} of the top {top} are mergers ({} mergers among {} unlabelled); AUROC {:.3}, AUPRC {:.3}",
            classes.display(),
            m.anomalies,
            m.n,
            m.auroc,
            m.average_precision
        );
    }
}
