//! Seeded, stratified train/test splits of labelled images.

use crate::error::{Error, Result};
use crate::label::Label;
use crate::rng::item_rng;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;

/// Random stream id of splits, so that they never share random numbers with other seeded work.
const SPLIT_STREAM: u64 = 0x5350_4c49_5400; // "SPLIT"

/// Indices into a labelled set: which images train and which test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training indices, ascending.
    pub train: Vec<usize>,
    /// Test indices, ascending.
    pub test: Vec<usize>,
}

/// Splits `labels` so that each class goes to test in proportion `test_ratio` (rounded), keeping
/// at least one image of every class in train; the same seed gives the same split.
///
/// `test_ratio` must be in `[0, 1)`.
pub fn stratified_split(labels: &[Label], test_ratio: f64, seed: u64) -> Result<Split> {
    if !(0.0..1.0).contains(&test_ratio) {
        return Err(Error::InvalidArgument(format!(
            "test_ratio must be in [0, 1), got {test_ratio}"
        )));
    }
    // BTreeMap: classes in a fixed order, so the random stream per class does not depend on
    // hashing.
    let mut classes: BTreeMap<Label, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        classes.entry(l).or_default().push(i);
    }
    let mut split = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for (class, mut members) in classes {
        let n = members.len();
        let n_test = ((n as f64 * test_ratio).round() as usize).min(n.saturating_sub(1));
        let class_id = class.class_index().map_or(2, u64::from);
        members.shuffle(&mut item_rng(seed, SPLIT_STREAM, class_id));
        split.test.extend_from_slice(&members[..n_test]);
        split.train.extend_from_slice(&members[n_test..]);
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(normals: usize, anomalies: usize) -> Vec<Label> {
        let mut v = vec![Label::Normal; normals];
        v.extend(vec![Label::Anomaly; anomalies]);
        v
    }

    #[test]
    fn splits_each_class_in_proportion() {
        let l = labels(90, 10);
        let s = stratified_split(&l, 0.2, 42).unwrap();
        let count = |idx: &[usize], class| idx.iter().filter(|&&i| l[i] == class).count();
        assert_eq!(count(&s.test, Label::Normal), 18);
        assert_eq!(count(&s.test, Label::Anomaly), 2);
        assert_eq!(s.train.len() + s.test.len(), 100);
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn deterministic_per_seed() {
        let l = labels(50, 7);
        let a = stratified_split(&l, 0.3, 1).unwrap();
        assert_eq!(a, stratified_split(&l, 0.3, 1).unwrap());
        assert_ne!(a, stratified_split(&l, 0.3, 2).unwrap());
    }

    #[test]
    fn keeps_one_of_each_class_in_train() {
        let l = labels(5, 1);
        let s = stratified_split(&l, 0.9, 3).unwrap();
        assert!(s.train.contains(&5), "the only anomaly must train");
        assert_eq!(s.test.len(), 4);
        assert!(stratified_split(&l, 1.0, 3).is_err());
        assert!(stratified_split(&l, -0.1, 3).is_err());
        assert_eq!(
            stratified_split(&l, 0.0, 3).unwrap().test,
            Vec::<usize>::new()
        );
    }
}
