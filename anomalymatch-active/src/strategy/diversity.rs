//! Diversity sampling: k-center greedy on backbone embeddings (Sener & Savarese 2018, "Active
//! Learning for Convolutional Neural Networks: A Core-Set Approach", arXiv 1708.00489).

use anomalymatch_core::{Embeddings, Error, QueryInput, QueryStrategy, Result};

/// Repeatedly picks the unlabelled item farthest from everything labelled or already picked,
/// so a batch covers the embedding space instead of one dense region.
///
/// With no labelled item to start from, the first pick is the highest-scored candidate
/// (deterministic, and the most useful single item for anomaly search).
#[derive(Debug, Clone, Copy, Default)]
pub struct KCenterGreedy;

impl QueryStrategy for KCenterGreedy {
    fn name(&self) -> &str {
        "diverse"
    }

    fn needs_embeddings(&self) -> bool {
        true
    }

    fn select(&self, input: &QueryInput<'_>, k: usize, _seed: u64) -> Result<Vec<usize>> {
        input.validate()?;
        let emb = input.embeddings.ok_or_else(|| {
            Error::InvalidArgument("diverse query needs embeddings from the model".into())
        })?;
        let candidates: Vec<usize> = input.candidates().collect();
        if candidates.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let centres: Vec<usize> = (0..input.labels.len())
            .filter(|&i| input.labels[i].is_known())
            .collect();
        let mut nearest = vec![f32::INFINITY; candidates.len()];
        let mut chosen = Vec::with_capacity(k.min(candidates.len()));
        for &c in &centres {
            update_nearest(emb, &candidates, &mut nearest, c);
        }
        while chosen.len() < k.min(candidates.len()) {
            let next = if centres.is_empty() && chosen.is_empty() {
                (0..candidates.len())
                    .max_by(|&a, &b| {
                        input.scores[candidates[a]]
                            .total_cmp(&input.scores[candidates[b]])
                            .then(b.cmp(&a))
                    })
                    .unwrap_or(0)
            } else {
                // Farthest from its nearest centre; ties go to the lower index.
                (0..candidates.len())
                    .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then(b.cmp(&a)))
                    .unwrap_or(0)
            };
            chosen.push(candidates[next]);
            nearest[next] = f32::NEG_INFINITY;
            update_nearest(emb, &candidates, &mut nearest, candidates[next]);
        }
        Ok(chosen)
    }
}

fn update_nearest(emb: &Embeddings, candidates: &[usize], nearest: &mut [f32], centre: usize) {
    let c = emb.row(centre);
    for (j, &i) in candidates.iter().enumerate() {
        if nearest[j] == f32::NEG_INFINITY {
            continue;
        }
        let d: f32 = emb
            .row(i)
            .iter()
            .zip(c)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        nearest[j] = nearest[j].min(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anomalymatch_core::Label;

    #[test]
    fn spreads_picks_across_clusters() {
        // Two tight clusters around 0 and 10, plus one point at 5.
        let emb = Embeddings::new(vec![0.0, 0.1, 0.2, 10.0, 10.1, 5.0], 1).unwrap();
        let scores = [0.9, 0.8, 0.7, 0.1, 0.2, 0.3];
        let labels = [Label::Unknown; 6];
        let input = QueryInput {
            scores: &scores,
            embeddings: Some(&emb),
            labels: &labels,
        };
        // Start from the top score (idx 0 at 0.0), then the farthest (10.1 -> idx 4), then 5.0.
        assert_eq!(KCenterGreedy.select(&input, 3, 0).unwrap(), [0, 4, 5]);
    }

    #[test]
    fn labelled_items_are_centres_and_missing_embeddings_error() {
        let emb = Embeddings::new(vec![0.0, 1.0, 2.0, 9.0], 1).unwrap();
        let scores = [0.0; 4];
        let labels = [
            Label::Normal,
            Label::Unknown,
            Label::Unknown,
            Label::Unknown,
        ];
        let input = QueryInput {
            scores: &scores,
            embeddings: Some(&emb),
            labels: &labels,
        };
        assert_eq!(KCenterGreedy.select(&input, 2, 0).unwrap(), [3, 2]);
        assert_eq!(KCenterGreedy.select(&input, 9, 0).unwrap().len(), 3);
        let no_emb = QueryInput {
            embeddings: None,
            ..input
        };
        assert!(KCenterGreedy.select(&no_emb, 1, 0).is_err());
    }
}
