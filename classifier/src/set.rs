//! Sets of `u128` values as sorted, disjoint, non-adjacent inclusive intervals.
//!
//! Every literal a rule compares against (a value, a CIDR network, a set with ranges, the
//! values below a bound) becomes one of these, and so does its complement, which is how
//! `!=` and `not` reach the compiler as plain intervals.

/// A set of `u128` values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct IntervalSet {
    /// Sorted by start, pairwise disjoint and non-adjacent; each `(lo, hi)` has `lo <= hi`.
    ranges: Vec<(u128, u128)>,
}

impl IntervalSet {
    /// The empty set.
    pub fn empty() -> IntervalSet {
        IntervalSet { ranges: Vec::new() }
    }

    /// `{lo..=hi}`, empty when `lo > hi`.
    pub fn range(lo: u128, hi: u128) -> IntervalSet {
        let mut set = IntervalSet::empty();
        if lo <= hi {
            set.ranges.push((lo, hi));
        }
        set
    }

    /// `{value}`.
    pub fn single(value: u128) -> IntervalSet {
        IntervalSet::range(value, value)
    }

    /// The intervals, sorted and disjoint.
    pub fn ranges(&self) -> &[(u128, u128)] {
        &self.ranges
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// True when `value` is in the set.
    pub fn contains(&self, value: u128) -> bool {
        in_ranges(&self.ranges, value)
    }

    /// Every value in either set.
    pub fn union(&self, other: &IntervalSet) -> IntervalSet {
        IntervalSet::from_ranges(self.ranges.iter().chain(&other.ranges).copied().collect())
    }

    /// The union of inclusive intervals in any order (those with `lo > hi` hold nothing), in
    /// O(n log n).
    pub fn from_ranges(mut all: Vec<(u128, u128)>) -> IntervalSet {
        all.retain(|&(lo, hi)| lo <= hi);
        all.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(all.len());
        for (lo, hi) in all {
            match out.last_mut() {
                // Merge overlapping or adjacent intervals (`last.1 + 1 >= lo`, without overflow).
                Some(last) if last.1 >= lo || last.1 + 1 == lo => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        IntervalSet { ranges: out }
    }

    /// Every value in both sets.
    pub fn intersect(&self, other: &IntervalSet) -> IntervalSet {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a_lo, a_hi) = self.ranges[i];
            let (b_lo, b_hi) = other.ranges[j];
            let lo = a_lo.max(b_lo);
            let hi = a_hi.min(b_hi);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a_hi < b_hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet { ranges: out }
    }

    /// Whether every value of this set is in `other`: each of its intervals lies inside one
    /// of `other`'s (canonical sets: intervals never touch), in one walk of both.
    pub fn is_subset(&self, other: &IntervalSet) -> bool {
        let mut theirs = other.ranges.iter().peekable();
        self.ranges.iter().all(|&(lo, hi)| {
            while theirs.peek().is_some_and(|&&(_, h)| h < lo) {
                theirs.next();
            }
            theirs.peek().is_some_and(|&&(l, h)| l <= lo && hi <= h)
        })
    }

    /// Every value in `0..=max` that is not in the set.
    pub fn complement(&self, max: u128) -> IntervalSet {
        let mut out = Vec::new();
        let mut next = Some(0u128); // the smallest value not yet covered
        for &(lo, hi) in &self.ranges {
            let Some(start) = next else { break };
            if lo > max {
                break;
            }
            if lo > start {
                out.push((start, lo - 1));
            }
            next = hi.checked_add(1);
        }
        if let Some(start) = next
            && start <= max
        {
            out.push((start, max));
        }
        IntervalSet { ranges: out }
    }
}

/// Whether `value` lies in one of `ranges` (inclusive, sorted, disjoint): a binary search
/// for the last range starting at or before it.
#[inline]
pub(crate) fn in_ranges<T: Copy + Ord>(ranges: &[(T, T)], value: T) -> bool {
    let i = ranges.partition_point(|&(lo, _)| lo <= value);
    i > 0 && ranges[i - 1].1 >= value
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(set: &IntervalSet, universe: u128) -> Vec<u128> {
        (0..=universe).filter(|v| set.contains(*v)).collect()
    }

    fn small_set() -> impl Strategy<Value = IntervalSet> {
        prop::collection::vec((0u128..40, 0u128..8), 0..5).prop_map(|v| {
            v.into_iter().fold(IntervalSet::empty(), |s, (lo, len)| s.union(&IntervalSet::range(lo, lo + len)))
        })
    }

    proptest! {
        #[test]
        fn operations_agree_with_element_sets(a in small_set(), b in small_set()) {
            let u: u128 = 60;
            let ea = brute(&a, u);
            let eb = brute(&b, u);
            let union: Vec<u128> = (0..=u).filter(|v| ea.contains(v) || eb.contains(v)).collect();
            let inter: Vec<u128> = (0..=u).filter(|v| ea.contains(v) && eb.contains(v)).collect();
            let comp: Vec<u128> = (0..=u).filter(|v| !ea.contains(v)).collect();
            prop_assert_eq!(brute(&a.union(&b), u), union);
            prop_assert_eq!(brute(&a.intersect(&b), u), inter);
            prop_assert_eq!(brute(&a.complement(u), u), comp);
            prop_assert_eq!(a.is_subset(&b), ea.iter().all(|v| eb.contains(v)));
            // Canonical form: no two intervals touch.
            for w in a.union(&b).ranges().windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0);
            }
        }
    }

    #[test]
    fn complement_reaches_the_top_of_u128() {
        let set = IntervalSet::single(5);
        assert_eq!(set.complement(u128::MAX).ranges(), &[(0, 4), (6, u128::MAX)]);
        assert!(IntervalSet::range(0, u128::MAX).complement(u128::MAX).is_empty());
    }
}
