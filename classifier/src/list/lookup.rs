//! A list's merged ranges laid out for per-packet lookups: a search of a few ranges, a trie of
//! /16 buckets (with runs, nodes and bitmaps) for many 32-bit ones, and an index by the top 16
//! bits for IPv6.

use crate::set::{IntervalSet, in_ranges};

/// A list's ranges laid out for lookups. Measured on 100,000 prefixes (docs/benchmarks.md):
/// a binary search over all the ranges cost about as much as the whole rule table lookup
/// after it; an index of where each /16's ranges start, then a search of those, about 21 ns
/// (two dependent cache misses); the trie with the ranges in its buckets, 11.5 ns.
#[derive(Debug)]
pub(super) enum Lookup {
    /// Numbers, and IPv4 networks (whose 128-bit ranges are whole blocks of 2^96): 32-bit
    /// values, after a right shift by `by`.
    Narrow { by: u32, table: NarrowTable },
    /// IPv6: an index by the value's top 16 bits narrows the search to the ranges of one
    /// bucket (`first[b]`: the first range that ends at or after bucket `b`'s first value).
    Wide { ranges: Vec<(u128, u128)>, first: Vec<u32> },
}

/// The 32-bit ranges of a list, by size.
#[derive(Debug)]
pub(super) enum NarrowTable {
    /// Up to [`NarrowTable::FEW`] ranges (start, end), in order: a binary search within a
    /// cache line or a few.
    Few(Vec<(u32, u32)>),
    /// A three-level trie by the value's top 16 bits, then 8, then 8, whose entries hold
    /// their few ranges in place ([`Bucket`]): one cache line's read answers a lookup in a
    /// /16 with up to four ranges (98% of the /16s for 100,000 random prefixes). Lists
    /// cluster (a botnet's addresses in a few provider networks), so a /16 with more
    /// ranges has them in a [`Run`] (up to 16, one cache line), or with more than that in a
    /// node of 256 buckets by the next 8 bits (`nodes`), whose buckets with more than four
    /// ranges are a bitmap of their 256 values (`bitmaps`).
    Trie { top: Box<[Bucket]>, runs: Vec<Run>, nodes: Vec<[Bucket; 256]>, bitmaps: Vec<[u64; 4]> },
}

/// The ranges of a bucket, as (start, end) offsets from the bucket's first value packed into
/// a `u32` (`start << 16 | end`), up to four; unused places hold [`EMPTY`]. A bucket with
/// more holds a marker first and where they are after it. Aligned so that it never
/// straddles two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub(super) struct Bucket([u32; 4]);

/// Up to 16 packed ranges, unused places [`EMPTY`]: one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Run([u32; 16]);

/// A packed range that holds nothing (start 1, end 0).
const EMPTY: u32 = 0x0001_0000;

impl Bucket {
    /// Not a range (start after end): the ranges are in `runs[p[1]]`.
    const RUN: u32 = 0xffff_0000;
    /// Not a range: the ranges are in `nodes[p[1]]`.
    const NODE: u32 = 0xfffe_0000;
    /// Not a range: the values in the list are the bits of `bitmaps[p[1]]`.
    const BITMAP: u32 = 0xfffd_0000;

    /// A bucket holding `ranges` (packed) in place.
    fn inline(ranges: &[u32]) -> Bucket {
        let mut places = [EMPTY; 4];
        places[..ranges.len()].copy_from_slice(ranges);
        Bucket(places)
    }
}

/// Whether offset `low` lies in one of the packed `ranges`: a compare per range, or-ed, no
/// branch.
#[inline(always)]
fn holds(ranges: &[u32], low: u32) -> bool {
    ranges.iter().fold(false, |any, &range| any | ((range >> 16) <= low && low <= (range & 0xffff)))
}

/// `ranges` (start, end offsets, sorted, disjoint) cut at every multiple of `2^bits`: for
/// each piece, which part (`start >> bits`) and its packed offsets within that part. In part
/// order, and in order within a part; a range spanning whole parts adds one piece per part.
fn cut(ranges: impl IntoIterator<Item = (u32, u32)>, bits: u32) -> Vec<(u32, u32)> {
    let mask = (1u32 << bits) - 1;
    let mut pieces = Vec::new();
    for (lo, hi) in ranges {
        for part in (lo >> bits)..=(hi >> bits) {
            let start = if part == lo >> bits { lo & mask } else { 0 };
            let end = if part == hi >> bits { hi & mask } else { mask };
            pieces.push((part, start << 16 | end));
        }
    }
    pieces
}

impl NarrowTable {
    /// Lists of up to this many ranges are searched directly: a 1 MiB bucket table would
    /// turn their few cache lines into a cache miss per lookup.
    const FEW: usize = 64;
    /// A /16 with up to this many ranges keeps them in place (one cache line).
    const PLACES: usize = 4;
    /// A /16 with up to this many ranges keeps them in a [`Run`] (64 bytes; the next cache
    /// line); more get a node of 256 buckets (4 KiB: at most 241 bytes per range).
    const RUN: usize = 16;

    fn new(ranges: Vec<(u32, u32)>) -> NarrowTable {
        if ranges.len() <= Self::FEW {
            return NarrowTable::Few(ranges);
        }
        let mut top = vec![Bucket::inline(&[]); 1 << 16].into_boxed_slice();
        let (mut runs, mut nodes, mut bitmaps) = (Vec::new(), Vec::new(), Vec::new());
        for group in cut(ranges, 16).chunk_by(|a, b| a.0 == b.0) {
            let packed: Vec<u32> = group.iter().map(|&(_, range)| range).collect();
            top[group[0].0 as usize] = if packed.len() <= Self::PLACES {
                Bucket::inline(&packed)
            } else if packed.len() <= Self::RUN {
                let mut run = Run([EMPTY; 16]);
                run.0[..packed.len()].copy_from_slice(&packed);
                runs.push(run);
                Bucket([Bucket::RUN, (runs.len() - 1) as u32, 0, 0])
            } else {
                nodes.push(Self::node(&packed, &mut bitmaps));
                Bucket([Bucket::NODE, (nodes.len() - 1) as u32, 0, 0])
            };
        }
        NarrowTable::Trie { top, runs, nodes, bitmaps }
    }

    /// The node of a /16's `packed` ranges: 256 buckets by the next 8 bits.
    fn node(packed: &[u32], bitmaps: &mut Vec<[u64; 4]>) -> [Bucket; 256] {
        let mut node = [Bucket::inline(&[]); 256];
        let offsets = packed.iter().map(|&r| (r >> 16, r & 0xffff));
        for group in cut(offsets, 8).chunk_by(|a, b| a.0 == b.0) {
            node[group[0].0 as usize] = if group.len() <= Self::PLACES {
                Bucket::inline(&group.iter().map(|&(_, range)| range).collect::<Vec<_>>())
            } else {
                let mut bits = [0u64; 4];
                for &(_, range) in group {
                    for v in range >> 16..=range & 0xff {
                        bits[(v >> 6) as usize] |= 1 << (v & 63);
                    }
                }
                bitmaps.push(bits);
                Bucket([Bucket::BITMAP, (bitmaps.len() - 1) as u32, 0, 0])
            };
        }
        node
    }

    #[inline]
    pub(super) fn contains(&self, value: u32) -> bool {
        match self {
            NarrowTable::Few(ranges) => in_ranges(ranges, value),
            NarrowTable::Trie { top, runs, nodes, bitmaps } => {
                let Some(bucket) = top.get((value >> 16) as usize) else { return false };
                let low = value & 0xffff;
                match bucket.0 {
                    [Bucket::RUN, run, _, _] => runs.get(run as usize).is_some_and(|r| holds(&r.0, low)),
                    [Bucket::NODE, node, _, _] => {
                        let Some(bucket) = nodes.get(node as usize).map(|n| &n[(low >> 8) as usize]) else {
                            return false;
                        };
                        let low = low & 0xff;
                        match bucket.0 {
                            [Bucket::BITMAP, bitmap, _, _] => bitmaps
                                .get(bitmap as usize)
                                .is_some_and(|b| b[(low >> 6) as usize] >> (low & 63) & 1 == 1),
                            _ => holds(&bucket.0, low),
                        }
                    }
                    _ => holds(&bucket.0, low),
                }
            }
        }
    }
}

impl Lookup {
    const BUCKETS: usize = 1 << 16;
    /// A wide value's bucket is its top 16 bits.
    const WIDE_SHIFT: u32 = 128 - 16;

    /// `width`: the bits values of this set use (32 for numbers, 128 for addresses).
    pub(super) fn new(set: &IntervalSet, width: u32) -> Lookup {
        let all = set.ranges();
        // IPv4 networks: every range starts and ends on a 2^96 boundary.
        let low = u128::MAX >> 32;
        let narrow_by = match width {
            32 => Some(0),
            _ if all.iter().all(|&(lo, hi)| lo & low == 0 && hi & low == low) => Some(96),
            _ => None,
        };
        match narrow_by {
            Some(by) => Lookup::Narrow {
                by,
                table: NarrowTable::new(all.iter().map(|&(lo, hi)| ((lo >> by) as u32, (hi >> by) as u32)).collect()),
            },
            None => Lookup::Wide { first: Self::first_of_buckets(all), ranges: all.to_vec() },
        }
    }

    /// For each bucket (`value >> WIDE_SHIFT`), the first of `ranges` that ends at or after
    /// its first value; then one past the last range.
    fn first_of_buckets(ranges: &[(u128, u128)]) -> Vec<u32> {
        let mut first = Vec::with_capacity(Self::BUCKETS + 1);
        let mut i = 0usize;
        for b in 0..Self::BUCKETS as u128 {
            let bucket_start = b << Self::WIDE_SHIFT;
            while i < ranges.len() && ranges[i].1 < bucket_start {
                i += 1;
            }
            first.push(i as u32);
        }
        first.push(ranges.len() as u32); // past the last bucket (whose start would overflow)
        first
    }

    #[inline]
    pub(super) fn contains(&self, value: u128) -> bool {
        match self {
            Lookup::Narrow { by, table } => u32::try_from(value >> by).is_ok_and(|v| table.contains(v)),
            Lookup::Wide { ranges, first } => {
                let b = ((value >> Self::WIDE_SHIFT) as usize).min(Self::BUCKETS - 1);
                let lo = first[b] as usize;
                // The next bucket's first range may start inside this one: a candidate too.
                let hi = (first[b + 1] as usize + 1).min(ranges.len());
                ranges.get(lo..hi).is_some_and(|candidates| in_ranges(candidates, value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout answers as a linear scan of the merged ranges does, on the ranges' own
    /// edges and on random values.
    #[test]
    fn lookups_answer_as_a_scan_of_the_ranges() {
        let mut state = 1u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 16
        };
        let scan = |set: &IntervalSet, v: u128| set.ranges().iter().any(|&(lo, hi)| lo <= v && v <= hi);
        let check = |set: &IntervalSet, lookup: &Lookup, extra: &[u128], what: &str| {
            let edges = set.ranges().iter().flat_map(|&(lo, hi)| [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
            for v in edges.chain(extra.iter().copied()) {
                assert_eq!(lookup.contains(v), scan(set, v), "{what}, value {v:#x}");
            }
        };
        for width in [32u32, 128] {
            let scale = |v: u64| if width == 32 { u128::from(v as u32) } else { u128::from(v) << 80 };
            let step = if width == 32 { 1 } else { 1u128 << 70 };
            let max = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
            let top = max - (max >> 15);
            let randoms: Vec<u128> = (0..2000).map(|_| scale(next())).chain([0, max, max - 1, max >> 1]).collect();
            // Spread everywhere, the top bucket among them; a few; many in a few buckets
            // (more than a bucket holds in place); ranges across many buckets.
            let spread: Vec<(u128, u128)> = (0..500)
                .map(|_| {
                    let lo = scale(next());
                    (lo, lo + u128::from(next() % 5000) * step)
                })
                .chain([(top, top + 10), (top + 100, top + 200), (max - 5, max)])
                .collect();
            let few: Vec<(u128, u128)> = spread[..10].to_vec();
            let base = scale(0x1234_0000_0000);
            let dense: Vec<(u128, u128)> =
                (0..2000u128).map(|i| (base + i * 7 * step, base + (i * 7 + 3) * step)).collect();
            let wide: Vec<(u128, u128)> =
                (0..100u128).map(|i| (i * (max / 100), i * (max / 100) + max / 300)).collect();
            for (what, ranges) in [("spread", spread), ("few", few), ("dense", dense), ("across buckets", wide)] {
                let set = IntervalSet::from_ranges(ranges);
                let lookup = Lookup::new(&set, width);
                let inside: Vec<u128> = (0..2000).map(|i| base + i * step).collect();
                check(
                    &set,
                    &lookup,
                    &[randoms.as_slice(), inside.as_slice()].concat(),
                    &format!("{what}, width {width}"),
                );
            }
        }
        assert!(!Lookup::new(&IntervalSet::empty(), 32).contains(7));
        // IPv4 networks: whole 2^96 blocks, kept as 32-bit ranges.
        let block = |a: u64| u128::from(a as u32) << 96;
        let ranges: Vec<(u128, u128)> = (0..500)
            .map(|_| {
                let a = next();
                (block(a), block(a.saturating_add(next() % 5000)) | (u128::MAX >> 32))
            })
            .chain([(block(u64::from(u32::MAX)), u128::MAX)])
            // Clustered: 40 in 10.0/16 (a node, with bitmaps for its crowded /24s), 40 in
            // 10.2/16 spread over its /24s (a node of buckets), 8 in 10.1/16 (a run).
            .chain((0..40).map(|i| (block(0x0a00_0000 + i * 16), block(0x0a00_0000 + i * 16 + 3) | (u128::MAX >> 32))))
            .chain(
                (0..40).map(|i| (block(0x0a02_0000 + i * 1000), block(0x0a02_0000 + i * 1000 + 9) | (u128::MAX >> 32))),
            )
            .chain((0..8).map(|i| (block(0x0a01_0000 + i * 99), block(0x0a01_0000 + i * 99 + 1) | (u128::MAX >> 32))))
            .collect();
        let set = IntervalSet::from_ranges(ranges);
        let lookup = Lookup::new(&set, 128);
        let Lookup::Narrow { by: 96, table: NarrowTable::Trie { runs, nodes, bitmaps, .. } } = &lookup else {
            panic!("IPv4 networks are kept as 32-bit ranges in a trie: {lookup:?}")
        };
        assert_eq!((runs.len(), nodes.len(), bitmaps.len()), (1, 2, 3), "the clusters are split as they should be");
        let clusters = (0..3).flat_map(|c| (0..0x10000).step_by(7).map(move |i| block(0x0a00_0000 + (c << 16) + i)));
        let randoms: Vec<u128> = (0..2000).map(|_| block(next())).chain(clusters).collect();
        check(&set, &lookup, &randoms, "IPv4");
    }
}
