//! The tunnel side of transitd as pure functions over byte buffers: typed views over IPv4
//! and IPv6 headers, GRE headers (RFC 2784, RFC 2890), encapsulation over IPv4 or IPv6
//! written in place, ECN across the tunnel's end, the ICMP errors and echo messages a tunnel
//! edge originates, IPv4 fragmentation and IP reassembly, TCP MSS clamping, TTL handling and
//! the Internet checksum.
//!
//! Picking the tunnel is the route stage's job, and no function here does I/O: callers hand
//! in a frame buffer and get offsets or errors back.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod be;
pub mod checksum;
pub mod ecn;
pub mod encap;
pub mod fragment;
pub mod icmp;
pub mod ip;
pub mod mss;
pub mod packet;
pub mod reassembly;
pub mod tcp;
pub mod ttl;

pub use encap::{EncapError, Endpoints, EthernetAddrs, GreTunnel, encap_gre};
pub use ip::{IpError, IpPacket, Ipv4Option, Ipv4Options, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};
pub use packet::{GreError, GrePacket, GreRepr};
pub use tcp::TcpPacket;
