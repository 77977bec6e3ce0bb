//! Advisory locks on the folders jobs write, so that two processes never write one session or
//! one output folder at once. A lock is an `flock` on `DIR/.anomalymatch.lock`, held by the
//! open file: the kernel (or the shared file system's lock manager) releases it when the
//! holder exits, however it exits, so a crash never leaves a folder locked. The exclusive
//! holder writes who it is into the file, and a refused writer's error names it; a holder that
//! finishes removes the file. Readers take no lock.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in a locked folder.
pub const LOCK_FILE: &str = ".anomalymatch.lock";

/// A held lock on a folder; released when dropped.
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    /// The lock files held (the folder's, and a part's own), each with its path and whether
    /// this process holds it alone; the last one holds this process's record.
    files: Vec<(PathBuf, File, bool)>,
}

impl FolderLock {
    /// Takes the folder's lock alone: for a job that owns the folder (a session, a training
    /// run, a whole scoring run, a merge). Fails at once, naming the holder, when another
    /// process holds it.
    pub fn exclusive(dir: &Path) -> Result<FolderLock> {
        let file = acquire(dir, LOCK_FILE, true)?;
        record_holder(dir, &file)?;
        Ok(FolderLock {
            dir: dir.to_path_buf(),
            files: vec![(dir.join(LOCK_FILE), file, true)],
        })
    }

    /// Shares the folder's lock with other parts of one job (the shards of a sharded scoring
    /// run, which write their own files side by side), and takes `part`'s own lock alone: two
    /// processes on one part, or a part beside a job that owns the folder, are refused.
    pub fn part(dir: &Path, part: &str) -> Result<FolderLock> {
        let folder = acquire(dir, LOCK_FILE, false)?;
        let name = format!(".anomalymatch-{part}.lock");
        let own = acquire(dir, &name, true)?;
        record_holder(dir, &own)?;
        Ok(FolderLock {
            dir: dir.to_path_buf(),
            files: vec![
                (dir.join(LOCK_FILE), folder, false),
                (dir.join(name), own, true),
            ],
        })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for FolderLock {
    /// Removes the lock files this process holds alone, while it still holds them, so that a
    /// finished job leaves its folder as it found it (a killed one leaves the file, which the
    /// next holder takes over). A shared folder lock stays for its other holders.
    fn drop(&mut self) {
        for (path, _, alone) in &self.files {
            if *alone {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Opens and locks the lock file `name` in `dir`. A holder removes its file when it finishes,
/// so the file locked may have been unlinked between opening and locking it: then it is
/// opened again, so that two processes never hold locks on two different files of one name.
fn acquire(dir: &Path, name: &str, exclusive: bool) -> Result<File> {
    // Each retry means another holder finished in between: a few suffice.
    for _ in 0..100 {
        let file = open(dir, name)?;
        take(dir, &file, exclusive)?;
        if still_named(&dir.join(name), &file) {
            return Ok(file);
        }
    }
    Err(Error::io(
        dir.join(name),
        std::io::Error::other("the lock file keeps being replaced"),
    ))
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn still_named(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `path` still names the open `file` (without inode numbers, by existence).
#[cfg(not(unix))]
fn still_named(path: &Path, _file: &File) -> bool {
    path.exists()
}

/// Opens (creating if needed) the lock file `name` in `dir`, without truncating it: the
/// holder's record must survive a refused writer.
fn open(dir: &Path, name: &str) -> Result<File> {
    let path = dir.join(name);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))
}

/// Takes `file`'s lock, exclusive or shared, without waiting. A file system without locks
/// (`Unsupported`) lets the job go on unlocked, as it did before locks existed.
fn take(dir: &Path, file: &File, exclusive: bool) -> Result<()> {
    let result = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match result {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            dir: dir.to_path_buf(),
            holder: holder(file),
        }),
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        Err(TryLockError::Error(e)) => Err(Error::io(dir.join(LOCK_FILE), e)),
    }
}

/// Writes who holds the lock into its file: process, host and command line.
fn record_holder(dir: &Path, mut file: &File) -> Result<()> {
    let host = crate::atomic::host_name();
    let command: String = std::env::args()
        .collect::<Vec<_>>()
        .join(" ")
        .escape_debug()
        .take(300)
        .collect();
    let text = format!("process {} on {host}: {command}\n", std::process::id());
    (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    })()
    .map_err(|e| Error::io(dir.join(LOCK_FILE), e))
}

/// What a lock file says about its holder (shards of a sharded run leave the folder's file
/// as the last owner wrote it, so that case is said in general terms).
fn holder(mut file: &File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(1000).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "another anomalymatch process".to_string()
    } else {
        text.escape_debug().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder_and_readers_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let held = FolderLock::exclusive(dir.path()).unwrap();
        let err = FolderLock::exclusive(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(FolderLock::part(dir.path(), "shard-0-of-2").is_err());
        // Reading the folder needs no lock.
        assert!(std::fs::read_dir(dir.path()).is_ok());
        drop(held);
        let a = FolderLock::part(dir.path(), "shard-0-of-2").unwrap();
        let b = FolderLock::part(dir.path(), "shard-1-of-2").unwrap();
        assert!(FolderLock::part(dir.path(), "shard-1-of-2").is_err());
        assert!(FolderLock::exclusive(dir.path()).is_err());
        drop((a, b));
        assert!(FolderLock::exclusive(dir.path()).is_ok());
    }
}
