//! Batch awareness: keeps a queried batch from being k near-duplicates of one object.

use anomalymatch_core::{Error, QueryInput, QueryStrategy, Result};

/// Wraps a strategy and skips any candidate whose embedding lies within `radius` of one
/// already chosen in the same batch; skipped items are used only if the batch would
/// otherwise run short.
///
/// `radius` is a share of the median distance between the inner strategy's top `4k`
/// candidates, so it adapts to the embedding's scale.
pub struct Deduplicated<S> {
    inner: S,
    radius: f32,
    name: String,
}

impl<S: QueryStrategy> Deduplicated<S> {
    /// Wraps `inner`; `radius` in (0, 1) is the share of the median candidate distance under
    /// which two items count as near-duplicates (0.1 is a reasonable start).
    pub fn new(inner: S, radius: f32) -> Result<Self> {
        if !(radius > 0.0 && radius < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "near-duplicate radius must be in (0, 1), got {radius}"
            )));
        }
        let name = format!("{}+dedup", inner.name());
        Ok(Deduplicated {
            inner,
            radius,
            name,
        })
    }
}

impl<S: QueryStrategy> QueryStrategy for Deduplicated<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn needs_embeddings(&self) -> bool {
        true
    }

    fn select(&self, input: &QueryInput<'_>, k: usize, seed: u64) -> Result<Vec<usize>> {
        let Some(emb) = input.embeddings else {
            return self.inner.select(input, k, seed);
        };
        let ranked = self.inner.select(input, k.saturating_mul(4), seed)?;
        let dist = |a: usize, b: usize| -> f32 {
            emb.row(a)
                .iter()
                .zip(emb.row(b))
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt()
        };
        let mut pairs = Vec::new();
        for (i, &a) in ranked.iter().enumerate() {
            for &b in &ranked[i + 1..] {
                pairs.push(dist(a, b));
            }
        }
        pairs.sort_by(f32::total_cmp);
        let cut = pairs.get(pairs.len() / 2).copied().unwrap_or(0.0) * self.radius;
        let mut chosen: Vec<usize> = Vec::with_capacity(k);
        let mut skipped = Vec::new();
        for &c in &ranked {
            if chosen.len() == k {
                break;
            }
            if chosen.iter().any(|&p| dist(p, c) <= cut) {
                skipped.push(c);
            } else {
                chosen.push(c);
            }
        }
        chosen.extend(skipped.into_iter().take(k - chosen.len()));
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{ScoreKey, ScoreRank};
    use anomalymatch_core::{Embeddings, Label};

    #[test]
    fn near_duplicates_of_a_top_object_are_skipped() {
        // Items 0-2 are three views of one object (top scores), 3-5 are distinct.
        let emb = Embeddings::new(vec![0.0, 0.001, 0.002, 3.0, 6.0, 9.0], 1).unwrap();
        let scores = [0.99, 0.98, 0.97, 0.9, 0.8, 0.7];
        let labels = [Label::Unknown; 6];
        let input = QueryInput {
            scores: &scores,
            embeddings: Some(&emb),
            labels: &labels,
        };
        let top = ScoreRank::new(ScoreKey::MostAnomalous);
        assert_eq!(top.select(&input, 3, 0).unwrap(), [0, 1, 2]);
        let dedup = Deduplicated::new(top, 0.1).unwrap();
        assert_eq!(dedup.select(&input, 3, 0).unwrap(), [0, 3, 4]);
        // Asking for everything still returns every candidate once.
        assert_eq!(dedup.select(&input, 6, 0).unwrap().len(), 6);
        assert!(Deduplicated::new(ScoreRank::new(ScoreKey::MostAnomalous), 0.0).is_err());
    }
}
