//! A folder of images as a session's [`ImageStore`]: labelled images decoded by name, the
//! rest served through core's rotating [`UnlabelledPool`].

use crate::session::ImageStore;
use anomalymatch_core::{Error, FolderSource, ImageBatch, ImageLoader, Result, UnlabelledPool};
use std::collections::HashSet;
use std::path::PathBuf;

/// Images in one folder, the unlabelled ones held at most `n_to_load` at a time.
///
/// Names that become labelled are taken out of the pool, which shifts later positions; a
/// resumed session may therefore start its window a few images off, never skipping the
/// rotation's remaining images for good because the pool wraps around.
pub struct FolderStore {
    root: PathBuf,
    loader: ImageLoader,
    pool: UnlabelledPool,
    show_progress: bool,
}

impl FolderStore {
    /// A store over `root` whose unlabelled images are `unlabelled` (e.g. from
    /// [`anomalymatch_core::FolderDataset`]), loaded `n_to_load` at a time.
    pub fn new(
        root: impl Into<PathBuf>,
        unlabelled: Vec<String>,
        n_to_load: usize,
        loader: ImageLoader,
        show_progress: bool,
    ) -> Result<Self> {
        let root = root.into();
        let pool = UnlabelledPool::new(&root, unlabelled, n_to_load, loader.clone())?;
        Ok(FolderStore {
            root,
            loader,
            pool,
            show_progress,
        })
    }
}

impl ImageStore for FolderStore {
    fn load(&mut self, names: &[String]) -> Result<ImageBatch> {
        let mut source = FolderSource::with_names(&self.root, names.to_vec())?;
        let loaded = self.loader.load_all(&mut source, self.show_progress)?;
        // Labelled images are few and precious: one that cannot be read stops training.
        if let Some(f) = loaded.report.failed.first() {
            return Err(Error::Image {
                path: f.origin.clone().into(),
                message: f.message.clone(),
            });
        }
        Ok(loaded.images)
    }

    fn next_chunk(&mut self, exclude: &HashSet<String>) -> Result<(Vec<String>, ImageBatch)> {
        let gone: Vec<String> = self
            .pool
            .names()
            .iter()
            .filter(|n| exclude.contains(*n))
            .cloned()
            .collect();
        if !gone.is_empty() {
            self.pool.remove(&gone)?;
        }
        if self.pool.is_empty() {
            return Ok((Vec::new(), self.loader.empty().images));
        }
        let loaded = self.pool.next_batch(self.show_progress)?;
        Ok((loaded.names.clone(), loaded.images.clone()))
    }

    fn position(&self) -> usize {
        self.pool.position()
    }

    fn unreadable(&self) -> usize {
        self.pool.unreadable().len()
    }

    fn seek(&mut self, position: usize) -> Result<()> {
        self.pool
            .set_position(position.min(self.pool.len().saturating_sub(1)))
    }

    fn path_of(&self, name: &str) -> Option<PathBuf> {
        Some(self.root.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anomalymatch_core::LoaderConfig;

    #[test]
    fn serves_labelled_by_name_and_unlabelled_in_windows() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..6).map(|i| format!("g{i}.png")).collect();
        for (i, n) in names.iter().enumerate() {
            image::GrayImage::from_pixel(8, 8, image::Luma([i as u8 * 40]))
                .save(dir.path().join(n))
                .unwrap();
        }
        let loader = LoaderConfig {
            size: 8,
            ..LoaderConfig::default()
        }
        .build()
        .unwrap();
        let mut store =
            FolderStore::new(dir.path(), names[2..].to_vec(), 3, loader, false).unwrap();
        let labelled = store.load(&names[..2]).unwrap();
        assert_eq!((labelled.len(), labelled.channels()), (2, 3));
        assert!((labelled.image(1)[0] - 40.0 / 255.0).abs() < 1e-6);

        let (first, images) = store.next_chunk(&HashSet::new()).unwrap();
        assert_eq!(first, ["g2.png", "g3.png", "g4.png"]);
        assert_eq!(images.len(), 3);
        // g5 and g2 come next; g2 was labelled meanwhile, so it is left out for good.
        let exclude: HashSet<String> = ["g2.png".to_string()].into();
        let (second, _) = store.next_chunk(&exclude).unwrap();
        assert!(!second.contains(&"g2.png".to_string()));
        assert!(second.contains(&"g5.png".to_string()));
        assert_eq!(store.path_of("g5.png"), Some(dir.path().join("g5.png")));

        let msg = store
            .load(&["nope.png".to_string()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope.png"), "{msg}");
    }

    #[test]
    fn unreadable_pool_images_are_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..3).map(|i| format!("g{i}.png")).collect();
        for n in &names {
            image::GrayImage::new(4, 4)
                .save(dir.path().join(n))
                .unwrap();
        }
        std::fs::write(dir.path().join("g1.png"), b"broken").unwrap();
        let loader = LoaderConfig::default().build().unwrap();
        let mut store = FolderStore::new(dir.path(), names, 2, loader, false).unwrap();
        let (first, _) = store.next_chunk(&HashSet::new()).unwrap();
        assert_eq!(first, ["g0.png"]);
        assert_eq!(store.unreadable(), 1);
        for _ in 0..3 {
            let (chunk, _) = store.next_chunk(&HashSet::new()).unwrap();
            assert!(!chunk.contains(&"g1.png".to_string()));
        }
        assert_eq!(store.unreadable(), 1);
    }
}
