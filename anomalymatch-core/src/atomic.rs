//! Atomic file writes: a crash mid-write leaves the previous file intact.
//!
//! A write fills a temporary sibling, `.NAME.HOST.PID.TOKEN.anomalymatch-tmp`, and renames it
//! over `NAME`. The writer holds an exclusive `flock` on the temporary file from creation to
//! rename, so that cleanup can tell a live writer from a dead one on any host that shares the
//! folder (the lock is held by the open file, whatever PID namespace or node the writer is on)
//! instead of guessing from process ids.

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
    // The file (and so its lock) stays open until the rename is done.
    let file = fill_temp(&tmp, fill).map_err(|e| Error::io(path, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    drop(file);
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
    /// (temporary file, its open locked handle, destination).
    pending: Vec<(PathBuf, File, PathBuf)>,
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
        let file = fill_temp(&tmp, fill).map_err(|e| Error::io(path, e))?;
        self.pending.push((tmp, file, path.to_path_buf()));
        Ok(())
    }

    /// Renames every file into place, in the order written.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, file, path) in std::mem::take(&mut self.pending) {
            fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            drop(file);
            sync_parent(&path);
        }
        Ok(())
    }
}

impl Drop for AtomicGroup {
    fn drop(&mut self) {
        for (tmp, _, _) in &self.pending {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Creates the temporary file `tmp` (never an existing one), locks it, fills and syncs it, and
/// returns it still open and locked; on failure it is removed.
fn fill_temp<F>(tmp: &Path, fill: F) -> std::io::Result<File>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)?;
    let result = (|| {
        file.lock()?;
        let mut w = BufWriter::new(file.try_clone()?);
        fill(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()
    })();
    match result {
        Ok(()) => Ok(file),
        Err(e) => {
            let _ = fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// The suffix of this module's temporary files; cleanup touches no other name.
const TEMP_SUFFIX: &str = ".anomalymatch-tmp";

/// How old an unlocked temporary file must be before cleanup removes it: a writer locks its
/// file right after creating it, and this covers that instant on a slow shared file system.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files that stopped runs of this program left in `dir`; returns how
/// many.
///
/// Only this module's names count (`.NAME.HOST.PID.TOKEN.anomalymatch-tmp`, regular files),
/// and only when provably stale: no process on any host holds its lock, and either it is older
/// than a minute or its writer was a process of this host that is gone. Where the file system
/// has no locks, nothing is removed.
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
        let Some(name) = name.to_str() else {
            continue;
        };
        let ours = name.starts_with('.') && name.ends_with(TEMP_SUFFIX);
        if ours && is_stale(&entry.path(), name) {
            fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether the temporary file `name` at `path` is a regular file that nobody writes: unlocked,
/// and its writer cannot be between creating and locking it, because the file is old or the
/// writer, a process of this host, is gone.
fn is_stale(path: &Path, name: &str) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= STALE_AFTER);
    if !meta.is_file() || !(old || writer_gone_here(name)) {
        return false;
    }
    // The lock is dropped with the handle, before the caller removes the file; a writer cannot
    // take it back, since writers lock only files they have just created.
    File::open(path).is_ok_and(|f| f.try_lock().is_ok())
}

/// Whether the writer a temporary file's name records was a process of this host that no longer
/// runs (as far as this PID namespace's `/proc` can tell; the lock decides the rest).
fn writer_gone_here(name: &str) -> bool {
    let Some(id) = name.strip_suffix(TEMP_SUFFIX) else {
        return false;
    };
    let mut fields = id.rsplitn(4, '.');
    let (_token, pid, host) = (fields.next(), fields.next(), fields.next());
    let proc = Path::new("/proc");
    host == Some(host_name().as_str())
        && pid.is_some_and(|p| p.parse::<u32>().is_ok() && !proc.join(p).exists())
        && proc.join("self").exists()
}

/// The temporary sibling of `path`: same folder (so the rename stays on one file system), and
/// a name that says which host and process writes it, with a random token per process so
/// that processes with one PID on different hosts (or PID namespaces) never collide.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    path.with_file_name(format!(".{name}.{}{TEMP_SUFFIX}", writer_id()))
}

/// `HOST.PID.TOKEN` of this process, computed once.
fn writer_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let token = rand::random::<u32>();
        format!("{}.{}.{token:08x}", host_name(), std::process::id())
    })
}

/// This machine's name, reduced to letters, digits, '-' and '_' so that it fits in a file
/// name ("host" where it cannot be found).
pub fn host_name() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if host.is_empty() { "host".into() } else { host }
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

    /// Sets a file's modification time `secs` seconds into the past.
    fn age(path: &Path, secs: u64) {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(then)
            .unwrap();
    }

    #[test]
    fn only_our_unlocked_old_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        // Another host's writer that died, one still writing (it holds the lock), one that
        // has only just created its file, and names that are not ours.
        let dead = at(".scores.csv.node7.4242.0badf00d.anomalymatch-tmp");
        let writing = at(".part-3.parquet.node8.17.cafe0001.anomalymatch-tmp");
        let fresh = temp_path(&at("mine.csv"));
        // A process of this host that is gone (no pid is this large) left one just now.
        let killed = at(&format!(
            ".x.csv.{}.4000000000.00000001.anomalymatch-tmp",
            host_name()
        ));
        let users = [at(".notes.txt.123.tmp"), at("keep.anomalymatch-tmp")];
        for p in [&dead, &writing, &fresh, &killed].into_iter().chain(&users) {
            fs::write(p, b"partial").unwrap();
        }
        for p in [&dead, &writing].into_iter().chain(&users) {
            age(p, 3600);
        }
        let holder = File::open(&writing).unwrap();
        holder.lock().unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        assert!(!dead.exists() && !killed.exists() && writing.exists() && fresh.exists());
        assert!(users.iter().all(|p| p.exists()));
        drop(holder);
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(!writing.exists());
        assert_eq!(remove_stale_temps(&at("absent")).unwrap(), 0);
    }

    #[test]
    fn a_write_holds_its_temporary_file_locked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, |_| {
            let tmp = temp_path(&p);
            assert!(File::open(&tmp).unwrap().try_lock().is_err());
            Ok(())
        })
        .unwrap();
        let name = temp_path(&p)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let pid = format!(".{}.", std::process::id());
        assert!(name.starts_with(".a.txt.") && name.contains(&pid), "{name}");
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
