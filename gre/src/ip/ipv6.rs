//! `Ipv6Packet`, the view over the fixed IPv6 header (RFC 8200) that transitd reads and
//! rewrites in place, and `Ipv6Repr`, the IPv6 header it writes itself. Extension headers
//! are left to the code that walks them (reassembly, the parse stage).

use std::net::Ipv6Addr;

use crate::be::{u16_at, u32_at};

use super::IpError;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
    pub const HEADER_LEN: usize = DST_ADDR.end;
}

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = field::HEADER_LEN;

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
        match self.buf.as_ref().len() < field::HEADER_LEN {
            true => Err(IpError::Truncated),
            false => Ok(()),
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    fn ver_tc_flow(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::VER_TC_FLOW)
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
        u16_at(self.buf.as_ref(), field::PAYLOAD_LEN)
    }

    /// The next header (the first extension header, or the upper-layer protocol).
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::NEXT_HEADER]
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::HOP_LIMIT]
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
        a.copy_from_slice(&self.buf.as_ref()[field::SRC_ADDR]);
        a
    }

    /// The destination address as bytes.
    pub fn dst_octets(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::DST_ADDR]);
        a
    }

    /// Everything in the buffer after the fixed header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[field::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, the traffic class and the flow label.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = 6 << 28 | u32::from(traffic_class) << 20 | flow_label & 0x000f_ffff;
        self.buf.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    /// Writes the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buf.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Writes the next header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buf.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Writes the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Writes the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buf.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Writes the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buf.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Swaps source and destination (a reply's addresses).
    pub fn swap_addrs(&mut self) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }

    /// The fixed header and everything after it, mutable.
    pub fn header_and_payload_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        self.buf.as_mut().split_at_mut(field::HEADER_LEN)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
