//! Survey input and output for AnomalyMatch: the formats astronomers keep their cutouts in,
//! read as core's [`anomalymatch_core::ImageSource`], and the files a run leaves behind.
//!
//! Heavy or system-library dependencies sit behind cargo features, so that the library crates
//! build anywhere.

pub mod error;

pub use error::{IoError, Result};
