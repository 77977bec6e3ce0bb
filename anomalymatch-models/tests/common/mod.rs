//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the workspace, or `$ANOMALYMATCH_SHARED`; `None` (after printing why)
/// when absent, so tests that need real data or weights skip.
pub fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("ANOMALYMATCH_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    };
    if dir.join(what).exists() {
        Some(dir)
    } else {
        println!(
            "skipping: {} not found (set ANOMALYMATCH_SHARED)",
            dir.join(what).display()
        );
        None
    }
}
