//! `Snapshot`: the configuration validated and compiled into the read-only tables the
//! workers use.
//!
//! A snapshot is built off the data path from a [`config::Loaded`] file, whole or not at all:
//! every problem found is reported with its `file:line:col`, and a file with any problem
//! yields no snapshot, so the running one stays. Workers only read a snapshot; a reload
//! builds a new one and swaps it in.
//!
//! This file holds the snapshot's types, the entry points that build one, and the builder
//! that each section's file extends (`impl Builder`); `assemble.rs` puts the sections together.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Range, RangeInclusive};
use std::path::Path;

use classifier::{BucketSpec, Membership, Registry, RuleSet};
use gre::{EthernetAddrs, GreTunnel};
use ipnet::IpNet;

use crate::config::{self, ConfigError, ConfigErrors, Loaded, NotOurs, SourceMap};
use crate::lpm::IpPrefixTable;

mod assemble;
mod bgp;
mod checks;
mod customers;
mod dos;
pub mod health;
mod inputs;
mod ipfix;
mod lists;
mod name_hash;
mod routes;
mod rules;
mod running;
mod server;
mod soft_unicast;
mod succession;
mod tcp;
mod withdrawn;

pub use bgp::Bgp;
pub(crate) use checks::{is_host_address, mapped_hint};
pub use dos::{DEFAULT_BOGONS, Dos, Sanity};
pub use health::{HealthConfig, HealthTable};
pub use inputs::{FileStamp, stamp};
pub use ipfix::Ipfix;
pub use name_hash::{fnv1a, fnv1a_64, vrf_ids};
pub(crate) use rules::RuleText;
use rules::accept_all;
pub use running::{Host, Refused};
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
    /// Our side of every tunnel's `interface`, sorted: addresses only we send from, and
    /// only into their tunnels, so that a packet from one anywhere else is someone else's
    /// and gets no ICMP error.
    pub tunnel_sides: Vec<Ipv4Addr>,
    /// The network and broadcast addresses of every tunnel's inner /30, sorted: broadcasts
    /// to us, who have an interface on it (RFC 1812 §4.2.3.1), so no ICMP error is sent
    /// about a packet to or from one (§4.3.2.7).
    pub tunnel_broadcasts: Vec<Ipv4Addr>,
    /// Those of [`Snapshot::tunnel_sides`] inside a customer's prefix (the configuration
    /// allows a tunnel's inner network inside its own customer's), sorted: addresses of ours
    /// that steering alone would take for the customer's. Empty where inner networks are
    /// private, as they usually are.
    pub tunnel_sides_in_prefixes: Vec<Ipv4Addr>,
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

    /// Whether this tunnel reaches its router by the outer addresses `was` (the tunnel of
    /// its name in the snapshot a reload replaces) did: only then does what the probes found
    /// of `was` (up or down, judged, the answers in its life) carry over. Another router's
    /// answers say nothing of this one's.
    pub fn has_endpoints_of(&self, was: &Tunnel) -> bool {
        self.gre.endpoints == was.gre.endpoints
    }

    /// Whether this tunnel is health-checked as `was` (the tunnel of its name in the
    /// snapshot a reload replaces) was: probed, through the same router
    /// ([`Tunnel::has_endpoints_of`]), under the same GRE key, between the same inner
    /// addresses. Only then does what the probes found of `was` (up or down, judged, the
    /// answers in its life) carry over: under another key the router may take none of our
    /// frames (nor we its: `gre_key_mismatch`), and with other inner addresses the probes ask
    /// another address of the router to answer at another of ours; either way the old
    /// answers say nothing of the new probes', which start afresh, as a new tunnel's do. The
    /// path MTU goes by the path alone.
    pub fn is_probed_as(&self, was: &Tunnel) -> bool {
        self.interface.is_some()
            && self.interface == was.interface
            && self.gre.key == was.gre.key
            && self.has_endpoints_of(was)
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

impl TunnelInterface {
    /// The inner network: a /30 or a /31, told by the sides (a /30's are its .1 and .2,
    /// which differ in both low bits; a /31's in the last only).
    pub fn network(&self) -> ipnet::Ipv4Net {
        let len = if u32::from(self.ours) ^ u32::from(self.peer) == 3 { 30 } else { 31 };
        ipnet::Ipv4Net::new(self.ours, len).map(|n| n.trunc()).unwrap_or_default()
    }

    /// The network and broadcast addresses of a /30, which a router on it takes for
    /// broadcasts (RFC 1812 §4.2.3.1); a /31 has neither (RFC 3021).
    pub fn broadcasts(&self) -> Option<[Ipv4Addr; 2]> {
        let net = self.network();
        (net.prefix_len() == 30).then(|| [net.network(), net.broadcast()])
    }
}

impl Snapshot {
    /// Whether IPv4 `a` is the network or broadcast address of a tunnel's inner /30
    /// ([`Snapshot::tunnel_broadcasts`]): a broadcast on that link, to be forwarded neither
    /// onto it nor off it (RFC 1812 §4.2.3.1; RFC 2644), and no source or subject of an ICMP
    /// error (§4.3.2.7). Most tunnels have none: the common case is one length test.
    #[inline]
    pub fn is_tunnel_broadcast(&self, a: Ipv4Addr) -> bool {
        !self.tunnel_broadcasts.is_empty() && self.tunnel_broadcasts.binary_search(&a).is_ok()
    }

    /// Whether IPv4 `a` is our side of a tunnel inside a customer's prefix
    /// ([`Snapshot::tunnel_sides_in_prefixes`]): to be served through that tunnel alone, not
    /// forwarded into it. Most configurations have none: the common case is one length test.
    #[inline]
    pub fn is_tunnel_side_in_a_prefix(&self, a: Ipv4Addr) -> bool {
        let sides = &self.tunnel_sides_in_prefixes;
        !sides.is_empty() && sides.binary_search(&a).is_ok()
    }

    /// Reads, validates and compiles the file at `path`.
    pub fn from_path(path: &Path) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build(&config::load(path)?)
    }

    /// Validates and compiles a parsed file.
    pub fn build(loaded: &Loaded) -> Result<Snapshot, ConfigErrors> {
        Snapshot::build_as(loaded, None)
    }

    /// [`Snapshot::build`] as soft-unicast server `this_server` where one is given, over the
    /// file's `this_server` (`--this-server`: a fleet's servers sharing one file each give
    /// their own).
    pub fn build_as(loaded: &Loaded, this_server: Option<&str>) -> Result<Snapshot, ConfigErrors> {
        let mut b = Builder::new(&loaded.source);
        b.this_server = this_server.map(str::to_string);
        let snapshot = b.snapshot(loaded);
        b.finish(snapshot)
    }

    /// [`Snapshot::build`] for what is the fleet's, not one server's (its slice plan, its
    /// geofeed, what BGP announces): a file that names no `this_server`, as a fleet's shared
    /// one does, is taken too.
    pub fn build_for_fleet(loaded: &Loaded) -> Result<Snapshot, ConfigErrors> {
        let mut b = Builder::new(&loaded.source);
        b.fleet_wide = true;
        let snapshot = b.snapshot(loaded);
        b.finish(snapshot)
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

struct Builder<'a> {
    src: &'a SourceMap,
    /// `--this-server` ([`Host::this_server`]).
    this_server: Option<String>,
    /// What is built is the fleet's (a plan, a geofeed, BGP's announcements), not one
    /// server's: a `[soft_unicast]` that names no `this_server` is taken.
    fleet_wide: bool,
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
    /// Ranges the masks of the TCP protection rules read again for the lists they name
    /// ([`tcp::named_lists`]) selected so far: bounded per configuration, as compiling them is.
    tcp_masked_ranges_read: usize,
    /// The files the configuration names (see [`Snapshot::inputs`]), and their stamps.
    inputs: Vec<std::path::PathBuf>,
    input_stamps: Vec<Option<FileStamp>>,
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
            fleet_wide: false,
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
            tcp_masked_ranges_read: 0,
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

/// The integer written at `v` as a `T` when it is in `range`, the key's own (read as any
/// integer, [`config::Integer`], so that whatever was written is told this range).
fn within<T: Copy + Into<i128> + TryFrom<i128>>(
    v: &toml::Spanned<config::Integer>,
    range: RangeInclusive<T>,
) -> Option<T> {
    let (start, end): (i128, i128) = ((*range.start()).into(), (*range.end()).into());
    let written = v.get_ref().0;
    if (start..=end).contains(&written) { T::try_from(written).ok() } else { None }
}

/// The integer written at `v` held to `range`: a stand-in for a value refused (said where
/// it is refused), so that what is built with it stays in range.
fn held_to<T: Copy + Into<i128> + TryFrom<i128>>(v: &toml::Spanned<config::Integer>, range: RangeInclusive<T>) -> T {
    let (start, end) = (*range.start(), *range.end());
    T::try_from(v.get_ref().0.clamp(start.into(), end.into())).unwrap_or(start)
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
}
