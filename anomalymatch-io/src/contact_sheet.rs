//! Contact sheets: ranked images in a grid, best first, left to right and top to bottom, each
//! labelled with its rank, score and name, and written as PNG.
//!
//! Each tile is the image fitted into a `tile_size` square (aspect kept, centred), a thin bar
//! whose filled share is the score, then two lines of text: `#rank  score` and the name, elided
//! in the middle when it is wider than the tile. Images are shown by [`crate::display`]'s rule;
//! small cutouts are enlarged with nearest-neighbour sampling, so their true pixels stay visible,
//! and large ones reduced with a triangle filter spread over the reduction, which averages
//! rather than aliases.

use crate::display::to_rgb8;
use crate::error::{IoError, Result};
use crate::text::{Area, Cut, Pen};
use anomalymatch_core::config::{check_range, key};
use anomalymatch_core::{Build, Check, Checked, Error, ImageBatch};
use image::codecs::png::PngEncoder;
use image::imageops::{self, FilterType};
use image::{ImageEncoder, Rgb, RgbImage};
use std::path::Path;

/// Sheet background, also around images that are not square.
const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
/// Label text.
const TEXT: Rgb<u8> = Rgb([235, 235, 235]);
/// The unfilled part of the score bar.
const BAR_TRACK: Rgb<u8> = Rgb([64, 64, 64]);
/// The filled part of the score bar.
const BAR_FILL: Rgb<u8> = Rgb([255, 176, 0]);

/// Space between an image and its score bar, in pixels.
const BAR_GAP: u32 = 2;
/// Height of the score bar.
const BAR_HEIGHT: u32 = 3;
/// Space between the score bar and the first line of text.
const TEXT_GAP: u32 = 3;
/// Lines of text under each image: rank and score, then the name.
const TEXT_LINES: u32 = 2;

/// Tile sizes accepted, in pixels.
const TILE_SIZES: std::ops::RangeInclusive<u32> = 16..=1024;
/// Text sizes accepted (pixels from ascent to descent); below 8 no glyph is legible.
const TEXT_SIZES: std::ops::RangeInclusive<u32> = 8..=64;
/// Largest margin accepted, in pixels.
const MAX_MARGIN: u32 = 256;
/// Largest sheet rendered, in pixels (384 MiB of RGB); more tiles belong on several sheets.
const MAX_PIXELS: u128 = 1 << 27;

/// How a contact sheet is laid out; checked, it builds a [`ContactSheet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetParams {
    /// Tiles per row (at least 1); a sheet with fewer tiles is only as wide as they need.
    pub columns: usize,
    /// Side of the square each image is fitted into, in pixels (16..=1024).
    pub tile_size: u32,
    /// Space between tiles and around the sheet, in pixels (at most 256).
    pub margin: u32,
    /// Height of a line of label text from ascent to descent, in pixels (8..=64).
    pub text_size: u32,
}

impl Default for SheetParams {
    fn default() -> Self {
        SheetParams {
            columns: 8,
            tile_size: 128,
            margin: 8,
            text_size: 14,
        }
    }
}

impl Check for SheetParams {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        if self.columns == 0 {
            errors.push(format!(
                "{}: must be at least 1, got 0",
                key(prefix, "columns")
            ));
        }
        check_range(
            errors,
            key(prefix, "tile_size"),
            self.tile_size,
            *TILE_SIZES.start(),
            *TILE_SIZES.end(),
        );
        check_range(errors, key(prefix, "margin"), self.margin, 0, MAX_MARGIN);
        check_range(
            errors,
            key(prefix, "text_size"),
            self.text_size,
            *TEXT_SIZES.start(),
            *TEXT_SIZES.end(),
        );
    }
}

impl Build<()> for SheetParams {
    type Output = ContactSheet;
    type Error = IoError;

    /// A sheet with these settings and the bundled font at the text size.
    fn build_checked(params: &Checked<Self>, _: ()) -> Result<ContactSheet> {
        let pen = Pen::new(params.text_size as f32)?;
        Ok(ContactSheet {
            params: **params,
            pen,
        })
    }
}

/// One image on a sheet with its label: CHW values in `[0, 1]` and the image's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile<'a> {
    /// `channels * height * width` values, channel-first.
    pub image: &'a [f32],
    /// Channels (bands) of the image.
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Rank shown as `#rank` (1 for the most anomalous, by the callers' convention).
    pub rank: usize,
    /// Score shown with three decimals; its share of `[0, 1]` fills the score bar.
    pub score: f32,
    /// Name shown under the image, elided to the tile's width.
    pub name: &'a str,
}

impl<'a> Tile<'a> {
    /// The tile of image `index` of `batch`.
    pub fn from_batch(
        batch: &'a ImageBatch,
        index: usize,
        rank: usize,
        score: f32,
        name: &'a str,
    ) -> Result<Self> {
        if index >= batch.len() {
            return Err(IoError::Core(Error::InvalidArgument(format!(
                "image index {index} out of range for a batch of {}",
                batch.len()
            ))));
        }
        Ok(Tile {
            image: batch.image(index),
            channels: batch.channels(),
            height: batch.height(),
            width: batch.width(),
            rank,
            score,
            name,
        })
    }
}

/// A checked sheet layout with its font, ready to render any number of tiles.
#[derive(Debug, Clone)]
pub struct ContactSheet {
    params: SheetParams,
    pen: Pen,
}

impl ContactSheet {
    /// The layout.
    pub fn params(&self) -> &SheetParams {
        &self.params
    }

    /// Draws `tiles` in their order (best first) on a sheet; no tiles give a blank sheet of one
    /// margin's side.
    pub fn render(&self, tiles: &[Tile<'_>]) -> Result<RgbImage> {
        let (width, height) = self.sheet_size(tiles.len())?;
        let mut sheet = RgbImage::from_pixel(width, height, BACKGROUND);
        for (k, tile) in tiles.iter().enumerate() {
            self.draw_tile(&mut sheet, k, tile).map_err(|e| {
                IoError::Core(Error::InvalidArgument(format!(
                    "tile {k} ({}): {e}",
                    tile.name
                )))
            })?;
        }
        Ok(sheet)
    }

    /// Renders `tiles` and writes them to `path` as PNG, atomically: a failure leaves any
    /// previous file there as it was.
    pub fn write(&self, path: &Path, tiles: &[Tile<'_>]) -> Result<()> {
        let sheet = self.render(tiles)?;
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                sheet.as_raw(),
                sheet.width(),
                sheet.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| IoError::format_caused(path, "cannot encode PNG", e))?;
        anomalymatch_core::atomic::write_bytes_atomic(path, &png)?;
        Ok(())
    }

    /// Height of a tile: image, score bar and label.
    fn cell_height(&self) -> u32 {
        self.params.tile_size
            + BAR_GAP
            + BAR_HEIGHT
            + TEXT_GAP
            + TEXT_LINES * self.pen.line_height()
    }

    /// Width and height of a sheet of `n` tiles, refused when larger than [`MAX_PIXELS`].
    fn sheet_size(&self, n: usize) -> Result<(u32, u32)> {
        let p = &self.params;
        let columns = p.columns.min(n) as u128;
        let rows = n.div_ceil(p.columns) as u128;
        let margin = p.margin as u128;
        let width = (margin + columns * (p.tile_size as u128 + margin)).max(1);
        let height = (margin + rows * (self.cell_height() as u128 + margin)).max(1);
        if width.saturating_mul(height) > MAX_PIXELS {
            return Err(IoError::Core(Error::InvalidArgument(format!(
                "a sheet of {n} tiles would be {width}x{height} pixels, more than {MAX_PIXELS}; \
                 use fewer tiles per sheet or a smaller tile_size"
            ))));
        }
        // Both fit in u32: each is at most MAX_PIXELS.
        Ok((width as u32, height as u32))
    }

    /// Draws tile number `k` into its cell.
    fn draw_tile(&self, sheet: &mut RgbImage, k: usize, tile: &Tile<'_>) -> Result<()> {
        let p = &self.params;
        let side = p.tile_size;
        // The sheet holds cell `k`, so these fit in u32.
        let x = p.margin + (k % p.columns) as u32 * (side + p.margin);
        let y = p.margin + (k / p.columns) as u32 * (self.cell_height() + p.margin);

        let image = fit(
            to_rgb8(tile.image, tile.channels, tile.height, tile.width)?,
            side,
        );
        let left = x + (side - image.width()) / 2;
        let top = y + (side - image.height()) / 2;
        imageops::replace(sheet, &image, left as i64, top as i64);

        let bar_y = y + side + BAR_GAP;
        let filled = if tile.score.is_finite() {
            (tile.score.clamp(0.0, 1.0) * side as f32).round() as u32
        } else {
            0
        };
        for dy in 0..BAR_HEIGHT {
            for dx in 0..side {
                let colour = if dx < filled { BAR_FILL } else { BAR_TRACK };
                sheet.put_pixel(x + dx, bar_y + dy, colour);
            }
        }

        let line = self.pen.line_height();
        let text_y = bar_y + BAR_HEIGHT + TEXT_GAP;
        let labels = [
            self.rank_line(tile.rank, tile.score, side as f32),
            self.pen.elide(tile.name, side as f32, Cut::Middle),
        ];
        for (i, label) in labels.iter().enumerate() {
            let area = Area {
                x,
                y: text_y + i as u32 * line,
                width: side,
                height: line,
            };
            self.pen.draw(sheet, label, area, TEXT);
        }
        Ok(())
    }

    /// `#rank  score` in the most spacious form that fits `max` pixels, else cut at the end, so
    /// that a narrow tile shows the rank and the score's leading digits rather than a misleading
    /// middle cut.
    fn rank_line(&self, rank: usize, score: f32, max: f32) -> String {
        let digits = |d: usize| {
            if score.is_finite() {
                format!("{score:.d$}")
            } else {
                score.to_string()
            }
        };
        let forms = [
            format!("#{rank}  {}", digits(3)),
            format!("#{rank} {}", digits(3)),
            format!("#{rank} {}", digits(2)),
        ];
        match forms.iter().find(|f| self.pen.width(f) <= max) {
            Some(form) => form.clone(),
            None => self.pen.elide(&forms[2], max, Cut::End),
        }
    }
}

/// `image` scaled to fit a `side` square with its aspect ratio kept: nearest-neighbour when
/// enlarging, so that each survey pixel stays a crisp block, and a triangle filter when
/// reducing, which averages the pixels each output pixel covers.
fn fit(image: RgbImage, side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = side as f64 / w.max(h) as f64;
    let new = |n: u32| ((n as f64 * scale).round() as u32).clamp(1, side);
    let (nw, nh) = (new(w), new(h));
    if (nw, nh) == (w, h) {
        return image;
    }
    let filter = if scale > 1.0 {
        FilterType::Nearest
    } else {
        FilterType::Triangle
    };
    imageops::resize(&image, nw, nh, filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet_of(params: SheetParams) -> Result<ContactSheet> {
        params.check()?.build(())
    }

    /// A small layout: 16x16 images enlarged twice into 32-pixel tiles.
    fn small() -> ContactSheet {
        sheet_of(SheetParams {
            columns: 3,
            tile_size: 32,
            margin: 4,
            text_size: 10,
        })
        .unwrap()
    }

    fn tile<'a>(image: &'a [f32], rank: usize, score: f32, name: &'a str) -> Tile<'a> {
        Tile {
            image,
            channels: 1,
            height: 16,
            width: 16,
            rank,
            score,
            name,
        }
    }

    /// The top-left corner of cell `k` of `sheet`.
    fn origin(sheet: &ContactSheet, k: usize) -> (u32, u32) {
        let p = sheet.params();
        let x = p.margin + (k % p.columns) as u32 * (p.tile_size + p.margin);
        let y = p.margin + (k / p.columns) as u32 * (sheet.cell_height() + p.margin);
        (x, y)
    }

    /// Pixels of `image` equal to `colour` inside `area`.
    fn count(image: &RgbImage, area: Area, colour: Rgb<u8>) -> usize {
        (area.y..area.y + area.height)
            .flat_map(|y| (area.x..area.x + area.width).map(move |x| (x, y)))
            .filter(|&(x, y)| *image.get_pixel(x, y) == colour)
            .count()
    }

    /// Pixels of `image` inside `area` drawn in the text colour; anti-aliased strokes of small
    /// text rarely cover a pixel fully, so within 48 levels of it (at least 77% coverage).
    fn text_coloured(image: &RgbImage, area: Area) -> usize {
        (area.y..area.y + area.height)
            .flat_map(|y| (area.x..area.x + area.width).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let px = image.get_pixel(x, y).0;
                px.iter().zip(TEXT.0).all(|(&p, t)| p.abs_diff(t) <= 48)
            })
            .count()
    }

    /// Text line `line` (0: rank and score, 1: name) of cell `k`.
    fn text_line(sheet: &ContactSheet, k: usize, line: u32) -> Area {
        let (x, y) = origin(sheet, k);
        let p = sheet.params();
        let h = sheet.pen.line_height();
        Area {
            x,
            y: y + p.tile_size + BAR_GAP + BAR_HEIGHT + TEXT_GAP + line * h,
            width: p.tile_size,
            height: h,
        }
    }

    #[test]
    fn a_bright_pixel_lands_in_its_tile() {
        let sheet = small();
        let dark = vec![0.0; 256];
        let mut lit = dark.clone();
        lit[3 * 16 + 5] = 1.0; // row 3, column 5
        let names = ["a", "b", "c", "d", "e"];
        let tiles: Vec<Tile> = (0..5)
            .map(|k| tile(if k == 4 { &lit } else { &dark }, k + 1, 0.5, names[k]))
            .collect();
        let out = sheet.render(&tiles).unwrap();
        let cell = sheet.cell_height();
        assert_eq!(out.dimensions(), (4 + 3 * 36, 4 + 2 * (cell + 4)));

        // Tile 4 is the second of the second row; its pixel (3, 5) is a 2x2 block at twice that.
        let (x0, y0) = origin(&sheet, 4);
        assert_eq!((x0, y0), (40, 4 + cell + 4));
        let white: Vec<(u32, u32)> = out
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == [255, 255, 255])
            .map(|(x, y, _)| (x, y))
            .collect();
        let expected: Vec<(u32, u32)> = [(0, 0), (1, 0), (0, 1), (1, 1)]
            .iter()
            .map(|&(dx, dy)| (x0 + 10 + dx, y0 + 6 + dy))
            .collect();
        let mut white_sorted = white.clone();
        white_sorted.sort_by_key(|&(x, y)| (y, x));
        assert_eq!(white_sorted, expected);
    }

    #[test]
    fn fewer_tiles_than_columns_make_a_narrower_sheet() {
        let sheet = small();
        let dark = vec![0.0; 256];
        let out = sheet
            .render(&[tile(&dark, 1, 0.9, "a"), tile(&dark, 2, 0.8, "b")])
            .unwrap();
        assert_eq!(out.width(), 4 + 2 * 36);
    }

    #[test]
    fn labels_are_drawn_and_differ_by_name() {
        let sheet = small();
        let dark = vec![0.0; 256];
        let tiles = [
            tile(&dark, 7, 0.25, "M31"),
            tile(&dark, 7, 0.25, "NGC 4038"),
            tile(&dark, 7, 0.25, ""),
        ];
        let out = sheet.render(&tiles).unwrap();
        for k in 0..3 {
            let inked = text_coloured(&out, text_line(&sheet, k, 0));
            assert!(inked >= 10, "tile {k}: {inked} text pixels in `#7  0.250`");
        }
        let ink = |k: usize, line: u32| -> Vec<Rgb<u8>> {
            let a = text_line(&sheet, k, line);
            (a.y..a.y + a.height)
                .flat_map(|y| (a.x..a.x + a.width).map(move |x| (x, y)))
                .map(|(x, y)| *out.get_pixel(x, y))
                .collect()
        };
        assert_eq!(ink(0, 0), ink(1, 0), "same rank and score, same first line");
        assert_ne!(ink(0, 1), ink(1, 1), "different names");
        assert!(text_coloured(&out, text_line(&sheet, 0, 1)) > 0);
        assert_eq!(
            count(&out, text_line(&sheet, 2, 1), BACKGROUND),
            (32 * sheet.pen.line_height()) as usize,
            "an empty name leaves its line blank"
        );
    }

    #[test]
    fn long_names_stay_inside_their_tile() {
        let sheet = small();
        let dark = vec![0.0; 256];
        let long = "a_very_long_survey_object_name_that_cannot_fit.fits";
        let out = sheet
            .render(&[tile(&dark, 1, 0.5, long), tile(&dark, 2, 0.5, "")])
            .unwrap();
        // Nothing but background between the two tiles and right of the second.
        let (x1, _) = origin(&sheet, 1);
        for y in 0..out.height() {
            for x in (32 + 4..x1).chain(x1 + 32..out.width()) {
                assert_eq!(*out.get_pixel(x, y), BACKGROUND, "ink at ({x}, {y})");
            }
        }
        assert!(text_coloured(&out, text_line(&sheet, 0, 1)) > 0);
    }

    #[test]
    fn the_rank_line_tightens_before_it_is_cut() {
        let sheet = small();
        let width = |t: &str| sheet.pen.width(t);
        assert_eq!(sheet.rank_line(12, 0.25, 1000.0), "#12  0.250");
        assert_eq!(sheet.rank_line(12, 0.25, width("#12 0.250")), "#12 0.250");
        assert_eq!(sheet.rank_line(12, 0.25, width("#12 0.25")), "#12 0.25");
        assert_eq!(sheet.rank_line(12, 0.25, width("#12 0.")), "#12 0\u{2026}");
        assert_eq!(sheet.rank_line(3, f32::NAN, 1000.0), "#3  NaN");
    }

    #[test]
    fn the_score_bar_fills_with_the_score() {
        let sheet = small();
        let dark = vec![0.0; 256];
        let out = sheet
            .render(&[
                tile(&dark, 1, 0.75, "a"),
                tile(&dark, 2, f32::NAN, "b"),
                tile(&dark, 3, 7.0, "c"),
            ])
            .unwrap();
        let bar = |k: usize| {
            let (x, y) = origin(&sheet, k);
            Area {
                x,
                y: y + 32 + BAR_GAP,
                width: 32,
                height: BAR_HEIGHT,
            }
        };
        assert_eq!(count(&out, bar(0), BAR_FILL), 24 * BAR_HEIGHT as usize);
        assert_eq!(count(&out, bar(1), BAR_FILL), 0, "NaN fills nothing");
        assert_eq!(count(&out, bar(2), BAR_FILL), 32 * BAR_HEIGHT as usize);
    }

    #[test]
    fn images_are_fitted_and_centred() {
        // A wide 8x4 white image in a 32-pixel tile becomes 32x16, centred vertically.
        let sheet = small();
        let white = vec![1.0; 32];
        let wide = Tile {
            image: &white,
            channels: 1,
            height: 4,
            width: 8,
            rank: 1,
            score: 0.0,
            name: "",
        };
        let out = sheet.render(&[wide]).unwrap();
        let image = Area {
            x: 4,
            y: 4,
            width: 32,
            height: 32,
        };
        assert_eq!(count(&out, image, Rgb([255, 255, 255])), 32 * 16);
        assert_eq!(*out.get_pixel(4, 4 + 7), BACKGROUND);
        assert_eq!(*out.get_pixel(4, 4 + 8), Rgb([255, 255, 255]));
        // Reducing averages: a 64x64 checkerboard becomes mid grey, not black and white.
        let checker = RgbImage::from_fn(64, 64, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([255; 3])
            } else {
                Rgb([0; 3])
            }
        });
        let small = fit(checker, 32);
        assert_eq!(small.dimensions(), (32, 32));
        assert!(small.pixels().all(|p| (120..=135).contains(&p.0[0])));
    }

    #[test]
    fn an_empty_sheet_is_a_small_valid_image() {
        let out = small().render(&[]).unwrap();
        assert_eq!(out.dimensions(), (4, 4));
        let no_margin = sheet_of(SheetParams {
            margin: 0,
            ..SheetParams::default()
        })
        .unwrap();
        assert_eq!(no_margin.render(&[]).unwrap().dimensions(), (1, 1));
    }

    #[test]
    fn bad_parameters_are_errors_naming_the_field() {
        let bad = |p: SheetParams, field: &str| {
            let err = sheet_of(p).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        };
        let ok = SheetParams::default();
        assert!(ok.check().is_ok());
        bad(SheetParams { columns: 0, ..ok }, "columns");
        bad(
            SheetParams {
                tile_size: 15,
                ..ok
            },
            "tile_size",
        );
        bad(
            SheetParams {
                tile_size: 1025,
                ..ok
            },
            "tile_size",
        );
        bad(SheetParams { margin: 257, ..ok }, "margin");
        bad(SheetParams { text_size: 7, ..ok }, "text_size");
        let all = SheetParams {
            columns: 0,
            tile_size: 0,
            margin: 1000,
            text_size: 100,
        };
        let err = all.check().unwrap_err().to_string();
        for field in ["columns", "tile_size", "margin", "text_size"] {
            assert!(err.contains(field), "{field} missing from {err}");
        }
    }

    #[test]
    fn bad_tiles_are_errors_naming_the_tile() {
        let sheet = small();
        let short = vec![0.0; 255];
        let err = sheet
            .render(&[tile(&short, 1, 0.5, "cutout_17.fits")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cutout_17.fits"), "{err}");
        let batch = ImageBatch::zeros(2, 5, 16, 16);
        assert!(Tile::from_batch(&batch, 2, 1, 0.5, "x").is_err());
        let t = Tile::from_batch(&batch, 1, 1, 0.5, "x").unwrap();
        assert_eq!(
            (t.channels, t.height, t.width, t.image.len()),
            (5, 16, 16, 1280)
        );
    }

    #[test]
    fn sheets_too_large_are_refused_before_drawing() {
        let sheet = sheet_of(SheetParams {
            tile_size: 1024,
            ..SheetParams::default()
        })
        .unwrap();
        let dark = vec![0.0; 256];
        let tiles = vec![tile(&dark, 1, 0.5, "x"); 1000];
        let err = sheet.render(&tiles).unwrap_err().to_string();
        assert!(err.contains("1000 tiles"), "{err}");
    }

    #[test]
    fn write_is_atomic_and_matches_render() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheet.png");
        let sheet = small();
        let dark = vec![0.2; 256];
        let tiles = [tile(&dark, 1, 0.9, "first"), tile(&dark, 2, 0.8, "second")];
        sheet.write(&path, &tiles).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "only the sheet, no temporary file");
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, sheet.render(&tiles).unwrap());

        // A tile that cannot be drawn fails before the file is touched.
        let before = std::fs::read(&path).unwrap();
        let short = vec![0.0; 3];
        assert!(sheet.write(&path, &[tile(&short, 1, 0.5, "bad")]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);

        // A failure while writing (here the temporary file's name is taken by a folder, which
        // also fails as root, unlike permissions) names the file and keeps the old one.
        let temp = anomalymatch_core::atomic::temp_path(&path);
        std::fs::create_dir(&temp).unwrap();
        let err = sheet.write(&path, &tiles[..1]).unwrap_err().to_string();
        assert!(err.contains("sheet.png"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::remove_dir(&temp).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
