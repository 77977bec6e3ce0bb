//! A simulated expert that answers from ground truth: benchmarks and tests.

use anomalymatch_core::rng::item_rng;
use anomalymatch_core::{Answer, Candidate, Label, Oracle, OracleOutcome, Result};
use rand::RngExt;
use std::collections::HashMap;

/// Answers with the true label of each candidate, optionally flipped with probability
/// `noise` (a tired expert), and optionally stops once it has given `quota` labels of each
/// class (the GZ1 protocol: the 10 highest-ranked true normals and true anomalies).
#[derive(Debug, Clone)]
pub struct SimulatedExpert {
    truth: HashMap<String, Label>,
    noise: f64,
    quota: Option<usize>,
    /// Labels per class already given in the current cycle by an earlier process, counted
    /// against the quota of the next call only.
    carried: [usize; 2],
    seed: u64,
    asked: u64,
}

impl SimulatedExpert {
    /// An expert that knows `truth` (image name to label) and never errs.
    pub fn new(truth: HashMap<String, Label>) -> Self {
        SimulatedExpert {
            truth,
            noise: 0.0,
            quota: None,
            carried: [0; 2],
            seed: 0,
            asked: 0,
        }
    }

    /// Flips each answer with probability `noise` in [0, 1], seeded.
    pub fn with_noise(mut self, noise: f64, seed: u64) -> Self {
        self.noise = noise.clamp(0.0, 1.0);
        self.seed = seed;
        self
    }

    /// Labels candidates in order until it has given `per_class` of each class, skipping the rest.
    pub fn with_quota(mut self, per_class: usize) -> Self {
        self.quota = Some(per_class);
        self
    }

    /// Counts `names`, answered in the current cycle before a resume, against the quota of
    /// the next call, so that a resumed cycle labels no more than an uninterrupted one.
    pub fn with_answered<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        for n in names {
            if let Some(c) = self.truth.get(n).and_then(|l| l.class_index()) {
                self.carried[c as usize] += 1;
            }
        }
        self
    }
}

impl Oracle for SimulatedExpert {
    fn label(
        &mut self,
        candidates: &[Candidate],
        record: &mut dyn FnMut(Answer) -> Result<()>,
    ) -> Result<OracleOutcome> {
        let mut given = std::mem::take(&mut self.carried);
        for c in candidates {
            let Some(&truth) = self.truth.get(&c.name) else {
                // The expert has not seen this object: a skip, as a person would.
                continue;
            };
            let Some(class) = truth.class_index() else {
                continue;
            };
            if self.quota.is_some_and(|q| given[class as usize] >= q) {
                continue;
            }
            self.asked += 1;
            let mut label = truth;
            if self.noise > 0.0
                && item_rng(self.seed, 0x6e6f6973, self.asked).random::<f64>() < self.noise
            {
                label = if truth == Label::Anomaly {
                    Label::Normal
                } else {
                    Label::Anomaly
                };
            }
            given[class as usize] += 1;
            record(Answer::Label {
                rank: c.rank,
                label,
            })?;
            if self.quota.is_some_and(|q| given.iter().all(|&g| g >= q)) {
                break;
            }
        }
        Ok(OracleOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(names: &[&str]) -> Vec<Candidate> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Candidate {
                rank: i,
                name: n.to_string(),
                score: 1.0 - i as f32 / 10.0,
                path: None,
            })
            .collect()
    }

    fn truth() -> HashMap<String, Label> {
        [
            ("a", Label::Anomaly),
            ("b", Label::Normal),
            ("c", Label::Normal),
            ("d", Label::Anomaly),
        ]
        .into_iter()
        .map(|(n, l)| (n.to_string(), l))
        .collect()
    }

    fn answers(o: &mut SimulatedExpert, c: &[Candidate]) -> Vec<(usize, Label)> {
        let mut out = Vec::new();
        o.label(c, &mut |a| {
            if let Answer::Label { rank, label } = a {
                out.push((rank, label));
            }
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn answers_truth_and_skips_unknown_names() {
        let mut o = SimulatedExpert::new(truth());
        let got = answers(&mut o, &cands(&["b", "zzz", "a"]));
        assert_eq!(got, [(0, Label::Normal), (2, Label::Anomaly)]);
    }

    #[test]
    fn quota_takes_the_first_of_each_class() {
        let mut o = SimulatedExpert::new(truth()).with_quota(1);
        let got = answers(&mut o, &cands(&["b", "c", "a", "d"]));
        assert_eq!(got, [(0, Label::Normal), (2, Label::Anomaly)]);
    }

    #[test]
    fn noise_flips_about_the_asked_share() {
        let many: HashMap<String, Label> = (0..2000)
            .map(|i| (format!("n{i}"), Label::Normal))
            .collect();
        let names: Vec<String> = (0..2000).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let mut o = SimulatedExpert::new(many).with_noise(0.1, 3);
        let flipped = answers(&mut o, &cands(&refs))
            .iter()
            .filter(|(_, l)| *l == Label::Anomaly)
            .count();
        assert!((150..250).contains(&flipped), "{flipped}");
    }

    #[test]
    fn answers_before_a_resume_count_against_the_quota() {
        let truth: HashMap<String, Label> = [("a", Label::Anomaly), ("b", Label::Anomaly)]
            .into_iter()
            .chain([("n", Label::Normal), ("m", Label::Normal)])
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        // "a" was labelled before the resume: one anomaly is left of a quota of one.
        let mut e = SimulatedExpert::new(truth)
            .with_quota(1)
            .with_answered(["a"]);
        let mut got = Vec::new();
        e.label(&cands(&["b", "n", "m"]), &mut |a| {
            got.push(a);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        // The next cycle has its whole quota again.
        got.clear();
        e.label(&cands(&["b", "n"]), &mut |a| {
            got.push(a);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
    }
}
