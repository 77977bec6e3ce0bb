//! Thread pools for CPU training and inference.
//!
//! Our kernels run on rayon's pool; candle's own elementwise ops (residual adds, gradient
//! accumulation, the optimiser's updates) run on a second pool whose threads spin while they
//! wait, competing with rayon's for the same cores. Giving candle's pool one thread (the caller's)
//! measured faster: a Lite0 training step of 176 images at 96x96 took 2.92 s instead of 3.50 s
//! on 2 cores (`cargo bench --bench model`).

/// Sets `CANDLE_NUM_THREADS=1` unless the user already set it, so candle's elementwise ops stay
/// on the calling thread and leave the cores to rayon. candle reads the variable and offers no
/// setter, so the process environment is the only way in.
///
/// # Safety
///
/// It writes the process environment, which is sound only while no other thread reads or
/// writes it: call it first thing in `main`, before any thread (rayon's pool included) starts.
pub unsafe fn one_candle_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that no other thread exists yet.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}
