//! The ranking metrics against numbers computed by scikit-learn on the same inputs
//! (`fixtures/metrics_sklearn.json`: ties, all tied, 2% imbalance, perfect and inverted rankings,
//! 1000 images with 17 anomalies, quantised probabilities).
#![allow(clippy::unwrap_used)]

use anomalymatch_core::metrics::{
    ConfusionMatrix, RankingMetrics, auroc, average_precision, pr_auc_trapezoid,
    precision_at_fraction, precision_at_k, recall_at_fraction, recall_at_k, top_k_for_fraction,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    scores: Vec<f32>,
    truth: Vec<u8>,
    auroc: f64,
    average_precision: f64,
    pr_auc_trapezoid: f64,
    top_k: Vec<TopK>,
    top_fraction: Vec<TopFraction>,
    confusion: Vec<Confusion>,
}

#[derive(Deserialize)]
struct TopK {
    k: usize,
    precision: f64,
    recall: f64,
}

#[derive(Deserialize)]
struct TopFraction {
    fraction: f64,
    k: usize,
    precision: f64,
    recall: f64,
}

#[derive(Deserialize)]
struct Confusion {
    threshold: f32,
    tp: usize,
    fp: usize,
    tn: usize,
    #[serde(rename = "fn")]
    false_negatives: usize,
}

fn cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics_sklearn.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    fixture.cases
}

/// Relative tolerance 1e-9, absolute near zero (the inverted case has AUROC 0).
fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1e-3);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, scikit-learn {want}"
    );
}

#[test]
fn fixtures_cover_the_hard_cases() {
    let cases = cases();
    assert_eq!(cases.len(), 7);
    for c in &cases {
        assert_eq!(c.scores.len(), c.truth.len(), "{}", c.name);
    }
}

#[test]
fn areas_match_scikit_learn() {
    for c in cases() {
        let truth: Vec<bool> = c.truth.iter().map(|&t| t == 1).collect();
        let name = &c.name;
        close(
            auroc(&c.scores, &truth).unwrap(),
            c.auroc,
            &format!("{name} auroc"),
        );
        close(
            average_precision(&c.scores, &truth).unwrap(),
            c.average_precision,
            &format!("{name} average precision"),
        );
        close(
            pr_auc_trapezoid(&c.scores, &truth).unwrap(),
            c.pr_auc_trapezoid,
            &format!("{name} trapezoid"),
        );
    }
}

#[test]
fn top_of_ranking_matches_fixture() {
    for c in cases() {
        let truth: Vec<bool> = c.truth.iter().map(|&t| t == 1).collect();
        let name = &c.name;
        for t in &c.top_k {
            let what = format!("{name} k={}", t.k);
            close(
                precision_at_k(&c.scores, &truth, t.k).unwrap(),
                t.precision,
                &what,
            );
            close(
                recall_at_k(&c.scores, &truth, t.k).unwrap(),
                t.recall,
                &what,
            );
        }
        for t in &c.top_fraction {
            let what = format!("{name} fraction={}", t.fraction);
            assert_eq!(
                top_k_for_fraction(c.scores.len(), t.fraction).unwrap(),
                t.k,
                "{what}"
            );
            close(
                precision_at_fraction(&c.scores, &truth, t.fraction).unwrap(),
                t.precision,
                &what,
            );
            close(
                recall_at_fraction(&c.scores, &truth, t.fraction).unwrap(),
                t.recall,
                &what,
            );
        }
    }
}

#[test]
fn confusion_matrices_match_scikit_learn() {
    for c in cases() {
        let truth: Vec<bool> = c.truth.iter().map(|&t| t == 1).collect();
        for want in &c.confusion {
            let got = ConfusionMatrix::at_threshold(&c.scores, &truth, want.threshold).unwrap();
            assert_eq!(
                (
                    got.true_positives,
                    got.false_positives,
                    got.true_negatives,
                    got.false_negatives
                ),
                (want.tp, want.fp, want.tn, want.false_negatives),
                "{} threshold {}",
                c.name,
                want.threshold
            );
        }
    }
}

#[test]
fn ranking_metrics_agree_with_the_single_functions() {
    for c in cases() {
        let truth: Vec<bool> = c.truth.iter().map(|&t| t == 1).collect();
        let m = RankingMetrics::compute(&c.scores, &truth).unwrap();
        close(m.auroc, c.auroc, &c.name);
        close(m.average_precision, c.average_precision, &c.name);
        close(m.pr_auc_trapezoid, c.pr_auc_trapezoid, &c.name);
        let at_1pct = c.top_fraction.iter().find(|t| t.fraction == 0.01).unwrap();
        close(m.precision_at_1pct, at_1pct.precision, &c.name);
        close(m.recall_at_1pct, at_1pct.recall, &c.name);
        let at_anomalies = c.top_k.iter().find(|t| t.k == m.anomalies).unwrap();
        close(m.precision_at_anomalies, at_anomalies.precision, &c.name);
    }
}
