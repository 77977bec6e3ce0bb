//! Score files in Parquet: one row per scored image (`name`, `origin`, `score`, and optionally
//! its `embedding` as a list of floats), written one row group at a time as a run goes, with the
//! run's facts (checkpoint, source, shard) in the file's key-value metadata. pandas, polars,
//! DuckDB and Spark read them as they are.

use crate::error::{IoError, Result};
use parquet::basic::Compression;
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType, FloatType};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Scored images, column by column; `names[i]`, `origins[i]` and `scores[i]` describe image `i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreRows {
    /// Image names, as in label files.
    pub names: Vec<String>,
    /// Where each image came from (a path, `archive.zip:member`, `file.h5:images[7]`).
    pub origins: Vec<String>,
    /// Anomaly scores.
    pub scores: Vec<f32>,
    /// Embeddings, image after image (`len() * dim` values), or empty when not kept.
    pub embeddings: Vec<f32>,
}

impl ScoreRows {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Appends `other`'s rows.
    pub fn extend(&mut self, other: ScoreRows) {
        self.names.extend(other.names);
        self.origins.extend(other.origins);
        self.scores.extend(other.scores);
        self.embeddings.extend(other.embeddings);
    }
}

/// The Parquet schema of a score file, with or without embeddings.
fn schema(with_embeddings: bool) -> String {
    let embedding = if with_embeddings {
        "REQUIRED GROUP embedding (LIST) { REPEATED GROUP list { REQUIRED FLOAT element; } }"
    } else {
        ""
    };
    format!(
        "message scores {{ REQUIRED BYTE_ARRAY name (STRING); REQUIRED BYTE_ARRAY origin \
         (STRING); REQUIRED FLOAT score; {embedding} }}"
    )
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> IoError {
    IoError::format_caused(path, "Parquet", e)
}

/// Writes a score file row group by row group to `W` (a file, or a temporary file that an
/// atomic write renames into place).
pub struct ScoresWriter<W: Write + Send> {
    inner: SerializedFileWriter<W>,
    dim: Option<usize>,
    path: PathBuf,
}

impl<W: Write + Send> ScoresWriter<W> {
    /// A writer of rows with embeddings of `dim` values, or none (`None`); `path` names the
    /// file in errors.
    pub fn new(w: W, dim: Option<usize>, path: &Path) -> Result<Self> {
        let schema =
            parse_message_type(&schema(dim.is_some())).map_err(|e| parquet_error(path, e))?;
        // Snappy: fast, and names and origins shrink well; a fixed `created_by` so that files
        // depend on their rows only (byte-identical after a resumed run).
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("anomalymatch".into())
            .build();
        let inner = SerializedFileWriter::new(w, Arc::new(schema), Arc::new(props))
            .map_err(|e| parquet_error(path, e))?;
        Ok(ScoresWriter {
            inner,
            dim,
            path: path.to_path_buf(),
        })
    }

    /// Writes `rows` as one row group (nothing for no rows).
    pub fn write(&mut self, rows: &ScoreRows) -> Result<()> {
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        let expected_embeddings = self.dim.map_or(0, |d| d * n);
        if rows.origins.len() != n
            || rows.scores.len() != n
            || rows.embeddings.len() != expected_embeddings
        {
            return Err(IoError::format(
                &self.path,
                format!(
                    "{n} names but {} origins, {} scores and {} embedding values",
                    rows.origins.len(),
                    rows.scores.len(),
                    rows.embeddings.len()
                ),
            ));
        }
        let path = self.path.clone();
        let err = |e| parquet_error(&path, e);
        let mut group = self.inner.next_row_group().map_err(err)?;
        let mut column = 0;
        while let Some(mut col) = group.next_column().map_err(err)? {
            match column {
                0 | 1 => {
                    let text = if column == 0 {
                        &rows.names
                    } else {
                        &rows.origins
                    };
                    let values: Vec<ByteArray> =
                        text.iter().map(|s| ByteArray::from(s.as_str())).collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, None, None)
                        .map_err(err)?;
                }
                2 => {
                    col.typed::<FloatType>()
                        .write_batch(&rows.scores, None, None)
                        .map_err(err)?;
                }
                _ => {
                    // A list per row: the first value of each row starts a new record (0).
                    let dim = self.dim.unwrap_or(0);
                    let def = vec![1i16; rows.embeddings.len()];
                    let rep: Vec<i16> = (0..rows.embeddings.len())
                        .map(|i| i16::from(i % dim != 0))
                        .collect();
                    col.typed::<FloatType>()
                        .write_batch(&rows.embeddings, Some(&def), Some(&rep))
                        .map_err(err)?;
                }
            }
            col.close().map_err(err)?;
            column += 1;
        }
        group.close().map_err(err)?;
        Ok(())
    }

    /// Writes the footer with `metadata` as key-value pairs and returns the writer.
    pub fn finish(mut self, metadata: &BTreeMap<String, String>) -> Result<W> {
        for (k, v) in metadata {
            self.inner
                .append_key_value_metadata(KeyValue::new(k.clone(), v.clone()));
        }
        self.inner
            .into_inner()
            .map_err(|e| parquet_error(&self.path, e))
    }
}

/// A score file opened for reading, row group by row group.
pub struct ScoresFile {
    reader: SerializedFileReader<File>,
    path: PathBuf,
    dim: Option<usize>,
}

impl ScoresFile {
    /// Opens `path`, checking that it has the columns of a score file.
    pub fn open(path: &Path) -> Result<ScoresFile> {
        let file = File::open(path).map_err(|e| IoError::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(path, e))?;
        let schema = reader.metadata().file_metadata().schema_descr();
        let columns: Vec<String> = (0..schema.num_columns())
            .map(|i| schema.column(i).path().string())
            .collect();
        let base = ["name", "origin", "score"];
        let has_embedding = match columns.len() {
            3 => false,
            4 if columns[3] == "embedding.list.element" => true,
            _ => {
                return Err(IoError::format(
                    path,
                    format!("not a score file: columns {columns:?}"),
                ));
            }
        };
        if columns[..3] != base {
            return Err(IoError::format(
                path,
                format!("not a score file: columns {columns:?}"),
            ));
        }
        let mut scores = ScoresFile {
            reader,
            path: path.to_path_buf(),
            dim: None,
        };
        if has_embedding {
            scores.dim = Some(scores.metadata().get("embedding_dim").map_or_else(
                || Err(IoError::format(path, "embeddings without embedding_dim")),
                |d| {
                    d.parse()
                        .map_err(|_| IoError::format(path, format!("embedding_dim {d:?}")))
                },
            )?);
        }
        Ok(scores)
    }

    /// The file's key-value metadata.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| {
                kv.iter()
                    .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Values per embedding, or `None` when the file has none.
    pub fn embedding_dim(&self) -> Option<usize> {
        self.dim
    }

    /// Rows in the file.
    pub fn len(&self) -> usize {
        usize::try_from(self.reader.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// True when the file has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row groups in the file.
    pub fn groups(&self) -> usize {
        self.reader.num_row_groups()
    }

    /// The rows of row group `i`.
    pub fn read_group(&self, i: usize) -> Result<ScoreRows> {
        let err = |e| parquet_error(&self.path, e);
        let group = self.reader.get_row_group(i).map_err(err)?;
        let n = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let mut rows = ScoreRows::default();
        for column in 0..group.num_columns() {
            match group.get_column_reader(column).map_err(err)? {
                ColumnReader::ByteArrayColumnReader(mut r) => {
                    let mut values = Vec::with_capacity(n);
                    r.read_records(n, None, None, &mut values).map_err(err)?;
                    let text = values
                        .iter()
                        .map(|v| {
                            v.as_utf8().map(str::to_string).map_err(|_| {
                                IoError::format(&self.path, "a name or origin is not UTF-8")
                            })
                        })
                        .collect::<Result<Vec<String>>>()?;
                    if column == 0 {
                        rows.names = text;
                    } else {
                        rows.origins = text;
                    }
                }
                ColumnReader::FloatColumnReader(mut r) if column == 2 => {
                    r.read_records(n, None, None, &mut rows.scores)
                        .map_err(err)?;
                }
                ColumnReader::FloatColumnReader(mut r) => {
                    let (mut def, mut rep) = (Vec::new(), Vec::new());
                    r.read_records(n, Some(&mut def), Some(&mut rep), &mut rows.embeddings)
                        .map_err(err)?;
                }
                _ => return Err(IoError::format(&self.path, "not a score file")),
            }
        }
        let dim = self.dim.unwrap_or(0);
        if rows.names.len() != n
            || rows.origins.len() != n
            || rows.scores.len() != n
            || rows.embeddings.len() != n * dim
        {
            return Err(IoError::format(
                &self.path,
                format!("row group {i} is incomplete"),
            ));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rows(start: usize, n: usize, dim: usize) -> ScoreRows {
        ScoreRows {
            names: (start..start + n).map(|i| format!("img,{i}.png")).collect(),
            origins: (start..start + n)
                .map(|i| format!("a.zip:img{i}"))
                .collect(),
            scores: (start..start + n).map(|i| i as f32 / 100.0).collect(),
            embeddings: (0..n * dim).map(|i| i as f32).collect(),
        }
    }

    #[test]
    fn rows_and_metadata_survive_a_round_trip_with_and_without_embeddings() {
        let dir = tempfile::tempdir().unwrap();
        for dim in [None, Some(3)] {
            let path = dir.path().join(format!("s{dim:?}.parquet"));
            let d = dim.unwrap_or(0);
            let mut w = ScoresWriter::new(File::create(&path).unwrap(), dim, &path).unwrap();
            w.write(&rows(0, 5, d)).unwrap();
            w.write(&ScoreRows::default()).unwrap();
            w.write(&rows(5, 2, d)).unwrap();
            let mut meta = BTreeMap::from([("checkpoint".to_string(), "abc".to_string())]);
            if let Some(d) = dim {
                meta.insert("embedding_dim".into(), d.to_string());
            }
            w.finish(&meta).unwrap();
            let f = ScoresFile::open(&path).unwrap();
            assert_eq!(f.metadata(), meta);
            assert_eq!((f.len(), f.groups(), f.embedding_dim()), (7, 2, dim));
            let mut all = f.read_group(0).unwrap();
            all.extend(f.read_group(1).unwrap());
            let mut expected = rows(0, 5, d);
            expected.extend(rows(5, 2, d));
            assert_eq!(all, expected);
        }
    }

    #[test]
    fn mismatched_columns_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let mut w = ScoresWriter::new(Vec::new(), None, &path).unwrap();
        let mut bad = rows(0, 3, 0);
        bad.scores.pop();
        assert!(w.write(&bad).is_err());
        std::fs::write(&path, b"not parquet at all").unwrap();
        let e = ScoresFile::open(&path).err().unwrap().to_string();
        assert!(e.contains("x.parquet"), "{e}");
    }
}
