//! The `[score]` section, the views whose scores are averaged, and rankings of named images
//! by score; the scoring itself is [`crate::scorer`]'s.

use crate::config::{Check, check_range, key};
use crate::error::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `[score]` section: how unlabelled images are scored and how many top candidates a run
/// lists and shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreConfig {
    /// Images per forward pass.
    pub batch_size: usize,
    /// Top candidates written to the top-candidates file and the contact sheet.
    pub top: usize,
    /// Images per part of a scoring run: each finished part is saved, so a stopped run resumes
    /// from the first unfinished one; shards are made of whole parts.
    pub part_size: usize,
    /// Also write each image's embedding (the backbone's pooled features) beside its score.
    pub embeddings: bool,
    /// Views of each image whose scores are averaged (test-time augmentation).
    pub views: Views,
}

/// Views of each image whose anomaly probabilities are averaged. Sky images have no up: a
/// galaxy turned or mirrored is the same galaxy, and averaging over those views takes the
/// orientation's noise out of its score, at one forward pass per view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Views {
    /// The image as it is.
    #[default]
    Single,
    /// The image, its two mirrors and its half turn.
    Flips,
    /// The eight symmetries of the square: four quarter turns, each also mirrored.
    Dihedral,
}

impl Views {
    /// Forward passes per image.
    pub fn count(self) -> usize {
        match self {
            Views::Single => 1,
            Views::Flips => 4,
            Views::Dihedral => 8,
        }
    }

    /// View `k` of images `[N, C, H, W]` (square). Flips: identity, left-right, up-down, both;
    /// dihedral: `k % 4` quarter turns, mirrored left-right when `k >= 4`.
    pub(crate) fn apply(self, x: &Tensor, k: usize) -> Result<Tensor> {
        // Reversing the columns (dim 3) mirrors left-right; reversing the rows (dim 2), up-down.
        let (columns, rows) = (3, 2);
        match self {
            Views::Single => Ok(x.clone()),
            Views::Flips => {
                let mut v = x.clone();
                if k & 1 == 1 {
                    v = flip(&v, columns)?;
                }
                if k & 2 == 2 {
                    v = flip(&v, rows)?;
                }
                Ok(v)
            }
            Views::Dihedral => {
                let mut v = x.clone();
                for _ in 0..k % 4 {
                    // A quarter turn: transpose, then mirror left-right.
                    v = flip(&v.transpose(rows, columns)?.contiguous()?, columns)?;
                }
                if k >= 4 {
                    v = flip(&v, columns)?;
                }
                Ok(v)
            }
        }
    }
}

/// `x` reversed along `dim`.
fn flip(x: &Tensor, dim: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let reversed: Vec<u32> = (0..n as u32).rev().collect();
    let index = Tensor::from_vec(reversed, n, x.device())?;
    Ok(x.index_select(&index, dim)?)
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            batch_size: 256,
            top: 100,
            part_size: 10_000,
            embeddings: false,
            views: Views::Single,
        }
    }
}

impl ScoreConfig {
    /// The scorer's options for scores alone (its batch and views), with a progress bar or
    /// not; a job that keeps embeddings asks for them on top.
    pub fn options(&self, progress: bool) -> crate::scorer::ScoreOptions {
        crate::scorer::ScoreOptions {
            batch_size: self.batch_size,
            views: self.views,
            embeddings: false,
            progress,
        }
    }
}

impl Check for ScoreConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        check_range(
            errors,
            key(prefix, "batch_size"),
            self.batch_size,
            1,
            65_536,
        );
        check_range(errors, key(prefix, "top"), self.top, 1, 1_000_000);
        check_range(
            errors,
            key(prefix, "part_size"),
            self.part_size,
            1,
            10_000_000,
        );
    }
}

/// One ranked image.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// Image name.
    pub name: String,
    /// Anomaly score.
    pub score: f32,
}

/// Images ordered from most to least anomalous; equal scores keep their input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking {
    entries: Vec<Ranked>,
}

impl Ranking {
    /// Ranks `names` by `scores` (same length); NaN scores are an error.
    pub fn new(names: &[String], scores: &[f32]) -> Result<Ranking> {
        if names.len() != scores.len() {
            return Err(Error::Shape(format!(
                "{} names but {} scores",
                names.len(),
                scores.len()
            )));
        }
        if let Some(i) = scores.iter().position(|s| s.is_nan()) {
            return Err(Error::InvalidArgument(format!(
                "score of {} is NaN",
                names[i]
            )));
        }
        let mut entries: Vec<Ranked> = names
            .iter()
            .zip(scores)
            .map(|(n, &s)| Ranked {
                name: n.clone(),
                score: s,
            })
            .collect();
        entries.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(Ranking { entries })
    }

    /// All entries, best first.
    pub fn entries(&self) -> &[Ranked] {
        &self.entries
    }

    /// The `k` highest-scored entries (fewer if the ranking is shorter).
    pub fn top(&self, k: usize) -> &[Ranked] {
        &self.entries[..k.min(self.entries.len())]
    }

    /// Writes `rank,filename,score` rows (rank from 1), atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        crate::atomic::write_atomic(path, |w| self.write_csv_to(w))
    }

    /// Writes `rank,filename,score` rows (rank from 1) to `w`.
    pub fn write_csv_to<W: std::io::Write>(&self, w: W) -> std::io::Result<()> {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["rank", "filename", "score"])?;
        for (i, e) in self.entries.iter().enumerate() {
            csv.write_record([
                (i + 1).to_string(),
                e.name.clone(),
                format!("{:.6}", e.score),
            ])?;
        }
        csv.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_orders_by_score_and_keeps_ties_stable() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let r = Ranking::new(&names, &[0.1, 0.9, 0.5, 0.9]).unwrap();
        let order: Vec<&str> = r.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(order, ["b", "d", "c", "a"]);
        assert_eq!(r.top(2).len(), 2);
        assert_eq!(r.top(10).len(), 4);
        assert!(Ranking::new(&names, &[0.1, f32::NAN, 0.0, 0.0]).is_err());
        assert!(Ranking::new(&names, &[0.1]).is_err());
    }

    #[test]
    fn views_are_the_symmetries_of_the_square_and_their_scores_are_averaged() {
        // A 3x3 image with nine different pixels: every symmetry moves them differently.
        let x = Tensor::arange(0f32, 9.0, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 3))
            .unwrap();
        let seen = |views: Views| -> std::collections::BTreeSet<Vec<u32>> {
            (0..views.count())
                .map(|k| {
                    let v = views.apply(&x, k).unwrap().flatten_all().unwrap();
                    v.to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|&p| p as u32)
                        .collect()
                })
                .collect()
        };
        assert_eq!(seen(Views::Dihedral).len(), 8);
        let flips = seen(Views::Flips);
        assert_eq!(flips.len(), 4);
        assert!(
            flips.contains(&vec![8, 7, 6, 5, 4, 3, 2, 1, 0]),
            "the half turn"
        );
        assert!(flips.is_subset(&seen(Views::Dihedral)));
    }

    #[test]
    fn ranking_csv_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ranking.csv");
        let names = vec!["x,1.png".to_string(), "y.png".to_string()];
        Ranking::new(&names, &[0.25, 0.75])
            .unwrap()
            .write_csv(&p)
            .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "rank,filename,score\n1,y.png,0.750000\n2,\"x,1.png\",0.250000\n"
        );
    }
}
