//! Baselines of the benchmark: rankers on the frozen embeddings of the configured backbone
//! with its pretrained weights, run through the protocol as FixMatch is (the same start
//! labels, expert, cycles and pool metrics), so that the table shows what training buys.
//! Embeddings are standardised per dimension over all images, which uses no label.
//!
//! - `probe`: L2-regularised logistic regression on the labelled embeddings (linfa-logistic).
//! - `knn`: nearness to the labelled anomalies, i.e. minus the distance to the nearest one
//!   (linfa-nn).
//! - `iforest`: an isolation forest on the first principal components (linfa-reduction) of
//!   every image, as Astronomaly ranks; it ignores the labels.
//!
//! One baseline trains: `supervised` is the same network fine-tuned on the labelled images
//! alone (`train.uratio = 0`), with the same augmentation and iterations, through the same
//! session as FixMatch; the difference between the two is what the unlabelled pool adds.

use super::Data;
use super::isolation_forest::IsolationForest;
use crate::components;
use crate::config::Settings;
use crate::error::{JobError, Result};
use crate::report::Report;
use anomalymatch_core::{FolderSource, Label, RankingMetrics, ScoreOptions, Scorer};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use linfa_nn::distance::{Distance, L2Dist};
use linfa_nn::{LinearSearch, NearestNeighbour};
use linfa_reduction::Pca;
use ndarray::{Array1, Array2, Axis};
use std::collections::BTreeMap;
use std::time::Instant;

/// The configuration of the `supervised` baseline: no unlabelled image in a step.
pub fn supervised(config: &Settings) -> Result<Settings> {
    config.edited(|c| c.train.uratio = 0)
}

/// Principal components kept for the isolation forest: random axis splits in 1,280 mostly
/// uninformative dimensions isolate nothing.
const COMPONENTS: usize = 32;

/// Weight of the probe's L2 penalty (linfa's default).
const PROBE_ALPHA: f64 = 1.0;

/// Standardised embeddings of every protocol image, in `data.names` order.
pub fn embed(config: &Settings, data: &Data, report: &dyn Report) -> Result<Array2<f64>> {
    let loader = components::loader(config)?;
    let model = components::model(config, loader.spec())?;
    let mut source = FolderSource::with_names(&data.images, data.names.clone())?;
    let mut rows: Vec<f64> = Vec::new();
    let mut dim = 0;
    let mut failed = Vec::new();
    let options = ScoreOptions {
        embeddings: true,
        ..config.score.options(report.progress())
    };
    Scorer::new(&model, options).stream(&loader, &mut source, None, |chunk| {
        if let Some(e) = chunk.embeddings {
            dim = e.dim();
            rows.extend((0..e.len()).flat_map(|i| e.row(i).iter().map(|&v| f64::from(v))));
        }
        failed.extend(chunk.failed);
        Ok(())
    })?;
    if let Some(f) = failed.first() {
        return Err(JobError::Failed(format!(
            "{}: {} (the baselines need every image; {} unreadable)",
            f.origin,
            f.message,
            failed.len()
        )));
    }
    if dim == 0 {
        return Err(JobError::Failed(format!(
            "{}: the backbone gives no embedding for the baselines",
            config.model.architecture
        )));
    }
    let mut x = Array2::from_shape_vec((rows.len() / dim, dim), rows)
        .map_err(|e| JobError::Failed(format!("embeddings: {e}")))?;
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(dim));
    let sd = x.std_axis(Axis(0), 0.0).mapv(|s| s.max(1e-9));
    x -= &mean;
    x /= &sd;
    Ok(x)
}

/// One seed of baseline `name` through the protocol: a JSON line per cycle, with the keys of
/// FixMatch's lines (`train_s` is the fit).
pub fn run(
    name: &str,
    x: &Array2<f64>,
    data: &Data,
    start: &BTreeMap<String, Label>,
    config: &Settings,
    seed: u64,
    on_line: &mut dyn FnMut(&serde_json::Value),
) -> Result<Vec<serde_json::Value>> {
    let index: BTreeMap<&str, usize> = data
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut labelled: BTreeMap<usize, bool> = start
        .iter()
        .filter_map(|(n, l)| Some((*index.get(n.as_str())?, *l == Label::Anomaly)))
        .collect();
    // The forest never sees a label, so one forest serves every cycle.
    let forest = (name == "iforest").then(|| forest(x, seed)).transpose()?;
    let per_class = config.benchmark.expert_per_class;
    let mut lines = Vec::new();
    let mut found = 0;
    let started = Instant::now();
    for cycle in 1..=config.active.cycles {
        let pool: Vec<usize> = (0..x.nrows())
            .filter(|i| !labelled.contains_key(i))
            .collect();
        let t = Instant::now();
        let scores = match &forest {
            Some((reduced, f)) => pool.iter().map(|&i| f.score(&reduced[i]) as f32).collect(),
            None => fit_and_score(name, x, &labelled, &pool)?,
        };
        let seconds = t.elapsed().as_secs_f64();
        let truth: Vec<bool> = pool.iter().map(|&i| data.truth[i]).collect();
        let metrics = RankingMetrics::compute(&scores, &truth)?;
        // The protocol's expert: the highest-scored true anomalies and true normals.
        let mut order: Vec<usize> = (0..pool.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut taken = [0, 0];
        for &k in &order {
            let anomaly = truth[k];
            if taken[usize::from(anomaly)] < per_class {
                taken[usize::from(anomaly)] += 1;
                labelled.insert(pool[k], anomaly);
            }
        }
        found += taken[1];
        let m = metrics;
        let line = serde_json::json!({
            "impl": "anomalymatch-rs", "baseline": name, "seed": seed, "cycle": cycle,
            "size": config.data.size, "crop": config.data.crop, "pool": pool.len(),
            "anomalies": m.anomalies, "auroc": m.auroc, "auprc": m.average_precision,
            "p_at_1pct": m.precision_at_1pct, "train_s": seconds, "score_s": 0.0,
            "seed_s": started.elapsed().as_secs_f64(),
            "found": found, "queried_anomalies": taken[1],
            "labelled_anomalies": config.benchmark.start_anomalies + found,
        });
        on_line(&line);
        lines.push(line);
    }
    Ok(lines)
}

/// Fits `name` (probe or knn) on the labelled rows and scores the pool rows.
fn fit_and_score(
    name: &str,
    x: &Array2<f64>,
    labelled: &BTreeMap<usize, bool>,
    pool: &[usize],
) -> Result<Vec<f32>> {
    let failed = |e: &dyn std::fmt::Display| JobError::Failed(format!("baseline {name}: {e}"));
    let points = x.select(Axis(0), pool);
    match name {
        "probe" => {
            let rows: Vec<usize> = labelled.keys().copied().collect();
            let targets: Array1<bool> = labelled.values().copied().collect();
            let dataset = Dataset::new(x.select(Axis(0), &rows), targets);
            let fitted = LogisticRegression::default()
                .alpha(PROBE_ALPHA)
                .fit(&dataset)
                .map_err(|e| failed(&e))?;
            let p = fitted.predict_probabilities(&points);
            // linfa names the larger label positive; true (anomaly) is the larger.
            let flip = !fitted.labels().pos.class;
            Ok(p.iter()
                .map(|&v| if flip { 1.0 - v } else { v } as f32)
                .collect())
        }
        "knn" => {
            let anomalies: Vec<usize> = labelled
                .iter()
                .filter(|&(_, &a)| a)
                .map(|(&i, _)| i)
                .collect();
            let reference = x.select(Axis(0), &anomalies);
            let index = LinearSearch::new()
                .from_batch(&reference, L2Dist)
                .map_err(|e| failed(&e))?;
            points
                .rows()
                .into_iter()
                .map(|p| {
                    let nearest = index.k_nearest(p, 1).map_err(|e| failed(&e))?;
                    let d = nearest
                        .first()
                        .map_or(f64::INFINITY, |(q, _)| L2Dist.distance(p, q.view()));
                    Ok(-d as f32)
                })
                .collect()
        }
        other => Err(failed(&format!("no such baseline {other:?}"))),
    }
}

/// The isolation forest over the principal components of every image, and those components.
fn forest(x: &Array2<f64>, seed: u64) -> Result<(Vec<Vec<f64>>, IsolationForest)> {
    let components = COMPONENTS.min(x.ncols()).min(x.nrows());
    let pca = Pca::params(components)
        .fit(&DatasetBase::from(x.clone()))
        .map_err(|e| JobError::Failed(format!("baseline iforest: {e}")))?;
    let reduced: Array2<f64> = pca.predict(x);
    let reduced: Vec<Vec<f64>> = reduced.rows().into_iter().map(|r| r.to_vec()).collect();
    let rows: Vec<&[f64]> = reduced.iter().map(Vec::as_slice).collect();
    let forest = IsolationForest::fit(&rows, seed);
    Ok((reduced, forest))
}
