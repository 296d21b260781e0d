//! GRE-in-IPv4 encapsulation toward a tunnel's remote end, written in place in the headroom
//! in front of the inner IP packet, Ethernet header included.
//!
//! ```text
//! before:  [ headroom ............ | inner IP packet ]
//! after:   [ .. | Ethernet | IPv4 | GRE | inner IP packet ]
//!               ^ returned offset
//! ```
//!
//! Which tunnel to use is the route stage's choice; this module only writes bytes.

use crate::checksum;
use crate::packet::{GrePacket, GreRepr};

/// Length of an untagged Ethernet header.
pub const ETHERNET_LEN: usize = 14;
/// Length of an IPv4 header without options.
pub const IPV4_LEN: usize = 20;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;

/// The outer header parameters of one GRE tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreTunnel {
    /// Outer source: the anycast address every edge server shares.
    pub local: [u8; 4],
    /// Outer destination: the customer router.
    pub remote: [u8; 4],
    /// RFC 2890 key, if the tunnel uses one.
    pub key: Option<u32>,
    /// Whether to send a GRE checksum.
    pub checksum: bool,
    /// Outer TTL.
    pub ttl: u8,
}

/// Ethernet addresses for the encapsulated frame.
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
    /// The outer IPv4 packet would exceed 65535 bytes.
    #[error("encapsulated packet longer than 65535 bytes")]
    TooLong,
}

impl GreTunnel {
    /// The GRE header this tunnel writes (sequence numbers are not used).
    pub const fn gre_repr(&self, protocol: u16) -> GreRepr {
        GreRepr { protocol, checksum: self.checksum, key: self.key, sequence_number: None }
    }

    /// Bytes the outer IPv4 and GRE headers add to an inner IP packet.
    pub const fn overhead(&self) -> usize {
        IPV4_LEN + self.gre_repr(0).header_len()
    }
}

/// Writes Ethernet, outer IPv4 and GRE headers in front of the inner packet at
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
    let start = inner_start.checked_sub(ETHERNET_LEN + IPV4_LEN + gre_len).ok_or(EncapError::NoHeadroom)?;
    let total_len = u16::try_from(IPV4_LEN + gre_len + inner_len).map_err(|_| EncapError::TooLong)?;

    let (eth_hdr, rest) = frame[start..inner_end].split_at_mut(ETHERNET_LEN);
    eth_hdr[0..6].copy_from_slice(&eth.dst);
    eth_hdr[6..12].copy_from_slice(&eth.src);
    eth_hdr[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let (ip, gre_and_inner) = rest.split_at_mut(IPV4_LEN);
    write_ipv4_header(ip, total_len, tos, tunnel.ttl, IPPROTO_GRE, tunnel.local, tunnel.remote);
    gre.emit(&mut GrePacket::new_unchecked(gre_and_inner));
    Ok(start)
}

/// Writes a 20-byte IPv4 header with DF set and its checksum.
pub fn write_ipv4_header(ip: &mut [u8], total_len: u16, tos: u8, ttl: u8, protocol: u8, src: [u8; 4], dst: [u8; 4]) {
    ip[0] = 0x45; // version 4, IHL 5
    ip[1] = tos;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    // Identification 0: the datagram is atomic (DF set, never fragmented), RFC 6864 §4.1.
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    ip[8] = ttl;
    ip[9] = protocol;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum::checksum(&ip[..IPV4_LEN]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUNNEL: GreTunnel =
        GreTunnel { local: [192, 0, 2, 1], remote: [198, 51, 100, 1], key: None, checksum: false, ttl: 64 };
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
}
