//! The label journal: every answer appended and synced to disk the moment it is given, so a
//! crash loses at most the answer being typed.
//!
//! One JSON object per line. Replaying the journal over the session's starting labels gives
//! the current labels; a last line cut short by a crash is dropped (and counted), while a bad
//! line anywhere else is an error naming the file and line, because it means the file was
//! damaged rather than interrupted.

use crate::error::{ActiveError, Result};
use anomalymatch_core::Label;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Seconds since the Unix epoch when the answer was given.
    pub time: u64,
    /// Active-learning cycle the answer belongs to.
    pub cycle: usize,
    /// Image name.
    pub name: String,
    /// What was said about it.
    pub event: Event,
}

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The image was labelled normal.
    Normal,
    /// The image was labelled anomaly.
    Anomaly,
    /// The image was put on the remember list.
    Remember,
}

impl Event {
    /// The label this event gives, if it is a labelling event.
    pub fn label(self) -> Option<Label> {
        match self {
            Event::Normal => Some(Label::Normal),
            Event::Anomaly => Some(Label::Anomaly),
            Event::Remember => None,
        }
    }

    /// The event recording `label`; `None` for `Unknown`, which is not recorded.
    pub fn from_label(label: Label) -> Option<Event> {
        match label {
            Label::Normal => Some(Event::Normal),
            Label::Anomaly => Some(Event::Anomaly),
            Label::Unknown => None,
        }
    }
}

/// An append-only journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// The entries read back from a journal, with the count of torn lines dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Replay {
    /// Entries in the order they were written.
    pub entries: Vec<Entry>,
    /// 1 when the last line was cut short by a crash and dropped, else 0.
    pub torn_lines: usize,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` for appending.
    pub fn open(path: &Path) -> Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| io(path, source))?;
        Ok(Journal {
            path: path.into(),
            file,
        })
    }

    /// Appends `entry` and syncs it to disk before returning.
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_string(entry).map_err(|e| ActiveError::Corrupt {
            path: self.path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|source| io(&self.path, source))
    }

    /// Appends an event for `name` stamped with the current time.
    pub fn record(&mut self, cycle: usize, name: &str, event: Event) -> Result<()> {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.append(&Entry {
            time,
            cycle,
            name: name.to_string(),
            event,
        })
    }

    /// Reads every entry of the journal at `path` (an absent file is an empty journal).
    ///
    /// A torn last line is removed from the file as well, so that the next append starts on a
    /// fresh line.
    pub fn replay(path: &Path) -> Result<Replay> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
            Err(e) => return Err(io(path, e)),
        };
        let mut lines = Vec::new();
        let mut reader = BufReader::new(file);
        let mut good_bytes = 0u64;
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).map_err(|e| io(path, e))?;
            if n == 0 {
                break;
            }
            lines.push((line, good_bytes));
            good_bytes += n as u64;
        }
        let mut replay = Replay::default();
        let count = lines.len();
        for (i, (line, offset)) in lines.into_iter().enumerate() {
            let parsed = serde_json::from_str::<Entry>(line.trim_end());
            match parsed {
                Ok(entry) if line.ends_with('\n') => replay.entries.push(entry),
                _ if i + 1 == count => {
                    // Interrupted mid-write: drop it from the file and carry on.
                    replay.torn_lines = 1;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| io(path, e))?;
                    f.set_len(offset)
                        .and_then(|_| f.sync_all())
                        .map_err(|e| io(path, e))?;
                }
                other => {
                    return Err(ActiveError::Corrupt {
                        path: path.into(),
                        line: i as u64 + 1,
                        message: other
                            .err()
                            .map_or("line cut short".into(), |e| e.to_string()),
                    });
                }
            }
        }
        Ok(replay)
    }
}

fn io(path: &Path, source: std::io::Error) -> ActiveError {
    ActiveError::Io {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_reopen_and_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.record(0, "a.png", Event::Anomaly).unwrap();
        j.record(0, "b.png", Event::Normal).unwrap();
        drop(j);
        // A crash mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"time\":1,\"cycle\":0,\"na").unwrap();
        drop(f);
        let r = Journal::replay(&p).unwrap();
        assert_eq!(r.torn_lines, 1);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0].name, "a.png");
        assert_eq!(r.entries[0].event.label(), Some(Label::Anomaly));
        // Appending after the repair gives a clean file.
        let mut j = Journal::open(&p).unwrap();
        j.record(1, "c.png", Event::Remember).unwrap();
        let r = Journal::replay(&p).unwrap();
        assert_eq!(r.torn_lines, 0);
        assert_eq!(r.entries.len(), 3);
    }

    #[test]
    fn damage_in_the_middle_is_an_error_with_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        std::fs::write(
            &p,
            "{\"time\":1,\"cycle\":0,\"name\":\"a\",\"event\":\"normal\"}\ngarbage\n{\"time\":1,\"cycle\":0,\"name\":\"b\",\"event\":\"normal\"}\n",
        )
        .unwrap();
        let msg = Journal::replay(&p).unwrap_err().to_string();
        assert!(msg.contains("journal.jsonl:2"), "{msg}");
        assert!(
            Journal::replay(&dir.path().join("none"))
                .unwrap()
                .entries
                .is_empty()
        );
    }
}
