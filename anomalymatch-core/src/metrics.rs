//! Ranking metrics for anomaly scores: AUROC, average precision, area under the
//! precision-recall curve, precision and recall in the top of the ranking, and confusion counts.
//!
//! Scores are `f32` with higher meaning more anomalous; truth is `true` for an anomaly. Sums are
//! accumulated in `f64`. Tied scores behave as in scikit-learn: all images sharing a score enter
//! the ranking together as one threshold step, so AUROC counts a tied positive-negative pair as
//! one half. Top-k metrics need a strict order, and break ties by position: score descending,
//! then lower index first.
//!
//! Two areas under the precision-recall curve exist in the literature, and they differ:
//! - [`average_precision`] is scikit-learn's `average_precision_score`, `Σ (R_n − R_{n−1}) P_n`,
//!   a step function with no interpolation. Our benchmark protocol reports this as AUPRC.
//! - [`pr_auc_trapezoid`] is scikit-learn's `auc(recall, precision)` on the output of
//!   `precision_recall_curve`, the trapezoidal rule, which the original AnomalyMatch reports as
//!   AUPRC; it is optimistic on imbalanced data because it interpolates linearly.
//!
//! Undefined metrics are errors rather than NaN: AUROC needs both classes, the precision-recall
//! metrics and recall need at least one anomaly.

use crate::error::{Error, Result};
use serde::Serialize;
use std::cmp::Ordering;

/// One threshold of the ranking: cumulative true and false positives once every score at or
/// above it is called an anomaly.
#[derive(Debug, Clone, Copy)]
struct Step {
    tp: f64,
    fp: f64,
}

/// Rejects inputs for which no metric is defined: different lengths, nothing, or NaN scores.
fn check(scores: &[f32], truth: &[bool]) -> Result<()> {
    if scores.len() != truth.len() {
        return Err(Error::Shape(format!(
            "{} scores but {} truth values",
            scores.len(),
            truth.len()
        )));
    }
    if scores.is_empty() {
        return Err(Error::InvalidArgument("no scores".to_string()));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::InvalidArgument(format!("score {i} is NaN")));
    }
    Ok(())
}

/// Counts the anomalies, failing when there are none (recall and precision-recall are undefined).
fn positives(truth: &[bool], metric: &str) -> Result<usize> {
    match truth.iter().filter(|&&t| t).count() {
        0 => Err(Error::InvalidArgument(format!(
            "{metric} is undefined without any anomaly in the truth"
        ))),
        p => Ok(p),
    }
}

/// Indices ordered by score descending, ties by index ascending (the sort is stable).
///
/// Callers have rejected NaN, so `partial_cmp` is total here; -0.0 and 0.0 compare equal, as
/// they do in scikit-learn.
fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(Ordering::Equal));
    order
}

/// The distinct-score thresholds, highest first, with cumulative counts after each.
fn steps(scores: &[f32], truth: &[bool]) -> Vec<Step> {
    let order = ranking(scores);
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    for (pos, &i) in order.iter().enumerate() {
        if truth[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        // A threshold step ends where the next score differs (or the ranking ends).
        let last_of_tie = order
            .get(pos + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_tie {
            out.push(Step { tp, fp });
        }
    }
    out
}

/// Area under the ROC curve: the probability that a random anomaly scores above a random normal,
/// ties counting one half.
pub fn auroc(scores: &[f32], truth: &[bool]) -> Result<f64> {
    check(scores, truth)?;
    let p = truth.iter().filter(|&&t| t).count();
    let n = truth.len() - p;
    if p == 0 || n == 0 {
        return Err(Error::InvalidArgument(
            "AUROC is undefined when the truth has only one class".to_string(),
        ));
    }
    // Trapezoids over the ROC steps: each new false positive is ranked below every earlier true
    // positive and tied with half of the true positives in its own step.
    let mut area = 0.0;
    let mut prev = Step { tp: 0.0, fp: 0.0 };
    for s in steps(scores, truth) {
        area += (s.fp - prev.fp) * (s.tp + prev.tp) / 2.0;
        prev = s;
    }
    Ok(area / (p as f64 * n as f64))
}

/// Average precision as scikit-learn's `average_precision_score`: `Σ (R_n − R_{n−1}) P_n` over the
/// distinct-score thresholds, the precision at each recall gain without interpolation.
pub fn average_precision(scores: &[f32], truth: &[bool]) -> Result<f64> {
    check(scores, truth)?;
    let p = positives(truth, "average precision")? as f64;
    let mut sum = 0.0;
    let mut prev_tp = 0.0;
    for s in steps(scores, truth) {
        sum += (s.tp - prev_tp) / p * (s.tp / (s.tp + s.fp));
        prev_tp = s.tp;
    }
    Ok(sum)
}

/// Trapezoidal area under the precision-recall curve, as scikit-learn's `auc(recall, precision)`
/// on `precision_recall_curve`; the curve starts at recall 0, precision 1.
pub fn pr_auc_trapezoid(scores: &[f32], truth: &[bool]) -> Result<f64> {
    check(scores, truth)?;
    let p = positives(truth, "the area under the precision-recall curve")? as f64;
    let mut area = 0.0;
    let (mut prev_recall, mut prev_precision) = (0.0, 1.0);
    for s in steps(scores, truth) {
        let recall = s.tp / p;
        let precision = s.tp / (s.tp + s.fp);
        area += (recall - prev_recall) * (precision + prev_precision) / 2.0;
        (prev_recall, prev_precision) = (recall, precision);
    }
    Ok(area)
}

/// The number of anomalies among the `k` highest-ranked images (ties broken by lower index).
fn hits_in_top(scores: &[f32], truth: &[bool], k: usize) -> Result<usize> {
    check(scores, truth)?;
    if k == 0 || k > scores.len() {
        return Err(Error::InvalidArgument(format!(
            "top k = {k} must be between 1 and the {} scores",
            scores.len()
        )));
    }
    Ok(ranking(scores)[..k].iter().filter(|&&i| truth[i]).count())
}

/// Share of anomalies among the `k` highest-scored images; `k` must be in `1..=n`.
pub fn precision_at_k(scores: &[f32], truth: &[bool], k: usize) -> Result<f64> {
    Ok(hits_in_top(scores, truth, k)? as f64 / k as f64)
}

/// Share of all anomalies found among the `k` highest-scored images; `k` must be in `1..=n`.
pub fn recall_at_k(scores: &[f32], truth: &[bool], k: usize) -> Result<f64> {
    let hits = hits_in_top(scores, truth, k)?;
    Ok(hits as f64 / positives(truth, "recall")? as f64)
}

/// How many images make up the top `fraction` of `n`: `ceil(fraction * n)`, so that the top
/// share is never smaller than asked and small pools still get one image.
///
/// A product within 1e-9 above an integer counts as that integer, because `0.01 * 300` is
/// `3.0000000000000004` in floating point. `fraction` must be in `(0, 1]`.
pub fn top_k_for_fraction(n: usize, fraction: f64) -> Result<usize> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "fraction {fraction} must be in (0, 1]"
        )));
    }
    let k = (fraction * n as f64 - 1e-9).ceil().max(1.0) as usize;
    Ok(k.min(n))
}

/// Precision in the top `fraction` of the ranking (0.01 for the top 1%), with `k` from
/// [`top_k_for_fraction`].
pub fn precision_at_fraction(scores: &[f32], truth: &[bool], fraction: f64) -> Result<f64> {
    precision_at_k(scores, truth, top_k_for_fraction(scores.len(), fraction)?)
}

/// Recall in the top `fraction` of the ranking, with `k` from [`top_k_for_fraction`].
pub fn recall_at_fraction(scores: &[f32], truth: &[bool], fraction: f64) -> Result<f64> {
    recall_at_k(scores, truth, top_k_for_fraction(scores.len(), fraction)?)
}

/// Counts of a hard decision: an image is called an anomaly when its score is `>= threshold`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    /// Anomalies called anomalies.
    pub true_positives: usize,
    /// Normals called anomalies.
    pub false_positives: usize,
    /// Normals called normal.
    pub true_negatives: usize,
    /// Anomalies called normal.
    pub false_negatives: usize,
}

impl ConfusionMatrix {
    /// Counts the decisions `score >= threshold` against the truth.
    pub fn at_threshold(scores: &[f32], truth: &[bool], threshold: f32) -> Result<Self> {
        check(scores, truth)?;
        if threshold.is_nan() {
            return Err(Error::InvalidArgument("threshold is NaN".to_string()));
        }
        let mut m = ConfusionMatrix::default();
        for (&s, &t) in scores.iter().zip(truth) {
            match (s >= threshold, t) {
                (true, true) => m.true_positives += 1,
                (true, false) => m.false_positives += 1,
                (false, false) => m.true_negatives += 1,
                (false, true) => m.false_negatives += 1,
            }
        }
        Ok(m)
    }

    /// TP / (TP + FP); `None` when nothing was called an anomaly.
    pub fn precision(&self) -> Option<f64> {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// TP / (TP + FN); `None` when the truth has no anomaly.
    pub fn recall(&self) -> Option<f64> {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Harmonic mean of precision and recall, 2TP / (2TP + FP + FN); `None` when both are
    /// undefined (no anomaly in the truth and none called).
    pub fn f1(&self) -> Option<f64> {
        ratio(
            2 * self.true_positives,
            2 * self.true_positives + self.false_positives + self.false_negatives,
        )
    }
}

/// `num / den`, or `None` for an empty denominator.
fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The ranking metrics the benchmark reports together, computed on one pool of scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankingMetrics {
    /// Images in the pool.
    pub n: usize,
    /// Anomalies in the pool.
    pub anomalies: usize,
    /// See [`auroc`].
    pub auroc: f64,
    /// See [`average_precision`]; the benchmark's AUPRC.
    pub average_precision: f64,
    /// See [`pr_auc_trapezoid`]; the original AnomalyMatch's AUPRC.
    pub pr_auc_trapezoid: f64,
    /// Precision in the top 1% of the ranking (the benchmark's `p_at_1pct`).
    pub precision_at_1pct: f64,
    /// Recall in the top 1% of the ranking.
    pub recall_at_1pct: f64,
    /// Precision in the top `anomalies` images (R-precision): 1 for a perfect ranking.
    pub precision_at_anomalies: f64,
}

impl RankingMetrics {
    /// Computes every metric; needs both classes in the truth.
    pub fn compute(scores: &[f32], truth: &[bool]) -> Result<Self> {
        let anomalies = truth.iter().filter(|&&t| t).count();
        Ok(RankingMetrics {
            n: scores.len(),
            anomalies,
            // First, so that its checks (lengths, NaN, both classes) guard the rest.
            auroc: auroc(scores, truth)?,
            average_precision: average_precision(scores, truth)?,
            pr_auc_trapezoid: pr_auc_trapezoid(scores, truth)?,
            precision_at_1pct: precision_at_fraction(scores, truth, 0.01)?,
            recall_at_1pct: recall_at_fraction(scores, truth, 0.01)?,
            precision_at_anomalies: precision_at_k(scores, truth, anomalies)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    // scores 0.9 0.8 0.8 0.7 0.1, truth T F T F F (P = 2, N = 3).
    // Thresholds: 0.9 -> tp 1 fp 0; 0.8 -> tp 2 fp 1 (tied pair enters together);
    // 0.7 -> tp 2 fp 2; 0.1 -> tp 2 fp 3.
    const S: [f32; 5] = [0.9, 0.8, 0.8, 0.7, 0.1];
    const T: [bool; 5] = [true, false, true, false, false];

    #[test]
    fn auroc_by_hand_with_a_tie() {
        // Pairs (pos, neg): 0.9 beats all 3 negatives = 3; 0.8 ties the 0.8 negative = 0.5 and
        // beats 0.7 and 0.1 = 2. Total 5.5 of 6.
        close(auroc(&S, &T).unwrap(), 5.5 / 6.0);
    }

    #[test]
    fn average_precision_by_hand() {
        // Recall gains: 0.5 at threshold 0.9 (P = 1/1), 0.5 at 0.8 (P = 2/3).
        // AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
        close(average_precision(&S, &T).unwrap(), 5.0 / 6.0);
    }

    #[test]
    fn pr_auc_trapezoid_by_hand() {
        // Curve points (R, P): (0, 1), (0.5, 1), (1, 2/3), (1, 1/2), (1, 2/5).
        // Area = 0.5 * (1 + 1) / 2 + 0.5 * (1 + 2/3) / 2 = 0.5 + 5/12 = 11/12.
        close(pr_auc_trapezoid(&S, &T).unwrap(), 11.0 / 12.0);
    }

    #[test]
    fn top_k_breaks_ties_by_index() {
        // Ranking by score then index: 0 (T), 1 (F), 2 (T), 3 (F), 4 (F).
        close(precision_at_k(&S, &T, 1).unwrap(), 1.0);
        close(precision_at_k(&S, &T, 2).unwrap(), 0.5);
        close(recall_at_k(&S, &T, 2).unwrap(), 0.5);
        close(precision_at_k(&S, &T, 3).unwrap(), 2.0 / 3.0);
        close(recall_at_k(&S, &T, 5).unwrap(), 1.0);
        assert!(precision_at_k(&S, &T, 0).is_err());
        assert!(precision_at_k(&S, &T, 6).is_err());
    }

    #[test]
    fn top_fraction_sizes() {
        assert_eq!(top_k_for_fraction(300, 0.01).unwrap(), 3);
        assert_eq!(top_k_for_fraction(6508, 0.01).unwrap(), 66);
        assert_eq!(top_k_for_fraction(50, 0.01).unwrap(), 1);
        assert_eq!(top_k_for_fraction(7, 1.0).unwrap(), 7);
        assert!(top_k_for_fraction(7, 0.0).is_err());
        assert!(top_k_for_fraction(7, 1.5).is_err());
        assert!(top_k_for_fraction(7, f64::NAN).is_err());
        // Top 40% of 5 is 2 images: T, F.
        close(precision_at_fraction(&S, &T, 0.4).unwrap(), 0.5);
        close(recall_at_fraction(&S, &T, 0.4).unwrap(), 0.5);
    }

    #[test]
    fn confusion_matrix_counts_ties_at_threshold_as_anomalies() {
        let m = ConfusionMatrix::at_threshold(&S, &T, 0.8).unwrap();
        assert_eq!(
            m,
            ConfusionMatrix {
                true_positives: 2,
                false_positives: 1,
                true_negatives: 2,
                false_negatives: 0
            }
        );
        close(m.precision().unwrap(), 2.0 / 3.0);
        close(m.recall().unwrap(), 1.0);
        close(m.f1().unwrap(), 0.8);
        let none = ConfusionMatrix::at_threshold(&S, &[false; 5], 2.0).unwrap();
        assert_eq!(
            (none.precision(), none.recall(), none.f1()),
            (None, None, None)
        );
        assert!(ConfusionMatrix::at_threshold(&S, &T, f32::NAN).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(auroc(&S, &T[..4]), Err(Error::Shape(_))));
        assert!(auroc(&[], &[]).is_err());
        assert!(average_precision(&[0.1, f32::NAN], &[true, false]).is_err());
        assert!(auroc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(auroc(&[0.1, 0.2], &[false, false]).is_err());
        assert!(average_precision(&[0.1, 0.2], &[false, false]).is_err());
        assert!(pr_auc_trapezoid(&[0.1, 0.2], &[false, false]).is_err());
        assert!(recall_at_k(&[0.1, 0.2], &[false, false], 1).is_err());
        // Without normals the precision-recall metrics are still defined, as in scikit-learn.
        close(average_precision(&[0.1, 0.2], &[true, true]).unwrap(), 1.0);
        close(
            precision_at_k(&[0.1, 0.2], &[false, false], 1).unwrap(),
            0.0,
        );
    }

    #[test]
    fn ranking_metrics_together() {
        let m = RankingMetrics::compute(&S, &T).unwrap();
        assert_eq!((m.n, m.anomalies), (5, 2));
        close(m.auroc, 5.5 / 6.0);
        close(m.average_precision, 5.0 / 6.0);
        close(m.pr_auc_trapezoid, 11.0 / 12.0);
        // Top 1% of 5 is one image, the anomaly at 0.9.
        close(m.precision_at_1pct, 1.0);
        close(m.recall_at_1pct, 0.5);
        close(m.precision_at_anomalies, 0.5);
        assert!(RankingMetrics::compute(&S, &[true; 5]).is_err());
    }

    #[test]
    fn signed_zeros_tie() {
        // -0.0 and 0.0 are one threshold, so the pair counts one half.
        close(auroc(&[0.0, -0.0], &[true, false]).unwrap(), 0.5);
    }
}
