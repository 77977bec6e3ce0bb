//! An oracle that reads what an expert wrote into a label file, for people who prefer to label
//! in a spreadsheet or another viewer.

use anomalymatch_core::{Answer, Candidate, LabelTable, Oracle, OracleOutcome, Result};
use std::path::PathBuf;

/// Answers each candidate whose file name appears in a `filename,label` CSV; the others are
/// skipped and stay unlabelled.
///
/// The file is read afresh on every call, so an expert can keep adding rows between cycles.
#[derive(Debug, Clone)]
pub struct FileOracle {
    path: PathBuf,
}

impl FileOracle {
    /// An oracle reading `path` (same format as the original's `labeled_data.csv`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileOracle { path: path.into() }
    }
}

impl Oracle for FileOracle {
    fn label(
        &mut self,
        candidates: &[Candidate],
        record: &mut dyn FnMut(Answer) -> Result<()>,
    ) -> Result<OracleOutcome> {
        let table = LabelTable::read(&self.path)?;
        for c in candidates {
            let label = table.get(&c.name);
            if label.is_known() {
                record(Answer::Label {
                    rank: c.rank,
                    label,
                })?;
            }
        }
        Ok(OracleOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anomalymatch_core::Label;

    #[test]
    fn answers_listed_candidates_only_and_names_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("expert.csv");
        std::fs::write(
            &p,
            "filename,label,comment\na.png,anomaly,tidal tail\nb.png,normal,\n",
        )
        .unwrap();
        let cands: Vec<Candidate> = ["b.png", "x.png", "a.png"]
            .iter()
            .enumerate()
            .map(|(i, n)| Candidate {
                rank: i,
                name: n.to_string(),
                score: 0.5,
                path: None,
            })
            .collect();
        let mut got = Vec::new();
        FileOracle::new(&p)
            .label(&cands, &mut |a| {
                got.push(a);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            got,
            [
                Answer::Label {
                    rank: 0,
                    label: Label::Normal
                },
                Answer::Label {
                    rank: 2,
                    label: Label::Anomaly
                },
            ]
        );
        std::fs::write(&p, "filename,label\na.png,merger\n").unwrap();
        let msg = FileOracle::new(&p)
            .label(&cands, &mut |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("expert.csv:2"), "{msg}");
    }
}
