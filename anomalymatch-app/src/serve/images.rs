//! The images the page shows: decoded from the session's own source by item name, turned into
//! display colours ([`anomalymatch_io::display::to_rgb8`]), encoded as PNG once and cached, a
//! thumbnail for the gallery and a large one for the viewer.
//!
//! Only names that the session knows are served, and a name is refused before any file is
//! opened when it is absolute, has a `..` component, or names a file whose real path (links
//! followed) lies outside the image folder.

use anomalymatch_core::{ImageLoader, ImageSource};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Side of the gallery's thumbnails, in pixels.
pub const THUMB: u32 = 128;
/// Smallest side of the viewer's image, in pixels (larger when the model's size is larger).
pub const LARGE: usize = 256;
/// Encoded images kept before the cache starts again (a 256-pixel PNG is about 100 KB).
const CACHE_ENTRIES: usize = 4000;

/// Which rendering of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// The gallery's.
    Thumb,
    /// The viewer's.
    Large,
}

/// The bands a rendering shows, bit `k` for band `k` ([`ALL_BANDS`]: every band).
pub type Bands = u64;

/// Every band: the gallery's thumbnails and the viewer's default.
pub const ALL_BANDS: Bands = u64::MAX;

/// Encoded PNGs by name, size and bands shown.
type Cache = HashMap<(String, Size, Bands), Arc<Vec<u8>>>;

/// Decodes, encodes and caches the display images of one source.
pub struct Display {
    source: Mutex<Box<dyn ImageSource>>,
    loader: ImageLoader,
    /// The image folder with links resolved, when the source is a folder of files.
    root: Option<PathBuf>,
    cache: Mutex<Cache>,
}

impl Display {
    /// Display images of `source` (opened from `images`) decoded by `loader`.
    pub fn new(source: Box<dyn ImageSource>, loader: ImageLoader, images: &Path) -> Display {
        Display {
            source: Mutex::new(source),
            loader,
            root: images.canonicalize().ok().filter(|p| p.is_dir()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Bands of the images shown.
    pub fn bands(&self) -> usize {
        self.loader.spec().channels.channels()
    }

    /// The bits of `bands` listed as `0,2,4`; `Err` names a band the images do not have.
    pub fn parse_bands(&self, list: &str) -> Result<Bands, String> {
        let count = self.bands();
        let mut bits: Bands = 0;
        for item in list.split(',').filter(|t| !t.is_empty()) {
            let band: usize = item
                .trim()
                .parse()
                .map_err(|_| format!("band {item:?}: a band number from 0"))?;
            if band >= count.min(64) {
                return Err(format!("band {band}: the images have {count} band(s)"));
            }
            bits |= 1 << band;
        }
        Ok(if bits.count_ones() as usize == count {
            ALL_BANDS
        } else {
            bits
        })
    }

    /// The PNG of `name` at `size` showing `bands` (thumbnails show them all), from the cache
    /// or decoded now; `Err` says why not.
    pub fn png(&self, name: &str, size: Size, bands: Bands) -> Result<Arc<Vec<u8>>, String> {
        let bands = if size == Size::Thumb {
            ALL_BANDS
        } else {
            bands
        };
        let key = (name.to_string(), size, bands);
        if let Some(png) = lock(&self.cache).get(&key) {
            return Ok(png.clone());
        }
        self.encode(&[name.to_string()], bands)?;
        lock(&self.cache)
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("{name}: not in the image source, or unreadable"))
    }

    /// Decodes and caches the images of `names` not cached yet, a chunk at a time (so that a
    /// gallery's worth is ready before the page asks).
    pub fn warm(&self, names: &[String]) {
        let todo: Vec<String> = {
            let cache = lock(&self.cache);
            names
                .iter()
                .filter(|n| !cache.contains_key(&((*n).clone(), Size::Thumb, ALL_BANDS)))
                .cloned()
                .collect()
        };
        for chunk in todo.chunks(32) {
            // A failure shows when the page asks for that image.
            let _ = self.encode(chunk, ALL_BANDS);
        }
    }

    /// Checks that `name` may be read: a relative name without `..` whose file, if the source
    /// is a folder, is really inside it.
    pub fn check_name(&self, name: &str, path: Option<PathBuf>) -> Result<(), String> {
        let p = Path::new(name);
        let plain = !name.is_empty()
            && name.len() <= 1024
            && !name.contains('\\')
            && !name.contains('\0')
            && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(format!("{name:?}: not an image name of this session"));
        }
        if let (Some(root), Some(path)) = (&self.root, path) {
            let real = path.canonicalize().map_err(|e| format!("{name}: {e}"))?;
            if !real.starts_with(root) {
                return Err(format!("{name}: leads outside the image folder"));
            }
        }
        Ok(())
    }

    /// Renders `names` showing `bands`: the large image, and with every band the thumbnail.
    fn encode(&self, names: &[String], bands: Bands) -> Result<(), String> {
        let loaded = {
            let mut source = lock(&self.source);
            anomalymatch_core::pool::load_named(&self.loader, source.as_mut(), names, false)
                .map_err(|e| e.to_string())?
                .0
        };
        let b = &loaded.images.to_batch();
        let shown: Vec<bool> = (0..b.channels())
            .map(|k| (bands >> k.min(63)) & 1 == 1)
            .collect();
        let mut fresh = Vec::new();
        for (i, name) in loaded.names.iter().enumerate() {
            let rgb = anomalymatch_io::display::to_rgb8_bands(
                b.image(i),
                b.channels(),
                b.height(),
                b.width(),
                &shown,
            )
            .map_err(|e| e.to_string())?;
            if bands == ALL_BANDS {
                let thumb = image::imageops::thumbnail(&rgb, THUMB, THUMB);
                fresh.push(((name.clone(), Size::Thumb, bands), Arc::new(png(&thumb)?)));
            }
            fresh.push(((name.clone(), Size::Large, bands), Arc::new(png(&rgb)?)));
        }
        let mut cache = lock(&self.cache);
        if cache.len() + fresh.len() > CACHE_ENTRIES {
            cache.clear();
        }
        cache.extend(fresh);
        Ok(())
    }
}

fn png(rgb: &image::RgbImage) -> Result<Vec<u8>, String> {
    let mut out = std::io::Cursor::new(Vec::new());
    rgb.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// Locks a mutex, taking the data over from a thread that panicked while holding it: the
/// caches and the source stay usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
