//! GRE for transitd: the header view and its meaning (RFC 2784, RFC 2890), GRE-in-IPv4
//! encapsulation written in place, the Internet checksum, and TTL handling.
//!
//! Picking the tunnel is the route stage's job, and no function here does I/O: callers hand
//! in a frame buffer and get offsets or errors back.

#![warn(missing_docs)]

pub mod checksum;
pub mod encap;
pub mod packet;
pub mod ttl;

pub use encap::{EncapError, EthernetAddrs, GreTunnel, encap_gre};
pub use packet::{GreError, GrePacket, GreRepr};
