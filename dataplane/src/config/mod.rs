//! The configuration file: its TOML shape, positions for error messages, and loading.
//!
//! This module only reads text into typed sections that remember where each value was
//! written. Checking meaning (overlaps, references, rule syntax) and compiling is
//! [`crate::snapshot`]'s job; both report [`ConfigError`]s that point at `file:line:col`.

mod error;
mod integer;
mod toml_errors;

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

pub use error::{ConfigError, ConfigErrors, SourceMap, SourcePos, warning_lines};
pub use integer::Integer;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This server's own settings.
    pub server: Spanned<ServerSection>,
    /// DoS mitigation: sanity checks, buckets, global rules.
    #[serde(default)]
    pub dos: DosSection,
    /// Stateful TCP protection: connections tracked from the client side.
    #[serde(default)]
    pub tcp_protection: TcpProtectionSection,
    /// Tunnel health checks.
    #[serde(default)]
    pub health: HealthSection,
    /// Soft-unicast: shared egress addresses and their return traffic.
    pub soft_unicast: Option<Spanned<SoftUnicastSection>>,
    /// Announcing what this server serves by BGP, through BIRD.
    pub bgp: Option<Spanned<BgpSection>>,
    /// Sampled flow records exported by IPFIX.
    pub ipfix: Option<Spanned<IpfixSection>>,
    /// The customers whose prefixes this server announces.
    #[serde(default, rename = "customer")]
    pub customers: Vec<Spanned<CustomerSection>>,
    /// Named lists of addresses, networks or numbers, which any rule tests with `in $name`.
    #[serde(default, rename = "list")]
    pub lists: Vec<Spanned<ListSection>>,
}

/// `[[list]]`: a named list; its members inline (`items`), from a file (`file`, one per line,
/// `#` comments), or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    /// The name rules use after `$`.
    pub name: Spanned<String>,
    /// Members: IPv4 or IPv6 addresses and CIDR networks, or numbers and ranges `a..b`.
    #[serde(default)]
    pub items: Vec<Spanned<String>>,
    /// A file of further members, relative to the configuration file's directory.
    pub file: Option<Spanned<String>>,
}

/// `[soft_unicast]`: egress addresses shared by the servers of a fleet, each owning port
/// slices; return traffic is forwarded over the backbone to its owner.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftUnicastSection {
    /// This server's name (one of `[[soft_unicast.server]]`). Left out of a configuration a
    /// fleet shares (an etcd prefix), where each server gives its own (`--this-server`).
    pub this_server: Option<Spanned<String>>,
    /// Ports per slice; default 2048. Any integer, so that the check after parsing says the
    /// range a slice takes (it must fit above `reserved_ports`), not a type's.
    pub slice_size: Option<Spanned<Integer>>,
    /// Ports below this belong to no slice (delivered in the address's data centre);
    /// default 1024.
    pub reserved_ports: Option<Spanned<u16>>,
    /// Identifies backbone GRE: the key's upper 24 bits (the low 8 carry the hop); default
    /// 0x5355 ("SU").
    pub backbone_key: Option<Spanned<Integer>>,
    /// A plan file written by `transitd plan` (relative to this file); default: the plan is
    /// made from this file alone.
    pub plan: Option<Spanned<String>>,
    /// Largest packet the backbone carries, outer headers included; default 1500. Return
    /// packets that would not fit once encapsulated get a Fragmentation Needed (DF) or are
    /// fragmented (`transitd connect` lowers its TCP MSS so that they fit).
    pub backbone_mtu: Option<Spanned<Integer>>,
    /// The data centres.
    #[serde(default, rename = "data_centre")]
    pub data_centres: Vec<Spanned<DataCentreSection>>,
    /// The servers.
    #[serde(default, rename = "server")]
    pub servers: Vec<Spanned<ServerEntrySection>>,
    /// The egress address ranges.
    #[serde(default, rename = "egress")]
    pub egress: Vec<Spanned<EgressSection>>,
}

/// `[[soft_unicast.data_centre]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCentreSection {
    /// Name (`lhr`).
    pub name: Spanned<String>,
    /// The backbone address other data centres send its return traffic to.
    pub backbone: Spanned<String>,
}

/// `[[soft_unicast.server]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntrySection {
    /// Name, unique in the fleet.
    pub name: Spanned<String>,
    /// Its data centre.
    pub data_centre: Spanned<String>,
    /// Its own backbone address.
    pub backbone: Spanned<String>,
}

/// `[[soft_unicast.egress]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// IPv4 prefix of egress addresses.
    pub prefix: Spanned<String>,
    /// The data centre that uses them.
    pub data_centre: Spanned<String>,
    /// ISO 3166-1 alpha-2 country they geolocate to (`GB`).
    pub country: Spanned<String>,
    /// ISO 3166-2 region (`GB-ENG`).
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// City.
    #[serde(default)]
    pub city: Option<Spanned<String>>,
    /// Trust class (`trusted`, `untrusted`, ...).
    #[serde(default)]
    pub class: String,
}

/// `[bgp]`: `transitd run` keeps a BIRD include file of static routes for what the server
/// serves (anycast, customers, soft-unicast egress) and reconfigures BIRD when it changes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSection {
    /// BIRD's control socket.
    #[serde(default = "default_bird_socket")]
    pub bird_socket: Spanned<String>,
    /// The file BIRD's configuration includes (transitd writes it whole).
    #[serde(default = "default_bird_include")]
    pub bird_include: Spanned<String>,
    /// Milliseconds without a sign of life (a worker's, the supervisor's) after which
    /// everything is withdrawn.
    #[serde(default = "default_withdraw_after_ms")]
    pub withdraw_after_ms: Spanned<Integer>,
    /// Milliseconds a run must have been well, after a withdrawal, before it announces
    /// again (0: at once).
    #[serde(default = "default_announce_after_ms")]
    pub announce_after_ms: Spanned<Integer>,
    /// Milliseconds a stop (SIGTERM) goes on announcing, every route marked GRACEFUL_SHUTDOWN
    /// (RFC 8326), while the workers forward, before it withdraws (0: withdraw at once).
    #[serde(default = "default_graceful_shutdown_ms")]
    pub graceful_shutdown_ms: Spanned<Integer>,
    /// Withdraw a customer prefix while every tunnel its routes take is down (not unless
    /// set); where it is written, for what is said of it.
    pub withdraw_customers_without_tunnels: Option<Spanned<bool>>,
    /// Milliseconds a customer prefix a reload removes stays redirected, its traffic
    /// dropped as `withdrawn_prefix`, while upstreams converge on its withdrawal (0: none).
    #[serde(default = "default_withdrawn_grace_ms")]
    pub withdrawn_grace_ms: Spanned<Integer>,
}

fn default_bird_socket() -> Spanned<String> {
    Spanned::new(0..0, "/run/bird/bird.ctl".to_string())
}

fn default_bird_include() -> Spanned<String> {
    Spanned::new(0..0, "/run/transitd/bird.conf".to_string())
}

fn default_withdraw_after_ms() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(1000))
}

fn default_announce_after_ms() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(5000))
}

fn default_graceful_shutdown_ms() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(5000))
}

fn default_withdrawn_grace_ms() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(60_000))
}

/// `[ipfix]`: one packet in `sample` is sampled by the workers and its flow (5-tuple,
/// customer, verdict and reason) exported to `collector` by IPFIX over UDP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfixSection {
    /// The collector, `address:port` (UDP; IPFIX's port is 4739).
    pub collector: Spanned<String>,
    /// Sample one packet in this many (1: every packet).
    #[serde(default = "default_ipfix_sample")]
    pub sample: Spanned<Integer>,
    /// The Observation Domain ID of the messages: 1 unless set (RFC 7011 §3.1 keeps 0 for
    /// messages of no one domain, such as an exporter's own statistics).
    #[serde(default = "default_observation_domain")]
    pub observation_domain: Spanned<Integer>,
    /// Seconds after which a flow still active is reported (and counted afresh).
    #[serde(default = "default_ipfix_active_timeout")]
    pub active_timeout_s: Spanned<Integer>,
    /// Seconds without a sampled packet after which a flow is reported and forgotten.
    #[serde(default = "default_ipfix_idle_timeout")]
    pub idle_timeout_s: Spanned<Integer>,
    /// The Private Enterprise Number of transitd's own information element (the reason).
    #[serde(default = "default_ipfix_enterprise")]
    pub enterprise_number: Spanned<Integer>,
    /// Seconds between the templates' retransmissions (RFC 7011 §8.4: configurable over UDP).
    #[serde(default = "default_ipfix_template_refresh")]
    pub template_refresh_s: Spanned<Integer>,
    /// Largest message, in bytes: the path to the collector must carry it with its IP and
    /// UDP headers unfragmented (RFC 7011 §10.3.3).
    #[serde(default = "default_ipfix_max_message")]
    pub max_message_size: Spanned<Integer>,
}

fn default_ipfix_template_refresh() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(60))
}

fn default_ipfix_max_message() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(crate::ipfix::wire::DEFAULT_MAX_MESSAGE.into()))
}

fn default_observation_domain() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(1))
}

fn default_ipfix_sample() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(1000))
}

fn default_ipfix_active_timeout() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(60))
}

fn default_ipfix_idle_timeout() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(15))
}

/// RFC 5612's Private Enterprise Number for documentation: transitd has none of its own.
fn default_ipfix_enterprise() -> Spanned<Integer> {
    Spanned::new(0..0, Integer(32473))
}

/// `[health]`: the probes sent through every tunnel that has an `interface`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Milliseconds between probes of a tunnel whose state is settled.
    pub interval_ms: Spanned<Integer>,
    /// Milliseconds a probe's reply may take; an unsettled tunnel is probed again this soon.
    pub timeout_ms: Spanned<Integer>,
    /// Failed probes in a row that take a tunnel down.
    pub down_after: Spanned<Integer>,
    /// Answered probes in a row that bring it back up.
    pub up_after: Spanned<Integer>,
    /// Unanswered probes in a row, at most, not counted as failed because this server's
    /// sockets dropped received frames while they waited.
    pub excused_max: Spanned<Integer>,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            interval_ms: Spanned::new(0..0, Integer(1000)),
            timeout_ms: Spanned::new(0..0, Integer(250)),
            down_after: Spanned::new(0..0, Integer(3)),
            up_after: Spanned::new(0..0, Integer(3)),
            excused_max: Spanned::new(0..0, Integer(3)),
        }
    }
}

/// `[dos]`: what every packet passes before any customer's firewall.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DosSection {
    /// Checks that drop packets that can never be legitimate.
    #[serde(default)]
    pub sanity: SanitySection,
    /// Keys each rate-limit bucket keeps per worker (fixed memory); default 65536.
    pub table_size: Option<Spanned<Integer>>,
    /// Token buckets for `rate-limit` rules.
    #[serde(default, rename = "bucket")]
    pub buckets: Vec<Spanned<BucketSection>>,
    /// Global rules, first match wins, before customer lookup.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleSection>>,
}

/// `[dos.sanity]`: each check on by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SanitySection {
    /// Drop "land" packets (source address equals destination).
    pub land: bool,
    /// Drop TCP with impossible flags: none of SYN, RST and ACK, SYN+FIN, SYN+RST, FIN without
    /// ACK.
    pub tcp_flags: bool,
    /// Drop IPv4 packets whose loose or strict source route still has hops to go (RFC 7126
    /// §4.3, §4.4).
    pub source_route: bool,
    /// Drop tiny first fragments, later fragments that can only overlap a first one (RFC
    /// 1858) and fragments past the largest datagram.
    pub fragments: bool,
    /// Drop IPv6 packets with more extension headers than this (0: no limit).
    pub max_ipv6_extension_headers: u8,
    /// Drop sources that can never be legitimate: `bogon_sources`, or the built-in list of
    /// special-purpose ranges (RFC 6890) when that is not given.
    pub bogons: bool,
    /// The bogon list, replacing the built-in one.
    pub bogon_sources: Option<Spanned<Vec<Spanned<String>>>>,
    /// Drop packets whose source lies in a customer's prefixes but which do not arrive
    /// through that customer's tunnel (spoofed as the customer).
    pub customer_sources: bool,
}

impl Default for SanitySection {
    fn default() -> Self {
        SanitySection {
            land: true,
            tcp_flags: true,
            source_route: true,
            fragments: true,
            max_ipv6_extension_headers: 8,
            bogons: true,
            bogon_sources: None,
            customer_sources: true,
        }
    }
}

/// `[[dos.bucket]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSection {
    /// Name, used by rules.
    pub name: Spanned<String>,
    /// What separates keys: `destination`, `source` (/24 or /48), `flow` or `rule`.
    pub key: Spanned<BucketKeyName>,
    /// Packets per second in the long run.
    pub rate: Spanned<Integer>,
    /// Packets back to back; default 1.
    pub burst: Option<Spanned<Integer>>,
}

/// A bucket key as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BucketKeyName {
    /// Destination address.
    Destination,
    /// Source /24 (IPv4) or /48 (IPv6).
    Source,
    /// 5-tuple.
    Flow,
    /// One bucket per rule.
    Rule,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The anycast IPv4 address every edge server shares: the outer source of every GRE
    /// packet sent over IPv4, the outer destination customers send GRE to, and the source of
    /// ICMP errors.
    pub anycast: Spanned<String>,
    /// The anycast IPv6 address: the same for GRE over IPv6 and ICMPv6 errors. Needed for
    /// tunnels with an IPv6 remote; without it no ICMPv6 error is sent.
    pub anycast_v6: Option<Spanned<String>>,
    /// Largest frame accepted, in bytes; default 4096. On AF_XDP a frame larger than a UMEM
    /// frame (4096 bytes, less 256 of headroom) arrives in several and is reassembled (XDP
    /// multi-buffer): set 9216 for 9000-byte jumbo frames.
    pub frame_size: Option<Spanned<Integer>>,
    /// What to do with IP traffic for no customer prefix; default `pass` (to the host).
    #[serde(default)]
    pub unmatched: NotOurs,
    /// Source MAC of encapsulated frames (default: the interface's own, or zero in replay).
    pub mac: Option<Spanned<String>>,
    /// Destination MAC of encapsulated frames: the next-hop router.
    pub next_hop_mac: Option<Spanned<String>>,
    /// The next-hop router's IP address: `transitd run` learns its MAC from the kernel's
    /// neighbour table (and keeps it fresh). Ignored when `next_hop_mac` is set.
    pub next_hop: Option<Spanned<String>>,
    /// GRE that is not ours to decapsulate (from a source no tunnel has, version 1, i.e.
    /// PPTP, or a payload other than IPv4 and IPv6) sent to the anycast address: `pass`
    /// (default) or `drop`.
    #[serde(default)]
    pub gre_unsupported: NotOurs,
    /// Owned traffic arriving on a NIC queue that has no transitd socket: `drop` (default:
    /// fail closed, so that no customer's traffic bypasses its firewall) or `pass` to the
    /// host's stack (fail open).
    #[serde(default = "fail_closed")]
    pub unbound_queue: NotOurs,
    /// MPLS-labelled frames (EtherType 0x8847, 0x8848): `pass` (default) to the host's stack,
    /// as any frame that is not IP, or `drop`, counted as `mpls`. An edge that takes transit
    /// from the Internet has no label contract with its peers, so labels arriving there are
    /// either the host's own (an MPLS-enabled host stack) or a mistake or an attack.
    #[serde(default)]
    pub mpls: NotOurs,
    /// Fragment IPv4 packets without DF that exceed a tunnel's MTU (default true); when
    /// false they are dropped as `mtu_exceeded`.
    #[serde(default = "yes")]
    pub fragment_ipv4: bool,
    /// Lower the MSS option of TCP SYNs entering or leaving a tunnel to fit its MTU
    /// (default true).
    #[serde(default = "yes")]
    pub mss_clamp: bool,
    /// Lower a tunnel's MTU for ten minutes when its underlay answers our GRE with an ICMP
    /// Fragmentation Needed or Packet Too Big (path MTU discovery, RFC 1191 and RFC 8201;
    /// default true); when false those errors are the host's.
    #[serde(default = "yes")]
    pub path_mtu_discovery: bool,
    /// Reassemble GRE that a tunnel's router fragmented (RFC 791, RFC 8200 §4.5) before
    /// decapsulating it (default true); when false its fragments are dropped as
    /// `gre_fragment` (but for the rest of a datagram whose first fragment went to the host
    /// as GRE not ours, which follows it there).
    #[serde(default = "yes")]
    pub gre_reassembly: bool,
    /// ICMP errors (fragmentation needed, packet too big, time exceeded) each worker sends
    /// per second at most; default 1000.
    pub icmp_rate: Option<Spanned<u64>>,
    /// ICMP errors a worker sends back to back; default 100.
    pub icmp_burst: Option<Spanned<Integer>>,
}

fn yes() -> bool {
    true
}

fn fail_closed() -> NotOurs {
    NotOurs::Drop
}

/// What happens to traffic that is not transitd's to forward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotOurs {
    /// Hand it to the host's kernel stack (it may be the server's own traffic).
    #[default]
    Pass,
    /// Drop it, counted under its reason.
    Drop,
}

/// `[[customer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSection {
    /// Unique name, used in counters and logs.
    pub name: Spanned<String>,
    /// The IPv4 and IPv6 prefixes the customer brought.
    #[serde(default)]
    pub prefixes: Vec<Spanned<String>>,
    /// GRE tunnels to the customer's routers.
    #[serde(default, rename = "tunnel")]
    pub tunnels: Vec<Spanned<TunnelSection>>,
    /// Which tunnel carries which of the customer's prefixes (longest prefix wins).
    #[serde(default, rename = "route")]
    pub routes: Vec<Spanned<RouteSection>>,
    /// The customer's firewall; without one, everything is accepted.
    pub firewall: Option<Spanned<FirewallSection>>,
    /// Rules for what the customer sends out through its tunnels (decapsulated); without
    /// them, everything from the customer's own prefixes is forwarded.
    pub egress: Option<Spanned<FirewallSection>>,
    /// The customer's own DoS rules, after the global ones and before its firewall.
    #[serde(default)]
    pub dos: CustomerDosSection,
    /// The customer's own TCP protection rules, after the global ones.
    #[serde(default)]
    pub tcp_protection: CustomerTcpProtectionSection,
}

/// `[tcp_protection]`: the flow table every worker keeps, and the global rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProtectionSection {
    /// Connections each worker tracks at most (fixed memory); default 262144.
    pub table_size: Option<Spanned<Integer>>,
    /// Seconds a connection whose handshake has not completed is kept; default 30.
    pub embryonic_timeout: Option<Spanned<Integer>>,
    /// Seconds an established connection is kept without a packet; default 600.
    pub idle_timeout: Option<Spanned<Integer>>,
    /// Seconds a connection the client closed (FIN) is kept; default 30.
    pub closing_timeout: Option<Spanned<Integer>>,
    /// Seconds after a worker first tracks a packet during which out-of-state ACKs and FINs
    /// are taken up as established connections (connections older than the tracking);
    /// default 120.
    pub grace_period: Option<Spanned<Integer>>,
    /// SYN challenges each worker sends per second at most; default 10000.
    pub challenge_rate: Option<Spanned<Integer>>,
    /// Seconds a source that answered a challenge is let through; default 300.
    pub authenticated_for: Option<Spanned<Integer>>,
    /// Rules, first match wins, before each customer's own.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<TcpRuleSection>>,
}

/// `[customer.tcp_protection]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerTcpProtectionSection {
    /// Rules, first match wins, after the global ones.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<TcpRuleSection>>,
}

/// `[[tcp_protection.rule]]` and `[[customer.tcp_protection.rule]]`: which TCP packets are
/// tracked, and whether out-of-state ones are dropped or only counted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRuleSection {
    /// Name for counters and logs; default `rule-N` (1-based position).
    pub name: Option<Spanned<String>>,
    /// The packets the rule covers, a Wireshark display filter (only TCP is tracked).
    #[serde(rename = "match")]
    pub expr: Spanned<String>,
    /// `monitor` (default: count what would be dropped) or `mitigate` (drop it).
    #[serde(default)]
    pub mode: TcpModeName,
    /// SYNs per second (each worker) the rule lets through before challenging new sources;
    /// none: no threshold, no challenge.
    pub syn_rate: Option<Spanned<Integer>>,
    /// SYNs back to back before the rate applies; default 1.
    pub syn_burst: Option<Spanned<Integer>>,
}

/// A TCP protection rule's mode as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpModeName {
    /// Count out-of-state packets, drop nothing.
    #[default]
    Monitor,
    /// Drop out-of-state packets.
    Mitigate,
}

/// `[customer.dos]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerDosSection {
    /// Rules, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleSection>>,
}

/// `[[customer.tunnel]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSection {
    /// Unique name across the file.
    pub name: Spanned<String>,
    /// The customer router's public IPv4 or IPv6 address (outer destination).
    pub remote: Spanned<String>,
    /// RFC 2890 key, sent on every packet and required on every packet received.
    pub key: Option<Spanned<u32>>,
    /// Largest inner packet the tunnel carries, in bytes; default 1500 minus the GRE overhead.
    pub mtu: Option<Spanned<Integer>>,
    /// Send GRE checksums; default false.
    #[serde(default)]
    pub checksum: bool,
    /// Our side of the tunnel's inner point-to-point network, as `address/31` (or `/30`):
    /// health probes go to the router's side and come back to ours; pings to ours are
    /// answered. Without it the tunnel is not probed and always counts as up.
    pub interface: Option<Spanned<String>>,
    /// The MSS SYNs are clamped to; default the MTU less 40 (IPv4) or 60 (IPv6).
    pub mss: Option<Spanned<Integer>>,
}

/// `[[customer.route]]`: a prefix and one tunnel that carries it. Several routes for one
/// prefix share or back up each other by priority and weight, as Magic Transit's do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// A prefix inside the customer's prefixes.
    pub prefix: Spanned<String>,
    /// The tunnel (by name) that carries it.
    pub tunnel: Spanned<String>,
    /// Lower is preferred: traffic takes the healthy routes of the lowest priority; default 100.
    pub priority: Option<Spanned<u16>>,
    /// Share of the traffic among healthy routes of equal priority, by flow; default 1.
    pub weight: Option<Spanned<Integer>>,
}

/// `[customer.firewall]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallSection {
    /// Action for packets no rule selects; default `accept`.
    #[serde(default = "default_accept")]
    pub default: Spanned<ActionName>,
    /// Rules, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleSection>>,
}

fn default_accept() -> Spanned<ActionName> {
    Spanned::new(0..0, ActionName::Accept)
}

/// `[[customer.firewall.rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    /// Name for counters and logs; default `rule-N` (1-based position).
    pub name: Option<Spanned<String>>,
    /// The expression, a Wireshark display filter.
    #[serde(rename = "match")]
    pub expr: Spanned<String>,
    /// What to do with selected packets.
    pub action: Spanned<ActionName>,
    /// The bucket (`[[dos.bucket]]`) of a `rate-limit` rule.
    pub bucket: Option<Spanned<String>>,
    /// `enforce` (default) or `monitor`.
    #[serde(default)]
    pub mode: ModeName,
}

/// A rule action as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionName {
    /// Let the packet through.
    Accept,
    /// Drop it.
    Drop,
    /// Let it through while its bucket has tokens.
    RateLimit,
}

/// A rule mode as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeName {
    /// The action applies.
    #[default]
    Enforce,
    /// Counted only.
    Monitor,
}

/// A configuration file's text, parsed into sections, with the map for error positions.
#[derive(Debug)]
pub struct Loaded {
    /// The sections.
    pub file: ConfigFile,
    /// Text and name, for positions.
    pub source: SourceMap,
}

/// Parses `text` (named `name` in errors) into sections.
pub fn parse(name: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    parse_source(SourceMap::new(name, text))
}

/// Parses the text of `source` into sections.
pub fn parse_source(source: SourceMap) -> Result<Loaded, ConfigErrors> {
    match read_as::<ConfigFile>(&source) {
        Ok(file) => Ok(Loaded { file, source }),
        Err(e) => Err(ConfigErrors(vec![e])),
    }
}

/// The text of `source` read as `T`: a whole configuration, or a part of one that must be
/// TOML by itself (an etcd key). Its first fault is said as every configuration's is, at its
/// position, in words that say what to write.
pub fn read_as<T: serde::de::DeserializeOwned>(source: &SourceMap) -> Result<T, ConfigError> {
    toml::from_str::<T>(source.text()).map_err(|e| toml_errors::fault(source, &e))
}

/// Reads and parses the file at `path` (a file: `run` watches and reads it again).
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_with(path, crate::limits::read_text)
}

/// [`load`] for commands that read the configuration once: a pipe will do
/// ([`crate::limits::read_text_once`]).
pub fn load_once(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_with(path, crate::limits::read_text_once)
}

type ReadText = fn(&Path, u64, &'static str) -> Result<String, crate::limits::ReadError>;

fn load_with(path: &Path, read: ReadText) -> Result<Loaded, ConfigErrors> {
    let name = path.display().to_string();
    let text = read(path, crate::limits::MAX_CONFIG_BYTES, "a configuration").map_err(|e| {
        let (line, col, message) = match e {
            crate::limits::ReadError::NotUtf8 { line, col } => (line, col, "not UTF-8 text: an invalid byte".into()),
            e => (0, 0, format!("cannot read: {e}")),
        };
        ConfigErrors(vec![ConfigError::new(SourcePos { file: name.clone(), line, col }, message)])
    })?;
    parse(&name, &text)
}
