//! A folder of images plus known labels: the labelled images in memory and the names of the
//! unlabelled rest.
//!
//! Labels come in as plain `(name, label)` pairs, so any label table plugs in. A label naming a
//! file that is not in the folder is never dropped silently: it is listed in
//! [`DatasetReport::missing`] (and is an error in strict mode), because users move and rename
//! files and should see which labels no longer apply rather than lose a whole session.

use crate::error::{Error, Result};
use crate::folder::FolderSource;
use crate::image::ImageBatch;
use crate::label::Label;
use crate::loader::{ImageLoader, LoadReport};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Labelled images held in memory: `names[i]` has `labels[i]` and is image `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSet {
    names: Vec<String>,
    labels: Vec<Label>,
    images: ImageBatch,
}

impl LabelledSet {
    /// Bundles names, labels and images; all three must have the same length.
    pub fn new(names: Vec<String>, labels: Vec<Label>, images: ImageBatch) -> Result<Self> {
        if names.len() != labels.len() || names.len() != images.len() {
            return Err(Error::Shape(format!(
                "{} names, {} labels and {} images do not match",
                names.len(),
                labels.len(),
                images.len()
            )));
        }
        Ok(LabelledSet {
            names,
            labels,
            images,
        })
    }

    /// Number of labelled images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nothing is labelled.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Image names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Labels, aligned with [`LabelledSet::names`].
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// The images, aligned with [`LabelledSet::names`].
    pub fn images(&self) -> &ImageBatch {
        &self.images
    }

    /// How many images carry `label`.
    pub fn count(&self, label: Label) -> usize {
        self.labels.iter().filter(|&&l| l == label).count()
    }

    /// The images at `indices`, in that order (e.g. one side of a [`crate::split::Split`]).
    pub fn subset(&self, indices: &[usize]) -> Result<LabelledSet> {
        let images = self.images.select(indices)?;
        Ok(LabelledSet {
            names: indices.iter().map(|&i| self.names[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            images,
        })
    }

    /// Adds newly labelled images (e.g. an expert's answers on pool images).
    pub fn extend(
        &mut self,
        names: &[String],
        labels: &[Label],
        images: &ImageBatch,
    ) -> Result<()> {
        if names.len() != labels.len() || names.len() != images.len() {
            return Err(Error::Shape(format!(
                "{} names, {} labels and {} images do not match",
                names.len(),
                labels.len(),
                images.len()
            )));
        }
        self.images.extend(images)?;
        self.names.extend_from_slice(names);
        self.labels.extend_from_slice(labels);
        Ok(())
    }
}

/// What building a dataset found besides the images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetReport {
    /// Loading the labelled images: counts and failures (failed images are in neither set).
    pub labelled_load: LoadReport,
    /// Names that have a label but no file in the folder, sorted.
    pub missing: Vec<String>,
}

/// A folder's images split into labelled images (in memory) and unlabelled names.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    /// The image folder.
    pub root: PathBuf,
    /// Images with a known label, in name order.
    pub labelled: LabelledSet,
    /// Images without a known label (`Unknown` or absent from the labels), in name order.
    pub unlabelled: Vec<String>,
    /// Missing files and load failures.
    pub report: DatasetReport,
}

impl FolderDataset {
    /// Lists `root`, loads the images that have a known label with `loader`, and keeps the other
    /// names as unlabelled. A repeated name takes its last label.
    ///
    /// Labels naming files absent from the folder are listed in the report, or are an error in
    /// strict mode; so are labelled images that fail to decode.
    pub fn open<S: Into<String>>(
        root: impl AsRef<Path>,
        labels: impl IntoIterator<Item = (S, Label)>,
        loader: &ImageLoader,
        show_progress: bool,
    ) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let folder = FolderSource::open(&root)?;
        let labels: HashMap<String, Label> =
            labels.into_iter().map(|(n, l)| (n.into(), l)).collect();

        let on_disk: HashSet<&str> = folder.names().iter().map(String::as_str).collect();
        let mut missing: Vec<String> = labels
            .keys()
            .filter(|n| !on_disk.contains(n.as_str()))
            .cloned()
            .collect();
        missing.sort();
        if loader.config().strict && !missing.is_empty() {
            return Err(Error::UnreadableImages {
                count: missing.len(),
                first: format!(
                    "{}: has a label but is not in the folder",
                    root.join(&missing[0]).display()
                ),
            });
        }

        let mut labelled_names = Vec::new();
        let mut unlabelled = Vec::new();
        for name in folder.names() {
            match labels.get(name) {
                Some(l) if l.is_known() => labelled_names.push(name.clone()),
                _ => unlabelled.push(name.clone()),
            }
        }

        let loaded = loader.load_all(
            &mut FolderSource::with_names(&root, labelled_names)?,
            show_progress,
        )?;
        let label_of = |name: &String| labels.get(name).copied().unwrap_or_default();
        let set_labels = loaded.names.iter().map(label_of).collect();
        Ok(FolderDataset {
            root,
            labelled: LabelledSet::new(loaded.names, set_labels, loaded.images)?,
            unlabelled,
            report: DatasetReport {
                labelled_load: loaded.report,
                missing,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::LoaderConfig;
    use image::{GrayImage, Luma};

    fn folder(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in names.iter().enumerate() {
            GrayImage::from_pixel(6, 6, Luma([i as u8 * 10]))
                .save(dir.path().join(name))
                .unwrap();
        }
        dir
    }

    fn loader(strict: bool) -> ImageLoader {
        LoaderConfig {
            size: 4,
            strict,
            ..LoaderConfig::default()
        }
        .build()
        .unwrap()
    }

    #[test]
    fn splits_labelled_and_unlabelled_and_reports_missing() {
        let dir = folder(&["a.png", "b.png", "c.png", "d.png"]);
        std::fs::write(dir.path().join("e.png"), b"broken").unwrap();
        let labels = vec![
            ("c.png", Label::Anomaly),
            ("a.png", Label::Normal),
            ("b.png", Label::Unknown),
            ("gone.png", Label::Normal),
            ("e.png", Label::Normal),
        ];
        let ds = FolderDataset::open(dir.path(), labels.clone(), &loader(false), false).unwrap();
        assert_eq!(ds.labelled.names(), &["a.png", "c.png"]);
        assert_eq!(ds.labelled.labels(), &[Label::Normal, Label::Anomaly]);
        assert_eq!(ds.labelled.images().len(), 2);
        // c.png is the third grey image: 20/255.
        assert!((ds.labelled.images().image(1)[0] - 20.0 / 255.0).abs() < 1e-6);
        assert_eq!(ds.unlabelled, ["b.png", "d.png"]);
        assert_eq!(ds.report.missing, ["gone.png"]);
        assert_eq!(ds.report.labelled_load.failed.len(), 1);
        assert_eq!(ds.report.labelled_load.failed[0].name, "e.png");

        let err = FolderDataset::open(dir.path(), labels, &loader(true), false).unwrap_err();
        assert!(err.to_string().contains("gone.png"), "{err}");
    }

    #[test]
    fn subset_and_extend() {
        let dir = folder(&["a.png", "b.png", "c.png"]);
        let labels = [
            ("a.png", Label::Normal),
            ("b.png", Label::Anomaly),
            ("c.png", Label::Normal),
        ];
        let ds = FolderDataset::open(dir.path(), labels, &loader(true), false).unwrap();
        assert_eq!(ds.labelled.count(Label::Normal), 2);
        let mut sub = ds.labelled.subset(&[2, 1]).unwrap();
        assert_eq!(sub.names(), &["c.png", "b.png"]);
        assert_eq!(sub.labels(), &[Label::Normal, Label::Anomaly]);
        let one = ds.labelled.subset(&[0]).unwrap();
        sub.extend(one.names(), one.labels(), one.images()).unwrap();
        assert_eq!(sub.len(), 3);
        assert!(sub.extend(one.names(), &[], one.images()).is_err());
    }
}
