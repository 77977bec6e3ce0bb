//! The class file of simulated experts (`filename,class`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = anomalymatch_fuzz::file_with("classes.csv", data);
    if let Ok(table) = anomalymatch_core::ClassTable::read(&path) {
        let _ = table.labels("merger", &["other".to_string()]);
    }
});
