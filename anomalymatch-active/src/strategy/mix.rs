//! A configurable mix of strategies, e.g. 70% top score, 20% uncertain, 10% diverse.

use anomalymatch_core::rng::derive_seed;
use anomalymatch_core::{Error, Label, QueryInput, QueryStrategy, Result};

/// Splits each query among weighted strategies; each part excludes what earlier parts chose,
/// and a part that runs short hands its remainder to the next.
pub struct Mix {
    parts: Vec<(Box<dyn QueryStrategy + Send + Sync>, f64)>,
    name: String,
}

impl Mix {
    /// A mix of `(strategy, weight)` parts, weights positive (they need not sum to one).
    pub fn new(parts: Vec<(Box<dyn QueryStrategy + Send + Sync>, f64)>) -> Result<Mix> {
        if parts.is_empty() || parts.iter().any(|(_, w)| !(*w > 0.0 && w.is_finite())) {
            return Err(Error::InvalidArgument(
                "a mix needs at least one part and positive weights".into(),
            ));
        }
        let total: f64 = parts.iter().map(|(_, w)| w).sum();
        let name = parts
            .iter()
            .map(|(s, w)| format!("{}={:.2}", s.name(), w / total))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Mix {
            parts,
            name: format!("mix:{name}"),
        })
    }

    /// How many of `k` each part gets: proportional, rounded by largest remainder.
    fn quotas(&self, k: usize) -> Vec<usize> {
        let total: f64 = self.parts.iter().map(|(_, w)| w).sum();
        let exact: Vec<f64> = self
            .parts
            .iter()
            .map(|(_, w)| w / total * k as f64)
            .collect();
        let mut quotas: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|&a, &b| {
            (exact[b] - exact[b].floor())
                .total_cmp(&(exact[a] - exact[a].floor()))
                .then(a.cmp(&b))
        });
        let missing = k - quotas.iter().sum::<usize>();
        for &i in order.iter().take(missing) {
            quotas[i] += 1;
        }
        quotas
    }
}

impl QueryStrategy for Mix {
    fn name(&self) -> &str {
        &self.name
    }

    fn needs_embeddings(&self) -> bool {
        self.parts.iter().any(|(s, _)| s.needs_embeddings())
    }

    fn select(&self, input: &QueryInput<'_>, k: usize, seed: u64) -> Result<Vec<usize>> {
        input.validate()?;
        let mut labels: Vec<Label> = input.labels.to_vec();
        let mut chosen = Vec::with_capacity(k);
        let mut carry = 0;
        for (part, ((strategy, _), quota)) in self.parts.iter().zip(self.quotas(k)).enumerate() {
            let want = quota + carry;
            let view = QueryInput {
                labels: &labels,
                ..*input
            };
            let picked = strategy.select(&view, want, derive_seed(seed, 0x6d6978, part as u64))?;
            carry = want - picked.len();
            for i in picked {
                // Marking a pick as labelled hides it from the following parts.
                labels[i] = Label::Normal;
                chosen.push(i);
            }
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{RandomQuery, ScoreKey, ScoreRank};

    fn mix(weights: &[f64]) -> Mix {
        let parts: Vec<(Box<dyn QueryStrategy + Send + Sync>, f64)> = vec![
            (
                Box::new(ScoreRank::new(ScoreKey::MostAnomalous)),
                weights[0],
            ),
            (
                Box::new(ScoreRank::new(ScoreKey::Uncertainty { threshold: 0.5 })),
                weights[1],
            ),
            (Box::new(RandomQuery), weights[2]),
        ];
        Mix::new(parts).unwrap()
    }

    #[test]
    fn quotas_follow_weights() {
        assert_eq!(mix(&[0.7, 0.2, 0.1]).quotas(10), [7, 2, 1]);
        assert_eq!(mix(&[1.0, 1.0, 1.0]).quotas(10), [4, 3, 3]);
        assert_eq!(mix(&[0.7, 0.2, 0.1]).quotas(0), [0, 0, 0]);
    }

    #[test]
    fn parts_do_not_overlap_and_shortfalls_carry_over() {
        let scores: Vec<f32> = (0..20).map(|i| i as f32 / 20.0).collect();
        let labels = vec![Label::Unknown; 20];
        let input = QueryInput {
            scores: &scores,
            embeddings: None,
            labels: &labels,
        };
        let m = mix(&[0.5, 0.3, 0.2]);
        let got = m.select(&input, 10, 5).unwrap();
        assert_eq!(&got[..5], &[19, 18, 17, 16, 15]);
        // Uncertainty: 0.5 itself, then 0.45 and 0.55 (equally far; lower index first).
        assert_eq!(&got[5..8], &[10, 9, 11]);
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        // k above the pool: every candidate exactly once.
        let all = m.select(&input, 50, 5).unwrap();
        assert_eq!(all.len(), 20);
        assert!(Mix::new(Vec::new()).is_err());
    }
}
