//! Addresses whose scope is one link: no router forwards a packet from a link-local source
//! or to a destination of the link it came on (RFC 3927 §2.7, RFC 4291 §2.5.6 and §2.7, RFC
//! 5771 §4, RFC 1812 §5.3.5.1). Addresses are taken as a [`classifier::Key`] holds them:
//! IPv6's whole, IPv4's in the top 32 bits. The XDP program's `for_the_link_v4` and
//! `for_the_link_v6` (`bpf/src/bpf/transitd.bpf.c`) say the same of destinations.

/// Whether `addr` is link-local unicast, 169.254.0.0/16 (RFC 3927) or fe80::/10 (RFC 4291
/// §2.5.6): meaningful on one link only, so a packet from one is its link's alone.
#[inline]
pub(super) fn is_link_local(addr: u128, is_ipv6: bool) -> bool {
    match is_ipv6 {
        true => addr >> 118 == 0xfe80 >> 6,
        false => addr >> 112 == 0xa9fe,
    }
}

/// Whether `dst` is a destination on the host's own link, which is never a customer's (a
/// catch-all prefix holds it too): link-local unicast ([`is_link_local`]: the host's own
/// link-local address, a BGP session with the upstream router over 169.254.x.y), the local
/// network control block 224.0.0.0/24 (RFC 5771 §4: OSPF, IGMP, VRRP), the limited broadcast
/// (RFC 1812 §5.3.5.1: DHCP), and IPv6 multicast of link scope or narrower, whatever its
/// flags (RFC 4291 §2.7, scope 0 to 2: neighbour discovery, MLD).
#[inline]
pub(super) fn is_for_the_link(dst: u128, is_ipv6: bool) -> bool {
    if is_link_local(dst, is_ipv6) {
        return true;
    }
    match is_ipv6 {
        true => dst >> 120 == 0xff && (dst >> 112) & 0xf <= 2,
        false => {
            let a = (dst >> 96) as u32;
            a >> 8 == 0xe0_0000 || a == u32::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// An IPv4 address as the key holds it: in the top 32 bits.
    fn v4(a: Ipv4Addr) -> u128 {
        u128::from(u32::from(a)) << 96
    }

    /// Every /16's first, second and last address, and every address of 224.0.0.0/23 and
    /// 255.255.255.0/24, against std's link-local test (RFC 3927) and the RFCs' prefixes
    /// as ipnet reads them.
    #[test]
    fn ipv4_scopes_are_the_rfcs() {
        let for_the_link: [ipnet::Ipv4Net; 3] =
            ["169.254.0.0/16", "224.0.0.0/24", "255.255.255.255/32"].map(|n| n.parse().unwrap());
        let per_16 = (0..=u16::MAX).flat_map(|hi| [0, 1, u16::MAX].map(|lo| u32::from(hi) << 16 | u32::from(lo)));
        let edges = (0xe000_0000..0xe000_0200).chain(0xffff_ff00..=u32::MAX);
        for a in per_16.chain(edges).map(Ipv4Addr::from) {
            assert_eq!(is_link_local(v4(a), false), a.is_link_local(), "{a}");
            assert_eq!(is_for_the_link(v4(a), false), for_the_link.iter().any(|n| n.contains(&a)), "{a}");
        }
    }

    /// Every first 16 bits, the rest 0, 1 or all ones, against std's link-local test
    /// (fe80::/10, RFC 4291 §2.5.6) and its multicast test with the scope read where RFC
    /// 4291 §2.7 puts it (the second octet's low 4 bits).
    #[test]
    fn ipv6_scopes_are_the_rfcs() {
        for hi in 0..=u16::MAX {
            for rest in [0, 1, (1u128 << 112) - 1] {
                let a = Ipv6Addr::from(u128::from(hi) << 112 | rest);
                let link_scoped_multicast = a.is_multicast() && a.octets()[1] & 0x0f <= 2;
                assert_eq!(is_link_local(u128::from(a), true), a.is_unicast_link_local(), "{a}");
                let expected = a.is_unicast_link_local() || link_scoped_multicast;
                assert_eq!(is_for_the_link(u128::from(a), true), expected, "{a}");
            }
        }
    }
}
