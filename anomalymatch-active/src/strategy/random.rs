//! Uniformly random querying: the baseline every other strategy should beat.

use anomalymatch_core::rng::item_rng;
use anomalymatch_core::{QueryInput, QueryStrategy, Result};
use rand::seq::SliceRandom;

/// Picks `k` unlabelled items uniformly at random (seeded).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomQuery;

impl QueryStrategy for RandomQuery {
    fn name(&self) -> &str {
        "random"
    }

    fn select(&self, input: &QueryInput<'_>, k: usize, seed: u64) -> Result<Vec<usize>> {
        input.validate()?;
        let mut candidates: Vec<usize> = input.candidates().collect();
        candidates.shuffle(&mut item_rng(seed, 0x72616e64, 0));
        candidates.truncate(k);
        Ok(candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anomalymatch_core::Label;

    #[test]
    fn seeded_distinct_and_only_unlabelled() {
        let scores = [0.0; 50];
        let mut labels = [Label::Unknown; 50];
        labels[7] = Label::Normal;
        let input = QueryInput {
            scores: &scores,
            embeddings: None,
            labels: &labels,
        };
        let a = RandomQuery.select(&input, 10, 1).unwrap();
        assert_eq!(a, RandomQuery.select(&input, 10, 1).unwrap());
        assert_ne!(a, RandomQuery.select(&input, 10, 2).unwrap());
        let mut all = RandomQuery.select(&input, 100, 3).unwrap();
        assert_eq!(all.len(), 49);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 49);
        assert!(!all.contains(&7));
    }
}
