//! The query-strategy trait: which unlabelled items to show the expert next.

use crate::error::{Error, Result};
use crate::label::Label;

/// Row-major embeddings `[n, dim]`, one row per pool item.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    data: Vec<f32>,
    dim: usize,
}

impl Embeddings {
    /// Wraps `data` of `n * dim` values.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!(
                "{} values is not a whole number of {dim}-wide rows",
                data.len()
            )));
        }
        Ok(Embeddings { data, dim })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding of item `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// What a query strategy sees of the pool: one entry per item in each slice.
#[derive(Debug, Clone, Copy)]
pub struct QueryInput<'a> {
    /// Anomaly score per item (probability of `anomaly`, higher is more anomalous).
    pub scores: &'a [f32],
    /// Backbone embeddings per item, where the model provides them.
    pub embeddings: Option<&'a Embeddings>,
    /// Current label per item: the labelled images take part too (a diversity query starts
    /// from them), and only `Unknown` items may be chosen.
    pub labels: &'a [Label],
}

impl QueryInput<'_> {
    /// Checks that the slices agree in length.
    pub fn validate(&self) -> Result<()> {
        let n = self.scores.len();
        if self.labels.len() != n || self.embeddings.is_some_and(|e| e.len() != n) {
            return Err(Error::Shape(format!(
                "query input has {n} scores, {} labels and {} embeddings",
                self.labels.len(),
                self.embeddings.map_or(0, |e| e.len())
            )));
        }
        Ok(())
    }

    /// Indices of the items still unlabelled.
    pub fn candidates(&self) -> impl Iterator<Item = usize> + '_ {
        self.labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == Label::Unknown)
            .map(|(i, _)| i)
    }
}

/// Chooses which unlabelled items an expert should label next.
pub trait QueryStrategy {
    /// A short name for reports and command-line options.
    fn name(&self) -> &str;

    /// True when [`QueryStrategy::select`] needs [`QueryInput::embeddings`]; callers skip the
    /// embedding pass otherwise.
    fn needs_embeddings(&self) -> bool {
        false
    }

    /// Up to `k` distinct indices of `Unknown` items, most wanted first; fewer when fewer are
    /// unlabelled. `seed` drives any randomness.
    fn select(&self, input: &QueryInput<'_>, k: usize, seed: u64) -> Result<Vec<usize>>;
}
