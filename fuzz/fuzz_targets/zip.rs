//! Zip archives of images, read member by member.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("cutouts.zip", data);
    if let Ok(mut source) = anomalymatch_io::ZipSource::open(&path) {
        anomalymatch_fuzz::drain(&mut source, 3);
    }
});
