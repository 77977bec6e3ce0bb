//! The rotating in-memory window over the unlabelled images of any [`ImageSource`] (the
//! original's `N_to_load`).
//!
//! Unlabelled collections can be far larger than memory, so training sees at most `n_to_load`
//! of them at a time; each [`UnlabelledPool::next_window`] moves the window on through the
//! source, wrapping around to its start, so that over successive calls every unlabelled image
//! is used. Labelled names are left out as the window is read. An image that cannot be decoded
//! is reported once, in the load report of the window that met it, then kept in
//! [`UnlabelledPool::unreadable`] and never read again.

use crate::error::{Error, Result};
use crate::loader::{FailedImage, ImageLoader, LoadReport, Loaded};
use crate::source::{ImageSource, SourceImage};
use std::collections::HashSet;
use std::path::PathBuf;

/// A source's unlabelled images and the window of them currently decoded in memory.
pub struct UnlabelledPool {
    source: Box<dyn ImageSource>,
    loader: ImageLoader,
    n_to_load: usize,
    /// Items of the source (in its order, labelled or not) before the next window's start.
    position: usize,
    window: Loaded,
    unreadable: Vec<FailedImage>,
    unreadable_names: HashSet<String>,
}

impl UnlabelledPool {
    /// A pool over `source` holding at most `n_to_load` decoded images; nothing is read until
    /// [`UnlabelledPool::next_window`].
    pub fn new(
        source: Box<dyn ImageSource>,
        loader: ImageLoader,
        n_to_load: usize,
    ) -> Result<Self> {
        if n_to_load == 0 {
            return Err(Error::InvalidArgument(
                "n_to_load must be at least 1".to_string(),
            ));
        }
        let window = loader.empty();
        Ok(UnlabelledPool {
            source,
            loader,
            n_to_load,
            position: 0,
            window,
            unreadable: Vec::new(),
            unreadable_names: HashSet::new(),
        })
    }

    /// The loader that decodes the pool's images.
    pub fn loader(&self) -> &ImageLoader {
        &self.loader
    }

    /// Where the next window starts, counted in source items; save it to resume.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Makes the next window start at `position` (e.g. when resuming a session); a position
    /// past the end wraps to the start.
    pub fn seek(&mut self, position: usize) -> Result<()> {
        self.source.rewind()?;
        self.position = self.source.skip(position)?;
        if self.position < position {
            self.source.rewind()?;
            self.position = 0;
        }
        Ok(())
    }

    /// The window loaded by the last [`UnlabelledPool::next_window`] (empty before the first).
    pub fn window(&self) -> &Loaded {
        &self.window
    }

    /// Replaces the window with the next `n_to_load` decodable images whose names are not in
    /// `exclude`, wrapping around to the start of the source at most once, so that a small
    /// pool is loaded whole and never twice. Unreadable images are in the window's report and
    /// are left out of later windows.
    pub fn next_window(
        &mut self,
        exclude: &HashSet<String>,
        show_progress: bool,
    ) -> Result<&Loaded> {
        // Free the old window before decoding the new one: memory holds one window at a time.
        self.window = self.loader.empty();
        let progress = crate::progress::Progress::new(
            Some(self.n_to_load),
            "loading unlabelled images",
            show_progress,
        );
        let start = self.position;
        let mut wrapped = false;
        let mut report = LoadReport::default();
        while self.window.names.len() < self.n_to_load {
            // Never ask for more than fits, so nothing read has to be given back; after the
            // wrap, stop where this window started.
            let room = self.n_to_load - self.window.names.len();
            let mut want = self.loader.chunk_size().min(room);
            if wrapped {
                want = want.min(start.saturating_sub(self.position));
            }
            let chunk = if want == 0 {
                Vec::new()
            } else {
                self.source.next_chunk(want)?
            };
            if chunk.is_empty() {
                if wrapped || start == 0 {
                    break;
                }
                wrapped = true;
                self.source.rewind()?;
                self.position = 0;
                continue;
            }
            self.position += chunk.len();
            let fresh: Vec<SourceImage> = chunk
                .into_iter()
                .filter(|i| !exclude.contains(&i.name) && !self.unreadable_names.contains(&i.name))
                .collect();
            let loaded = self.loader.decode_chunk(&fresh)?;
            progress.inc(loaded.report.loaded);
            for f in &loaded.report.failed {
                self.unreadable_names.insert(f.name.clone());
            }
            self.unreadable.extend(loaded.report.failed.iter().cloned());
            report.merge(loaded.report);
            self.window.names.extend(loaded.names);
            self.window.images.extend(&loaded.images)?;
        }
        progress.finish();
        self.window.report = report;
        Ok(&self.window)
    }

    /// Images that could not be decoded, in the order met; later windows skip them.
    pub fn unreadable(&self) -> &[FailedImage] {
        &self.unreadable
    }

    /// Takes newly labelled images out of the current window (later windows leave them out
    /// through their `exclude` set); returns how many were in it.
    pub fn remove_from_window<S: AsRef<str>>(&mut self, names: &[S]) -> Result<usize> {
        let gone: HashSet<&str> = names.iter().map(AsRef::as_ref).collect();
        let keep: Vec<usize> = (0..self.window.names.len())
            .filter(|&i| !gone.contains(self.window.names[i].as_str()))
            .collect();
        let removed = self.window.names.len() - keep.len();
        if removed > 0 {
            self.window.images = self.window.images.subset(&keep)?;
            self.window.names = keep.iter().map(|&i| self.window.names[i].clone()).collect();
        }
        Ok(removed)
    }

    /// Decodes the named images from the source, in the order found, and restores the reading
    /// position. Names the source does not hold are returned as missing; images that fail to
    /// decode are in the report.
    pub fn load_named(
        &mut self,
        names: &[String],
        show_progress: bool,
    ) -> Result<(Loaded, Vec<String>)> {
        let loaded = load_named(&self.loader, self.source.as_mut(), names, show_progress)?;
        self.seek(self.position)?;
        Ok(loaded)
    }

    /// Where a person can look at the named image, if it is a file of its own.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.source.path_of(name)
    }
}

/// Decodes the named images of `source`: directly where the source can find them
/// ([`ImageSource::read_named`]), else by reading it through once from the start. Returns the
/// images found (in the order met) and the names not found, in the order given.
pub fn load_named(
    loader: &ImageLoader,
    source: &mut dyn ImageSource,
    names: &[String],
    show_progress: bool,
) -> Result<(Loaded, Vec<String>)> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let items = match source.read_named(names) {
        Some(items) => items?,
        None => {
            source.rewind()?;
            let mut items = Vec::new();
            loop {
                let chunk = source.next_chunk(loader.chunk_size())?;
                if chunk.is_empty() {
                    break;
                }
                items.extend(
                    chunk
                        .into_iter()
                        .filter(|i| wanted.contains(i.name.as_str())),
                );
            }
            items
        }
    };
    let found: HashSet<&str> = items.iter().map(|i| i.name.as_str()).collect();
    let missing = names
        .iter()
        .filter(|n| !found.contains(n.as_str()))
        .cloned()
        .collect();
    let mut all = loader.empty();
    let progress =
        crate::progress::Progress::new(Some(items.len()), "loading labelled images", show_progress);
    for chunk in items.chunks(loader.chunk_size()) {
        let loaded = loader.decode_chunk(chunk)?;
        progress.inc(chunk.len());
        all.names.extend(loaded.names);
        all.images.extend(&loaded.images)?;
        all.report.merge(loaded.report);
    }
    progress.finish();
    Ok((all, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Check;
    use crate::folder::FolderSource;
    use crate::loader::DataConfig;
    use image::{GrayImage, Luma};

    /// A pool over `n` grey images whose level encodes their index.
    fn pool(n: usize, n_to_load: usize) -> (tempfile::TempDir, UnlabelledPool) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            GrayImage::from_pixel(5, 5, Luma([i as u8 * 10]))
                .save(dir.path().join(format!("img{i:02}.png")))
                .unwrap();
        }
        let loader = DataConfig {
            size: 3,
            chunk_size: 2,
            ..DataConfig::default()
        }
        .check()
        .unwrap()
        .build(())
        .unwrap();
        let source = Box::new(FolderSource::open(dir.path()).unwrap());
        let p = UnlabelledPool::new(source, loader, n_to_load).unwrap();
        (dir, p)
    }

    fn window(p: &mut UnlabelledPool, exclude: &[&str]) -> Vec<String> {
        let exclude = exclude.iter().map(|s| s.to_string()).collect();
        p.next_window(&exclude, false).unwrap().names.clone()
    }

    #[test]
    fn rotates_and_wraps_around() {
        let (_dir, mut p) = pool(5, 2);
        assert!(p.window().names.is_empty());
        assert_eq!(window(&mut p, &[]), ["img00.png", "img01.png"]);
        assert_eq!(window(&mut p, &[]), ["img02.png", "img03.png"]);
        assert_eq!(window(&mut p, &[]), ["img04.png", "img00.png"]);
        assert_eq!(p.position(), 1);
        // Pixels belong to the names: img04 is level 40.
        assert_eq!(p.window().images.image(0)[0], 40);
        p.seek(3).unwrap();
        assert_eq!(window(&mut p, &[]), ["img03.png", "img04.png"]);
        p.seek(7).unwrap();
        assert_eq!(p.position(), 0);
    }

    #[test]
    fn small_pool_loads_everything_once() {
        let (_dir, mut p) = pool(3, 10);
        assert_eq!(window(&mut p, &[]).len(), 3);
        p.seek(2).unwrap();
        assert_eq!(window(&mut p, &[]), ["img02.png", "img00.png", "img01.png"]);
    }

    #[test]
    fn excluded_names_are_left_out_and_the_window_is_filled() {
        let (_dir, mut p) = pool(6, 3);
        assert_eq!(
            window(&mut p, &["img01.png"]),
            ["img00.png", "img02.png", "img03.png"]
        );
        assert_eq!(p.position(), 4);
        assert_eq!(
            window(&mut p, &["img01.png", "img04.png"]),
            ["img05.png", "img00.png", "img02.png"]
        );
        let removed = p.remove_from_window(&["img00.png", "other.png"]).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(p.window().names, ["img05.png", "img02.png"]);
        assert_eq!(p.window().images.len(), 2);
    }

    #[test]
    fn unreadable_images_are_reported_once_and_leave_the_rotation() {
        let (dir, mut p) = pool(4, 2);
        std::fs::write(dir.path().join("img01.png"), b"not a png").unwrap();
        let first = p.next_window(&HashSet::new(), false).unwrap();
        assert_eq!(first.names, ["img00.png", "img02.png"]);
        assert_eq!(first.report.failed.len(), 1);
        assert_eq!(p.unreadable()[0].name, "img01.png");
        assert_eq!(window(&mut p, &[]), ["img03.png", "img00.png"]);
        let again = p.next_window(&HashSet::new(), false).unwrap();
        assert_eq!(again.names, ["img02.png", "img03.png"]);
        assert!(again.report.failed.is_empty());
        assert_eq!(p.unreadable().len(), 1);
    }

    #[test]
    fn named_images_load_directly_or_by_scanning() {
        let (_dir, mut p) = pool(5, 2);
        window(&mut p, &[]);
        let names = vec![
            "img03.png".to_string(),
            "gone.png".into(),
            "img01.png".into(),
        ];
        let (loaded, missing) = p.load_named(&names, false).unwrap();
        assert_eq!(loaded.names.len(), 2);
        let at = loaded.names.iter().position(|n| n == "img03.png").unwrap();
        assert_eq!(loaded.images.image(at)[0], 30);
        assert_eq!(missing, ["gone.png"]);
        // The rotation goes on where it was.
        assert_eq!(window(&mut p, &[]), ["img02.png", "img03.png"]);

        /// A source that cannot find names, so the scan is used.
        struct Scan(FolderSource);
        impl ImageSource for Scan {
            fn len_hint(&self) -> Option<usize> {
                self.0.len_hint()
            }
            fn next_chunk(&mut self, max: usize) -> Result<Vec<SourceImage>> {
                self.0.next_chunk(max)
            }
            fn rewind(&mut self) -> Result<()> {
                self.0.rewind()
            }
        }
        let mut scan = Scan(FolderSource::open(_dir.path()).unwrap());
        let (scanned, missing) = load_named(p.loader(), &mut scan, &names, false).unwrap();
        assert_eq!(scanned.names, ["img01.png", "img03.png"]);
        assert_eq!(missing, ["gone.png"]);
    }

    #[test]
    fn empty_pool_gives_empty_windows() {
        let (_dir, mut p) = pool(0, 4);
        assert!(window(&mut p, &[]).is_empty());
        let (_d, p) = pool(1, 1);
        assert!(
            UnlabelledPool::new(
                Box::new(FolderSource::open(_d.path()).unwrap()),
                p.loader().clone(),
                0
            )
            .is_err()
        );
    }
}
