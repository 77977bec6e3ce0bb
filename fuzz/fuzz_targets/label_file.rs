//! The label file (`filename,label` CSV with optional extra columns).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.csv");
    if let Ok(table) = anomalymatch_core::LabelTable::from_reader(data, path) {
        // What was read must write back.
        let mut out = Vec::new();
        table.write_to(&mut out).expect("a table read must write");
    }
});
