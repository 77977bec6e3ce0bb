//! Strategies that order unlabelled items by a function of their score alone.

use anomalymatch_core::{QueryInput, QueryStrategy, Result};

/// Which score-derived priority a [`ScoreRank`] uses; smaller keys are chosen first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreKey {
    /// Highest score first: the original's workflow, where the expert confirms the top candidates.
    MostAnomalous,
    /// Lowest score first: checks what the model is surest is normal.
    MostNominal,
    /// Closest to the mean score of the unlabelled items (the original's "mean" sort).
    ClosestToMean,
    /// Closest to the median score of the unlabelled items (the original's "median" sort).
    ClosestToMedian,
    /// Closest to the decision threshold (least confident).
    Uncertainty {
        /// Score at which the model switches class, 0.5 for argmax.
        threshold: f32,
    },
    /// Smallest gap between the two class probabilities, `|p_anomaly - p_normal|`.
    ///
    /// For two classes this orders exactly as uncertainty at 0.5; it is kept as its own name
    /// because users know it from multi-class active learning.
    Margin,
    /// Highest predictive entropy `-p ln p - (1-p) ln (1-p)`; for two classes it orders as
    /// margin does, with ties broken the same way.
    Entropy,
}

/// Orders candidates by a [`ScoreKey`], ties broken by pool index so results are reproducible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRank {
    key: ScoreKey,
    name: &'static str,
}

impl ScoreRank {
    /// A strategy for `key`.
    pub fn new(key: ScoreKey) -> Self {
        let name = match key {
            ScoreKey::MostAnomalous => "top",
            ScoreKey::MostNominal => "nominal",
            ScoreKey::ClosestToMean => "mean",
            ScoreKey::ClosestToMedian => "median",
            ScoreKey::Uncertainty { .. } => "uncertainty",
            ScoreKey::Margin => "margin",
            ScoreKey::Entropy => "entropy",
        };
        ScoreRank { key, name }
    }

    fn keys(&self, input: &QueryInput<'_>, candidates: &[usize]) -> Vec<f64> {
        let s = |i: usize| f64::from(input.scores[i]);
        let centre = match self.key {
            ScoreKey::ClosestToMean => {
                candidates.iter().map(|&i| s(i)).sum::<f64>() / candidates.len().max(1) as f64
            }
            ScoreKey::ClosestToMedian => median(candidates.iter().map(|&i| s(i)).collect()),
            _ => 0.0,
        };
        candidates
            .iter()
            .map(|&i| match self.key {
                ScoreKey::MostAnomalous => -s(i),
                ScoreKey::MostNominal => s(i),
                ScoreKey::ClosestToMean | ScoreKey::ClosestToMedian => (s(i) - centre).abs(),
                ScoreKey::Uncertainty { threshold } => (s(i) - f64::from(threshold)).abs(),
                ScoreKey::Margin => (2.0 * s(i) - 1.0).abs(),
                ScoreKey::Entropy => -binary_entropy(s(i)),
            })
            .collect()
    }
}

impl QueryStrategy for ScoreRank {
    fn name(&self) -> &str {
        self.name
    }

    fn select(&self, input: &QueryInput<'_>, k: usize, _seed: u64) -> Result<Vec<usize>> {
        input.validate()?;
        let candidates: Vec<usize> = input.candidates().collect();
        let keys = self.keys(input, &candidates);
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&a, &b| {
            keys[a]
                .total_cmp(&keys[b])
                .then(candidates[a].cmp(&candidates[b]))
        });
        Ok(order.into_iter().take(k).map(|j| candidates[j]).collect())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn binary_entropy(p: f64) -> f64 {
    let h = |x: f64| if x > 0.0 { -x * x.ln() } else { 0.0 };
    h(p) + h(1.0 - p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anomalymatch_core::Label;

    fn run(key: ScoreKey, scores: &[f32], labels: &[Label], k: usize) -> Vec<usize> {
        let input = QueryInput {
            scores,
            embeddings: None,
            labels,
        };
        ScoreRank::new(key).select(&input, k, 0).unwrap()
    }

    const U: Label = Label::Unknown;

    #[test]
    fn top_and_nominal_skip_labelled_and_break_ties_by_index() {
        let scores = [0.9, 0.2, 0.9, 0.95, 0.1];
        let labels = [U, U, U, Label::Anomaly, U];
        assert_eq!(run(ScoreKey::MostAnomalous, &scores, &labels, 3), [0, 2, 1]);
        assert_eq!(run(ScoreKey::MostNominal, &scores, &labels, 2), [4, 1]);
    }

    #[test]
    fn k_larger_than_pool_returns_every_candidate_once() {
        let scores = [0.3, 0.6, 0.5];
        let labels = [U, Label::Normal, U];
        for key in [
            ScoreKey::MostAnomalous,
            ScoreKey::ClosestToMedian,
            ScoreKey::Entropy,
        ] {
            let mut got = run(key, &scores, &labels, 10);
            got.sort();
            assert_eq!(got, [0, 2]);
        }
        assert!(run(ScoreKey::MostAnomalous, &scores, &[Label::Normal; 3], 5).is_empty());
    }

    #[test]
    fn mean_and_median_differ_on_skewed_scores() {
        // mean = (0 + 0.1 + 0.2 + 0.9 + 1.0) / 5 = 0.44 -> closest 0.2 (idx 2);
        // median = 0.2 -> idx 2 as well, but the second pick differs:
        // from the mean 0.44: 0.1 is 0.34 away, 0.9 is 0.46 -> idx 1; from the median 0.2: 0.1 -> idx 1.
        let scores = [0.0, 0.1, 0.2, 0.9, 1.0];
        let labels = [U; 5];
        assert_eq!(run(ScoreKey::ClosestToMean, &scores, &labels, 2), [2, 1]);
        assert_eq!(run(ScoreKey::ClosestToMedian, &scores, &labels, 2), [2, 1]);
        // A single outlier moves the mean but not the median.
        let scores = [0.0, 0.01, 0.02, 0.03, 1.0];
        // mean 0.212 -> closest 0.03 (idx 3); median 0.02 -> idx 2.
        assert_eq!(run(ScoreKey::ClosestToMean, &scores, &labels, 1), [3]);
        assert_eq!(run(ScoreKey::ClosestToMedian, &scores, &labels, 1), [2]);
    }

    #[test]
    fn uncertainty_margin_and_entropy_prefer_the_threshold() {
        let scores = [0.05, 0.45, 0.58, 0.99, 0.55];
        let labels = [U; 5];
        let expected = [1, 4, 2];
        assert_eq!(
            run(
                ScoreKey::Uncertainty { threshold: 0.5 },
                &scores,
                &labels,
                3
            ),
            expected
        );
        assert_eq!(run(ScoreKey::Margin, &scores, &labels, 3), expected);
        assert_eq!(run(ScoreKey::Entropy, &scores, &labels, 3), expected);
        // A custom threshold moves the choice.
        assert_eq!(
            run(
                ScoreKey::Uncertainty { threshold: 0.9 },
                &scores,
                &labels,
                1
            ),
            [3]
        );
    }
}
