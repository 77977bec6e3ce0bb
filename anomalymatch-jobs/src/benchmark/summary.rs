//! Results files summarised: one row per setting (commit, preset, changed keys, query or
//! baseline, command), with the mean and spread of each metric over the seeds at one cycle.
//! `anomalymatch report` prints these rows as the README's tables.

use super::record::read_lines;
use crate::error::{JobError, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The keys whose values make two lines the same setting.
const SETTING_KEYS: [&str; 6] = [
    "commit", "preset", "changed", "query", "baseline", "command",
];

/// A metric over the seeds of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Mean over the seeds.
    pub mean: f64,
    /// Standard deviation (population) over the seeds.
    pub sd: f64,
    /// Seeds that gave the metric.
    pub n: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
        Spread {
            mean,
            sd: var.sqrt(),
            n,
        }
    }
}

/// One setting at one cycle.
#[derive(Debug, Clone)]
pub struct Row {
    /// The setting's first line (its commit, preset, changed keys, command).
    pub first: Value,
    /// The seeds that reached the cycle.
    pub seeds: Vec<u64>,
    /// The cycle shown.
    pub cycle: u64,
    /// AUROC, AUPRC and precision in the top 1%, over the seeds.
    pub auroc: Spread,
    /// See [`Row::auroc`].
    pub auprc: Spread,
    /// See [`Row::auroc`].
    pub p_at_1pct: Spread,
    /// Fewest and most wall seconds a seed took up to the cycle, where recorded.
    pub seconds: Option<(f64, f64)>,
}

/// The rows of some results files, in the order their settings first appear.
#[derive(Debug, Clone)]
pub struct Summary {
    /// One per setting.
    pub rows: Vec<Row>,
    /// Lines that are not JSON objects or lack a seed or a cycle.
    pub unreadable: usize,
}

/// Summarises `files` at `cycle`, or at the last cycle every seed of a row reached.
pub fn summarise(files: &[PathBuf], cycle: Option<u64>) -> Result<Summary> {
    type Seeds = BTreeMap<u64, BTreeMap<u64, Value>>;
    let mut order: Vec<String> = Vec::new();
    let mut settings: BTreeMap<String, (Value, Seeds)> = BTreeMap::new();
    let mut unreadable = 0;
    for f in files {
        if !f.is_file() {
            let message = format!("{}: no such results file", f.display());
            return Err(JobError::Failed(message));
        }
        let (lines, bad) = read_lines(f)?;
        unreadable += bad;
        for l in lines {
            let num = |k: &str| l.get(k).and_then(Value::as_u64);
            let (Some(seed), Some(c)) = (num("seed"), num("cycle")) else {
                unreadable += 1;
                continue;
            };
            let key = SETTING_KEYS
                .map(|k| l.get(k).map_or(String::new(), Value::to_string))
                .join("\u{1}");
            if !settings.contains_key(&key) {
                order.push(key.clone());
            }
            let entry = settings
                .entry(key)
                .or_insert_with(|| (l.clone(), Seeds::new()));
            entry.1.entry(seed).or_default().insert(c, l);
        }
    }
    let rows = order
        .iter()
        .filter_map(|key| {
            let (first, by_seed) = &settings[key];
            let reached = by_seed
                .values()
                .filter_map(|c| c.keys().max().copied())
                .min();
            row(first, by_seed, cycle.or(reached)?)
        })
        .collect();
    Ok(Summary { rows, unreadable })
}

/// The row of one setting at `cycle`, or `None` when no seed reached it.
fn row(first: &Value, by_seed: &BTreeMap<u64, BTreeMap<u64, Value>>, cycle: u64) -> Option<Row> {
    let at: Vec<(u64, &Value)> = by_seed
        .iter()
        .filter_map(|(s, m)| Some((*s, m.get(&cycle)?)))
        .collect();
    if at.is_empty() {
        return None;
    }
    let values =
        |k: &str| -> Vec<f64> { at.iter().filter_map(|(_, l)| l.get(k)?.as_f64()).collect() };
    let secs = values("seed_s");
    let seconds = (!secs.is_empty()).then(|| {
        let lo = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = secs.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    });
    Some(Row {
        first: first.clone(),
        seeds: at.iter().map(|(s, _)| *s).collect(),
        cycle,
        auroc: Spread::of(&values("auroc")),
        auprc: Spread::of(&values("auprc")),
        p_at_1pct: Spread::of(&values("p_at_1pct")),
        seconds,
    })
}
