//! Renders a sample contact sheet of toy 5-band and 3-band galaxies for a person to look at
//! (`<target>/tmp/contact_sheet_sample.png`), and checks that it reads back as rendered.

use anomalymatch_core::{Check, ImageBatch};
use anomalymatch_io::{SheetParams, Tile};

/// `n` toy galaxies of `bands` bands, `side` pixels square: an elliptical Gaussian blob whose
/// brightness across bands follows a slope that changes with the image, so that hues differ,
/// on a faint background.
fn galaxies(n: usize, bands: usize, side: usize) -> ImageBatch {
    let mut batch = ImageBatch::zeros(n, bands, side, side);
    for i in 0..n {
        let img = batch.image_mut(i);
        let slope = i as f32 / (n - 1).max(1) as f32 * 2.0 - 1.0;
        let (cx, cy) = (side as f32 * 0.5, side as f32 * (0.4 + 0.04 * i as f32));
        let (sx, sy) = (side as f32 * 0.15, side as f32 * 0.08);
        for b in 0..bands {
            let t = b as f32 / (bands - 1).max(1) as f32 - 0.5;
            let amp = (0.7 + slope * t).clamp(0.05, 1.0);
            for y in 0..side {
                for x in 0..side {
                    let dx = (x as f32 - cx) / sx;
                    let dy = (y as f32 - cy) / sy;
                    let v = 0.05 + amp * (-(dx * dx + dy * dy) / 2.0).exp();
                    img[(b * side + y) * side + x] = v;
                }
            }
        }
    }
    batch
}

#[test]
fn sample_sheet_of_five_and_three_band_images() {
    let five = galaxies(6, 5, 48);
    let three = galaxies(5, 3, 160);
    let names: Vec<String> = (0..11)
        .map(|i| match i {
            0 => "J095921.36+021742.5_ugriz.fits".to_string(),
            5 => "a_very_long_object_identifier_from_a_survey_catalogue.fits".to_string(),
            _ => format!("obj{i:03}.png"),
        })
        .collect();
    let mut tiles = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let score = 1.0 - k as f32 * 0.09;
        let tile = if k < 6 {
            Tile::from_batch(&five, k, k + 1, score, name)
        } else {
            Tile::from_batch(&three, k - 6, k + 1, score, name)
        };
        tiles.push(tile.unwrap());
    }
    let sheet = SheetParams {
        columns: 4,
        ..SheetParams::default()
    }
    .check()
    .unwrap()
    .build(())
    .unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("contact_sheet_sample.png");
    sheet.write(&path, &tiles).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, sheet.render(&tiles).unwrap());
    assert_eq!(back.width(), 8 + 4 * (128 + 8));
    println!("sample sheet: {}", path.display());
}
