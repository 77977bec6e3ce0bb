//! Writes a contact sheet of one Galaxy Zoo 1 galaxy under every augmentation op and under
//! random weak and strong views, to check by eye that the augmentations look right.
//!
//! ```sh
//! cargo run --release --example contact_sheet -- [--data DIR] [--image FILE] [--size 96] [--out out/contact_sheet.png]
//! ```
//!
//! The galaxy is the first `merger` in `DIR/classes.csv` (default DIR:
//! `<workspace>/../shared/data/gz1-sdss`) unless `--image` names a file in `DIR/images`. The
//! printed output says what each row and column of the sheet shows.

use anomalymatch_augment::{FixMatchAugmenter, Op};
use anomalymatch_core::{Augmenter, ImageBatch};
use image::{Rgb, RgbImage, imageops};
use std::error::Error;
use std::path::{Path, PathBuf};

/// Gap between tiles, in pixels.
const GAP: u32 = 4;
/// Tiles per row in the random-draw rows.
const PER_ROW: usize = 8;

struct Args {
    data: PathBuf,
    image: Option<String>,
    size: u32,
    out: PathBuf,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        data: root.join("../shared/data/gz1-sdss"),
        image: None,
        size: 96,
        out: root.join("out/contact_sheet.png"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => args.data = value()?.into(),
            "--image" => args.image = Some(value()?),
            "--size" => args.size = value()?.parse()?,
            "--out" => args.out = value()?.into(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.size < 8 {
        return Err("--size must be at least 8".into());
    }
    Ok(args)
}

/// The file name of the first merger in `classes.csv` (`filename,objid,class_id,class_name`).
fn first_merger(data: &Path) -> Result<String, Box<dyn Error>> {
    let path = data.join("classes.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .skip(1)
        .map(|line| line.split(',').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[3].trim() == "merger")
        .map(|f| f[0].to_string())
        .ok_or_else(|| format!("{}: no merger listed", path.display()).into())
}

/// Decodes and resizes an image into a batch of one RGB image.
fn load(path: &Path, size: u32) -> Result<ImageBatch, Box<dyn Error>> {
    let rgb = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgb8();
    let small = imageops::resize(&rgb, size, size, imageops::FilterType::Triangle);
    let plane = (size * size) as usize;
    let mut data = vec![0.0; 3 * plane];
    for (i, px) in small.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = px[c] as f32 / 255.0;
        }
    }
    Ok(ImageBatch::from_vec(data, 3, size as usize, size as usize)?)
}

/// A sheet of tiles on a dark background, filled row by row.
struct Sheet {
    canvas: RgbImage,
    size: u32,
}

impl Sheet {
    fn new(rows: usize, cols: usize, size: u32) -> Self {
        let side = |n: usize| n as u32 * (size + GAP) + GAP;
        Sheet {
            canvas: RgbImage::from_pixel(side(cols), side(rows), Rgb([40, 40, 40])),
            size,
        }
    }

    /// Draws image `i` of `batch` at tile (`row`, `col`).
    fn put(&mut self, row: usize, col: usize, batch: &ImageBatch, i: usize) {
        let s = self.size as usize;
        let img = batch.image(i);
        let (x0, y0) = (
            GAP + col as u32 * (self.size + GAP),
            GAP + row as u32 * (self.size + GAP),
        );
        for y in 0..s {
            for x in 0..s {
                let level = |c: usize| {
                    (img[c * s * s + y * s + x] * 255.0)
                        .round()
                        .clamp(0.0, 255.0) as u8
                };
                self.canvas.put_pixel(
                    x0 + x as u32,
                    y0 + y as u32,
                    Rgb([level(0), level(1), level(2)]),
                );
            }
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let name = match &args.image {
        Some(name) => name.clone(),
        None => first_merger(&args.data)?,
    };
    let galaxy = load(&args.data.join("images").join(&name), args.size)?;

    let ops: Vec<Op> = Op::FIXMATCH
        .into_iter()
        .chain([Op::FlipH, Op::FlipV, Op::Rot90])
        .collect();
    let fixmatch = FixMatchAugmenter::fixmatch();
    let astro = FixMatchAugmenter::astro();
    let strong = fixmatch.strong(&galaxy.select(&[0; 16])?, 1)?;
    let weak = fixmatch.weak(&galaxy.select(&[0; PER_ROW])?, 2)?;
    let astro_strong = astro.strong(&galaxy.select(&[0; PER_ROW])?, 3)?;
    let astro_weak = astro.weak(&galaxy.select(&[0; PER_ROW])?, 4)?;

    let draw_rows = 16 / PER_ROW + 3;
    let mut sheet = Sheet::new(ops.len() + draw_rows, PER_ROW.max(4), args.size);
    println!("{name} at {0}x{0}; sheet rows, top to bottom:", args.size);
    for (row, op) in ops.iter().enumerate() {
        let mags = columns(*op);
        sheet.put(row, 0, &galaxy, 0);
        if op.takes_magnitude() {
            for (col, m) in mags.iter().enumerate() {
                sheet.put(row, col + 1, &op.apply_to(*m, &galaxy)?, 0);
            }
            let shown: Vec<String> = mags.iter().map(|m| m.to_string()).collect();
            println!(
                "  {:>2}: {op:?}: original, then magnitudes {}",
                row + 1,
                shown.join(", ")
            );
        } else {
            sheet.put(row, 1, &op.apply_to(0.0, &galaxy)?, 0);
            println!(
                "  {:>2}: {op:?}: original, then {op:?} (no magnitude)",
                row + 1
            );
        }
    }
    let mut row = ops.len();
    for (label, batch) in [
        (
            "FixMatch strong views (RandAugment n=3 + Cutout), seed 1",
            &strong,
        ),
        (
            "FixMatch weak views (flip + shift <= 12.5%, reflect), seed 2",
            &weak,
        ),
        ("astro strong views, seed 3", &astro_strong),
        (
            "astro weak views (adds vertical flips, quarter turns), seed 4",
            &astro_weak,
        ),
    ] {
        let rows = batch.len().div_ceil(PER_ROW);
        for i in 0..batch.len() {
            sheet.put(row + i / PER_ROW, i % PER_ROW, batch, i);
        }
        println!(
            "  {:>2}{}: {label}",
            row + 1,
            if rows > 1 {
                format!("-{}", row + rows)
            } else {
                String::new()
            }
        );
        row += rows;
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    sheet.canvas.save(&args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// The low, middle and high magnitudes shown for an op: the ends of FixMatch's range and its
/// midpoint, or half the top for ranges symmetric about 0 (whose midpoint changes nothing).
fn columns(op: Op) -> [f32; 3] {
    let (lo, hi) = op.fixmatch_range();
    let mid = if lo == -hi { hi / 2.0 } else { (lo + hi) / 2.0 };
    if matches!(op, Op::Posterize | Op::Rot90) {
        [lo, mid.floor(), hi]
    } else {
        [lo, mid, hi]
    }
}
