//! Ground-truth classes per image, such as Galaxy Zoo's `classes.csv`: a CSV with at least a
//! `filename` and a `class_name` column. Benchmarks and simulated experts read it to turn a
//! named class into anomalies and everything else into normals.

use crate::error::{Error, Result};
use crate::label::Label;
use std::collections::HashMap;
use std::path::Path;

/// The `(filename, class_name)` pairs of a class file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassTable {
    rows: Vec<(String, String)>,
}

impl ClassTable {
    /// Reads `path`; extra columns are ignored, surrounding spaces trimmed, and a missing
    /// column or short row is an error naming the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let fail = |line: u64, message: String| Error::LabelFile {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_path(path)
            .map_err(|e| fail(0, e.to_string()))?;
        let header = csv.headers().map_err(|e| fail(1, e.to_string()))?.clone();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == name)
                .ok_or_else(|| fail(1, format!("no `{name}` column")))
        };
        let (file, class) = (column("filename")?, column("class_name")?);
        let mut rows = Vec::new();
        for record in csv.records() {
            let record = record.map_err(|e| fail(0, e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            if record.iter().all(str::is_empty) {
                continue;
            }
            match (record.get(file), record.get(class)) {
                (Some(f), Some(c)) => rows.push((f.to_string(), c.to_string())),
                _ => return Err(fail(line, "short row".into())),
            }
        }
        Ok(Self { rows })
    }

    /// The `(filename, class_name)` pairs.
    pub fn rows(&self) -> &[(String, String)] {
        &self.rows
    }

    /// Filenames listed more than once with different classes, sorted; [`ClassTable::labels`]
    /// takes the last row of each, as label files do.
    pub fn conflicts(&self) -> Vec<String> {
        let mut first: HashMap<&str, &str> = HashMap::with_capacity(self.rows.len());
        let mut conflicts: Vec<String> = Vec::new();
        for (file, class) in &self.rows {
            match first.get(file.as_str()) {
                Some(seen) if seen != class => conflicts.push(file.clone()),
                Some(_) => {}
                None => {
                    first.insert(file, class);
                }
            }
        }
        conflicts.sort();
        conflicts.dedup();
        conflicts
    }

    /// Labels by filename: `anomaly_class` is [`Label::Anomaly`], the `drop` classes are left
    /// out, every other class is [`Label::Normal`].
    pub fn labels(&self, anomaly_class: &str, drop: &[String]) -> HashMap<String, Label> {
        // The last row of a file decides, even when its class is one that is dropped.
        let last: HashMap<&String, &String> = self.rows.iter().map(|(f, c)| (f, c)).collect();
        last.into_iter()
            .filter(|(_, c)| !drop.contains(c))
            .map(|(f, c)| {
                let label = if c == anomaly_class {
                    Label::Anomaly
                } else {
                    Label::Normal
                };
                (f.to_string(), label)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn table(text: &str) -> Result<ClassTable> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.csv");
        std::fs::write(&path, text).unwrap();
        ClassTable::read(&path)
    }

    #[test]
    fn reads_named_columns_and_maps_classes() {
        let t = table(
            "objid, class_name ,filename\n1,merger,a.jpg\n2,uncertain,b.jpg\n\n3,spiral,c.jpg\n",
        )
        .unwrap();
        assert_eq!(t.rows().len(), 3);
        let labels = t.labels("merger", &["uncertain".to_string()]);
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["a.jpg"], Label::Anomaly);
        assert_eq!(labels["c.jpg"], Label::Normal);
        assert_eq!(t.labels("merger", &[])["b.jpg"], Label::Normal);
    }

    #[test]
    fn a_file_listed_twice_is_named_and_its_last_row_decides() {
        let t = table(
            "filename,class_name\na.jpg,merger\nb.jpg,spiral\na.jpg,uncertain\nb.jpg,spiral\n",
        )
        .unwrap();
        assert_eq!(t.conflicts(), ["a.jpg"]);
        let labels = t.labels("merger", &["uncertain".to_string()]);
        assert!(!labels.contains_key("a.jpg"), "{labels:?}");
        assert_eq!(labels["b.jpg"], Label::Normal);
    }

    #[test]
    fn missing_column_and_short_row_name_the_file() {
        let err = table("filename,class\na.jpg,merger\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("classes.csv") && err.contains("class_name"),
            "{err}"
        );
        let err = table("filename,objid,class_name\na.jpg,1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("classes.csv:2") && err.contains("short row"),
            "{err}"
        );
    }
}
