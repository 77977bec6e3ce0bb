//! Inner loops shared by the kernels, written so that LLVM vectorises them, with AVX2+FMA
//! versions chosen at run time on x86-64 (the default target only assumes SSE2).

/// Lanes of the dot-product accumulators: two AVX registers, so consecutive fused
/// multiply-adds do not wait on each other.
const LANES: usize = 16;

/// `y += a * x` over the common length of `x` and `y`.
#[inline]
pub(super) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { axpy_avx2(a, x, y) };
        return;
    }
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Dot product over the common length of `a` and `b`.
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_lanes(a, b, |acc, x, y| acc + x * y)
}

/// Dot product with `LANES` independent partial sums: a single running sum is a serial
/// dependency that LLVM may not reorder (float addition is not associative), so it would not
/// vectorise.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], madd: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(0.0, |s, (&x, &y)| madd(s, x, y));
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] = madd(acc[i], x[i], y[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Runs `f` compiled for AVX2 and FMA where the CPU has them, so the loops inside use 256-bit
/// vectors instead of the default target's 128-bit SSE2.
///
/// LLVM vectorises loops after inlining, so whatever `f` does (iterator chains included) is
/// compiled for the wider instructions once `f` is inlined into the `#[target_feature]`
/// function. Mark the closure `#[inline(always)]`: it is called from two places, and LLVM
/// does not inline a large function called twice on its own. Kernels call this once per rayon
/// task; the feature test is a cached load.
#[inline(always)]
pub(super) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        return unsafe { wide_avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn wide_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = a.mul_add(xi, *yi);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b, |acc, x, y| x.mul_add(y, acc))
}
