//! Checkpoints: the header alone, then the whole model when the header is sound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("checkpoint.safetensors", data);
    if anomalymatch_core::checkpoint::CheckpointInfo::read(&path).is_ok() {
        let _ = anomalymatch_models::from_checkpoint(&path, &candle_core::Device::Cpu);
    }
});
