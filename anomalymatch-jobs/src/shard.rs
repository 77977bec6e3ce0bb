//! Shards of a scoring run: the source's items are cut into parts of `score.part_size`
//! consecutive items, and shard `I/N` takes a contiguous run of whole parts. Every source has a
//! known length and addresses items by index, so this works for all of them; and since parts
//! start at the same items however the run is sharded, each image is scored in the same batch
//! as in a single run, and merged shards give exactly its scores.

use crate::error::{JobError, Result};
use std::ops::Range;
use std::str::FromStr;

/// Shard `index` of `count` (shown and written as `index/count`, from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: usize,
    /// How many shards there are.
    pub count: usize,
}

impl Shard {
    /// The whole run as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The parts of this shard when `items` images are cut into parts of `part_size`.
    pub fn parts(&self, items: usize, part_size: usize) -> Range<usize> {
        let parts = items.div_ceil(part_size.max(1));
        // u128: `parts * count` cannot overflow for any realistic source, but costs nothing to
        // make exact.
        let bound = |i: usize| (i as u128 * parts as u128 / self.count as u128) as usize;
        bound(self.index)..bound(self.index + 1)
    }

    /// The items of part `part`.
    pub fn part_items(part: usize, items: usize, part_size: usize) -> Range<usize> {
        let start = part.saturating_mul(part_size).min(items);
        start..start.saturating_add(part_size).min(items)
    }

    /// The items of this shard.
    pub fn items(&self, items: usize, part_size: usize) -> Range<usize> {
        let parts = self.parts(items, part_size);
        Shard::part_items(parts.start, items, part_size).start
            ..Shard::part_items(parts.end, items, part_size).start
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = JobError;

    /// `I/N` with `0 <= I < N`; errors name the `--shard` option.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = |why: &str| JobError::Usage(format!("--shard {s}: {why}"));
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected I/N, e.g. 0/4 for the first of four shards"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad("I is not a whole number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index >= count {
            return Err(bad(&format!(
                "I must be below N (shards are numbered 0 to {})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shards_cover_every_item_once_in_whole_parts() {
        for (items, part, count) in [(0, 5, 3), (1, 5, 4), (23, 5, 4), (100, 10, 3), (7, 100, 2)] {
            let mut next = 0;
            for index in 0..count {
                let shard = Shard { index, count };
                let range = shard.items(items, part);
                assert_eq!(range.start, next, "{items} {part} {shard}");
                assert!(range.start.is_multiple_of(part) || range.is_empty());
                next = range.end;
            }
            assert_eq!(next, items);
        }
        assert_eq!(Shard::WHOLE.items(23, 5), 0..23);
        assert_eq!(Shard::part_items(4, 23, 5), 20..23);
    }

    #[test]
    fn specs_parse_and_bad_ones_name_the_option() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["5/4", "4/4", "1/0", "x/2", "3", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(matches!(e, JobError::Usage(_)));
            assert!(e.to_string().starts_with("--shard "), "{e}");
        }
    }
}
