//! The `anomalymatch` command (see `anomalymatch --help`); the application lives in the
//! `anomalymatch-app` crate.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { anomalymatch::threads::one_candle_thread() };
    anomalymatch::allocator::keep_freed_pages();
    anomalymatch_app::run()
}
