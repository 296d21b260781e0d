//! The program's configuration as the data plane gives it: the anycast addresses, what is
//! redirected rather than passed, what becomes of owned traffic on a queue with no socket,
//! and soft-unicast's scalars and tables.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The program's configuration (its `config` map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// The anycast address customers send GRE to.
    pub anycast: Ipv4Addr,
    /// The IPv6 anycast address, if any.
    pub anycast_v6: Option<Ipv6Addr>,
    /// Soft-unicast, if configured.
    pub soft_unicast: Option<SoftUnicastConfig>,
    /// Pass GRE to the anycast address that is not ours to the kernel in XDP (else the data
    /// plane drops and counts it).
    pub gre_not_ours_pass: bool,
    /// Redirect MPLS frames to the data plane (which drops and counts them) rather than
    /// pass them to the kernel.
    pub mpls_redirect: bool,
    /// Redirect an ICMP Fragmentation Needed or Packet Too Big to the anycast address about
    /// GRE from it to a tunnel's router, for the data plane to lower the tunnel's path MTU,
    /// rather than pass it to the kernel.
    pub pmtu_redirect: bool,
    /// What becomes of owned traffic on a queue with no socket.
    pub unbound_queue: UnboundQueue,
    /// `[server] mac`, if set: frames to it are ours as to the interface's own address
    /// ([`XdpProgram::pass_frames_not_to`](crate::XdpProgram::pass_frames_not_to)).
    pub config_mac: Option<[u8; 6]>,
}

/// What the program does with owned traffic on a queue that has no socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnboundQueue {
    /// Hand it to the kernel stack (fail open).
    Pass,
    /// Drop it (fail closed): no customer's traffic bypasses its firewall.
    #[default]
    Drop,
}

/// Soft-unicast's tables for the program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressTables {
    /// Each egress address with its data centre; its row is its position.
    pub addresses: Vec<(Ipv4Addr, u16)>,
    /// The owner of each slice, row by row (`slices` per row; `u16::MAX`: none).
    pub owners: Vec<u16>,
    /// The fleet's backbone addresses (servers' and data centres').
    pub peers: Vec<Ipv4Addr>,
}

/// Soft-unicast's scalars for the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftUnicastConfig {
    /// This server's backbone address.
    pub backbone: Ipv4Addr,
    /// Its data centre's backbone address.
    pub dc_backbone: Ipv4Addr,
    /// Upper 24 bits of backbone GRE keys.
    pub key_id: u32,
    /// This server's index in the plan's owner table.
    pub this_server: u16,
    /// Its data centre's index.
    pub this_dc: u16,
    /// Ports below this are in no slice.
    pub reserved_ports: u16,
    /// Ports per slice.
    pub slice_size: u16,
    /// Slices per address.
    pub slices: u32,
}
