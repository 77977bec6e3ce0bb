//! Turning one source image (encoded file, decoded pixels or physical values) into `f32` CHW
//! values in `[0, 1]` at a fixed square size and channel count.

use crate::framing::{Crop, auto_share};
use crate::loader::DataSpec;
use crate::resample::{Resampler, RowLayout, Sample};
use crate::source::ImagePayload;
use image::DynamicImage;
use serde::{Deserialize, Serialize};

/// Why one image could not be decoded, keeping the decoder's own error where there is one.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The image decoder could not read the bytes.
    #[error("{0}")]
    Decoder(#[from] image::ImageError),
    /// The bytes could not be read to guess their format.
    #[error("{0}")]
    Read(#[from] std::io::Error),
    /// The image reads but cannot be used (too large, truncated, the wrong shape), or its
    /// source could not read it.
    #[error("{0}")]
    Unusable(String),
}

impl From<String> for DecodeError {
    fn from(message: String) -> Self {
        DecodeError::Unusable(message)
    }
}

/// Which channels the loaded images have. In configuration files it is written `"rgb"`,
/// `"grey"`, or the number of bands to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelMode {
    /// Three channels: grey images are replicated, alpha is dropped (what ImageNet backbones expect).
    #[default]
    Rgb,
    /// One channel: luma `0.299 R + 0.587 G + 0.114 B` (ITU-R BT.601, as PIL and OpenCV use).
    Grayscale,
    /// The first `n` channels as stored, for multi-band data; images with fewer channels fail.
    Keep(usize),
}

impl ChannelMode {
    /// Number of channels of the output.
    pub fn channels(self) -> usize {
        match self {
            ChannelMode::Rgb => 3,
            ChannelMode::Grayscale => 1,
            ChannelMode::Keep(n) => n,
        }
    }
}

impl std::fmt::Display for ChannelMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelMode::Rgb => f.write_str("RGB"),
            ChannelMode::Grayscale => f.write_str("grey"),
            ChannelMode::Keep(n) => write!(f, "{n}-band"),
        }
    }
}

impl Serialize for ChannelMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            ChannelMode::Rgb => s.serialize_str("rgb"),
            ChannelMode::Grayscale => s.serialize_str("grey"),
            ChannelMode::Keep(n) => s.serialize_u64(n as u64),
        }
    }
}

/// Reads `"rgb"`, `"grey"` (or `"gray"`) or a positive number of bands, and says so in the
/// message for anything else.
struct ChannelVisitor;

impl serde::de::Visitor<'_> for ChannelVisitor {
    type Value = ChannelMode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("\"rgb\", \"grey\" or a positive number of bands")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChannelMode, E> {
        match v {
            "rgb" => Ok(ChannelMode::Rgb),
            "grey" | "gray" => Ok(ChannelMode::Grayscale),
            other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ChannelMode, E> {
        match usize::try_from(v) {
            Ok(n) if n > 0 => Ok(ChannelMode::Keep(n)),
            _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ChannelMode, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for ChannelMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ChannelVisitor)
    }
}

/// How one output channel is made from the resized source channels.
#[derive(Debug, Clone, Copy)]
enum Recipe {
    /// A copy of resized source channel `i`.
    Plane(usize),
    /// Luma of resized planes 0, 1, 2 (red, green, blue).
    Luma,
}

const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// Which source channels to resize and how to build the output channels from them, or why the
/// image cannot be shown in `mode`.
fn plan(mode: ChannelMode, src_channels: usize) -> Result<(Vec<usize>, Vec<Recipe>), String> {
    // Channel counts 1..=4 are grey, grey+alpha, RGB and RGBA, as in every common format.
    match (mode, src_channels) {
        (ChannelMode::Rgb | ChannelMode::Grayscale, 1 | 2) => {
            let n = mode.channels();
            Ok((vec![0], vec![Recipe::Plane(0); n]))
        }
        (ChannelMode::Rgb, 3 | 4) => Ok((
            vec![0, 1, 2],
            vec![Recipe::Plane(0), Recipe::Plane(1), Recipe::Plane(2)],
        )),
        (ChannelMode::Grayscale, 3 | 4) => Ok((vec![0, 1, 2], vec![Recipe::Luma])),
        (ChannelMode::Rgb | ChannelMode::Grayscale, c) => Err(format!(
            "{c} channels cannot be read as {}; set data.channels to the number of bands to keep",
            if mode == ChannelMode::Rgb {
                "RGB"
            } else {
                "grey"
            }
        )),
        (ChannelMode::Keep(n), c) if c >= n => {
            Ok(((0..n).collect(), (0..n).map(Recipe::Plane).collect()))
        }
        (ChannelMode::Keep(n), c) => Err(format!("image has {c} channel(s), {n} were asked for")),
    }
}

/// Samples of one decoded image, how they are laid out, and the value that maps to 1 (255 for
/// 8-bit, 65535 for 16-bit, 1 for float).
struct Samples<'a, T> {
    data: &'a [T],
    width: usize,
    height: usize,
    channels: usize,
    /// Interleaved (`RGBRGB...`, as decoders give) or planar (one channel after another).
    interleaved: bool,
    max: f32,
}

impl<T: Sample> Samples<'_, T> {
    /// The mean of `channels` at pixel `(x, y)`, in `[0, 1]`.
    fn brightness(&self, channels: &[usize], x: usize, y: usize) -> f32 {
        let sum: f32 = channels
            .iter()
            .map(|&c| {
                let i = if self.interleaved {
                    (y * self.width + x) * self.channels + c
                } else {
                    (c * self.height + y) * self.width + x
                };
                self.data[i].to_f32()
            })
            .sum();
        sum / (channels.len() as f32 * self.max)
    }
}

/// The centred window of `share` of each side: its first row and column, and its height and
/// width (at least one pixel each).
fn centre_window(width: usize, height: usize, share: f32) -> (usize, usize, usize, usize) {
    let side = |n: usize| ((n as f32 * share).round() as usize).clamp(1, n);
    let (h, w) = (side(height), side(width));
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// Resizes the channels the image is shown with in `mode`, from the centred window `crop`
/// keeps, and composes the output channels into `out` (CHW, `size` square).
fn resize_compose<T: Sample>(
    src: &Samples<'_, T>,
    mode: ChannelMode,
    size: usize,
    crop: Crop,
    out: &mut [f32],
) -> Result<(), String> {
    let (needed, recipes) = plan(mode, src.channels)?;
    let plane = size * size;
    let share = match crop {
        Crop::Share(share) => share,
        Crop::Auto => auto_share(src.width, src.height, |x, y| src.brightness(&needed, x, y)),
    };
    // The window is read in place: the resampler walks rows by stride from an offset.
    let (top, left, h, w) = centre_window(src.width, src.height, share);
    let resampler = Resampler::new(w, h, size, size);
    let mut planes = vec![0.0f32; src.channels * plane];
    if src.interleaved {
        // All channels in one pass: rows stay contiguous, which is what makes it fast.
        let row_stride = src.width * src.channels;
        let layout = RowLayout {
            offset: top * row_stride + left * src.channels,
            row_stride,
            channels: src.channels,
        };
        resampler.resample(src.data, layout, &mut planes);
    } else {
        for &c in &needed {
            let layout = RowLayout {
                offset: c * src.width * src.height + top * src.width + left,
                row_stride: src.width,
                channels: 1,
            };
            resampler.resample(src.data, layout, &mut planes[c * plane..(c + 1) * plane]);
        }
    }
    let inv = 1.0 / src.max;
    for (recipe, dst) in recipes.iter().zip(out.chunks_exact_mut(plane)) {
        match *recipe {
            Recipe::Plane(i) => {
                for (d, &s) in dst.iter_mut().zip(&planes[i * plane..(i + 1) * plane]) {
                    *d = (s * inv).clamp(0.0, 1.0);
                }
            }
            Recipe::Luma => {
                let (r, rest) = planes.split_at(plane);
                let (g, b) = rest.split_at(plane);
                for (k, d) in dst.iter_mut().enumerate() {
                    let v = LUMA[0] * r[k] + LUMA[1] * g[k] + LUMA[2] * b[k];
                    *d = (v * inv).clamp(0.0, 1.0);
                }
            }
        }
    }
    Ok(())
}

/// Refuses an encoded image whose header declares more than `max_pixels` pixels, before any of
/// it is decoded: a small file can declare a huge image (a decompression bomb).
fn check_pixels(bytes: &[u8], max_pixels: u64) -> Result<(), DecodeError> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let (w, h) = reader.into_dimensions()?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(DecodeError::Unusable(format!(
            "{w}x{h} pixels is more than the ceiling of {max_pixels} (data.max_pixels)"
        )));
    }
    Ok(())
}

/// Refuses a JPEG cut short: its decoder fills a missing scan with grey and reports nothing,
/// so a truncated download would be scored as a smooth, plausible image. A whole JPEG ends its
/// last scan with an end-of-image marker; entropy-coded data never holds `FF D9`, and a
/// thumbnail's own marker comes before the main scan.
fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) if end > scan => Ok(()),
        (None, _) => Err("JPEG has no image data".into()),
        _ => Err("JPEG is truncated: it ends before its end-of-image marker".into()),
    }
}

/// Decodes an encoded file's bytes (JPEG, PNG, TIFF) into `out`.
fn decode_encoded(
    bytes: &[u8],
    mode: ChannelMode,
    size: usize,
    crop: Crop,
    out: &mut [f32],
) -> Result<(), DecodeError> {
    let img = image::load_from_memory(bytes)?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width == 0 || height == 0 {
        return Err(DecodeError::Unusable("image has no pixels".to_string()));
    }
    // 16-bit data is scaled by 65535 directly, keeping its full precision.
    macro_rules! go {
        ($buf:expr, $channels:expr, $max:expr) => {
            resize_compose(
                &Samples {
                    data: $buf.as_raw(),
                    width,
                    height,
                    channels: $channels,
                    interleaved: true,
                    max: $max,
                },
                mode,
                size,
                crop,
                out,
            )
            .map_err(DecodeError::Unusable)
        };
    }
    match &img {
        DynamicImage::ImageLuma8(b) => go!(b, 1, 255.0),
        DynamicImage::ImageLumaA8(b) => go!(b, 2, 255.0),
        DynamicImage::ImageRgb8(b) => go!(b, 3, 255.0),
        DynamicImage::ImageRgba8(b) => go!(b, 4, 255.0),
        DynamicImage::ImageLuma16(b) => go!(b, 1, 65535.0),
        DynamicImage::ImageLumaA16(b) => go!(b, 2, 65535.0),
        DynamicImage::ImageRgb16(b) => go!(b, 3, 65535.0),
        DynamicImage::ImageRgba16(b) => go!(b, 4, 65535.0),
        DynamicImage::ImageRgb32F(b) => go!(b, 3, 1.0),
        DynamicImage::ImageRgba32F(b) => go!(b, 4, 1.0),
        // Layouts added to the image crate later go through its float conversion.
        other => go!(other.to_rgba32f(), 4, 1.0),
    }
}

/// Stretches an array of physical values band by band and resizes it into `out`.
fn decode_array(
    data: &[f32],
    (channels, height, width): (usize, usize, usize),
    spec: &DataSpec,
    out: &mut [f32],
) -> Result<(), String> {
    let expected = channels
        .checked_mul(height)
        .and_then(|n| n.checked_mul(width))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("array of {channels}x{height}x{width} values has no pixels"))?;
    if data.len() != expected {
        return Err(format!(
            "array holds {} values, {channels}x{height}x{width} expected",
            data.len()
        ));
    }
    // Stretch before resizing, so that NaN (blank) pixels are 0 and do not spread.
    let mut pixels = vec![0.0f32; expected];
    spec.stretch.apply_bands(data, channels, &mut pixels);
    let src = Samples {
        data: &pixels,
        width,
        height,
        channels,
        interleaved: false,
        max: 1.0,
    };
    resize_compose(&src, spec.channels, spec.size, spec.crop, out)
}

/// Decodes one payload into `out` (`mode.channels() * size * size` values, CHW, in `[0, 1]`),
/// or says why it cannot be. Pixel values outside `[0, 1]` are clamped; arrays of physical
/// values go through `stretch` first.
pub(crate) fn decode_into(
    payload: &ImagePayload,
    spec: &DataSpec,
    max_pixels: u64,
    out: &mut [f32],
) -> Result<(), DecodeError> {
    let (mode, size, crop) = (spec.channels, spec.size, spec.crop);
    match payload {
        ImagePayload::Encoded(bytes) => {
            check_pixels(bytes, max_pixels)?;
            check_complete(bytes)?;
            decode_encoded(bytes, mode, size, crop, out)
        }
        ImagePayload::Pixels(batch) => {
            if batch.len() != 1 {
                return Err(DecodeError::Unusable(format!(
                    "pixel payload holds {} images, expected 1",
                    batch.len()
                )));
            }
            let (c, h, w) = (batch.channels(), batch.height(), batch.width());
            let src = Samples {
                data: batch.image(0),
                width: w,
                height: h,
                channels: c,
                interleaved: false,
                max: 1.0,
            };
            Ok(resize_compose(&src, mode, size, crop, out)?)
        }
        ImagePayload::Array {
            data,
            channels,
            height,
            width,
        } => Ok(decode_array(data, (*channels, *height, *width), spec, out)?),
        ImagePayload::Unreadable(message) => Err(DecodeError::Unusable(message.clone())),
    }
}
