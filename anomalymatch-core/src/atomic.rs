//! Atomic file writes: a crash mid-write leaves the previous file intact.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` by filling a temporary file beside it, syncing it, and renaming it over `path`.
///
/// Readers see either the old contents or the new, never a half-written file. The temporary
/// file is removed if `fill` fails.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    sync_parent(path);
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Files written together: each is filled into a temporary sibling now, and all are renamed
/// into place by [`AtomicGroup::commit`], so a run that fails part-way replaces none of the
/// previous outputs. Dropping the group without committing removes its temporary files.
#[derive(Debug, Default)]
pub struct AtomicGroup {
    pending: Vec<(PathBuf, PathBuf)>,
}

impl AtomicGroup {
    /// An empty group.
    pub fn new() -> Self {
        AtomicGroup::default()
    }

    /// Fills the temporary file of `path` and syncs it; `path` itself is untouched until
    /// [`AtomicGroup::commit`].
    pub fn write<F>(&mut self, path: &Path, fill: F) -> Result<()>
    where
        F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
    {
        let tmp = temp_path(path);
        let result = (|| {
            let mut w = BufWriter::new(File::create(&tmp)?);
            fill(&mut w)?;
            w.flush()?;
            w.get_ref().sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(path, e));
        }
        self.pending.push((tmp, path.to_path_buf()));
        Ok(())
    }

    /// Renames every file into place, in the order written.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, path) in std::mem::take(&mut self.pending) {
            fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            sync_parent(&path);
        }
        Ok(())
    }
}

impl Drop for AtomicGroup {
    fn drop(&mut self) {
        for (tmp, _) in &self.pending {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Removes the temporary files that killed runs of this program left in `dir`
/// (`.NAME.PID.tmp`, written by this module) whose process is gone; returns how many.
///
/// A temporary file of a live process (another run writing there now) is left alone. Where
/// processes cannot be looked up (no `/proc`), only temporary files older than a day count as
/// stale.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid, &entry.path()) {
            fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The process id in a temporary file name of this module (`.NAME.PID.tmp`).
fn temp_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = rest.rsplit_once('.')?;
    pid.parse().ok()
}

/// Whether process `pid` may still be writing `temp`.
fn process_alive(pid: u32, temp: &Path) -> bool {
    let proc = Path::new("/proc");
    if proc.is_dir() {
        return proc.join(pid.to_string()).exists();
    }
    let age = fs::metadata(temp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    age.is_none_or(|a| a.as_secs() < 24 * 3600)
}

/// The temporary sibling: same folder (so the rename stays on one file system), unique per process.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Makes the rename itself durable; best effort because not every platform can open a directory.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_bytes_atomic(&p, b"one").unwrap();
        write_bytes_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_group_replaces_all_files_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.png"));
        write_bytes_atomic(&a, b"old a").unwrap();
        write_bytes_atomic(&b, b"old b").unwrap();
        {
            let mut group = AtomicGroup::new();
            group.write(&a, |w| w.write_all(b"new a")).unwrap();
            assert!(
                group
                    .write(&b, |_| Err(std::io::Error::other("disk full")))
                    .is_err()
            );
            // Dropped without commit: nothing replaced, no temporary file left.
        }
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert_eq!(fs::read(&b).unwrap(), b"old b");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        let mut group = AtomicGroup::new();
        group.write(&a, |w| w.write_all(b"new a")).unwrap();
        group.write(&b, |w| w.write_all(b"new b")).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"old a", "untouched before commit");
        group.commit().unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above any the kernel hands out is never alive.
        let dead = dir.path().join(".scores.csv.4000000000.tmp");
        let mine = temp_path(&dir.path().join("mine.csv"));
        let alive = dir.path().join(".x.1.tmp"); // pid 1 is always running
        for p in [&dead, &mine, &alive] {
            fs::write(p, b"partial").unwrap();
        }
        fs::write(dir.path().join("keep.tmp"), b"not ours").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(!dead.exists() && mine.exists() && alive.exists());
        assert_eq!(remove_stale_temps(&dir.path().join("absent")).unwrap(), 0);
    }

    #[test]
    fn failed_fill_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_bytes_atomic(&p, b"old").unwrap();
        let r = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("simulated crash"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
