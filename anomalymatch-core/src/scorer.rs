//! The one scorer: a model's anomaly scores (and embeddings, where asked for) for images in
//! memory, or for a source streamed chunk by chunk with the next chunk read and decoded on a
//! thread of its own while the model scores the current one. Every job scores through it, so
//! a speed-up here reaches them all.

use crate::classifier::Classifier;
use crate::error::{Error, Result};
use crate::image_store::ImageStore;
use crate::loader::{FailedImage, ImageLoader, Loaded, PIPELINE_DEPTH};
use crate::pipeline::pipelined;
use crate::progress::Progress;
use crate::query::Embeddings;
use crate::score::Views;
use crate::source::{ImageSource, SourceImage};
use std::ops::Range;

/// How a [`Scorer`] works: images per forward pass, the views averaged, whether embeddings
/// are kept, and whether streaming shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreOptions {
    /// Images per forward pass.
    pub batch_size: usize,
    /// Views of each image whose scores are averaged.
    pub views: Views,
    /// Keep each image's embedding (the backbone's pooled features) beside its score.
    pub embeddings: bool,
    /// Show a progress bar (count, rate, ETA) while streaming.
    pub progress: bool,
}

/// The scores of one decoded chunk of a stream, in source order.
#[derive(Debug)]
pub struct ScoredChunk {
    /// Names of the chunk's readable images.
    pub names: Vec<String>,
    /// Their origins (file, archive member, dataset row).
    pub origins: Vec<String>,
    /// Their anomaly scores.
    pub scores: Vec<f32>,
    /// Their embeddings, when [`ScoreOptions::embeddings`] asks for them.
    pub embeddings: Option<Embeddings>,
    /// The chunk's unreadable images.
    pub failed: Vec<FailedImage>,
    /// Source items the chunk took, readable or not.
    pub items: usize,
    /// Which of the streamed ranges the chunk belongs to.
    pub range: usize,
    /// Whether the chunk ends its range.
    pub ends_range: bool,
}

/// A model that scores: the softmax probability of `anomaly`, in eval mode, averaged over the
/// views.
pub struct Scorer<'a, C: Classifier + ?Sized> {
    model: &'a C,
    options: ScoreOptions,
}

impl<'a, C: Classifier + ?Sized> Scorer<'a, C> {
    /// A scorer of `model` (normally the EMA model) working as `options` say.
    pub fn new(model: &'a C, options: ScoreOptions) -> Self {
        Scorer { model, options }
    }

    /// The anomaly score of every image, `batch_size` images per forward pass so memory stays
    /// bounded.
    pub fn scores(&self, images: &ImageStore) -> Result<Vec<f32>> {
        Ok(self.score_batches(images, false)?.0)
    }

    /// Every image's embedding (the backbone's pooled features), or `None` when the model has
    /// no embedding.
    pub fn embeddings(&self, images: &ImageStore) -> Result<Option<Embeddings>> {
        let mut data = Vec::new();
        let mut dim = 0;
        for batch in self.batches(images.len())? {
            let idx: Vec<usize> = batch.collect();
            let x = images.select(&idx)?.to_tensor(self.model.device())?;
            let Some(e) = self.model.embed(&x)? else {
                return Ok(None);
            };
            dim = e.dim(1)?;
            data.extend(e.flatten_all()?.to_vec1::<f32>()?);
        }
        embeddings(data, dim)
    }

    /// The scores, and with `embed` the embeddings taken from the first view's pass (one pass
    /// through the backbone gives both).
    fn score_batches(
        &self,
        images: &ImageStore,
        embed: bool,
    ) -> Result<(Vec<f32>, Option<Embeddings>)> {
        let views = self.options.views;
        let mut scores = Vec::with_capacity(images.len());
        let (mut features, mut dim) = (Vec::new(), 0);
        for batch in self.batches(images.len())? {
            let idx: Vec<usize> = batch.collect();
            let x = images.select(&idx)?.to_tensor(self.model.device())?;
            let mut sum = vec![0.0f32; idx.len()];
            for k in 0..views.count() {
                let view = views.apply(&x, k)?;
                let logits = if embed && k == 0 {
                    let (logits, e) = self.model.classify_and_embed(&view)?;
                    let e = e.ok_or_else(|| {
                        Error::InvalidArgument(
                            "embeddings were asked for but the model has none".into(),
                        )
                    })?;
                    dim = e.dim(1)?;
                    features.extend(e.flatten_all()?.to_vec1::<f32>()?);
                    logits
                } else {
                    self.model.forward_t(&view, false)?
                };
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
        let embeddings = if embed {
            embeddings(features, dim)?
        } else {
            None
        };
        Ok((scores, embeddings))
    }

    /// Streams `ranges` of `source`'s items (the whole source with `None`), decoded by
    /// `loader`, and hands each scored chunk to `sink` in source order; chunks never straddle
    /// a range's end. Returns how many items were read. A score that is not finite is an
    /// error naming the image: the model is broken.
    pub fn stream(
        &self,
        loader: &ImageLoader,
        source: &mut dyn ImageSource,
        ranges: Option<&[Range<usize>]>,
        mut sink: impl FnMut(ScoredChunk) -> Result<()>,
    ) -> Result<usize> {
        let whole = 0..source.len_hint().unwrap_or(usize::MAX);
        let ranges = ranges.unwrap_or(std::slice::from_ref(&whole));
        let total = ranges.iter().map(|r| r.len()).sum::<usize>();
        let known = ranges.iter().all(|r| r.end != usize::MAX);
        let progress = Progress::new(known.then_some(total), "scoring", self.options.progress);
        source.rewind()?;
        let chunk_size = loader.chunk_size();
        let (mut at, mut next) = (0usize, 0usize);
        let mut current: Option<Range<usize>> = None;
        let mut produce = || -> Result<Option<Decoded>> {
            let range = match current.clone() {
                Some(r) => r,
                None => {
                    let Some(r) = ranges.get(next).cloned() else {
                        return Ok(None);
                    };
                    next += 1;
                    at += source.skip(r.start - at)?;
                    current = Some(r.clone());
                    r
                }
            };
            let chunk = source.next_chunk((range.end - at).min(chunk_size))?;
            if chunk.is_empty() && range.end == usize::MAX {
                // The whole of a source of unknown length: it ended.
                return Ok(None);
            }
            if chunk.is_empty() || at < range.start {
                return Err(Error::InvalidArgument(format!(
                    "the source ended at item {at}, before the {} it announced",
                    range.end
                )));
            }
            at += chunk.len();
            let loaded = loader.decode_chunk(&chunk)?;
            let ends_range = at >= range.end;
            if ends_range {
                current = None;
            }
            Ok(Some(Decoded {
                range: next - 1,
                ends_range,
                items: chunk.len(),
                origins: loaded_origins(&chunk, &loaded.report.failed),
                loaded,
            }))
        };
        let mut read = 0;
        pipelined(PIPELINE_DEPTH, &mut produce, |d: Decoded| {
            let Decoded {
                loaded, origins, ..
            } = d;
            let embed = self.options.embeddings && !loaded.images.is_empty();
            let (scores, embeddings) = self.score_batches(&loaded.images, embed)?;
            if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "the model scores {} as {}: it is broken",
                    origins[i], scores[i]
                )));
            }
            progress.inc(d.items);
            read += d.items;
            sink(ScoredChunk {
                names: loaded.names,
                origins,
                scores,
                embeddings,
                failed: loaded.report.failed,
                items: d.items,
                range: d.range,
                ends_range: d.ends_range,
            })
        })?;
        progress.finish();
        Ok(read)
    }

    /// The index ranges of `n` images in batches of `batch_size`.
    fn batches(&self, n: usize) -> Result<impl Iterator<Item = Range<usize>>> {
        let size = self.options.batch_size;
        if size == 0 {
            return Err(Error::InvalidArgument(
                "the scoring batch size must be at least 1".into(),
            ));
        }
        Ok((0..n).step_by(size).map(move |s| s..(s + size).min(n)))
    }
}

/// One decoded chunk on its way from the reading thread to the model.
struct Decoded {
    range: usize,
    ends_range: bool,
    items: usize,
    origins: Vec<String>,
    loaded: Loaded,
}

/// The origins of the images `decode_chunk` kept: those of `chunk` less the failed ones, which
/// it lists in order.
fn loaded_origins(chunk: &[SourceImage], failed: &[FailedImage]) -> Vec<String> {
    let mut failed = failed.iter().peekable();
    chunk
        .iter()
        .filter(|item| {
            let bad = failed
                .peek()
                .is_some_and(|f| f.name == item.name && f.origin == item.origin);
            if bad {
                failed.next();
            }
            !bad
        })
        .map(|item| item.origin.clone())
        .collect()
}

/// Embeddings of `dim` values each from `data`, or `None` when there are none.
fn embeddings(data: Vec<f32>, dim: usize) -> Result<Option<Embeddings>> {
    if dim == 0 {
        return Ok(None);
    }
    Embeddings::new(data, dim).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Check;
    use crate::source::ImagePayload;

    fn options(batch_size: usize, views: Views, embeddings: bool) -> ScoreOptions {
        ScoreOptions {
            batch_size,
            views,
            embeddings,
            progress: false,
        }
    }

    fn loader() -> ImageLoader {
        crate::loader::DataConfig {
            size: 8,
            channels: crate::decode::ChannelMode::Keep(1),
            chunk_size: 5,
            ..Default::default()
        }
        .check()
        .unwrap()
        .build(())
        .unwrap()
    }

    #[test]
    fn streaming_matches_scoring_in_memory_and_counts_failures() {
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
        let scorer = Scorer::new(&model, options(3, Views::Single, false));
        let (mut names, mut scores, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        let read = scorer
            .stream(&loader(), &mut source, None, |c| {
                assert!(c.embeddings.is_none());
                names.extend(c.names);
                scores.extend(c.scores);
                failed.extend(c.failed);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, 24);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].name, "broken");
        assert_eq!(names, expected);
        let direct = Scorer::new(&model, options(7, Views::Single, false))
            .scores(&images)
            .unwrap();
        for (a, b) in scores.iter().zip(&direct) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn ranges_stream_only_their_items_and_chunks_end_with_them() {
        let (images, _) = crate::toy::toy_images(23, 8, 4, 5);
        let all: Vec<String> = (0..23).map(|i| format!("img{i}")).collect();
        let mut source = crate::toy::MemorySource::new(&all, &images).unwrap();
        let model = crate::toy::MaxMeanClassifier::new().unwrap();
        let scorer = Scorer::new(&model, options(4, Views::Single, true));
        let mut seen = Vec::new();
        let mut ends = Vec::new();
        let read = scorer
            .stream(&loader(), &mut source, Some(&[2..9, 15..23]), |c| {
                let e = c.embeddings.as_ref().unwrap();
                assert_eq!(e.len(), c.names.len());
                seen.extend(c.names);
                if c.ends_range {
                    ends.push((c.range, seen.len()));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(read, 15);
        assert_eq!(seen, [&all[2..9], &all[15..23]].concat());
        assert_eq!(ends, [(0, 7), (1, 15)]);
        // A range past the source's end is an error, not a silent stop.
        let e = scorer
            .stream(&loader(), &mut source, Some(&[20..30, 30..31]), |_| Ok(()))
            .unwrap_err();
        assert!(e.to_string().contains("the source ended at item 23"), "{e}");
    }

    #[test]
    fn a_model_that_ignores_orientation_scores_the_same_under_every_view() {
        let (images, _) = crate::toy::toy_images(6, 8, 4, 5);
        let model = crate::toy::MaxMeanClassifier::new().unwrap();
        let one = Scorer::new(&model, options(4, Views::Single, false))
            .scores(&images)
            .unwrap();
        let eight = Scorer::new(&model, options(4, Views::Dihedral, false))
            .scores(&images)
            .unwrap();
        for (a, b) in one.iter().zip(&eight) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
