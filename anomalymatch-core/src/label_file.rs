//! The original AnomalyMatch's `labeled_data.csv`: a `filename,label` table, read and written
//! without losing anything a user put in it.
//!
//! Decisions, so that a file always means one thing:
//! - The header must contain `filename` and `label` (matched case-insensitively, surrounding
//!   spaces ignored); any other columns are kept per row and written back in the original order.
//! - Reading applies the rows in file order, exactly as [`LabelTable::set`] would: a filename that
//!   appears again replaces the earlier row's label and extra fields (later wins, as in a merge),
//!   and a row labelled `unknown` or left empty removes the filename. Both are counted in
//!   [`ReadReport`], so nothing is dropped silently.
//! - The table therefore only holds `normal` and `anomaly` labels, and only those are written.
//! - A UTF-8 byte-order mark and CRLF line ends are accepted; files are written as UTF-8 without a
//!   mark, with `\n` line ends, quoting only where needed, atomically.

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::label::Label;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Name of the column holding the image file name.
pub const FILENAME_COLUMN: &str = "filename";
/// Name of the column holding the label text.
pub const LABEL_COLUMN: &str = "label";

/// One labelled image: its file name, its label, and the values of any extra columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRow {
    /// The image file name, as written in the file.
    pub filename: String,
    /// `Normal` or `Anomaly`; the table never stores `Unknown`.
    pub label: Label,
    /// Values of [`LabelTable::extra_columns`], in that order.
    pub extra: Vec<String>,
}

/// What reading a file found besides the labels themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Data rows in the file.
    pub rows: usize,
    /// Rows whose filename had appeared earlier in the file (the later row won).
    pub duplicates: usize,
    /// Filenames listed more than once with different labels, in the order met; the last row
    /// won, and callers should say so.
    pub conflicts: Vec<String>,
    /// Rows labelled `unknown` or empty, which remove the filename from the table.
    pub unknown: usize,
}

/// What [`LabelTable::set`] did to one filename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The filename was not labelled before.
    Added,
    /// The filename had a different label.
    Changed,
    /// The filename already had this label (or was absent and `Unknown` was set).
    Unchanged,
    /// The filename was labelled and `Unknown` removed it.
    Removed,
}

/// Counts of what a [`LabelTable::merge`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Filenames that gained a label.
    pub added: usize,
    /// Filenames whose label changed.
    pub changed: usize,
    /// Filenames whose label stayed the same.
    pub unchanged: usize,
    /// Filenames whose label was removed by an `Unknown`.
    pub removed: usize,
}

/// The labels of a `labeled_data.csv`, in file order, with lookup by filename.
#[derive(Debug, Clone)]
pub struct LabelTable {
    /// The full header as read (or `filename,label`), which fixes the column order on write.
    columns: Vec<String>,
    filename_col: usize,
    label_col: usize,
    rows: Vec<LabelRow>,
    index: HashMap<String, usize>,
    report: ReadReport,
}

impl Default for LabelTable {
    fn default() -> Self {
        Self::new()
    }
}

impl LabelTable {
    /// An empty table with the plain `filename,label` header.
    pub fn new() -> Self {
        LabelTable {
            columns: vec![FILENAME_COLUMN.to_string(), LABEL_COLUMN.to_string()],
            filename_col: 0,
            label_col: 1,
            rows: Vec::new(),
            index: HashMap::new(),
            report: ReadReport::default(),
        }
    }

    /// Reads a label file; errors name the file and the 1-based line.
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(std::io::BufReader::new(file), path)
    }

    /// Reads label CSV from any reader; `path` is only used to name the source in errors.
    pub fn from_reader<R: Read>(reader: R, path: &Path) -> Result<Self> {
        let fail = |line: u64, message: String| Error::LabelFile {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(reader);
        let header = csv.headers().map_err(|e| csv_error(path, e))?.clone();
        let columns: Vec<String> = header
            .iter()
            .enumerate()
            // Editors on Windows often prepend a byte-order mark to the first field.
            .map(|(i, c)| {
                if i == 0 {
                    c.trim_start_matches('\u{feff}')
                } else {
                    c
                }
            })
            .map(str::to_string)
            .collect();
        let filename_col = find_column(&columns, FILENAME_COLUMN).map_err(|m| fail(1, m))?;
        let label_col = find_column(&columns, LABEL_COLUMN).map_err(|m| fail(1, m))?;

        let mut table = LabelTable {
            columns,
            filename_col,
            label_col,
            ..LabelTable::new()
        };
        for record in csv.records() {
            let record = record.map_err(|e| csv_error(path, e))?;
            let line = record.position().map_or(0, |p| p.line());
            // The csv reader rejects rows whose length differs from the header's, so both
            // fields exist; the fallback only keeps this free of panics.
            let filename = record.get(filename_col).unwrap_or_default();
            if filename.is_empty() {
                return Err(fail(line, "empty filename".to_string()));
            }
            let label: Label = record
                .get(label_col)
                .unwrap_or_default()
                .parse()
                .map_err(|e: crate::label::ParseLabelError| fail(line, e.to_string()))?;
            let extra = record
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != filename_col && i != label_col)
                .map(|(_, v)| v.to_string())
                .collect();
            table.report.rows += 1;
            if let Some(&i) = table.index.get(filename) {
                table.report.duplicates += 1;
                if table.rows[i].label != label
                    && !table.report.conflicts.iter().any(|c| c == filename)
                {
                    table.report.conflicts.push(filename.to_string());
                }
            }
            if label == Label::Unknown {
                table.report.unknown += 1;
            }
            table.set_with_extra(filename, label, extra);
        }
        Ok(table)
    }

    /// Writes the table to `path` atomically: a failed write leaves the previous file intact.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, |w| self.write_to(w))
    }

    /// Writes the table as CSV to any writer, header first, columns in the original order.
    pub fn write_to<W: Write>(&self, writer: W) -> std::io::Result<()> {
        let mut csv = csv::Writer::from_writer(writer);
        csv.write_record(&self.columns)?;
        for row in &self.rows {
            let mut extra = row.extra.iter();
            let fields = (0..self.columns.len()).map(|i| {
                if i == self.filename_col {
                    row.filename.as_str()
                } else if i == self.label_col {
                    row.label.as_str()
                } else {
                    extra.next().map_or("", String::as_str)
                }
            });
            csv.write_record(fields)?;
        }
        csv.flush()
    }

    /// What reading the file found (all zero for a table built in memory).
    pub fn read_report(&self) -> &ReadReport {
        &self.report
    }

    /// The header: `filename`, `label` and any extra columns, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The names of the extra columns, in the order of [`LabelRow::extra`].
    pub fn extra_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != self.filename_col && i != self.label_col)
            .map(|(_, c)| c.as_str())
            .collect()
    }

    /// The rows in file order (new filenames are appended at the end).
    pub fn rows(&self) -> &[LabelRow] {
        &self.rows
    }

    /// The number of labelled filenames.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no filename is labelled.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The label of `filename`, or `Unknown` when it has none.
    pub fn get(&self, filename: &str) -> Label {
        self.row(filename).map_or(Label::Unknown, |r| r.label)
    }

    /// The whole row of `filename`, if it is labelled.
    pub fn row(&self, filename: &str) -> Option<&LabelRow> {
        self.index.get(filename).map(|&i| &self.rows[i])
    }

    /// Labels `filename`, keeping its extra fields; `Unknown` removes it.
    pub fn set(&mut self, filename: &str, label: Label) -> Change {
        let extra = match self.row(filename) {
            Some(row) => row.extra.clone(),
            None => vec![String::new(); self.columns.len() - 2],
        };
        self.set_with_extra(filename, label, extra)
    }

    /// Applies new labels over the table in order (later wins) and counts what changed.
    ///
    /// Extra fields of existing rows are kept; new rows get empty extra fields.
    pub fn merge<I, S>(&mut self, labels: I) -> MergeReport
    where
        I: IntoIterator<Item = (S, Label)>,
        S: AsRef<str>,
    {
        let mut report = MergeReport::default();
        for (filename, label) in labels {
            match self.set(filename.as_ref(), label) {
                Change::Added => report.added += 1,
                Change::Changed => report.changed += 1,
                Change::Unchanged => report.unchanged += 1,
                Change::Removed => report.removed += 1,
            }
        }
        report
    }

    /// The one place rows change, so that reading and merging follow the same rules.
    fn set_with_extra(&mut self, filename: &str, label: Label, extra: Vec<String>) -> Change {
        match (self.index.get(filename).copied(), label) {
            (None, Label::Unknown) => Change::Unchanged,
            (None, _) => {
                self.index.insert(filename.to_string(), self.rows.len());
                self.rows.push(LabelRow {
                    filename: filename.to_string(),
                    label,
                    extra,
                });
                Change::Added
            }
            (Some(i), Label::Unknown) => {
                self.rows.remove(i);
                self.index.remove(filename);
                // Removals are rare (an expert retracting a label), so re-indexing is cheap enough.
                for (j, row) in self.rows.iter().enumerate().skip(i) {
                    self.index.insert(row.filename.clone(), j);
                }
                Change::Removed
            }
            (Some(i), _) => {
                let row = &mut self.rows[i];
                let old = row.label;
                row.label = label;
                row.extra = extra;
                if old == label {
                    Change::Unchanged
                } else {
                    Change::Changed
                }
            }
        }
    }
}

/// The index of `name` in the header, or why it cannot be used.
fn find_column(columns: &[String], name: &str) -> std::result::Result<usize, String> {
    let mut found = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.trim().eq_ignore_ascii_case(name))
        .map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(i), None) => Ok(i),
        (None, _) => Err(format!(
            "header has no {name:?} column (found: {})",
            columns.join(",")
        )),
        (Some(_), Some(_)) => Err(format!("header has more than one {name:?} column")),
    }
}

/// Turns a csv parser error into a label-file error with the line it happened on.
fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("row has {len} field(s), the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        _ => e.to_string(),
    };
    Error::LabelFile {
        path: PathBuf::from(path),
        line,
        message,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LabelTable> {
        LabelTable::from_reader(text.as_bytes(), Path::new("labeled_data.csv"))
    }

    fn written(table: &LabelTable) -> String {
        let mut out = Vec::new();
        table.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn round_trip_keeps_extra_columns_in_order() {
        let text = "id,filename,note,label\n7,a.png,odd arms,anomaly\n8,b.png,,normal\n";
        let t = parse(text).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("a.png"), Label::Anomaly);
        assert_eq!(t.get("b.png"), Label::Normal);
        assert_eq!(t.get("c.png"), Label::Unknown);
        assert_eq!(t.extra_columns(), vec!["id", "note"]);
        assert_eq!(t.row("a.png").unwrap().extra, vec!["7", "odd arms"]);
        assert_eq!(written(&t), text);
    }

    #[test]
    fn quoted_fields_with_commas_and_quotes() {
        let text = "filename,label,comment\n\"x, y.png\",anomaly,\"said \"\"wow\"\", twice\"\n";
        let t = parse(text).unwrap();
        let row = &t.rows()[0];
        assert_eq!(row.filename, "x, y.png");
        assert_eq!(row.extra, vec!["said \"wow\", twice"]);
        assert_eq!(written(&t), text);
        assert_eq!(parse(&written(&t)).unwrap().rows(), t.rows());
    }

    #[test]
    fn crlf_and_bom_are_accepted() {
        let t = parse("\u{feff}filename,label\r\na.png,normal\r\nb.png,Anomaly\r\n").unwrap();
        assert_eq!(t.columns(), ["filename", "label"]);
        assert_eq!(t.get("a.png"), Label::Normal);
        assert_eq!(t.get("b.png"), Label::Anomaly);
        assert_eq!(written(&t), "filename,label\na.png,normal\nb.png,anomaly\n");
    }

    #[test]
    fn bad_label_names_file_and_line() {
        let err = parse("filename,label\na.png,normal\n\"b\nc.png\",merger\n").unwrap_err();
        match &err {
            Error::LabelFile { path, line, .. } => {
                assert_eq!(path, Path::new("labeled_data.csv"));
                // The bad record starts on line 3 (its quoted filename spans two lines).
                assert_eq!(*line, 3);
            }
            other => panic!("unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.starts_with("labeled_data.csv:3:"), "{msg}");
        assert!(msg.contains("merger"), "{msg}");
    }

    #[test]
    fn missing_header_column_is_an_error_on_line_1() {
        let err = parse("file,label\na.png,normal\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("labeled_data.csv:1:"), "{msg}");
        assert!(msg.contains("\"filename\""), "{msg}");
        assert!(parse("filename,label,Label\na,normal,normal\n").is_err());
    }

    #[test]
    fn short_row_and_empty_filename_are_errors_with_lines() {
        let msg = parse("filename,label\na.png,normal\nb.png\n")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("labeled_data.csv:3:"), "{msg}");
        let msg = parse("filename,label\n,normal\n").unwrap_err().to_string();
        assert!(msg.starts_with("labeled_data.csv:2:"), "{msg}");
    }

    #[test]
    fn duplicates_later_row_wins_and_unknown_removes() {
        let t = parse(
            "filename,label,note\na.png,normal,first\nb.png,anomaly,\nc.png,normal,\n\
             a.png,anomaly,second\nb.png,unknown,\nd.png,,\n",
        )
        .unwrap();
        assert_eq!(
            t.read_report(),
            &ReadReport {
                rows: 6,
                duplicates: 2,
                conflicts: vec!["a.png".into(), "b.png".into()],
                unknown: 2
            }
        );
        assert_eq!(t.get("a.png"), Label::Anomaly);
        assert_eq!(t.row("a.png").unwrap().extra, vec!["second"]);
        assert_eq!(t.get("b.png"), Label::Unknown);
        assert_eq!(t.get("c.png"), Label::Normal);
        assert_eq!(
            written(&t),
            "filename,label,note\na.png,anomaly,second\nc.png,normal,\n"
        );
    }

    #[test]
    fn merge_counts_and_keeps_extra_fields() {
        let mut t = parse("filename,label,note\na,normal,x\nb,anomaly,y\nc,normal,z\n").unwrap();
        let report = t.merge([
            ("a", Label::Anomaly),  // changed
            ("b", Label::Anomaly),  // unchanged
            ("d", Label::Normal),   // added
            ("e", Label::Anomaly),  // added
            ("e", Label::Normal),   // changed: later wins within one merge too
            ("c", Label::Unknown),  // removed
            ("zz", Label::Unknown), // absent and unknown: nothing to do
        ]);
        assert_eq!(
            report,
            MergeReport {
                added: 2,
                changed: 2,
                unchanged: 2,
                removed: 1
            }
        );
        assert_eq!(
            written(&t),
            "filename,label,note\na,anomaly,x\nb,anomaly,y\nd,normal,\ne,normal,\n"
        );
        // The index still finds rows after a removal shifted them.
        assert_eq!(t.row("e").unwrap().label, Label::Normal);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn file_round_trip_and_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labeled_data.csv");
        let mut t = LabelTable::new();
        assert!(t.is_empty());
        t.set("a.png", Label::Anomaly);
        t.write(&path).unwrap();
        assert_eq!(LabelTable::read(&path).unwrap().rows(), t.rows());

        // A write that cannot complete reports the path and changes nothing on disk.
        let bad = dir.path().join("missing-folder").join("labeled_data.csv");
        match t.write(&bad).unwrap_err() {
            Error::Io { path, .. } => assert_eq!(path, bad),
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let err = LabelTable::read(&dir.path().join("absent.csv")).unwrap_err();
        assert!(err.to_string().contains("absent.csv"));
    }

    #[test]
    fn invalid_utf8_is_an_error_with_line() {
        let bytes = b"filename,label\na.png,normal\n\xff.png,normal\n";
        let err = LabelTable::from_reader(&bytes[..], Path::new("l.csv")).unwrap_err();
        assert!(err.to_string().starts_with("l.csv:3:"), "{err}");
    }
}
