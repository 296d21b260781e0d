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

// Each `unsafe` block (the link's creation, its file descriptor) says why it holds.
#![deny(clippy::undocumented_unsafe_blocks)]

mod attach;

pub use attach::{AttachMode, Attached, Found, attached, detach, is_stale, runs};

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use zerocopy::{Immutable, IntoBytes};

#[allow(clippy::all, clippy::undocumented_unsafe_blocks, missing_docs, unsafe_code)]
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

/// Queues with an AF_XDP socket slot (`MAX_QUEUES` of `consts.h`): queue ids from 0 up to
/// this, exclusive, can be served.
pub const MAX_QUEUES: u32 = 64;

/// Table sizes of `consts.h` (a test holds them to the compiled object's maps).
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
    slot: u32,
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
    pmtu_redirect: u32,
    host_mac: [u8; 6],
    check_host_mac: u16,
    config_mac: [u8; 6],
    has_config_mac: u16,
}

/// `struct egress_addr` of `maps.h`: an egress address's data centre and row.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct EgressAddrValue {
    dc: u16,
    pad: u16,
    row: u32,
}

/// `struct egress_key` of `maps.h`: an address (network order) in a slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct EgressKey {
    slot: u32,
    addr: [u8; 4],
}

/// `CONFIG_SLOTS` of `consts.h`: the configuration and soft-unicast's tables are written
/// into the slot the program is not reading, then `config_slot` switches to it.
const CONFIG_SLOTS: u32 = 2;

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
    /// Redirect an ICMP Fragmentation Needed or Packet Too Big to the anycast address about
    /// GRE from it to a tunnel's router, for the data plane to lower the tunnel's path MTU,
    /// rather than pass it to the kernel.
    pub pmtu_redirect: bool,
    /// What becomes of owned traffic on a queue with no socket.
    pub unbound_queue: UnboundQueue,
    /// `[server] mac`, if set: frames to it are ours as to the interface's own address
    /// ([`XdpProgram::pass_frames_not_to`]).
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
        } else if found.name == "?" {
            "its name cannot be read without CAP_SYS_ADMIN: a program an older transitd left \
             is removed by `transitd detach --iface IFACE` run as root, another with \
             `ip link set dev IFACE xdp off`"
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
    /// Tables that do not fit together (a bug in the caller).
    #[error("inconsistent tables for the XDP program: {0}")]
    Inconsistent(String),
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
    /// Running the program on a frame (`BPF_PROG_TEST_RUN`).
    #[error("test run of the XDP program: {0}")]
    TestRun(libbpf_rs::Error),
}

/// What the program did with one frame: the counter its decision moved
/// ([`XdpProgram::test_run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpDecision {
    /// Handed to the queue's AF_XDP socket.
    Redirected,
    /// Not transitd's: passed to the kernel.
    Passed,
    /// Transitd's, but no socket on the queue: `unbound_queue` decided.
    NoSocket,
    /// Soft-unicast return traffic this server owns, passed.
    EgressLocal,
    /// Backbone GRE carrying such traffic, decapsulated and passed.
    BackboneLocal,
    /// GRE to the anycast address that is not ours, passed to the kernel.
    GreNotOurs,
}

impl XdpDecision {
    /// The counter's name, as the metrics and the program's stats call it.
    pub fn name(self) -> &'static str {
        match self {
            XdpDecision::Redirected => "redirected",
            XdpDecision::Passed => "passed",
            XdpDecision::NoSocket => "no_socket",
            XdpDecision::EgressLocal => "egress_local",
            XdpDecision::BackboneLocal => "backbone_local",
            XdpDecision::GreNotOurs => "gre_not_ours",
        }
    }
}

/// Counters of the XDP program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames handed to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that are not transitd's, passed to the kernel.
    pub passed: u64,
    /// Frames that are transitd's but arrived on a queue without a socket: passed or
    /// dropped, as `[server] unbound_queue` says.
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
    /// The slot the program reads; held while a configuration is published, so two
    /// publications never write one slot.
    active: std::sync::Mutex<u32>,
    /// Waits out the program's runs that may still read the slot last left.
    readers: ReaderBarrier,
    /// The keys last written whole into each map [`XdpProgram::replace_keys`] keeps, by
    /// the map's name; a map missing here (an update failed half-way) is read back whole.
    written: std::sync::Mutex<std::collections::HashMap<&'static str, KeySet>>,
    /// The interface's own MAC address, once known ([`XdpProgram::pass_frames_not_to`]).
    host_mac: std::sync::Mutex<Option<[u8; 6]>>,
}

type KeySet = std::collections::HashSet<Vec<u8>>;

/// A map-in-map the program never reads, kept for what updating one does: the kernel
/// returns from the update only after every BPF program run that began before it has
/// ended (`maybe_wait_bpf_programs` in `kernel/bpf/syscall.c`: an RCU grace period, the
/// promise that "all non-sleepable programs that could be running use the new map
/// value"; the kernel's own selftests wait this way). Without it a run that read
/// `config_slot` just before a switch could still be reading the old slot when the next
/// publication starts writing there (two reloads in quick succession, or a run held up
/// by a preemptible kernel).
struct ReaderBarrier {
    outer: libbpf_rs::MapHandle,
    inner: libbpf_rs::MapHandle,
}

impl ReaderBarrier {
    fn new() -> Result<ReaderBarrier, BpfError> {
        use libbpf_rs::{MapHandle, MapType, libbpf_sys::bpf_map_create_opts};
        let plain = bpf_map_create_opts { sz: size_of::<bpf_map_create_opts>() as _, ..Default::default() };
        let inner = MapHandle::create(MapType::Array, Some("transitd_rcu_in"), 4, 4, 1, &plain)
            .map_err(|source| BpfError::Map { map: "transitd_rcu_in", source })?;
        let inner_fd = u32::try_from(inner.as_fd().as_raw_fd()).unwrap_or(u32::MAX);
        let of_maps = bpf_map_create_opts { inner_map_fd: inner_fd, ..plain };
        let outer = MapHandle::create(MapType::ArrayOfMaps, Some("transitd_rcu"), 4, 4, 1, &of_maps)
            .map_err(|source| BpfError::Map { map: "transitd_rcu", source })?;
        Ok(ReaderBarrier { outer, inner })
    }

    /// Returns once every program run that began before the call has ended.
    fn wait(&self) -> Result<(), BpfError> {
        let inner_fd = u32::try_from(self.inner.as_fd().as_raw_fd()).unwrap_or(u32::MAX);
        self.outer
            .update(&0u32.to_ne_bytes(), &inner_fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "transitd_rcu", source })
    }
}

impl XdpProgram {
    /// Loads the program into the kernel.
    pub fn load() -> Result<XdpProgram, BpfError> {
        // The skeleton borrows its object storage for as long as it lives; the program lives
        // as long as the process, so the few hundred bytes are leaked on purpose.
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
        let open = TransitdSkelBuilder::default().open(storage).map_err(BpfError::Load)?;
        let skel = open.load().map_err(BpfError::Load)?;
        // A program just loaded has empty maps.
        let written = ["owned_v4", "owned_v6", "tunnel_remotes_v4", "tunnel_remotes_v6"]
            .into_iter()
            .map(|name| (name, KeySet::new()))
            .collect();
        Ok(XdpProgram {
            skel,
            active: std::sync::Mutex::new(0),
            readers: ReaderBarrier::new()?,
            written: std::sync::Mutex::new(written),
            host_mac: std::sync::Mutex::new(None),
        })
    }

    /// From the next configuration published on, passes unicast frames to a MAC address
    /// other than `mac` (the interface's own) to the kernel, which discards them as another
    /// host's, as it does without XDP: a promiscuous NIC (tcpdump, a bridge) or a switch
    /// flooding an unknown destination would have them forwarded a second time beside the
    /// host they were for. Unset, every frame is judged (test runs, replays).
    pub fn pass_frames_not_to(&self, mac: [u8; 6]) {
        *self.host_mac.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mac);
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

    /// Publishes the program's configuration (the anycast addresses GRE arrives at, IPv6
    /// optional, and soft-unicast's scalars) with soft-unicast's tables. Both are written
    /// into the slot the program is not reading, then the program switches to it: a packet
    /// sees the old configuration and tables or the new ones, never a mix (an owner row of
    /// one plan under an address of the other would steer return traffic wrong). Before it
    /// writes, it waits until no run of the program can still be reading that slot from
    /// before the last switch (a grace period, milliseconds). On error the program goes on
    /// reading what it read.
    pub fn publish(&self, config: &XdpConfig, egress: &EgressTables) -> Result<(), BpfError> {
        let mut active = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = (*active + 1) % CONFIG_SLOTS;
        self.readers.wait()?;
        self.stage(next, config, egress)?;
        self.switch_to(next)?;
        *active = next;
        Ok(())
    }

    /// Writes `config` and `egress` into `slot`, which the program must not be reading.
    fn stage(&self, slot: u32, config: &XdpConfig, egress: &EgressTables) -> Result<(), BpfError> {
        let EgressTables { addresses, owners, peers } = egress;
        if addresses.len() > MAX_EGRESS_ADDRS || owners.len() > MAX_EGRESS_SLICES || peers.len() > MAX_BACKBONE_PEERS {
            return Err(BpfError::TooLarge {
                what: "soft-unicast plan",
                limit: format!(
                    "{MAX_EGRESS_ADDRS} addresses, {MAX_EGRESS_SLICES} slices, {MAX_BACKBONE_PEERS} backbone peers"
                ),
            });
        }
        let slices = config.soft_unicast.as_ref().map_or(0, |su| su.slices as usize);
        if owners.len() != addresses.len() * slices {
            return Err(BpfError::Inconsistent(format!(
                "{} owners for {} addresses of {slices} slices",
                owners.len(),
                addresses.len()
            )));
        }
        let maps = &self.skel.maps;
        // Rows past this plan's in the slot's half are left from an older one: no address
        // of this slot leads to them.
        let base = slot * MAX_EGRESS_SLICES as u32;
        let keys: Vec<u8> = (0..owners.len() as u32).flat_map(|i| (base + i).to_ne_bytes()).collect();
        let values: Vec<u8> = owners.iter().flat_map(|o| o.to_ne_bytes()).collect();
        update_batch(&maps.egress_owners, "egress_owners", &keys, &values, owners.len())?;
        let key = |addr: &Ipv4Addr| EgressKey { slot, addr: addr.octets() }.as_bytes().to_vec();
        let keys: Vec<Vec<u8>> = addresses.iter().map(|(addr, _)| key(addr)).collect();
        let values: Vec<u8> = addresses
            .iter()
            .enumerate()
            .flat_map(|(row, (_, dc))| EgressAddrValue { dc: *dc, pad: 0, row: row as u32 }.as_bytes().to_vec())
            .collect();
        // The slot's stale keys go first: each hash map holds two slots' worth, and the
        // slot being written still holds the plan before last, which the new keys would
        // otherwise have to fit beside (at the limits they do not: E2BIG).
        remove_stale(&maps.egress_addrs, "egress_addrs", &slot.to_ne_bytes(), &keys)?;
        update_batch(&maps.egress_addrs, "egress_addrs", &keys.concat(), &values, keys.len())?;
        let keys: Vec<Vec<u8>> = peers.iter().map(key).collect();
        remove_stale(&maps.backbone_peers, "backbone_peers", &slot.to_ne_bytes(), &keys)?;
        update_batch(&maps.backbone_peers, "backbone_peers", &keys.concat(), &vec![1; keys.len()], keys.len())?;
        let host_mac = *self.host_mac.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = config_value(slot, config, host_mac);
        maps.config
            .update(&slot.to_ne_bytes(), value.as_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "config", source })
    }

    /// Makes the program read `slot` from its next packet on (one aligned 4-byte write).
    fn switch_to(&self, slot: u32) -> Result<(), BpfError> {
        self.skel
            .maps
            .config_slot
            .update(&0u32.to_ne_bytes(), &slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "config_slot", source })
    }

    /// Replaces the owned IPv4 prefixes ([`XdpProgram::replace_keys`]).
    pub fn set_owned_v4(&self, prefixes: &[(Ipv4Addr, u8)]) -> Result<(), BpfError> {
        let keys = prefixes.iter().map(|(a, len)| lpm_key(*len, &a.octets())).collect();
        self.replace_keys(&self.skel.maps.owned_v4, "owned_v4", keys)
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
        self.replace_keys(
            &self.skel.maps.tunnel_remotes_v4,
            "tunnel_remotes_v4",
            v4.iter().map(|a| a.octets().to_vec()).collect(),
        )?;
        self.replace_keys(
            &self.skel.maps.tunnel_remotes_v6,
            "tunnel_remotes_v6",
            v6.iter().map(|a| a.octets().to_vec()).collect(),
        )
    }

    /// Makes `keys` the keys of `map` (values 1): adds the new ones first, then removes the
    /// stale ones, so a key in both the old and the new set is never missing. Only the
    /// difference from what was last written is written (one system call per key: a reload
    /// that changes a few of 32,768 prefixes makes a few calls, not 100,000, which at the
    /// limits took long enough on the supervisor's thread to worry BGP's silence check); a
    /// map whose last update failed is read back whole.
    fn replace_keys(&self, map: &impl MapCore, name: &'static str, keys: KeySet) -> Result<(), BpfError> {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Taken out: if this update fails half-way, the map is unknown until read back.
        let last = written.remove(name);
        let err = |source| BpfError::Map { map: name, source };
        for key in keys.iter().filter(|k| last.as_ref().is_none_or(|l| !l.contains(*k))) {
            map.update(key, &[1], MapFlags::ANY).map_err(err)?;
        }
        let stale: Vec<Vec<u8>> = match &last {
            Some(last) => last.difference(&keys).cloned().collect(),
            None => map.keys().filter(|k| !keys.contains(k)).collect(),
        };
        for key in stale {
            map.delete(&key).map_err(err)?;
        }
        written.insert(name, keys);
        Ok(())
    }

    /// Replaces the owned IPv6 prefixes.
    pub fn set_owned_v6(&self, prefixes: &[(Ipv6Addr, u8)]) -> Result<(), BpfError> {
        let keys = prefixes.iter().map(|(a, len)| lpm_key(*len, &a.octets())).collect();
        self.replace_keys(&self.skel.maps.owned_v6, "owned_v6", keys)
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

    /// Runs the loaded program on `frame` in the kernel (`BPF_PROG_TEST_RUN`, as if it had
    /// arrived on queue 0), without an interface: what it decided, by the counter that moved,
    /// and the frame as it left it (a decapsulation strips it). Tests hold the program to
    /// the data plane with it. Counting is by difference, so nothing else may run the same
    /// program meanwhile (`Inconsistent` if not exactly one counter moved).
    pub fn test_run(&self, frame: &[u8]) -> Result<(XdpDecision, Vec<u8>), BpfError> {
        let before = self.stats();
        let mut out = vec![0u8; frame.len() + 256];
        let input = libbpf_rs::ProgramInput { data_in: Some(frame), data_out: Some(&mut out), ..Default::default() };
        let output = self.skel.progs.xdp_transitd.test_run(input).map_err(BpfError::TestRun)?;
        let out = output.data.map(|d| d.to_vec()).unwrap_or_default();
        let after = self.stats();
        let moved = [
            (XdpDecision::Redirected, after.redirected.wrapping_sub(before.redirected)),
            (XdpDecision::Passed, after.passed.wrapping_sub(before.passed)),
            (XdpDecision::NoSocket, after.no_socket.wrapping_sub(before.no_socket)),
            (XdpDecision::EgressLocal, after.egress_local.wrapping_sub(before.egress_local)),
            (XdpDecision::BackboneLocal, after.backbone_local.wrapping_sub(before.backbone_local)),
            (XdpDecision::GreNotOurs, after.gre_not_ours.wrapping_sub(before.gre_not_ours)),
        ];
        match moved.iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>()[..] {
            [(decision, 1)] => Ok((*decision, out)),
            _ => Err(BpfError::Inconsistent(format!("one test run moved the counters {moved:?}"))),
        }
    }
}

/// `config` as the program's `struct transitd_config`, in `slot`.
fn config_value(slot: u32, config: &XdpConfig, host_mac: Option<[u8; 6]>) -> ConfigValue {
    let mut value = ConfigValue {
        slot,
        host_mac: host_mac.unwrap_or_default(),
        check_host_mac: u16::from(host_mac.is_some()),
        config_mac: config.config_mac.unwrap_or_default(),
        has_config_mac: u16::from(config.config_mac.is_some()),
        anycast_v4: config.anycast.octets(),
        gre_not_ours_pass: u32::from(config.gre_not_ours_pass),
        mpls_redirect: u32::from(config.mpls_redirect),
        pmtu_redirect: u32::from(config.pmtu_redirect),
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
    value
}

/// Writes `count` entries in one system call (`keys` and `values` back to back).
fn update_batch(
    map: &impl MapCore,
    name: &'static str,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> Result<(), BpfError> {
    if count == 0 {
        return Ok(());
    }
    let count =
        u32::try_from(count).map_err(|_| BpfError::TooLarge { what: name, limit: "u32::MAX entries".into() })?;
    map.update_batch(keys, values, count, MapFlags::ANY, MapFlags::ANY)
        .map_err(|source| BpfError::Map { map: name, source })
}

/// An LPM trie key: the prefix length (host order), then the address bytes.
fn lpm_key(len: u8, addr: &[u8]) -> Vec<u8> {
    let mut key = u32::from(len).to_ne_bytes().to_vec();
    key.extend_from_slice(addr);
    key
}

/// Deletes every key of `map` that starts with `prefix` (a slot; empty: every key) and is
/// not in `keep`.
fn remove_stale(map: &impl MapCore, name: &'static str, prefix: &[u8], keep: &[Vec<u8>]) -> Result<(), BpfError> {
    let keep: std::collections::HashSet<&[u8]> = keep.iter().map(Vec::as_slice).collect();
    let stale: Vec<Vec<u8>> = map.keys().filter(|k| k.starts_with(prefix) && !keep.contains(k.as_slice())).collect();
    for key in stale {
        map.delete(&key).map_err(|source| BpfError::Map { map: name, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::skel::types::{egress_addr, egress_key, transitd_config};
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
                slot,
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
                mpls_redirect,
                pmtu_redirect,
                host_mac,
                check_host_mac,
                config_mac,
                has_config_mac
            ]
        );
        same!(EgressAddrValue, egress_addr, [dc, pad, row]);
        same!(EgressKey, egress_key, [slot, addr]);
    }

    /// Soft-unicast as the program sees it: an egress address 192.0.2.10 whose slice of
    /// ports 1024-33279 is server `owners[0]`'s and 33280-65535 `owners[1]`'s, this server 0.
    fn soft_unicast(owners: [u16; 2]) -> (XdpConfig, EgressTables) {
        let config = XdpConfig {
            anycast: Ipv4Addr::new(192, 0, 2, 1),
            anycast_v6: None,
            soft_unicast: Some(SoftUnicastConfig {
                backbone: Ipv4Addr::new(10, 0, 0, 1),
                dc_backbone: Ipv4Addr::new(10, 0, 0, 100),
                key_id: 7,
                this_server: 0,
                this_dc: 0,
                reserved_ports: 1024,
                slice_size: 32256,
                slices: 2,
            }),
            gre_not_ours_pass: true,
            mpls_redirect: false,
            pmtu_redirect: true,
            unbound_queue: UnboundQueue::Pass,
            config_mac: None,
        };
        let egress = EgressTables {
            addresses: vec![(Ipv4Addr::new(192, 0, 2, 10), 0)],
            owners: owners.to_vec(),
            peers: vec![Ipv4Addr::new(10, 0, 0, 2)],
        };
        (config, egress)
    }

    /// The program loaded and given [`soft_unicast`]'s tables: slice 0 this server's, slice
    /// 1 server 1's.
    fn soft_unicast_program() -> XdpProgram {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (config, egress) = soft_unicast([0, 1]);
        program.publish(&config, &egress).unwrap();
        program
    }

    /// An Ethernet frame holding an IPv4 packet (protocol `protocol`, `flags_offset` the
    /// flags and fragment offset word) from `src` to `dst` carrying `payload`, its header
    /// checksum set (RFC 791).
    fn ipv4_frame(src: [u8; 4], dst: [u8; 4], protocol: u8, flags_offset: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        f[20..22].copy_from_slice(&flags_offset.to_be_bytes());
        f[22] = 64;
        f[23] = protocol;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        fill_checksum(&mut f);
        f.extend_from_slice(payload);
        f
    }

    /// The ones' complement sum of the IPv4 header of an Ethernet frame (RFC 1071), options
    /// included, folded.
    fn header_sum(f: &[u8]) -> u16 {
        let len = usize::from(f[14] & 0xf) * 4;
        let sum: u32 = f[14..14 + len].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        ((folded & 0xffff) + (folded >> 16)) as u16
    }

    /// Sets the header checksum of the IPv4 header of an Ethernet frame.
    fn fill_checksum(f: &mut [u8]) {
        f[24..26].fill(0);
        let sum = header_sum(f);
        f[24..26].copy_from_slice(&(!sum).to_be_bytes());
    }

    /// An Ethernet, IPv4 and UDP frame from 198.51.100.7 to 192.0.2.10 at `port`.
    fn udp_to_egress(port: u16) -> Vec<u8> {
        let udp = [5353u16, port, 8, 0].map(u16::to_be_bytes).concat();
        ipv4_frame([198, 51, 100, 7], [192, 0, 2, 10], 17, 0, &udp)
    }

    /// Backbone GRE from peer 10.0.0.2 to this server (10.0.0.1) carrying the IP packet of
    /// the frame `inner`.
    fn backbone(inner: &[u8]) -> Vec<u8> {
        let mut gre = [0x2000u16.to_be_bytes(), 0x0800u16.to_be_bytes()].concat();
        gre.extend_from_slice(&(7u32 << 8 | 1).to_be_bytes());
        gre.extend_from_slice(&inner[14..]);
        ipv4_frame([10, 0, 0, 2], [10, 0, 0, 1], 47, 0, &gre)
    }

    /// Runs the program on `frame` (BPF_PROG_TEST_RUN) and names the counter it bumped.
    fn judge(program: &XdpProgram, frame: &[u8]) -> &'static str {
        judge_output(program, frame).0
    }

    /// [`judge`], and the frame as the program left it.
    fn judge_output(program: &XdpProgram, frame: &[u8]) -> (&'static str, Vec<u8>) {
        let (decision, out) = program.test_run(frame).expect("test run (needs root)");
        (decision.name(), out)
    }

    /// A configuration is written beside the one the program reads and seen only once
    /// switched to: whole, never a mix; a refused one changes nothing.
    #[test]
    fn the_program_sees_a_publication_whole_or_not_at_all() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (mine_first, theirs_first) = (soft_unicast([0, 1]), soft_unicast([1, 0]));
        let low = udp_to_egress(2000);
        assert_eq!(judge(&program, &low), "passed", "nothing published: nothing is transitd's");
        program.publish(&mine_first.0, &mine_first.1).unwrap();
        assert_eq!(judge(&program, &low), "egress_local", "slice 0 is this server's");
        assert_eq!(judge(&program, &udp_to_egress(40000)), "no_socket", "slice 1 is another's: redirected");

        // Staged, not yet switched to: the program still reads the first plan.
        let next = (*program.active.lock().unwrap() + 1) % CONFIG_SLOTS;
        program.stage(next, &theirs_first.0, &theirs_first.1).unwrap();
        assert_eq!(judge(&program, &low), "egress_local");
        program.switch_to(next).unwrap();
        *program.active.lock().unwrap() = next;
        assert_eq!(judge(&program, &low), "no_socket", "the second plan, once switched to");

        let (config, mut short) = soft_unicast([0, 1]);
        short.owners.pop();
        assert!(matches!(program.publish(&config, &short), Err(BpfError::Inconsistent(_))));
        assert_eq!(judge(&program, &low), "no_socket", "a refused publication changes nothing");

        // Into the slot of the second plan, a third with another address: the second's
        // address is gone from it, not mixed in.
        program.publish(&mine_first.0, &mine_first.1).unwrap();
        let (config, mut other) = soft_unicast([1, 0]);
        other.addresses[0].0 = Ipv4Addr::new(192, 0, 2, 11);
        program.publish(&config, &other).unwrap();
        assert_eq!(judge(&program, &low), "passed", "192.0.2.10 is no egress address of the slot read");
        program.publish(&theirs_first.0, &theirs_first.1).unwrap();
        assert_eq!(judge(&program, &low), "no_socket");
    }

    /// Backbone GRE for this server is decapsulated in XDP only when its outer header's
    /// checksum verifies; a corrupt one goes to the data plane (which drops and counts it).
    #[test]
    fn backbone_gre_is_stripped_only_under_a_verifying_header() {
        let program = soft_unicast_program();
        let good = backbone(&udp_to_egress(2000));
        assert_eq!(judge(&program, &good), "backbone_local");
        let mut corrupt = good.clone();
        corrupt[14 + 8] ^= 0x01; // the TTL, under the old checksum
        assert_eq!(judge(&program, &corrupt), "no_socket");
        assert_eq!(judge(&program, &backbone(&udp_to_egress(40000))), "no_socket", "another server's");
        // Version 6 in the version field, the checksum verifying: not an IPv4 header.
        let mut not_v4 = good.clone();
        not_v4[14] = 0x65;
        fill_checksum(&mut not_v4);
        assert_eq!(judge(&program, &not_v4), "no_socket");
        // The outer header verifies, the inner one does not: the data plane's
        // `bad_ipv4_checksum`, not the kernel's uncounted drop.
        let mut inner = udp_to_egress(2000);
        inner[14 + 8] ^= 0x01;
        assert_eq!(judge(&program, &backbone(&inner)), "no_socket", "a corrupt inner header");
    }

    /// Backbone GRE behind VLAN tags (one to three, as the program reads them) is stripped
    /// as untagged GRE is, its tags with it: the host gets the inner packet untagged, byte
    /// for byte what it gets of the untagged frame (it needs no VLAN device for the
    /// backbone's tags, which may be 0x9100, which Linux has none for). It went to the data
    /// plane, and was punted back through the TUN device (rate-limited).
    #[test]
    fn tagged_backbone_gre_is_stripped_of_its_tags_too() {
        let program = soft_unicast_program();
        let untagged = backbone(&udp_to_egress(2000));
        let (fate, plain) = judge_output(&program, &untagged);
        assert_eq!(fate, "backbone_local");
        // The inner packet follows the Ethernet header, as the backbone frame's outer did.
        assert_eq!(plain[..12], untagged[..12]);
        assert_eq!(plain[12..], udp_to_egress(2000)[12..]);
        let tags: [[u8; 4]; 3] = [[0x00, 0x0a, 0x81, 0x00], [0x00, 0x0b, 0x91, 0x00], [0x00, 0x0c, 0x08, 0x00]];
        for n in 1..=3 {
            // 802.1ad first, then 802.1Q and 0x9100; the last tag names IPv4.
            let mut tagged = untagged[..12].to_vec();
            tagged.extend_from_slice(&0x88a8u16.to_be_bytes());
            for tag in &tags[3 - n..] {
                tagged.extend_from_slice(tag);
            }
            tagged.extend_from_slice(&untagged[14..]);
            let (fate, out) = judge_output(&program, &tagged);
            assert_eq!(fate, "backbone_local", "{n} tags");
            assert_eq!(out, plain, "{n} tags");
        }
    }

    /// `frame` (an Ethernet frame holding IPv4) with ECN field `ecn`, its checksum right.
    fn with_ecn(mut frame: Vec<u8>, ecn: u8) -> Vec<u8> {
        frame[15] = 0xb8 | ecn; // DSCP EF, which must stay
        fill_checksum(&mut frame);
        frame
    }

    /// A congestion mark a router on the backbone put on the outer header reaches the inner
    /// packet handed to the host (RFC 6040 §4.2), its checksum right; a mark on a packet
    /// that is not ECN-capable is left to the data plane, which drops and counts it.
    #[test]
    fn a_backbone_congestion_mark_reaches_the_inner_packet() {
        let program = soft_unicast_program();
        let (not_ect, ect1, ect0, ce) = (0, 1, 2, 3);
        // (outer, inner) -> the inner packet's ECN field as handed on.
        for (outer, inner, want) in [
            (ce, ect0, ce),
            (ce, ect1, ce),
            (ce, ce, ce),
            (ect1, ect0, ect1),
            (not_ect, ect0, ect0),
            (ect0, not_ect, not_ect),
        ] {
            let frame = with_ecn(backbone(&with_ecn(udp_to_egress(2000), inner)), outer);
            let (fate, out) = judge_output(&program, &frame);
            assert_eq!(fate, "backbone_local", "outer {outer}, inner {inner}");
            assert_eq!((out[15] & 0xfc, out[15] & 3), (0xb8, want), "outer {outer}, inner {inner}");
            assert_eq!(header_sum(&out), 0xffff, "the inner checksum verifies");
        }
        let frame = with_ecn(backbone(&with_ecn(udp_to_egress(2000), not_ect)), ce);
        assert_eq!(judge(&program, &frame), "no_socket", "CE on a packet that is not ECN-capable");
    }

    /// A first fragment the data plane drops for its congestion mark names no owner for its
    /// datagram's later fragments, there as here: they go where a fragment whose first was
    /// not seen goes. The address is made another data centre's (slice 0 still this
    /// server's) so that the two differ.
    #[test]
    fn a_first_fragment_refused_for_its_mark_names_no_owner() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (config, mut egress) = soft_unicast([0, 1]);
        egress.addresses = vec![(Ipv4Addr::new(192, 0, 2, 10), 1)];
        program.publish(&config, &egress).unwrap();
        let (not_ect, ce) = (0, 3);
        let marked = with_ecn(backbone(&with_ecn(fragment_to_egress(76, Some(2000)), not_ect)), ce);
        assert_eq!(judge(&program, &marked), "no_socket", "the data plane's to drop");
        assert_eq!(judge(&program, &fragment_to_egress(76, None)), "no_socket", "no first seen: another data centre's");
        // The same first fragment, unmarked, is this server's, and so are its later ones.
        assert_eq!(judge(&program, &backbone(&fragment_to_egress(77, Some(2000)))), "backbone_local");
        assert_eq!(judge(&program, &fragment_to_egress(77, None)), "egress_local", "with its first");
    }

    /// A fragment of UDP datagram `id` from 198.51.100.7 to 192.0.2.10: the first (with the
    /// UDP header, to `port`) or a later one (at byte 1480, no header).
    fn fragment_to_egress(id: u16, first: Option<u16>) -> Vec<u8> {
        fragment_from([198, 51, 100, 7], id, first)
    }

    /// [`fragment_to_egress`] from `src`.
    fn fragment_from(src: [u8; 4], id: u16, first: Option<u16>) -> Vec<u8> {
        let (flags_offset, payload) = match first {
            Some(port) => (0x2000, [5353u16, port, 1488, 0].map(u16::to_be_bytes).concat()),
            None => (1480 / 8, vec![0x55; 8]),
        };
        let mut f = ipv4_frame(src, [192, 0, 2, 10], 17, flags_offset, &payload);
        f[18..20].copy_from_slice(&id.to_be_bytes());
        fill_checksum(&mut f); // the identification is under it
        f
    }

    /// Only a datagram's first fragment carries the port that names its owner; the later
    /// ones go where it went: to the kernel here when it was this server's, to the data
    /// plane (which forwards them) when it was another's. One whose first was not seen is
    /// its data centre's, as before (this server's data centre here).
    #[test]
    fn later_fragments_go_where_their_first_went() {
        let program = soft_unicast_program();
        assert_eq!(judge(&program, &fragment_to_egress(71, Some(2000))), "egress_local", "slice 0: this server's");
        assert_eq!(judge(&program, &fragment_to_egress(71, None)), "egress_local");
        assert_eq!(judge(&program, &fragment_to_egress(72, Some(40000))), "no_socket", "slice 1: another's");
        // The same identification from another source is another datagram (this server's).
        let other = [198, 51, 100, 8];
        assert_eq!(judge(&program, &fragment_from(other, 72, Some(2000))), "egress_local");
        assert_eq!(judge(&program, &fragment_to_egress(72, None)), "no_socket", "with its first");
        assert_eq!(judge(&program, &fragment_from(other, 72, None)), "egress_local", "with its own first");
        assert_eq!(judge(&program, &fragment_to_egress(73, None)), "egress_local", "no first seen");
        // The same through the backbone, decapsulated here only for this server.
        assert_eq!(judge(&program, &backbone(&fragment_to_egress(74, Some(40000)))), "no_socket");
        assert_eq!(judge(&program, &backbone(&fragment_to_egress(74, None))), "no_socket");
        assert_eq!(judge(&program, &backbone(&fragment_to_egress(75, Some(2000)))), "backbone_local");
        assert_eq!(judge(&program, &backbone(&fragment_to_egress(75, None))), "backbone_local");
    }

    /// A first fragment whose IPv4 header the data plane drops (its checksum fails over the
    /// options too, or the frame ends before its total length) names no owner: its later
    /// fragments are judged as if it never came, as the data plane judges them.
    #[test]
    fn a_damaged_first_fragment_names_no_owner() {
        let program = soft_unicast_program();
        // Another server's first (slice 1), then its later fragment: to the data plane.
        let with_options = |id: u16, good: bool| {
            let mut f = fragment_to_egress(id, Some(40000));
            f.splice(34..34, [1, 1, 1, 0]); // NOP, NOP, NOP, end of options
            f[14] = 0x46;
            let total = u16::from_be_bytes([f[16], f[17]]) + 4;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            fill_checksum(&mut f);
            if !good {
                f[37] ^= 0x10; // an option byte: the sum over the options no longer verifies
            }
            f
        };
        assert_eq!(judge(&program, &with_options(81, true)), "no_socket");
        assert_eq!(judge(&program, &fragment_to_egress(81, None)), "no_socket", "with its first");
        assert_eq!(judge(&program, &with_options(82, false)), "no_socket", "the data plane's to drop");
        assert_eq!(judge(&program, &fragment_to_egress(82, None)), "egress_local", "as with no first seen");
        let mut cut = fragment_to_egress(83, Some(40000));
        cut.truncate(cut.len() - 1);
        assert_eq!(judge(&program, &cut), "no_socket");
        assert_eq!(judge(&program, &fragment_to_egress(83, None)), "egress_local", "as with no first seen");
    }

    /// Under AH the port lies past the AH header, where the program reads it as the data
    /// plane does: a packet, or a datagram's first fragment, goes where its port says, and
    /// the later fragments follow. It went to the data plane whatever its port (punted back
    /// to this host when it was this server's); before that, it was judged as a packet with
    /// no port (its data centre's: passed here while another server owned it).
    #[test]
    fn packets_under_ah_are_judged_by_the_port_behind_it() {
        let program = soft_unicast_program();
        // AH (RFC 4302: next header UDP, payload length 4, SPI, sequence, 12-byte ICV), then
        // UDP to port 40000 (slice 1, another server's) or 2000 (slice 0, this one's).
        let mut ah = vec![17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        ah.extend_from_slice(&[0; 12]);
        let udp = |port: u16| [5353u16, port, 8, 0].map(u16::to_be_bytes).concat();
        let under_ah = |src: [u8; 4], flags_offset: u16, port: u16| {
            ipv4_frame(src, [192, 0, 2, 10], 51, flags_offset, &[ah.clone(), udp(port)].concat())
        };
        assert_eq!(judge(&program, &under_ah([198, 51, 100, 7], 0, 40000)), "no_socket", "redirected");
        assert_eq!(judge(&program, &under_ah([198, 51, 100, 7], 0, 2000)), "egress_local");
        let later = |src: [u8; 4]| ipv4_frame(src, [192, 0, 2, 10], 51, 1480 / 8, &[0x55; 8]);
        assert_eq!(judge(&program, &under_ah([198, 51, 100, 9], 0x2000, 40000)), "no_socket");
        assert_eq!(judge(&program, &later([198, 51, 100, 9])), "no_socket", "with its first");
        assert_eq!(judge(&program, &under_ah([198, 51, 100, 8], 0x2000, 2000)), "egress_local");
        assert_eq!(judge(&program, &later([198, 51, 100, 8])), "egress_local", "with its first");
    }

    /// Bytes past the IPv4 total length are Ethernet padding: a port there is no port (the
    /// data plane, which reads within the total length, finds none either), and the packet
    /// goes to its address's data centre, this server's here; within the length it counts.
    #[test]
    fn a_port_in_the_ethernet_padding_is_no_port() {
        let program = soft_unicast_program();
        let cut = |mut frame: Vec<u8>, total: u16| {
            frame[16..18].copy_from_slice(&total.to_be_bytes());
            fill_checksum(&mut frame);
            frame
        };
        // UDP to port 40000 (another server's): the total length ends after the source port.
        assert_eq!(judge(&program, &udp_to_egress(40000)), "no_socket");
        assert_eq!(judge(&program, &cut(udp_to_egress(40000), 22)), "egress_local");
        // An ICMP port unreachable quoting our UDP from port 40000, its quote cut after
        // the quoted header (28 + 20 bytes), or just after the quoted source port.
        let quote =
            ipv4_frame([192, 0, 2, 10], [198, 51, 100, 7], 17, 0, &[40000u16, 53, 8, 0].map(u16::to_be_bytes).concat());
        let icmp = [&[3u8, 3, 0, 0, 0, 0, 0, 0][..], &quote[14..]].concat();
        let error = ipv4_frame([198, 51, 100, 7], [192, 0, 2, 10], 1, 0, &icmp);
        assert_eq!(judge(&program, &error), "no_socket");
        assert_eq!(judge(&program, &cut(error.clone(), 48)), "egress_local");
        assert_eq!(judge(&program, &cut(error, 50)), "no_socket", "the quoted source port is all it reads");
    }

    /// A unicast frame to another host's MAC address (the NIC promiscuous, a switch
    /// flooding) is passed to the kernel, which discards it as the host it was for does not,
    /// once the interface's own address is known; to our address, or to a group address,
    /// it is judged as before. Unknown (test runs, replays), every frame is judged.
    #[test]
    fn frames_to_another_hosts_mac_address_are_the_kernels() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (config, _) = soft_unicast([0, 1]);
        let config = XdpConfig { soft_unicast: None, ..config };
        program.set_owned_v4(&[(Ipv4Addr::new(203, 0, 113, 0), 24)]).unwrap();
        let to = |mac: [u8; 6]| {
            let mut f = ipv4_frame([198, 51, 100, 7], [203, 0, 113, 5], 17, 0, &[0; 8]);
            f[..6].copy_from_slice(&mac);
            f
        };
        let (ours, other, broadcast, group) =
            ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x99], [0xff; 6], [1, 0, 0x5e, 0, 0, 1]);
        program.publish(&config, &EgressTables::default()).unwrap();
        for mac in [ours, other, broadcast, group] {
            assert_eq!(judge(&program, &to(mac)), "no_socket", "unchecked: {mac:02x?}");
        }
        program.pass_frames_not_to(ours);
        program.publish(&config, &EgressTables::default()).unwrap();
        assert_eq!(judge(&program, &to(other)), "passed");
        for mac in [ours, broadcast, group] {
            assert_eq!(judge(&program, &to(mac)), "no_socket", "{mac:02x?}");
        }
        // `[server] mac` set to another address: frames to it are ours too.
        let configured = [2, 0, 0x5e, 0, 1, 7];
        assert_eq!(judge(&program, &to(configured)), "passed");
        program.publish(&XdpConfig { config_mac: Some(configured), ..config }, &EgressTables::default()).unwrap();
        assert_eq!(judge(&program, &to(configured)), "no_socket");
        assert_eq!(judge(&program, &to(other)), "passed");
    }

    /// GRE to the anycast address from 198.51.100.9, `more_fragments` set or not.
    fn gre_to_anycast(more_fragments: bool) -> Vec<u8> {
        let flags = if more_fragments { 0x2000 } else { 0 };
        ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 47, flags, &[0, 0, 0x08, 0x00, 0, 0, 0, 0])
    }

    /// A GRE fragment from a source that is no tunnel's router is not ours, as its whole
    /// datagram would not be: passed when `gre_unsupported = "pass"`. From a tunnel's router
    /// a first fragment is judged by its fixed header, as a whole packet is (version 1 is not
    /// ours; version 0 is the data plane's to drop and count), a later fragment and a header
    /// cut short by the total length (what follows it is Ethernet padding) are the data
    /// plane's.
    #[test]
    fn gre_fragments_follow_the_source_they_come_from() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (config, _) = soft_unicast([0, 1]);
        let config = XdpConfig { soft_unicast: None, ..config };
        program.publish(&config, &EgressTables::default()).unwrap();
        assert_eq!(judge(&program, &gre_to_anycast(true)), "gre_not_ours");
        assert_eq!(judge(&program, &gre_to_anycast(false)), "gre_not_ours");
        program.set_tunnel_remotes(&[Ipv4Addr::new(198, 51, 100, 9)], &[]).unwrap();
        assert_eq!(judge(&program, &gre_to_anycast(true)), "no_socket");
        assert_eq!(judge(&program, &gre_to_anycast(false)), "no_socket");
        let version_1 = |flags_offset: u16| {
            ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 47, flags_offset, &[0, 1, 0x88, 0x0b, 0, 0, 0, 0])
        };
        assert_eq!(judge(&program, &version_1(0x2000)), "gre_not_ours", "a first fragment of version 1");
        assert_eq!(judge(&program, &version_1(1480 / 8)), "no_socket", "a later fragment");
        let mut padded = version_1(0);
        padded[16..18].copy_from_slice(&22u16.to_be_bytes()); // two bytes of GRE
        fill_checksum(&mut padded);
        assert_eq!(judge(&program, &padded), "no_socket", "a header cut short by the total length");
    }

    /// GRE under an authentication header is not decapsulated, whoever sends it (nothing
    /// here holds the security association that would verify it): it fares as GRE that is
    /// not ours, passed here or left to the data plane to drop per `gre_unsupported`. Other
    /// AH to the anycast address, and an AH datagram's later fragments, are the host's.
    #[test]
    fn gre_under_ah_is_not_ours() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (config, _) = soft_unicast([0, 1]);
        let anycast_v6: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
        let config = XdpConfig { soft_unicast: None, anycast_v6: Some(anycast_v6), ..config };
        let router_v6: Ipv6Addr = "2001:db8:beef::1".parse().unwrap();
        program.set_tunnel_remotes(&[Ipv4Addr::new(198, 51, 100, 9)], &[router_v6]).unwrap();
        // RFC 4302: next header, payload length 4 (24 bytes), reserved, SPI, sequence, ICV.
        let ah = |next: u8| [&[next, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1][..], &[0; 12]].concat();
        let gre = [0u8, 0, 0x08, 0x00];
        let frame = |next: u8, flags_offset: u16| {
            ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 51, flags_offset, &[ah(next), gre.to_vec()].concat())
        };
        // The same over IPv6, AH right behind the fixed header.
        let frame_v6 = |next: u8| {
            let payload = [ah(next), gre.to_vec()].concat();
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            f.extend_from_slice(&[51, 64]);
            f.extend_from_slice(&router_v6.octets());
            f.extend_from_slice(&anycast_v6.octets());
            f.extend_from_slice(&payload);
            f
        };
        for pass in [true, false] {
            program
                .publish(&XdpConfig { gre_not_ours_pass: pass, ..config.clone() }, &EgressTables::default())
                .unwrap();
            let not_ours = if pass { "gre_not_ours" } else { "no_socket" };
            assert_eq!(judge(&program, &frame(47, 0)), not_ours, "from a tunnel's router, pass {pass}");
            assert_eq!(judge(&program, &frame(47, 0x2000)), not_ours, "a first fragment, pass {pass}");
            assert_eq!(judge(&program, &frame(17, 0)), "passed", "UDP under AH");
            assert_eq!(judge(&program, &frame(47, 1480 / 8)), "passed", "a later fragment");
            assert_eq!(judge(&program, &gre_to_anycast(false)), "no_socket", "plain GRE from the router");
            assert_eq!(judge(&program, &frame_v6(47)), not_ours, "over IPv6, pass {pass}");
            assert_eq!(judge(&program, &frame_v6(17)), "passed", "UDP under AH over IPv6");
            // The AH header in Ethernet padding, past the total length: no AH.
            let mut padded = frame(47, 0);
            padded[16..18].copy_from_slice(&20u16.to_be_bytes());
            fill_checksum(&mut padded);
            assert_eq!(judge(&program, &padded), "passed", "AH in the padding");
        }
    }

    /// GRE over IPv6 from `src` to the IPv6 anycast address 2001:db8:ffff::1 behind a
    /// fragment header (`fragment`) or right after the fixed header.
    fn gre_over_ipv6(src: Ipv6Addr, fragment: bool) -> Vec<u8> {
        let ext: &[u8] = if fragment { &[47, 0, 0, 1, 0, 0, 0, 7] } else { &[] };
        ipv6_behind(src, if fragment { 44 } else { 47 }, ext, &[0u8, 0, 0x08, 0x00])
    }

    /// An IPv6 frame to the anycast address from `src`: next header `next`, then
    /// `extensions` (the headers as they are on the wire) and `payload`.
    fn ipv6_behind(src: Ipv6Addr, next: u8, extensions: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((extensions.len() + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[next, 64]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&"2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(extensions);
        f.extend_from_slice(payload);
        f
    }

    /// GRE over IPv6 behind an extension header from a tunnel's router is the data plane's
    /// (which walks the headers and decapsulates or drops it with a reason); from anywhere
    /// else it fares as GRE that is not ours (`gre_unsupported`: passed and counted, or the
    /// data plane's to drop), as IPv4 fragments of GRE do; it went to the kernel whatever
    /// `gre_unsupported` said. GRE under AH anywhere in the chain is not ours from anyone,
    /// as the data plane judges it (it went to the kernel when options followed the AH).
    /// What is not GRE behind the headers, or lies past the payload length, is not ours.
    #[test]
    fn gre_over_ipv6_behind_an_extension_header_follows_its_source() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (config, _) = soft_unicast([0, 1]);
        let config = XdpConfig { soft_unicast: None, anycast_v6: Some("2001:db8:ffff::1".parse().unwrap()), ..config };
        program.publish(&config, &EgressTables::default()).unwrap();
        let router: Ipv6Addr = "2001:db8:beef::1".parse().unwrap();
        let gre = [0u8, 0, 0x08, 0x00];
        // Destination options (16 bytes: length 1), a first fragment's header, AH (24 bytes:
        // length 4), then GRE; and UDP behind the same headers.
        let options = [44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let first_fragment = [51, 0, 0, 1, 0, 0, 0, 7];
        let ah = [47, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let chain = [&options[..], &first_fragment, &ah].concat();
        let deep = ipv6_behind(router, 60, &chain, &gre);
        let mut udp_chain = chain.clone();
        udp_chain[16 + 8] = 17; // AH's next header
        let not_gre = ipv6_behind(router, 60, &udp_chain, &[0, 53, 0, 53, 0, 8, 0, 0]);
        // A later fragment of GRE: what follows its header is data, whatever it looks like
        // (here, a header naming UDP).
        let later_fragment = [47, 0, 0, 0x10, 0, 0, 0, 7];
        let later = ipv6_behind(router, 44, &later_fragment, &[17, 0, 0, 0, 0, 0, 0, 0]);
        // Eight headers, as many as the program walks, then nine.
        let chain_of = |n: usize| -> Vec<u8> {
            (0..n).flat_map(|k| [if k + 1 < n { 60 } else { 47 }, 0, 0, 0, 0, 0, 0, 0]).collect()
        };
        let (eight, nine) = (ipv6_behind(router, 60, &chain_of(8), &gre), ipv6_behind(router, 60, &chain_of(9), &gre));
        // Options alone; AH first, then options (AH naming them); UDP behind options alone.
        let options_only = ipv6_behind(router, 60, &chain_of(1), &gre);
        let ah_first = [&[60u8][..], &ah[1..], &chain_of(1)].concat();
        let ah_then_options = ipv6_behind(router, 51, &ah_first, &gre);
        let udp_behind_options = [&[17u8][..], &options[1..]].concat();
        let udp_behind_options = ipv6_behind(router, 60, &udp_behind_options, &[0, 53, 0, 53, 0, 8, 0, 0]);
        // Two option headers and GRE in the frame, the payload length covering the first:
        // the rest is padding, no header.
        let mut cut = ipv6_behind(router, 60, &chain_of(2), &gre);
        cut[18..20].copy_from_slice(&8u16.to_be_bytes());
        for (gre_unsupported, not_ours) in [("pass", "gre_not_ours"), ("drop", "no_socket")] {
            let config = XdpConfig { gre_not_ours_pass: gre_unsupported == "pass", ..config.clone() };
            program.publish(&config, &EgressTables::default()).unwrap();
            program.set_tunnel_remotes(&[], &[]).unwrap();
            assert_eq!(judge(&program, &gre_over_ipv6(router, true)), not_ours, "{gre_unsupported}: a fragment");
            assert_eq!(judge(&program, &gre_over_ipv6(router, false)), not_ours, "{gre_unsupported}: whole");
            assert_eq!(judge(&program, &deep), not_ours, "{gre_unsupported}: behind three headers");
            assert_eq!(judge(&program, &later), not_ours, "{gre_unsupported}: a later fragment");
            assert_eq!(judge(&program, &eight), not_ours, "{gre_unsupported}: eight headers");
            assert_eq!(judge(&program, &ah_then_options), not_ours, "{gre_unsupported}: AH, then options");
            assert_eq!(judge(&program, &not_gre), "passed", "{gre_unsupported}: UDP is the host's");
            assert_eq!(judge(&program, &udp_behind_options), "passed", "{gre_unsupported}: UDP, options");
            assert_eq!(judge(&program, &nine), "passed", "{gre_unsupported}: nine headers");
            assert_eq!(judge(&program, &cut), "passed", "{gre_unsupported}: headers past the length");
            program.set_tunnel_remotes(&[], &[router]).unwrap();
            let router_frames = [gre_over_ipv6(router, true), gre_over_ipv6(router, false), options_only.clone()];
            for frame in router_frames.iter().chain([&nine, &cut]) {
                assert_eq!(judge(&program, frame), "no_socket", "{gre_unsupported}: from the tunnel's router");
            }
            assert_eq!(judge(&program, &udp_behind_options), "passed", "{gre_unsupported}: the router's UDP");
            // Under AH, GRE is not ours from the router either; anything else is the host's.
            assert_eq!(judge(&program, &deep), not_ours, "{gre_unsupported}: the router's, under AH");
            assert_eq!(judge(&program, &ah_then_options), not_ours, "{gre_unsupported}: the router's, AH first");
            assert_eq!(judge(&program, &not_gre), "passed", "{gre_unsupported}: the router's UDP under AH");
        }
    }

    /// The bounds the loader checks are the sizes the program's maps were compiled with.
    #[test]
    fn a_key_set_is_replaced_by_its_difference_and_read_back_after_a_failure() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let in_map = |p: &XdpProgram| -> KeySet { p.skel.maps.owned_v4.keys().collect() };
        let prefixes = |list: &[([u8; 4], u8)]| -> Vec<(Ipv4Addr, u8)> {
            list.iter().map(|&(a, len)| (Ipv4Addr::from(a), len)).collect()
        };
        let keys_of =
            |list: &[(Ipv4Addr, u8)]| -> KeySet { list.iter().map(|(a, l)| lpm_key(*l, &a.octets())).collect() };
        let a = prefixes(&[([203, 0, 113, 0], 24), ([198, 18, 0, 0], 15), ([192, 0, 2, 1], 32)]);
        let b = prefixes(&[([203, 0, 113, 0], 24), ([100, 64, 0, 0], 10)]);
        program.set_owned_v4(&a).unwrap();
        assert_eq!(in_map(&program), keys_of(&a));
        program.set_owned_v4(&b).unwrap();
        assert_eq!(in_map(&program), keys_of(&b));
        // The map as a half-failed update leaves it (a key no set holds) and the record of
        // it dropped, as the failure drops it: read back whole, the stray key goes too.
        program.skel.maps.owned_v4.update(&lpm_key(32, &[9, 9, 9, 9]), &[1], MapFlags::ANY).unwrap();
        program.written.lock().unwrap().remove("owned_v4");
        program.set_owned_v4(&a).unwrap();
        assert_eq!(in_map(&program), keys_of(&a));
        program.set_owned_v4(&[]).unwrap();
        assert!(in_map(&program).is_empty());
    }

    /// Plans as large as a slot holds follow each other: the plan before last, still in
    /// the slot being written, is cleared before the new one is written beside the
    /// running one (else the maps, two slots large, overflow).
    #[test]
    fn plans_of_the_largest_size_replace_each_other() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (mut config, _) = soft_unicast([0, 1]);
        if let Some(su) = config.soft_unicast.as_mut() {
            su.slices = 1;
        }
        let plan = |first: u32| EgressTables {
            addresses: (0..MAX_EGRESS_ADDRS as u32).map(|i| (Ipv4Addr::from(first + i), 0)).collect(),
            owners: vec![0; MAX_EGRESS_ADDRS],
            peers: (0..MAX_BACKBONE_PEERS as u32).map(|i| Ipv4Addr::from(first + i)).collect(),
        };
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        for round in 0..4 {
            // Each plan renumbers every address and peer: nothing of one is kept in the next.
            let tables = plan(base + round * MAX_EGRESS_ADDRS as u32);
            program.publish(&config, &tables).unwrap_or_else(|e| panic!("plan {round}: {e}"));
        }
    }

    #[test]
    fn table_bounds_match_the_programs_maps() {
        let mut storage = MaybeUninit::uninit();
        let open = TransitdSkelBuilder::default().open(&mut storage).expect("the object opens (no privilege needed)");
        let maps = &open.maps;
        assert_eq!(maps.xsks.max_entries(), MAX_QUEUES);
        let slots = CONFIG_SLOTS as usize;
        assert_eq!(maps.config.max_entries(), CONFIG_SLOTS);
        assert_eq!(maps.egress_addrs.max_entries() as usize, slots * MAX_EGRESS_ADDRS);
        assert_eq!(maps.egress_owners.max_entries() as usize, slots * MAX_EGRESS_SLICES);
        assert_eq!(maps.backbone_peers.max_entries() as usize, slots * MAX_BACKBONE_PEERS);
        assert_eq!(maps.tunnel_remotes_v4.max_entries() as usize, MAX_TUNNEL_REMOTES);
        assert_eq!(maps.tunnel_remotes_v6.max_entries() as usize, MAX_TUNNEL_REMOTES);
        assert_eq!(maps.stats.max_entries(), STAT_GRE_NOT_OURS + 1);
    }
}
