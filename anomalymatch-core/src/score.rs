//! Anomaly scores: the softmax probability of `anomaly` from a (normally the EMA) model, and
//! rankings of named images by score.

use crate::classifier::Classifier;
use crate::config::{Check, check_range, key};
use crate::error::{Error, Result};
use crate::image::ImageBatch;
use crate::loader::{ImageLoader, LoadReport};
use crate::query::Embeddings;
use crate::source::ImageSource;
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
    fn apply(self, x: &Tensor, k: usize) -> Result<Tensor> {
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

/// Softmax probability of class 1 (`anomaly`) for every image, in eval mode, averaged over
/// `views` of it, `batch_size` images per forward pass so memory stays bounded.
pub fn anomaly_scores<C: Classifier + ?Sized>(
    model: &C,
    images: &ImageBatch,
    batch_size: usize,
    views: Views,
) -> Result<Vec<f32>> {
    let mut scores = Vec::with_capacity(images.len());
    for chunk in chunks(images.len(), batch_size)? {
        let idx: Vec<usize> = chunk.collect();
        let x = images.select(&idx)?.to_tensor(model.device())?;
        let mut sum = vec![0.0f32; idx.len()];
        for k in 0..views.count() {
            let logits = model.forward_t(&views.apply(&x, k)?, false)?;
            if logits.dim(1)? < 2 {
                return Err(Error::Shape(format!(
                    "scoring needs at least 2 classes, model gives {}",
                    logits.dim(1)?
                )));
            }
            let p = candle_nn::ops::softmax_last_dim(&logits)?
                .narrow(1, 1, 1)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            sum.iter_mut().zip(p).for_each(|(s, p)| *s += p);
        }
        let n = views.count() as f32;
        scores.extend(sum.into_iter().map(|s| s / n));
    }
    Ok(scores)
}

/// Scores every image of `source` as it streams past: chunks are decoded by `loader` and
/// scored `batch_size` at a time, and `sink` receives each chunk's names and scores in source
/// order, so memory stays flat however large the collection is (write the pairs to a file, or
/// collect them for a [`Ranking`]).
///
/// Unreadable images are skipped and listed in the returned report (an error instead in the
/// loader's strict mode).
pub fn score_source<C: Classifier + ?Sized>(
    model: &C,
    loader: &ImageLoader,
    source: &mut dyn ImageSource,
    batch_size: usize,
    views: Views,
    show_progress: bool,
    mut sink: impl FnMut(&[String], &[f32]) -> Result<()>,
) -> Result<LoadReport> {
    loader.for_each_chunk(source, show_progress, |chunk| {
        let scores = anomaly_scores(model, &chunk.images, batch_size, views)?;
        sink(&chunk.names, &scores)
    })
}

/// Pooled backbone features for every image, or `None` when the model has no embedding.
pub fn embed_all<C: Classifier + ?Sized>(
    model: &C,
    images: &ImageBatch,
    batch_size: usize,
) -> Result<Option<Embeddings>> {
    let mut data = Vec::new();
    let mut dim = 0;
    for chunk in chunks(images.len(), batch_size)? {
        let idx: Vec<usize> = chunk.collect();
        let x = images.select(&idx)?.to_tensor(model.device())?;
        let Some(e) = model.embed(&x)? else {
            return Ok(None);
        };
        dim = e.dim(1)?;
        data.extend(e.flatten_all()?.to_vec1::<f32>()?);
    }
    if dim == 0 {
        return Ok(None);
    }
    Embeddings::new(data, dim).map(Some)
}

fn chunks(n: usize, batch_size: usize) -> Result<impl Iterator<Item = std::ops::Range<usize>>> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    Ok((0..n)
        .step_by(batch_size)
        .map(move |s| s..(s + batch_size).min(n)))
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
    fn scoring_a_source_matches_scoring_in_memory_and_counts_failures() {
        use crate::source::{ImagePayload, SourceImage};
        let (images, _) = crate::toy::toy_images(23, 8, 4, 5);
        let expected: Vec<String> = (0..23).map(|i| format!("img{i}")).collect();
        let mut source = crate::toy::MemorySource::new(&expected, &images).unwrap();
        source.insert(
            11,
            SourceImage {
                name: "broken".into(),
                origin: "toy:broken".into(),
                payload: ImagePayload::Unreadable("truncated".into()),
            },
        );
        let model = crate::toy::MaxMeanClassifier::new().unwrap();
        let loader = crate::loader::DataConfig {
            size: 8,
            channels: crate::decode::ChannelMode::Keep(1),
            chunk_size: 5,
            ..Default::default()
        }
        .check()
        .unwrap()
        .build(())
        .unwrap();
        let (mut names, mut scores) = (Vec::new(), Vec::new());
        let report = score_source(
            &model,
            &loader,
            &mut source,
            3,
            Views::Single,
            false,
            |n, s| {
                names.extend_from_slice(n);
                scores.extend_from_slice(s);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(report.loaded, 23);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].name, "broken");
        assert_eq!(names, expected);
        let direct = anomaly_scores(&model, &images, 7, Views::Single).unwrap();
        for (a, b) in scores.iter().zip(&direct) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
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
        // A model that ignores orientation scores the same under every view.
        let (images, _) = crate::toy::toy_images(6, 8, 4, 5);
        let model = crate::toy::MaxMeanClassifier::new().unwrap();
        let one = anomaly_scores(&model, &images, 4, Views::Single).unwrap();
        let eight = anomaly_scores(&model, &images, 4, Views::Dihedral).unwrap();
        for (a, b) in one.iter().zip(&eight) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
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
