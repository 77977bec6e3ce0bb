//! The labelled images, decoded once and held in memory with their names and labels; the set
//! grows as an expert's answers arrive.

use crate::error::{Error, Result};
use crate::image_store::ImageStore;
use crate::label::Label;

/// Labelled images held in memory: `names[i]` has `labels[i]` and is image `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSet {
    names: Vec<String>,
    labels: Vec<Label>,
    images: ImageStore,
}

impl LabelledSet {
    /// Bundles names, labels and images; all three must have the same length.
    pub fn new(names: Vec<String>, labels: Vec<Label>, images: ImageStore) -> Result<Self> {
        aligned(names.len(), labels.len(), images.len())?;
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
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// How many images carry `label`.
    pub fn count(&self, label: Label) -> usize {
        self.labels.iter().filter(|&&l| l == label).count()
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<LabelledSet> {
        let images = self.images.subset(indices)?;
        Ok(LabelledSet {
            names: indices.iter().map(|&i| self.names[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            images,
        })
    }

    /// Changes the label of `name` if it is in the set; returns whether it was.
    pub fn relabel(&mut self, name: &str, label: Label) -> bool {
        match self.names.iter().position(|n| n == name) {
            Some(i) => {
                self.labels[i] = label;
                true
            }
            None => false,
        }
    }

    /// Adds newly labelled images (e.g. an expert's answers on pool images).
    pub fn extend(
        &mut self,
        names: &[String],
        labels: &[Label],
        images: &ImageStore,
    ) -> Result<()> {
        aligned(names.len(), labels.len(), images.len())?;
        self.images.extend(images)?;
        self.names.extend_from_slice(names);
        self.labels.extend_from_slice(labels);
        Ok(())
    }
}

/// Fails unless names, labels and images come in equal numbers.
fn aligned(names: usize, labels: usize, images: usize) -> Result<()> {
    if names == labels && names == images {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{names} names, {labels} labels and {images} images do not match"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> LabelledSet {
        let images = ImageStore::quantize(
            &crate::ImageBatch::from_vec((0..3).map(|i| i as f32 / 10.0).collect(), 1, 1, 1)
                .unwrap(),
        );
        let names = ["a.png", "b.png", "c.png"].map(String::from).to_vec();
        LabelledSet::new(
            names,
            vec![Label::Normal, Label::Anomaly, Label::Normal],
            images,
        )
        .unwrap()
    }

    #[test]
    fn subset_and_extend() {
        let full = set();
        assert_eq!(full.count(Label::Normal), 2);
        let mut sub = full.subset(&[2, 1]).unwrap();
        assert_eq!(sub.names(), &["c.png", "b.png"]);
        assert_eq!(sub.labels(), &[Label::Normal, Label::Anomaly]);
        assert_eq!(sub.images().image(0), &[51]);
        let one = full.subset(&[0]).unwrap();
        sub.extend(one.names(), one.labels(), one.images()).unwrap();
        assert_eq!(sub.len(), 3);
        assert!(sub.extend(one.names(), &[], one.images()).is_err());
        assert!(LabelledSet::new(vec![], vec![Label::Normal], full.images().clone()).is_err());
        assert!(sub.relabel("b.png", Label::Normal));
        assert_eq!(sub.count(Label::Anomaly), 0);
        assert!(!sub.relabel("zz.png", Label::Normal));
    }
}
