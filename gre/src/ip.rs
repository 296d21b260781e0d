//! `Ipv4Packet` and `Ipv6Packet`: views over the IP headers transitd reads and rewrites in
//! place (RFC 791, RFC 8200), and `Ipv4Repr` / `Ipv6Repr`, the headers it writes itself
//! (tunnel outer headers, ICMP errors, echo probes).
//!
//! ```text
//!  IPv4                                       IPv6
//!  0       4       8               16      31  0       4               12              31
//! +-------+-------+---------------+----------+ +-------+---------------+-----------------+
//! |Version|  IHL  |      TOS      |  Length  | |Version| Traffic class |   Flow label    |
//! +-------+-------+---------------+----------+ +-------+---------------+--------+--------+
//! |    Identification     |Flags|  Offset    | |    Payload length     |Next hdr|Hop lim.|
//! +-----------+-----------+-----+------------+ +-----------------------+--------+--------+
//! |    TTL    | Protocol  |    Checksum      | |         Source address (16 bytes)       |
//! +-----------+-----------+------------------+ +-----------------------------------------+
//! |      Source address | Destination address| |      Destination address (16 bytes)     |
//! +------------------------------------------+ +-----------------------------------------+
//! ```
//!
//! The byte layout is written once, in the `field` modules. Once `check_len` has passed, no
//! accessor can index out of bounds: untrusted input goes through `new_checked`; headers
//! being built use `new_unchecked` over a buffer the caller sized.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::be::{u16_at, u32_at};
use crate::checksum;

mod field {
    pub mod ipv4 {
        use core::ops::Range;
        pub const VER_IHL: usize = 0;
        pub const TOS: usize = 1;
        pub const LENGTH: Range<usize> = 2..4;
        pub const IDENT: Range<usize> = 4..6;
        pub const FLG_OFF: Range<usize> = 6..8;
        pub const TTL: usize = 8;
        pub const PROTOCOL: usize = 9;
        pub const CHECKSUM: Range<usize> = 10..12;
        pub const SRC_ADDR: Range<usize> = 12..16;
        pub const DST_ADDR: Range<usize> = 16..20;
        pub const HEADER_LEN: usize = DST_ADDR.end;
    }

    pub mod ipv6 {
        use core::ops::Range;
        pub const VER_TC_FLOW: Range<usize> = 0..4;
        pub const PAYLOAD_LEN: Range<usize> = 4..6;
        pub const NEXT_HEADER: usize = 6;
        pub const HOP_LIMIT: usize = 7;
        pub const SRC_ADDR: Range<usize> = 8..24;
        pub const DST_ADDR: Range<usize> = 24..40;
        pub const HEADER_LEN: usize = DST_ADDR.end;
    }
}

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = field::ipv4::HEADER_LEN;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = field::ipv6::HEADER_LEN;

/// IPv4 flag: don't fragment.
const DF: u16 = 0x4000;
/// IPv4 flag: more fragments.
const MF: u16 = 0x2000;
/// IPv4 fragment offset, in 8-byte units.
const OFFSET_MASK: u16 = 0x1fff;

/// Why bytes are not the IP header a view needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// Shorter than the fixed header, or than the header length the IHL announces.
    #[error("truncated IP header")]
    Truncated,
    /// An IHL below 5 (a header shorter than its fixed part).
    #[error("IPv4 header length below 20 bytes")]
    BadHeaderLen,
}

/// A read/write view over an IPv4 header and what follows it.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buf` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buf: T) -> Self {
        Ipv4Packet { buf }
    }

    /// Wraps `buf` after [`check_len`](Self::check_len).
    pub fn new_checked(buf: T) -> Result<Self, IpError> {
        let p = Self::new_unchecked(buf);
        p.check_len()?;
        Ok(p)
    }

    /// Once this returns Ok, no accessor below can index out of bounds: the buffer holds
    /// the whole header its IHL announces (options included), and that is at least 20
    /// bytes. The version is the caller's to check: a view is also laid over headers
    /// being rewritten.
    pub fn check_len(&self) -> Result<(), IpError> {
        let len = self.buf.as_ref().len();
        if len < field::ipv4::HEADER_LEN {
            return Err(IpError::Truncated);
        }
        if self.header_len() < field::ipv4::HEADER_LEN {
            return Err(IpError::BadHeaderLen);
        }
        if len < self.header_len() {
            return Err(IpError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The version field (4 for a header that is what it claims).
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::ipv4::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[field::ipv4::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[field::ipv4::TOS]
    }

    /// The total length field (header and data).
    pub fn total_len(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::ipv4::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::ipv4::IDENT)
    }

    fn flags_offset(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::ipv4::FLG_OFF)
    }

    /// The don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & DF != 0
    }

    /// The more-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & MF != 0
    }

    /// The fragment offset in bytes (a multiple of 8).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) * 8
    }

    /// True for any fragment: more to come, or not the first.
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (MF | OFFSET_MASK) != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::ipv4::TTL]
    }

    /// The protocol of the payload (IANA protocol number).
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::ipv4::PROTOCOL]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::ipv4::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_octets())
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_octets())
    }

    /// The source address as bytes.
    pub fn src_octets(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buf.as_ref()[field::ipv4::SRC_ADDR]);
        a
    }

    /// The destination address as bytes.
    pub fn dst_octets(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buf.as_ref()[field::ipv4::DST_ADDR]);
        a
    }

    /// The options: the header past its fixed 20 bytes.
    pub fn options(&self) -> &[u8] {
        &self.buf.as_ref()[field::ipv4::HEADER_LEN..self.header_len()]
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buf.as_ref()[..self.header_len()]
    }

    /// Everything in the buffer after the header (the caller cut the buffer to the
    /// datagram, or not).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }

    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Writes version 4 and the IHL of a `header_len`-byte header (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && (20..=60).contains(&header_len));
        self.buf.as_mut()[field::ipv4::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }

    /// Writes the type-of-service byte.
    pub fn set_tos(&mut self, tos: u8) {
        self.buf.as_mut()[field::ipv4::TOS] = tos;
    }

    /// Writes the total length.
    pub fn set_total_len(&mut self, len: u16) {
        self.buf.as_mut()[field::ipv4::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Writes the identification.
    pub fn set_ident(&mut self, ident: u16) {
        self.buf.as_mut()[field::ipv4::IDENT].copy_from_slice(&ident.to_be_bytes());
    }

    /// Writes the flags and the fragment offset (in bytes, a multiple of 8).
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        debug_assert!(offset.is_multiple_of(8));
        let word = if dont_frag { DF } else { 0 } | if more_frags { MF } else { 0 } | (offset / 8) & OFFSET_MASK;
        self.buf.as_mut()[field::ipv4::FLG_OFF].copy_from_slice(&word.to_be_bytes());
    }

    /// Writes the time to live (the checksum is the caller's, or [`Self::fill_checksum`]).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buf.as_mut()[field::ipv4::TTL] = ttl;
    }

    /// Writes the protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buf.as_mut()[field::ipv4::PROTOCOL] = protocol;
    }

    /// Writes the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buf.as_mut()[field::ipv4::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buf.as_mut()[field::ipv4::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Writes the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buf.as_mut()[field::ipv4::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Swaps source and destination (a reply's addresses); the checksum is unchanged by it.
    pub fn swap_addrs(&mut self) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }

    /// Computes and writes the header checksum (options included).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// The header (options included) and everything after it, mutable.
    pub fn header_and_payload_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let len = self.header_len();
        self.buf.as_mut().split_at_mut(len)
    }
}

/// IPv4 option types (RFC 791 §3.1, RFC 1108, RFC 2113) transitd reads.
pub mod option {
    /// End of option list: what follows is padding.
    pub const END: u8 = 0;
    /// No operation: one byte, between options.
    pub const NOP: u8 = 1;
    /// Record route.
    pub const RECORD_ROUTE: u8 = 7;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 68;
    /// Security (RFC 1108).
    pub const SECURITY: u8 = 130;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Stream identifier.
    pub const STREAM_ID: u8 = 136;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert (RFC 2113).
    pub const ROUTER_ALERT: u8 = 148;
}

/// One IPv4 option other than end-of-list and no-operation: its type and its bytes, the
/// type and length octets included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The option type (copied flag, class and number).
    pub kind: u8,
    /// The whole option, at least the two octets of type and length.
    pub bytes: &'a [u8],
}

impl Ipv4Option<'_> {
    /// Whether fragmentation copies the option into every fragment (the type's top bit).
    pub fn copied(&self) -> bool {
        self.kind & 0x80 != 0
    }
}

/// An IPv4 option whose length octet is missing, below 2 or past the header's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("IPv4 option runs past the header or has a length below 2")]
pub struct MalformedOption;

/// The options of an IPv4 header (the bytes past its fixed 20), in order: the one walk
/// the parser's well-formedness check, decapsulation's source-route check and the
/// fragmenter's copy share. No-operation options are skipped; the walk ends at end-of-list
/// or the header's end, and after yielding the error for a malformed option.
#[derive(Clone, Debug)]
pub struct Ipv4Options<'a> {
    rest: &'a [u8],
}

impl<'a> Ipv4Options<'a> {
    /// Walks `options`, the header past its fixed part.
    pub const fn new(options: &'a [u8]) -> Self {
        Ipv4Options { rest: options }
    }
}

impl<'a> Iterator for Ipv4Options<'a> {
    type Item = Result<Ipv4Option<'a>, MalformedOption>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, tail) = self.rest.split_first()?;
            match kind {
                option::END => {
                    self.rest = &[];
                    return None;
                }
                option::NOP => self.rest = tail,
                _ => {
                    let len = tail.first().map_or(0, |&len| usize::from(len));
                    if len < 2 || len > self.rest.len() {
                        self.rest = &[];
                        return Some(Err(MalformedOption));
                    }
                    let (bytes, rest) = self.rest.split_at(len);
                    self.rest = rest;
                    return Some(Ok(Ipv4Option { kind, bytes }));
                }
            }
        }
    }
}

/// The IPv4 header transitd writes for a packet it sends: no options, DF set and
/// identification 0 (an atomic datagram, RFC 6864 §4.1), the checksum filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Bytes after the header (at most 65515).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// Type-of-service byte (DSCP and ECN).
    pub tos: u8,
}

impl Ipv4Repr {
    /// Length of the header [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = IPV4_HEADER_LEN;

    /// Writes the header into the first 20 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(usize::from(self.payload_len) + Self::HEADER_LEN <= usize::from(u16::MAX));
        // Built in a 20-byte array, whose every offset the compiler knows is in bounds, then
        // copied once: the per-packet encapsulation writes one (a fifth fewer instructions
        // than field by field into the frame).
        let mut header = [0u8; IPV4_HEADER_LEN];
        let mut h = Ipv4Packet::new_unchecked(&mut header[..]);
        h.set_header_len(Self::HEADER_LEN);
        h.set_tos(self.tos);
        h.set_total_len(self.payload_len.wrapping_add(Self::HEADER_LEN as u16));
        h.set_ident(0);
        h.set_flags_and_offset(true, false, 0);
        h.set_ttl(self.ttl);
        h.set_protocol(self.protocol);
        h.set_src_addr(self.src_addr);
        h.set_dst_addr(self.dst_addr);
        h.fill_checksum();
        packet.buf.as_mut()[..IPV4_HEADER_LEN].copy_from_slice(&header);
    }
}

/// A read/write view over an IPv6 header and what follows it.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buf` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buf: T) -> Self {
        Ipv6Packet { buf }
    }

    /// Wraps `buf` after [`check_len`](Self::check_len).
    pub fn new_checked(buf: T) -> Result<Self, IpError> {
        let p = Self::new_unchecked(buf);
        p.check_len()?;
        Ok(p)
    }

    /// Once this returns Ok, no accessor below can index out of bounds: the buffer holds
    /// the 40-byte fixed header.
    pub fn check_len(&self) -> Result<(), IpError> {
        match self.buf.as_ref().len() < field::ipv6::HEADER_LEN {
            true => Err(IpError::Truncated),
            false => Ok(()),
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    fn ver_tc_flow(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::ipv6::VER_TC_FLOW)
    }

    /// The version field (6 for a header that is what it claims).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The flow label.
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// The payload length field (extension headers included).
    pub fn payload_len(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::ipv6::PAYLOAD_LEN)
    }

    /// The next header (the first extension header, or the upper-layer protocol).
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::ipv6::NEXT_HEADER]
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::ipv6::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_octets())
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_octets())
    }

    /// The source address as bytes.
    pub fn src_octets(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::ipv6::SRC_ADDR]);
        a
    }

    /// The destination address as bytes.
    pub fn dst_octets(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::ipv6::DST_ADDR]);
        a
    }

    /// Everything in the buffer after the fixed header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[field::ipv6::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, the traffic class and the flow label.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = 6 << 28 | u32::from(traffic_class) << 20 | flow_label & 0x000f_ffff;
        self.buf.as_mut()[field::ipv6::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    /// Writes the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buf.as_mut()[field::ipv6::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Writes the next header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buf.as_mut()[field::ipv6::NEXT_HEADER] = next_header;
    }

    /// Writes the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buf.as_mut()[field::ipv6::HOP_LIMIT] = hop_limit;
    }

    /// Writes the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buf.as_mut()[field::ipv6::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Writes the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buf.as_mut()[field::ipv6::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Swaps source and destination (a reply's addresses).
    pub fn swap_addrs(&mut self) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }

    /// The fixed header and everything after it, mutable.
    pub fn header_and_payload_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        self.buf.as_mut().split_at_mut(field::ipv6::HEADER_LEN)
    }
}

/// The IPv6 header transitd writes for a packet it sends (flow label 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (the upper-layer protocol: no extension headers are written).
    pub next_header: u8,
    /// Bytes after the fixed header.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
}

impl Ipv6Repr {
    /// Length of the header [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = IPV6_HEADER_LEN;

    /// Writes the header into the first 40 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_version_class_flow(self.traffic_class, 0);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// An IPv4 or an IPv6 view, for the steps a router takes the same way in both families
/// (hop limit, traffic class, addresses).
#[derive(Debug, Clone)]
pub enum IpPacket<T: AsRef<[u8]>> {
    /// IPv4.
    V4(Ipv4Packet<T>),
    /// IPv6.
    V6(Ipv6Packet<T>),
}

impl<T: AsRef<[u8]>> IpPacket<T> {
    /// The view of the family the parser found, after its `check_len`.
    pub fn new_checked(buf: T, is_ipv6: bool) -> Result<Self, IpError> {
        Ok(match is_ipv6 {
            true => IpPacket::V6(Ipv6Packet::new_checked(buf)?),
            false => IpPacket::V4(Ipv4Packet::new_checked(buf)?),
        })
    }

    /// The TTL or hop limit.
    pub fn hop_limit(&self) -> u8 {
        match self {
            IpPacket::V4(p) => p.ttl(),
            IpPacket::V6(p) => p.hop_limit(),
        }
    }

    /// The type-of-service byte or traffic class: DSCP and ECN.
    pub fn dscp_ecn(&self) -> u8 {
        match self {
            IpPacket::V4(p) => p.tos(),
            IpPacket::V6(p) => p.traffic_class(),
        }
    }

    /// The source address.
    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.src_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.src_addr()),
        }
    }

    /// The destination address.
    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.dst_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.dst_addr()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_walk_skips_nops_and_stops_at_end_of_list() {
        // NOP, NOP, a 4-byte router alert, a 7-byte record route, end of list, junk.
        let opts = [1, 1, 148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0xff, 0xff];
        let walked: Vec<_> = Ipv4Options::new(&opts).collect();
        assert_eq!(
            walked,
            [
                Ok(Ipv4Option { kind: option::ROUTER_ALERT, bytes: &opts[2..6] }),
                Ok(Ipv4Option { kind: option::RECORD_ROUTE, bytes: &opts[6..13] }),
            ]
        );
        assert!(!walked[1].unwrap().copied() && Ipv4Option { kind: option::LSRR, bytes: &[] }.copied());
    }

    #[test]
    fn options_walk_reports_a_malformed_option_once_and_ends() {
        for opts in [&[68u8][..], &[68, 1, 0, 0], &[68, 5, 0, 0], &[1, 7, 0]] {
            let walked: Vec<_> = Ipv4Options::new(opts).collect();
            assert_eq!(walked, [Err(MalformedOption)], "{opts:?}");
        }
    }

    /// RFC 1071's worked example is a sum, not a header; this is the header of the
    /// Wikipedia "IPv4 header checksum" example (checksum 0xb861), a widely checked vector.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];

    #[test]
    fn ipv4_fields_read_as_the_header_says() {
        let p = Ipv4Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.tos(), p.total_len()), (4, 20, 0, 0x73));
        assert_eq!((p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset()), (0, true, false, 0));
        assert_eq!((p.ttl(), p.protocol(), p.checksum()), (64, 17, 0xb861));
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum() && !p.is_fragment());
    }

    #[test]
    fn ipv4_repr_writes_the_reference_header() {
        let r = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            protocol: 17,
            payload_len: 0x73 - 20,
            ttl: 64,
            tos: 0,
        };
        let mut out = [0xa5u8; 20];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER);
    }

    #[test]
    fn short_or_lying_ipv4_headers_are_refused() {
        assert_eq!(Ipv4Packet::new_checked(&HEADER[..19]).unwrap_err(), IpError::Truncated);
        let mut options = HEADER;
        options[0] = 0x46; // 24-byte header in a 20-byte buffer
        assert_eq!(Ipv4Packet::new_checked(&options[..]).unwrap_err(), IpError::Truncated);
        options[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&options[..]).unwrap_err(), IpError::BadHeaderLen);
    }

    #[test]
    fn fragment_fields_round_trip() {
        let mut h = HEADER;
        let mut p = Ipv4Packet::new_unchecked(&mut h[..]);
        p.set_flags_and_offset(false, true, 1480);
        assert_eq!((p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment()), (false, true, 1480, true));
        assert_eq!(&h[6..8], &[0x20, 0xb9]);
    }

    #[test]
    fn ipv6_fields_round_trip_through_the_repr() {
        let r = Ipv6Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: 47,
            payload_len: 1234,
            hop_limit: 63,
            traffic_class: 0xb8,
        };
        let mut out = [0u8; 40];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..8], &[0x6b, 0x80, 0, 0, 0x04, 0xd2, 47, 63]);
        let p = Ipv6Packet::new_checked(&out[..]).unwrap();
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0xb8, 0));
        assert_eq!((p.payload_len(), p.next_header(), p.hop_limit()), (1234, 47, 63));
        assert_eq!((p.src_addr(), p.dst_addr()), (r.src_addr, r.dst_addr));
        assert_eq!(Ipv6Packet::new_checked(&out[..39]).unwrap_err(), IpError::Truncated);
    }

    proptest::proptest! {
        /// Any header `emit` writes sums to all ones (its checksum is right) and reads back
        /// as the values it was given.
        #[test]
        fn emitted_ipv4_headers_verify(src in proptest::num::u32::ANY, dst in proptest::num::u32::ANY, protocol in proptest::num::u8::ANY, payload_len in 0u16..65515, ttl in proptest::num::u8::ANY, tos in proptest::num::u8::ANY) {
            let r = Ipv4Repr { src_addr: Ipv4Addr::from_bits(src), dst_addr: Ipv4Addr::from_bits(dst), protocol, payload_len, ttl, tos };
            let mut out = [0u8; 20];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
            proptest::prop_assert_eq!(checksum::sum(&out), 0xffff);
            let p = Ipv4Packet::new_checked(&out[..]).unwrap();
            proptest::prop_assert!(p.verify_checksum());
            proptest::prop_assert_eq!((p.src_addr(), p.dst_addr(), p.protocol(), p.ttl(), p.tos()), (r.src_addr, r.dst_addr, protocol, ttl, tos));
            proptest::prop_assert_eq!(p.total_len(), payload_len + 20);
        }
    }
}
