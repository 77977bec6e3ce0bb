use crate::fixture;
use anomalymatch_io::{SourceOptions, open_source};

/// Opens and reads `bytes` written as `name`; errors are fine, panics are not.
fn read_all(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    if let Ok(mut source) = open_source(&path, &SourceOptions::default()) {
        while let Ok(chunk) = source.next_chunk(3) {
            if chunk.is_empty() {
                break;
            }
        }
        let _ = source.rewind();
    }
}

#[test]
fn truncated_or_damaged_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (file, step) in [
        ("fits/mef.fits", 997),
        ("fits/folder/gz.fits.gz", 17),
        ("h5/encoded_gzip.h5", 211),
        ("h5/cube_f32_nchw.h5", 211),
        ("zip/images.zip", 61),
    ] {
        let whole = std::fs::read(fixture(file)).unwrap();
        let name = file.rsplit('/').next().unwrap();
        for cut in (0..whole.len()).step_by(step) {
            read_all(dir.path(), name, &whole[..cut]);
            // The same length with one byte changed.
            let mut damaged = whole.clone();
            damaged[cut] ^= 0x5a;
            read_all(dir.path(), name, &damaged);
        }
    }
}

/// Inputs the fuzzer (fuzz/run.sh) found to crash a reader, read and decoded as the fuzz
/// target does.
#[test]
fn files_that_crashed_the_fuzzer_are_errors() {
    use anomalymatch_core::{ChannelMode, Check, DataConfig};
    let loader = DataConfig {
        size: 16,
        channels: ChannelMode::Keep(1),
        max_pixels: 1 << 22,
        ..DataConfig::default()
    }
    .check()
    .unwrap()
    .build(())
    .unwrap();
    for file in ["h5/fuzz-crash-1.h5"] {
        let path = fixture(file);
        if let Ok(mut source) = open_source(&path, &SourceOptions::default()) {
            while let Ok(chunk) = source.next_chunk(8) {
                if chunk.is_empty() {
                    break;
                }
                let _ = loader.decode_chunk(&chunk);
            }
        }
    }
}
