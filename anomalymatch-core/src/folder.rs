//! Images stored as files in one folder, read in chunks.

use crate::error::{Error, Result};
use crate::source::{ImagePayload, ImageSource, SourceImage};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "tif", "tiff"];

/// True when `name` ends in one of [`IMAGE_EXTENSIONS`], in any letter case.
pub fn is_image_file_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// A fingerprint of the files `names` in `root`: FNV-1a (64 bits, stable across builds and
/// platforms) over each name, size and modification time in order, with the count in front.
/// A renamed, added, removed, rewritten or touched file changes it.
pub fn listing_fingerprint(root: &Path, names: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for name in names {
        feed(name.as_bytes());
        feed(&[0]);
        let (size, nanos) = std::fs::metadata(root.join(name)).map_or((u64::MAX, 0), |m| {
            let nanos = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (m.len(), nanos)
        });
        feed(&size.to_le_bytes());
        feed(&nanos.to_le_bytes());
    }
    format!("{} files, {hash:016x}", names.len())
}

/// The image files of one folder (not its subfolders), in name order, as an [`ImageSource`].
///
/// Names are file names relative to the folder, the spelling label files use. Entries that
/// look like images but cannot be read (dangling symlinks, symlink loops, names that are not
/// UTF-8 and so could never be labelled) are delivered as unreadable items, so that loaders
/// count and name them instead of skipping them silently.
#[derive(Debug, Clone)]
pub struct FolderSource {
    root: PathBuf,
    names: Vec<String>,
    /// Why a listed entry cannot be read, by name, when that is known from the listing alone.
    problems: HashMap<String, String>,
    position: usize,
}

impl FolderSource {
    /// Lists the image files of `root`, sorted by name so that the order is stable across runs.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let entries = std::fs::read_dir(&root).map_err(|e| Error::io(&root, e))?;
        let mut names = Vec::new();
        let mut problems = HashMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&root, e))?;
            let raw = entry.file_name();
            let name = raw.to_string_lossy().into_owned();
            if !is_image_file_name(&name) {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| Error::io(root.join(&raw), e))?;
            // Folders are not images; symlinks are kept whatever they point at, so that a
            // broken one is counted when it fails to read.
            if kind.is_dir() || (kind.is_symlink() && entry.path().is_dir()) {
                continue;
            }
            if raw.to_str().is_none() {
                // Label files are UTF-8, so this name could never carry a label.
                problems.insert(name.clone(), "file name is not valid UTF-8".to_string());
            }
            names.push(name);
        }
        names.sort();
        Ok(FolderSource {
            root,
            names,
            problems,
            position: 0,
        })
    }

    /// A source over the given file names inside `root` (e.g. the labelled subset), in the order given.
    ///
    /// The folder must exist; a named file that is missing is delivered as unreadable and counted
    /// by the loader rather than stopping the load.
    pub fn with_names(
        root: impl AsRef<Path>,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let meta = std::fs::metadata(&root).map_err(|e| Error::io(&root, e))?;
        if !meta.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a folder",
                root.display()
            )));
        }
        Ok(FolderSource {
            root,
            names: names.into_iter().map(Into::into).collect(),
            problems: HashMap::new(),
            position: 0,
        })
    }

    /// The folder read.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All names, in delivery order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the folder holds no image.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl FolderSource {
    fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        match self.problems.get(name) {
            Some(problem) => Err(std::io::Error::other(problem.clone())),
            None => crate::source::read_item_file(&self.root.join(name)),
        }
    }

    /// The source item for `name`, whose bytes were `read`.
    fn item(&self, name: &str, read: std::io::Result<Vec<u8>>) -> SourceImage {
        SourceImage {
            name: name.to_string(),
            origin: self.root.join(name).display().to_string(),
            payload: match read {
                Ok(bytes) => ImagePayload::Encoded(bytes),
                Err(e) => ImagePayload::Unreadable(e.to_string()),
            },
        }
    }
}

impl ImageSource for FolderSource {
    fn len_hint(&self) -> Option<usize> {
        Some(self.names.len())
    }

    fn fingerprint(&self) -> Option<String> {
        Some(listing_fingerprint(&self.root, &self.names))
    }

    fn next_chunk(&mut self, max: usize) -> Result<Vec<SourceImage>> {
        let end = self.position.saturating_add(max).min(self.names.len());
        // Sizes first (a file that cannot be sized is read, and fails, alone), so that the
        // chunk's bytes stay within the budget.
        let sizes: Vec<u64> = self.names[self.position..end]
            .par_iter()
            .map(|n| crate::source::item_file_len(&self.root.join(n)).unwrap_or(0))
            .collect();
        let end = self.position + crate::source::chunk_len(sizes);
        let names = &self.names[self.position..end];
        // Reading in parallel hides file-system latency on network and cold disks.
        let chunk = names
            .par_iter()
            .map(|name| self.item(name, self.read(name)))
            .collect();
        self.position = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> Result<()> {
        self.position = 0;
        Ok(())
    }

    fn skip(&mut self, n: usize) -> Result<usize> {
        let skipped = n.min(self.names.len() - self.position);
        self.position += skipped;
        Ok(skipped)
    }

    fn read_named(&mut self, names: &[String]) -> Option<Result<Vec<SourceImage>>> {
        // Only files directly inside the folder: a name with a separator or `..` would reach
        // outside it. A name with no file is absent, not unreadable.
        let found = names
            .par_iter()
            .filter(|n| Path::new(n.as_str()).file_name() == Some(n.as_ref()))
            .filter_map(|name| match self.read(name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                read => Some(self.item(name, read)),
            })
            .collect();
        Some(Ok(found))
    }

    fn path_of(&self, name: &str) -> Option<PathBuf> {
        Some(self.root.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_images_sorted_and_reads_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "c.TIFF", "notes.txt", "d.jpeg"] {
            std::fs::write(dir.path().join(name), name.as_bytes()).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let mut src = FolderSource::open(dir.path()).unwrap();
        assert_eq!(src.names(), &["a.jpg", "b.PNG", "c.TIFF", "d.jpeg"]);
        assert_eq!(src.len_hint(), Some(4));
        let first = src.next_chunk(3).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first[1].payload, ImagePayload::Encoded(b"b.PNG".to_vec()));
        assert_eq!(src.next_chunk(3).unwrap().len(), 1);
        assert!(src.next_chunk(3).unwrap().is_empty());
        src.rewind().unwrap();
        assert_eq!(src.next_chunk(10).unwrap()[0].name, "a.jpg");
    }

    #[test]
    fn broken_links_and_non_utf8_names_are_delivered_as_unreadable() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.png"), b"x").unwrap();
        std::os::unix::fs::symlink("nowhere.png", dir.path().join("dangling.png")).unwrap();
        std::os::unix::fs::symlink("loop.png", dir.path().join("loop.png")).unwrap();
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
        std::fs::write(dir.path().join(latin1), b"x").unwrap();
        let mut src = FolderSource::open(dir.path()).unwrap();
        assert_eq!(src.len(), 4, "{:?}", src.names());
        let chunk = src.next_chunk(10).unwrap();
        let unreadable: Vec<&str> = chunk
            .iter()
            .filter(|i| matches!(i.payload, ImagePayload::Unreadable(_)))
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(unreadable, ["caf\u{fffd}.png", "dangling.png", "loop.png"]);
        let ImagePayload::Unreadable(why) = &chunk[0].payload else {
            panic!()
        };
        assert!(why.contains("UTF-8"), "{why}");
    }

    #[test]
    fn missing_folder_is_an_error_naming_it() {
        let err = FolderSource::open("/no/such/folder-xyz").unwrap_err();
        assert!(err.to_string().contains("/no/such/folder-xyz"), "{err}");
        let err = FolderSource::with_names("/no/such/folder-xyz", ["a.png"]).unwrap_err();
        assert!(err.to_string().contains("/no/such/folder-xyz"), "{err}");
    }

    #[test]
    fn named_subset_reports_missing_files_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        let mut src = FolderSource::with_names(dir.path(), ["gone.png", "a.png"]).unwrap();
        let chunk = src.next_chunk(5).unwrap();
        assert!(matches!(chunk[0].payload, ImagePayload::Unreadable(_)));
        assert!(chunk[0].origin.ends_with("gone.png"));
        assert_eq!(chunk[1].name, "a.png");
    }
}
