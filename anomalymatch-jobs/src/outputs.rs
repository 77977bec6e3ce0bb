//! What jobs write: rankings as CSV and contact sheets of the top candidates, staged in an
//! [`AtomicGroup`] so that a failed run replaces none of the previous outputs.

use crate::error::Result;
use crate::report::Report;
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::score::Ranked;
use anomalymatch_core::{Check, ImageLoader, ImageSource, Ranking};
use anomalymatch_io::{SheetParams, Tile};
use std::path::{Path, PathBuf};

/// Stages `top_candidates.csv` and its contact sheet `top_candidates.png` in `out`; returns
/// their paths.
pub fn top_candidates(
    group: &mut AtomicGroup,
    out: &Path,
    top: &Ranking,
    loader: &ImageLoader,
    source: &mut dyn ImageSource,
    report: &dyn Report,
) -> Result<Vec<PathBuf>> {
    let (csv, sheet) = (
        out.join("top_candidates.csv"),
        out.join("top_candidates.png"),
    );
    ranking_csv(group, &csv, top)?;
    contact_sheet(group, &sheet, top.entries(), loader, source, report)?;
    Ok(vec![csv, sheet])
}

/// Warns of the first five unreadable images, and of how many more there are.
pub fn warn_unreadable(unreadable: &[anomalymatch_core::FailedImage], report: &dyn Report) {
    for f in unreadable.iter().take(5) {
        report.warn(&format!("unreadable {}: {}", f.origin, f.message));
    }
    if unreadable.len() > 5 {
        report.warn(&format!(
            "{} more unreadable image(s), listed in the score file's metadata",
            unreadable.len() - 5
        ));
    }
}

/// Stages the ranking as `rank,filename,score` CSV.
pub fn ranking_csv(group: &mut AtomicGroup, path: &Path, ranking: &Ranking) -> Result<()> {
    Ok(group.write(path, |w| ranking.write_csv_to(w))?)
}

/// Stages a contact sheet of `top` (best first), decoding their whole frames from `source` as
/// `loader` does; candidates whose image cannot be read again are left off and counted.
pub fn contact_sheet(
    group: &mut AtomicGroup,
    path: &Path,
    top: &[Ranked],
    loader: &ImageLoader,
    source: &mut dyn ImageSource,
    report: &dyn Report,
) -> Result<()> {
    let names: Vec<String> = top.iter().map(|r| r.name.clone()).collect();
    let (loaded, missing) =
        anomalymatch_core::pool::load_named(&loader.whole_frame(), source, &names, false)?;
    let gone = missing.len() + loaded.report.failed.len();
    if gone > 0 {
        report.warn(&format!(
            "{gone} top candidate(s) could not be read again for the contact sheet"
        ));
    }
    let shown = loaded.images.to_batch();
    let mut tiles = Vec::with_capacity(top.len());
    for (rank, r) in top.iter().enumerate() {
        if let Some(i) = loaded.names.iter().position(|n| *n == r.name) {
            tiles.push(Tile::from_batch(&shown, i, rank + 1, r.score, &r.name)?);
        }
    }
    let sheet = SheetParams::default().check()?.build(())?.render(&tiles)?;
    Ok(group.write(path, |w| {
        sheet
            .write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })?)
}
