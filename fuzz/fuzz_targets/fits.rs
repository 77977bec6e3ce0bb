//! FITS files: every HDU of one file, as a multi-extension source, decoded as one band.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("cutouts.fits", data);
    if let Ok(mut source) = anomalymatch_io::FitsFileSource::open(&path) {
        anomalymatch_fuzz::drain(&mut source, 1);
    }
});
