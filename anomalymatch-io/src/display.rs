//! Display colours for images of any channel count: the one rule by which contact sheets and
//! thumbnails turn CHW `f32` values into 8-bit RGB.
//!
//! Values are clamped to `[0, 1]` (NaN shows as 0). One channel is grey; three channels are
//! taken as RGB in that order (as decoded from JPEG or PNG); any other count is a survey band
//! cube ordered from the shortest wavelength to the longest and is shown in false colour: band
//! `k` of `C` sits at `t = k / (C - 1)` on a blue (0), green (½), red (1) axis, and each display
//! colour is the weighted mean of the bands within ¾ of its own position on that axis, with
//! weights falling linearly from 1 at the colour's position to 0 at ¾ away, so a flat image is
//! neutral grey and the first band shows blue, the last red.

use crate::error::{IoError, Result};
use anomalymatch_core::Error;
use image::{Rgb, RgbImage};

/// How far along the blue-to-red axis a band still counts towards a display colour. Wider than
/// ½ so that green receives a share of both bands of a 2-band image.
const REACH: f32 = 0.75;

/// Converts one CHW image (`channels * height * width` values) into an RGB image by the rule of
/// this module's header.
pub fn to_rgb8(image: &[f32], channels: usize, height: usize, width: usize) -> Result<RgbImage> {
    to_rgb8_bands(image, channels, height, width, &vec![true; channels])
}

/// As [`to_rgb8`], showing only the bands whose entry of `shown` is true: each band keeps the
/// colour it has when all are shown, so turning bands off picks them out of the false colour.
pub fn to_rgb8_bands(
    image: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    shown: &[bool],
) -> Result<RgbImage> {
    let plane = check_shape(image.len(), channels, height, width)?;
    if shown.len() != channels {
        return Err(IoError::Core(Error::InvalidArgument(format!(
            "{} band switches for an image of {channels} bands",
            shown.len()
        ))));
    }
    let mut weights = band_weights(channels);
    for (w, &on) in weights.iter_mut().zip(shown) {
        if !on {
            *w = [0.0; 3];
        }
    }
    let (w, h) = (width as u32, height as u32);
    let rgb = RgbImage::from_fn(w, h, |x, y| {
        let at = y as usize * width + x as usize;
        let mut mix = [0.0f32; 3];
        for (band, weight) in weights.iter().enumerate() {
            let v = image[band * plane + at];
            // `clamp` keeps NaN, which would blank the other bands' share of the pixel too.
            let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
            for (m, wt) in mix.iter_mut().zip(weight) {
                *m += wt * v;
            }
        }
        Rgb(mix.map(|m| (m * 255.0).round().clamp(0.0, 255.0) as u8))
    });
    Ok(rgb)
}

/// Checks that `len` values make one `channels x height x width` image that fits an [`RgbImage`],
/// and returns the plane size.
fn check_shape(len: usize, channels: usize, height: usize, width: usize) -> Result<usize> {
    let shape_error = |why: &str| {
        IoError::Core(Error::Shape(format!(
            "{len} values as a {channels}x{height}x{width} image: {why}"
        )))
    };
    if channels == 0 || height == 0 || width == 0 {
        return Err(shape_error("every dimension must be at least 1"));
    }
    if u32::try_from(height).is_err() || u32::try_from(width).is_err() {
        return Err(shape_error("too large to display"));
    }
    let plane = height
        .checked_mul(width)
        .ok_or_else(|| shape_error("too large to display"))?;
    if plane.checked_mul(channels) != Some(len) {
        return Err(shape_error("the number of values does not match"));
    }
    Ok(plane)
}

/// Each band's contribution to (red, green, blue); every colour's weights sum to 1.
fn band_weights(channels: usize) -> Vec<[f32; 3]> {
    match channels {
        1 => vec![[1.0; 3]],
        3 => vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        _ => {
            // Positions of red, green and blue on the axis that bands are spread along.
            let centres = [1.0f32, 0.5, 0.0];
            let mut weights: Vec<[f32; 3]> = (0..channels)
                .map(|k| {
                    let t = k as f32 / (channels - 1) as f32;
                    centres.map(|c| (1.0 - (t - c).abs() / REACH).max(0.0))
                })
                .collect();
            for colour in 0..3 {
                let total: f32 = weights.iter().map(|w| w[colour]).sum();
                for w in &mut weights {
                    w[colour] /= total;
                }
            }
            weights
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `channels`-band 2x2 image with every value `v`.
    fn flat(channels: usize, v: f32) -> Vec<f32> {
        vec![v; channels * 4]
    }

    #[test]
    fn flat_images_are_neutral_grey_for_any_band_count() {
        for channels in [1, 2, 3, 4, 5, 7, 12] {
            let rgb = to_rgb8(&flat(channels, 0.6), channels, 2, 2).unwrap();
            for px in rgb.pixels() {
                assert_eq!(px.0, [153, 153, 153], "{channels} bands");
            }
        }
    }

    #[test]
    fn one_band_is_grey_and_three_bands_are_rgb_in_order() {
        let grey = to_rgb8(&[0.0, 0.25, 0.5, 1.0], 1, 2, 2).unwrap();
        let levels: Vec<[u8; 3]> = grey.pixels().map(|p| p.0).collect();
        assert_eq!(
            levels,
            [[0; 3], [64; 3], [128; 3], [255; 3]],
            "grey levels in row-major order"
        );
        // Red everywhere, green in the top-left pixel only, no blue.
        let mut rgb = vec![0.0; 12];
        rgb[..4].fill(1.0);
        rgb[4] = 1.0;
        let out = to_rgb8(&rgb, 3, 2, 2).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, [255, 255, 0]);
        assert_eq!(out.get_pixel(1, 1).0, [255, 0, 0]);
    }

    #[test]
    fn hidden_bands_leave_the_others_in_their_colours() {
        let img: Vec<f32> = vec![1.0; 5];
        let all = to_rgb8(&img, 5, 1, 1).unwrap().get_pixel(0, 0).0;
        let first = to_rgb8_bands(&img, 5, 1, 1, &[true, false, false, false, false])
            .unwrap()
            .get_pixel(0, 0)
            .0;
        let alone = {
            let mut lit = vec![0.0; 5];
            lit[0] = 1.0;
            to_rgb8(&lit, 5, 1, 1).unwrap().get_pixel(0, 0).0
        };
        assert_eq!(first, alone, "band 0 shown alone looks as band 0 lit alone");
        assert_ne!(first, all);
        assert!(to_rgb8_bands(&img, 5, 1, 1, &[true; 4]).is_err());
    }

    #[test]
    fn five_bands_run_from_blue_to_red() {
        let lit = |band: usize| {
            let mut img = vec![0.0; 5];
            img[band] = 1.0;
            to_rgb8(&img, 5, 1, 1).unwrap().get_pixel(0, 0).0
        };
        let [r, g, b] = lit(0);
        assert!(b > g && g > r, "first band blue, got {:?}", [r, g, b]);
        assert_eq!(r, 0);
        let [r, g, b] = lit(2);
        assert!(
            g > r && g > b && r == b,
            "middle band green, got {:?}",
            [r, g, b]
        );
        let [r, g, b] = lit(4);
        assert!(r > g && g > b, "last band red, got {:?}", [r, g, b]);
        assert_eq!(b, 0);
        // Redness grows monotonically with the band index.
        let reds: Vec<u8> = (0..5).map(|k| lit(k)[0]).collect();
        assert!(reds.windows(2).all(|p| p[0] <= p[1]), "{reds:?}");
    }

    #[test]
    fn two_bands_give_green_a_share_of_both() {
        let [r, g, b] = to_rgb8(&[1.0, 0.0], 2, 1, 1).unwrap().get_pixel(0, 0).0;
        assert_eq!([r, g, b], [0, 128, 255]);
    }

    #[test]
    fn values_are_clamped_and_nan_is_black() {
        let out = to_rgb8(&[-3.0, 7.0, f32::NAN, f32::INFINITY], 1, 2, 2).unwrap();
        let levels: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(levels, [0, 255, 0, 255]);
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        assert!(to_rgb8(&[0.0; 11], 3, 2, 2).is_err());
        assert!(to_rgb8(&[], 0, 2, 2).is_err());
        assert!(to_rgb8(&[], 1, 0, 2).is_err());
        assert!(to_rgb8(&[0.0; 4], 1, usize::MAX, 2).is_err());
        let err = to_rgb8(&[0.0; 5], 1, 2, 2).unwrap_err().to_string();
        assert!(err.contains("1x2x2"), "{err}");
    }
}
