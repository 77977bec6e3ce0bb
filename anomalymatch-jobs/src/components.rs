//! Assembling the library's components from the checked configuration: the pieces every job
//! shares (images, labels, model, trainer, ground truth), each built by the crate that owns its
//! section.

use crate::config::{Settings, TruthConfig};
use crate::error::{JobError, Result};
use crate::report::Report;
use anomalymatch_active::{Session, SessionConfig};
use anomalymatch_augment::FixMatchAugmenter;
use anomalymatch_core::{
    ClassTable, DataSpec, FailedImage, FixMatch, ImageLoader, ImageSource, ImageStore, Label,
    LabelTable, LabelledSet, UnlabelledPool, lock::FolderLock,
};
use anomalymatch_models::{EfficientNet, ModelInput};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The trainer every job uses.
pub type Trainer = FixMatch<EfficientNet, FixMatchAugmenter>;

/// The labelling session every job and face drives ([`session`]).
pub type LabelSession = Session<EfficientNet, FixMatchAugmenter>;

/// The built-in data set (`data/gz1-demo`), used when no images are named.
pub const BUILT_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/gz1-demo");

/// Makes the output folder ready before any work: created if needed, refused with a clear
/// error if it cannot be written or another process writes it, locked for this job (the whole
/// folder, or with `part` one part of a job whose parts share it, such as a scoring shard),
/// and rid of temporary files that stopped runs left there. The lock lasts as long as the
/// returned guard.
pub fn prepare_output(dir: &Path, part: Option<&str>, report: &dyn Report) -> Result<FolderLock> {
    let failed = |e: std::io::Error| {
        JobError::io(
            dir,
            std::io::Error::new(e.kind(), format!("cannot write the output folder: {e}")),
        )
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let probe = dir.join(format!(".anomalymatch-probe.{}.tmp", std::process::id()));
    std::fs::write(&probe, b"").map_err(failed)?;
    std::fs::remove_file(&probe).map_err(failed)?;
    let lock = match part {
        Some(part) => FolderLock::part(dir, part)?,
        None => FolderLock::exclusive(dir)?,
    };
    let stale = anomalymatch_core::atomic::remove_stale_temps(dir)?;
    if stale > 0 {
        report.say(&format!(
            "removed {stale} temporary file(s) a stopped run left in {}",
            dir.display()
        ));
    }
    Ok(lock)
}

/// The images and starting labels a job reads: the configured ones, or the built-in data set
/// when no images are named. An output folder that is the images folder is refused: the next
/// run would read the contact sheets written there as images.
pub fn images_and_labels(config: &Settings) -> Result<(PathBuf, Option<PathBuf>)> {
    match (&config.data.images, &config.data.labels) {
        (Some(images), labels) => {
            let out = &config.output.dir;
            if let (Ok(a), Ok(b)) = (images.canonicalize(), out.canonicalize())
                && a == b
            {
                return Err(JobError::Usage(format!(
                    "output.dir ({}) is the images folder: the contact sheets written there \
                     would be read as images; choose another --out",
                    out.display()
                )));
            }
            Ok((images.clone(), labels.clone()))
        }
        (None, None) => {
            let root = Path::new(BUILT_IN);
            Ok((root.join("images"), Some(root.join("labeled_data.csv"))))
        }
        (None, Some(_)) => Err(JobError::Usage(
            "data.labels is set but data.images is not: name the images (--images DIR)".into(),
        )),
    }
}

/// Opens the images at `path` as the `[source]` section says, or fails naming the path before
/// any work. What the source says about its reading (skipped members, renamed duplicates)
/// goes to `report` as warnings; a job that opens the same source again passes [`Silent`].
///
/// [`Silent`]: crate::report::Silent
pub fn open_source(
    config: &Settings,
    path: &Path,
    report: &dyn Report,
) -> Result<Box<dyn ImageSource>> {
    let source = anomalymatch_io::open_source(path, &config.source)?;
    for note in source.notes() {
        report.warn(&format!("{}: {note}", path.display()));
    }
    Ok(source)
}

/// The loader the `[data]` section builds.
pub fn loader(config: &Settings) -> Result<ImageLoader> {
    Ok(config.data.build(())?)
}

/// The starting labels of a label file, by name.
/// Rows that list a file again with another label are counted and named on stderr (the last
/// row wins, as in the original).
pub fn read_labels(path: &Path, report: &dyn Report) -> Result<BTreeMap<String, Label>> {
    let table = LabelTable::read(path)?;
    let conflicts = &table.read_report().conflicts;
    if !conflicts.is_empty() {
        report.warn(&format!(
            "{}: {} file(s) listed more than once with different labels, the last \
             row wins: {}",
            path.display(),
            conflicts.len(),
            preview(conflicts.iter().map(String::as_str))
        ));
    }
    Ok(table
        .rows()
        .iter()
        .map(|r| (r.filename.clone(), r.label))
        .collect())
}

/// A class file; files it lists more than once with different classes are counted and named
/// on stderr (the last row wins, as in label files).
pub fn read_classes(path: &Path, report: &dyn Report) -> Result<ClassTable> {
    let table = ClassTable::read(path)?;
    let conflicts = table.conflicts();
    if !conflicts.is_empty() {
        report.warn(&format!(
            "{}: {} file(s) listed more than once with different classes, the last row wins: {}",
            path.display(),
            conflicts.len(),
            preview(conflicts.iter().map(String::as_str))
        ));
    }
    Ok(table)
}

/// The names that carry a known label.
pub fn known(labels: &BTreeMap<String, Label>) -> Vec<String> {
    labels
        .iter()
        .filter(|(_, l)| l.is_known())
        .map(|(n, _)| n.clone())
        .collect()
}

/// Decodes the labelled images from the pool's source; missing and unreadable ones are counted
/// and named on stderr, and the job goes on without them.
pub fn labelled_set(
    pool: &mut UnlabelledPool,
    labels: &BTreeMap<String, Label>,
    report: &dyn Report,
) -> Result<LabelledSet> {
    let (loaded, missing) = pool.load_named(&known(labels), report.progress())?;
    warn_unusable(&missing, &loaded.report.failed, report);
    let set_labels = loaded.names.iter().map(|n| labels[n]).collect();
    Ok(LabelledSet::new(loaded.names, set_labels, loaded.images)?)
}

/// Prints the labelled names that could not be used: the count, then up to five names.
pub fn warn_unusable(missing: &[String], failed: &[FailedImage], report: &dyn Report) {
    if !missing.is_empty() {
        report.warn(&format!(
            "{} labelled image(s) not found, left out: {}",
            missing.len(),
            preview(missing.iter().map(String::as_str))
        ));
    }
    if !failed.is_empty() {
        report.warn(&format!(
            "{} labelled image(s) unreadable, left out: {}",
            failed.len(),
            preview(failed.iter().map(|f| f.origin.as_str()))
        ));
    }
}

/// Up to five items joined, with how many more there are.
pub fn preview<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> String {
    let n = items.len();
    let shown: Vec<&str> = items.take(5).collect();
    if n > shown.len() {
        format!("{} and {} more", shown.join(", "), n - shown.len())
    } else {
        shown.join(", ")
    }
}

/// The network the `[model]` section builds, for images of `spec`, once the run is known to
/// fit it and the machine ([`check_resources`]).
pub fn model(config: &Settings, spec: DataSpec) -> Result<EfficientNet> {
    let input = ModelInput {
        in_channels: spec.channels.channels(),
        num_classes: Label::CLASSES,
        seed: config.seed,
    };
    let model = config.model.build(input)?;
    check_resources(config, &model, spec)?;
    Ok(model)
}

/// Bytes a training step keeps per input pixel of EfficientNet-Lite0 (activations for the
/// backward pass, and the allocator's slack). `train` on the built-in data (7ce3c63) peaked
/// at 0.59 GB with 22 images per step and at 1.88 GB with 176 at 96x96 (910 bytes per pixel
/// for each further image), and for Lite1 at 240x240 at 13.4 GB, 1.4 GB of it the pool
/// (about 1,060 bytes per pixel after Lite1's depth factor).
const STEP_BYTES_PER_PIXEL: f64 = 1100.0;

/// [`STEP_BYTES_PER_PIXEL`] with `model.recompute`: 1.56 GB for Lite0 at 96x96 with 176 images
/// (760 bytes per pixel over the 0.33 GB held before the step), and 9.1 GB for Lite1 at
/// 240x240 (690 after the depth factor), at ad06d9b plus the option.
const RECOMPUTE_STEP_BYTES_PER_PIXEL: f64 = 800.0;

/// Refuses, before any work, an image size the network cannot take and a run that would not
/// fit in memory: the unlabelled window plus one training step, estimated from the
/// configuration, against the memory available now.
fn check_resources(config: &Settings, model: &EfficientNet, spec: DataSpec) -> Result<()> {
    let min = model.min_input_size();
    if spec.size < min {
        return Err(JobError::Usage(format!(
            "data.size = {}: {} needs images of at least {min} pixels",
            spec.size, config.model.architecture
        )));
    }
    let pixels = (spec.size * spec.size) as f64;
    let image = pixels * (spec.channels.channels() * ImageStore::SAMPLE_BYTES) as f64;
    let window = config.data.n_to_load as f64 * image;
    let per_step = (config.train.batch_size * (1 + 2 * config.train.uratio)) as f64;
    let p = config.model.architecture.params();
    let per_pixel = if config.model.recompute {
        RECOMPUTE_STEP_BYTES_PER_PIXEL
    } else {
        STEP_BYTES_PER_PIXEL
    };
    let step = per_step * pixels * per_pixel * p.width * p.width * p.depth;
    let need = window + step;
    if let Some(available) = available_memory()
        && need > available
    {
        let gb = |b: f64| b / 1e9;
        let or_recompute = if config.model.recompute {
            ""
        } else {
            ", or set model.recompute = true (a third less for each step, a quarter more time)"
        };
        return Err(JobError::Usage(format!(
            "data.size = {} with data.n_to_load = {} and train.batch_size = {} would need about \
             {:.1} GB ({:.1} GB of images, {:.1} GB per training step), but {:.1} GB is \
             available; lower one of them{or_recompute}",
            spec.size,
            config.data.n_to_load,
            config.train.batch_size,
            gb(need),
            gb(window),
            gb(step),
            gb(available)
        )));
    }
    Ok(())
}

/// Memory available to new work (Linux's `MemAvailable`), or `None` where it cannot be read.
fn available_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// The FixMatch trainer of the `[train]` and `[augment]` sections around `model`.
pub fn trainer(
    config: &Settings,
    model: EfficientNet,
    spec: DataSpec,
    progress: bool,
) -> Result<Trainer> {
    let augmenter = config.augment.build(())?;
    let mut trainer = config.train.build((model, augmenter, spec, config.seed))?;
    trainer.set_progress(progress);
    Ok(trainer)
}

/// The labelling session in `OUT/session` over the configured images, starting labels,
/// model and trainer, as `label` and `serve` open it; labelled names it cannot use are
/// warned about.
pub fn session(
    config: &Settings,
    images: &Path,
    labels: Option<&Path>,
    report: &dyn Report,
) -> Result<LabelSession> {
    let start = match labels {
        Some(p) => read_labels(p, report)?,
        None => BTreeMap::new(),
    };
    session_over(config, open_source(config, images, report)?, start, report)
}

/// The labelling session in `OUT/session` over any source of images (the Python package's
/// arrays) with starting labels by name.
pub fn session_over(
    config: &Settings,
    source: Box<dyn ImageSource>,
    start: BTreeMap<String, Label>,
    report: &dyn Report,
) -> Result<LabelSession> {
    let progress = report.progress();
    let dir = config.output.dir.join("session");
    // Refused here, before the images load, when another process has the session; the
    // session takes the lock for itself when it opens.
    drop(prepare_output(&dir, None, report)?);
    let loader = loader(config)?;
    let spec = loader.spec();
    let pool = UnlabelledPool::new(source, loader, config.data.n_to_load)?;
    let trainer = trainer(config, model(config, spec)?, spec, progress)?;
    let session_config = SessionConfig {
        cycles: config.active.cycles,
        iterations: config.train.iterations,
        queries_per_cycle: config.active.queries_per_cycle,
        score_batch: config.score.batch_size,
        score_views: config.score.views,
        ensemble: config.active.ensemble,
        seed: config.seed,
        show_progress: progress,
    };
    let session = Session::open(&dir, session_config, trainer, pool, start)?;
    let r = session.labelled_report();
    warn_unusable(&r.missing, &r.unreadable, report);
    Ok(session)
}

/// Ground truth by name from the `[truth]` section's class file, or from a `classes.csv`
/// beside the image folder (the layout of the built-in data); `None` when there is neither.
pub fn truth(
    truth: &TruthConfig,
    images: &Path,
    report: &dyn Report,
) -> Result<Option<(PathBuf, HashMap<String, Label>)>> {
    let path = match &truth.classes {
        Some(p) => p.clone(),
        None => match images.parent().map(|p| p.join("classes.csv")) {
            Some(p) if p.is_file() => p,
            _ => return Ok(None),
        },
    };
    let table = read_classes(&path, report)?;
    let labels = table.labels(&truth.anomaly_class, &truth.drop_classes);
    if !labels.values().any(|&l| l == Label::Anomaly) {
        return Err(JobError::Failed(format!(
            "{}: no image of class {:?} (truth.anomaly_class)",
            path.display(),
            truth.anomaly_class
        )));
    }
    Ok(Some((path, labels)))
}

/// The names of `labels` as a set, for leaving labelled images out of a pool's windows.
pub fn name_set(names: &[String]) -> HashSet<String> {
    names.iter().cloned().collect()
}
