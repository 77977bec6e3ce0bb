//! Seed derivation, so that random streams do not depend on thread count or order of work.

use rand::SeedableRng;
use rand::rngs::StdRng;

/// Mixes a base seed with a stream id and an item index into an independent 64-bit seed.
///
/// Parallel code gives each item its own generator seeded with `derive_seed(seed, stream, i)`,
/// which makes results identical whatever the number of threads. SplitMix64 finalisers keep
/// nearby inputs far apart.
pub fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = splitmix(seed ^ splitmix(stream.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    z = splitmix(z ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z
}

/// A seeded generator for item `index` of `stream`.
pub fn item_rng(seed: u64, stream: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(derive_seed(seed, stream, index))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_per_stream_and_index() {
        let a = derive_seed(42, 0, 0);
        assert_ne!(a, derive_seed(42, 0, 1));
        assert_ne!(a, derive_seed(42, 1, 0));
        assert_ne!(a, derive_seed(43, 0, 0));
        assert_eq!(a, derive_seed(42, 0, 0));
    }
}
