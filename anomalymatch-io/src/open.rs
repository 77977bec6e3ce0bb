//! One entry point that opens a path as the right [`ImageSource`]: a folder of images or of FITS
//! files, a zip archive, an HDF5 file or a FITS file.

use crate::error::{IoError, Result};
use crate::fits::is_fits_file_name;
use crate::fits_source::{FitsFileSource, FitsFolderSource};
use crate::hdf5_source::{Hdf5Options, Hdf5Source};
use crate::zip_source::ZipSource;
use anomalymatch_core::Check;
use anomalymatch_core::config::key;
use anomalymatch_core::folder::is_image_file_name;
use anomalymatch_core::{FolderSource, ImageSource};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What kind of source a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Decided from the path: a folder by the files in it (images or FITS, not both), a file by
    /// its extension (`.zip`; `.h5`, `.hdf5`; `.fits`, `.fit`, `.fts`, optionally `.gz`).
    #[default]
    Auto,
    /// A folder of JPEG, PNG and TIFF files ([`FolderSource`]).
    ImageFolder,
    /// A folder of FITS files, one cutout each ([`FitsFolderSource`]).
    FitsFolder,
    /// A zip archive of images ([`ZipSource`]).
    Zip,
    /// An HDF5 file ([`Hdf5Source`]).
    Hdf5,
    /// One FITS file, every image HDU a cutout ([`FitsFileSource`]).
    Fits,
}

/// How [`open_source`] reads a path; a section of the pipeline configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceOptions {
    /// The kind of source, or `auto` to decide from the path.
    pub format: SourceFormat,
    /// Dataset names and cube layout of HDF5 files.
    pub hdf5: Hdf5Options,
}

impl Check for SourceOptions {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        self.hdf5.check_into(&key(prefix, "hdf5"), errors);
    }
}

/// Opens `path` as the source `options` describe (by default, as its kind suggests); a source
/// that holds no image is an error, whatever its kind.
pub fn open_source(
    path: impl AsRef<Path>,
    options: &SourceOptions,
) -> Result<Box<dyn ImageSource>> {
    let options = options.clone().check_at("source")?;
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| IoError::io(path, e))?;
    let format = match options.format {
        SourceFormat::Auto if meta.is_dir() => folder_format(path)?,
        SourceFormat::Auto => file_format(path)?,
        given => given,
    };
    let wants_folder = matches!(format, SourceFormat::ImageFolder | SourceFormat::FitsFolder);
    if wants_folder != meta.is_dir() {
        return Err(IoError::format(
            path,
            format!(
                "format {format:?} needs a {}",
                if wants_folder { "folder" } else { "file" }
            ),
        ));
    }
    let source: Box<dyn ImageSource> = match format {
        SourceFormat::ImageFolder => Box::new(FolderSource::open(path)?),
        SourceFormat::FitsFolder => Box::new(FitsFolderSource::open(path)?),
        SourceFormat::Zip => Box::new(ZipSource::open(path)?),
        SourceFormat::Hdf5 => Box::new(Hdf5Source::open(path, &options.hdf5)?),
        SourceFormat::Fits => Box::new(FitsFileSource::open(path)?),
        SourceFormat::Auto => {
            return Err(IoError::format(path, "no source format could be chosen"));
        }
    };
    // Every kind alike: a job over nothing is a mistake worth stopping for.
    if source.len_hint() == Some(0) {
        let notes = source.notes();
        return Err(IoError::format(
            path,
            format!(
                "holds no image to read (as {format:?}){}",
                notes.iter().map(|n| format!("; {n}")).collect::<String>()
            ),
        ));
    }
    Ok(source)
}

/// A folder's format from the files in it.
fn folder_format(path: &Path) -> Result<SourceFormat> {
    let (mut images, mut fits) = (0usize, 0usize);
    for entry in std::fs::read_dir(path).map_err(|e| IoError::io(path, e))? {
        let entry = entry.map_err(|e| IoError::io(path, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        images += usize::from(is_image_file_name(&name));
        fits += usize::from(is_fits_file_name(&name));
    }
    match (images, fits) {
        (0, 0) => Err(IoError::format(
            path,
            "the folder holds no image (jpg, jpeg, png, tif, tiff) or FITS (fits, fit, fts) file",
        )),
        (_, 0) => Ok(SourceFormat::ImageFolder),
        (0, _) => Ok(SourceFormat::FitsFolder),
        (images, fits) => Err(IoError::format(
            path,
            format!(
                "the folder holds {images} image and {fits} FITS files; set the format to \
                 image_folder or fits_folder"
            ),
        )),
    }
}

/// A file's format from its extension.
fn file_format(path: &Path) -> Result<SourceFormat> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".zip") {
        Ok(SourceFormat::Zip)
    } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
        Ok(SourceFormat::Hdf5)
    } else if is_fits_file_name(&name) {
        Ok(SourceFormat::Fits)
    } else {
        Err(IoError::format(
            path,
            "unknown kind of file: expected .zip, .h5, .hdf5, .fits, .fit or .fts (or a folder); \
             set the format to read it anyway",
        ))
    }
}
