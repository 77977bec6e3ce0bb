//! The rotating in-memory window over the unlabelled images (the original's `N_to_load`).
//!
//! Unlabelled collections can be far larger than memory, so training sees at most `n_to_load`
//! of them at a time; each [`UnlabelledPool::next_batch`] moves the window on, wrapping around
//! to the start, so that over successive calls every unlabelled image is used. An image that
//! cannot be decoded is reported once, in the load report of the window that met it, then taken
//! out of the rotation and kept in [`UnlabelledPool::unreadable`].

use crate::error::{Error, Result};
use crate::folder::FolderSource;
use crate::loader::{FailedImage, ImageLoader, Loaded};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Unlabelled image names of a folder and the window of them currently decoded in memory.
#[derive(Debug, Clone)]
pub struct UnlabelledPool {
    root: PathBuf,
    names: Vec<String>,
    n_to_load: usize,
    position: usize,
    loader: ImageLoader,
    current: Loaded,
    unreadable: Vec<FailedImage>,
}

impl UnlabelledPool {
    /// A pool over `names` inside `root` holding at most `n_to_load` decoded images; nothing
    /// is loaded until [`UnlabelledPool::next_batch`].
    pub fn new(
        root: impl AsRef<Path>,
        names: Vec<String>,
        n_to_load: usize,
        loader: ImageLoader,
    ) -> Result<Self> {
        if n_to_load == 0 {
            return Err(Error::InvalidArgument(
                "n_to_load must be at least 1".to_string(),
            ));
        }
        let current = loader.empty();
        Ok(UnlabelledPool {
            root: root.as_ref().to_path_buf(),
            names,
            n_to_load,
            position: 0,
            loader,
            current,
            unreadable: Vec::new(),
        })
    }

    /// Number of unlabelled images (all of them, not only the loaded window).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no unlabelled image is left.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All unlabelled names, in rotation order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Index into [`UnlabelledPool::names`] where the next window starts; save it to resume.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Makes the next window start at `position` (e.g. when resuming a session).
    pub fn set_position(&mut self, position: usize) -> Result<()> {
        if position >= self.names.len().max(1) {
            return Err(Error::InvalidArgument(format!(
                "pool position {position} out of range for {} images",
                self.names.len()
            )));
        }
        self.position = position;
        Ok(())
    }

    /// The window loaded by the last [`UnlabelledPool::next_batch`] (empty before the first).
    pub fn current(&self) -> &Loaded {
        &self.current
    }

    /// Replaces the window with the next `n_to_load` images (all of them when the pool is
    /// smaller), wrapping around to the start. Unreadable images are in the returned report,
    /// and leave the rotation (see [`UnlabelledPool::unreadable`]).
    pub fn next_batch(&mut self, show_progress: bool) -> Result<&Loaded> {
        let total = self.names.len();
        let n = self.n_to_load.min(total);
        let window: Vec<String> = (0..n)
            .map(|k| self.names[(self.position + k) % total].clone())
            .collect();
        // Free the old window before decoding the new one, so memory holds one window at a time.
        self.current = self.loader.empty();
        let mut source = FolderSource::with_names(&self.root, window)?;
        self.current = self.loader.load_all(&mut source, show_progress)?;
        if total > 0 {
            self.position = (self.position + n) % total;
        }
        let failed = self.current.report.failed.clone();
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|f| f.name.as_str()).collect();
            self.remove(&names)?;
            self.unreadable.extend(failed);
        }
        Ok(&self.current)
    }

    /// Images that could not be decoded, in the order met; they are no longer in
    /// [`UnlabelledPool::names`], so later windows do not try them again.
    pub fn unreadable(&self) -> &[FailedImage] {
        &self.unreadable
    }

    /// Takes newly labelled images out of the pool and out of the loaded window, keeping the
    /// rotation where it was; returns how many of `labelled` were in the pool.
    pub fn remove<S: AsRef<str>>(&mut self, labelled: &[S]) -> Result<usize> {
        let gone: HashSet<&str> = labelled.iter().map(AsRef::as_ref).collect();
        let before_position = self.names[..self.position]
            .iter()
            .filter(|n| gone.contains(n.as_str()))
            .count();
        let old_len = self.names.len();
        self.names.retain(|n| !gone.contains(n.as_str()));
        let removed = old_len - self.names.len();
        self.position -= before_position;
        if self.position >= self.names.len() {
            self.position = 0;
        }
        let keep: Vec<usize> = (0..self.current.names.len())
            .filter(|&i| !gone.contains(self.current.names[i].as_str()))
            .collect();
        if keep.len() != self.current.names.len() {
            self.current.images = self.current.images.select(&keep)?;
            self.current.names = keep
                .iter()
                .map(|&i| self.current.names[i].clone())
                .collect();
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::LoaderConfig;
    use image::{GrayImage, Luma};

    /// A pool over `n` grey images whose level encodes their index.
    fn pool(n: usize, n_to_load: usize) -> (tempfile::TempDir, UnlabelledPool) {
        let dir = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("img{i:02}.png");
            GrayImage::from_pixel(5, 5, Luma([i as u8 * 10]))
                .save(dir.path().join(&name))
                .unwrap();
            names.push(name);
        }
        let loader = LoaderConfig {
            size: 3,
            chunk_size: 2,
            ..LoaderConfig::default()
        }
        .build()
        .unwrap();
        let p = UnlabelledPool::new(dir.path(), names, n_to_load, loader).unwrap();
        (dir, p)
    }

    fn window(p: &mut UnlabelledPool) -> Vec<String> {
        p.next_batch(false).unwrap().names.clone()
    }

    #[test]
    fn rotates_and_wraps_around() {
        let (_dir, mut p) = pool(5, 2);
        assert!(p.current().names.is_empty());
        assert_eq!(window(&mut p), ["img00.png", "img01.png"]);
        assert_eq!(window(&mut p), ["img02.png", "img03.png"]);
        assert_eq!(window(&mut p), ["img04.png", "img00.png"]);
        assert_eq!(p.position(), 1);
        // Pixels belong to the names: img04 is level 40.
        assert!((p.current().images.image(0)[0] - 40.0 / 255.0).abs() < 1e-6);
        p.set_position(3).unwrap();
        assert_eq!(window(&mut p), ["img03.png", "img04.png"]);
        assert!(p.set_position(5).is_err());
    }

    #[test]
    fn small_pool_loads_everything_once() {
        let (_dir, mut p) = pool(3, 10);
        assert_eq!(window(&mut p).len(), 3);
        assert_eq!(p.position(), 0);
    }

    #[test]
    fn removes_labelled_images_keeping_the_rotation() {
        let (_dir, mut p) = pool(6, 3);
        window(&mut p); // img00..img02, next starts at img03
        let removed = p.remove(&["img01.png", "img04.png", "other.png"]).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(p.len(), 4);
        assert_eq!(p.current().names, ["img00.png", "img02.png"]);
        assert_eq!(p.current().images.len(), 2);
        assert_eq!(window(&mut p), ["img03.png", "img05.png", "img00.png"]);
    }

    #[test]
    fn unreadable_images_are_reported_once_and_leave_the_rotation() {
        let (dir, mut p) = pool(4, 2);
        std::fs::write(dir.path().join("img01.png"), b"not a png").unwrap();
        let first = p.next_batch(false).unwrap();
        assert_eq!(first.names, ["img00.png"]);
        assert_eq!(first.report.failed.len(), 1);
        assert_eq!(p.len(), 3);
        assert_eq!(p.unreadable().len(), 1);
        assert_eq!(p.unreadable()[0].name, "img01.png");
        assert_eq!(window(&mut p), ["img02.png", "img03.png"]);
        // The next pass wraps around without meeting the broken file again.
        let again = p.next_batch(false).unwrap();
        assert_eq!(again.names, ["img00.png", "img02.png"]);
        assert!(again.report.failed.is_empty());
        assert_eq!(p.unreadable().len(), 1);
    }

    #[test]
    fn empty_pool_gives_empty_windows() {
        let (_dir, mut p) = pool(0, 4);
        assert!(window(&mut p).is_empty());
        assert!(
            UnlabelledPool::new(".", vec![], 0, LoaderConfig::default().build().unwrap()).is_err()
        );
    }
}
