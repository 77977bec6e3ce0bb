//! Images inside a zip archive, read member by member without extracting anything.

use crate::encoded::check_image_bytes;
use crate::error::{IoError, Result};
use anomalymatch_core::folder::is_image_file_name;
use anomalymatch_core::source::{MAX_ITEM_BYTES, chunk_len};
use anomalymatch_core::{ImagePayload, ImageSource, SourceImage, printable};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use zip::ZipArchive;

/// The image members (JPEG, PNG, TIFF by extension, in any folder of the archive) of one zip
/// archive, in name order, as an [`ImageSource`].
///
/// Names are member paths (`sub/galaxy.png`); origins are `archive.zip:member`. Other members
/// are skipped and counted ([`ZipSource::skipped`]), as are macOS resource forks under
/// `__MACOSX/`, which carry image extensions but are not images. A member that cannot be read,
/// or whose bytes are not a JPEG, PNG or TIFF file, is delivered as unreadable naming
/// `archive.zip:member`, so the loader counts and names it. An archive that holds two image
/// members under one name is refused, naming it: zip readers keep one of them, and a label
/// row could not tell them apart.
pub struct ZipSource {
    path: PathBuf,
    archive: ZipArchive<BufReader<File>>,
    /// Image members as (name, index in the archive), sorted by name.
    members: Vec<(String, usize)>,
    skipped: usize,
    notes: Vec<String>,
    position: usize,
}

impl std::fmt::Debug for ZipSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipSource")
            .field("path", &self.path)
            .field("members", &self.members.len())
            .field("skipped", &self.skipped)
            .field("position", &self.position)
            .finish()
    }
}

impl ZipSource {
    /// Reads the archive's central directory (not its members) and lists its images.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| IoError::io(&path, e))?;
        let archive = ZipArchive::new(BufReader::new(file))
            .map_err(|e| IoError::format_caused(&path, "not a readable zip archive", e))?;
        let mut members = Vec::new();
        let mut skipped = 0;
        for index in 0..archive.len() {
            let Some(name) = archive.name_for_index(index) else {
                continue;
            };
            if name.ends_with('/') {
                continue; // a folder entry, not a file
            }
            if is_image_file_name(name) && !is_resource_fork(name) {
                members.push((name.to_string(), index));
            } else {
                skipped += 1;
            }
        }
        let mut notes = Vec::new();
        if skipped > 0 {
            notes.push(format!(
                "{skipped} member(s) skipped: not JPEG, PNG or TIFF files by their extension"
            ));
        }
        let repeated = repeated_image_names(&path, archive.central_directory_start())
            .map_err(|e| IoError::io(&path, e))?;
        if let Some(first) = repeated.first() {
            return Err(IoError::format(
                &path,
                format!(
                    "{} image member name(s) occur more than once (first: {:?}); the copies \
                     cannot be told apart: zip them again under unique names",
                    repeated.len(),
                    printable(first)
                ),
            ));
        }
        // Name order, as for folders, so that the order does not depend on how it was zipped.
        members.sort();
        Ok(ZipSource {
            path,
            archive,
            members,
            skipped,
            notes,
            position: 0,
        })
    }

    /// The archive read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Image member names, in delivery order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(name, _)| name.as_str())
    }

    /// Number of image members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when the archive holds no image member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members skipped because they are not images by their extension (folders not counted).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// One member's bytes, or why they cannot be had.
    fn read_member(&mut self, index: usize) -> std::result::Result<Vec<u8>, String> {
        let member = self.archive.by_index(index).map_err(|e| e.to_string())?;
        let size = member.size();
        if size > MAX_ITEM_BYTES {
            return Err(format!(
                "member is {size} bytes, more than the {MAX_ITEM_BYTES}-byte limit on one image"
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The limit holds even if the declared size lies.
        member
            .take(MAX_ITEM_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > MAX_ITEM_BYTES {
            return Err(format!(
                "member inflates past the {MAX_ITEM_BYTES}-byte limit on one image"
            ));
        }
        Ok(bytes)
    }
}

/// Image member names that the central directory starting at `start` lists more than once,
/// sorted. The zip reader keeps one entry per name, so repeats are only seen by walking the
/// directory's headers here.
fn repeated_image_names(path: &Path, start: u64) -> std::io::Result<Vec<String>> {
    /// Signature and fixed length of a central directory file header.
    const HEADER: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    const FIXED: usize = 46;
    let mut reader = BufReader::new(File::open(path)?);
    reader.seek(SeekFrom::Start(start))?;
    let mut uses: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut head = [0u8; FIXED];
    // The directory ends where a header no longer starts (the end record, or a damaged tail
    // the zip reader has already judged).
    while reader.read_exact(&mut head).is_ok() && head[..4] == HEADER {
        let field = |at: usize| usize::from(u16::from_le_bytes([head[at], head[at + 1]]));
        let (name_len, extra, comment) = (field(28), field(30), field(32));
        let mut name = vec![0; name_len];
        reader.read_exact(&mut name)?;
        reader.seek_relative((extra + comment) as i64)?;
        *uses.entry(name).or_default() += 1;
    }
    let mut repeated: Vec<String> = uses
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| String::from_utf8_lossy(&name).into_owned())
        .filter(|name| is_image_file_name(name) && !is_resource_fork(name))
        .collect();
    repeated.sort();
    Ok(repeated)
}

/// True for the AppleDouble files macOS adds under `__MACOSX/` when it zips a folder.
fn is_resource_fork(name: &str) -> bool {
    name.starts_with("__MACOSX/") || name.rsplit('/').next().is_some_and(|f| f.starts_with("._"))
}

impl ImageSource for ZipSource {
    fn len_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn skip(&mut self, n: usize) -> anomalymatch_core::Result<usize> {
        // Items are addressed by index: jumping reads nothing.
        let skipped = n.min(self.members.len() - self.position);
        self.position += skipped;
        Ok(skipped)
    }

    fn next_chunk(&mut self, max: usize) -> anomalymatch_core::Result<Vec<SourceImage>> {
        let end = self.position.saturating_add(max).min(self.members.len());
        // Declared sizes bound the chunk's bytes (a member that lies is cut at the item limit).
        let sizes: Vec<u64> = (self.position..end)
            .map(|k| {
                self.archive
                    .by_index_raw(self.members[k].1)
                    .map_or(0, |m| m.size().min(MAX_ITEM_BYTES))
            })
            .collect();
        let end = self.position + chunk_len(sizes);
        let mut chunk = Vec::with_capacity(end - self.position);
        // Members are read one after the other: the archive is one stream, and inflating is
        // cheap next to decoding, which the loader does in parallel.
        for k in self.position..end {
            let (name, index) = self.members[k].clone();
            let origin = format!("{}:{name}", self.path.display());
            let payload = match self.read_member(index) {
                Ok(bytes) => match check_image_bytes(&bytes, &origin) {
                    Ok(()) => ImagePayload::Encoded(bytes),
                    Err(message) => ImagePayload::Unreadable(message),
                },
                Err(message) => ImagePayload::Unreadable(format!("{origin}: {message}")),
            };
            chunk.push(SourceImage {
                name,
                origin,
                payload,
            });
        }
        self.position = end;
        Ok(chunk)
    }

    fn rewind(&mut self) -> anomalymatch_core::Result<()> {
        self.position = 0;
        Ok(())
    }
}
