//! HDF5 files in either layout (encoded images, or numeric cubes), with the default names.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("cutouts.h5", data);
    let options = anomalymatch_io::Hdf5Options::default();
    if let Ok(mut source) = anomalymatch_io::Hdf5Source::open(&path, &options) {
        anomalymatch_fuzz::drain(&mut source, 1);
    }
});
