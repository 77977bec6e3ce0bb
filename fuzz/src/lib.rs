//! What the fuzz targets share: most parsers read a path, so each input is written to a file
//! in a private temporary folder (on tmpfs where there is one) and read back from there.

pub mod server;

use std::path::PathBuf;
use std::sync::OnceLock;

/// A per-process scratch folder; `/dev/shm` keeps the file round trip in memory.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = ["/dev/shm", "/tmp"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("anomalymatch-fuzz.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// A folder called `name` in the scratch folder, created.
pub fn folder(name: &str) -> PathBuf {
    let path = scratch().join(name);
    std::fs::create_dir_all(&path).expect("scratch folder");
    path
}

/// Writes `data` to a file called `name` (folders created) in the scratch folder and returns
/// its path.
pub fn file_with(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch folder");
    }
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// A loader at a small size keeping `channels` bands, as a job would build it.
fn loader(channels: usize) -> Option<anomalymatch_core::ImageLoader> {
    use anomalymatch_core::{ChannelMode, Check, DataConfig};
    let config = DataConfig {
        size: 16,
        channels: ChannelMode::Keep(channels),
        max_pixels: 1 << 22,
        ..DataConfig::default()
    };
    config.check().ok()?.build(()).ok()
}

/// Decodes `items` with `channels` bands; errors are fine, panics are what the fuzzer looks for.
pub fn decode(items: &[anomalymatch_core::SourceImage], channels: usize) {
    if let Some(loader) = loader(channels) {
        let _ = loader.decode_chunk(items);
    }
}

/// Reads and decodes up to 512 items of `source`, chunk by chunk, as a job would.
pub fn drain(source: &mut dyn anomalymatch_core::ImageSource, channels: usize) {
    for _ in 0..64 {
        match source.next_chunk(8) {
            Ok(chunk) if !chunk.is_empty() => decode(&chunk, channels),
            _ => break,
        }
    }
}
