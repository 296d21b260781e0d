//! transitd's XDP program (`src/bpf/`, C) and its loader.
//!
//! The program redirects to the rx queue's AF_XDP socket exactly the frames transitd owns
//! and passes everything else to the kernel. This crate loads it, fills its maps from what
//! the data plane tells it (owned prefixes, the anycast address, tunnel remotes, sockets per
//! queue) and attaches it (native, or generic as a fallback) through a BPF link: the kernel
//! detaches it when the link's last file descriptor closes, so however transitd ends (a
//! return, a panic, an abort, `kill -9`) the interface is left clean. It never replaces a
//! program it did not attach ([`attach`](XdpProgram::attach) names the one it found);
//! [`detach`] removes only a transitd program attached the old (netlink) way.

mod attach;

pub use attach::{AttachMode, Attached, Found, attached, detach, is_stale, runs};

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use zerocopy::{Immutable, IntoBytes};

#[allow(clippy::all, missing_docs, unsafe_code)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/transitd.skel.rs"));
}

use skel::{TransitdSkel, TransitdSkelBuilder};

/// Counter slots of the `stats` map (`consts.h`).
const STAT_REDIRECTED: u32 = 0;
const STAT_PASSED: u32 = 1;
const STAT_NO_SOCKET: u32 = 2;
const STAT_EGRESS_LOCAL: u32 = 3;
const STAT_BACKBONE_LOCAL: u32 = 4;
const STAT_GRE_NOT_OURS: u32 = 5;

/// Table sizes of `consts.h`.
const MAX_EGRESS_ADDRS: usize = 16384;
const MAX_EGRESS_SLICES: usize = 16384 * 32;
const MAX_BACKBONE_PEERS: usize = 4096;
const MAX_TUNNEL_REMOTES: usize = 65536;

/// The name the kernel knows the program by (its function name, `bpftool prog` shows it).
pub const PROGRAM_NAME: &str = "xdp_transitd";

/// `struct transitd_config` of `maps.h`, field for field: addresses in network order, the
/// rest in host order. Its layout is checked against the compiled program's own type (BTF)
/// in a test, so the bytes written are the bytes the program reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct ConfigValue {
    anycast_v4: [u8; 4],
    has_anycast_v6: u32,
    anycast_v6: [u8; 16],
    su_enabled: u32,
    backbone_v4: [u8; 4],
    dc_backbone_v4: [u8; 4],
    key_id: u32,
    this_server: u16,
    this_dc: u16,
    reserved_ports: u16,
    slice_size: u16,
    slices: u32,
    gre_not_ours_pass: u32,
    unbound_action: u32,
    mpls_redirect: u32,
}

/// `struct egress_addr` of `maps.h`: an egress address's data centre and row.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct EgressAddrValue {
    dc: u16,
    pad: u16,
    row: u32,
}

/// XDP actions (`enum xdp_action`).
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

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
    /// What becomes of owned traffic on a queue with no socket.
    pub unbound_queue: UnboundQueue,
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

/// Why loading, attaching or updating failed.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Opening or loading the program into the kernel.
    #[error("loading the XDP program: {0}")]
    Load(libbpf_rs::Error),
    /// Attaching to an interface.
    #[error("attaching XDP to ifindex {ifindex} ({mode}): {source}")]
    Attach {
        /// The interface.
        ifindex: i32,
        /// The mode tried.
        mode: &'static str,
        /// The reason.
        source: std::io::Error,
    },
    /// Another program is attached (or a running transitd holds the interface).
    #[error(
        "ifindex {ifindex} has an XDP program attached already: `{}` (id {}); {}",
        found.name,
        found.id,
        if found.is_transitd() {
            "a running transitd holds it (stop that one first)"
        } else {
            "transitd does not replace another program: remove it first (`ip link set dev IFACE xdp off`)"
        }
    )]
    Occupied {
        /// The interface.
        ifindex: i32,
        /// What is attached.
        found: Found,
    },
    /// `detach` found a program that is not transitd's.
    #[error("ifindex {ifindex}: the XDP program attached is `{}` (id {}), not transitd's: left alone", found.name, found.id)]
    NotOurs {
        /// The interface.
        ifindex: i32,
        /// What is attached.
        found: Found,
    },
    /// Asking the kernel what is attached.
    #[error("querying the XDP program of ifindex {ifindex}: {source}")]
    Query {
        /// The interface.
        ifindex: i32,
        /// The reason.
        source: libbpf_rs::Error,
    },
    /// A table larger than the program's maps.
    #[error("{what} too large for the XDP program's maps (at most {limit})")]
    TooLarge {
        /// What.
        what: &'static str,
        /// The limits.
        limit: String,
    },
    /// Updating a map.
    #[error("updating map {map}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// The reason.
        source: libbpf_rs::Error,
    },
}

/// Counters of the XDP program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames handed to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that are not transitd's, passed to the kernel.
    pub passed: u64,
    /// Frames that are transitd's but arrived on a queue without a socket (passed).
    pub no_socket: u64,
    /// Soft-unicast return traffic this server owns, passed to its socket.
    pub egress_local: u64,
    /// Backbone GRE carrying such traffic, decapsulated and passed.
    pub backbone_local: u64,
    /// GRE to the anycast address that is not ours (no tunnel's, version 1, another
    /// payload), passed to the kernel.
    pub gre_not_ours: u64,
}

/// The loaded (not necessarily attached) program.
pub struct XdpProgram {
    skel: TransitdSkel<'static>,
}

impl XdpProgram {
    /// Loads the program into the kernel.
    pub fn load() -> Result<XdpProgram, BpfError> {
        // The skeleton borrows its object storage for as long as it lives; the program lives
        // as long as the process, so the few hundred bytes are leaked on purpose.
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
        let open = TransitdSkelBuilder::default().open(storage).map_err(BpfError::Load)?;
        let skel = open.load().map_err(BpfError::Load)?;
        Ok(XdpProgram { skel })
    }

    pub(crate) fn prog_fd(&self) -> BorrowedFd<'_> {
        self.skel.progs.xdp_transitd.as_fd()
    }

    /// Makes `fd` (an AF_XDP socket) receive the frames of rx queue `queue`.
    pub fn register_socket(&self, queue: u32, fd: RawFd) -> Result<(), BpfError> {
        let value = u32::try_from(fd).unwrap_or(u32::MAX).to_ne_bytes();
        self.skel
            .maps
            .xsks
            .update(&queue.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "xsks", source })
    }

    /// Sets the program's configuration: the anycast addresses GRE arrives at (IPv6
    /// optional) and soft-unicast's scalars (its tables are [`XdpProgram::set_egress`]'s).
    pub fn set_config(&self, config: &XdpConfig) -> Result<(), BpfError> {
        let mut value = ConfigValue {
            anycast_v4: config.anycast.octets(),
            gre_not_ours_pass: u32::from(config.gre_not_ours_pass),
            mpls_redirect: u32::from(config.mpls_redirect),
            unbound_action: match config.unbound_queue {
                UnboundQueue::Pass => XDP_PASS,
                UnboundQueue::Drop => XDP_DROP,
            },
            ..ConfigValue::default()
        };
        if let Some(v6) = config.anycast_v6 {
            value.has_anycast_v6 = 1;
            value.anycast_v6 = v6.octets();
        }
        if let Some(su) = &config.soft_unicast {
            value.su_enabled = 1;
            value.backbone_v4 = su.backbone.octets();
            value.dc_backbone_v4 = su.dc_backbone.octets();
            value.key_id = su.key_id;
            value.this_server = su.this_server;
            value.this_dc = su.this_dc;
            value.reserved_ports = su.reserved_ports;
            value.slice_size = su.slice_size;
            value.slices = su.slices;
        }
        self.skel
            .maps
            .config
            .update(&0u32.to_ne_bytes(), value.as_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "config", source })
    }

    /// Replaces soft-unicast's tables: each egress address with its data centre (its row is
    /// its position), the owner of each slice row by row (`u16::MAX`: none), and the fleet's
    /// backbone addresses.
    pub fn set_egress(
        &self,
        addresses: &[(Ipv4Addr, u16)],
        owners: &[u16],
        peers: &[Ipv4Addr],
    ) -> Result<(), BpfError> {
        if addresses.len() > MAX_EGRESS_ADDRS || owners.len() > MAX_EGRESS_SLICES || peers.len() > MAX_BACKBONE_PEERS {
            return Err(BpfError::TooLarge {
                what: "soft-unicast plan",
                limit: format!(
                    "{MAX_EGRESS_ADDRS} addresses, {MAX_EGRESS_SLICES} slices, {MAX_BACKBONE_PEERS} backbone peers"
                ),
            });
        }
        for (i, o) in owners.iter().enumerate() {
            let (key, value) = ((i as u32).to_ne_bytes(), o.to_ne_bytes());
            self.skel
                .maps
                .egress_owners
                .update(&key, &value, MapFlags::ANY)
                .map_err(|source| BpfError::Map { map: "egress_owners", source })?;
        }
        let mut keys = Vec::with_capacity(addresses.len());
        for (row, (addr, dc)) in addresses.iter().enumerate() {
            let value = EgressAddrValue { dc: *dc, pad: 0, row: row as u32 };
            let key = addr.octets().to_vec();
            self.skel
                .maps
                .egress_addrs
                .update(&key, value.as_bytes(), MapFlags::ANY)
                .map_err(|source| BpfError::Map { map: "egress_addrs", source })?;
            keys.push(key);
        }
        remove_stale(&self.skel.maps.egress_addrs, "egress_addrs", &keys)?;
        let peer_keys: Vec<Vec<u8>> = peers.iter().map(|p| p.octets().to_vec()).collect();
        replace_keys(&self.skel.maps.backbone_peers, "backbone_peers", peer_keys)
    }

    /// Replaces the owned IPv4 prefixes: adds the new ones first, then removes the stale
    /// ones, so a prefix in both the old and new set is never missing.
    pub fn set_owned_v4(&self, prefixes: &[(Ipv4Addr, u8)]) -> Result<(), BpfError> {
        let keys = prefixes.iter().map(|(a, len)| lpm_key(*len, &a.octets())).collect();
        replace_keys(&self.skel.maps.owned_v4, "owned_v4", keys)
    }

    /// Replaces the outer addresses of the configured tunnels' routers: GRE to the anycast
    /// address from elsewhere is not ours.
    pub fn set_tunnel_remotes(&self, v4: &[Ipv4Addr], v6: &[Ipv6Addr]) -> Result<(), BpfError> {
        if v4.len() > MAX_TUNNEL_REMOTES || v6.len() > MAX_TUNNEL_REMOTES {
            return Err(BpfError::TooLarge {
                what: "tunnel remotes",
                limit: format!("{MAX_TUNNEL_REMOTES} per address family"),
            });
        }
        replace_keys(
            &self.skel.maps.tunnel_remotes_v4,
            "tunnel_remotes_v4",
            v4.iter().map(|a| a.octets().to_vec()).collect(),
        )?;
        replace_keys(
            &self.skel.maps.tunnel_remotes_v6,
            "tunnel_remotes_v6",
            v6.iter().map(|a| a.octets().to_vec()).collect(),
        )
    }

    /// Replaces the owned IPv6 prefixes.
    pub fn set_owned_v6(&self, prefixes: &[(Ipv6Addr, u8)]) -> Result<(), BpfError> {
        let keys = prefixes.iter().map(|(a, len)| lpm_key(*len, &a.octets())).collect();
        replace_keys(&self.skel.maps.owned_v6, "owned_v6", keys)
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> XdpStats {
        let read = |slot: u32| -> u64 {
            match self.skel.maps.stats.lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY) {
                Ok(Some(per_cpu)) => {
                    per_cpu.iter().filter_map(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_ne_bytes).sum()
                }
                _ => 0,
            }
        };
        XdpStats {
            redirected: read(STAT_REDIRECTED),
            passed: read(STAT_PASSED),
            no_socket: read(STAT_NO_SOCKET),
            egress_local: read(STAT_EGRESS_LOCAL),
            backbone_local: read(STAT_BACKBONE_LOCAL),
            gre_not_ours: read(STAT_GRE_NOT_OURS),
        }
    }
}

/// An LPM trie key: the prefix length (host order), then the address bytes.
fn lpm_key(len: u8, addr: &[u8]) -> Vec<u8> {
    let mut key = u32::from(len).to_ne_bytes().to_vec();
    key.extend_from_slice(addr);
    key
}

fn replace_keys(map: &impl MapCore, name: &'static str, keys: Vec<Vec<u8>>) -> Result<(), BpfError> {
    for key in &keys {
        map.update(key, &[1], MapFlags::ANY).map_err(|source| BpfError::Map { map: name, source })?;
    }
    remove_stale(map, name, &keys)
}

/// Deletes every key of `map` not in `keep`.
fn remove_stale(map: &impl MapCore, name: &'static str, keep: &[Vec<u8>]) -> Result<(), BpfError> {
    let keep: std::collections::HashSet<&[u8]> = keep.iter().map(Vec::as_slice).collect();
    let stale: Vec<Vec<u8>> = map.keys().filter(|k| !keep.contains(k.as_slice())).collect();
    for key in stale {
        map.delete(&key).map_err(|source| BpfError::Map { map: name, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::skel::types::{egress_addr, transitd_config};
    use super::*;

    /// The values written into the maps have the layout of the program's own types, which
    /// libbpf-cargo generates from the compiled object's BTF (that is, from maps.h).
    #[test]
    fn map_values_match_the_programs_types() {
        macro_rules! same {
            ($ours:ty, $theirs:ty, [$($f:ident),*]) => {
                assert_eq!(size_of::<$ours>(), size_of::<$theirs>(), stringify!($ours));
                $(assert_eq!(offset_of!($ours, $f), offset_of!($theirs, $f), stringify!($f));)*
            };
        }
        same!(
            ConfigValue,
            transitd_config,
            [
                anycast_v4,
                has_anycast_v6,
                anycast_v6,
                su_enabled,
                backbone_v4,
                dc_backbone_v4,
                key_id,
                this_server,
                this_dc,
                reserved_ports,
                slice_size,
                slices,
                gre_not_ours_pass,
                unbound_action,
                mpls_redirect
            ]
        );
        same!(EgressAddrValue, egress_addr, [dc, pad, row]);
    }
}
