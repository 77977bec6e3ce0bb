//! A resumable scoring run. The shard's parts are scored in order; each finished part is saved
//! atomically as a Parquet file in the run folder beside a `run.json` that says what the run is
//! (checkpoint, source, shard, decoding). A run stopped at any moment and started again keeps
//! the parts that match and scores only the others; at the end the parts are assembled into one
//! score file, so a resumed run ends with the same bytes as an uninterrupted one.

use crate::error::{JobError, Result};
use crate::report::Report;
use crate::shard::Shard;
use anomalymatch_core::atomic::{AtomicGroup, remove_stale_temps, write_atomic};
use anomalymatch_core::score::Views;
use anomalymatch_core::{
    Classifier, DataSpec, FailedImage, ImageLoader, ImageSource, Ranking, Scorer,
};
use anomalymatch_io::{ScoreRows, ScoresFile, ScoresWriter, SourceOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Metadata key of a score file's [`RunSpec`] (JSON).
pub const RUN_KEY: &str = "anomalymatch.run";
/// Metadata key of a score file's unreadable images (a JSON list of name, origin, message).
pub const FAILED_KEY: &str = "anomalymatch.failed";
/// Metadata key of the values per embedding, when embeddings are kept.
pub const DIM_KEY: &str = "embedding_dim";

/// What a scoring run is: two runs with equal specs score the same images the same way, so
/// their parts can be shared (resuming) and their shards merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// SHA-256 of the checkpoint's bytes.
    pub checkpoint_sha256: String,
    /// The source.
    pub source: PathBuf,
    /// How the source is read.
    pub source_options: SourceOptions,
    /// Items in the source.
    pub items: usize,
    /// Size and modification time (seconds) of a source file, so that a replaced file is not
    /// taken for the one a run started on; `None` for folders.
    pub source_stamp: Option<(u64, u64)>,
    /// A folder's listing ([`anomalymatch_core::ImageSource::fingerprint`]), so that a renamed
    /// or replaced file is not scored under a stale run's rows.
    #[serde(default)]
    pub source_fingerprint: Option<String>,
    /// How images are decoded.
    pub data: DataSpec,
    /// The pixel ceiling of encoded images (it decides which fail).
    pub max_pixels: u64,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Views of each image whose scores are averaged.
    #[serde(default)]
    pub views: Views,
    /// Images decoded per step.
    pub chunk_size: usize,
    /// Images per part.
    pub part_size: usize,
    /// Whether embeddings are kept.
    pub embeddings: bool,
    /// Which part of the source this run scores.
    pub shard: Shard,
}

impl RunSpec {
    /// What differs between this run and `other`, in words (empty when they are one run).
    pub fn differences(&self, other: &RunSpec) -> Vec<&'static str> {
        let described = [
            ("checkpoint", "the checkpoint"),
            ("checkpoint_sha256", "the checkpoint"),
            ("source", "the source"),
            ("source_options", "how the source is read"),
            ("items", "the number of images"),
            (
                "source_stamp",
                "the source file's size or modification time",
            ),
            (
                "source_fingerprint",
                "the images' listing (names, sizes or modification times)",
            ),
            ("data", "the decoding"),
            ("shard", "the shard"),
        ];
        let (a, b) = (serde_json::to_value(self), serde_json::to_value(other));
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (a, b) else {
            return vec!["the run's record"];
        };
        let mut found: Vec<&'static str> = a
            .keys()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                described
                    .iter()
                    .find(|(key, _)| key == k)
                    .map_or("the scoring settings", |(_, words)| *words)
            })
            .collect();
        found.dedup();
        found
    }

    /// The items this run scores.
    pub fn shard_items(&self) -> Range<usize> {
        self.shard.items(self.items, self.part_size)
    }

    /// The parts this run scores.
    pub fn parts(&self) -> Range<usize> {
        self.shard.parts(self.items, self.part_size)
    }

    /// The same run as shard `shard` (merging compares shards' specs as one run's).
    pub fn with_shard(&self, shard: Shard) -> RunSpec {
        RunSpec {
            shard,
            ..self.clone()
        }
    }
}

/// SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| JobError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| JobError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Size and modification time of a file; `None` for a folder.
pub fn source_stamp(path: &Path) -> Result<Option<(u64, u64)>> {
    let meta = std::fs::metadata(path).map_err(|e| JobError::io(path, e))?;
    if meta.is_dir() {
        return Ok(None);
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(Some((meta.len(), modified)))
}

/// The folder of one run's finished parts.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    spec: RunSpec,
}

impl RunFolder {
    /// Opens `dir` for `spec`: its parts are kept when it belongs to the same run, and
    /// removed otherwise (another checkpoint, source or setting would score differently).
    /// Returns the folder and how many parts it already holds.
    pub fn open(dir: &Path, spec: &RunSpec, report: &dyn Report) -> Result<(RunFolder, usize)> {
        let run_json = dir.join("run.json");
        let same = std::fs::read(&run_json)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunSpec>(&b).ok())
            .is_some_and(|s| s == *spec);
        if !same && dir.exists() {
            // Its parts score other images (or the same ones otherwise): none can be kept.
            let old = std::fs::read(&run_json)
                .ok()
                .and_then(|b| serde_json::from_slice::<RunSpec>(&b).ok());
            if let Some(old) = old {
                report.warn(&format!(
                    "{} changed since the stopped run in {}; scoring from the start",
                    old.differences(spec).join(", "),
                    dir.display()
                ));
            }
            std::fs::remove_dir_all(dir).map_err(|e| JobError::io(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| JobError::io(dir, e))?;
        remove_stale_temps(dir)?;
        if !same {
            let text = serde_json::to_vec_pretty(spec).map_err(|e| JobError::json(&run_json, e))?;
            write_atomic(&run_json, |w| std::io::Write::write_all(w, &text))?;
        }
        let folder = RunFolder {
            dir: dir.to_path_buf(),
            spec: spec.clone(),
        };
        let done = spec.parts().filter(|&k| folder.is_done(k)).count();
        Ok((folder, done))
    }

    /// The file of part `k`.
    pub fn part_path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("part-{k:08}.parquet"))
    }

    /// True when part `k` was finished (parts are written atomically: present is complete).
    pub fn is_done(&self, k: usize) -> bool {
        self.part_path(k).is_file()
    }

    /// Saves part `k` atomically.
    fn save_part(&self, k: usize, rows: &ScoreRows, unreadable: &[FailedImage]) -> Result<()> {
        let path = self.part_path(k);
        let dim = embedding_dim(rows, self.spec.embeddings);
        let metadata = file_metadata(&self.spec, unreadable, dim)?;
        write_atomic(&path, |w| {
            let mut writer = ScoresWriter::new(w, dim, &path).map_err(std::io::Error::other)?;
            writer.write(rows).map_err(std::io::Error::other)?;
            writer.finish(&metadata).map_err(std::io::Error::other)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Scores the parts of this run not yet finished with `scorer`, streaming them from
    /// `source` as `loader` decodes it, and saves each part as it ends; returns how many
    /// images it read.
    pub fn score_missing<C: Classifier + ?Sized>(
        &self,
        scorer: &Scorer<'_, C>,
        loader: &ImageLoader,
        source: &mut dyn ImageSource,
    ) -> Result<usize> {
        let spec = &self.spec;
        let todo: Vec<usize> = spec.parts().filter(|&k| !self.is_done(k)).collect();
        let ranges: Vec<Range<usize>> = todo
            .iter()
            .map(|&k| Shard::part_items(k, spec.items, spec.part_size))
            .collect();
        let (mut rows, mut unreadable) = (ScoreRows::default(), Vec::new());
        let read = scorer.stream(loader, source, Some(&ranges), |chunk| {
            if spec.embeddings
                && let Some(e) = &chunk.embeddings
            {
                rows.embeddings
                    .extend((0..e.len()).flat_map(|i| e.row(i).to_vec()));
            }
            rows.names.extend(chunk.names);
            rows.origins.extend(chunk.origins);
            rows.scores.extend(chunk.scores);
            unreadable.extend(chunk.failed);
            if chunk.ends_range {
                self.save_part(todo[chunk.range], &rows, &unreadable)
                    .map_err(|e| anomalymatch_core::Error::InvalidArgument(e.to_string()))?;
                rows = ScoreRows::default();
                unreadable.clear();
            }
            Ok(())
        })?;
        Ok(read)
    }

    /// The finished parts' files, in order.
    pub fn part_files(&self) -> Vec<PathBuf> {
        self.spec.parts().map(|k| self.part_path(k)).collect()
    }

    /// Removes the folder once its parts are assembled.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| JobError::io(&self.dir, e))
    }
}

fn embedding_dim(rows: &ScoreRows, embeddings: bool) -> Option<usize> {
    (embeddings && !rows.is_empty()).then(|| rows.embeddings.len() / rows.len())
}

/// The key-value metadata of a score file of `spec`.
pub fn file_metadata(
    spec: &RunSpec,
    unreadable: &[FailedImage],
    dim: Option<usize>,
) -> Result<BTreeMap<String, String>> {
    let failed_list: Vec<serde_json::Value> = unreadable
        .iter()
        .map(|f| serde_json::json!({"name": f.name, "origin": f.origin, "message": f.message}))
        .collect();
    let mut metadata = BTreeMap::from([
        (
            RUN_KEY.to_string(),
            serde_json::to_string(spec).map_err(|e| JobError::Failed(e.to_string()))?,
        ),
        (
            FAILED_KEY.to_string(),
            serde_json::Value::from(failed_list).to_string(),
        ),
    ]);
    if let Some(d) = dim {
        metadata.insert(DIM_KEY.to_string(), d.to_string());
    }
    Ok(metadata)
}

/// The run and unreadable images a score file records.
pub fn read_metadata(file: &ScoresFile, path: &Path) -> Result<(RunSpec, Vec<FailedImage>)> {
    let metadata = file.metadata();
    let bad = |what: &str| {
        JobError::Failed(format!(
            "{}: {what}: not a score file of anomalymatch",
            path.display()
        ))
    };
    let spec: RunSpec = metadata
        .get(RUN_KEY)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| bad("no run description"))?;
    let list: Vec<serde_json::Value> = metadata
        .get(FAILED_KEY)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| bad("no list of unreadable images"))?;
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let unreadable = list
        .iter()
        .map(|v| FailedImage {
            name: text(v, "name"),
            origin: text(v, "origin"),
            message: text(v, "message"),
        })
        .collect();
    Ok((spec, unreadable))
}

/// What assembling score files found: rows, the best `top` and the unreadable images.
#[derive(Debug)]
pub struct Assembled {
    /// Rows written.
    pub rows: usize,
    /// The best rows, best first.
    pub top: Ranking,
    /// Unreadable images, in source order.
    pub unreadable: Vec<FailedImage>,
}

/// Stages `path` in `group` as the rows of `inputs` (score files, in order) one row group per
/// input row group, with `spec`'s metadata, and finds the best `top` on the way.
pub fn assemble(
    group: &mut AtomicGroup,
    path: &Path,
    inputs: &[PathBuf],
    spec: &RunSpec,
    top: usize,
) -> Result<Assembled> {
    let files = inputs
        .iter()
        .map(|p| Ok((ScoresFile::open(p)?, p.clone())))
        .collect::<Result<Vec<_>>>()?;
    let mut unreadable = Vec::new();
    let mut dim = None;
    for (file, p) in &files {
        unreadable.extend(read_metadata(file, p)?.1);
        dim = dim.or(file.embedding_dim());
    }
    let metadata = file_metadata(spec, &unreadable, dim)?;
    let (mut names, mut scores) = (Vec::new(), Vec::new());
    let mut rows = 0;
    let mut outcome: Result<()> = Ok(());
    let written = group.write(path, |w| {
        let result = (|| -> Result<()> {
            let mut writer = ScoresWriter::new(w, dim, path)?;
            for (file, p) in &files {
                if file.embedding_dim() != dim && !file.is_empty() {
                    return Err(JobError::Failed(format!(
                        "{}: embeddings differ from the other parts",
                        p.display()
                    )));
                }
                for g in 0..file.groups() {
                    let part = file.read_group(g)?;
                    rows += part.len();
                    names.extend_from_slice(&part.names);
                    scores.extend_from_slice(&part.scores);
                    // Only the running best are kept, so memory does not grow with the rows.
                    if names.len() > 4 * top {
                        keep_top(&mut names, &mut scores, top)?;
                    }
                    writer.write(&part)?;
                }
            }
            writer.finish(&metadata)?;
            Ok(())
        })();
        let stop = result.is_err();
        outcome = result;
        if stop {
            return Err(std::io::Error::other("assembling failed"));
        }
        Ok(())
    });
    outcome?;
    written?;
    keep_top(&mut names, &mut scores, top)?;
    Ok(Assembled {
        rows,
        top: Ranking::new(&names, &scores)?,
        unreadable,
    })
}

/// Keeps the `k` highest-scored pairs, best first (ties in input order).
fn keep_top(names: &mut Vec<String>, scores: &mut Vec<f32>, k: usize) -> Result<()> {
    let ranking = Ranking::new(names, scores)?;
    (*names, *scores) = ranking
        .top(k)
        .iter()
        .map(|r| (r.name.clone(), r.score))
        .unzip();
    Ok(())
}
