//! The image-source trait: a stream of named images read with bounded memory.

use crate::error::Result;
use crate::image::ImageBatch;
use std::path::PathBuf;

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
