//! `Snapshot`: the configuration validated and compiled into the read-only tables the
//! workers use.
//!
//! A snapshot is built off the data path from a [`config::Loaded`] file, whole or not at all:
//! every problem found is reported with its `file:line:col`, and a file with any problem
//! yields no snapshot, so the running one stays. Workers only read a snapshot; a reload
//! builds a new one and swaps it in.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use classifier::{BucketKey, BucketSpec, Membership, Registry, RuleSet};
use gre::{EthernetAddrs, GreTunnel};
use ipnet::IpNet;
use toml::Spanned;

use crate::config::{self, ConfigError, ConfigErrors, Loaded, NotOurs, SourceMap};
use crate::lpm::IpPrefixTable;

mod bgp;
mod customers;
mod dos;
pub mod health;
mod ipfix;
mod lists;
mod routes;
mod rules;
mod soft_unicast;
mod succession;
mod tcp;
mod withdrawn;

pub use bgp::Bgp;
use customers::Locals;
pub use dos::{DEFAULT_BOGONS, Dos, Sanity};
pub use health::{HealthConfig, HealthTable};
pub use ipfix::Ipfix;
pub(crate) use rules::RuleText;
use rules::accept_all;
pub use soft_unicast::SoftUnicast;
pub use succession::Succession;
pub use tcp::{FlowTimeouts, TcpProtection, TcpRule};
pub use withdrawn::Withdrawn;

/// Default frame size: one AF_XDP UMEM frame.
pub const DEFAULT_FRAME_SIZE: usize = 4096;
/// Default Ethernet MTU a tunnel's packets must fit in on the underlay.
pub const UNDERLAY_MTU: u32 = 1500;
/// Outer TTL of encapsulated packets.
pub const OUTER_TTL: u8 = 64;

/// Index of a customer in [`Snapshot::customers`].
pub type CustomerId = u16;
/// Index of a tunnel in [`Snapshot::tunnels`].
pub type TunnelId = u16;
/// Index of a route group in [`Snapshot::route_groups`].
pub type RouteGroupId = u32;
/// Default route priority (lower is preferred).
pub const DEFAULT_PRIORITY: u16 = 100;

/// The generation the next snapshot built gets.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Which build of the process this is (counted from 1): what is made under it and read
    /// after a reload (a flow sample's customer index) names the snapshot it belongs to.
    pub generation: u64,
    /// What of the running snapshot's state carries to this one, worked out when it was
    /// published to replace it ([`Snapshot::take_over_from`]); `None` for the first.
    pub succession: Option<Succession>,
    /// Anycast address: outer source of encapsulated packets and of ICMP errors.
    pub anycast: [u8; 4],
    /// IPv6 anycast address, if configured.
    pub anycast_v6: Option<Ipv6Addr>,
    /// Largest frame accepted.
    pub frame_size: usize,
    /// Fate of IP traffic for no customer.
    pub unmatched: Fate,
    /// Fate of GRE to the anycast address that is not ours (no tunnel's, version 1, other
    /// payloads).
    pub gre_unsupported: Fate,
    /// Fate of owned traffic on a NIC queue with no socket (the XDP program's choice).
    pub unbound_queue: Fate,
    /// Fate of MPLS frames.
    pub mpls: Fate,
    /// The list lookups the rules need per packet (`in $name`).
    pub membership: Membership,
    /// Fragment IPv4 without DF that exceeds a tunnel's MTU (else drop it).
    pub fragment_ipv4: bool,
    /// Clamp the MSS of SYNs entering or leaving a tunnel.
    pub mss_clamp: bool,
    /// Learn tunnels' path MTU from the underlay's Packet Too Big messages about our GRE.
    pub path_mtu_discovery: bool,
    /// Reassemble fragmented GRE from tunnels' routers.
    pub gre_reassembly: bool,
    /// Rate and burst of the ICMP errors one worker sends (rate 0: none).
    pub icmp: BucketSpec,
    /// Probe timing and thresholds.
    pub health_config: HealthConfig,
    /// Which tunnels are up, and the probe replies seen.
    pub health: HealthTable,
    /// Ethernet addresses of encapsulated frames (the destination is zero unless
    /// `next_hop_mac` is configured).
    pub eth: EthernetAddrs,
    /// Where the next hop's MAC comes from.
    pub next_hop: NextHop,
    /// Customers, by id.
    pub customers: Vec<Customer>,
    /// Destination → the customer whose prefix holds it.
    pub customer_by_prefix: IpPrefixTable<CustomerId>,
    /// Tunnels, by id.
    pub tunnels: Vec<Tunnel>,
    /// `(remote, key, tunnel)` sorted, to find the tunnel GRE arrives from.
    pub tunnel_index: Vec<(RemoteAddr, Option<u32>, TunnelId)>,
    /// The tunnels a route may take, by route group.
    pub route_groups: Vec<Box<[NextTunnel]>>,
    /// Total firewall and egress rules over all customers: the size of a worker's rule
    /// counter array.
    pub rule_count: usize,
    /// DoS mitigation: sanity checks, buckets, global rules.
    pub dos: Dos,
    /// DoS rules in all (global, then each customer's): the size of the DoS counter array.
    pub dos_rule_count: usize,
    /// Stateful TCP protection: flow table settings and every rule.
    pub tcp: TcpProtection,
    /// Soft-unicast egress addresses and their owners, if configured.
    pub soft_unicast: Option<SoftUnicast>,
    /// Every customer prefix and whose it is, in the order configured.
    pub customer_prefixes: Vec<(IpNet, CustomerId)>,
    /// Customer prefixes reloads removed, held for their grace: set when a reload publishes
    /// the snapshot ([`Withdrawn::after`]), empty otherwise.
    pub withdrawn: Withdrawn,
    /// Announcing by BGP through BIRD, if configured.
    pub bgp: Option<Bgp>,
    /// Sampled flow export, if configured.
    pub ipfix: Option<Ipfix>,
    /// What the configuration asks for that will not work as one would expect, with where:
    /// said by `check-config`, `replay`, `run` and a reload, not refused.
    pub warnings: Vec<ConfigError>,
    /// The files it was built from besides the configuration (list files, the plan), as
    /// named: `run` watches them with the configuration file, so that a feed rewriting a
    /// list reloads it.
    pub inputs: Vec<std::path::PathBuf>,
    /// Each input's [`stamp`] as the build found it just before reading it: `run` watches
    /// for changes from there, so that a feed's write after the read (while the rest was
    /// built) is read again.
    pub input_stamps: Vec<Option<FileStamp>>,
}

/// A configuration [`Snapshot::build_for_reload`] refused: why, and the files it named.
#[derive(Debug)]
pub struct Refused {
    /// Everything wrong with it.
    pub errors: ConfigErrors,
    /// The files it named besides the configuration, as [`Snapshot::inputs`] (none when its
    /// text did not parse: nothing was named).
    pub inputs: Vec<std::path::PathBuf>,
    /// Each input's [`stamp`] as the build found it just before reading it.
    pub input_stamps: Vec<Option<FileStamp>>,
}

impl From<ConfigErrors> for Refused {
    /// Refused before anything was built (the text did not parse): no file was named.
    fn from(errors: ConfigErrors) -> Refused {
        Refused { errors, inputs: Vec::new(), input_stamps: Vec::new() }
    }
}

/// What tells a file's versions apart: its modification time, length and inode.
pub type FileStamp = (std::time::SystemTime, u64, u64);

/// The file at `path`'s [`FileStamp`], if it can be read.
pub fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// What becomes of traffic transitd does not forward (`unmatched`, `gre_unsupported`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Handed to the host's kernel stack.
    Pass,
    /// Dropped, counted under its reason.
    Drop,
}

impl From<NotOurs> for Fate {
    fn from(n: NotOurs) -> Fate {
        match n {
            NotOurs::Pass => Fate::Pass,
            NotOurs::Drop => Fate::Drop,
        }
    }
}

/// How the destination MAC of encapsulated frames is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Configured (`next_hop_mac`).
    Static([u8; 6]),
    /// Learned from the neighbour table for this address (`next_hop`).
    Neighbour(IpAddr),
    /// Not configured: replay sends to zero; `run` refuses to start.
    Unset,
}

/// A tunnel's outer address in a form that sorts: IPv4 as an IPv4-mapped IPv6 address.
pub type RemoteAddr = u128;

/// The sort key of an outer address.
pub fn remote_addr(ip: IpAddr) -> RemoteAddr {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// One tunnel a route may take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NextTunnel {
    /// The tunnel.
    pub tunnel: TunnelId,
    /// Lower is preferred.
    pub priority: u16,
    /// Share among tunnels of equal priority.
    pub weight: u16,
    /// `1 / weight`, for the tunnel choice's score (a multiplication, not a division, per
    /// packet).
    pub per_weight: f64,
    /// Whether the group's tunnels of one priority differ in weight (the same in each entry
    /// of the group): if not, the choice ranks them by the hash alone.
    pub weighted: bool,
    /// What the flow hash is mixed with to score the tunnel (a hash of its name: the same
    /// across reloads that reorder tunnels, and across a fleet's servers).
    pub seed: u64,
}

/// One customer's compiled state.
#[derive(Debug)]
pub struct Customer {
    /// Its name.
    pub name: String,
    /// Its firewall.
    pub firewall: RuleSet,
    /// Index of its first rule in the global rule counters.
    pub rule_base: u32,
    /// Rules for what it sends out through its tunnels.
    pub egress: RuleSet,
    /// Index of its first egress rule in the global rule counters.
    pub egress_base: u32,
    /// Its DoS rules, after the global ones.
    pub dos: RuleSet,
    /// Index of its first DoS rule in the DoS rule counters.
    pub dos_base: u32,
    /// Its TCP protection rules' filters (after the global ones).
    pub tcp: RuleSet,
    /// Index of its first TCP protection rule in [`TcpProtection::rules`].
    pub tcp_base: u32,
    /// What the TCP protection rules that apply to it cover, with its prefixes, as a
    /// fingerprint (`tcp::coverage`): a reload that changes it starts its grace period again.
    pub tcp_coverage: u64,
    /// The lists those rules name, with how they test each (`tcp::named_lists`): a reload
    /// where one changed so that they cover more starts its grace period again too.
    pub tcp_lists: Vec<(std::sync::Arc<classifier::List>, classifier::ListUse)>,
    /// Which lists those rules cover through, as a number: the previous snapshot's when a
    /// reload kept the fingerprint and changed no list so as to cover more
    /// ([`Snapshot::take_over_from`]), else one no snapshot had. Workers compare these, not
    /// the lists: a list may hold millions of members, and every worker compared them
    /// between two batches at every reload (a worker that missed a reload sees a version
    /// that moved in either, so its grace is never missed).
    pub tcp_lists_version: u64,
    /// Destination → route group.
    pub routes: IpPrefixTable<RouteGroupId>,
    /// Its IPFIX routing domain (`ingressVRFID`, `egressVRFID`): from its name, so that it
    /// means the same customer across reloads and across a fleet's servers ([`vrf_ids`]).
    pub vrf_id: u32,
}

/// Each customer's IPFIX VRF id, in `names` order: a hash of its name (FNV-1a, 31 bits, never
/// 0, which means none), the next free one where two names meet (taken in name order, so
/// that which of the two moves does not depend on where they are written). A collector
/// groups by the id: the customer's place in the file, the id once, changed meaning
/// whenever a customer was added before it.
pub fn vrf_ids<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let names: Vec<&str> = names.collect();
    let hash = |name: &str| (fnv1a(name.as_bytes()) & 0x7fff_ffff).max(1);
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names[i]);
    let mut taken = std::collections::HashSet::new();
    let mut ids = vec![0; names.len()];
    for i in order {
        let mut id = hash(names[i]);
        while !taken.insert(id) {
            id = id % 0x7fff_ffff + 1;
        }
        ids[i] = id;
    }
    ids
}

/// FNV-1a (32 bits) of `bytes`: a hash of a name that is the same in every run, build and
/// server, for what must not change when nothing about the name did.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// FNV-1a in 64 bits, where 32 would let names meet (a tunnel's seed among a group's).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One GRE tunnel.
#[derive(Debug)]
pub struct Tunnel {
    /// Its index in [`Snapshot::tunnels`].
    pub id: TunnelId,
    /// Its name.
    pub name: String,
    /// The customer it belongs to.
    pub customer: CustomerId,
    /// Outer header parameters.
    pub gre: GreTunnel,
    /// Largest inner packet, in bytes.
    pub mtu: u32,
    /// MSS that SYNs carried over IPv4 are clamped to.
    pub mss_v4: u16,
    /// MSS that SYNs carried over IPv6 are clamped to.
    pub mss_v6: u16,
    /// The tunnel's inner point-to-point addresses, if configured.
    pub interface: Option<TunnelInterface>,
}

impl Tunnel {
    /// The largest inner packet whose outer one fits a link of MTU `link`: what the data
    /// plane holds the tunnel to, and what `run` tells an operator whose `mtu` is larger.
    #[inline]
    pub fn mtu_on_link(&self, link: usize) -> usize {
        link.saturating_sub(self.gre.overhead())
    }
}

/// The two ends of a tunnel's inner /31 (or /30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelInterface {
    /// Ours: probes come back to it, pings to it are answered.
    pub ours: Ipv4Addr,
    /// The customer router's.
    pub peer: Ipv4Addr,
}

impl Snapshot {
    /// Takes over from `old`, the snapshot this one replaces while running (once, on the
    /// supervisor's thread, before the workers see it): tunnel health carries over by name
    /// (a reload neither revives a dead tunnel nor loses the probes in flight), and so does
    /// a learned path MTU while the tunnel's outer addresses and headers stay the same;
    /// each customer whose TCP rules cover what they did keeps its lists' version unless one
    /// of the lists changed so that the rules cover more; and what of the workers' state
    /// carries over is worked out here once ([`Succession`]).
    pub fn take_over_from(&mut self, old: &Snapshot) {
        // Names first: the rest of the succession reads the TCP list versions carried below.
        let succession = Succession::names_only(old, self);
        let probed: Vec<bool> = self.tunnels.iter().map(|t| t.interface.is_some()).collect();
        self.health.inherit(&succession.tunnels, &probed, &old.health);
        // Another path says nothing of what the old one took; other headers (a key or a
        // checksum added) leave the inner packet less of it.
        let path = |t: &Tunnel| (t.gre.endpoints, t.gre.overhead());
        for (t, &was) in self.tunnels.iter().zip(&succession.tunnels) {
            if was.and_then(|o| old.tunnels.get(o)).is_some_and(|was| path(was) != path(t)) {
                self.health.forget_path_mtu(t.id);
            }
        }
        // Turned off, path MTU discovery leaves nothing held (an operator may turn it off
        // because forged errors came).
        if !self.path_mtu_discovery {
            self.health.forget_path_mtus();
        }
        // Each pair of lists compared once: the global rules' are every customer's.
        type Pair = (*const classifier::List, *const classifier::List, bool, bool);
        let mut compared: std::collections::HashMap<Pair, bool> = std::collections::HashMap::new();
        let mut widened_by = |use_: &classifier::ListUse, then: &Arc<classifier::List>, now: &Arc<classifier::List>| {
            let pair = (Arc::as_ptr(then), Arc::as_ptr(now), use_.members, use_.non_members);
            *compared.entry(pair).or_insert_with(|| !Arc::ptr_eq(now, then) && use_.widened_by(then, now))
        };
        for (c, &was) in self.customers.iter_mut().zip(&succession.customers) {
            // Customer names are unique, so this is the one customer of that name.
            let Some(was) = was.and_then(|o| old.customers.get(o)).filter(|was| was.tcp_coverage == c.tcp_coverage)
            else {
                continue;
            };
            let widened =
                c.tcp_lists.iter().zip(&was.tcp_lists).any(|((now, use_), (then, _))| widened_by(use_, then, now));
            if !widened {
                c.tcp_lists_version = was.tcp_lists_version;
            }
        }
        // Last: the TCP list versions just carried decide which connections stay tracked.
        self.succession = Some(succession.completed(old, self));
    }

    /// Reads, validates and compiles the file at `path`.
    pub fn from_path(path: &Path) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build(&config::load(path)?)
    }

    /// Validates and compiles a parsed file.
    pub fn build(loaded: &Loaded) -> Result<Snapshot, ConfigErrors> {
        let mut b = Builder::new(&loaded.source);
        let snapshot = b.snapshot(loaded);
        b.finish(snapshot)
    }

    /// [`Snapshot::from_path`] for `run` ([`Snapshot::build_to_run`]).
    pub fn from_path_to_run(path: &Path, host: &Host) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build_to_run(&config::load(path)?, host)
    }

    /// [`Snapshot::build`] for `run` on `host`, which also needs a next hop, and a source MAC
    /// when the interface's own could not be read; either missing is an error at `[server]`,
    /// like every other. (Replay and `match` need neither.)
    pub fn build_to_run(loaded: &Loaded, host: &Host) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build_for_reload(loaded, host).map_err(|refused| refused.errors)
    }

    /// [`Snapshot::build_to_run`] for a reload: refused, it says which files the
    /// configuration named as well, so that `run` watches them (writing the list file that
    /// was missing or wrong tries the configuration again).
    pub fn build_for_reload(loaded: &Loaded, host: &Host) -> Result<Snapshot, Refused> {
        let mut b = Builder::new(&loaded.source);
        b.this_server = host.this_server.clone();
        let snapshot = b.snapshot(loaded);
        let server = loaded.file.server.span();
        // (One given but refused has been said where it is.)
        let given = loaded.file.server.get_ref();
        if snapshot.next_hop == NextHop::Unset && given.next_hop.is_none() && given.next_hop_mac.is_none() {
            b.err(&server, "[server] sets no next hop: `run` needs next_hop (an IP address) or next_hop_mac");
        }
        if let Some(su) = loaded.file.soft_unicast.as_ref().filter(|_| host.shared && host.this_server.is_none()) {
            b.err(
                &su.span(),
                format!(
                    "[soft_unicast] comes from the fleet's shared configuration, whose this_server (`{}`) is one \
                     server's: run needs --this-server NAME (taking it, this host would take that server's slices \
                     and backbone address)",
                    su.get_ref().this_server.get_ref()
                ),
            );
        }
        if snapshot.eth.src == [0; 6] && !host.iface_mac_known {
            b.err(
                &server,
                "[server] sets no `mac`, and the interface's own address could not be read when transitd started",
            );
        }
        match b.finish(()) {
            Ok(()) => Ok(snapshot),
            // (A refused snapshot holds them as well: it was built whole, then thrown away.)
            Err(errors) => Err(Refused { errors, inputs: snapshot.inputs, input_stamps: snapshot.input_stamps }),
        }
    }

    /// Every customer IPv4 prefix: the XDP program's map of what is ours.
    pub fn owned_v4(&self) -> Vec<(Ipv4Addr, u8)> {
        let v4 = |(net, _): &(IpNet, CustomerId)| match net {
            IpNet::V4(n) => Some((n.network(), n.prefix_len())),
            IpNet::V6(_) => None,
        };
        self.customer_prefixes.iter().filter_map(v4).collect()
    }

    /// Every customer IPv6 prefix.
    pub fn owned_v6(&self) -> Vec<(Ipv6Addr, u8)> {
        let v6 = |(net, _): &(IpNet, CustomerId)| match net {
            IpNet::V6(n) => Some((n.network(), n.prefix_len())),
            IpNet::V4(_) => None,
        };
        self.customer_prefixes.iter().filter_map(v6).collect()
    }
}

/// The `[[list]]`s of the configuration file at `path` alone (for `transitd match -Y`),
/// whatever else the file holds.
pub fn list_registry(path: &Path) -> Result<Registry, ConfigErrors> {
    let loaded = config::load_once(path)?;
    let mut b = Builder::new(&loaded.source);
    let registry = b.lists(&loaded.file.lists);
    b.finish(registry)
}

/// What `run` knows of its host that the configuration does not say.
#[derive(Clone, Debug, Default)]
pub struct Host {
    /// The interface's own MAC address could be read (else `[server] mac` is required).
    pub iface_mac_known: bool,
    /// `--this-server`: which soft-unicast server this host is, over `[soft_unicast]
    /// this_server`, for a fleet whose servers share one configuration (an etcd prefix).
    pub this_server: Option<String>,
    /// The configuration is a fleet's, shared by its servers (etcd): its `this_server` is
    /// some server's, so `[soft_unicast]` needs `--this-server`.
    pub shared: bool,
}

struct Builder<'a> {
    src: &'a SourceMap,
    /// `--this-server` ([`Host::this_server`]).
    this_server: Option<String>,
    errors: Vec<ConfigError>,
    /// Bucket names, by index (declared before any rule refers to them).
    buckets: Vec<String>,
    /// The `[[list]]`s, and the membership slots the rules compiled so far use.
    lists: Registry,
    /// Said, not refused (see [`Snapshot::warnings`]).
    warnings: Vec<ConfigError>,
    /// What compiling all the rule lists may still spend (steps, boxes, bytes: the
    /// `crate::limits` `*_PER_CONFIG` bounds), and whether a list found it spent.
    budget: classifier::Budget,
    budget_spent: bool,
    /// Expansion steps the warnings about TCP protection rules may spend (expanding each
    /// rule once more): a tenth of what compiling may, apart, so that a warning never costs
    /// a configuration its acceptance; spent, the rest go unsaid.
    warning_steps: usize,
    /// The files the configuration names (see [`Snapshot::inputs`]), and their stamps.
    inputs: Vec<std::path::PathBuf>,
    input_stamps: Vec<Option<FileStamp>>,
}

/// What `[server]` compiles to.
struct ServerParts {
    anycast: [u8; 4],
    anycast_v6: Option<Ipv6Addr>,
    frame_size: usize,
    icmp: BucketSpec,
    eth: EthernetAddrs,
    next_hop: NextHop,
}

/// A customer prefix with where it was written.
struct OwnedPrefix {
    net: IpNet,
    customer: CustomerId,
    span: Range<usize>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a SourceMap) -> Builder<'a> {
        Builder {
            src,
            this_server: None,
            errors: Vec::new(),
            buckets: Vec::new(),
            lists: Registry::default(),
            warnings: Vec::new(),
            budget: classifier::Budget {
                steps: crate::limits::MAX_COMPILE_STEPS_PER_CONFIG,
                boxes: crate::limits::MAX_BOXES_PER_CONFIG,
                bytes: crate::limits::MAX_TABLE_BYTES_PER_CONFIG,
            },
            budget_spent: false,
            warning_steps: crate::limits::MAX_COMPILE_STEPS_PER_CONFIG / 10,
            inputs: Vec::new(),
            input_stamps: Vec::new(),
        }
    }

    /// `built`, or every error found while building it, in file order.
    fn finish<T>(mut self, built: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(built)
        } else {
            let errors = std::mem::take(&mut self.errors);
            Err(ConfigErrors(in_file_order(self.src, errors)))
        }
    }
}

/// `said` (errors or warnings) as a reader meets them: by file (the configuration's sources
/// in order, other files after, by name), then by position; in the order found at one
/// position.
fn in_file_order(src: &SourceMap, mut said: Vec<ConfigError>) -> Vec<ConfigError> {
    said.sort_by_cached_key(|e| (src.rank(&e.at.file), e.at.file.clone(), e.at.line, e.at.col));
    said
}

impl Builder<'_> {
    fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.src.pos(span.start), message));
    }

    /// Says `message` at `span` without refusing the configuration ([`Snapshot::warnings`]).
    fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.warnings.push(ConfigError::new(self.src.pos(span.start), message));
    }

    /// An IPv4 address one host may have: not 0.0.0.0, loopback, multicast or broadcast.
    fn ipv4(&mut self, s: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
        match s.get_ref().parse() {
            Ok(a) if !is_host_address(IpAddr::V4(a)) => {
                self.err(&s.span(), format!("{what} `{a}` is not one host's address"));
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                self.err(&s.span(), format!("{what} `{}` is not an IPv4 address", s.get_ref()));
                None
            }
        }
    }

    /// An error at `at` when `addr` (`what`) lies in space no host on the Internet has (link-local,
    /// "this network"): customers' routers could not send to it, and `[bgp]` would announce it.
    fn internet_reaches(&mut self, addr: IpAddr, at: &Range<usize>, what: &str) {
        if let Some(why) = customers::not_for_hosts(IpNet::from(addr)) {
            self.err(at, format!("{what} `{addr}` is {why}: the Internet cannot reach it"));
        }
    }

    fn mac(&mut self, s: &Option<Spanned<String>>) -> [u8; 6] {
        let Some(s) = s else { return [0; 6] };
        // One or two hex digits a part: `u8`'s parser alone also takes `+2` and `000`.
        let part = |p: &str| {
            let digits = (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit());
            if digits { u8::from_str_radix(p, 16).ok() } else { None }
        };
        let parts: Vec<Option<u8>> = s.get_ref().split(':').map(part).collect();
        match parts.as_slice() {
            [a, b, c, d, e, f] if parts.iter().all(Option::is_some) => {
                let mac = [a, b, c, d, e, f].map(|x| x.unwrap_or_default());
                // A frame from or to such an address reaches no one router (and the all-zero
                // one would pass for a next hop that is set).
                if mac == [0; 6] || mac[0] & 1 == 1 {
                    let why =
                        format!("`{}` is not a unicast MAC address (all zeros, broadcast or multicast)", s.get_ref());
                    self.err(&s.span(), why);
                }
                mac
            }
            _ => {
                self.err(&s.span(), format!("`{}` is not a MAC address (write 02:00:00:00:00:01)", s.get_ref()));
                [0; 6]
            }
        }
    }

    /// Parses a CIDR prefix, refusing host bits.
    fn prefix(&mut self, s: &Spanned<String>) -> Option<IpNet> {
        let text = s.get_ref();
        let net: IpNet = match text.parse() {
            Ok(n) => n,
            Err(_) => {
                let why = match text.split_once('/') {
                    None => "missing /length".to_string(),
                    Some((addr, _)) if addr.parse::<IpAddr>().is_err() => format!("`{addr}` is not an IP address"),
                    Some((addr, len)) => {
                        let max = if addr.contains(':') { 128 } else { 32 };
                        match len.parse::<u8>() {
                            Ok(n) if n <= max && len.len() > 1 && len.starts_with('0') => {
                                format!("prefix length `{len}` has a leading zero (write {n})")
                            }
                            _ => format!("prefix length `{len}` is not in 0..={max}"),
                        }
                    }
                };
                self.err(&s.span(), format!("bad CIDR `{text}`: {why}"));
                return None;
            }
        };
        if net.trunc() != net {
            self.err(&s.span(), format!("bad CIDR `{text}`: host bits are set (the network is {})", net.trunc()));
            return None;
        }
        Some(net)
    }

    fn snapshot(&mut self, loaded: &Loaded) -> Snapshot {
        let server = loaded.file.server.get_ref();
        let s = self.server(server);
        self.lists = self.lists(&loaded.file.lists);
        let health_config = self.health(&loaded.file.health);
        let mut dos = self.dos(&loaded.file.dos);
        let mut dos_rule_count = dos.rules.rules().len() as u32;
        let mut tcp = self.tcp_protection(&loaded.file.tcp_protection);
        let local = Locals { v4: Ipv4Addr::from(s.anycast), v6: s.anycast_v6 };

        // Ids are 16 bits: what lies past the bounds is reported and never compiled.
        let customers_in = self.bounded_customers(&loaded.file.customers);
        let mut c = self.customers(customers_in, &local, &mut dos_rule_count, &mut tcp);
        let ids = vrf_ids(c.customers.iter().map(|c| c.name.as_str()));
        for (customer, id) in c.customers.iter_mut().zip(ids) {
            customer.vrf_id = id;
        }
        self.previews(&mut dos, &loaded.file.dos, &c.customers);
        self.check_remotes_not_bogons(&dos, &loaded.file.dos, customers_in);
        // A tunnel that takes more than a frame carries: what would use the difference is
        // dropped as `oversize` on arrival, and its SYNs are clamped to an MSS no packet
        // reaches.
        let carried = s.frame_size.saturating_sub(14);
        for mtu in customers_in.iter().flat_map(|c| &c.get_ref().tunnels).filter_map(|t| t.get_ref().mtu.as_ref()) {
            if *mtu.get_ref() as usize > carried {
                let why = format!(
                    "mtu {} is more than a frame of frame_size {} carries ({carried} bytes of IP): longer packets \
                     are dropped as oversize on arrival; raise frame_size or lower mtu",
                    mtu.get_ref(),
                    s.frame_size
                );
                self.warn(&mtu.span(), why);
            }
        }
        // Tunnels without an `mtu` take the default, which a small frame_size holds too.
        let unset = customers_in.iter().flat_map(|c| &c.get_ref().tunnels).filter(|t| t.get_ref().mtu.is_none());
        let defaults: std::collections::HashSet<&str> = unset.map(|t| t.get_ref().name.get_ref().as_str()).collect();
        let largest = c.tunnels.iter().filter(|t| defaults.contains(&t.name.as_str())).map(|t| t.mtu).max();
        if let (Some(fs), Some(mtu)) = (&server.frame_size, largest.filter(|&m| m as usize > carried)) {
            let why = format!(
                "frame_size {} carries {carried} bytes of IP, less than the default tunnel mtu ({mtu}) of tunnels \
                 without an `mtu`: longer packets are dropped as oversize on arrival; raise frame_size or set their mtu",
                fs.get_ref()
            );
            self.warn(&fs.span(), why);
        }
        if !server.mss_clamp {
            for mss in customers_in.iter().flat_map(|c| &c.get_ref().tunnels).filter_map(|t| t.get_ref().mss.as_ref()) {
                self.warn(&mss.span(), "mss is not used: [server] mss_clamp = false clamps no SYN");
            }
        }
        self.check_overlaps(&mut c.prefixes, customers_in);
        self.warn_without_anycast_v6(&c.prefixes, s.anycast_v6);
        if loaded.file.bgp.is_some() {
            // Every customer prefix is announced: a /0 would be a default route to the
            // upstreams, which attracts the whole Internet's traffic (or is filtered away).
            for p in c.prefixes.iter().filter(|p| p.net.prefix_len() == 0) {
                self.err(&p.span, format!("customer prefix {} would be announced as a default route ([bgp])", p.net));
            }
            // Inside such space a prefix is refused anyway; holding it, it would announce it.
            for p in c.prefixes.iter().filter(|p| p.net.prefix_len() > 0) {
                if let Some(space) = customers::holds_space_for_no_hosts(p.net) {
                    let why = format!("customer prefix {} holds {space}, which [bgp] would announce with it", p.net);
                    self.err(&p.span, why);
                }
            }
        }
        let soft_unicast = loaded.file.soft_unicast.as_ref().and_then(|s| self.soft_unicast(s));
        let egress_written = routes::egress_written(loaded.file.soft_unicast.as_ref());
        self.check_egress_overlaps(&egress_written, &c.prefixes);
        // Egress addresses are hosts' sources, announced with `[bgp]`: held as customer prefixes.
        for (net, len, at) in &egress_written {
            let egress = IpNet::V4(ipnet::Ipv4Net::new(*net, *len).unwrap_or_default());
            if let Some(why) = customers::not_for_hosts(egress) {
                self.err(at, format!("egress prefix {egress} is {why}: no host sends from there"));
            } else if let Some(space) =
                customers::holds_space_for_no_hosts(egress).filter(|_| loaded.file.bgp.is_some())
            {
                self.err(at, format!("egress prefix {egress} holds {space}, which [bgp] would announce with it"));
            }
        }
        let egress: Vec<(Ipv4Addr, u8)> = egress_written.iter().map(|(a, len, _)| (*a, *len)).collect();
        let fleet = loaded.file.soft_unicast.as_ref().map(|s| s.get_ref());
        self.check_addresses_outside_prefixes(&c.prefixes, &egress, server, customers_in, fleet);
        let route_groups =
            self.customer_routes(customers_in, &c.prefixes, &c.tunnel_names, &c.tunnels, &mut c.customers);
        let probed = c.tunnels.iter().any(|t| t.interface.is_some());
        self.warn_inert(loaded, probed, dos.buckets.is_empty(), &tcp);
        Snapshot {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            succession: None,
            anycast: s.anycast,
            anycast_v6: s.anycast_v6,
            frame_size: s.frame_size,
            unmatched: server.unmatched.into(),
            gre_unsupported: server.gre_unsupported.into(),
            unbound_queue: server.unbound_queue.into(),
            mpls: server.mpls.into(),
            fragment_ipv4: server.fragment_ipv4,
            mss_clamp: server.mss_clamp,
            path_mtu_discovery: server.path_mtu_discovery,
            gre_reassembly: server.gre_reassembly,
            icmp: s.icmp,
            health_config,
            health: HealthTable::new(c.tunnels.len()),
            eth: s.eth,
            next_hop: s.next_hop,
            customers: c.customers,
            customer_by_prefix: IpPrefixTable::build(c.prefixes.iter().map(|p| (p.net, p.customer))),
            tunnels: c.tunnels,
            tunnel_index: c.tunnel_index,
            route_groups,
            rule_count: c.rule_count as usize,
            dos,
            dos_rule_count: dos_rule_count as usize,
            tcp,
            soft_unicast,
            customer_prefixes: c.prefixes.iter().map(|p| (p.net, p.customer)).collect(),
            withdrawn: Withdrawn::default(),
            bgp: loaded.file.bgp.as_ref().map(|b| self.bgp(b.get_ref())),
            ipfix: loaded.file.ipfix.as_ref().map(|x| self.ipfix(x.get_ref())),
            membership: self.lists.membership(),
            warnings: in_file_order(self.src, std::mem::take(&mut self.warnings)),
            inputs: std::mem::take(&mut self.inputs),
            input_stamps: std::mem::take(&mut self.input_stamps),
        }
    }

    /// Settings written that nothing in the configuration uses: said, not refused (a fleet's
    /// shared file may hold them on purpose, for servers whose part uses them), since a
    /// setting that silently does nothing looks like one that works.
    fn warn_inert(&mut self, loaded: &Loaded, probed: bool, no_buckets: bool, tcp: &TcpProtection) {
        let file = &loaded.file;
        let h = &file.health;
        let health_written =
            [&h.interval_ms, &h.timeout_ms, &h.down_after, &h.up_after].into_iter().find(|v| !v.span().is_empty());
        if let (false, Some(key)) = (probed, health_written) {
            self.warn(
                &key.span(),
                "[health] probes tunnels with an `interface`, and no tunnel has one: it has no effect",
            );
        }
        if let Some(bgp) = file.bgp.as_ref().filter(|b| b.get_ref().withdraw_customers_without_tunnels && !probed) {
            self.warn(
                &bgp.span(),
                "withdraw_customers_without_tunnels acts on probed tunnels (those with an `interface`), and no tunnel \
                 is probed: no customer is ever withdrawn for its tunnels",
            );
        }
        if let (true, Some(size)) = (no_buckets, &file.dos.table_size) {
            self.warn(&size.span(), "[dos] table_size sizes the keys of rate-limit buckets, and there is no [[dos.bucket]]: it has no effect");
        }
        let t = &file.tcp_protection;
        if tcp.rules.is_empty() {
            let settings = [
                &t.table_size,
                &t.embryonic_timeout,
                &t.idle_timeout,
                &t.closing_timeout,
                &t.grace_period,
                &t.challenge_rate,
                &t.authenticated_for,
            ];
            if let Some(key) = settings.into_iter().flatten().next() {
                self.warn(
                    &key.span(),
                    "[tcp_protection] settings have no effect: no TCP protection rule, global or a customer's",
                );
            }
        } else if tcp.syn_buckets.is_empty() {
            for key in [&t.challenge_rate, &t.authenticated_for].into_iter().flatten() {
                self.warn(&key.span(), "challenges are sent over a rule's syn_rate, and no TCP protection rule has one: this has no effect");
            }
        }
    }

    /// IPv6 customer prefixes without `anycast_v6` work (over IPv4 tunnels, in replay), but
    /// nothing can source an ICMPv6 error about their packets: a packet too big for its
    /// tunnel is dropped without the Packet Too Big that path MTU discovery needs (IPv6
    /// routers do not fragment), which is a black hole nobody sees. Said once, at the first.
    fn warn_without_anycast_v6(&mut self, prefixes: &[OwnedPrefix], anycast_v6: Option<Ipv6Addr>) {
        let first_v6 = prefixes.iter().filter(|p| matches!(p.net, IpNet::V6(_))).min_by_key(|p| p.span.start);
        if let (None, Some(p)) = (anycast_v6, first_v6) {
            let message = format!(
                "IPv6 prefix `{}` but [server] sets no anycast_v6: no ICMPv6 error (Packet Too Big, Time Exceeded) \
                 can be sent about its packets, so path MTU discovery through a tunnel with a smaller MTU fails \
                 silently; set anycast_v6",
                p.net
            );
            self.warn(&p.span, message);
        }
    }

    /// `[server]`: the anycast addresses, frame size, ICMP error budget and Ethernet
    /// addresses.
    fn server(&mut self, server: &config::ServerSection) -> ServerParts {
        let anycast = self.ipv4(&server.anycast, "anycast address").map_or([0; 4], |a| a.octets());
        if anycast != [0; 4] {
            self.internet_reaches(IpAddr::from(anycast), &server.anycast.span(), "anycast address");
        }
        let anycast_v6 = server.anycast_v6.as_ref().and_then(|a| match a.get_ref().parse::<Ipv6Addr>() {
            Ok(v6) if !is_host_address(IpAddr::V6(v6)) => {
                // An IPv4-mapped one is no IPv6 address: the IPv4 address is `anycast`'s.
                let hint = match v6.to_ipv4_mapped() {
                    Some(v4) => format!(
                        ": an IPv4-mapped IPv6 address, which no packet carries (`{v4}` is an IPv4 address: `anycast`)"
                    ),
                    None => String::new(),
                };
                self.err(&a.span(), format!("anycast_v6 `{v6}` is not one host's address{hint}"));
                None
            }
            Ok(ip) => {
                self.internet_reaches(IpAddr::V6(ip), &a.span(), "anycast_v6");
                Some(ip)
            }
            Err(_) => {
                self.err(&a.span(), format!("anycast_v6 `{}` is not an IPv6 address", a.get_ref()));
                None
            }
        });
        let frame_size = match &server.frame_size {
            None => DEFAULT_FRAME_SIZE,
            Some(fs) if (256..=65536).contains(fs.get_ref()) => *fs.get_ref() as usize,
            Some(fs) => {
                self.err(&fs.span(), format!("frame_size {} is not in 256..=65536", fs.get_ref()));
                DEFAULT_FRAME_SIZE
            }
        };
        let icmp = BucketSpec {
            key: BucketKey::Rule,
            rate: server.icmp_rate.as_ref().map_or(1000, |r| *r.get_ref()),
            burst: match &server.icmp_burst {
                None => 100,
                Some(b) if *b.get_ref() >= 1 => *b.get_ref(),
                Some(b) => {
                    self.err(&b.span(), "icmp_burst must be at least 1");
                    1
                }
            },
        };
        let eth = EthernetAddrs { src: self.mac(&server.mac), dst: self.mac(&server.next_hop_mac) };
        let next_hop = match (&server.next_hop_mac, &server.next_hop) {
            (Some(_), Some(ip)) => {
                // Both: the MAC is used, and the address was silently not.
                self.warn(&ip.span(), "next_hop is not used: next_hop_mac is set too, and frames go to that MAC");
                NextHop::Static(eth.dst)
            }
            (Some(_), None) => NextHop::Static(eth.dst),
            (None, Some(ip)) => match ip.get_ref().parse::<IpAddr>() {
                // One router's address, not ours: never to be found in the neighbour table.
                Ok(a)
                    if !is_host_address(a)
                        || a == IpAddr::V4(Ipv4Addr::from(anycast))
                        || Some(a) == anycast_v6.map(IpAddr::V6) =>
                {
                    let hint = mapped_hint(a);
                    let why = format!("next_hop `{a}` is not a router's address (one host's, not ours){hint}");
                    self.err(&ip.span(), why);
                    NextHop::Unset
                }
                Ok(ip) => NextHop::Neighbour(ip),
                Err(_) => {
                    self.err(&ip.span(), format!("next_hop `{}` is not an IP address", ip.get_ref()));
                    NextHop::Unset
                }
            },
            (None, None) => NextHop::Unset,
        };
        ServerParts { anycast, anycast_v6, frame_size, icmp, eth, next_hop }
    }

    fn health(&mut self, h: &config::HealthSection) -> HealthConfig {
        let ms = 1_000_000u64;
        let mut refused = false;
        let mut check = |v: &Spanned<u64>, what: &str, range: std::ops::RangeInclusive<u64>| -> u64 {
            if range.contains(v.get_ref()) {
                *v.get_ref()
            } else {
                self.err(&v.span(), format!("{what} {} is not in {}..={}", v.get_ref(), range.start(), range.end()));
                refused = true;
                *range.start()
            }
        };
        let interval = check(&h.interval_ms, "interval_ms", 10..=3_600_000);
        let mut timeout = check(&h.timeout_ms, "timeout_ms", 1..=3_600_000);
        let down = check(&h.down_after, "down_after", 1..=100) as u32;
        let up = check(&h.up_after, "up_after", 1..=100) as u32;
        // Compared only as written: a refused value's stand-in is no one's word.
        if timeout > interval && !refused {
            if h.timeout_ms.span() == (0..0) {
                // The default (250 ms) with a shorter interval: the interval bounds it, or
                // the prober (which waits for the longer of the two) probes less often
                // than `interval_ms` says.
                timeout = interval;
            } else {
                self.err(&h.timeout_ms.span(), format!("timeout_ms {timeout} is longer than interval_ms {interval}"));
            }
        }
        HealthConfig { interval_ns: interval * ms, timeout_ns: timeout * ms, down_after: down, up_after: up }
    }

    /// Checks that `name` is a name transitd can print anywhere (`limits::check_name`);
    /// `what` says what it names.
    pub(crate) fn name(&mut self, name: &Spanned<String>, what: &str) {
        if let Err(why) = crate::limits::check_name(name.get_ref()) {
            let shown = crate::limits::excerpt(name.get_ref(), 40);
            self.err(&name.span(), format!("{what} name {shown:?} {why}"));
        }
    }

    /// The path of a file the configuration names (`what`): relative to the configuration
    /// file's directory; from etcd, where there is no such directory, it must be absolute.
    pub(crate) fn file_path(&mut self, file: &Spanned<String>, what: &str) -> Option<std::path::PathBuf> {
        let path = std::path::Path::new(file.get_ref());
        if file.get_ref().is_empty() {
            self.err(&file.span(), format!("{what} is empty: name a file"));
            return None;
        }
        if self.src.name().starts_with("etcd:") && !path.is_absolute() {
            let why = format!(
                "{what} `{}` is a relative path, and a configuration from etcd has no directory: write it absolute",
                crate::limits::excerpt(file.get_ref(), 80)
            );
            self.err(&file.span(), why);
            return None;
        }
        let path = std::path::Path::new(self.src.name()).parent().unwrap_or(std::path::Path::new("")).join(path);
        // Stamped before its caller reads it: a write after the read is then a change.
        self.input_stamps.push(stamp(&path));
        self.inputs.push(path.clone());
        Some(path)
    }

    /// Refuses a list longer than `max`, at its first entry past the bound.
    pub(crate) fn bounded<T>(&mut self, items: &[Spanned<T>], max: usize, what: &str) -> bool {
        match items.get(max) {
            Some(first_over) => {
                self.err(&first_over.span(), format!("more than {max} {what}, the most one configuration may hold"));
                false
            }
            None => true,
        }
    }

    fn unique<'s>(&mut self, seen: &mut HashMap<&'s str, Range<usize>>, name: &'s Spanned<String>, what: &str) {
        if let Some(first) = seen.get(name.get_ref().as_str()) {
            let first = self.src.pos(first.start);
            self.err(&name.span(), format!("duplicate {what} name `{}` (first defined at {first})", name.get_ref()));
        } else {
            seen.insert(name.get_ref(), name.span());
        }
    }
}

/// Whether `a` can be one host's address: not unspecified, loopback, multicast or the IPv4
/// broadcast address (RFC 1122 section 3.2.1.3, RFC 4291 section 2.5.2), nor an IPv4-mapped
/// IPv6 address (RFC 4291 section 2.5.5.2: a socket API's way of naming an IPv4 host, never
/// an IPv6 packet's source or destination).
pub(crate) fn is_host_address(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a == IpAddr::V4(Ipv4Addr::BROADCAST)
        || matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()))
}

/// What to add to "is not one host's address" for an IPv4-mapped address: the one to write.
pub(crate) fn mapped_hint(a: IpAddr) -> String {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(String::new, |v4| {
            format!(": an IPv4-mapped IPv6 address, which no packet carries (write `{v4}`)")
        }),
        IpAddr::V4(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    /// Each file the configuration names has the stamp its build took before reading it,
    /// in step with `inputs` (`run` watches them by position), a file named twice included.
    #[test]
    fn every_input_has_its_stamp() {
        let dir = std::env::temp_dir().join(format!("transitd-input-stamps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("feed.txt"), "192.0.2.1\n").unwrap();
        let config = dir.join("t.toml");
        std::fs::write(
            &config,
            "[server]\nanycast = \"192.0.2.1\"\n[[list]]\nname = \"a\"\nfile = \"feed.txt\"\n\
             [[list]]\nname = \"b\"\nfile = \"feed.txt\"\n",
        )
        .unwrap();
        let snap = super::Snapshot::from_path(&config).unwrap();
        assert_eq!(snap.inputs, [dir.join("feed.txt"), dir.join("feed.txt")]);
        let stamp = super::stamp(&dir.join("feed.txt"));
        assert!(stamp.is_some());
        assert_eq!(snap.input_stamps, [stamp, stamp]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A configuration refused still says which files it named, with the stamps taken
    /// before reading them: `run` watches them, so that writing a list file a rejected
    /// reload named (missing when it was read) tries it again.
    #[test]
    fn a_refused_configuration_names_its_files() {
        let dir = std::env::temp_dir().join(format!("transitd-refused-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("feed.txt"), "192.0.2.1\n").unwrap();
        let config = dir.join("t.toml");
        std::fs::write(
            &config,
            "[server]\nanycast = \"192.0.2.1\"\nnext_hop = \"192.0.2.254\"\n[[list]]\nname = \"a\"\n\
             file = \"feed.txt\"\n[[list]]\nname = \"b\"\nfile = \"missing.txt\"\n",
        )
        .unwrap();
        let loaded = crate::config::load(&config).unwrap();
        let host = super::Host { iface_mac_known: true, ..super::Host::default() };
        let refused = super::Snapshot::build_for_reload(&loaded, &host).err().unwrap();
        assert!(refused.errors.to_string().contains("cannot read"), "{}", refused.errors);
        assert_eq!(refused.inputs, [dir.join("feed.txt"), dir.join("missing.txt")]);
        assert_eq!(refused.input_stamps, [super::stamp(&dir.join("feed.txt")), None]);
        // What `check-config` and the start see is the same refusal, without the files.
        let errors = super::Snapshot::build_to_run(&loaded, &host).err().unwrap();
        assert_eq!(errors, refused.errors);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The published FNV-1a test vectors (draft-eastlake-fnv, appendix C): VRF ids, punt
    /// names and tunnel seeds must hash alike in every build.
    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(super::fnv1a(b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(super::fnv1a(b"foobar"), 0xbf9c_f968);
        assert_eq!(super::fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
