//! GRE encapsulation toward a tunnel's remote end, over IPv4 or IPv6, written in place in
//! the headroom in front of the inner IP packet, Ethernet header included; and the
//! Ethernet header alone, for packets forwarded without a tunnel.
//!
//! ```text
//! before:  [ headroom ................ | inner IP packet ]
//! after:   [ .. | Ethernet | IPv4/6 | GRE | inner IP packet ]
//!               ^ returned offset
//! ```
//!
//! Which tunnel to use is the route stage's choice; this module only writes bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ip::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};
use crate::packet::{GrePacket, GreRepr};

/// Length of an untagged Ethernet header.
pub const ETHERNET_LEN: usize = 14;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The outer addresses of a tunnel: both IPv4 or both IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    /// GRE over IPv4.
    V4 {
        /// Outer source: the anycast address every edge server shares.
        local: Ipv4Addr,
        /// Outer destination: the customer router.
        remote: Ipv4Addr,
    },
    /// GRE over IPv6.
    V6 {
        /// Outer source: the IPv6 anycast address.
        local: Ipv6Addr,
        /// Outer destination: the customer router.
        remote: Ipv6Addr,
    },
}

impl Endpoints {
    /// Length of the outer IP header.
    pub const fn ip_len(&self) -> usize {
        match self {
            Endpoints::V4 { .. } => Ipv4Repr::HEADER_LEN,
            Endpoints::V6 { .. } => Ipv6Repr::HEADER_LEN,
        }
    }
}

/// The outer header parameters of one GRE tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreTunnel {
    /// Outer source and destination.
    pub endpoints: Endpoints,
    /// RFC 2890 key, if the tunnel uses one.
    pub key: Option<u32>,
    /// Whether to send a GRE checksum.
    pub checksum: bool,
    /// Outer TTL or hop limit.
    pub ttl: u8,
}

/// Ethernet addresses for a transmitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EthernetAddrs {
    /// Next hop's MAC.
    pub dst: [u8; 6],
    /// Our interface's MAC.
    pub src: [u8; 6],
}

/// Why a packet could not be encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// Not enough bytes in front of the inner packet for the new headers.
    #[error("not enough headroom for the outer headers")]
    NoHeadroom,
    /// The inner packet range lies outside the frame.
    #[error("inner packet outside the frame")]
    OutOfFrame,
    /// The outer packet would exceed 65535 bytes.
    #[error("encapsulated packet longer than 65535 bytes")]
    TooLong,
}

impl GreTunnel {
    /// The GRE header this tunnel writes (sequence numbers are not used).
    pub const fn gre_repr(&self, protocol: u16) -> GreRepr {
        GreRepr { protocol, checksum: self.checksum, key: self.key, sequence_number: None }
    }

    /// Bytes the outer IP and GRE headers add to an inner IP packet.
    pub const fn overhead(&self) -> usize {
        self.endpoints.ip_len() + self.gre_repr(0).header_len()
    }
}

/// Writes Ethernet, outer IP and GRE headers in front of the inner packet at
/// `frame[inner_start..inner_start + inner_len]`, whose EtherType is `protocol`, and returns
/// the offset of the Ethernet header. `tos` is the outer DSCP and ECN byte (callers copy the
/// inner one, RFC 6040 normal mode).
pub fn encap_gre(
    frame: &mut [u8],
    inner_start: usize,
    inner_len: usize,
    protocol: u16,
    tos: u8,
    tunnel: &GreTunnel,
    eth: &EthernetAddrs,
) -> Result<usize, EncapError> {
    let inner_end = inner_start.checked_add(inner_len).ok_or(EncapError::OutOfFrame)?;
    if inner_end > frame.len() {
        return Err(EncapError::OutOfFrame);
    }
    let gre = tunnel.gre_repr(protocol);
    let gre_len = gre.header_len();
    let ip_len = tunnel.endpoints.ip_len();
    let start = inner_start.checked_sub(ETHERNET_LEN + ip_len + gre_len).ok_or(EncapError::NoHeadroom)?;
    let gre_and_inner = u16::try_from(gre_len + inner_len).map_err(|_| EncapError::TooLong)?;

    let (eth_hdr, rest) = frame[start..inner_end].split_at_mut(ETHERNET_LEN);
    let (ip, gre_and_payload) = rest.split_at_mut(ip_len);
    match tunnel.endpoints {
        Endpoints::V4 { local, remote } => {
            u16::try_from(Ipv4Repr::HEADER_LEN + usize::from(gre_and_inner)).map_err(|_| EncapError::TooLong)?;
            write_ethernet(eth_hdr, eth, ETHERTYPE_IPV4);
            let outer = Ipv4Repr {
                src_addr: local,
                dst_addr: remote,
                protocol: IPPROTO_GRE,
                payload_len: gre_and_inner,
                ttl: tunnel.ttl,
                tos,
            };
            outer.emit(&mut Ipv4Packet::new_unchecked(ip));
        }
        Endpoints::V6 { local, remote } => {
            write_ethernet(eth_hdr, eth, ETHERTYPE_IPV6);
            let outer = Ipv6Repr {
                src_addr: local,
                dst_addr: remote,
                next_header: IPPROTO_GRE,
                payload_len: gre_and_inner,
                hop_limit: tunnel.ttl,
                traffic_class: tos,
            };
            outer.emit(&mut Ipv6Packet::new_unchecked(ip));
        }
    }
    gre.emit(&mut GrePacket::new_unchecked(gre_and_payload));
    Ok(start)
}

/// Writes an Ethernet header into the 14 bytes in front of the IP packet at `ip_start` and
/// returns its offset, for packets sent to the next hop as they are.
pub fn prepend_ethernet(frame: &mut [u8], ip_start: usize, eth: &EthernetAddrs, ether_type: u16) -> Option<usize> {
    let start = ip_start.checked_sub(ETHERNET_LEN)?;
    write_ethernet(frame.get_mut(start..ip_start)?, eth, ether_type);
    Some(start)
}

fn write_ethernet(hdr: &mut [u8], eth: &EthernetAddrs, ether_type: u16) {
    hdr[0..6].copy_from_slice(&eth.dst);
    hdr[6..12].copy_from_slice(&eth.src);
    hdr[12..14].copy_from_slice(&ether_type.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    const TUNNEL: GreTunnel = GreTunnel {
        endpoints: Endpoints::V4 { local: Ipv4Addr::new(192, 0, 2, 1), remote: Ipv4Addr::new(198, 51, 100, 1) },
        key: None,
        checksum: false,
        ttl: 64,
    };
    const ETH: EthernetAddrs = EthernetAddrs { dst: [2, 0, 0, 0, 0, 1], src: [2, 0, 0, 0, 0, 2] };

    #[test]
    fn encap_writes_literal_headers_in_front() {
        let inner = [0x45u8, 0, 0, 20, 0, 0, 0, 0, 63, 17, 0, 0, 10, 0, 0, 1, 203, 0, 113, 100];
        let mut frame = [0xa5u8; 64 + 20];
        frame[64..].copy_from_slice(&inner);
        let start = encap_gre(&mut frame, 64, 20, 0x0800, 0, &TUNNEL, &ETH).unwrap();
        assert_eq!(start, 64 - 38);
        #[rustfmt::skip]
        let expect: [u8; 38] = [
            2, 0, 0, 0, 0, 1,  2, 0, 0, 0, 0, 2,  0x08, 0x00,          // Ethernet, IPv4
            0x45, 0, 0, 44,  0, 0, 0x40, 0,  64, 47, 0x00, 0x00,        // IPv4: len 44, DF, TTL 64, GRE
            192, 0, 2, 1,  198, 51, 100, 1,
            0x00, 0x00, 0x08, 0x00,                                     // GRE: no options, IPv4
        ];
        let mut got = [0u8; 38];
        got.copy_from_slice(&frame[start..start + 38]);
        // The checksum is checked by summing, the rest byte for byte.
        assert_eq!(checksum::sum(&got[14..34]), 0xffff);
        got[24..26].copy_from_slice(&[0, 0]);
        assert_eq!(got, expect);
        assert_eq!(&frame[64..], &inner);
    }

    #[test]
    fn encap_over_ipv6_writes_literal_headers() {
        let v6 = GreTunnel {
            endpoints: Endpoints::V6 {
                local: "2001:db8::1".parse().unwrap(),
                remote: "2001:db8:ffff::2".parse().unwrap(),
            },
            key: Some(5),
            checksum: false,
            ttl: 64,
        };
        let inner = [0x45u8, 0xb8, 0, 20, 0, 0, 0, 0, 63, 17, 0, 0, 10, 0, 0, 1, 203, 0, 113, 100];
        let mut frame = [0u8; 128 + 20];
        frame[128..].copy_from_slice(&inner);
        let start = encap_gre(&mut frame, 128, 20, 0x0800, 0xb8, &v6, &ETH).unwrap();
        assert_eq!(start, 128 - 14 - 40 - 8);
        #[rustfmt::skip]
        let expect: [u8; 62] = [
            2, 0, 0, 0, 0, 1,  2, 0, 0, 0, 0, 2,  0x86, 0xdd,
            0x6b, 0x80, 0, 0,  0, 28, 47, 64,                           // TC 0xb8, payload 8 + 20, GRE
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
            0x20, 0x00, 0x08, 0x00,  0, 0, 0, 5,                         // GRE: K, IPv4, key 5
        ];
        assert_eq!(&frame[start..128], &expect[..]);
        assert_eq!(v6.overhead(), 48);
    }

    #[test]
    fn encap_refuses_missing_headroom_and_bad_ranges() {
        let mut frame = [0u8; 80];
        assert_eq!(encap_gre(&mut frame, 30, 20, 0x0800, 0, &TUNNEL, &ETH), Err(EncapError::NoHeadroom));
        assert_eq!(encap_gre(&mut frame, 60, 21, 0x0800, 0, &TUNNEL, &ETH), Err(EncapError::OutOfFrame));
        assert_eq!(encap_gre(&mut frame, 60, usize::MAX, 0x0800, 0, &TUNNEL, &ETH), Err(EncapError::OutOfFrame));
    }

    #[test]
    fn keyed_tunnel_adds_four_bytes() {
        let keyed = GreTunnel { key: Some(7), ..TUNNEL };
        assert_eq!((TUNNEL.overhead(), keyed.overhead()), (24, 28));
    }

    #[test]
    fn prepend_ethernet_needs_fourteen_bytes() {
        let mut frame = [0u8; 40];
        assert_eq!(prepend_ethernet(&mut frame, 13, &ETH, ETHERTYPE_IPV6), None);
        assert_eq!(prepend_ethernet(&mut frame, 20, &ETH, ETHERTYPE_IPV6), Some(6));
        assert_eq!(&frame[6..20], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd]);
    }
}
