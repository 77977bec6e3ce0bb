//! The legacy PyTorch `.pth` reader (a zip of pickles and tensor storages).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("weights.pth", data);
    let _ = anomalymatch_models::pth::read_pth(&path);
});
