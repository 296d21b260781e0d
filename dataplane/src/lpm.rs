//! `PrefixTable`: longest-prefix match as a binary search over disjoint address intervals;
//! `IpPrefixTable`: one for each family behind one lookup, the way the stages ask.
//!
//! Prefixes, nested or not, are flattened at build time into sorted, disjoint intervals that
//! each carry the value of the longest prefix covering them. A lookup is one binary search
//! over a flat array: no pointers to chase, no allocation, and the same code for IPv4 (`u32`)
//! and IPv6 (`u128`). Tables are built once per snapshot, never updated in place.

use std::fmt::Debug;

use ipnet::IpNet;

/// An address type usable as a key.
pub trait PrefixKey: Copy + Ord + Debug {
    /// Width in bits.
    const BITS: u32;
    /// The lowest address.
    const ZERO: Self;
    /// The last address of the network `self/len`.
    fn last_of(self, len: u8) -> Self;
    /// The first address of the network `self/len`.
    fn first_of(self, len: u8) -> Self;
    /// `self + 1`, or `None` at the top of the space.
    fn succ(self) -> Option<Self>;
}

macro_rules! prefix_key {
    ($t:ty) => {
        impl PrefixKey for $t {
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            fn last_of(self, len: u8) -> Self {
                self | <$t>::MAX.checked_shr(u32::from(len)).unwrap_or(0)
            }
            fn first_of(self, len: u8) -> Self {
                self & !<$t>::MAX.checked_shr(u32::from(len)).unwrap_or(0)
            }
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
        }
    };
}
prefix_key!(u32);
prefix_key!(u128);

/// A longest-prefix-match table from addresses of type `K` to values `V`.
#[derive(Clone, Debug)]
pub struct PrefixTable<K, V> {
    /// Interval starts, ascending, `starts[0] == 0`.
    starts: Vec<K>,
    /// `values[i]` holds for `starts[i]..starts[i + 1]`.
    values: Vec<Option<V>>,
}

impl<K: PrefixKey, V: Copy + PartialEq> Default for PrefixTable<K, V> {
    fn default() -> Self {
        PrefixTable { starts: vec![K::ZERO], values: vec![None] }
    }
}

impl<K: PrefixKey, V: Copy + PartialEq> PrefixTable<K, V> {
    /// Builds the table from `(network, prefix length, value)` entries. Where the same
    /// prefix appears twice, the later entry wins; callers reject duplicates first.
    pub fn build(entries: &[(K, u8, V)]) -> Self {
        let mut bounds = vec![K::ZERO];
        for &(net, len, _) in entries {
            bounds.push(net.first_of(len));
            if let Some(after) = net.last_of(len).succ() {
                bounds.push(after);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let mut values: Vec<Option<V>> = vec![None; bounds.len()];
        let mut by_len: Vec<&(K, u8, V)> = entries.iter().collect();
        // Shorter prefixes first, so that longer ones paint over them.
        by_len.sort_by_key(|e| e.1);
        for &&(net, len, value) in &by_len {
            let first = bounds.partition_point(|b| *b < net.first_of(len));
            let end = match net.last_of(len).succ() {
                Some(after) => bounds.partition_point(|b| *b < after),
                None => bounds.len(),
            };
            for v in &mut values[first..end] {
                *v = Some(value);
            }
        }
        // Merge neighbours that carry the same value.
        let mut starts = Vec::with_capacity(bounds.len());
        let mut merged: Vec<Option<V>> = Vec::with_capacity(bounds.len());
        for (b, v) in bounds.into_iter().zip(values) {
            if merged.last() != Some(&v) {
                starts.push(b);
                merged.push(v);
            }
        }
        PrefixTable { starts, values: merged }
    }

    /// The value of the longest prefix containing `addr`.
    #[inline]
    pub fn lookup(&self, addr: K) -> Option<V> {
        // starts[0] is zero, so the partition point is at least 1.
        let i = self.starts.partition_point(|s| *s <= addr);
        self.values.get(i.wrapping_sub(1)).copied().flatten()
    }

    /// What the addresses of the network `net/len` look up, interval by interval (`None`
    /// where no prefix holds them): each value is that of a longest match of some address
    /// in it, and a prefix all of whose addresses longer ones hold gives none.
    pub fn values_within(&self, net: K, len: u8) -> &[Option<V>] {
        // The interval holding its first address, then every one starting inside it.
        let from = self.starts.partition_point(|s| *s <= net.first_of(len)).saturating_sub(1);
        let to = self.starts.partition_point(|s| *s <= net.last_of(len));
        self.values.get(from..to).unwrap_or(&[])
    }
}

/// Longest-prefix match over IPv4 and IPv6 prefixes at once, asked with an address as the
/// classifier's `Key` holds it: a `u128`, an IPv4 address in its top 32 bits.
#[derive(Clone, Debug)]
pub struct IpPrefixTable<V> {
    v4: PrefixTable<u32, V>,
    v6: PrefixTable<u128, V>,
}

impl<V: Copy + PartialEq> Default for IpPrefixTable<V> {
    fn default() -> Self {
        IpPrefixTable { v4: PrefixTable::default(), v6: PrefixTable::default() }
    }
}

impl<V: Copy + PartialEq> IpPrefixTable<V> {
    /// Builds the table from `(prefix, value)` entries of either family (the later of two
    /// equal prefixes wins; callers reject duplicates first).
    pub fn build(entries: impl IntoIterator<Item = (IpNet, V)>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (net, value) in entries {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), n.prefix_len(), value)),
                IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len(), value)),
            }
        }
        IpPrefixTable { v4: PrefixTable::build(&v4), v6: PrefixTable::build(&v6) }
    }

    /// Every value some IPv6 address looks up (a value more than once if it holds for
    /// several ranges).
    pub fn ipv6_values(&self) -> impl Iterator<Item = V> + '_ {
        self.v6.values.iter().flatten().copied()
    }

    /// The value of the longest prefix of the family containing `addr`.
    #[inline]
    pub fn lookup(&self, is_ipv6: bool, addr: u128) -> Option<V> {
        match is_ipv6 {
            true => self.v6.lookup(addr),
            false => self.v4.lookup((addr >> 96) as u32),
        }
    }

    /// Every value some address of `net` looks up (a value more than once if it holds for
    /// several ranges), none for the addresses no prefix holds.
    pub fn values_within(&self, net: IpNet) -> impl Iterator<Item = V> + '_ {
        let values = match net {
            IpNet::V4(n) => self.v4.values_within(u32::from(n.network()), n.prefix_len()),
            IpNet::V6(n) => self.v6.values_within(u128::from(n.network()), n.prefix_len()),
        };
        values.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(entries: &[(u32, u8, u16)], addr: u32) -> Option<u16> {
        entries
            .iter()
            .filter(|(net, len, _)| net.first_of(*len) <= addr && addr <= net.last_of(*len))
            .max_by_key(|(_, len, _)| *len)
            .map(|e| e.2)
    }

    proptest! {
        #[test]
        fn lookup_equals_brute_force_longest_match(
            raw in prop::collection::vec((any::<u32>(), 0u8..=32, any::<u16>()), 0..30),
            probes in prop::collection::vec(any::<u32>(), 50),
        ) {
            // One value per distinct prefix, as validated configs guarantee.
            let mut entries: Vec<(u32, u8, u16)> = Vec::new();
            for (net, len, v) in raw {
                let net = net.first_of(len);
                if !entries.iter().any(|e| e.0 == net && e.1 == len) {
                    entries.push((net, len, v));
                }
            }
            let table = PrefixTable::build(&entries);
            let mut all = probes.clone();
            for (net, len, _) in &entries {
                all.extend([net.first_of(*len), net.last_of(*len), net.last_of(*len).wrapping_add(1), net.first_of(*len).wrapping_sub(1)]);
            }
            for a in all {
                prop_assert_eq!(table.lookup(a), brute(&entries, a), "addr {:#x}", a);
            }
        }
    }

    proptest! {
        /// What a network's addresses look up, by enumerating them: prefixes nested and
        /// overlapping the network (every one inside 10.0.0.0/16, the networks asked about
        /// /22 or longer, so that each is walked address by address), including prefixes
        /// that longer ones hold whole, whose value no address looks up.
        #[test]
        fn values_within_are_what_the_networks_addresses_look_up(
            raw in prop::collection::vec((0u32..0x1_0000, 14u8..=32, 0u16..8), 0..24),
            asked in prop::collection::vec((0u32..0x1_0000, 22u8..=32), 8),
        ) {
            let mut entries: Vec<(u32, u8, u16)> = Vec::new();
            for (low, len, v) in raw {
                let net = (0x0a00_0000 | low).first_of(len);
                if !entries.iter().any(|e| e.0 == net && e.1 == len) {
                    entries.push((net, len, v));
                }
            }
            let table = PrefixTable::build(&entries);
            for (low, len) in asked {
                let net = (0x0a00_0000 | low).first_of(len);
                let seen: std::collections::BTreeSet<u16> =
                    (net..=net.last_of(len)).filter_map(|a| brute(&entries, a)).collect();
                let within: std::collections::BTreeSet<u16> =
                    table.values_within(net, len).iter().flatten().copied().collect();
                prop_assert_eq!(within, seen, "{:#x}/{}", net, len);
            }
        }
    }

    #[test]
    fn nested_prefixes_take_the_longest() {
        let t = PrefixTable::<u128, u8>::build(&[(0x2001_0db8 << 96, 32, 1), (0x2001_0db8_0001 << 80, 48, 2)]);
        assert_eq!(t.lookup(0x2001_0db8_0001_0000_0000_0000_0000_0005), Some(2));
        assert_eq!(t.lookup(0x2001_0db8_0002 << 80), Some(1));
        assert_eq!(t.lookup(u128::MAX), None);
        assert_eq!(PrefixTable::<u32, u8>::build(&[(0, 0, 9)]).lookup(u32::MAX), Some(9));
    }

    #[test]
    fn one_table_answers_each_family_from_its_own_prefixes() {
        let t = IpPrefixTable::build([
            ("10.0.0.0/8".parse().unwrap(), 1),
            ("10.1.0.0/16".parse().unwrap(), 2),
            ("::/0".parse().unwrap(), 3),
            ("2001:db8::/32".parse().unwrap(), 4),
        ]);
        let v4 = |a: std::net::Ipv4Addr| u128::from(u32::from(a)) << 96;
        let v6 = |a: &str| u128::from(a.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(t.lookup(false, v4([10, 1, 2, 3].into())), Some(2));
        assert_eq!(t.lookup(false, v4([10, 2, 2, 3].into())), Some(1));
        assert_eq!(t.lookup(false, v4([11, 0, 0, 1].into())), None, "::/0 is not an IPv4 default");
        assert_eq!(t.lookup(true, v6("2001:db8::1")), Some(4));
        assert_eq!(t.lookup(true, v6("::a01:203")), Some(3), "an IPv6 address is not read as IPv4");
        let within = |net: &str| t.values_within(net.parse().unwrap()).collect::<Vec<_>>();
        assert_eq!(within("10.0.0.0/8"), [1, 2, 1], "around the /16, and in it");
        assert_eq!(within("10.1.2.0/24"), [2]);
        assert_eq!(within("11.0.0.0/8"), Vec::<i32>::new(), "no prefix holds it");
        assert_eq!(within("2001:db8::/48"), [4], "the ::/0 around it holds none of its addresses");
        assert_eq!(within("0.0.0.0/0"), [1, 2, 1], "the IPv4 ones alone");
    }
}
