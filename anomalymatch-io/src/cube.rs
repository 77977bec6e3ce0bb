//! Numeric cubes of cutouts (`N` images of `C` bands, `H` rows, `W` columns): which axis holds
//! the bands, and how each image becomes a payload for the loader. HDF5 datasets and numpy
//! arrays (the Python package) are read this way.

use anomalymatch_core::{ImageBatch, ImagePayload, ImageSource, SourceImage};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashSet;

/// Axis order of a numeric cube of cutouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CubeLayout {
    /// `(N, H, W)` for 3-D cubes; for 4-D ones, the axis (second or last) strictly shorter
    /// than both others holds the bands. Any other 4-D shape (e.g. `(N, 4, 4, 4)`) is ambiguous
    /// and must be given.
    #[default]
    Auto,
    /// `(N, H, W)`: one band.
    Nhw,
    /// `(N, H, W, C)`: bands last (numpy images, TensorFlow).
    Nhwc,
    /// `(N, C, H, W)`: bands first (PyTorch, FITS cubes).
    Nchw,
}

/// The shape of each image of a cube, its layout resolved (never `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubeShape {
    /// How the cube's axes are ordered.
    pub layout: CubeLayout,
    /// Bands.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl CubeShape {
    /// The images of a cube of `shape` read as `layout`; the message says why they cannot be.
    pub fn of(shape: &[usize], layout: CubeLayout) -> Result<CubeShape, String> {
        let resolved = match (layout, shape) {
            (CubeLayout::Auto | CubeLayout::Nhw, [_, _, _]) => CubeLayout::Nhw,
            (CubeLayout::Nhwc | CubeLayout::Nchw, [_, _, _, _]) => layout,
            (CubeLayout::Auto, &[_, a, b, c]) => {
                if c < a && c < b {
                    CubeLayout::Nhwc
                } else if a < b && a < c {
                    CubeLayout::Nchw
                } else {
                    return Err(format!(
                        "cannot tell which axis of shape {shape:?} holds the bands; set the \
                         layout to nhwc or nchw"
                    ));
                }
            }
            (CubeLayout::Auto, _) => {
                return Err(format!(
                    "a cube of cutouts has 3 or 4 dimensions (N, H, W[, C]), this one has shape \
                     {shape:?}"
                ));
            }
            (given, _) => {
                return Err(format!(
                    "layout {given:?} does not fit a cube of shape {shape:?}"
                ));
            }
        };
        let (channels, height, width) = match (resolved, shape) {
            (CubeLayout::Nhwc, &[_, h, w, c]) => (c, h, w),
            (CubeLayout::Nchw, &[_, c, h, w]) => (c, h, w),
            (_, &[_, h, w, ..]) => (1, h, w),
            _ => return Err(format!("shape {shape:?} is not a cube")),
        };
        if channels == 0 || height == 0 || width == 0 {
            return Err(format!("a cube of shape {shape:?} has empty images"));
        }
        Ok(CubeShape {
            layout: resolved,
            channels,
            height,
            width,
        })
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Integer images as pixels in `[0, 1]` (value / `max`), one payload per image of
    /// `values` (whole images only).
    pub fn pixels<T: Copy + Into<f32>>(&self, values: &[T], max: f32) -> Vec<ImagePayload> {
        let (c, h, w) = (self.channels, self.height, self.width);
        values
            .chunks_exact(self.image_len())
            .map(|image| {
                let data: Vec<f32> = self
                    .in_chw_order(image)
                    .into_iter()
                    .map(|v| v.into() / max)
                    .collect();
                match ImageBatch::from_vec(data, c, h, w) {
                    Ok(batch) => ImagePayload::Pixels(batch),
                    Err(e) => ImagePayload::Unreadable(e.to_string()),
                }
            })
            .collect()
    }

    /// Float images as physical values for the loader's stretch, one payload per image of
    /// `values` (whole images only).
    pub fn arrays(&self, values: &[f32]) -> Vec<ImagePayload> {
        values
            .chunks_exact(self.image_len())
            .map(|image| ImagePayload::Array {
                data: self.in_chw_order(image),
                channels: self.channels,
                height: self.height,
                width: self.width,
            })
            .collect()
    }

    /// One image's values reordered to CHW.
    fn in_chw_order<T: Copy>(&self, image: &[T]) -> Vec<T> {
        if self.layout != CubeLayout::Nhwc || self.channels == 1 {
            return image.to_vec();
        }
        let plane = self.height * self.width;
        let mut out = Vec::with_capacity(image.len());
        for c in 0..self.channels {
            out.extend((0..plane).map(|p| image[p * self.channels + c]));
        }
        out
    }
}

/// The values of a cube held in memory, in row-major order (a numpy array's buffer), borrowed
/// or owned.
#[derive(Debug, Clone)]
pub enum CubeValues<'a> {
    /// 8-bit pixels (value / 255).
    U8(Cow<'a, [u8]>),
    /// 16-bit pixels (value / 65535).
    U16(Cow<'a, [u16]>),
    /// Physical values, stretched by the loader.
    F32(Cow<'a, [f32]>),
}

impl CubeValues<'_> {
    fn len(&self) -> usize {
        match self {
            CubeValues::U8(v) => v.len(),
            CubeValues::U16(v) => v.len(),
            CubeValues::F32(v) => v.len(),
        }
    }

    /// The values, copied where borrowed, so that they outlive the buffer they came from.
    pub fn into_owned(self) -> CubeValues<'static> {
        match self {
            CubeValues::U8(v) => CubeValues::U8(Cow::Owned(v.into_owned())),
            CubeValues::U16(v) => CubeValues::U16(Cow::Owned(v.into_owned())),
            CubeValues::F32(v) => CubeValues::F32(Cow::Owned(v.into_owned())),
        }
    }
}

/// A cube in memory read as a source of images named by their index (`0`, `1`, ...) or by
/// names given with [`CubeSource::with_names`], so that it streams through the scorer as
/// files do.
#[derive(Debug)]
pub struct CubeSource<'a> {
    values: CubeValues<'a>,
    shape: CubeShape,
    count: usize,
    names: Option<Vec<String>>,
    at: usize,
}

impl<'a> CubeSource<'a> {
    /// The images of `values` laid out as `shape` (`[N, ...]`) says, read as `layout`.
    pub fn new(
        values: CubeValues<'a>,
        shape: &[usize],
        layout: CubeLayout,
    ) -> Result<CubeSource<'a>, String> {
        let image = CubeShape::of(shape, layout)?;
        let count = shape[0];
        if count.checked_mul(image.image_len()) != Some(values.len()) {
            return Err(format!(
                "{} values do not fill {count} images of {}x{}x{}",
                values.len(),
                image.channels,
                image.height,
                image.width
            ));
        }
        Ok(CubeSource {
            values,
            shape: image,
            count,
            names: None,
            at: 0,
        })
    }

    /// Names the images, one distinct name each (labels refer to images by name); the message
    /// says which name is missing or repeated.
    pub fn with_names(self, names: Vec<String>) -> Result<CubeSource<'a>, String> {
        if names.len() != self.count {
            return Err(format!("{} names for {} images", names.len(), self.count));
        }
        let mut seen = HashSet::new();
        if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(format!("the name {twice:?} is given to two images"));
        }
        Ok(CubeSource {
            names: Some(names),
            ..self
        })
    }

    /// The source over its own copy of the values, to keep beyond the buffer's life.
    pub fn into_owned(self) -> CubeSource<'static> {
        CubeSource {
            values: self.values.into_owned(),
            shape: self.shape,
            count: self.count,
            names: self.names,
            at: self.at,
        }
    }

    /// The shape of each image.
    pub fn image_shape(&self) -> CubeShape {
        self.shape
    }
}

impl ImageSource for CubeSource<'_> {
    fn len_hint(&self) -> Option<usize> {
        Some(self.count)
    }

    fn next_chunk(&mut self, max: usize) -> anomalymatch_core::Result<Vec<SourceImage>> {
        let end = self.at.saturating_add(max).min(self.count);
        let per = self.shape.image_len();
        let span = self.at * per..end * per;
        let payloads = match &self.values {
            CubeValues::U8(v) => self.shape.pixels(&v[span], 255.0),
            CubeValues::U16(v) => self.shape.pixels(&v[span], 65535.0),
            CubeValues::F32(v) => self.shape.arrays(&v[span]),
        };
        let chunk = (self.at..end)
            .zip(payloads)
            .map(|(i, payload)| SourceImage {
                name: match &self.names {
                    Some(names) => names[i].clone(),
                    None => i.to_string(),
                },
                origin: format!("image {i}"),
                payload,
            })
            .collect();
        self.at = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> anomalymatch_core::Result<()> {
        self.at = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_band_axis_is_the_short_one_and_ambiguity_is_an_error() {
        let auto = |s: &[usize]| CubeShape::of(s, CubeLayout::Auto);
        let nhwc = auto(&[5, 32, 32, 3]).unwrap();
        assert_eq!(
            (nhwc.layout, nhwc.channels, nhwc.height),
            (CubeLayout::Nhwc, 3, 32)
        );
        let nchw = auto(&[5, 4, 32, 30]).unwrap();
        assert_eq!(
            (nchw.layout, nchw.channels, nchw.width),
            (CubeLayout::Nchw, 4, 30)
        );
        assert_eq!(auto(&[5, 28, 28]).unwrap().channels, 1);
        assert!(auto(&[5, 4, 4, 4]).unwrap_err().contains("set the layout"));
        assert!(auto(&[5, 28]).unwrap_err().contains("3 or 4 dimensions"));
        assert!(auto(&[5, 0, 28]).unwrap_err().contains("empty images"));
        let given = CubeShape::of(&[5, 4, 4, 4], CubeLayout::Nchw).unwrap();
        assert_eq!(given.channels, 4);
    }

    #[test]
    fn bands_last_become_planes_and_integers_become_pixels() {
        // Two 1x2 images of 2 bands, bands last: (a0 b0)(a1 b1).
        let shape = CubeShape::of(&[2, 1, 2, 2], CubeLayout::Nhwc).unwrap();
        let values: Vec<u8> = vec![0, 255, 51, 102, 1, 2, 3, 4];
        let payloads = shape.pixels(&values, 255.0);
        let ImagePayload::Pixels(first) = &payloads[0] else {
            panic!("{:?}", payloads[0]);
        };
        assert_eq!(first.image(0), &[0.0, 0.2, 1.0, 0.4]);
        let arrays = shape.arrays(&[1.0, 2.0, 3.0, 4.0]);
        let ImagePayload::Array { data, channels, .. } = &arrays[0] else {
            panic!("{:?}", arrays[0]);
        };
        assert_eq!((data.as_slice(), *channels), (&[1.0, 3.0, 2.0, 4.0][..], 2));
    }

    #[test]
    fn a_cube_in_memory_streams_its_images_by_index() {
        let values: Vec<f32> = (0..2 * 3 * 4 * 4).map(|v| v as f32).collect();
        let mut source = CubeSource::new(
            CubeValues::F32(values.into()),
            &[2, 3, 4, 4],
            CubeLayout::Auto,
        )
        .unwrap();
        assert_eq!(source.image_shape().layout, CubeLayout::Nchw);
        let first = source.next_chunk(1).unwrap();
        let rest = source.next_chunk(5).unwrap();
        assert_eq!((first[0].name.as_str(), rest.len()), ("0", 1));
        let ImagePayload::Array { data, .. } = &rest[0].payload else {
            panic!("{:?}", rest[0].payload);
        };
        assert_eq!(data[0], 48.0);
        assert!(source.next_chunk(5).unwrap().is_empty());
        let short = CubeSource::new(
            CubeValues::U8([0; 10][..].into()),
            &[2, 3, 4, 4],
            CubeLayout::Auto,
        );
        assert!(
            short
                .unwrap_err()
                .contains("10 values do not fill 2 images")
        );
    }

    #[test]
    fn named_images_keep_their_names_beyond_the_buffer() {
        let mut source = {
            let values = [7u8; 2 * 2 * 2];
            CubeSource::new(
                CubeValues::U8((&values[..]).into()),
                &[2, 2, 2],
                CubeLayout::Auto,
            )
            .unwrap()
            .with_names(vec!["a.fits".into(), "b.fits".into()])
            .unwrap()
            .into_owned()
        };
        let chunk = source.next_chunk(5).unwrap();
        let names: Vec<&str> = chunk.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a.fits", "b.fits"]);
        let cube = |n: usize| {
            CubeSource::new(
                CubeValues::U8(vec![0; n * 4].into()),
                &[n, 2, 2],
                CubeLayout::Auto,
            )
            .unwrap()
        };
        let twice = cube(2)
            .with_names(vec!["a".into(), "a".into()])
            .unwrap_err();
        assert!(twice.contains("\"a\" is given to two images"), "{twice}");
        let short = cube(3).with_names(vec!["a".into()]).unwrap_err();
        assert!(short.contains("1 names for 3 images"), "{short}");
    }
}
