//! Assembling the library's components from the checked configuration: the pieces every job
//! shares (images, labels, model, trainer, ground truth), each built by the crate that owns its
//! section.

use crate::config::{Config, TruthConfig};
use crate::error::{AppError, Result};
use anomalymatch_augment::FixMatchAugmenter;
use anomalymatch_core::{
    Check, ClassTable, DataSpec, FailedImage, FixMatch, ImageLoader, ImageSource, Label,
    LabelTable, LabelledSet, UnlabelledPool,
};
use anomalymatch_models::{EfficientNet, ModelInput};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The trainer every job uses.
pub type Trainer = FixMatch<EfficientNet, FixMatchAugmenter>;

/// The built-in data set (`data/gz1-mini`), used when no images are named.
pub const BUILT_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/gz1-mini");

/// Prints a line of chatter unless the job is quiet.
pub fn say(quiet: bool, line: impl AsRef<str>) {
    if !quiet {
        println!("{}", line.as_ref());
    }
}

/// The images and starting labels a job reads: the configured ones, or the built-in data set
/// when no images are named.
pub fn images_and_labels(config: &Config) -> Result<(PathBuf, Option<PathBuf>)> {
    match (&config.data.images, &config.data.labels) {
        (Some(images), labels) => Ok((images.clone(), labels.clone())),
        (None, None) => {
            let root = Path::new(BUILT_IN);
            Ok((root.join("images"), Some(root.join("labeled_data.csv"))))
        }
        (None, Some(_)) => Err(AppError::Usage(
            "data.labels is set but data.images is not: name the images (--images DIR)".into(),
        )),
    }
}

/// Opens the images at `path` as the `[source]` section says, or fails naming the path before
/// any work.
pub fn open_source(config: &Config, path: &Path) -> Result<Box<dyn ImageSource>> {
    Ok(anomalymatch_io::open_source(path, &config.source)?)
}

/// The loader the `[data]` section builds.
pub fn loader(config: &Config) -> Result<ImageLoader> {
    Ok(config.data.clone().check()?.build(())?)
}

/// The starting labels of a label file, by name.
pub fn read_labels(path: &Path) -> Result<BTreeMap<String, Label>> {
    let table = LabelTable::read(path)?;
    Ok(table
        .rows()
        .iter()
        .map(|r| (r.filename.clone(), r.label))
        .collect())
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
    quiet: bool,
) -> Result<LabelledSet> {
    let (loaded, missing) = pool.load_named(&known(labels), !quiet)?;
    warn_unusable(&missing, &loaded.report.failed);
    let set_labels = loaded.names.iter().map(|n| labels[n]).collect();
    Ok(LabelledSet::new(loaded.names, set_labels, loaded.images)?)
}

/// Prints the labelled names that could not be used: the count, then up to five names.
pub fn warn_unusable(missing: &[String], failed: &[FailedImage]) {
    if !missing.is_empty() {
        eprintln!(
            "warning: {} labelled image(s) not found, left out: {}",
            missing.len(),
            preview(missing.iter().map(String::as_str))
        );
    }
    if !failed.is_empty() {
        eprintln!(
            "warning: {} labelled image(s) unreadable, left out: {}",
            failed.len(),
            preview(failed.iter().map(|f| f.origin.as_str()))
        );
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

/// The network the `[model]` section builds, for images of `spec`.
pub fn model(config: &Config, spec: DataSpec) -> Result<EfficientNet> {
    let input = ModelInput {
        in_channels: spec.channels.channels(),
        num_classes: 2,
        seed: config.seed,
    };
    Ok(config.model.clone().check()?.build(input)?)
}

/// The FixMatch trainer of the `[train]` and `[augment]` sections around `model`.
pub fn trainer(
    config: &Config,
    model: EfficientNet,
    spec: DataSpec,
    quiet: bool,
) -> Result<Trainer> {
    let augmenter = config.augment.clone().check()?.build(())?;
    let mut trainer = config
        .train
        .clone()
        .check()?
        .build((model, augmenter, spec, config.seed))?;
    trainer.set_progress(!quiet);
    Ok(trainer)
}

/// Ground truth by name from the `[truth]` section's class file, or from a `classes.csv`
/// beside the image folder (the layout of the built-in data); `None` when there is neither.
pub fn truth(
    truth: &TruthConfig,
    images: &Path,
) -> Result<Option<(PathBuf, HashMap<String, Label>)>> {
    let path = match &truth.classes {
        Some(p) => p.clone(),
        None => match images.parent().map(|p| p.join("classes.csv")) {
            Some(p) if p.is_file() => p,
            _ => return Ok(None),
        },
    };
    let table = ClassTable::read(&path)?;
    let labels = table.labels(&truth.anomaly_class, &truth.drop_classes);
    if !labels.values().any(|&l| l == Label::Anomaly) {
        return Err(AppError::Failed(format!(
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
