//! The image-source trait: a stream of named images read with bounded memory.

use crate::error::Result;
use crate::image::ImageBatch;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most bytes one encoded image may have (a file of a folder, a member of an archive); a larger
/// one (a sparse or endless file, a zip bomb, not a cutout) is refused before it is read, and
/// counted as unreadable.
pub const MAX_ITEM_BYTES: u64 = 256 << 20;

/// Most encoded bytes one chunk holds: a source stops filling a chunk before this, whatever
/// `data.chunk_size` asks (a chunk always holds at least one item), so that a chunk's memory is
/// bounded as a whole and not only item by item.
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;

/// How many of `sizes` (bytes of the next items, in order) the next chunk takes: as many as
/// fit in [`MAX_CHUNK_BYTES`] together, and at least one.
pub fn chunk_len(sizes: impl IntoIterator<Item = u64>) -> usize {
    let mut held = 0u64;
    let mut n = 0;
    for size in sizes {
        held = held.saturating_add(size);
        if n > 0 && held > MAX_CHUNK_BYTES {
            break;
        }
        n += 1;
    }
    n
}

/// The size of the file at `path` (links followed), when it is a regular file of at most
/// [`MAX_ITEM_BYTES`]: a device (`/dev/zero`), a FIFO or a socket is refused before it is
/// opened, since reading it could block or never end.
pub fn item_file_len(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a device, FIFO or socket is never read)",
        ));
    }
    if meta.len() > MAX_ITEM_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_ITEM_BYTES}-byte limit on one image",
            meta.len()
        )));
    }
    Ok(meta.len())
}

/// The bytes of the image file at `path`, refused as [`item_file_len`] says, and never more
/// than [`MAX_ITEM_BYTES`] even if the file grows while it is read.
pub fn read_item_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let len = item_file_len(path)?;
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)?
        .take(MAX_ITEM_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ITEM_BYTES {
        return Err(std::io::Error::other(format!(
            "grew past the {MAX_ITEM_BYTES}-byte limit on one image while read"
        )));
    }
    Ok(bytes)
}

/// The content of one image as a source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub enum ImagePayload {
    /// An encoded file (JPEG, PNG, TIFF, ...), decoded later in parallel.
    Encoded(Vec<u8>),
    /// Pixels already decoded, as a batch of one image in `[0, 1]` (for arrays that hold display
    /// values, such as 8- and 16-bit HDF5 cubes divided by their type's maximum).
    Pixels(ImageBatch),
    /// Physical values of one image (FITS data, float HDF5 cubes), band after band (CHW), NaN
    /// where blank; the loader maps them to `[0, 1]` with its [`crate::Stretch`].
    Array {
        /// `channels * height * width` values.
        data: Vec<f32>,
        /// Bands.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// The item could not be read (the message says why); loaders count it as a failed image
    /// instead of aborting, so one bad file does not stop a long job.
    Unreadable(String),
}

/// One image from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceImage {
    /// Name as used in label files (e.g. the file name relative to the folder).
    pub name: String,
    /// Where it came from, for error messages (a path, or `archive.zip:member`).
    pub origin: String,
    /// The image itself.
    pub payload: ImagePayload,
}

/// A collection of images read in chunks, so that memory stays flat however large it is.
///
/// Folders are provided by the crate; zip archives, HDF5 and FITS files plug in here.
pub trait ImageSource: Send {
    /// Total number of images, when known without reading them (for progress and ETA).
    fn len_hint(&self) -> Option<usize>;

    /// Up to `max` more images, in a stable order; an empty vector means the end.
    ///
    /// An unreadable item is returned as an error only when it makes the whole source
    /// unusable; a single unreadable file is reported by the decoder, which counts it.
    fn next_chunk(&mut self, max: usize) -> Result<Vec<SourceImage>>;

    /// Starts again from the first image.
    fn rewind(&mut self) -> Result<()>;

    /// What the user should know about how the source was read, one sentence each: items
    /// skipped because they are not images, names made unique. Jobs print them as warnings.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// A fingerprint of what the source holds now, when one can be had without reading the
    /// images: a folder's listing (names, sizes, modification times). A resumed or merged job
    /// compares it with the one its parts were made from. `None` where the source is one file,
    /// whose size and time the caller stamps itself.
    fn fingerprint(&self) -> Option<String> {
        None
    }

    /// Moves past the next `n` images, returning how many there were (fewer at the end).
    ///
    /// The default reads them; sources that can jump (a folder, an array file) override it, so
    /// that resuming a long job far into a collection costs nothing.
    fn skip(&mut self, n: usize) -> Result<usize> {
        let mut skipped = 0;
        while skipped < n {
            let chunk = self.next_chunk((n - skipped).min(256))?;
            if chunk.is_empty() {
                break;
            }
            skipped += chunk.len();
        }
        Ok(skipped)
    }

    /// The named images, when the source can find them without reading everything (a folder
    /// can); `None` when it cannot, and the caller scans instead. A name that is absent is
    /// simply not returned. The reading position is unspecified afterwards.
    fn read_named(&mut self, names: &[String]) -> Option<Result<Vec<SourceImage>>> {
        let _ = names;
        None
    }

    /// Where a person can look at the image, if it is a file of its own.
    fn path_of(&self, name: &str) -> Option<PathBuf> {
        let _ = name;
        None
    }
}
