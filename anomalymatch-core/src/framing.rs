//! Framing: which centred window of each frame the model sees. A fixed crop keeps the same
//! share of every frame. `auto` sizes the window per image around its central object, found
//! as source extractors do (the connected region above the sky's noise that holds the centre)
//! and measured as photometry does (the radius that holds 90% of its light); it steps aside,
//! keeping the whole frame, where the object reaches past the frame's edges.
//! Surveys cut out objects at one pixel scale, so the same galaxy may fill a tenth of one
//! frame and all of another; a fixed crop suits only one of them.

use serde::{Deserialize, Serialize};

/// How much of each frame is kept, centred, before resizing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    /// The same share of each side for every image: 1 keeps the whole frame.
    Share(f32),
    /// Per image, a window that holds the central object with a margin (the whole frame when
    /// no object stands out at the centre, or when it fills the frame). Written `"auto"`.
    Auto,
}

impl Crop {
    /// The whole frame, as checkpoints written before there was a crop decode.
    pub const WHOLE: Crop = Crop::Share(1.0);
}

impl Default for Crop {
    fn default() -> Self {
        Crop::WHOLE
    }
}

impl std::fmt::Display for Crop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Crop::Share(s) if *s >= 1.0 => f.write_str("whole frame"),
            Crop::Share(s) => write!(f, "central {:.0}% of the frame", s * 100.0),
            Crop::Auto => f.write_str("framed on the central object"),
        }
    }
}

impl Serialize for Crop {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Crop::Share(v) => s.serialize_f32(v),
            Crop::Auto => s.serialize_str(AUTO),
        }
    }
}

/// Reads a share of each side or `"auto"`, and says so in the message for anything else.
struct CropVisitor;

impl serde::de::Visitor<'_> for CropVisitor {
    type Value = Crop;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a share of each side in (0, 1] or \"auto\"")
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Crop, E> {
        Ok(Crop::Share(v as f32))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Crop, E> {
        Ok(Crop::Share(v as f32))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Crop, E> {
        Ok(Crop::Share(v as f32))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Crop, E> {
        if v == AUTO {
            Ok(Crop::Auto)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for Crop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CropVisitor)
    }
}

const AUTO: &str = "auto";

/// Cells per side of the grid the object is found on: block averages beat the pixel noise
/// down and make the search cost the same for any frame size.
const GRID: usize = 64;
/// A cell belongs to an object when it is this many noise deviations above the sky.
const DETECT_SIGMA: f32 = 3.0;
/// Share of the object's light its radius holds (photometry's R90).
const LIGHT_SHARE: f32 = 0.9;
/// The window's half-side as a multiple of that radius: the outskirts beyond it (tidal tails,
/// halos, a companion's far side) stay in view. Chosen on the GZ1-merger protocol's tuning
/// seeds between 1.5 and 2, where the fixed crops of the same windows scored 0.35 > 0.5 > 1.
const MARGIN: f32 = 1.5;
/// The least share of each side an automatic window keeps, so that a point-like object still
/// comes with some surroundings and enough source pixels to resize.
pub const MIN_AUTO_SHARE: f32 = 0.2;
/// How much brighter than the darkest corner every edge of the frame must be, as a share of
/// the central peak's contrast, for the object to be taken as filling the frame.
const EDGE_LIGHT: f32 = 0.1;
/// The least noise assumed, in units of the full range: half an 8-bit step, so that a
/// perfectly flat (synthetic) sky does not make every faint pixel an object.
const NOISE_FLOOR: f32 = 0.5 / 255.0;

/// The share of each side to keep for a `width` x `height` frame whose brightness at pixel
/// `(x, y)` (in `[0, 1]`) `brightness` gives.
pub(crate) fn auto_share(
    width: usize,
    height: usize,
    brightness: impl Fn(usize, usize) -> f32,
) -> f32 {
    let block = width.max(height).div_ceil(GRID).max(1);
    let (gw, gh) = (width.div_ceil(block), height.div_ceil(block));
    // Pixels per cell along an axis: `block`, fewer in the last cell.
    let span = |cell: usize, side: usize| ((cell + 1) * block).min(side) - cell * block;
    let counts: Vec<u32> = (0..gw * gh)
        .map(|i| (span(i % gw, width) * span(i / gw, height)) as u32)
        .collect();
    let mut cells = vec![0.0f32; gw * gh];
    // Cell by cell within each row, so no pixel pays a division to find its cell (this loop is
    // a sixth of `score`'s time on 423 px frames).
    for y in 0..height {
        let row = (y / block) * gw;
        for (c, cell) in cells[row..row + gw].iter_mut().enumerate() {
            for x in c * block..c * block + span(c, width) {
                *cell += brightness(x, y);
            }
        }
    }
    for (c, &n) in cells.iter_mut().zip(&counts) {
        *c /= n.max(1) as f32;
    }

    // The sky: median and scaled median absolute deviation of the outer ring of cells.
    let ring = (gw.min(gh) / 10).max(1);
    let mut sky: Vec<f32> = (0..gh)
        .flat_map(|y| (0..gw).map(move |x| (x, y)))
        .filter(|&(x, y)| x < ring || y < ring || x + ring >= gw || y + ring >= gh)
        .map(|(x, y)| cells[y * gw + x])
        .collect();
    let level = median(&mut sky);
    let mut deviations: Vec<f32> = sky.iter().map(|v| (v - level).abs()).collect();
    let noise = (1.4826 * median(&mut deviations)).max(NOISE_FLOOR);
    let threshold = level + DETECT_SIGMA * noise;

    // The object: grown from the brightest cell near the centre (a ring or a pair may leave the
    // centre itself dark), over cells above the threshold, eight-connected.
    let (cx, cy) = (gw / 2, gh / 2);
    let reach = (gw.min(gh) / 8).max(1);
    let seed = (cy.saturating_sub(reach)..(cy + reach + 1).min(gh))
        .flat_map(|y| (cx.saturating_sub(reach)..(cx + reach + 1).min(gw)).map(move |x| y * gw + x))
        .max_by(|&a, &b| cells[a].total_cmp(&cells[b]));
    let Some(seed) = seed.filter(|&s| cells[s] > threshold) else {
        return 1.0;
    };
    if fills_frame(&cells, gw, gh, ring, cells[seed]) {
        return 1.0;
    }
    let mut inside = vec![false; gw * gh];
    inside[seed] = true;
    let mut stack = vec![seed];
    // Each object cell's light above the sky, and its distance from the frame's centre (to the
    // middle of the cell, as the larger of the two axes: the window is a square).
    let mut light: Vec<(f32, f32)> = Vec::new();
    let (mid_x, mid_y) = (width as f32 / 2.0, height as f32 / 2.0);
    let centre_of =
        |cell: usize, side: usize| (cell * block + ((cell + 1) * block).min(side)) as f32 / 2.0;
    while let Some(i) = stack.pop() {
        let (x, y) = (i % gw, i / gw);
        let distance = (centre_of(x, width) - mid_x)
            .abs()
            .max((centre_of(y, height) - mid_y).abs());
        light.push((distance, (cells[i] - level) * counts[i] as f32));
        for ny in y.saturating_sub(1)..(y + 2).min(gh) {
            for nx in x.saturating_sub(1)..(x + 2).min(gw) {
                let j = ny * gw + nx;
                if !inside[j] && cells[j] > threshold {
                    inside[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    // The radius holding 90% of the object's light, as photometry's R90 (half a cell added,
    // since a cell's light spreads to its edge).
    light.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f32 = light.iter().map(|l| l.1).sum();
    let mut enclosed = 0.0;
    let r90 = light
        .iter()
        .find(|l| {
            enclosed += l.1;
            enclosed >= LIGHT_SHARE * total
        })
        .map_or(0.0, |l| l.0)
        + block as f32 / 2.0;
    let half_side = width.min(height) as f32 / 2.0;
    (MARGIN * r90 / half_side).clamp(MIN_AUTO_SHARE, 1.0)
}

/// True when the central object reaches past the frame's edges: all four edges (each the
/// median of its strip of the ring) are brighter than the darkest corner by more than
/// [`EDGE_LIGHT`] of the peak's contrast, as a profile falling from the centre makes them. The
/// ring is then the object's wings, no sky to measure against, and framing steps aside rather
/// than cut to the core. Medians make it blind to noise; taking the faintest edge and corner
/// makes it blind to a bright neighbour's glare, which lifts one side.
fn fills_frame(cells: &[f32], gw: usize, gh: usize, ring: usize, peak: f32) -> bool {
    if gw <= 2 * ring || gh <= 2 * ring {
        return false;
    }
    let level = |xs: std::ops::Range<usize>, ys: std::ops::Range<usize>| {
        let mut values: Vec<f32> = ys
            .flat_map(|y| xs.clone().map(move |x| cells[y * gw + x]))
            .collect();
        median(&mut values)
    };
    let (inner_x, inner_y) = (ring..gw - ring, ring..gh - ring);
    let (low_x, high_x) = (0..ring, gw - ring..gw);
    let (low_y, high_y) = (0..ring, gh - ring..gh);
    let edge = [
        level(inner_x.clone(), low_y.clone()),
        level(inner_x, high_y.clone()),
        level(low_x.clone(), inner_y.clone()),
        level(high_x.clone(), inner_y),
    ]
    .into_iter()
    .fold(f32::INFINITY, f32::min);
    let corner = [
        level(low_x.clone(), low_y.clone()),
        level(high_x.clone(), low_y),
        level(low_x, high_y.clone()),
        level(high_x, high_y),
    ]
    .into_iter()
    .fold(f32::INFINITY, f32::min);
    edge - corner > EDGE_LIGHT * (peak - corner)
}

/// The median of `values` (reordered); 0 for none.
fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    *values.select_nth_unstable_by(mid, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// A `side`-pixel frame of sky noise with Gaussian blobs `(x, y, sigma, peak)` on it.
    fn frame(side: usize, blobs: &[(f32, f32, f32, f32)], seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f32 + 0.5, (i / side) as f32 + 0.5);
                let light: f32 = blobs
                    .iter()
                    .map(|&(bx, by, s, p)| {
                        p * (-((x - bx).powi(2) + (y - by).powi(2)) / (2.0 * s * s)).exp()
                    })
                    .sum();
                (0.1 + light + rng.random_range(-0.02..0.02f32)).clamp(0.0, 1.0)
            })
            .collect()
    }

    fn share(side: usize, pixels: &[f32]) -> f32 {
        auto_share(side, side, |x, y| pixels[y * side + x])
    }

    #[test]
    fn the_window_grows_with_the_central_object_and_holds_a_companion() {
        let side = 400;
        let c = side as f32 / 2.0;
        let small = share(side, &frame(side, &[(c, c, 10.0, 0.8)], 1));
        let large = share(side, &frame(side, &[(c, c, 30.0, 0.8)], 2));
        assert!((MIN_AUTO_SHARE..0.4).contains(&small), "{small}");
        assert!(large > 2.0 * small && large < 1.0, "{small} {large}");
        // A touching companion widens the window; a separate star near the edge does not.
        let pair = share(
            side,
            &frame(side, &[(c, c, 10.0, 0.8), (c + 45.0, c, 10.0, 0.8)], 3),
        );
        assert!(pair > 1.5 * small, "{small} {pair}");
        let star = share(
            side,
            &frame(side, &[(c, c, 10.0, 0.8), (20.0, 20.0, 4.0, 0.9)], 4),
        );
        assert!((star - small).abs() < 0.05, "{small} {star}");
    }

    #[test]
    fn an_object_larger_than_the_frame_keeps_the_frame_and_glare_from_one_side_does_not() {
        for side in [32, 64, 96] {
            let c = side as f32 / 2.0;
            // Wider objects must never get a tighter window than narrower ones.
            for sigma in [0.35, 0.5, 0.7, 1.0] {
                let blob = (c, c, sigma * side as f32, 0.8);
                let kept = share(side, &frame(side, &[blob], 7));
                assert_eq!(kept, 1.0, "side {side}, sigma {sigma} of the side");
            }
        }
        // A compact object beside a bright star just outside the frame, whose glare lifts one
        // side of the ring: still framed as without the star.
        let side = 200;
        let c = side as f32 / 2.0;
        let alone = share(side, &frame(side, &[(c, c, 8.0, 0.8)], 8));
        let glare = share(
            side,
            &frame(side, &[(c, c, 8.0, 0.8), (-60.0, c, 40.0, 0.9)], 8),
        );
        assert!(alone < 0.5, "{alone}");
        assert!(glare < 0.6, "{alone} {glare}");
    }

    #[test]
    fn no_central_object_or_one_filling_the_frame_keeps_the_frame() {
        let side = 96;
        let c = side as f32 / 2.0;
        assert_eq!(share(side, &frame(side, &[], 5)), 1.0);
        let filling = share(side, &frame(side, &[(c, c, 25.0, 0.8)], 6));
        assert!(filling > 0.9, "{filling}");
        // A perfectly flat frame and a non-square one are handled too.
        assert_eq!(auto_share(50, 30, |_, _| 0.3), 1.0);
        let ring = auto_share(64, 64, |x, y| {
            let r = ((x as f32 - 31.5).powi(2) + (y as f32 - 31.5).powi(2)).sqrt();
            if (6.0..9.0).contains(&r) { 1.0 } else { 0.0 }
        });
        assert!(
            ring < 0.7,
            "a ring around a dark centre is still framed: {ring}"
        );
    }

    #[test]
    fn crop_reads_and_writes_as_a_number_or_auto() {
        #[derive(Serialize, Deserialize)]
        struct T {
            crop: Crop,
        }
        let t: T = toml::from_str("crop = \"auto\"").unwrap();
        assert_eq!(t.crop, Crop::Auto);
        let t: T = toml::from_str("crop = 0.5").unwrap();
        assert_eq!(t.crop, Crop::Share(0.5));
        assert_eq!(
            toml::to_string(&T { crop: Crop::Auto }).unwrap().trim(),
            "crop = \"auto\""
        );
        assert_eq!(
            toml::to_string(&T {
                crop: Crop::Share(0.5)
            })
            .unwrap()
            .trim(),
            "crop = 0.5"
        );
        for bad in ["\"tight\"", "true", "[1]"] {
            let err = toml::from_str::<T>(&format!("crop = {bad}")).err().unwrap();
            let err = err.to_string();
            assert!(err.contains("a share of each side"), "{bad}: {err}");
            assert!(
                !err.contains("untagged") && !err.contains("CropRepr"),
                "{err}"
            );
        }
    }
}
