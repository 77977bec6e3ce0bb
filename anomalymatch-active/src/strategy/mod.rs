//! Query strategies: which unlabelled items to show the expert next.

mod dedup;
mod diversity;
mod mix;
mod random;
mod score_based;

pub use dedup::Deduplicated;
pub use diversity::KCenterGreedy;
pub use mix::Mix;
pub use random::RandomQuery;
pub use score_based::{ScoreKey, ScoreRank};

use crate::error::{ActiveError, Result};
use anomalymatch_core::QueryStrategy;

/// Names accepted by [`by_name`], besides `mix:NAME=WEIGHT,...`.
pub const STRATEGY_NAMES: [&str; 9] = [
    "top",
    "nominal",
    "mean",
    "median",
    "uncertainty",
    "margin",
    "entropy",
    "random",
    "diverse",
];

/// Builds a strategy from its command-line name, e.g. `top`, `uncertainty`, or
/// `mix:top=0.7,uncertainty=0.2,diverse=0.1`.
pub fn by_name(spec: &str) -> Result<Box<dyn QueryStrategy + Send + Sync>> {
    if let Some(parts) = spec.strip_prefix("mix:") {
        let mut list: Vec<(Box<dyn QueryStrategy + Send + Sync>, f64)> = Vec::new();
        for part in parts.split(',') {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| ActiveError::UnknownStrategy(spec.to_string()))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .map_err(|_| ActiveError::UnknownStrategy(spec.to_string()))?;
            list.push((single(name.trim())?, weight));
        }
        return Ok(Box::new(Mix::new(list)?));
    }
    single(spec)
}

fn single(name: &str) -> Result<Box<dyn QueryStrategy + Send + Sync>> {
    let rank = |key| -> Box<dyn QueryStrategy + Send + Sync> { Box::new(ScoreRank::new(key)) };
    Ok(match name {
        "top" => rank(ScoreKey::MostAnomalous),
        "nominal" => rank(ScoreKey::MostNominal),
        "mean" => rank(ScoreKey::ClosestToMean),
        "median" => rank(ScoreKey::ClosestToMedian),
        "uncertainty" => rank(ScoreKey::Uncertainty { threshold: 0.5 }),
        "margin" => rank(ScoreKey::Margin),
        "entropy" => rank(ScoreKey::Entropy),
        "random" => Box::new(RandomQuery),
        "diverse" => Box::new(KCenterGreedy),
        other => return Err(ActiveError::UnknownStrategy(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_and_unknown_names_fail() {
        for n in STRATEGY_NAMES {
            assert_eq!(by_name(n).unwrap().name(), n);
        }
        let m = by_name("mix:top=0.7,uncertainty=0.2,diverse=0.1").unwrap();
        assert!(m.name().starts_with("mix:top=0.70"));
        assert!(by_name("best").is_err());
        assert!(by_name("mix:top").is_err());
        assert!(by_name("mix:top=x").is_err());
    }
}
