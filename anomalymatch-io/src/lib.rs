//! Survey input and output for AnomalyMatch: the formats astronomers keep their cutouts in,
//! read as core's [`anomalymatch_core::ImageSource`], and the files a run leaves behind, such as
//! contact sheets of the top-ranked images.
//!
//! Heavy or system-library dependencies sit behind cargo features, so that the library crates
//! build anywhere.

pub mod contact_sheet;
pub mod display;
pub mod error;
mod text;

pub use contact_sheet::{ContactSheet, SheetParams, Tile};
pub use display::to_rgb8;
pub use error::{IoError, Result};
