//! Loading images from any [`ImageSource`] into [`ImageStore`]s: chunk by chunk, decoded in
//! parallel, with unreadable files counted and named instead of aborting the job.

use crate::config::{Build, Check, Checked, check_path, check_range, key};
use crate::decode::{ChannelMode, DecodeError, decode_into};
use crate::error::{Error, Result};
use crate::framing::Crop;
use crate::image::ImageBatch;
use crate::image_store::ImageStore;
use crate::pipeline::pipelined;
use crate::progress::Progress;
use crate::source::{ImageSource, SourceImage};
use crate::stretch::Stretch;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The pixels a model sees: the side every image is resized to, its channels, how physical
/// values become pixels, and how much of the frame is kept. A checkpoint records it, so that
/// scoring decodes images exactly as training did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Side in pixels; every image is resized to `size x size`.
    pub size: usize,
    /// Which channels the images have.
    pub channels: ChannelMode,
    /// How arrays of physical values (FITS, float HDF5 cubes) become pixels, band by band;
    /// encoded images and 8/16-bit cubes are already pixels (value / type maximum).
    #[serde(default)]
    pub stretch: Stretch,
    /// How much of each frame is kept, centred, before resizing (checkpoints written before
    /// there was a crop kept the whole frame).
    #[serde(default)]
    pub crop: Crop,
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{0}x{0} {1}", self.size, self.channels)?;
        if self.stretch != Stretch::default() {
            write!(f, " ({:?} stretch)", self.stretch)?;
        }
        if self.crop != Crop::WHOLE {
            write!(f, ", {}", self.crop)?;
        }
        Ok(())
    }
}

/// The `[data]` section: where images and labels are and how they are decoded. Checked, it
/// builds an [`ImageLoader`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The images: a folder of JPEG, PNG or TIFF files.
    pub images: Option<PathBuf>,
    /// The starting labels, in the original's `labeled_data.csv` format.
    pub labels: Option<PathBuf>,
    /// Side in pixels that every image is resized to.
    pub size: usize,
    /// Channels fed to the model: `"rgb"`, `"grey"`, or a number of bands kept as stored.
    pub channels: ChannelMode,
    /// How physical values (FITS, float HDF5 cubes) become pixels.
    pub stretch: Stretch,
    /// How much of each frame is kept, centred, before resizing: a share of each side (1 keeps
    /// the whole frame, 0.5 the middle half) or `"auto"`, a window per image around its
    /// central object.
    pub crop: Crop,
    /// Most unlabelled images held in memory at once (the original's `N_to_load`).
    pub n_to_load: usize,
    /// Fail on the first unreadable image instead of counting it and going on.
    pub strict: bool,
    /// Images read and decoded per step; bounds the encoded bytes in flight.
    pub chunk_size: usize,
    /// Most pixels an encoded image may declare; larger ones are refused before decoding (a
    /// decompression bomb) and counted as unreadable.
    pub max_pixels: u64,
}

impl Default for DataConfig {
    /// 96x96 RGB (the benchmark protocol's size) framed on the central object, lenient, 10,000
    /// images in memory, 256 per chunk.
    fn default() -> Self {
        DataConfig {
            images: None,
            labels: None,
            size: 96,
            channels: ChannelMode::Rgb,
            stretch: Stretch::default(),
            crop: Crop::Auto,
            n_to_load: 10_000,
            strict: false,
            chunk_size: 256,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// The default ceiling of [`DataConfig::max_pixels`]: 100 megapixels, beyond any cutout.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Decoded chunks that may wait for their consumer: two keep the reader busy while one is used.
pub const PIPELINE_DEPTH: usize = 2;

/// Largest side an image may be resized to.
pub const MAX_SIZE: usize = 4096;
/// Smallest share of each side a crop may keep.
pub const MIN_CROP: f32 = 0.05;
/// Most bands an image may have.
pub const MAX_CHANNELS: usize = 64;

impl DataConfig {
    /// The pixels this section produces.
    pub fn spec(&self) -> DataSpec {
        DataSpec {
            size: self.size,
            channels: self.channels,
            stretch: self.stretch,
            crop: self.crop,
        }
    }

    /// The same section decoding to `spec` instead (e.g. a checkpoint's).
    pub fn with_spec(mut self, spec: DataSpec) -> Self {
        self.size = spec.size;
        self.channels = spec.channels;
        self.stretch = spec.stretch;
        self.crop = spec.crop;
        self
    }
}

impl Check for DataConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        check_path(errors, key(prefix, "images"), self.images.as_deref());
        check_path(errors, key(prefix, "labels"), self.labels.as_deref());
        check_range(errors, key(prefix, "size"), self.size, 1, MAX_SIZE);
        if let Crop::Share(share) = self.crop {
            check_range(errors, key(prefix, "crop"), share, MIN_CROP, 1.0);
        }
        check_range(
            errors,
            key(prefix, "channels"),
            self.channels.channels(),
            1,
            MAX_CHANNELS,
        );
        self.stretch.check_into(&key(prefix, "stretch"), errors);
        if self.n_to_load == 0 {
            errors.push(format!("{}: must be at least 1", key(prefix, "n_to_load")));
        }
        check_range(
            errors,
            key(prefix, "chunk_size"),
            self.chunk_size,
            1,
            1 << 16,
        );
    }
}

impl Build<()> for DataConfig {
    type Output = ImageLoader;
    type Error = Error;

    fn build_checked(config: &Checked<Self>, _: ()) -> Result<ImageLoader> {
        Ok(ImageLoader {
            spec: config.spec(),
            strict: config.strict,
            chunk_size: config.chunk_size,
            max_pixels: config.max_pixels,
        })
    }
}

/// One image that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedImage {
    /// The image's name (as in label files).
    pub name: String,
    /// Where it came from (a path).
    pub origin: String,
    /// What went wrong.
    pub message: String,
}

/// What a load did: how many images were loaded and which failed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Images decoded successfully.
    pub loaded: usize,
    /// Images that could not be read or decoded, in source order.
    pub failed: Vec<FailedImage>,
}

impl LoadReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: LoadReport) {
        self.loaded += other.loaded;
        self.failed.extend(other.failed);
    }

    /// True when no image failed.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Loaded images with their names; `names[i]` is image `i` of `images`. Failed images are
/// absent from both and listed in `report`.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Names of the loaded images, in source order.
    pub names: Vec<String>,
    /// The images, `[N, C, size, size]`, at 8 bits.
    pub images: ImageStore,
    /// Counts and failures.
    pub report: LoadReport,
}

/// Decodes source images to a fixed size and channel count, in parallel across cores; build it
/// from a checked [`DataConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLoader {
    spec: DataSpec,
    strict: bool,
    chunk_size: usize,
    max_pixels: u64,
}

impl ImageLoader {
    /// The pixels this loader produces.
    pub fn spec(&self) -> DataSpec {
        self.spec
    }

    /// The same loader with the whole frame kept: what people look at (contact sheets, the
    /// labelling page), where the model may see only the centre.
    pub fn whole_frame(&self) -> ImageLoader {
        let mut loader = self.clone();
        loader.spec.crop = Crop::WHOLE;
        loader
    }

    /// True when the first unreadable image is an error rather than counted.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Images read and decoded per step.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Values per loaded image (`channels * size * size`).
    pub fn image_len(&self) -> usize {
        self.spec.channels.channels() * self.spec.size * self.spec.size
    }

    /// No images, with this loader's image shape (a starting point to extend).
    pub fn empty(&self) -> Loaded {
        let s = self.spec.size;
        Loaded {
            names: Vec::new(),
            images: ImageStore::empty(self.spec.channels.channels(), s, s),
            report: LoadReport::default(),
        }
    }

    /// Decodes a chunk in parallel, keeping input order; failures are counted, or in strict
    /// mode the first one (in input order) is returned as an error naming the file.
    pub fn decode_chunk(&self, items: &[SourceImage]) -> Result<Loaded> {
        let per = self.image_len();
        let mut data = vec![0.0f32; items.len() * per];
        let outcomes: Vec<std::result::Result<(), DecodeError>> = data
            .par_chunks_mut(per)
            .zip(items.par_iter())
            .map(|(out, item)| decode_into(&item.payload, &self.spec, self.max_pixels, out))
            .collect();
        let mut names = Vec::with_capacity(items.len());
        let mut report = LoadReport::default();
        // Compact the successes to the front, in order, so failed slots leave no gap.
        let mut kept = 0;
        for (i, (item, outcome)) in items.iter().zip(outcomes).enumerate() {
            match outcome {
                Ok(()) => {
                    if kept != i {
                        data.copy_within(i * per..(i + 1) * per, kept * per);
                    }
                    kept += 1;
                    names.push(item.name.clone());
                }
                Err(source) => {
                    if self.strict {
                        return Err(Error::Image {
                            path: PathBuf::from(&item.origin),
                            source,
                        });
                    }
                    report.failed.push(FailedImage {
                        name: item.name.clone(),
                        origin: item.origin.clone(),
                        message: source.to_string(),
                    });
                }
            }
        }
        data.truncate(kept * per);
        report.loaded = kept;
        let s = self.spec.size;
        let decoded = ImageBatch::from_vec(data, self.spec.channels.channels(), s, s)?;
        let images = ImageStore::quantize(&decoded);
        Ok(Loaded {
            names,
            images,
            report,
        })
    }

    /// Loads the rest of `source` chunk by chunk, handing each decoded chunk to `sink`, so that
    /// memory stays bounded however large the source is (at most [`PIPELINE_DEPTH`] decoded
    /// chunks wait while `sink` works). Returns the combined report.
    pub fn for_each_chunk(
        &self,
        source: &mut dyn ImageSource,
        show_progress: bool,
        mut sink: impl FnMut(Loaded) -> Result<()>,
    ) -> Result<LoadReport> {
        let progress = Progress::new(source.len_hint(), "loading images", show_progress);
        let mut report = LoadReport::default();
        // The next chunks are read and decoded while `sink` works on this one.
        pipelined(
            PIPELINE_DEPTH,
            || {
                let chunk = source.next_chunk(self.chunk_size)?;
                if chunk.is_empty() {
                    return Ok(None);
                }
                Ok(Some((chunk.len(), self.decode_chunk(&chunk)?)))
            },
            |(items, loaded)| {
                progress.inc(items);
                report.merge(loaded.report.clone());
                sink(loaded)
            },
        )?;
        progress.finish();
        Ok(report)
    }

    /// Loads the rest of `source` into memory: for sets that fit (labelled images, a pool).
    pub fn load_all(&self, source: &mut dyn ImageSource, show_progress: bool) -> Result<Loaded> {
        let mut all = self.empty();
        let report = self.for_each_chunk(source, show_progress, |chunk| {
            all.names.extend(chunk.names);
            all.images.extend(&chunk.images)
        })?;
        all.report = report;
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::FolderSource;
    use crate::source::ImagePayload;
    use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, RgbaImage};
    use std::path::Path;

    fn loader(size: usize, channels: ChannelMode, strict: bool) -> ImageLoader {
        DataConfig {
            size,
            channels,
            strict,
            chunk_size: 2,
            ..DataConfig::default()
        }
        .check()
        .unwrap()
        .build(())
        .unwrap()
    }

    /// Half a stored level: how far the loader's rounding moves a value.
    const HALF_LEVEL: f32 = 0.5 / 255.0 + 1e-6;

    /// The loaded images as values in `[0, 1]`.
    fn values(loaded: &Loaded) -> ImageBatch {
        loaded.images.to_batch()
    }

    fn load_folder(dir: &Path, l: &ImageLoader) -> Result<Loaded> {
        l.load_all(&mut FolderSource::open(dir)?, false)
    }

    /// A folder with one image of each kind the decoder must handle, plus a corrupt file.
    fn sample_folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        RgbImage::from_fn(40, 30, |x, _| Rgb([200, (x * 6) as u8, 10]))
            .save(p.join("a_rgb.jpg"))
            .unwrap();
        GrayImage::from_pixel(20, 20, Luma([51]))
            .save(p.join("b_gray.png"))
            .unwrap();
        RgbaImage::from_pixel(16, 16, image::Rgba([255, 0, 0, 7]))
            .save(p.join("c_rgba.PNG"))
            .unwrap();
        std::fs::write(p.join("d_corrupt.jpeg"), b"\xff\xd8 not really a jpeg").unwrap();
        ImageBuffer::<Luma<u16>, Vec<u16>>::from_pixel(12, 12, Luma([1000]))
            .save(p.join("e_gray16.png"))
            .unwrap();
        ImageBuffer::<Rgb<u16>, Vec<u16>>::from_pixel(8, 8, Rgb([257, 65535, 40000]))
            .save(p.join("f_rgb16.tif"))
            .unwrap();
        dir
    }

    #[test]
    fn loads_every_format_and_counts_the_corrupt_file() {
        let dir = sample_folder();
        let l = loader(8, ChannelMode::Rgb, false);
        let loaded = load_folder(dir.path(), &l).unwrap();
        assert_eq!(
            loaded.names,
            [
                "a_rgb.jpg",
                "b_gray.png",
                "c_rgba.PNG",
                "e_gray16.png",
                "f_rgb16.tif"
            ]
        );
        assert_eq!(loaded.report.loaded, 5);
        assert_eq!(loaded.report.failed.len(), 1);
        let failed = &loaded.report.failed[0];
        assert_eq!(failed.name, "d_corrupt.jpeg");
        assert!(failed.origin.ends_with("d_corrupt.jpeg"));
        let images = &values(&loaded);
        assert_eq!(
            (
                images.len(),
                images.channels(),
                images.height(),
                images.width()
            ),
            (5, 3, 8, 8)
        );
        assert!(images.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
        // Grey is replicated into three equal channels at 51/255.
        assert!(images.image(1).iter().all(|&v| (v - 0.2).abs() < 1e-5));
        // RGBA drops alpha.
        let rgba = images.image(2);
        assert!(rgba[..64].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(rgba[64..].iter().all(|&v| v.abs() < 1e-6));
        // 16-bit values are scaled by 65535, not shifted by 8 bits (1000 >> 8 is a level
        // lower), before the loader rounds them to 8 bits.
        assert!(
            images
                .image(3)
                .iter()
                .all(|&v| (v - 1000.0 / 65535.0).abs() < HALF_LEVEL)
        );
        let rgb16 = images.image(4);
        assert!((rgb16[0] - 257.0 / 65535.0).abs() < HALF_LEVEL);
        assert!((rgb16[64] - 1.0).abs() < HALF_LEVEL);
        assert!((rgb16[128] - 40000.0 / 65535.0).abs() < HALF_LEVEL);
        // JPEG red channel near 200/255 (lossy).
        let jpeg = images.image(0);
        assert!(jpeg[..64].iter().all(|&v| (v - 200.0 / 255.0).abs() < 0.03));
        // Green grows left to right and not top to bottom: the non-square image is not transposed.
        let green = &jpeg[64..128];
        for row in green.chunks_exact(8) {
            assert!(row[7] - row[0] > 0.6, "{row:?}");
            assert!((row[3] - green[3]).abs() < 0.03);
        }
    }

    #[test]
    fn strict_mode_fails_naming_the_file() {
        let dir = sample_folder();
        let err = load_folder(dir.path(), &loader(8, ChannelMode::Rgb, true)).unwrap_err();
        assert!(matches!(err, Error::Image { .. }));
        assert!(err.to_string().contains("d_corrupt.jpeg"), "{err}");
        // The decoder's own error is kept as the cause.
        let cause = std::error::Error::source(&err).and_then(|c| c.source());
        assert!(
            cause.is_some_and(|c| c.is::<image::ImageError>()),
            "{err}: {cause:?}"
        );
    }

    #[test]
    fn channel_modes() {
        let dir = sample_folder();
        let grey = load_folder(dir.path(), &loader(4, ChannelMode::Grayscale, false)).unwrap();
        assert_eq!(grey.images.channels(), 1);
        assert_eq!(grey.images.len(), 5);
        // Luma of pure red is 0.299.
        assert!(
            values(&grey)
                .image(2)
                .iter()
                .all(|&v| (v - 0.299).abs() < HALF_LEVEL)
        );
        assert!(
            values(&grey)
                .image(1)
                .iter()
                .all(|&v| (v - 0.2).abs() < 1e-5)
        );

        // Keep(4) keeps RGBA's alpha and fails (counted) on images with fewer channels.
        let four = load_folder(dir.path(), &loader(4, ChannelMode::Keep(4), false)).unwrap();
        assert_eq!(four.names, ["c_rgba.PNG"]);
        assert!(
            values(&four).image(0)[48..]
                .iter()
                .all(|&v| (v - 7.0 / 255.0).abs() < 1e-5)
        );
        assert_eq!(four.report.failed.len(), 5);
        assert!(four.report.failed[0].message.contains("4 were asked for"));

        let one = load_folder(dir.path(), &loader(4, ChannelMode::Keep(1), false)).unwrap();
        assert_eq!(one.images.channels(), 1);
        assert_eq!(one.images.len(), 5);
    }

    #[test]
    fn pixel_payloads_are_resized_and_checked() {
        let l = loader(4, ChannelMode::Keep(5), false);
        let pixels = ImageBatch::from_vec(vec![0.25; 5 * 10 * 6], 5, 10, 6).unwrap();
        let items = vec![
            SourceImage {
                name: "cube".into(),
                origin: "cube.fits".into(),
                payload: ImagePayload::Pixels(pixels.clone()),
            },
            SourceImage {
                name: "gone".into(),
                origin: "gone.fits".into(),
                payload: ImagePayload::Unreadable("no such file".into()),
            },
        ];
        let loaded = l.decode_chunk(&items).unwrap();
        assert_eq!(loaded.images.channels(), 5);
        assert_eq!(loaded.images.height(), 4);
        assert!(
            values(&loaded)
                .as_slice()
                .iter()
                .all(|&v| (v - 0.25).abs() < HALF_LEVEL)
        );
        assert_eq!(loaded.report.failed[0].message, "no such file");
        // Five bands cannot be shown as RGB.
        let err = loader(4, ChannelMode::Rgb, true)
            .decode_chunk(&items[..1])
            .unwrap_err();
        assert!(err.to_string().contains("cube.fits"), "{err}");
    }

    #[test]
    fn a_crop_keeps_the_centre_of_interleaved_and_planar_images() {
        // A bright 20x16 centre (the middle half of each side) in a dark 40x32 frame.
        let bright = |x: u32, y: u32| (10..30).contains(&x) && (8..24).contains(&y);
        let dir = tempfile::tempdir().unwrap();
        RgbImage::from_fn(40, 32, |x, y| Rgb([if bright(x, y) { 255 } else { 0 }; 3]))
            .save(dir.path().join("centre.png"))
            .unwrap();
        let planar: Vec<f32> = (0..2 * 32 * 40)
            .map(|i| f32::from(bright((i % 40) as u32, ((i / 40) % 32) as u32)))
            .collect();
        let cube = |planar: Vec<f32>, h, w| {
            [SourceImage {
                name: "cube".into(),
                origin: "cube.fits".into(),
                payload: ImagePayload::Pixels(ImageBatch::from_vec(planar, 2, h, w).unwrap()),
            }]
        };
        let items = cube(planar, 32, 40);
        let with = |crop, channels| {
            DataConfig {
                size: 8,
                channels,
                crop,
                ..DataConfig::default()
            }
            .check()
            .unwrap()
            .build(())
            .unwrap()
        };
        for crop in [Crop::Share(0.5), Crop::WHOLE] {
            let png = load_folder(dir.path(), &with(crop, ChannelMode::Rgb)).unwrap();
            let cube = with(crop, ChannelMode::Keep(2))
                .decode_chunk(&items)
                .unwrap();
            for pixels in [values(&png).image(0), values(&cube).image(0)] {
                let darkest = pixels.iter().copied().fold(f32::INFINITY, f32::min);
                if crop == Crop::WHOLE {
                    assert!(darkest < 0.01, "crop {crop}: {pixels:?}");
                } else {
                    assert!(darkest > 0.99, "crop {crop}: {pixels:?}");
                }
            }
        }
        // `auto` frames a small central object closely, in either layout.
        let small = |x: u32, y: u32| (28..36).contains(&x) && (28..36).contains(&y);
        let small_dir = tempfile::tempdir().unwrap();
        RgbImage::from_fn(64, 64, |x, y| Rgb([if small(x, y) { 255 } else { 0 }; 3]))
            .save(small_dir.path().join("small.png"))
            .unwrap();
        let planar: Vec<f32> = (0..2 * 64 * 64)
            .map(|i| f32::from(small((i % 64) as u32, ((i / 64) % 64) as u32)))
            .collect();
        let lit = |pixels: &[f32]| {
            pixels.iter().filter(|&&v| v > 0.5).count() as f32 / pixels.len() as f32
        };
        for crop in [Crop::Auto, Crop::WHOLE] {
            let png = load_folder(small_dir.path(), &with(crop, ChannelMode::Rgb)).unwrap();
            let cube = with(crop, ChannelMode::Keep(2))
                .decode_chunk(&cube(planar.clone(), 64, 64))
                .unwrap();
            for pixels in [values(&png).image(0), values(&cube).image(0)] {
                let share = lit(pixels);
                if crop == Crop::Auto {
                    assert!(share > 0.15, "{crop}: {share}");
                } else {
                    assert!(share < 0.05, "{crop}: {share}");
                }
            }
        }
        // The whole-frame loader shows the dark border again; a crop of nothing is refused.
        let whole = with(Crop::Share(0.5), ChannelMode::Rgb).whole_frame();
        let png = load_folder(dir.path(), &whole).unwrap();
        assert!(values(&png).image(0).iter().any(|&v| v < 0.01));
        let err = DataConfig {
            crop: Crop::Share(0.0),
            ..DataConfig::default()
        }
        .check()
        .unwrap_err();
        assert!(err.to_string().contains("crop"), "{err}");
    }

    #[test]
    fn array_payloads_are_stretched_band_by_band() {
        let config = |channels, stretch| DataConfig {
            size: 2,
            channels,
            stretch,
            ..DataConfig::default()
        };
        let array = |data: Vec<f32>, channels| SourceImage {
            name: "a".into(),
            origin: "a.fits".into(),
            payload: ImagePayload::Array {
                data,
                channels,
                height: 2,
                width: 2,
            },
        };
        let two_bands = array(vec![0.0, 1.0, f32::NAN, 3.0, -10.0, 0.0, 10.0, 20.0], 2);
        let l = config(ChannelMode::Keep(2), Stretch::MinMax)
            .check()
            .unwrap()
            .build(())
            .unwrap();
        let loaded = l.decode_chunk(std::slice::from_ref(&two_bands)).unwrap();
        let third = 1.0 / 3.0;
        let expected = [0.0, third, 0.0, 1.0, 0.0, third, 2.0 * third, 1.0];
        for (got, want) in values(&loaded).image(0).iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{:?}", values(&loaded).image(0));
        }
        // One band shown as RGB is replicated; a wrong length is counted, not fatal.
        let l = config(ChannelMode::Rgb, Stretch::default())
            .check()
            .unwrap()
            .build(())
            .unwrap();
        let items = [
            array(vec![5.0, 6.0, 7.0, 8.0], 1),
            array(vec![1.0; 3], 1),
            array(vec![1.0; 20], 5),
        ];
        let loaded = l.decode_chunk(&items).unwrap();
        assert_eq!(loaded.names, ["a"]);
        let batch = values(&loaded);
        let rgb = batch.image(0);
        assert_eq!(rgb[..4], rgb[4..8]);
        assert!(rgb[0] < 0.01 && rgb[3] > 0.99, "{rgb:?}");
        assert!(loaded.report.failed[0].message.contains("3 values"));
        assert!(
            loaded.report.failed[1]
                .message
                .contains("5 channels cannot be read as RGB")
        );
    }

    #[test]
    fn jpegs_cut_short_are_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.jpeg");
        image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 90]))
            .save(&whole)
            .unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        std::fs::write(dir.path().join("cut.jpeg"), &bytes[..bytes.len() * 2 / 3]).unwrap();
        let loaded = load_folder(dir.path(), &loader(8, ChannelMode::Rgb, false)).unwrap();
        assert_eq!(loaded.names, ["whole.jpeg"]);
        let failed = &loaded.report.failed[0];
        assert!(failed.origin.ends_with("cut.jpeg"), "{}", failed.origin);
        assert!(failed.message.contains("truncated"), "{}", failed.message);
    }

    #[test]
    fn images_above_the_pixel_ceiling_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        // 4000x4000 of one colour: a few kilobytes of PNG for 16 megapixels.
        GrayImage::from_pixel(4000, 4000, Luma([7]))
            .save(dir.path().join("bomb.png"))
            .unwrap();
        GrayImage::from_pixel(10, 10, Luma([7]))
            .save(dir.path().join("small.png"))
            .unwrap();
        assert!(
            std::fs::metadata(dir.path().join("bomb.png"))
                .unwrap()
                .len()
                < 100_000
        );
        let l = DataConfig {
            size: 4,
            max_pixels: 1_000_000,
            ..DataConfig::default()
        }
        .check()
        .unwrap()
        .build(())
        .unwrap();
        let loaded = load_folder(dir.path(), &l).unwrap();
        assert_eq!(loaded.names, ["small.png"]);
        let why = &loaded.report.failed[0].message;
        assert!(
            why.contains("4000x4000") && why.contains("data.max_pixels"),
            "{why}"
        );
    }

    #[test]
    fn resize_keeps_levels_and_range() {
        let dir = tempfile::tempdir().unwrap();
        RgbImage::from_pixel(423, 423, Rgb([90, 128, 255]))
            .save(dir.path().join("flat.png"))
            .unwrap();
        // A hard black/white edge: resized values stay within [0, 1].
        RgbImage::from_fn(101, 57, |x, _| {
            if x % 2 == 0 {
                Rgb([0; 3])
            } else {
                Rgb([255; 3])
            }
        })
        .save(dir.path().join("stripes.png"))
        .unwrap();
        for size in [96, 200, 600] {
            let loaded = load_folder(dir.path(), &loader(size, ChannelMode::Rgb, true)).unwrap();
            let batch = values(&loaded);
            let flat = batch.image(0);
            for (c, level) in [90.0f32, 128.0, 255.0].iter().enumerate() {
                let plane = &flat[c * size * size..(c + 1) * size * size];
                assert!(
                    plane.iter().all(|&v| (v - level / 255.0).abs() < 1e-5),
                    "size {size}"
                );
            }
            let stripes = batch.image(1);
            assert!(stripes.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Shrinking fine stripes averages them (antialiasing) instead of picking black or white.
        let small = load_folder(dir.path(), &loader(10, ChannelMode::Grayscale, true)).unwrap();
        assert!(
            values(&small)
                .image(1)
                .iter()
                .all(|&v| (v - 0.5).abs() < 0.1)
        );
    }

    #[test]
    fn config_is_checked() {
        let err = DataConfig {
            size: 0,
            channels: ChannelMode::Keep(0),
            n_to_load: 0,
            chunk_size: 0,
            ..DataConfig::default()
        }
        .check()
        .unwrap_err();
        let Error::Config(problems) = err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("size:"), "{problems:?}");
    }

    #[test]
    fn chunks_stream_in_order() {
        let dir = sample_folder();
        let l = loader(4, ChannelMode::Rgb, false);
        let mut seen = Vec::new();
        let report = l
            .for_each_chunk(
                &mut FolderSource::open(dir.path()).unwrap(),
                false,
                |chunk| {
                    assert!(chunk.names.len() <= 2);
                    seen.extend(chunk.names);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(seen.len(), 5);
        assert_eq!(report.loaded, 5);
        assert_eq!(report.failed.len(), 1);
    }

    /// `<workspace>/../shared`, or `$ANOMALYMATCH_SHARED` when set.
    fn shared_dir() -> std::path::PathBuf {
        match std::env::var_os("ANOMALYMATCH_SHARED") {
            Some(p) => p.into(),
            None => Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("../shared"),
        }
    }

    #[test]
    fn loads_real_gz1_images() {
        let dir = shared_dir().join("data/gz1-sdss/images");
        if !dir.is_dir() {
            eprintln!("skipping: {} not found", dir.display());
            return;
        }
        let mut source = FolderSource::open(&dir).unwrap();
        assert_eq!(source.len_hint(), Some(6664));
        let l = loader(96, ChannelMode::Rgb, true);
        let chunk = source.next_chunk(50).unwrap();
        let loaded = l.decode_chunk(&chunk).unwrap();
        assert_eq!(loaded.images.len(), 50);
        assert_eq!(loaded.images.image_len(), 3 * 96 * 96);
        let batch = values(&loaded);
        let all = batch.as_slice();
        assert!(all.iter().all(|v| (0.0..=1.0).contains(v)));
        // Galaxies on a dark sky: a dark mean, but a bright centre.
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        assert!(mean > 0.005 && mean < 0.3, "mean {mean}");
        let centre = batch.image(0)[48 * 96 + 48];
        assert!(centre > mean, "centre {centre} vs mean {mean}");
    }
}
