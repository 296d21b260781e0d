//! transitd's XDP program (`src/bpf/`, C) and its loader.
//!
//! The program redirects to the rx queue's AF_XDP socket exactly the frames transitd owns
//! and passes everything else to the kernel. This crate loads it, fills its maps from what
//! the data plane tells it (owned prefixes, the anycast address, sockets per queue), attaches
//! it (native, or generic as a fallback) and detaches it again: an [`Attached`] detaches when
//! dropped, so every exit path that unwinds leaves the interface clean; [`detach`] removes a
//! program left behind by a killed process.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, Xdp, XdpFlags};

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

/// Table sizes of `consts.h`.
const MAX_EGRESS_ADDRS: usize = 16384;
const MAX_EGRESS_SLICES: usize = 16384 * 32;
const MAX_BACKBONE_PEERS: usize = 4096;

/// The program's configuration (its `config` map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// The anycast address customers send GRE to.
    pub anycast: Ipv4Addr,
    /// The IPv6 anycast address, if any.
    pub anycast_v6: Option<Ipv6Addr>,
    /// Soft-unicast, if configured.
    pub soft_unicast: Option<SoftUnicastConfig>,
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

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (fastest; every driver transitd targets supports it, veth included).
    Native,
    /// In the generic (skb) path: works everywhere, slower.
    Generic,
    /// Native, falling back to generic.
    Auto,
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
}

/// The loaded (not necessarily attached) program.
pub struct XdpProgram {
    skel: TransitdSkel<'static>,
}

/// The program attached to an interface; detaches when dropped.
pub struct Attached<'p> {
    program: &'p XdpProgram,
    ifindex: i32,
    /// `XdpFlags` bits (the type is not `Copy`).
    flags: u32,
    /// Whether the native mode failed and the generic one is in use.
    pub generic: bool,
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

    fn prog_fd(&self) -> BorrowedFd<'_> {
        self.skel.progs.xdp_transitd.as_fd()
    }

    /// Attaches to `ifindex`. With [`AttachMode::Auto`], a failed native attach is retried
    /// in generic mode and [`Attached::generic`] says so.
    pub fn attach(&self, ifindex: i32, mode: AttachMode) -> Result<Attached<'_>, BpfError> {
        let xdp = Xdp::new(self.prog_fd());
        let try_mode = |flags: XdpFlags, name: &'static str| {
            xdp.attach(ifindex, flags).map_err(|source| BpfError::Attach { ifindex, mode: name, source })
        };
        let (flags, generic) = match mode {
            AttachMode::Native => (try_mode(XdpFlags::DRV_MODE, "native").map(|_| XdpFlags::DRV_MODE)?, false),
            AttachMode::Generic => (try_mode(XdpFlags::SKB_MODE, "generic").map(|_| XdpFlags::SKB_MODE)?, true),
            AttachMode::Auto => match try_mode(XdpFlags::DRV_MODE, "native") {
                Ok(()) => (XdpFlags::DRV_MODE, false),
                Err(_) => (try_mode(XdpFlags::SKB_MODE, "generic").map(|_| XdpFlags::SKB_MODE)?, true),
            },
        };
        Ok(Attached { program: self, ifindex, flags: flags.bits(), generic })
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
        // struct transitd_config (maps.h): addresses in network order, the rest native.
        let mut value = [0u8; 52];
        value[..4].copy_from_slice(&config.anycast.octets());
        if let Some(v6) = config.anycast_v6 {
            value[4..8].copy_from_slice(&1u32.to_ne_bytes());
            value[8..24].copy_from_slice(&v6.octets());
        }
        if let Some(su) = &config.soft_unicast {
            value[24..28].copy_from_slice(&1u32.to_ne_bytes());
            value[28..32].copy_from_slice(&su.backbone.octets());
            value[32..36].copy_from_slice(&su.dc_backbone.octets());
            value[36..40].copy_from_slice(&su.key_id.to_ne_bytes());
            value[40..42].copy_from_slice(&su.this_server.to_ne_bytes());
            value[42..44].copy_from_slice(&su.this_dc.to_ne_bytes());
            value[44..46].copy_from_slice(&su.reserved_ports.to_ne_bytes());
            value[46..48].copy_from_slice(&su.slice_size.to_ne_bytes());
            value[48..52].copy_from_slice(&su.slices.to_ne_bytes());
        }
        self.skel
            .maps
            .config
            .update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
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
            // struct egress_addr { __u16 dc; __u16 pad; __u32 row; }
            let mut value = [0u8; 8];
            value[..2].copy_from_slice(&dc.to_ne_bytes());
            value[4..].copy_from_slice(&(row as u32).to_ne_bytes());
            let key = addr.octets().to_vec();
            self.skel
                .maps
                .egress_addrs
                .update(&key, &value, MapFlags::ANY)
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

impl Attached<'_> {
    /// The interface.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        let _ = Xdp::new(self.program.prog_fd()).detach(self.ifindex, XdpFlags::from_bits_retain(self.flags));
    }
}

/// Removes whatever XDP program is attached to `ifindex`, in either mode (for a program
/// left behind by a process that was killed). Returns whether one was attached.
pub fn detach(ifindex: i32) -> Result<bool, BpfError> {
    let program = XdpProgram::load()?;
    let xdp = Xdp::new(program.prog_fd());
    let mut found = false;
    for bits in [XdpFlags::DRV_MODE.bits(), XdpFlags::SKB_MODE.bits()] {
        if xdp.query_id(ifindex, XdpFlags::from_bits_retain(bits)).is_ok_and(|id| id != 0) {
            found = true;
            xdp.detach(ifindex, XdpFlags::from_bits_retain(bits)).map_err(|source| BpfError::Attach {
                ifindex,
                mode: "detach",
                source,
            })?;
        }
    }
    Ok(found)
}
