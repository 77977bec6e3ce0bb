//! FITS cutouts as image sources: a folder with one cutout per file, or every image HDU of one
//! (multi-extension) file.

use crate::error::{IoError, Result};
use crate::fits::{FitsError, FitsImage, FitsReader, Hdu, is_fits_file_name};
use anomalymatch_core::source::{MAX_ITEM_BYTES, chunk_len, item_file_len};
use anomalymatch_core::{ImagePayload, ImageSource, SourceImage};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn array(image: FitsImage) -> ImagePayload {
    ImagePayload::Array {
        data: image.data,
        channels: image.channels,
        height: image.height,
        width: image.width,
    }
}

/// The FITS files of one folder (not its subfolders: `.fits`, `.fit`, `.fts`, each optionally
/// gzip-compressed as `.gz`), in name order, one cutout per file, as an [`ImageSource`].
///
/// The cutout is the file's first image HDU with data: the primary HDU, or the first `IMAGE`
/// extension behind an empty primary. A 2-D image is one band; a 3-D cube's planes are bands.
/// Values are physical (`BZERO + BSCALE * stored`, `BLANK` and NaN as NaN), for the loader's
/// stretch. Names are file names; a file that cannot be read (or is not a regular file of at
/// most [`MAX_ITEM_BYTES`]) is delivered as unreadable with a message naming the HDU at fault.
#[derive(Debug, Clone)]
pub struct FitsFolderSource {
    root: PathBuf,
    names: Vec<String>,
    position: usize,
}

impl FitsFolderSource {
    /// Lists the FITS files of `root`, sorted by name.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let entries = std::fs::read_dir(&root).map_err(|e| IoError::io(&root, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| IoError::io(&root, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                // Label files are UTF-8, so such a file could never carry a label.
                return Err(IoError::format(
                    &root,
                    format!("file name {:?} is not valid UTF-8", entry.file_name()),
                ));
            };
            // Anything but a folder is listed, so that a FIFO or device with a FITS name is
            // counted as unreadable rather than skipped without a word.
            if is_fits_file_name(&name) && !entry.path().is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(FitsFolderSource {
            root,
            names,
            position: 0,
        })
    }

    /// The folder read.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All names, in delivery order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the folder holds no FITS file.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The first image HDU with data of the file at `path`.
fn first_image(path: &Path) -> std::result::Result<FitsImage, String> {
    // A device, FIFO or sparse giant is refused before it is opened, as image files are.
    item_file_len(path).map_err(|e| e.to_string())?;
    let mut reader = FitsReader::open(path).map_err(|e| e.to_string())?;
    while let Some(hdu) = reader.next_hdu().map_err(|e| e.to_string())? {
        if hdu.is_image() {
            return reader.read_image(&hdu).map_err(|e| e.to_string());
        }
    }
    Err("no image HDU with data".to_string())
}

impl ImageSource for FitsFolderSource {
    fn len_hint(&self) -> Option<usize> {
        Some(self.names.len())
    }

    fn fingerprint(&self) -> Option<String> {
        Some(anomalymatch_core::folder::listing_fingerprint(
            &self.root,
            &self.names,
        ))
    }

    fn skip(&mut self, n: usize) -> anomalymatch_core::Result<usize> {
        // Items are addressed by index: jumping reads nothing.
        let skipped = n.min(self.names.len() - self.position);
        self.position += skipped;
        Ok(skipped)
    }

    fn next_chunk(&mut self, max: usize) -> anomalymatch_core::Result<Vec<SourceImage>> {
        let end = self.position.saturating_add(max).min(self.names.len());
        // A chunk's files stay within the bound a folder's chunk has.
        let end = self.position
            + chunk_len(
                self.names[self.position..end]
                    .iter()
                    .map(|name| std::fs::metadata(self.root.join(name)).map_or(0, |m| m.len())),
            );
        // Files are independent: reading them in parallel hides latency and spreads the
        // conversion (and gzip inflation) over the cores.
        let chunk = self.names[self.position..end]
            .par_iter()
            .map(|name| {
                let path = self.root.join(name);
                let payload = match first_image(&path) {
                    Ok(image) => array(image),
                    Err(message) => ImagePayload::Unreadable(message),
                };
                SourceImage {
                    name: name.clone(),
                    origin: path.display().to_string(),
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

/// One image HDU of a [`FitsFileSource`].
#[derive(Debug, Clone)]
struct Entry {
    hdu: Hdu,
    name: String,
}

/// Every image HDU with data of one FITS file (plain or gzip-compressed), in file order, as an
/// [`ImageSource`]: the cutouts of a multi-extension file, or the one cutout of a simple file.
///
/// Names: the file name when it holds a single image; otherwise each HDU's `EXTNAME` where it is
/// set and unique in the file, else `file.fits[index]` (CFITSIO's notation). Origins are
/// `path[index]`. Tables and other non-image HDUs are skipped and counted
/// ([`FitsFileSource::skipped`]). The headers are checked when the file is opened (a broken
/// header stops there, naming the HDU); an HDU whose data cannot be read or is not a 2-D image
/// or 3-D cube is delivered as unreadable. Data are read HDU by HDU as chunks are asked for.
pub struct FitsFileSource {
    path: PathBuf,
    reader: FitsReader,
    entries: Vec<Entry>,
    skipped: usize,
    notes: Vec<String>,
    position: usize,
}

impl std::fmt::Debug for FitsFileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitsFileSource")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .field("skipped", &self.skipped)
            .field("position", &self.position)
            .finish()
    }
}

impl FitsFileSource {
    /// Reads every header of `path` (skipping the data) and lists its image HDUs.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut reader = FitsReader::open(&path).map_err(|e| IoError::io(&path, e))?;
        let fail = |e: FitsError| IoError::format(&path, e.to_string());
        let mut hdus = Vec::new();
        let mut skipped = 0;
        while let Some(hdu) = reader.next_hdu().map_err(fail)? {
            if hdu.is_image() {
                hdus.push(hdu);
            } else if hdu.data_bytes > 0 {
                skipped += 1;
            }
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let entries = name_entries(hdus, &file_name);
        let notes = if skipped > 0 {
            vec![format!(
                "{skipped} HDU(s) with data skipped: tables or other data that are not images"
            )]
        } else {
            Vec::new()
        };
        Ok(FitsFileSource {
            path,
            reader,
            entries,
            skipped,
            notes,
            position: 0,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All names, in delivery order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// Number of image HDUs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file holds no image HDU with data.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// HDUs with data that are not images (tables, random groups), skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// Names image HDUs as [`FitsFileSource`] documents.
fn name_entries(hdus: Vec<Hdu>, file_name: &str) -> Vec<Entry> {
    if let [hdu] = hdus.as_slice() {
        return vec![Entry {
            hdu: hdu.clone(),
            name: file_name.to_string(),
        }];
    }
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for name in hdus.iter().filter_map(|h| h.extname.as_deref()) {
        *uses.entry(name).or_default() += 1;
    }
    let unique: Vec<bool> = hdus
        .iter()
        .map(|h| {
            h.extname
                .as_deref()
                .is_some_and(|n| uses.get(n) == Some(&1))
        })
        .collect();
    hdus.into_iter()
        .zip(unique)
        .map(|(hdu, unique)| {
            let name = match (&hdu.extname, unique) {
                (Some(extname), true) => extname.clone(),
                _ => format!("{file_name}[{}]", hdu.index),
            };
            Entry { hdu, name }
        })
        .collect()
}

impl ImageSource for FitsFileSource {
    fn len_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn skip(&mut self, n: usize) -> anomalymatch_core::Result<usize> {
        // Items are addressed by index: jumping reads nothing.
        let skipped = n.min(self.entries.len() - self.position);
        self.position += skipped;
        Ok(skipped)
    }

    fn next_chunk(&mut self, max: usize) -> anomalymatch_core::Result<Vec<SourceImage>> {
        let end = self.position.saturating_add(max).min(self.entries.len());
        // A chunk's data stay within the bound a folder's chunk has.
        let end = self.position
            + chunk_len(
                self.entries[self.position..end]
                    .iter()
                    .map(|e| e.hdu.data_bytes),
            );
        let mut chunk = Vec::with_capacity(end - self.position);
        // In file order, so that a gzip-compressed file is inflated once, front to back.
        for entry in &self.entries[self.position..end] {
            let payload = if entry.hdu.data_bytes > MAX_ITEM_BYTES {
                ImagePayload::Unreadable(format!(
                    "{} bytes of data, more than the {MAX_ITEM_BYTES}-byte limit on one image",
                    entry.hdu.data_bytes
                ))
            } else {
                match self.reader.read_image(&entry.hdu) {
                    Ok(image) => array(image),
                    Err(e) => ImagePayload::Unreadable(e.to_string()),
                }
            };
            chunk.push(SourceImage {
                name: entry.name.clone(),
                origin: format!("{}[{}]", self.path.display(), entry.hdu.index),
                payload,
            });
        }
        self.position = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> anomalymatch_core::Result<()> {
        self.position = 0;
        Ok(())
    }
}
