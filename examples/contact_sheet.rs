//! A contact sheet of one galaxy under every augmentation op (low, middle and high magnitude)
//! and under random weak and strong views, each tile labelled with what it shows, to check by
//! eye that the augmentations look right. Uses the first merger of the built-in data.
//!
//! `cargo run --release --example contact_sheet` (writes `out/augmentations.png`)

use anomalymatch::augment::{FixMatchAugmenter, Op};
use anomalymatch::core::{
    Augmenter, Check, ClassTable, DataConfig, FolderSource, ImageBatch, Label,
};
use anomalymatch::io::{SheetParams, Tile};
use std::error::Error;
use std::path::Path;

fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gz1-mini");
    let classes = ClassTable::read(&root.join("classes.csv"))?.labels("merger", &[]);
    let mut mergers: Vec<&String> = classes
        .iter()
        .filter(|(_, l)| **l == Label::Anomaly)
        .map(|(n, _)| n)
        .collect();
    mergers.sort();
    let name = mergers
        .first()
        .ok_or("no merger in the built-in data")?
        .to_string();
    let loader = DataConfig::default().check()?.build(())?;
    let mut source = FolderSource::with_names(root.join("images"), [name.clone()])?;
    let stored = loader.load_all(&mut source, false)?.images;
    let galaxy = stored.to_batch();

    // Every view with its caption, in sheet order.
    let mut views: Vec<(String, ImageBatch)> = vec![("original".into(), galaxy.clone())];
    for op in Op::FIXMATCH
        .into_iter()
        .chain([Op::FlipH, Op::FlipV, Op::Rot90])
    {
        for m in magnitudes(op) {
            views.push((format!("{op:?} {m}"), op.apply_to(m, &galaxy)?));
        }
    }
    let eight = stored.select(&[0; 8])?;
    for (caption, augmenter, strong) in [
        ("fixmatch strong", FixMatchAugmenter::fixmatch(), true),
        ("fixmatch weak", FixMatchAugmenter::fixmatch(), false),
        ("astro strong", FixMatchAugmenter::astro(), true),
        ("astro weak", FixMatchAugmenter::astro(), false),
    ] {
        let batch = if strong {
            augmenter.strong(&eight, 1)?
        } else {
            augmenter.weak(&eight, 1)?
        };
        for i in 0..batch.len() {
            views.push((format!("{caption} {}", i + 1), batch.select(&[i])?));
        }
    }
    let tiles: Vec<Tile> = views
        .iter()
        .enumerate()
        .map(|(k, (caption, img))| Tile::from_batch(img, 0, k + 1, 0.0, caption))
        .collect::<Result<_, _>>()?;
    let sheet = SheetParams::default().check()?.build(())?;
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("out/augmentations.png");
    std::fs::create_dir_all(out.parent().ok_or("no parent")?)?;
    sheet.write(&out, &tiles)?;
    println!("{name}: {} views in {}", tiles.len(), out.display());
    Ok(())
}

/// The low, middle and high magnitudes of an op's FixMatch range (one for ops without one).
fn magnitudes(op: Op) -> Vec<f32> {
    if !op.takes_magnitude() {
        return vec![0.0];
    }
    let (lo, hi) = op.fixmatch_range();
    let mid = if lo == -hi { hi / 2.0 } else { (lo + hi) / 2.0 };
    vec![lo, mid, hi]
}
