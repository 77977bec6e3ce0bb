//! The `[active]` section: how many cycles, how many candidates per cycle, and which query
//! strategy picks them. Checked, it builds the strategy.

use crate::error::{ActiveError, Result};
use crate::strategy::by_name;
use anomalymatch_core::config::{check_range, key};
use anomalymatch_core::{Build, Check, Checked, QueryStrategy};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Active-learning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActiveConfig {
    /// Train-score-label cycles of a session.
    pub cycles: usize,
    /// Candidates shown to the oracle per cycle.
    pub queries_per_cycle: usize,
    /// Query strategy: a name of [`crate::strategy::STRATEGY_NAMES`] or
    /// `mix:NAME=WEIGHT,...`.
    pub query: String,
    /// Who labels: `terminal`, `file:ANSWERS.csv` or `simulated` (from a ground-truth file
    /// the application names).
    pub oracle: String,
    /// Scores are the mean of this many EMA models: the current cycle's and those that
    /// ended the cycles before it (1: the current one alone). It costs only scoring.
    pub ensemble: usize,
}

/// Which oracle [`ActiveConfig::oracle`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OracleSpec {
    /// A person at the terminal ([`crate::TerminalOracle`]).
    Terminal,
    /// Answers from a `filename,label` file ([`crate::FileOracle`]).
    File(PathBuf),
    /// Ground truth ([`crate::SimulatedExpert`]).
    Simulated,
}

impl std::str::FromStr for OracleSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "terminal" => Ok(OracleSpec::Terminal),
            "simulated" => Ok(OracleSpec::Simulated),
            other => match other.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(OracleSpec::File(path.into())),
                _ => Err(format!(
                    "unknown oracle {other:?} (expected terminal, file:ANSWERS.csv or simulated)"
                )),
            },
        }
    }
}

impl Default for ActiveConfig {
    fn default() -> Self {
        ActiveConfig {
            cycles: 3,
            queries_per_cycle: 20,
            query: "top".into(),
            oracle: "terminal".into(),
            ensemble: 1,
        }
    }
}

impl Check for ActiveConfig {
    fn check_into(&self, prefix: &str, errors: &mut Vec<String>) {
        check_range(errors, key(prefix, "cycles"), self.cycles, 1, 10_000);
        check_range(
            errors,
            key(prefix, "queries_per_cycle"),
            self.queries_per_cycle,
            1,
            1_000_000,
        );
        check_range(errors, key(prefix, "ensemble"), self.ensemble, 1, 100);
        if let Err(e) = by_name(&self.query) {
            errors.push(format!("{}: {e}", key(prefix, "query")));
        }
        if let Err(e) = self.oracle.parse::<OracleSpec>() {
            errors.push(format!("{}: {e}", key(prefix, "oracle")));
        }
    }
}

impl Build<()> for ActiveConfig {
    type Output = Box<dyn QueryStrategy + Send + Sync>;
    type Error = ActiveError;

    fn build_checked(config: &Checked<Self>, _: ()) -> Result<Self::Output> {
        by_name(&config.query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_are_checked_before_any_work() {
        let mut errors = Vec::new();
        ActiveConfig {
            query: "best".into(),
            cycles: 0,
            ..ActiveConfig::default()
        }
        .check_into("active", &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("active.cycles:"), "{errors:?}");
        assert!(
            errors[1].contains("active.query") && errors[1].contains("best"),
            "{errors:?}"
        );
        assert_eq!(
            "file:answers.csv".parse(),
            Ok(OracleSpec::File("answers.csv".into()))
        );
        assert!("file:".parse::<OracleSpec>().is_err());
        let built = ActiveConfig::default().check().unwrap().build(()).unwrap();
        assert_eq!(built.name(), "top");
    }
}
