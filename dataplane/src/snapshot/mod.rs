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

use classifier::{Action, BucketKey, BucketSpec, Membership, Mode, Registry, Rule, RuleSet};
use gre::{Endpoints, EthernetAddrs, GreTunnel};
use ipnet::IpNet;
use toml::Spanned;

use crate::config::{self, ActionName, ConfigError, ConfigErrors, Loaded, ModeName, NotOurs, SourceMap};
use crate::lpm::PrefixTable;

mod bgp;
mod dos;
pub mod health;
mod ipfix;
mod lists;
mod soft_unicast;
mod tcp;

pub use bgp::Bgp;
pub use dos::{DEFAULT_BOGONS, Dos, Sanity};
pub use health::{HealthConfig, HealthTable};
pub use ipfix::Ipfix;
pub use soft_unicast::SoftUnicast;
pub use tcp::{FlowTimeouts, TcpProtection, TcpRule};

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
    /// IPv4 destination → customer.
    pub customers_v4: PrefixTable<u32, CustomerId>,
    /// IPv6 destination → customer.
    pub customers_v6: PrefixTable<u128, CustomerId>,
    /// Every customer IPv4 prefix (for the XDP program's map of what is ours).
    pub owned_v4: Vec<(Ipv4Addr, u8)>,
    /// Every customer IPv6 prefix.
    pub owned_v6: Vec<(Ipv6Addr, u8)>,
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
    /// Announcing by BGP through BIRD, if configured.
    pub bgp: Option<Bgp>,
    /// Sampled flow export, if configured.
    pub ipfix: Option<Ipfix>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextTunnel {
    /// The tunnel.
    pub tunnel: TunnelId,
    /// Lower is preferred.
    pub priority: u16,
    /// Share among tunnels of equal priority.
    pub weight: u16,
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
    /// IPv4 destination → route group.
    pub routes_v4: PrefixTable<u32, RouteGroupId>,
    /// IPv6 destination → route group.
    pub routes_v6: PrefixTable<u128, RouteGroupId>,
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

/// The two ends of a tunnel's inner /31 (or /30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelInterface {
    /// Ours: probes come back to it, pings to it are answered.
    pub ours: Ipv4Addr,
    /// The customer router's.
    pub peer: Ipv4Addr,
}

impl Snapshot {
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
}

/// The `[[list]]`s of the configuration file at `path` alone (for `transitd match -Y`),
/// whatever else the file holds.
pub fn list_registry(path: &Path) -> Result<Registry, ConfigErrors> {
    let loaded = config::load(path)?;
    let mut b = Builder::new(&loaded.source);
    let registry = b.lists(&loaded.file.lists);
    b.finish(registry)
}

/// Our own addresses, for tunnel outer sources.
struct Locals {
    v4: Ipv4Addr,
    v6: Option<Ipv6Addr>,
}

/// A tunnel's remote address.
fn tunnel_remote(gre: &GreTunnel) -> IpAddr {
    match gre.endpoints {
        Endpoints::V4 { remote, .. } => IpAddr::V4(remote),
        Endpoints::V6 { remote, .. } => IpAddr::V6(remote),
    }
}

struct Builder<'a> {
    src: &'a SourceMap,
    errors: Vec<ConfigError>,
    /// Bucket names, by index (declared before any rule refers to them).
    buckets: Vec<String>,
    /// The `[[list]]`s, and the membership slots the rules compiled so far use.
    lists: Registry,
}

/// A customer prefix with where it was written.
struct OwnedPrefix {
    net: IpNet,
    customer: CustomerId,
    span: Range<usize>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a SourceMap) -> Builder<'a> {
        Builder { src, errors: Vec::new(), buckets: Vec::new(), lists: Registry::default() }
    }

    /// `built`, or every error found while building it, in file order.
    fn finish<T>(mut self, built: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(built)
        } else {
            self.errors.sort_by_key(|x| (x.at.line, x.at.col));
            Err(ConfigErrors(self.errors))
        }
    }
}

impl Builder<'_> {
    fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.src.pos(span.start), message));
    }

    fn ipv4(&mut self, s: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
        match s.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(&s.span(), format!("{what} `{}` is not an IPv4 address", s.get_ref()));
                None
            }
        }
    }

    fn mac(&mut self, s: &Option<Spanned<String>>) -> [u8; 6] {
        let Some(s) = s else { return [0; 6] };
        let parts: Vec<Option<u8>> = s.get_ref().split(':').map(|p| u8::from_str_radix(p, 16).ok()).collect();
        match parts.as_slice() {
            [a, b, c, d, e, f] if parts.iter().all(Option::is_some) => {
                [a, b, c, d, e, f].map(|x| x.unwrap_or_default())
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
                        format!("prefix length `{len}` is not in 0..={max}")
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
        let anycast = self.ipv4(&server.anycast, "anycast address").map_or([0; 4], |a| a.octets());
        let anycast_v6 = server.anycast_v6.as_ref().and_then(|a| match a.get_ref().parse::<Ipv6Addr>() {
            Ok(ip) => Some(ip),
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
        self.lists = self.lists(&loaded.file.lists);
        let health_config = self.health(&loaded.file.health);
        let dos = self.dos(&loaded.file.dos);
        let mut dos_rule_count = dos.rules.rules().len() as u32;
        let mut tcp = self.tcp_protection(&loaded.file.tcp_protection);
        let eth = EthernetAddrs { src: self.mac(&server.mac), dst: self.mac(&server.next_hop_mac) };
        let next_hop = match (&server.next_hop_mac, &server.next_hop) {
            (Some(_), _) => NextHop::Static(eth.dst),
            (None, Some(ip)) => match ip.get_ref().parse::<IpAddr>() {
                Ok(ip) => NextHop::Neighbour(ip),
                Err(_) => {
                    self.err(&ip.span(), format!("next_hop `{}` is not an IP address", ip.get_ref()));
                    NextHop::Unset
                }
            },
            (None, None) => NextHop::Unset,
        };
        let local = Locals { v4: Ipv4Addr::from(anycast), v6: anycast_v6 };

        let mut customers = Vec::new();
        let mut tunnels = Vec::new();
        let mut prefixes = Vec::new();
        let mut customer_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut tunnel_names: HashMap<&str, (Range<usize>, CustomerId, TunnelId)> = HashMap::new();
        let mut tunnel_index: Vec<(RemoteAddr, Option<u32>, TunnelId)> = Vec::new();
        let mut rule_count = 0u32;

        self.bounded(&loaded.file.customers, crate::limits::MAX_CUSTOMERS, "customers");
        let tunnel_count: usize = loaded.file.customers.iter().map(|c| c.get_ref().tunnels.len()).sum();
        if tunnel_count > crate::limits::MAX_TUNNELS {
            let first = loaded.file.customers.first().map_or(0..0, |c| c.span());
            self.err(
                &first,
                format!("{tunnel_count} tunnels: at most {} in one configuration", crate::limits::MAX_TUNNELS),
            );
        }
        // Ids are 16 bits: what lies past the bounds is reported above and never compiled.
        let customers_in = &loaded.file.customers[..loaded.file.customers.len().min(crate::limits::MAX_CUSTOMERS)];
        let mut index_of: HashMap<(RemoteAddr, Option<u32>), Range<usize>> = HashMap::new();
        for (index, section) in customers_in.iter().enumerate() {
            let c = section.get_ref();
            let id = index as CustomerId;
            self.name(&c.name, "customer");
            self.unique(&mut customer_names, &c.name, "customer");
            for p in &c.prefixes {
                if let Some(net) = self.prefix(p) {
                    prefixes.push(OwnedPrefix { net, customer: id, span: p.span() });
                }
            }
            for t in &c.tunnels {
                let t = t.get_ref();
                if tunnels.len() >= crate::limits::MAX_TUNNELS {
                    break;
                }
                let tid = tunnels.len() as TunnelId;
                self.name(&t.name, "tunnel");
                if let Some((first, _, _)) = tunnel_names.get(t.name.get_ref().as_str()) {
                    let first = self.src.pos(first.start);
                    self.err(
                        &t.name.span(),
                        format!("duplicate tunnel name `{}` (first defined at {first})", t.name.get_ref()),
                    );
                } else {
                    tunnel_names.insert(t.name.get_ref(), (t.name.span(), id, tid));
                }
                let tunnel = self.tunnel(t, id, tid, &local);
                let entry = (remote_addr(tunnel_remote(&tunnel.gre)), tunnel.gre.key, tid);
                if let Some(first) = index_of.get(&(entry.0, entry.1)) {
                    let first = self.src.pos(first.start);
                    self.err(
                        &t.remote.span(),
                        format!(
                            "tunnel `{}` has the remote address and key of the tunnel at {first}: GRE from it \
                             could not be told apart (give one of them a `key`)",
                            t.name.get_ref()
                        ),
                    );
                }
                index_of.entry((entry.0, entry.1)).or_insert_with(|| t.remote.span());
                tunnel_index.push(entry);
                tunnels.push(tunnel);
            }
            let firewall = self.firewall(c.firewall.as_ref(), &format!("customer `{}`", c.name.get_ref()));
            let rule_base = rule_count;
            rule_count += firewall.rules().len() as u32;
            let egress =
                self.firewall(c.egress.as_ref(), &format!("customer `{}` [customer.egress]", c.name.get_ref()));
            let egress_base = rule_count;
            rule_count += egress.rules().len() as u32;
            let customer_dos =
                self.rules(&c.dos.rules, Action::Accept, &format!("customer `{}` [customer.dos]", c.name.get_ref()));
            let dos_base = dos_rule_count;
            dos_rule_count += customer_dos.rules().len() as u32;
            let (customer_tcp, tcp_base) = self.customer_tcp_rules(
                &mut tcp,
                &c.tcp_protection.rules,
                customers.len() as CustomerId,
                c.name.get_ref(),
            );
            customers.push(Customer {
                name: c.name.get_ref().clone(),
                firewall,
                rule_base,
                egress,
                egress_base,
                dos: customer_dos,
                dos_base,
                tcp: customer_tcp,
                tcp_base,
                routes_v4: PrefixTable::default(),
                routes_v6: PrefixTable::default(),
            });
        }
        tunnel_index.sort_unstable();

        self.check_overlaps(&mut prefixes, customers_in);
        let soft_unicast = loaded.file.soft_unicast.as_ref().and_then(|s| self.soft_unicast(s));
        let bgp = loaded.file.bgp.as_ref().map(|b| self.bgp(b.get_ref()));
        let ipfix = loaded.file.ipfix.as_ref().map(|x| self.ipfix(x.get_ref()));
        if let (Some(su), Some(section)) = (&soft_unicast, &loaded.file.soft_unicast) {
            // An address is either a customer's or shared egress, never both. `prefixes` is
            // sorted by family and start (check_overlaps): a prefix overlaps a range if it
            // contains it (one of its supernets) or starts inside it.
            let by_net: HashMap<IpNet, usize> = prefixes.iter().enumerate().map(|(i, p)| (p.net, i)).collect();
            let v4_starts: Vec<(u32, usize)> = prefixes
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match p.net {
                    IpNet::V4(n) => Some((u32::from(n.network()), i)),
                    IpNet::V6(_) => None,
                })
                .collect();
            for &(net, len) in &su.egress {
                let egress = IpNet::V4(ipnet::Ipv4Net::new(net, len).unwrap_or_default());
                let (lo, hi) = match egress {
                    IpNet::V4(n) => (u32::from(n.network()), u32::from(n.broadcast())),
                    IpNet::V6(_) => continue,
                };
                let containing = std::iter::successors(Some(egress), IpNet::supernet).find_map(|n| by_net.get(&n));
                let first_inside = v4_starts.partition_point(|&(start, _)| start < lo);
                let inside = v4_starts.get(first_inside).filter(|&&(start, _)| start <= hi).map(|(_, i)| i);
                if let Some(p) = containing.or(inside).map(|&i| &prefixes[i]) {
                    let at = self.src.pos(p.span.start);
                    self.err(
                        &section.span(),
                        format!("egress prefix {egress} overlaps customer prefix {} (at {at})", p.net),
                    );
                }
            }
        }

        let mut route_groups = Vec::new();
        let mut own: Vec<std::collections::HashSet<IpNet>> = vec![Default::default(); customers_in.len()];
        for p in &prefixes {
            own[usize::from(p.customer)].insert(p.net);
        }
        for (index, section) in customers_in.iter().enumerate() {
            let id = index as CustomerId;
            let (v4, v6) =
                self.routes(section.get_ref(), id, &own[index], &tunnel_names, customers_in, &mut route_groups);
            customers[index].routes_v4 = PrefixTable::build(&v4);
            customers[index].routes_v6 = PrefixTable::build(&v6);
        }

        let (mut c4, mut c6) = (Vec::new(), Vec::new());
        let (mut owned_v4, mut owned_v6) = (Vec::new(), Vec::new());
        for p in &prefixes {
            match p.net {
                IpNet::V4(n) => {
                    c4.push((u32::from(n.network()), n.prefix_len(), p.customer));
                    owned_v4.push((n.network(), n.prefix_len()));
                }
                IpNet::V6(n) => {
                    c6.push((u128::from(n.network()), n.prefix_len(), p.customer));
                    owned_v6.push((n.network(), n.prefix_len()));
                }
            }
        }
        Snapshot {
            anycast,
            anycast_v6,
            frame_size,
            unmatched: server.unmatched.into(),
            gre_unsupported: server.gre_unsupported.into(),
            unbound_queue: server.unbound_queue.into(),
            mpls: server.mpls.into(),
            fragment_ipv4: server.fragment_ipv4,
            mss_clamp: server.mss_clamp,
            icmp,
            health_config,
            health: HealthTable::new(tunnels.len()),
            eth,
            next_hop,
            customers,
            customers_v4: PrefixTable::build(&c4),
            customers_v6: PrefixTable::build(&c6),
            owned_v4,
            owned_v6,
            tunnels,
            tunnel_index,
            route_groups,
            rule_count: rule_count as usize,
            dos,
            dos_rule_count: dos_rule_count as usize,
            tcp,
            soft_unicast,
            customer_prefixes: prefixes.iter().map(|p| (p.net, p.customer)).collect(),
            bgp,
            ipfix,
            membership: self.lists.membership(),
        }
    }

    fn health(&mut self, h: &config::HealthSection) -> HealthConfig {
        let ms = 1_000_000u64;
        let mut check = |v: &Spanned<u64>, what: &str, range: std::ops::RangeInclusive<u64>| -> u64 {
            if range.contains(v.get_ref()) {
                *v.get_ref()
            } else {
                self.err(&v.span(), format!("{what} {} is not in {}..={}", v.get_ref(), range.start(), range.end()));
                *range.start()
            }
        };
        let interval = check(&h.interval_ms, "interval_ms", 10..=3_600_000);
        let timeout = check(&h.timeout_ms, "timeout_ms", 1..=3_600_000);
        let down = check(&h.down_after, "down_after", 1..=100) as u32;
        let up = check(&h.up_after, "up_after", 1..=100) as u32;
        if timeout > interval && h.timeout_ms.span() != (0..0) {
            self.err(&h.timeout_ms.span(), format!("timeout_ms {timeout} is longer than interval_ms {interval}"));
        }
        HealthConfig { interval_ns: interval * ms, timeout_ns: timeout * ms, down_after: down, up_after: up }
    }

    /// One tunnel: outer addresses from its remote's family, MTU, MSS, interface.
    fn tunnel(&mut self, t: &config::TunnelSection, customer: CustomerId, id: TunnelId, local: &Locals) -> Tunnel {
        let endpoints = match t.remote.get_ref().parse::<IpAddr>() {
            Ok(IpAddr::V4(remote)) => Endpoints::V4 { local: local.v4, remote },
            Ok(IpAddr::V6(remote)) => match local.v6 {
                Some(v6) => Endpoints::V6 { local: v6, remote },
                None => {
                    self.err(&t.remote.span(), "a tunnel with an IPv6 remote needs `anycast_v6` in [server]");
                    Endpoints::V6 { local: Ipv6Addr::UNSPECIFIED, remote }
                }
            },
            Err(_) => {
                let why = format!("tunnel remote `{}` is not an IP address", t.remote.get_ref());
                self.err(&t.remote.span(), why);
                Endpoints::V4 { local: local.v4, remote: Ipv4Addr::UNSPECIFIED }
            }
        };
        let gre =
            GreTunnel { endpoints, key: t.key.as_ref().map(|k| *k.get_ref()), checksum: t.checksum, ttl: OUTER_TTL };
        let max_mtu = 65535 - gre.overhead() as u32;
        let mtu = match &t.mtu {
            None => UNDERLAY_MTU - gre.overhead() as u32,
            Some(m) if (68..=max_mtu).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                self.err(&m.span(), format!("tunnel mtu {} is not in 68..={max_mtu}", m.get_ref()));
                UNDERLAY_MTU - gre.overhead() as u32
            }
        };
        // The MSS leaves room for the IP and TCP headers inside the tunnel MTU.
        let derived = (mtu.saturating_sub(40)).min(65535) as u16;
        let mss_v4 = match &t.mss {
            None => derived,
            Some(m) if (88..=derived).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                self.err(&m.span(), format!("mss {} is not in 88..={derived} (the tunnel MTU less 40)", m.get_ref()));
                derived
            }
        };
        let interface = t.interface.as_ref().and_then(|i| self.interface(i));
        Tunnel {
            id,
            name: t.name.get_ref().clone(),
            customer,
            gre,
            mtu,
            mss_v4,
            mss_v6: mss_v4.saturating_sub(20).max(60),
            interface,
        }
    }

    /// `address/31` or `address/30`: our side of a tunnel's inner network, and the peer's.
    fn interface(&mut self, s: &Spanned<String>) -> Option<TunnelInterface> {
        let bad = |b: &mut Self, why: &str| {
            b.err(&s.span(), format!("interface `{}`: {why} (write our side as `10.213.0.0/31`)", s.get_ref()));
            None
        };
        let Some((addr, len)) = s.get_ref().split_once('/') else { return bad(self, "missing /31 or /30") };
        let Ok(ours) = addr.parse::<Ipv4Addr>() else { return bad(self, "not an IPv4 address") };
        let o = u32::from(ours);
        let peer = match len {
            "31" => o ^ 1,
            "30" => match o & 3 {
                1 => o + 1,
                2 => o - 1,
                _ => return bad(self, "in a /30 our side is the first or second host address"),
            },
            _ => return bad(self, "the inner network is a /31 or a /30"),
        };
        Some(TunnelInterface { ours, peer: Ipv4Addr::from(peer) })
    }

    /// Checks that `name` is a name transitd can print anywhere (`limits::check_name`);
    /// `what` says what it names.
    pub(crate) fn name(&mut self, name: &Spanned<String>, what: &str) {
        if let Err(why) = crate::limits::check_name(name.get_ref()) {
            let shown = crate::limits::excerpt(name.get_ref(), 40);
            self.err(&name.span(), format!("{what} name {shown:?} {why}"));
        }
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

    /// Customer prefixes must be disjoint, within a customer and across customers.
    fn check_overlaps(&mut self, prefixes: &mut [OwnedPrefix], customers: &[Spanned<config::CustomerSection>]) {
        let bounds = |n: &IpNet| -> (u8, u128, u128) {
            match n {
                IpNet::V4(n) => (4, u32::from(n.network()).into(), u32::from(n.broadcast()).into()),
                IpNet::V6(n) => (6, u128::from(n.network()), u128::from(n.broadcast())),
            }
        };
        // Widest first among equal starts, so that it is the one left open.
        prefixes.sort_by_key(|p| (bounds(&p.net).0, bounds(&p.net).1, p.net.prefix_len()));
        // Prefixes are aligned, so two overlap only if one contains the other: sweeping in
        // start order, each prefix is checked against the widest one still open.
        let mut open: Option<usize> = None;
        for i in 0..prefixes.len() {
            let (fam, lo, hi) = bounds(&prefixes[i].net);
            if let Some(o) = open {
                let (ofam, _, ohi) = bounds(&prefixes[o].net);
                if ofam == fam && lo <= ohi {
                    let (earlier, later) =
                        if prefixes[o].span.start < prefixes[i].span.start { (o, i) } else { (i, o) };
                    let name = |c: CustomerId| customers[c as usize].get_ref().name.get_ref().clone();
                    let message = format!(
                        "prefix {} of customer `{}` overlaps {} of customer `{}` (at {})",
                        prefixes[later].net,
                        name(prefixes[later].customer),
                        prefixes[earlier].net,
                        name(prefixes[earlier].customer),
                        self.src.pos(prefixes[earlier].span.start)
                    );
                    let span = prefixes[later].span.clone();
                    self.err(&span, message);
                    if hi <= ohi {
                        continue; // still inside the open prefix
                    }
                }
            }
            open = Some(i);
        }
    }

    /// The customer's routes: prefixes inside its own, each to tunnels of its own, grouped
    /// by prefix into route groups ordered by priority.
    #[allow(clippy::type_complexity)]
    fn routes(
        &mut self,
        c: &config::CustomerSection,
        id: CustomerId,
        own: &std::collections::HashSet<IpNet>,
        tunnels: &HashMap<&str, (Range<usize>, CustomerId, TunnelId)>,
        customers: &[Spanned<config::CustomerSection>],
        groups: &mut Vec<Box<[NextTunnel]>>,
    ) -> (Vec<(u32, u8, RouteGroupId)>, Vec<(u128, u8, RouteGroupId)>) {
        let mut by_prefix: Vec<(IpNet, Vec<NextTunnel>)> = Vec::new();
        let mut group_of: HashMap<IpNet, usize> = HashMap::new();
        let mut seen: HashMap<(IpNet, TunnelId), Range<usize>> = HashMap::new();
        for r in &c.routes {
            let r = r.get_ref();
            let net = self.prefix(&r.prefix);
            let tunnel = match tunnels.get(r.tunnel.get_ref().as_str()) {
                None => {
                    self.err(&r.tunnel.span(), format!("unknown tunnel `{}`", r.tunnel.get_ref()));
                    None
                }
                Some((_, owner, _)) if *owner != id => {
                    let owner = customers[*owner as usize].get_ref().name.get_ref();
                    self.err(
                        &r.tunnel.span(),
                        format!(
                            "tunnel `{}` belongs to customer `{owner}`, not `{}`",
                            r.tunnel.get_ref(),
                            c.name.get_ref()
                        ),
                    );
                    None
                }
                Some((_, _, tid)) => Some(*tid),
            };
            let weight = match &r.weight {
                None => 1,
                Some(w) if *w.get_ref() >= 1 => *w.get_ref(),
                Some(w) => {
                    self.err(&w.span(), "weight must be at least 1");
                    1
                }
            };
            let priority = r.priority.as_ref().map_or(DEFAULT_PRIORITY, |p| *p.get_ref());
            let Some(net) = net else { continue };
            // Inside one of the customer's prefixes: the route itself or one of its supernets.
            let inside = std::iter::successors(Some(net), IpNet::supernet).any(|n| own.contains(&n));
            if !inside {
                self.err(
                    &r.prefix.span(),
                    format!("route {net} is outside customer `{}`'s prefixes", c.name.get_ref()),
                );
                continue;
            }
            let Some(tid) = tunnel else { continue };
            if let Some(first) = seen.get(&(net, tid)) {
                let first = self.src.pos(first.start);
                self.err(
                    &r.prefix.span(),
                    format!("duplicate route {net} via `{}` (first at {first})", r.tunnel.get_ref()),
                );
                continue;
            }
            seen.insert((net, tid), r.prefix.span());
            let next = NextTunnel { tunnel: tid, priority, weight };
            match group_of.get(&net) {
                Some(&i) => by_prefix[i].1.push(next),
                None => {
                    group_of.insert(net, by_prefix.len());
                    by_prefix.push((net, vec![next]));
                }
            }
        }
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (net, mut list) in by_prefix {
            // Stable: equal priorities keep the order they were written in.
            list.sort_by_key(|n| n.priority);
            let gid = groups.len() as RouteGroupId;
            groups.push(list.into_boxed_slice());
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), n.prefix_len(), gid)),
                IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len(), gid)),
            }
        }
        (v4, v6)
    }

    /// A firewall-shaped rule list (`[customer.firewall]`, `[customer.egress]`) named `scope`
    /// in errors.
    fn firewall(&mut self, fw: Option<&Spanned<config::FirewallSection>>, scope: &str) -> RuleSet {
        let Some(fw) = fw else { return accept_all() };
        let fw = fw.get_ref();
        let default = match *fw.default.get_ref() {
            ActionName::Accept => Action::Accept,
            ActionName::Drop => Action::Drop,
            ActionName::RateLimit => {
                self.err(
                    &fw.default.span(),
                    "the default action is accept or drop (a rate limit needs a rule with a bucket)",
                );
                Action::Accept
            }
        };
        self.rules(&fw.rules, default, scope)
    }

    /// Compiles an ordered rule list (firewall or DoS) with `default` for packets no rule
    /// selects; `scope` names the list in errors.
    pub(crate) fn rules(&mut self, sections: &[Spanned<config::RuleSection>], default: Action, scope: &str) -> RuleSet {
        if !self.bounded(sections, crate::limits::MAX_RULES_PER_LIST, &format!("rules in {scope}")) {
            return accept_all();
        }
        let texts: Vec<RuleText<'_>> = sections
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let r = r.get_ref();
                let name = r.name.as_ref().map_or_else(|| format!("rule-{}", i + 1), |n| n.get_ref().clone());
                RuleText { name: r.name.as_ref(), expr: &r.expr, action: self.action(r, &name), mode: mode(r.mode) }
            })
            .collect();
        self.compile_rules(&texts, default, scope)
    }

    /// Compiles rules given as text (each name checked and unique in `scope`, each
    /// expression parsed, errors at their `file:line:col`).
    pub(crate) fn compile_rules(&mut self, texts: &[RuleText<'_>], default: Action, scope: &str) -> RuleSet {
        let mut rules = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut spans = Vec::new();
        for (i, r) in texts.iter().enumerate() {
            if let Some(n) = r.name {
                self.name(n, "rule");
            }
            let name = r.name.map_or_else(|| format!("rule-{}", i + 1), |n| n.get_ref().clone());
            let name_span = r.name.map_or_else(|| r.expr.span(), |n| n.span());
            if let Some(first) = names.get(&name) {
                let first = self.src.pos(first.start);
                self.err(&name_span, format!("duplicate rule name `{name}` in {scope} (first at {first})"));
            } else {
                names.insert(name.clone(), name_span);
            }
            let (action, rule_mode) = (r.action, r.mode);
            match classifier::parse_with(r.expr.get_ref(), &mut self.lists) {
                Ok(expr) => {
                    spans.push(r.expr.span());
                    rules.push(Rule { name, expr, action, mode: rule_mode });
                }
                Err(e) => {
                    let at = self.expr_offset(r.expr, e.span.map_or(0, |s| s.start));
                    let rendered = e.render(r.expr.get_ref()).replace('\n', "\n    ");
                    self.errors.push(ConfigError::new(self.src.pos(at), format!("rule `{name}`: {rendered}")));
                }
            }
        }
        // The compiler's index counts the rules that parsed, as `spans` and `rules` do.
        let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
        match RuleSet::compile(rules, default) {
            Ok(set) => set,
            Err(e) => {
                let span = spans.get(e.index).cloned().unwrap_or(0..0);
                let name = names.get(e.index).map_or("?", String::as_str);
                self.err(&span, format!("rule `{name}` in {scope}: {}", e.error));
                accept_all()
            }
        }
    }

    /// A rule's action; `rate-limit` needs a known bucket, the others none.
    fn action(&mut self, r: &config::RuleSection, name: &str) -> Action {
        match (*r.action.get_ref(), &r.bucket) {
            (ActionName::Accept, None) => Action::Accept,
            (ActionName::Drop, None) => Action::Drop,
            (ActionName::RateLimit, Some(b)) => match self.buckets.iter().position(|n| n == b.get_ref()) {
                Some(i) => Action::RateLimit(i as u16),
                None => {
                    self.err(
                        &b.span(),
                        format!("rule `{name}`: unknown bucket `{}` (declare it in [[dos.bucket]])", b.get_ref()),
                    );
                    Action::Drop
                }
            },
            (ActionName::RateLimit, None) => {
                self.err(&r.action.span(), format!("rule `{name}`: a rate-limit rule needs `bucket = \"NAME\"`"));
                Action::Drop
            }
            (_, Some(b)) => {
                self.err(&b.span(), format!("rule `{name}`: only a rate-limit rule takes a bucket"));
                Action::Drop
            }
        }
    }

    /// The file offset of byte `offset` of a rule expression written as a TOML string; the
    /// string's own start where escapes or a multi-line string make that uncertain.
    fn expr_offset(&self, expr: &Spanned<String>, offset: usize) -> usize {
        let span = expr.span();
        let raw = self.src.text().get(span.clone()).unwrap_or("");
        let quoted = |q: char| raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q) && !raw.starts_with("\"\"\"");
        if (quoted('"') || quoted('\'')) && &raw[1..raw.len() - 1] == expr.get_ref() {
            span.start + 1 + offset
        } else {
            span.start
        }
    }
}

/// One rule as written, whatever list it is in.
pub(crate) struct RuleText<'a> {
    pub name: Option<&'a Spanned<String>>,
    pub expr: &'a Spanned<String>,
    pub action: Action,
    pub mode: Mode,
}

fn accept_all() -> RuleSet {
    RuleSet::compile(Vec::new(), Action::Accept).expect("an empty rule set always compiles")
}

fn mode(m: ModeName) -> Mode {
    match m {
        ModeName::Enforce => Mode::Enforce,
        ModeName::Monitor => Mode::Monitor,
    }
}
