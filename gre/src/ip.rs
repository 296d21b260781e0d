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
//! Each family's byte layout is written once, in the `field` module of its file: `ipv4.rs`
//! (with `Ipv4Repr`) and `ipv6.rs` (with `Ipv6Repr`); `options.rs` walks IPv4 options. Once
//! `check_len` has passed, no accessor can index out of bounds: untrusted input goes through
//! `new_checked`; headers being built use `new_unchecked` over a buffer the caller sized.
//! This file holds what both families share: `IpError` and `IpPacket`, the view over either.

use std::net::IpAddr;

mod ipv4;
mod ipv6;
mod options;

pub use ipv4::{IPV4_HEADER_LEN, Ipv4Packet, Ipv4Repr};
pub use ipv6::{IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr};
pub use options::{Ipv4Option, Ipv4Options, MalformedOption, option};

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
