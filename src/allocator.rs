//! A global allocator for binaries that run training or inference on the CPU.
//!
//! Every candle op writes a fresh output buffer. The system allocator returns large freed
//! buffers to the OS, and so does mimalloc after a short delay by default, so the next op's
//! buffer page-faults into memory the kernel must zero first. Keeping freed pages avoids that.
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;
//!
//! fn main() {
//!     anomalymatch::allocator::keep_freed_pages();
//!     // ...
//! }
//! ```

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its position in the `mi_option_e` enum of
/// `mimalloc.h` (v2 and v3), which the Rust bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Address space reserved up front for mimalloc. A default training step holds about 1.9 GB;
/// in mimalloc's first arena (1 GiB) its largest tensors (up to 160 MB each) find no room, go
/// to the OS directly and are unmapped when freed, whatever the purge delay, so every step
/// faulted them in again: 8% of a step went to the kernel zeroing pages, 4% with this
/// reserve. Reserving address space commits no memory.
const ARENA_BYTES: usize = 4 << 30;

/// Tells mimalloc never to return freed memory to the OS (`purge_delay = -1`, what
/// `MIMALLOC_PURGE_DELAY=-1` does), and reserves it room to keep it in, trading resident
/// memory for fewer page faults.
///
/// Only matters where [`MiMalloc`] is the global allocator; call it early in `main`.
pub fn keep_freed_pages() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table; it is valid
    // to call at any time, from any thread, whether or not mimalloc serves allocations.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // Once per process: each call would reserve another arena.
    static RESERVE: std::sync::Once = std::sync::Once::new();
    RESERVE.call_once(|| {
        let mut arena = std::mem::MaybeUninit::<libmimalloc_sys::mi_arena_id_t>::uninit();
        // SAFETY: reserves address space for mimalloc's own use and writes the arena's id to
        // a local that is never read. Where it fails (no address space left), allocation
        // goes on from the OS as before, so the error code is not needed.
        unsafe {
            libmimalloc_sys::mi_reserve_os_memory_ex(
                ARENA_BYTES,
                false,
                false,
                false,
                arena.as_mut_ptr(),
            )
        };
    });
}
