//! An isolation forest (Liu, Ting and Zhou, "Isolation Forest", ICDM 2008): points that random
//! axis-aligned splits isolate in few steps are anomalous. Seeded, so that benchmark figures
//! repeat; the two crates on crates.io draw from `thread_rng` and cannot be.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// Trees in the forest, and points drawn for each (the paper's defaults).
const TREES: usize = 100;
const SAMPLE: usize = 256;

enum Node {
    Leaf {
        size: usize,
    },
    Split {
        dim: usize,
        value: f64,
        below: usize,
        above: usize,
    },
}

/// A fitted forest over points of one dimension.
pub struct IsolationForest {
    trees: Vec<Vec<Node>>,
    sample: usize,
}

impl IsolationForest {
    /// Grows the trees, each from its own random sample of `points` (rows of equal length).
    pub fn fit(points: &[&[f64]], seed: u64) -> IsolationForest {
        let mut rng = StdRng::seed_from_u64(seed);
        let sample = SAMPLE.min(points.len());
        // Deeper than the average path of a sample isolates nothing that counts.
        let max_depth = (sample.max(2) as f64).log2().ceil() as usize;
        let mut order: Vec<usize> = (0..points.len()).collect();
        let trees = (0..TREES)
            .map(|_| {
                order.shuffle(&mut rng);
                let mut rows = order[..sample].to_vec();
                let mut nodes = Vec::new();
                grow(points, &mut rows, 0, max_depth, &mut rng, &mut nodes);
                nodes
            })
            .collect();
        IsolationForest { trees, sample }
    }

    /// The anomaly score of `point`, in (0, 1]: above 0.5 is shorter than average to isolate.
    pub fn score(&self, point: &[f64]) -> f64 {
        let total: f64 = self.trees.iter().map(|t| path_length(t, point)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / average_path(self.sample))
    }
}

/// Grows the subtree of `rows` and returns its index in `nodes`.
fn grow(
    points: &[&[f64]],
    rows: &mut [usize],
    depth: usize,
    max_depth: usize,
    rng: &mut StdRng,
    nodes: &mut Vec<Node>,
) -> usize {
    let leaf = |nodes: &mut Vec<Node>, size| {
        nodes.push(Node::Leaf { size });
        nodes.len() - 1
    };
    if depth >= max_depth || rows.len() <= 1 {
        return leaf(nodes, rows.len());
    }
    let dim = rng.random_range(0..points[rows[0]].len());
    let (low, high) = rows
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &r| {
            (l.min(points[r][dim]), h.max(points[r][dim]))
        });
    if low >= high {
        return leaf(nodes, rows.len());
    }
    let value = rng.random_range(low..high);
    let mut split = 0;
    for i in 0..rows.len() {
        if points[rows[i]][dim] < value {
            rows.swap(i, split);
            split += 1;
        }
    }
    let at = nodes.len();
    nodes.push(Node::Leaf { size: 0 }); // replaced once both sides exist
    let (left, right) = rows.split_at_mut(split);
    let below = grow(points, left, depth + 1, max_depth, rng, nodes);
    let above = grow(points, right, depth + 1, max_depth, rng, nodes);
    nodes[at] = Node::Split {
        dim,
        value,
        below,
        above,
    };
    at
}

/// Splits from the root to `point`'s leaf, plus the expected path of the points left there.
fn path_length(nodes: &[Node], point: &[f64]) -> f64 {
    let (mut at, mut depth) = (0, 0.0);
    loop {
        match nodes[at] {
            Node::Leaf { size } => return depth + average_path(size),
            Node::Split {
                dim,
                value,
                below,
                above,
            } => {
                at = if point[dim] < value { below } else { above };
                depth += 1.0;
            }
        }
    }
}

/// The average path length of an unsuccessful search in a binary search tree of `n` points.
fn average_path(n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let n = n as f64;
    let harmonic = (n - 1.0).ln() + 0.577_215_664_901_532_9;
    2.0 * harmonic - 2.0 * (n - 1.0) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outlier_scores_highest_and_the_seed_repeats() {
        // A grid of 400 points and one far away.
        let mut points: Vec<Vec<f64>> = (0..400)
            .map(|i| vec![f64::from(i % 20), f64::from(i / 20)])
            .collect();
        points.push(vec![60.0, -40.0]);
        let rows: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
        let forest = IsolationForest::fit(&rows, 7);
        let scores: Vec<f64> = rows.iter().map(|p| forest.score(p)).collect();
        let top = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(top, Some(400));
        assert!(
            scores[400] > 0.6 && scores[210] < 0.5,
            "{} {}",
            scores[400],
            scores[210]
        );
        let again = IsolationForest::fit(&rows, 7);
        assert_eq!(again.score(rows[3]), scores[3]);
    }
}
