//! The TOML configuration, through the same loading and checking as every subcommand.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("config.toml", data);
    let _ = anomalymatch_jobs::load(Some(&path), &[]);
});
