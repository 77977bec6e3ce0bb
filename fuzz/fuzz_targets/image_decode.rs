//! Encoded images (JPEG, PNG, TIFF, whatever the bytes say) through the loader's decoder.
#![no_main]
use anomalymatch_core::{ImagePayload, SourceImage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let item = SourceImage {
        name: "fuzz".into(),
        origin: "fuzz".into(),
        payload: ImagePayload::Encoded(data.to_vec()),
    };
    anomalymatch_fuzz::decode(&[item], 3);
});
