//! Survey input and output for AnomalyMatch: the formats astronomers keep their cutouts in,
//! read as core's [`anomalymatch_core::ImageSource`], and the files a run leaves behind, such as
//! contact sheets of the top-ranked images.
//!
//! Sources: [`ZipSource`] (images inside a zip archive), [`Hdf5Source`] (the original
//! AnomalyMatch's HDF5 layout of encoded images, and numeric cubes), [`FitsFolderSource`] and
//! [`FitsFileSource`] (FITS cutouts, one per file or one per HDU); [`open_source`] picks the
//! right one for a path. Every source reads only the chunk asked for, in a stable order, and
//! delivers an item it cannot read as unreadable, so that the loader counts and names it.
//!
//! With the `parquet` feature, [`scores_file`] writes and reads score files in Parquet.
//!
//! Everything here is pure Rust: no system library is needed to build or test.

pub mod contact_sheet;
pub mod cube;
pub mod display;
mod encoded;
pub mod error;
pub mod fits;
pub mod fits_source;
pub mod hdf5_source;
pub mod open;
#[cfg(feature = "parquet")]
pub mod scores_file;
mod text;
mod unique;
pub mod zip_source;

pub use contact_sheet::{ContactSheet, SheetParams, Tile};
pub use cube::{CubeLayout, CubeShape, CubeSource, CubeValues};
pub use display::to_rgb8;
pub use error::{IoError, Result};
pub use fits_source::{FitsFileSource, FitsFolderSource};
pub use hdf5_source::{Hdf5Options, Hdf5Source};
pub use open::{SourceFormat, SourceOptions, open_source};
#[cfg(feature = "parquet")]
pub use scores_file::{ScoreRows, ScoresFile, ScoresWriter};
pub use zip_source::ZipSource;
