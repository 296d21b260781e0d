//! The ICMP messages a tunnel edge originates, written in place: errors about a packet it
//! cannot forward (RFC 792, RFC 1191 and RFC 1812 for IPv4; RFC 4443 for IPv6), replies to
//! pings of its own tunnel addresses, and echo messages for health probes.
//!
//! An error is built in front of the packet it is about, which stays where it was received
//! and becomes the error's quoted part, cut to the size the RFCs allow:
//!
//! ```text
//! before:  [ headroom ...................... | offending IP packet .......... ]
//! after:   [ .. | IP header | ICMP header | quoted IP packet (≤ 548 / 1232) ]
//!               ^ returned offset
//! ```
//!
//! The functions only write bytes; whether an error may be sent at all is
//! [`ipv4_error_allowed`] and [`ipv6_error_allowed`], and how often is the caller's rate
//! limit.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::ip::{IPV4_HEADER_LEN, IPV6_HEADER_LEN, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// Length of an ICMP or ICMPv6 header (type, code, checksum, four bytes by type).
pub const ICMP_HEADER_LEN: usize = 8;
/// Longest ICMPv4 error datagram: as much of the original as fits 576 bytes (RFC 1812
/// §4.3.2.3).
pub const ICMPV4_ERROR_MAX: usize = 576;
/// Longest ICMPv6 error packet: the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
pub const ICMPV6_ERROR_MAX: usize = 1280;
/// Bytes of an IPv4 datagram's data an ICMPv4 error quotes at the least, behind its whole
/// header: RFC 792's "Internet Header + 64 bits of Original Data Datagram", the ports by
/// which the sender finds the socket the error is about (RFC 1122 §3.2.2).
pub const ICMPV4_QUOTED_DATA_MIN: usize = 8;
/// Bytes after an IPv6 packet's headers (the fixed one and its extension headers) an ICMPv6
/// error quotes at the least: the upper-layer header's first 8, its ports, by which the
/// sender finds the socket the error is about; a later fragment's own fragment header, at
/// which a receiver's walk of the headers stops (its data holds no upper-layer header).
/// Linux reads the headers and 8 bytes more of a quote (`icmpv6_notify`) and drops a shorter
/// one unread (RFC 4443 §2.4 (d): an error whose upper-layer protocol cannot be found is
/// dropped).
pub const ICMPV6_QUOTED_DATA_MIN: usize = 8;

/// ICMPv4 echo reply.
pub const ICMPV4_ECHO_REPLY: u8 = 0;
/// ICMPv4 destination unreachable.
pub const ICMPV4_DEST_UNREACHABLE: u8 = 3;
/// ICMPv4 echo request.
pub const ICMPV4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 time exceeded.
pub const ICMPV4_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 packet too big.
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 time exceeded.
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 Redirect (RFC 4861), never answered with an error.
pub const ICMPV6_REDIRECT: u8 = 137;

/// An ICMPv4 error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Error {
    /// Destination unreachable, fragmentation needed and DF set (type 3 code 4), with the
    /// MTU of the next hop (RFC 1191).
    FragmentationNeeded {
        /// Largest datagram the next hop takes.
        next_hop_mtu: u16,
    },
    /// Time exceeded, TTL exceeded in transit (type 11 code 0).
    TtlExceeded,
}

/// An ICMPv6 error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Error {
    /// Packet too big (type 2), with the MTU of the next hop.
    PacketTooBig {
        /// Largest packet the next hop takes.
        mtu: u32,
    },
    /// Time exceeded, hop limit exceeded in transit (type 3 code 0).
    HopLimitExceeded,
}

impl Icmpv4Error {
    /// Type, code, and the four bytes after the checksum.
    fn header(self) -> (u8, u8, [u8; 4]) {
        match self {
            Icmpv4Error::FragmentationNeeded { next_hop_mtu } => {
                let [hi, lo] = next_hop_mtu.to_be_bytes();
                (ICMPV4_DEST_UNREACHABLE, 4, [0, 0, hi, lo])
            }
            Icmpv4Error::TtlExceeded => (ICMPV4_TIME_EXCEEDED, 0, [0; 4]),
        }
    }
}

impl Icmpv6Error {
    fn header(self) -> (u8, u8, [u8; 4]) {
        match self {
            Icmpv6Error::PacketTooBig { mtu } => (ICMPV6_PACKET_TOO_BIG, 0, mtu.to_be_bytes()),
            Icmpv6Error::HopLimitExceeded => (ICMPV6_TIME_EXCEEDED, 0, [0; 4]),
        }
    }
}

/// Whether an ICMPv4 type is a query or its reply (echo, router discovery, timestamp,
/// information, address mask, extended echo of RFC 8335). Every other type, those not
/// assigned too, is taken for an error, which is never answered with an error (RFC 1812
/// §4.3.2.7): Linux takes an unknown type for one too, and a deprecated error (31, 40)
/// was answered.
pub fn icmpv4_is_informational(t: u8) -> bool {
    matches!(t, 0 | 8 | 9 | 10 | 13..=18 | 42 | 43)
}

/// Whether RFC 1812 §4.3.2.7 lets a router send an ICMP error about the IPv4 `packet`
/// (header first): not about an ICMP error, a fragment other than the first, or a packet
/// from or to an address that does not name one host (unspecified, loopback, multicast,
/// broadcast, class E).
pub fn ipv4_error_allowed(packet: &[u8]) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else { return false };
    if ip.frag_offset() != 0 || !one_host(ip.src_addr()) || !one_host(ip.dst_addr()) {
        return false;
    }
    if ip.protocol() == IPPROTO_ICMP {
        // The type must be readable to know it is not an error.
        return ip.payload().first().is_some_and(|&t| icmpv4_is_informational(t));
    }
    true
}

/// Whether the first `quoted` bytes of the IPv4 datagram `packet` (header first) are a
/// quote an ICMPv4 error may carry: its whole header, options included, and
/// [`ICMPV4_QUOTED_DATA_MIN`] bytes of data, or all of a shorter datagram (RFC 792). Less,
/// cut inside the header or before the ports, names nothing to the sender: a way too small
/// for it (a tunnel `mtu` under the header's length and 36, the error's 28 and 8) gets no
/// error.
pub fn ipv4_quote_suffices(packet: &[u8], quoted: usize) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else { return false };
    let least = (ip.header_len() + ICMPV4_QUOTED_DATA_MIN).min(usize::from(ip.total_len()));
    quoted >= least.max(IPV4_HEADER_LEN)
}

/// Whether the first `quoted` bytes of an IPv6 packet of `len` bytes whose headers (the
/// fixed one and its extension headers; in a later fragment, those before its fragment
/// header) take `headers` bytes are a quote an ICMPv6 error may carry: those headers and
/// [`ICMPV6_QUOTED_DATA_MIN`] bytes after them, or all of a shorter packet. Less, cut inside
/// the headers or before the ports, reaches no socket of its sender's: a way too small for
/// it (a tunnel `mtu` under the headers' length and 56, the error's 48 and 8), or headers
/// longer than an ICMPv6 error may quote, gets no error.
pub fn ipv6_quote_suffices(len: usize, headers: usize, quoted: usize) -> bool {
    let least = (headers.max(IPV6_HEADER_LEN) + ICMPV6_QUOTED_DATA_MIN).min(len);
    quoted >= least.max(IPV6_HEADER_LEN)
}

/// Whether `a` names one host: not in network 0 (`{0, host}`, RFC 1122 §3.2.1.3, which RFC
/// 1812 §4.3.2.7 names among the sources never answered), loopback, multicast, broadcast or
/// class E.
fn one_host(a: Ipv4Addr) -> bool {
    !(a.octets()[0] == 0 || a.is_loopback() || a.is_multicast() || a.is_broadcast() || a.octets()[0] >= 240)
}

/// Whether RFC 4443 §2.4 (e) lets a node send `error` about the IPv6 `packet`: not about an
/// ICMPv6 error or a Redirect (e.1, e.2), nor from a source that names no one node (e.3):
/// unspecified, multicast, loopback (no other node's), or IPv4-mapped (RFC 4291 §2.5.5.2:
/// not used on the wire, so written by whoever sent it); to a multicast destination only
/// Packet Too Big. An IPv4-compatible source (`::a.b.c.d`) is answered: RFC 4291 §2.5.5.1
/// deprecates it without keeping it off the wire, and it names one node.
pub fn ipv6_error_allowed(packet: &[u8], error: Icmpv6Error) -> bool {
    let Ok(ip) = Ipv6Packet::new_checked(packet) else { return false };
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() || src.to_ipv4_mapped().is_some() {
        return false;
    }
    if ip.dst_addr().is_multicast() && !matches!(error, Icmpv6Error::PacketTooBig { .. }) {
        return false;
    }
    if ip.next_header() == IPPROTO_ICMPV6 {
        // Types below 128 are errors, 137 a Redirect; an extension header in between is not
        // looked into.
        return ip.payload().first().is_some_and(|&t| t >= 128 && t != ICMPV6_REDIRECT);
    }
    true
}

/// Writes an ICMPv4 error about the IPv4 packet at `frame[l3..l3 + len]`, from `src` to the
/// packet's source, in front of it (28 bytes of headroom needed); returns the offset and
/// length of the new IPv4 packet, or `None` if the range is outside the frame or lacks
/// headroom, or if `len` (the packet, or as much of it as the caller's way takes) is too
/// little to quote ([`ipv4_quote_suffices`]). The caller has checked [`ipv4_error_allowed`].
pub fn icmpv4_error(
    frame: &mut [u8],
    l3: usize,
    len: usize,
    error: Icmpv4Error,
    src: Ipv4Addr,
    ttl: u8,
) -> Option<(usize, usize)> {
    let start = l3.checked_sub(IPV4_HEADER_LEN + ICMP_HEADER_LEN)?;
    let quoted = len.min(ICMPV4_ERROR_MAX - IPV4_HEADER_LEN - ICMP_HEADER_LEN);
    if !ipv4_quote_suffices(frame.get(l3..)?, quoted) {
        return None;
    }
    let end = l3.checked_add(quoted)?;
    let packet = frame.get_mut(start..end)?;
    let (ip, icmp) = packet.split_at_mut(IPV4_HEADER_LEN);
    let dst_addr = Ipv4Packet::new_unchecked(&icmp[ICMP_HEADER_LEN..]).src_addr();
    let payload_len = (ICMP_HEADER_LEN + quoted) as u16;
    // Type of service 0xc0, internetwork control, as RFC 1812 §4.3.2.5 asks of router errors.
    let header = Ipv4Repr { src_addr: src, dst_addr, protocol: IPPROTO_ICMP, payload_len, ttl, tos: 0xc0 };
    header.emit(&mut Ipv4Packet::new_unchecked(ip));
    let (kind, code, rest) = error.header();
    write_icmp_header(icmp, kind, code, rest, 0);
    Some((start, IPV4_HEADER_LEN + usize::from(payload_len)))
}

/// Writes an ICMPv6 error about the IPv6 packet at `frame[l3..l3 + len]`, from `src` to the
/// packet's source, in front of it (48 bytes of headroom needed); returns the offset and
/// length of the new IPv6 packet. The caller has checked [`ipv6_error_allowed`], and
/// [`ipv6_quote_suffices`] (the extension headers are the caller's to know).
pub fn icmpv6_error(
    frame: &mut [u8],
    l3: usize,
    len: usize,
    error: Icmpv6Error,
    src: Ipv6Addr,
    hop_limit: u8,
) -> Option<(usize, usize)> {
    let start = l3.checked_sub(IPV6_HEADER_LEN + ICMP_HEADER_LEN)?;
    let quoted = len.min(ICMPV6_ERROR_MAX - IPV6_HEADER_LEN - ICMP_HEADER_LEN);
    if quoted < IPV6_HEADER_LEN {
        return None;
    }
    let end = l3.checked_add(quoted)?;
    let packet = frame.get_mut(start..end)?;
    let (ip, icmp) = packet.split_at_mut(IPV6_HEADER_LEN);
    let dst_addr = Ipv6Packet::new_unchecked(&icmp[ICMP_HEADER_LEN..]).src_addr();
    let payload_len = (ICMP_HEADER_LEN + quoted) as u16;
    let header =
        Ipv6Repr { src_addr: src, dst_addr, next_header: IPPROTO_ICMPV6, payload_len, hop_limit, traffic_class: 0 };
    header.emit(&mut Ipv6Packet::new_unchecked(ip));
    let (kind, code, rest) = error.header();
    let pseudo = ipv6_pseudo_header_sum(&src.octets(), &dst_addr.octets(), u32::from(payload_len), IPPROTO_ICMPV6);
    write_icmp_header(icmp, kind, code, rest, pseudo);
    Some((start, IPV6_HEADER_LEN + usize::from(payload_len)))
}

/// Writes type, code and the four bytes after the checksum, then the checksum over the
/// whole message plus `pseudo` (the IPv6 pseudo-header's sum; 0 for ICMPv4).
fn write_icmp_header(icmp: &mut [u8], kind: u8, code: u8, rest: [u8; 4], pseudo: u64) {
    icmp[0] = kind;
    icmp[1] = code;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..8].copy_from_slice(&rest);
    let sum = checksum::fold(u64::from(checksum::sum(icmp)) + pseudo);
    icmp[2..4].copy_from_slice(&(!sum).to_be_bytes());
}

/// The one's-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1), unfolded.
pub fn ipv6_pseudo_header_sum(src: &[u8; 16], dst: &[u8; 16], upper_len: u32, next_header: u8) -> u64 {
    u64::from(checksum::sum(src))
        + u64::from(checksum::sum(dst))
        + u64::from(upper_len >> 16)
        + u64::from(upper_len & 0xffff)
        + u64::from(next_header)
}

/// Whether [`ipv4_echo_reply_in_place`] would answer the IPv4 datagram `packet`: asked
/// before an answer's budget is spent on it.
pub fn ipv4_echo_answerable(packet: &[u8]) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else { return false };
    let is_request = ip.payload().len() >= ICMP_HEADER_LEN && ip.payload()[0] == ICMPV4_ECHO_REQUEST;
    // A corrupt request is not answered (as a host's stack drops it): the reply's checksum
    // is patched, not computed, and would be as wrong.
    ip.protocol() == IPPROTO_ICMP
        && !ip.is_fragment()
        && is_request
        && one_host(ip.src_addr())
        && ip.header_len() == 20
        && is_ipv4_message_intact(ip.payload())
}

/// Whether the ICMPv4 message `message` (header and data; no pseudo-header, RFC 792)
/// verifies against its checksum: its ones'-complement sum is 0xffff.
pub fn is_ipv4_message_intact(message: &[u8]) -> bool {
    checksum::sum(message) == 0xffff
}

/// Turns the IPv4 ICMP echo request at the front of `packet` (the whole datagram) into its
/// reply in place: addresses swapped, type 0, a fresh `ttl`, checksums patched. False (and
/// nothing written) if it is not an unfragmented echo request from an address that names
/// one host (RFC 1122 §3.2.1.3: a datagram from a broadcast or multicast source is
/// discarded), if its ICMP checksum is wrong, or if it carries IP options: RFC 1122 §3.2.2.6 wants a source route reversed
/// and the record-route and timestamp options updated in the reply, which an in-place
/// rewrite cannot do, and echoed unchanged they would be wrong.
pub fn ipv4_echo_reply_in_place(packet: &mut [u8], ttl: u8) -> bool {
    if !ipv4_echo_answerable(packet) {
        return false;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(packet) else { return false };
    ip.swap_addrs();
    ip.set_ttl(ttl);
    ip.fill_checksum();
    let (_, icmp) = ip.header_and_payload_mut();
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = ICMPV4_ECHO_REPLY;
    let new = u16::from_be_bytes([icmp[0], icmp[1]]);
    let check = u16::from_be_bytes([icmp[2], icmp[3]]);
    icmp[2..4].copy_from_slice(&checksum::update(check, old, new).to_be_bytes());
    true
}

/// The header fields of an IPv4 ICMP echo message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// [`ICMPV4_ECHO_REQUEST`] or [`ICMPV4_ECHO_REPLY`].
    pub kind: u8,
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// ICMP identifier.
    pub ident: u16,
    /// ICMP sequence number.
    pub seq: u16,
    /// IP TTL.
    pub ttl: u8,
}

/// Writes the IPv4 ICMP echo message `echo` carrying `payload` into `buf`; returns its
/// length, or `None` if `buf` is too short.
pub fn write_ipv4_echo(buf: &mut [u8], echo: &Echo, payload: &[u8]) -> Option<usize> {
    write_ipv4_echo_padded(buf, echo, payload, 0)
}

/// [`write_ipv4_echo`], with zeros after `payload` up to a datagram of `len` bytes (none
/// when `len` is less than it takes): a probe of the size a path carries (RFC 8899 §4.1).
pub fn write_ipv4_echo_padded(buf: &mut [u8], echo: &Echo, payload: &[u8], len: usize) -> Option<usize> {
    let len = len.max(IPV4_HEADER_LEN + ICMP_HEADER_LEN + payload.len());
    let payload_len = u16::try_from(len - IPV4_HEADER_LEN).ok().filter(|_| len <= 65535)?;
    let packet = buf.get_mut(..len)?;
    let (ip, icmp) = packet.split_at_mut(IPV4_HEADER_LEN);
    let header =
        Ipv4Repr { src_addr: echo.src, dst_addr: echo.dst, protocol: IPPROTO_ICMP, payload_len, ttl: echo.ttl, tos: 0 };
    header.emit(&mut Ipv4Packet::new_unchecked(ip));
    let (data, padding) = icmp[ICMP_HEADER_LEN..].split_at_mut(payload.len());
    data.copy_from_slice(payload);
    padding.fill(0); // a reused buffer holds stale bytes
    let [i0, i1] = echo.ident.to_be_bytes();
    let [s0, s1] = echo.seq.to_be_bytes();
    write_icmp_header(icmp, echo.kind, 0, [i0, i1, s0, s1], 0);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv4 UDP 10.0.0.1:1234 → 203.0.113.7:53, TTL 64, DF, total length 1400 (zero payload).
    fn udp_packet(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[..20].copy_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 203, 0, 113, 7]);
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..24].copy_from_slice(&[0x04, 0xd2, 0, 53]);
        p
    }

    #[test]
    fn fragmentation_needed_quotes_548_bytes_with_literal_header() {
        let original = udp_packet(1400);
        let mut frame = vec![0xa5u8; 100];
        frame.extend_from_slice(&original);
        let (start, len) = icmpv4_error(
            &mut frame,
            100,
            1400,
            Icmpv4Error::FragmentationNeeded { next_hop_mtu: 1476 },
            Ipv4Addr::new(192, 0, 2, 1),
            64,
        )
        .unwrap();
        assert_eq!((start, len), (72, 576));
        let out = &frame[start..start + len];
        #[rustfmt::skip]
        let head: [u8; 28] = [
            0x45, 0xc0, 0x02, 0x40, 0, 0, 0x40, 0, 64, 1, 0, 0,    // IPv4: 576 bytes, ICMP
            192, 0, 2, 1,  10, 0, 0, 1,                            // to the original source
            3, 4, 0, 0,  0, 0, 0x05, 0xc4,                         // type 3 code 4, MTU 1476
        ];
        let mut got = [0u8; 28];
        got.copy_from_slice(&out[..28]);
        got[10..12].copy_from_slice(&[0, 0]);
        got[22..24].copy_from_slice(&[0, 0]);
        assert_eq!(got, head);
        assert_eq!(checksum::sum(&out[..20]), 0xffff);
        assert_eq!(checksum::sum(&out[20..]), 0xffff);
        assert_eq!(&out[28..], &original[..548], "the quote is the packet as received");
    }

    /// RFC 792: an error quotes the offending datagram's whole header and 64 bits of its
    /// data. A 60-byte header (40 bytes of options: 36 no-ops and a router alert) quoted in
    /// 40 bytes, all a 68-byte tunnel leaves behind the error's own 28, is cut before its
    /// destination address: no error is written. With 68 bytes of it (header and ports) one
    /// is; a datagram shorter than its header and 8 bytes is quoted whole.
    #[test]
    fn an_error_that_cannot_quote_the_header_and_8_bytes_is_not_written() {
        let plain = udp_packet(100);
        let mut optioned = plain[..20].to_vec();
        optioned.extend([1u8; 36]);
        optioned.extend([148, 4, 0, 0]);
        optioned.extend_from_slice(&plain[20..60]); // 100 bytes, as the length field says
        optioned[0] = 0x4f;
        optioned[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&optioned[..60]);
        optioned[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(!ipv4_quote_suffices(&optioned, 40) && !ipv4_quote_suffices(&optioned, 67));
        assert!(ipv4_quote_suffices(&optioned, 68));
        let error = Icmpv4Error::TtlExceeded;
        let src = Ipv4Addr::new(10, 213, 0, 0);
        for (quoted, written) in [(40, None), (67, None), (68, Some((72, 96)))] {
            let mut frame = vec![0xa5u8; 100];
            frame.extend_from_slice(&optioned);
            let before = frame.clone();
            assert_eq!(icmpv4_error(&mut frame, 100, quoted, error, src, 64), written, "quote of {quoted}");
            if written.is_none() {
                assert_eq!(frame, before, "nothing written");
            }
        }
        assert!(!ipv4_quote_suffices(&plain, 27) && ipv4_quote_suffices(&plain, 28));
        let short = udp_packet(24); // a header and 4 bytes: all of it is the least
        assert!(!ipv4_quote_suffices(&short, 23) && ipv4_quote_suffices(&short, 24));
        assert!(!ipv4_quote_suffices(&plain[..19], 19), "no header");
    }

    /// The least an ICMPv6 error quotes, as Linux 6.18 took the quotes of transitd's errors
    /// and scapy's in a veth lab (a UDP socket with IPV6_RECVERR; a shorter quote reached no
    /// socket and counted in Icmp6InErrors): the headers and 8 bytes. A UDP probe without
    /// extension headers (58 bytes): 47 refused, 48 taken; behind a 16-byte Destination
    /// Options header (74 bytes): 63 and 64; behind 1,296 bytes of them, the 1,232 bytes an
    /// error of 1,280 quotes are refused, 1,344 taken. A shorter packet is quoted whole.
    #[test]
    fn an_ipv6_quote_holds_the_headers_and_8_bytes() {
        for (len, headers, refused, taken) in [(58, 40, 47, 48), (74, 56, 63, 64), (1354, 1336, 1232, 1344)] {
            assert!(!ipv6_quote_suffices(len, headers, refused), "{len} bytes, {headers} of headers: {refused}");
            assert!(ipv6_quote_suffices(len, headers, taken), "{len} bytes, {headers} of headers: {taken}");
        }
        assert!(!ipv6_quote_suffices(44, 40, 43) && ipv6_quote_suffices(44, 40, 44), "4 bytes of payload: all");
        assert!(!ipv6_quote_suffices(40, 40, 39), "no fixed header");
    }

    #[test]
    fn packet_too_big_checksums_with_pseudo_header() {
        let mut original = vec![0u8; 1500];
        original[0] = 0x60;
        original[4..6].copy_from_slice(&1460u16.to_be_bytes());
        original[6] = 17;
        original[7] = 64;
        original[8..24].copy_from_slice(&"2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        original[24..40].copy_from_slice(&"2001:db8:acbe::10".parse::<Ipv6Addr>().unwrap().octets());
        let mut frame = vec![0u8; 64];
        frame.extend_from_slice(&original);
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let (start, len) =
            icmpv6_error(&mut frame, 64, 1500, Icmpv6Error::PacketTooBig { mtu: 1456 }, src, 64).unwrap();
        assert_eq!((start, len), (16, 1280));
        let out = &frame[start..start + len];
        assert_eq!(&out[..8], &[0x60, 0, 0, 0, 0x04, 0xd8, 58, 64]);
        assert_eq!(&out[8..24], &src.octets());
        assert_eq!(&out[24..40], &original[8..24]);
        assert_eq!(&out[40..42], &[2, 0]);
        assert_eq!(&out[44..48], &1456u32.to_be_bytes());
        let mut s = [0u8; 16];
        s.copy_from_slice(&out[8..24]);
        let mut d = [0u8; 16];
        d.copy_from_slice(&out[24..40]);
        let pseudo = ipv6_pseudo_header_sum(&s, &d, 1240, 58);
        assert_eq!(checksum::fold(u64::from(checksum::sum(&out[40..])) + pseudo), 0xffff);
        assert_eq!(&out[48..], &original[..1232]);
    }

    #[test]
    fn errors_are_not_sent_about_errors_fragments_or_group_addresses() {
        let ok = udp_packet(100);
        assert!(ipv4_error_allowed(&ok));
        let mut later_fragment = ok.clone();
        later_fragment[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert!(!ipv4_error_allowed(&later_fragment));
        let mut broadcast = ok.clone();
        broadcast[12..16].copy_from_slice(&[255, 255, 255, 255]);
        assert!(!ipv4_error_allowed(&broadcast));
        // A source in network 0, not only 0.0.0.0 (RFC 1812 §4.3.2.7).
        let mut this_network = ok.clone();
        this_network[12..16].copy_from_slice(&[0, 1, 2, 3]);
        assert!(!ipv4_error_allowed(&this_network));
        let mut icmp_error = ok.clone();
        icmp_error[9] = 1;
        icmp_error[20] = 3;
        assert!(!ipv4_error_allowed(&icmp_error));
        icmp_error[20] = 8; // echo request
        assert!(ipv4_error_allowed(&icmp_error));
        assert!(!ipv4_error_allowed(&ok[..19]));

        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = 58;
        v6[8] = 0x20;
        v6[24] = 0xff; // multicast destination
        v6[40] = 128;
        assert!(ipv6_error_allowed(&v6, Icmpv6Error::PacketTooBig { mtu: 1280 }));
        assert!(!ipv6_error_allowed(&v6, Icmpv6Error::HopLimitExceeded));
        v6[24] = 0x20;
        v6[40] = 1; // destination unreachable: an error
        assert!(!ipv6_error_allowed(&v6, Icmpv6Error::HopLimitExceeded));
        v6[40] = ICMPV6_REDIRECT; // RFC 4443 §2.4 (e.2)
        assert!(!ipv6_error_allowed(&v6, Icmpv6Error::HopLimitExceeded));
        v6[40] = 135; // neighbour solicitation: informational, answered
        assert!(ipv6_error_allowed(&v6, Icmpv6Error::HopLimitExceeded));
    }

    /// RFC 4443 §2.4 (e.3): no error to a source that names no one node, whatever the error; a
    /// global unicast or IPv4-compatible source gets both. Packets as scapy writes them
    /// (`IPv6(src=S, dst='2001:db8:acbe::10', hlim=1)/UDP(sport=5000, dport=53)`), but for
    /// the checksum, which no check here reads.
    #[test]
    fn ipv6_errors_go_to_no_source_that_names_no_one_node() {
        let packet = |src: &str| {
            let mut p = [0u8; 48];
            // version 6, payload 8 bytes, next header UDP, hop limit 1
            p[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 1]);
            p[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
            p[24..40].copy_from_slice(&"2001:db8:acbe::10".parse::<Ipv6Addr>().unwrap().octets());
            p[40..48].copy_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]); // 5000 → 53, length 8
            p
        };
        let errors = [Icmpv6Error::HopLimitExceeded, Icmpv6Error::PacketTooBig { mtu: 1280 }];
        for src in ["::", "::1", "ff02::1", "::ffff:198.18.0.10", "::ffff:0.0.0.0"] {
            for error in errors {
                assert!(!ipv6_error_allowed(&packet(src), error), "{src}, {error:?}");
            }
        }
        // Deprecated (RFC 4291 §2.5.5.1), an IPv4-compatible address still names one node.
        for src in ["2001:db8:5::9", "::198.18.0.10"] {
            for error in errors {
                assert!(ipv6_error_allowed(&packet(src), error), "{src}, {error:?}");
            }
        }
    }

    /// A padded echo reply as scapy writes it (`IP(src='10.213.0.1', dst='10.213.0.0', id=0,
    /// flags='DF', ttl=64)/ICMP(type=0, id=0x7464, seq=1)/Raw(b'ping' + b'\0' * 8)`), into a
    /// buffer of junk: the padding is written, not left.
    #[test]
    fn a_padded_echo_is_the_datagram_scapy_writes() {
        #[rustfmt::skip]
        const SCAPY: [u8; 40] = [
            0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x25, 0x2b, // 40 bytes, DF
            0x0a, 0xd5, 0x00, 0x01, 0x0a, 0xd5, 0x00, 0x00,                         // 10.213.0.1 → .0
            0x00, 0x00, 0xac, 0xc9, 0x74, 0x64, 0x00, 0x01,                         // echo reply
            0x70, 0x69, 0x6e, 0x67, 0, 0, 0, 0, 0, 0, 0, 0,                         // "ping", padding
        ];
        let echo = Echo {
            kind: ICMPV4_ECHO_REPLY,
            src: Ipv4Addr::new(10, 213, 0, 1),
            dst: Ipv4Addr::new(10, 213, 0, 0),
            ident: 0x7464,
            seq: 1,
            ttl: 64,
        };
        let mut buf = [0xa5u8; 48];
        assert_eq!(write_ipv4_echo_padded(&mut buf, &echo, b"ping", 40), Some(40));
        assert_eq!(buf[..40], SCAPY);
        assert_eq!(write_ipv4_echo_padded(&mut buf, &echo, b"ping", 10), Some(32), "no shorter than its payload");
        assert_eq!(write_ipv4_echo_padded(&mut buf, &echo, b"ping", 49), None, "more than the buffer");
        assert_eq!(write_ipv4_echo_padded(&mut [0u8; 70_000], &echo, b"ping", 65_536), None, "more than IPv4 takes");
    }

    #[test]
    fn echo_reply_swaps_addresses_and_keeps_checksums_valid() {
        let mut p = [0u8; 32];
        let echo = Echo {
            kind: ICMPV4_ECHO_REQUEST,
            src: Ipv4Addr::new(10, 213, 0, 1),
            dst: Ipv4Addr::new(10, 213, 0, 0),
            ident: 7,
            seq: 9,
            ttl: 63,
        };
        let len = write_ipv4_echo(&mut p, &echo, b"ping").unwrap();
        assert_eq!(len, 32);
        assert_eq!(checksum::sum(&p[20..]), 0xffff);
        assert!(ipv4_echo_reply_in_place(&mut p, 64));
        assert_eq!(&p[12..20], &[10, 213, 0, 0, 10, 213, 0, 1]);
        assert_eq!((p[8], p[20]), (64, 0));
        assert_eq!(checksum::sum(&p[..20]), 0xffff);
        assert_eq!(checksum::sum(&p[20..]), 0xffff);
        assert_eq!(&p[24..28], &[0, 7, 0, 9]);
        assert!(!ipv4_echo_reply_in_place(&mut p, 64), "a reply is not answered");
        // Requests from addresses that name no host are not answered, nor ones with options.
        for src in [[255, 255, 255, 255], [0, 0, 0, 0], [127, 0, 0, 1], [224, 0, 0, 1], [240, 0, 0, 1]] {
            let from = Echo { src: Ipv4Addr::from(src), ..echo };
            write_ipv4_echo(&mut p, &from, b"ping").unwrap();
            let before = p;
            assert!(!ipv4_echo_reply_in_place(&mut p, 64), "from {src:?}");
            assert_eq!(p, before, "nothing written");
        }
        let mut with_options = [0u8; 36];
        write_ipv4_echo(&mut with_options[4..], &echo, b"ping").unwrap();
        // The same datagram with a 4-byte option list (record route's head, then the end).
        with_options.copy_within(4..24, 0);
        with_options[0] = 0x46;
        with_options[2..4].copy_from_slice(&36u16.to_be_bytes());
        with_options[20..24].copy_from_slice(&[7, 3, 4, 0]);
        let parsed = Ipv4Packet::new_checked(&with_options[..]).expect("a well-formed datagram");
        assert_eq!((parsed.header_len(), parsed.payload()[0]), (24, ICMPV4_ECHO_REQUEST));
        assert!(!ipv4_echo_reply_in_place(&mut with_options, 64), "options are not echoed back");
    }
}
