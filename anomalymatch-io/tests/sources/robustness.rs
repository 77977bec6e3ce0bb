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

/// Inputs the fuzzer (fuzz/run.sh) found to crash a reader (an overflow; a names dataset
/// declaring terabytes, which the reader allocated before reading), read and decoded as the
/// fuzz target does.
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
    for file in ["h5/fuzz-crash-1.h5", "h5/fuzz-oom-1.h5"] {
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

#[test]
fn a_dataset_declaring_more_than_the_file_can_hold_is_refused_before_allocation() {
    let Err(e) = open_source(fixture("h5/fuzz-oom-1.h5"), &SourceOptions::default()) else {
        panic!("a names dataset of terabytes in a 6 KB file opened");
    };
    let message = e.to_string();
    assert!(message.contains("fuzz-oom-1.h5"), "{message}");
    assert!(message.contains("limit"), "{message}");
}
