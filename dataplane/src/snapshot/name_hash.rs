//! Hashes of names that are the same in every run, build and server (FNV-1a), and the
//! customers' IPFIX VRF ids made from them.

/// Each customer's IPFIX VRF id, in `names` order: a hash of its name (FNV-1a, 31 bits, never
/// 0, which means none), the next free one where two names meet (taken in name order, so
/// that which of the two moves does not depend on where they are written). A collector
/// groups by the id: the customer's place in the file, the id once, changed meaning
/// whenever a customer was added before it.
pub fn vrf_ids<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let names: Vec<&str> = names.collect();
    let hash = |name: &str| (fnv1a(name.as_bytes()) & 0x7fff_ffff).max(1);
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names[i]);
    let mut taken = std::collections::HashSet::new();
    let mut ids = vec![0; names.len()];
    for i in order {
        let mut id = hash(names[i]);
        while !taken.insert(id) {
            id = id % 0x7fff_ffff + 1;
        }
        ids[i] = id;
    }
    ids
}

/// FNV-1a (32 bits) of `bytes`: a hash of a name that is the same in every run, build and
/// server, for what must not change when nothing about the name did.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// FNV-1a in 64 bits, where 32 would let names meet (a tunnel's seed among a group's).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    /// The published FNV-1a test vectors (draft-eastlake-fnv, appendix C): VRF ids, punt
    /// names and tunnel seeds must hash alike in every build.
    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(super::fnv1a(b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(super::fnv1a(b"foobar"), 0xbf9c_f968);
        assert_eq!(super::fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
