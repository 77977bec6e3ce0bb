//! Text on RGB images in the bundled DejaVu Sans Mono (`assets/`, Bitstream Vera licence):
//! measuring, eliding to a width, and drawing with anti-aliasing, clipped to an area.

use crate::error::{IoError, Result};
use ab_glyph::{Font, FontRef, Glyph, PxScaleFont, ScaleFont, point};
use image::{Rgb, RgbImage};

/// The one bundled face, embedded so that labels look the same on every machine.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

/// Stands for the characters an elided text leaves out.
const ELLIPSIS: char = '\u{2026}';

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Area {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Where [`Pen::elide`] leaves characters out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Keep the start and the end: both ends of survey names tell objects apart.
    Middle,
    /// Keep the start.
    End,
}

/// The bundled font at one size.
#[derive(Debug, Clone)]
pub(crate) struct Pen {
    font: PxScaleFont<FontRef<'static>>,
}

impl Pen {
    /// The bundled font with lines `line_px` pixels from ascent to descent.
    pub(crate) fn new(line_px: f32) -> Result<Self> {
        let font = FontRef::try_from_slice(FONT).map_err(|e| {
            IoError::format("anomalymatch-io/assets/DejaVuSansMono.ttf", e.to_string())
        })?;
        Ok(Pen {
            font: font.into_scaled(line_px),
        })
    }

    /// Pixels from one line's top to the next, line gap included.
    pub(crate) fn line_height(&self) -> u32 {
        (self.font.height() + self.font.line_gap()).ceil() as u32
    }

    /// Width of `text` on one line, in pixels.
    pub(crate) fn width(&self, text: &str) -> f32 {
        self.lay_out(text, 0.0, 0.0, |_| {})
    }

    /// `text` on one line no wider than `max` pixels: whole if it fits, otherwise cut where
    /// `cut` says and marked with an ellipsis, or nothing if not even the ellipsis fits. Control
    /// characters become spaces.
    pub(crate) fn elide(&self, text: &str, max: f32, cut: Cut) -> String {
        let chars: Vec<char> = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let whole: String = chars.iter().collect();
        if self.width(&whole) <= max {
            return whole;
        }
        let n = chars.len();
        // `k` characters kept, with a spare one at the front.
        let keep = |k: usize| -> String {
            let front = match cut {
                Cut::Middle => k.div_ceil(2),
                Cut::End => k,
            };
            let back = k - front;
            chars[..front]
                .iter()
                .chain(std::iter::once(&ELLIPSIS))
                .chain(&chars[n - back..])
                .collect()
        };
        let fits = |k: usize| self.width(&keep(k)) <= max;
        if !fits(0) {
            return String::new();
        }
        // Widths grow with `k`; `lo` fits and `hi` (the whole text) does not.
        let (mut lo, mut hi) = (0, n);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        keep(lo)
    }

    /// Draws `text` on one line at the top left of `area`, blending `colour` over the image by
    /// glyph coverage; nothing is drawn outside `area` or the image.
    pub(crate) fn draw(&self, image: &mut RgbImage, text: &str, area: Area, colour: Rgb<u8>) {
        let right = (area.x + area.width).min(image.width());
        let bottom = (area.y + area.height).min(image.height());
        let baseline = area.y as f32 + self.font.ascent();
        self.lay_out(text, area.x as f32, baseline, |glyph| {
            let Some(outline) = self.font.outline_glyph(glyph) else {
                return;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let x = bounds.min.x as i64 + gx as i64;
                let y = bounds.min.y as i64 + gy as i64;
                let inside = x >= area.x as i64
                    && y >= area.y as i64
                    && x < right as i64
                    && y < bottom as i64;
                if inside {
                    let px = image.get_pixel_mut(x as u32, y as u32);
                    let c = coverage.clamp(0.0, 1.0);
                    for (old, new) in px.0.iter_mut().zip(colour.0) {
                        let mixed = *old as f32 + (new as f32 - *old as f32) * c;
                        *old = mixed.round() as u8;
                    }
                }
            });
        });
    }

    /// Places the glyphs of `text` from `(left, baseline)`, handing each to `place`, and returns
    /// the advance: measuring and drawing share it so that elided text fits when drawn.
    fn lay_out(&self, text: &str, left: f32, baseline: f32, mut place: impl FnMut(Glyph)) -> f32 {
        let mut caret = left;
        let mut previous = None;
        for c in text.chars() {
            let id = self.font.glyph_id(c);
            if let Some(p) = previous {
                caret += self.font.kern(p, id);
            }
            place(id.with_scale_and_position(self.font.scale(), point(caret, baseline)));
            caret += self.font.h_advance(id);
            previous = Some(id);
        }
        caret - left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_elided_where_asked() {
        let pen = Pen::new(14.0).unwrap();
        assert_eq!(
            pen.elide("galaxy_1.png", 1000.0, Cut::Middle),
            "galaxy_1.png"
        );
        let name = "587722981741363294_merger_candidate.png";
        let max = pen.width("0123456789");
        let short = pen.elide(name, max, Cut::Middle);
        assert!(pen.width(&short) <= max, "{short}");
        assert!(
            short.starts_with("58772") && short.ends_with(".png"),
            "{short}"
        );
        assert!(short.contains(ELLIPSIS), "{short}");
        assert_eq!(short.chars().count(), 10, "{short}: monospace, ten cells");
        let start = pen.elide(name, max, Cut::End);
        assert_eq!(start, "587722981\u{2026}");
        assert_eq!(pen.elide(name, 1.0, Cut::Middle), "");
        assert_eq!(pen.elide("a\nb", 1000.0, Cut::End), "a b");
    }

    #[test]
    fn drawing_stays_inside_its_area() {
        let pen = Pen::new(14.0).unwrap();
        let mut image = RgbImage::new(60, 40);
        let area = Area {
            x: 10,
            y: 10,
            width: 20,
            height: 10,
        };
        pen.draw(&mut image, "WWWWWWWWWW", area, Rgb([255, 255, 255]));
        let mut inked = 0;
        for (x, y, px) in image.enumerate_pixels() {
            let inside = (10..30).contains(&x) && (10..20).contains(&y);
            if px.0 != [0, 0, 0] {
                assert!(inside, "ink at ({x}, {y})");
                inked += 1;
            }
        }
        assert!(inked > 20, "only {inked} pixels inked");
    }
}
