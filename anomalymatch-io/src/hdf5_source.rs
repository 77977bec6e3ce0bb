//! HDF5 files: the original AnomalyMatch's layout (a dataset of variable-length uint8 arrays,
//! each an encoded JPEG or PNG, beside a dataset of file names) and numeric cubes of cutouts.
//!
//! Read with `hdf5-reader`, a pure-Rust reader, so that no system library is needed. It reads
//! what h5py writes: old and new file formats, contiguous and chunked datasets, gzip and
//! shuffle, variable-length sequences and strings, fixed-length strings.

use crate::cube::{CubeLayout, CubeShape};
use crate::encoded::check_image_bytes;
use crate::error::{IoError, Result};
use crate::unique::make_unique;
use anomalymatch_core::Check;
use anomalymatch_core::config::key;
use anomalymatch_core::source::{MAX_ITEM_BYTES, chunk_len};
use anomalymatch_core::{ImagePayload, ImageSource, SourceImage};
use hdf5_reader::{
    Dataset, Datatype, H5Type, Hdf5File, OpenOptions, SliceInfo, SliceInfoElem, VarLenKind,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The most bytes one read may decode to per byte of the file (deflate's best ratio is about
/// 1032:1).
const READ_RATIO: u64 = 1100;
/// The read budget of small files.
const READ_FLOOR: usize = 256 << 20;

/// The original's dataset of images.
pub const DEFAULT_IMAGES_DATASET: &str = "images";
/// The original's dataset of names.
pub const DEFAULT_NAMES_DATASET: &str = "filenames";

/// Where the images and names are in an HDF5 file, and how cubes are laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hdf5Options {
    /// Dataset of the images (a path such as `images` or `survey/cutouts`): variable-length
    /// uint8 arrays (encoded JPEG/PNG, one per element) or a numeric cube of uint8, uint16,
    /// float32 or float64.
    pub images_dataset: String,
    /// Dataset of the names (one string per image, as used in label files).
    pub names_dataset: String,
    /// Axis order of numeric cubes.
    pub layout: CubeLayout,
}

impl Default for Hdf5Options {
    /// The original's names: `images` and `filenames`, with the cube layout detected.
    fn default() -> Self {
        Hdf5Options {
            images_dataset: DEFAULT_IMAGES_DATASET.to_string(),
            names_dataset: DEFAULT_NAMES_DATASET.to_string(),
            layout: CubeLayout::Auto,
        }
    }
}

impl Check for Hdf5Options {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        for (field, value) in [
            ("images_dataset", &self.images_dataset),
            ("names_dataset", &self.names_dataset),
        ] {
            if value.trim_matches('/').is_empty() {
                errors.push(format!("{}: must name a dataset", key(prefix, field)));
            }
        }
        if self.images_dataset == self.names_dataset {
            errors.push(format!(
                "{}: must differ from images_dataset ({:?})",
                key(prefix, "names_dataset"),
                self.images_dataset
            ));
        }
    }
}

/// Element type of a numeric cube.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CubeType {
    U8,
    U16,
    F32,
    F64,
}

/// Bytes of one stored image of a cube (saturating, so that an absurd shape is refused).
fn image_bytes(kind: CubeType, channels: usize, height: usize, width: usize) -> u64 {
    let element: u64 = match kind {
        CubeType::U8 => 1,
        CubeType::U16 => 2,
        CubeType::F32 => 4,
        CubeType::F64 => 8,
    };
    [channels, height, width]
        .iter()
        .fold(element, |acc, &d| acc.saturating_mul(d as u64))
}

/// What the images dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// One encoded image file per element.
    Encoded,
    /// Pixels or physical values; `layout` is never `Auto`.
    Cube {
        kind: CubeType,
        layout: CubeLayout,
        channels: usize,
        height: usize,
        width: usize,
    },
}

/// The images of one HDF5 file, in dataset order, as an [`ImageSource`].
///
/// Encoded images are delivered as files for the loader to decode; uint8 and uint16 cubes as
/// pixels (value / 255 or / 65535, like 8- and 16-bit image files); float cubes as physical
/// values for the loader's stretch. Only the rows of the chunk asked for are read. Origins are
/// `file.h5:dataset[index]`; names that occur more than once are made unique as `name[row]`.
/// Cube images larger than [`MAX_ITEM_BYTES`] are refused at opening, and a chunk's rows stay
/// within [`MAX_CHUNK_BYTES`](anomalymatch_core::source::MAX_CHUNK_BYTES). An element that cannot be read, or whose bytes are not a JPEG, PNG
/// or TIFF file, is delivered as unreadable naming its origin.
pub struct Hdf5Source {
    path: PathBuf,
    images: Dataset,
    images_name: String,
    names: Vec<String>,
    notes: Vec<String>,
    content: Content,
    position: usize,
}

impl std::fmt::Debug for Hdf5Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hdf5Source")
            .field("path", &self.path)
            .field("images", &self.images_name)
            .field("len", &self.names.len())
            .field("content", &self.content)
            .field("position", &self.position)
            .finish()
    }
}

impl Hdf5Source {
    /// Opens `path`, checks the images dataset and reads the names.
    pub fn open(path: impl AsRef<Path>, options: &Hdf5Options) -> Result<Self> {
        let options = options.clone().check_at("hdf5")?;
        let path = path.as_ref().to_path_buf();
        let length = std::fs::metadata(&path)
            .map_err(|e| IoError::io(&path, e))?
            .len();
        // A damaged header can declare a dataset of any size, and the reader would allocate
        // it before reading a byte: no read may decode to more than deflate's best ratio
        // (about 1000:1) over the whole file, with a floor for small files.
        let budget = usize::try_from(length.saturating_mul(READ_RATIO))
            .unwrap_or(usize::MAX)
            .max(READ_FLOOR);
        let options_in = OpenOptions::default().with_max_read_bytes(budget);
        let file = Hdf5File::open_with_options(&path, options_in)
            .map_err(|e| IoError::format_caused(&path, "not a readable HDF5 file", e))?;
        let images_name = options.images_dataset.clone();
        let images = find_dataset(&file, &path, &images_name)?;
        let content = content_of(&images, options.layout)
            .map_err(|message| IoError::item(&path, &images_name, message))?;
        let count = images.shape().first().copied().unwrap_or(0) as usize;
        let names = read_names(&file, &path, &options.names_dataset, count)?;
        let mut rows: Vec<(String, usize)> = names.into_iter().zip(0..).collect();
        let notes: Vec<String> = make_unique(&mut rows, "row")
            .map_err(|m| IoError::item(&path, &options.names_dataset, m))?
            .into_iter()
            .collect();
        Ok(Hdf5Source {
            path,
            images,
            images_name,
            names: rows.into_iter().map(|(name, _)| name).collect(),
            notes,
            content,
            position: 0,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All names, in delivery order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// True when the images are encoded files (the original's layout), false for cubes.
    pub fn is_encoded(&self) -> bool {
        self.content == Content::Encoded
    }

    /// The axis order of a cube (as given or detected), `None` for encoded images.
    pub fn layout(&self) -> Option<CubeLayout> {
        match self.content {
            Content::Encoded => None,
            Content::Cube { layout, .. } => Some(layout),
        }
    }

    /// Payloads of rows `start..end`, reading them in one slice, or one by one when the slice
    /// fails so that a damaged element only costs itself.
    fn payloads(&self, start: usize, end: usize) -> Vec<ImagePayload> {
        match self.read_rows(start, end) {
            Ok(payloads) => payloads,
            Err(_) => (start..end)
                .map(|row| match self.read_rows(row, row + 1) {
                    Ok(mut one) => one
                        .pop()
                        .unwrap_or_else(|| ImagePayload::Unreadable("no element read".to_string())),
                    Err(message) => ImagePayload::Unreadable(message),
                })
                .collect(),
        }
    }

    fn read_rows(
        &self,
        start: usize,
        end: usize,
    ) -> std::result::Result<Vec<ImagePayload>, String> {
        let rows = SliceInfoElem::Slice {
            start: start as u64,
            end: end as u64,
            step: 1,
        };
        let whole = SliceInfoElem::Slice {
            start: 0,
            end: u64::MAX,
            step: 1,
        };
        let mut selections = vec![whole; self.images.ndim()];
        selections[0] = rows;
        let selection = SliceInfo { selections };
        match self.content {
            Content::Encoded => {
                let refs = self
                    .images
                    .read_slice::<VlenRef>(&selection)
                    .map_err(|e| e.to_string())?;
                Ok(refs
                    .iter()
                    .map(
                        |r| match self.images.resolve_vlen_reference_bytes(&r.0, 1) {
                            Ok(bytes) if bytes.is_empty() => {
                                ImagePayload::Unreadable("empty element".to_string())
                            }
                            Ok(bytes) if bytes.len() as u64 > MAX_ITEM_BYTES => {
                                ImagePayload::Unreadable(format!(
                                    "{} bytes, more than the {MAX_ITEM_BYTES}-byte limit on one \
                                     image",
                                    bytes.len()
                                ))
                            }
                            Ok(bytes) => ImagePayload::Encoded(bytes),
                            Err(e) => ImagePayload::Unreadable(e.to_string()),
                        },
                    )
                    .collect())
            }
            Content::Cube {
                kind,
                layout,
                channels,
                height,
                width,
            } => {
                let shape = CubeShape {
                    layout,
                    channels,
                    height,
                    width,
                };
                Ok(match kind {
                    CubeType::U8 => shape.pixels(&self.read::<u8>(&selection)?, 255.0),
                    CubeType::U16 => shape.pixels(&self.read::<u16>(&selection)?, 65535.0),
                    CubeType::F32 => shape.arrays(&self.read::<f32>(&selection)?),
                    CubeType::F64 => {
                        let values = self.read::<f64>(&selection)?;
                        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
                        shape.arrays(&values)
                    }
                })
            }
        }
    }

    fn read<T: H5Type>(&self, selection: &SliceInfo) -> std::result::Result<Vec<T>, String> {
        let array = self
            .images
            .read_slice::<T>(selection)
            .map_err(|e| e.to_string())?;
        // Slices come back in standard (row-major) layout; copying that slice is an order of
        // magnitude faster than iterating over a dynamic-dimensional array.
        Ok(match array.as_slice() {
            Some(values) => values.to_vec(),
            None => array.iter().cloned().collect(),
        })
    }
}

impl ImageSource for Hdf5Source {
    fn len_hint(&self) -> Option<usize> {
        Some(self.names.len())
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn skip(&mut self, n: usize) -> anomalymatch_core::Result<usize> {
        // Items are addressed by index: jumping reads nothing.
        let skipped = n.min(self.names.len() - self.position);
        self.position += skipped;
        Ok(skipped)
    }

    fn next_chunk(&mut self, max: usize) -> anomalymatch_core::Result<Vec<SourceImage>> {
        // A cube's chunk is bounded as a whole, as a folder's is, whatever `max` asks.
        let max = match self.content {
            Content::Encoded => max,
            Content::Cube {
                kind,
                channels,
                height,
                width,
                ..
            } => max.min(chunk_len(std::iter::repeat_n(
                image_bytes(kind, channels, height, width),
                max,
            ))),
        };
        let end = self.position.saturating_add(max).min(self.names.len());
        if end == self.position {
            return Ok(Vec::new());
        }
        let payloads = self.payloads(self.position, end);
        let chunk = (self.position..end)
            .zip(payloads)
            .map(|(row, payload)| {
                let origin = format!("{}:{}[{row}]", self.path.display(), self.images_name);
                let payload = match payload {
                    ImagePayload::Encoded(bytes) => match check_image_bytes(&bytes, &origin) {
                        Ok(()) => ImagePayload::Encoded(bytes),
                        Err(message) => ImagePayload::Unreadable(message),
                    },
                    ImagePayload::Unreadable(message) => {
                        ImagePayload::Unreadable(format!("{origin}: {message}"))
                    }
                    other => other,
                };
                SourceImage {
                    name: self.names[row].clone(),
                    origin,
                    payload,
                }
            })
            .collect();
        self.position = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> anomalymatch_core::Result<()> {
        self.position = 0;
        Ok(())
    }
}

/// One variable-length element as stored: its length and where its bytes are in the file's
/// global heap (resolved by [`Dataset::resolve_vlen_reference_bytes`]).
#[derive(Debug, Clone)]
struct VlenRef(Vec<u8>);

/// Size of a stored variable-length reference in files with 8-byte offsets (h5py's).
const VLEN_REF_SIZE: usize = 16;

impl H5Type for VlenRef {
    fn hdf5_type() -> Datatype {
        Datatype::Opaque {
            size: VLEN_REF_SIZE as u32,
            tag: "vlen reference".to_string(),
        }
    }

    fn from_bytes(bytes: &[u8], _dtype: &Datatype) -> hdf5_reader::error::Result<Self> {
        Ok(VlenRef(bytes.to_vec()))
    }

    fn element_size(_dtype: &Datatype) -> usize {
        VLEN_REF_SIZE
    }
}

/// The dataset at `name`, or an error naming it and what the file holds instead.
fn find_dataset(file: &Hdf5File, path: &Path, name: &str) -> Result<Dataset> {
    file.dataset(name).map_err(|e| {
        let listing = file
            .root_group()
            .and_then(|g| g.member_names())
            .map(|(groups, datasets)| {
                let mut all: Vec<String> = datasets;
                all.extend(groups.into_iter().map(|g| format!("{g}/")));
                all.join(", ")
            })
            .unwrap_or_default();
        IoError::item(
            path,
            name,
            format!("cannot open dataset ({e}); the file's top level holds: {listing}"),
        )
    })
}

/// What the images dataset holds, or why it cannot be read as images.
fn content_of(images: &Dataset, layout: CubeLayout) -> std::result::Result<Content, String> {
    let shape: Vec<usize> = images.shape().iter().map(|&d| d as usize).collect();
    let kind = match images.dtype() {
        Datatype::VarLen {
            base,
            kind: VarLenKind::Sequence,
            ..
        } if matches!(**base, Datatype::FixedPoint { size: 1, .. }) => {
            if shape.len() != 1 {
                return Err(format!(
                    "variable-length images must be a 1-D dataset, this one has shape {shape:?}"
                ));
            }
            if images.vlen_reference_size() != VLEN_REF_SIZE {
                return Err(format!(
                    "variable-length references of {} bytes (files with 4-byte offsets) are \
                     not supported",
                    images.vlen_reference_size()
                ));
            }
            return Ok(Content::Encoded);
        }
        Datatype::FixedPoint {
            size: 1,
            signed: false,
            ..
        } => CubeType::U8,
        Datatype::FixedPoint {
            size: 2,
            signed: false,
            ..
        } => CubeType::U16,
        Datatype::FloatingPoint { size: 4, .. } => CubeType::F32,
        Datatype::FloatingPoint { size: 8, .. } => CubeType::F64,
        other => {
            return Err(format!(
                "elements of type {} cannot be images; expected variable-length uint8 (encoded \
                 files) or a uint8, uint16, float32 or float64 cube",
                describe(other)
            ));
        }
    };
    let CubeShape {
        layout,
        channels,
        height,
        width,
    } = CubeShape::of(&shape, layout)?;
    let bytes = image_bytes(kind, channels, height, width);
    if bytes > MAX_ITEM_BYTES {
        return Err(format!(
            "images of shape {channels}x{height}x{width} take {bytes} bytes each, more than the \
             {MAX_ITEM_BYTES}-byte limit on one image"
        ));
    }
    Ok(Content::Cube {
        kind,
        layout,
        channels,
        height,
        width,
    })
}

/// A short name of an HDF5 element type for messages.
fn describe(dtype: &Datatype) -> String {
    match dtype {
        Datatype::FixedPoint { size, signed, .. } => {
            format!(
                "{}int{}",
                if *signed { "" } else { "u" },
                size.saturating_mul(8)
            )
        }
        Datatype::FloatingPoint { size, .. } => format!("float{}", size.saturating_mul(8)),
        Datatype::String { .. } => "string".to_string(),
        Datatype::VarLen {
            kind: VarLenKind::String,
            ..
        } => "variable-length string".to_string(),
        Datatype::VarLen { base, .. } => format!("variable-length {}", describe(base)),
        Datatype::Compound { .. } => "compound".to_string(),
        other => format!("{other:?}"),
    }
}

/// The names of `count` images from the 1-D string dataset `name`.
fn read_names(file: &Hdf5File, path: &Path, name: &str, count: usize) -> Result<Vec<String>> {
    let dataset = find_dataset(file, path, name)?;
    let names = dataset
        .read_strings()
        .map_err(|e| IoError::item(path, name, format!("cannot read names as strings: {e}")))?;
    if names.len() != count {
        return Err(IoError::item(
            path,
            name,
            format!("{} names for {count} images", names.len()),
        ));
    }
    Ok(names)
}
