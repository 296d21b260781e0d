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
//!
//! The parts: `config` (the configuration the data plane gives), `publish` (writing it and
//! soft-unicast's tables into the slot the program is not reading), `key_sets` (the owned
//! prefixes and the tunnels' routers), `stats` (the counters, and test runs judged by
//! them), `error`, `attach`, and this module (loading the program, the sockets per queue,
//! and the numbers it shares with `consts.h`).

// Each `unsafe` block (the link's creation, its file descriptor) says why it holds.
#![deny(clippy::undocumented_unsafe_blocks)]
// The docs are for the people who work on it, read with `--document-private-items`
// (docs/development.md), where links to private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

mod attach;
mod config;
mod error;
mod key_sets;
mod publish;
mod stats;
#[cfg(test)]
mod tests;

pub use attach::{AttachMode, Attached, Found, XdpMode, attached, detach, is_stale, runs};
pub use config::{EgressTables, SoftUnicastConfig, UnboundQueue, XdpConfig};
pub use error::BpfError;
pub use stats::{XdpDecision, XdpStats};

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};

use publish::ReaderBarrier;

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
/// GRE datagrams whose first fragment the program passed as not ours, per address family:
/// as many per queue as a worker remembers such refusals (`gre::reassembly::REFUSED_KEPT`).
/// The program alone writes the map; only the test of the sizes reads this.
#[cfg(test)]
const MAX_REFUSED_GRE: usize = MAX_QUEUES as usize * 64;

/// The name the kernel knows the program by (its function name, `bpftool prog` shows it).
pub const PROGRAM_NAME: &str = "xdp_transitd";

/// `CONFIG_SLOTS` of `consts.h`: the configuration and soft-unicast's tables are written
/// into the slot the program is not reading, then `config_slot` switches to it.
const CONFIG_SLOTS: u32 = 2;

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

    /// Takes the sockets of `queues` out of the program, and returns once none can receive
    /// a frame any more: a run that found a socket before still delivers to it, until the
    /// runs begun before the removal have ended. Their owned frames are the program's from
    /// then on (`no_socket`: passed or dropped by `unbound_queue`), and what it redirected
    /// before is in the sockets' receive rings, for the workers to empty as they stop.
    /// Every socket is taken out and waited for, whichever one's removal failed (the first
    /// failure is returned): one left in would not spare the others their uncounted frames.
    pub fn unregister_sockets(&self, queues: &[u32]) -> Result<(), BpfError> {
        let mut refused = None;
        for queue in queues {
            if let Err(source) = self.skel.maps.xsks.delete(&queue.to_ne_bytes()) {
                refused = refused.or(Some(BpfError::Map { map: "xsks", source }));
            }
        }
        self.readers.wait()?;
        refused.map_or(Ok(()), Err)
    }
}
