//! Customers and their tunnels: names, prefixes, rule lists, the tunnels' endpoints, MTUs
//! and interfaces, and the index GRE from a customer's router is found by. Routes come
//! after, once every tunnel is known (`routes.rs`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use classifier::Action;
use gre::{Endpoints, GreTunnel};
use ipnet::IpNet;
use toml::Spanned;

use super::{
    Builder, Customer, CustomerId, OUTER_TTL, OwnedPrefix, RemoteAddr, TcpProtection, Tunnel, TunnelId,
    TunnelInterface, UNDERLAY_MTU, remote_addr,
};
use crate::config::{self, CustomerSection};
use crate::lpm::IpPrefixTable;

/// Our own addresses, for tunnel outer sources.
pub(super) struct Locals {
    pub v4: Ipv4Addr,
    pub v6: Option<Ipv6Addr>,
}

/// A tunnel's remote address.
pub(super) fn tunnel_remote(gre: &GreTunnel) -> IpAddr {
    match gre.endpoints {
        Endpoints::V4 { remote, .. } => IpAddr::V4(remote),
        Endpoints::V6 { remote, .. } => IpAddr::V6(remote),
    }
}

/// What the customer sections compile to, before their routes.
pub(super) struct Customers<'c> {
    pub customers: Vec<Customer>,
    pub tunnels: Vec<Tunnel>,
    /// Every customer prefix, with where it was written.
    pub prefixes: Vec<OwnedPrefix>,
    /// Tunnel name to where it was defined, its customer and its id.
    pub tunnel_names: HashMap<&'c str, (Range<usize>, CustomerId, TunnelId)>,
    /// `(remote, key, tunnel)`, sorted.
    pub tunnel_index: Vec<(RemoteAddr, Option<u32>, TunnelId)>,
    /// Firewall and egress rules so far (the next customer's first rule index).
    pub rule_count: u32,
    /// The tunnels' distinct remote addresses, and how many of each family (IPv4, IPv6).
    remotes: HashSet<RemoteAddr>,
    remotes_per_family: (usize, usize),
}

impl Builder<'_> {
    /// The customers within the bounds on customers and tunnels (ids are 16 bits); what lies
    /// past them is reported, and never compiled.
    pub(super) fn bounded_customers<'c>(
        &mut self,
        all: &'c [Spanned<CustomerSection>],
    ) -> &'c [Spanned<CustomerSection>] {
        self.bounded(all, crate::limits::MAX_CUSTOMERS, "customers", "one configuration");
        let tunnel_count: usize = all.iter().map(|c| c.get_ref().tunnels.len()).sum();
        if tunnel_count > crate::limits::MAX_TUNNELS {
            let first = all.first().map_or(0..0, |c| c.span());
            self.err(
                &first,
                format!("{tunnel_count} tunnels: at most {} in one configuration", crate::limits::MAX_TUNNELS),
            );
        }
        &all[..all.len().min(crate::limits::MAX_CUSTOMERS)]
    }

    /// Every customer: its name, prefixes, tunnels and rule lists (DoS rules counted on from
    /// `dos_rule_count`, TCP protection rules added to `tcp`).
    pub(super) fn customers<'c>(
        &mut self,
        sections: &'c [Spanned<CustomerSection>],
        local: &Locals,
        dos_rule_count: &mut u32,
        tcp: &mut TcpProtection,
    ) -> Customers<'c> {
        let mut out = Customers {
            customers: Vec::new(),
            tunnels: Vec::new(),
            prefixes: Vec::new(),
            tunnel_names: HashMap::new(),
            tunnel_index: Vec::new(),
            rule_count: 0,
            remotes: HashSet::new(),
            remotes_per_family: (0, 0),
        };
        let mut customer_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut index_of: HashMap<(RemoteAddr, Option<u32>), Range<usize>> = HashMap::new();
        // Prefixes per family so far (the XDP program's map bounds them).
        let mut prefixes = (0, 0);
        for (index, section) in sections.iter().enumerate() {
            let c = section.get_ref();
            let id = index as CustomerId;
            self.name(&c.name, "customer");
            self.unique(&mut customer_names, &c.name, "customer");
            if c.prefixes.is_empty() {
                let name = c.name.get_ref();
                self.warn(&c.name.span(), format!("customer `{name}` has no prefixes: no traffic is routed to it"));
            }
            for p in &c.prefixes {
                let net = self.prefix(p);
                if let Some(why) = net.and_then(not_for_hosts) {
                    self.err(
                        &p.span(),
                        format!("customer prefix `{}` is {why}: no customer's hosts are there", p.get_ref()),
                    );
                    continue;
                }
                if let Some(net) = net {
                    let max = crate::limits::MAX_PREFIXES_PER_FAMILY;
                    self.count_per_family(&mut prefixes, net.addr().is_ipv4(), max, &p.span(), "customer prefixes");
                    out.prefixes.push(OwnedPrefix { net, customer: id, span: p.span() });
                }
            }
            for t in &c.tunnels {
                if out.tunnels.len() >= crate::limits::MAX_TUNNELS {
                    break;
                }
                self.customer_tunnel(t.get_ref(), id, local, &mut index_of, &mut out);
            }
            let customer = self.customer(c, id, &mut out.rule_count, dos_rule_count, tcp);
            out.customers.push(customer);
        }
        self.apart_in_case(sections.iter().map(|c| &c.get_ref().name), "customer");
        self.apart_in_case(sections.iter().flat_map(|c| &c.get_ref().tunnels).map(|t| &t.get_ref().name), "tunnel");
        out.tunnel_index.sort_unstable();
        out
    }

    /// One tunnel of customer `id`: its name unique, its remote address and key telling its
    /// GRE apart from every other tunnel's.
    fn customer_tunnel<'c>(
        &mut self,
        t: &'c config::TunnelSection,
        id: CustomerId,
        local: &Locals,
        index_of: &mut HashMap<(RemoteAddr, Option<u32>), Range<usize>>,
        out: &mut Customers<'c>,
    ) {
        let tid = out.tunnels.len() as TunnelId;
        self.name(&t.name, "tunnel");
        if let Some((first, _, _)) = out.tunnel_names.get(t.name.get_ref().as_str()) {
            let first = self.src.pos(first.start);
            self.err(
                &t.name.span(),
                format!("duplicate tunnel name `{}` (first defined at {first})", t.name.get_ref()),
            );
        } else {
            out.tunnel_names.insert(t.name.get_ref(), (t.name.span(), id, tid));
        }
        let tunnel = self.tunnel(t, id, tid, local);
        let entry = (remote_addr(tunnel_remote(&tunnel.gre)), tunnel.gre.key, tid);
        // (0.0.0.0 stands for a remote already refused.)
        let refused = tunnel_remote(&tunnel.gre).is_unspecified();
        if let Some(first) = index_of.get(&(entry.0, entry.1)).filter(|_| !refused) {
            let first = self.src.pos(first.start);
            let fix = if entry.1.is_some() { "give them different keys" } else { "give one of them a `key`" };
            self.err(
                &t.remote.span(),
                format!(
                    "tunnel `{}` has the remote address and key of the tunnel at {first}: GRE from it \
                     could not be told apart ({fix})",
                    t.name.get_ref()
                ),
            );
        }
        // The XDP program's map of tunnel remotes holds a reload's old and new ones at once.
        let remote = tunnel_remote(&tunnel.gre);
        if out.remotes.insert(entry.0) {
            let max = crate::limits::MAX_REMOTES_PER_FAMILY;
            let counts = &mut out.remotes_per_family;
            self.count_per_family(counts, remote.is_ipv4(), max, &t.remote.span(), "tunnel remote addresses");
        }
        index_of.entry((entry.0, entry.1)).or_insert_with(|| t.remote.span());
        out.tunnel_index.push(entry);
        out.tunnels.push(tunnel);
    }

    /// One customer's rule lists, numbered on from `rule_count` and `dos_rule_count`; its
    /// routes are filled in later.
    fn customer(
        &mut self,
        c: &CustomerSection,
        id: CustomerId,
        rule_count: &mut u32,
        dos_rule_count: &mut u32,
        tcp: &mut TcpProtection,
    ) -> Customer {
        let name = c.name.get_ref();
        let firewall = self.firewall(c.firewall.as_ref(), &format!("customer `{name}`"));
        let rule_base = *rule_count;
        *rule_count += firewall.rules().len() as u32;
        let egress = self.firewall(c.egress.as_ref(), &format!("customer `{name}` [customer.egress]"));
        let egress_base = *rule_count;
        *rule_count += egress.rules().len() as u32;
        let dos = self.rules(&c.dos.rules, Action::Accept, &format!("customer `{name}` [customer.dos]"));
        let dos_base = *dos_rule_count;
        *dos_rule_count += dos.rules().len() as u32;
        let (tcp_rules, tcp_base) = self.customer_tcp_rules(tcp, &c.tcp_protection.rules, id, name);
        let prefixes: Vec<&String> = c.prefixes.iter().map(|p| p.get_ref()).collect();
        let tcp_coverage = super::tcp::coverage(&c.tcp_protection.rules, (tcp.coverage, prefixes));
        let mut tcp_lists = tcp.lists.clone();
        let read = &mut self.tcp_masked_ranges_read;
        tcp_lists.extend(super::tcp::named_lists(&c.tcp_protection.rules, &self.lists, read));
        Customer {
            name: name.clone(),
            vrf_id: 0, // once every name is known (`vrf_ids`)
            tcp_lists,
            tcp_lists_version: super::tcp::new_lists_version(),
            firewall,
            rule_base,
            egress,
            egress_base,
            dos,
            dos_base,
            tcp: tcp_rules,
            tcp_base,
            tcp_coverage,
            routes: IpPrefixTable::default(),
        }
    }

    /// Counts one more of `what` in its address family (`counts`: IPv4, IPv6), against
    /// `max` per family (the XDP program's maps): the first past it is reported, at `span`.
    fn count_per_family(
        &mut self,
        counts: &mut (usize, usize),
        is_ipv4: bool,
        max: usize,
        span: &Range<usize>,
        what: &str,
    ) {
        let family = if is_ipv4 { &mut counts.0 } else { &mut counts.1 };
        *family += 1;
        if *family == max + 1 {
            self.err(span, format!("more than {max} {what} of this family, the most one configuration may hold"));
        }
    }

    /// One tunnel: outer addresses from its remote's family, MTU, MSS, interface.
    pub(super) fn tunnel(
        &mut self,
        t: &config::TunnelSection,
        customer: CustomerId,
        id: TunnelId,
        local: &Locals,
    ) -> Tunnel {
        // A remote refused is said once, and stands as 0.0.0.0 after (no clash, no family).
        let remote = match t.remote.get_ref().parse::<IpAddr>() {
            Err(_) => {
                self.err(&t.remote.span(), format!("tunnel remote `{}` is not an IP address", t.remote.get_ref()));
                None
            }
            // GRE to such an address reaches no router, or comes back to us.
            Ok(remote)
                if !super::is_host_address(remote)
                    || remote == IpAddr::V4(local.v4)
                    || Some(remote) == local.v6.map(IpAddr::V6) =>
            {
                let hint = super::mapped_hint(remote);
                let why = format!("tunnel remote `{remote}` is not a router's address (ours, or not one host's){hint}");
                self.err(&t.remote.span(), why);
                None
            }
            Ok(remote) => Some(remote),
        };
        let endpoints = match remote {
            Some(IpAddr::V4(remote)) => Endpoints::V4 { local: local.v4, remote },
            Some(IpAddr::V6(remote)) => match local.v6 {
                Some(v6) => Endpoints::V6 { local: v6, remote },
                None => {
                    self.err(&t.remote.span(), "a tunnel with an IPv6 remote needs `anycast_v6` in [server]");
                    Endpoints::V6 { local: Ipv6Addr::UNSPECIFIED, remote }
                }
            },
            None => Endpoints::V4 { local: local.v4, remote: Ipv4Addr::UNSPECIFIED },
        };
        let gre =
            GreTunnel { endpoints, key: t.key.as_ref().map(|k| *k.get_ref()), checksum: t.checksum, ttl: OUTER_TTL };
        let max_mtu = 65535 - gre.overhead() as u32;
        let mtu = match &t.mtu {
            None => UNDERLAY_MTU - gre.overhead() as u32,
            Some(m) => super::within(m, 68..=max_mtu).unwrap_or_else(|| {
                self.err(&m.span(), format!("tunnel mtu {} is not in 68..={max_mtu}", m.get_ref()));
                UNDERLAY_MTU - gre.overhead() as u32
            }),
        };
        // The MSS leaves room for the IP and TCP headers inside the tunnel MTU.
        let derived = (mtu.saturating_sub(40)).min(65535) as u16;
        let mss_v4 = match &t.mss {
            None => derived,
            Some(m) if derived < 88 => {
                let why = format!(
                    "mss {} cannot be set: the tunnel MTU {mtu} leaves {derived} bytes after the IP and TCP \
                     headers, under the 88 an mss may be (leave it out: {derived} is used)",
                    m.get_ref()
                );
                self.err(&m.span(), why);
                derived
            }
            Some(m) => super::within(m, 88..=derived).unwrap_or_else(|| {
                self.err(&m.span(), format!("mss {} is not in 88..={derived} (the tunnel MTU less 40)", m.get_ref()));
                derived
            }),
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

    /// A tunnel's `interface`, or an error at it.
    fn interface(&mut self, s: &Spanned<String>) -> Option<TunnelInterface> {
        parse_interface(s.get_ref())
            .map_err(|why| {
                self.err(&s.span(), format!("interface `{}`: {why} (write our side as `10.213.0.0/31`)", s.get_ref()))
            })
            .ok()
    }
}

/// `address/31` or `address/30`: our side of a tunnel's inner network, and the peer's.
pub(super) fn parse_interface(text: &str) -> Result<TunnelInterface, &'static str> {
    let (addr, len) = text.split_once('/').ok_or("missing /31 or /30")?;
    let ours = addr.parse::<Ipv4Addr>().map_err(|_| "not an IPv4 address")?;
    let o = u32::from(ours);
    let peer = match len {
        "31" => o ^ 1,
        "30" => match o & 3 {
            1 => o + 1,
            2 => o - 1,
            _ => return Err("in a /30 our side is the first or second host address"),
        },
        _ => return Err("the inner network is a /31 or a /30"),
    };
    Ok(TunnelInterface { ours, peer: Ipv4Addr::from(peer) })
}

/// Why no customer's hosts can be inside `net`: it lies in address space that is not
/// unicast on the Internet (multicast, loopback, link-local, "this network", IPv4-mapped).
/// Announced, such a prefix (`224.0.0.0/4` was) draws traffic no customer can take.
pub(super) fn not_for_hosts(net: IpNet) -> Option<&'static str> {
    spaces().find_map(|(space, _, why)| space.contains(&net).then_some(why))
}

/// The space for no hosts that `net` holds (a /3 with the multicast space in it), if any:
/// with `[bgp]`, where every customer prefix is announced, such a prefix is refused too.
pub(super) fn holds_space_for_no_hosts(net: IpNet) -> Option<&'static str> {
    spaces().find_map(|(space, written, _)| net.contains(&space).then_some(written))
}

/// The destination for one link that `net` holds ([`LINK_SCOPED`]), if any: what it is,
/// and who sends there.
pub(super) fn holds_link_scoped(net: IpNet) -> Option<(&'static str, &'static str)> {
    LINK_SCOPED.iter().find_map(|&(written, what, senders)| {
        let space: IpNet = written.parse().ok()?;
        net.contains(&space).then_some((what, senders))
    })
}

/// Destinations the host receives for its link, which no router forwards (RFC 5771 §4, the
/// local network control block; RFC 1812 §5.3.5.1, the limited broadcast; RFC 4291 §2.7,
/// link-local scope; RFC 4291 §2.5.6, link-local unicast, where the host's own link-local
/// address is: the upstream router's neighbour advertisements to it), with what it is and
/// who sends there. Each lies in [`SPACES`] too.
const LINK_SCOPED: [(&str, &str, &str); 4] = [
    ("224.0.0.0/24", "224.0.0.0/24 (multicast for one link)", "OSPF, IGMP, VRRP, mDNS"),
    ("255.255.255.255/32", "255.255.255.255 (the limited broadcast address)", "DHCP"),
    ("ff02::/16", "ff02::/16 (multicast for one link)", "neighbour discovery, MLD, OSPFv3"),
    ("fe80::/10", "fe80::/10 (link-local unicast)", "neighbour discovery to the host's own address"),
];

/// [`SPACES`], each read as a network, with its text and why.
fn spaces() -> impl Iterator<Item = (IpNet, &'static str, &'static str)> {
    SPACES.iter().filter_map(|&(written, why)| Some((written.parse().ok()?, written, why)))
}

/// Address space no customer's hosts have, and why.
const SPACES: [(&str, &str); 10] = [
    ("0.0.0.0/8", "inside 0.0.0.0/8 (this network)"),
    ("127.0.0.0/8", "inside 127.0.0.0/8 (loopback)"),
    ("169.254.0.0/16", "inside 169.254.0.0/16 (link-local)"),
    ("224.0.0.0/4", "inside 224.0.0.0/4 (multicast)"),
    ("255.255.255.255/32", "the limited broadcast address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "the loopback address"),
    ("::ffff:0:0/96", "IPv4-mapped (write the IPv4 prefix)"),
    ("fe80::/10", "inside fe80::/10 (link-local)"),
    ("ff00::/8", "inside ff00::/8 (multicast)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every inner network in a /24, either length, each side: a /30's network and broadcast
    /// addresses are those ipnet computes from the text, and a /31 has none (RFC 3021).
    #[test]
    fn a_30s_network_and_broadcast_are_ipnets_and_a_31_has_none() {
        let mut accepted = 0;
        for host in 0..=255u8 {
            for len in [30u8, 31] {
                let text = format!("10.213.0.{host}/{len}");
                let Ok(interface) = parse_interface(&text) else { continue };
                accepted += 1;
                let net = ipnet::Ipv4Net::new(interface.ours, len).unwrap().trunc();
                let expected = (len == 30).then(|| [net.network(), net.broadcast()]);
                assert_eq!(interface.broadcasts(), expected, "{text}");
            }
        }
        assert_eq!(accepted, 256 + 2 * 64, "every /31 side, the two hosts of every /30");
    }

    /// No customer's hosts are in link-local space, whose addresses a router forwards nothing
    /// from or to (RFC 3927 §2.7, RFC 4291 §2.5.6): a customer prefix inside 169.254.0.0/16
    /// or fe80::/10 is refused wherever it is written, as link-local; one beside them is not.
    #[test]
    fn prefixes_inside_link_local_space_are_for_no_hosts() {
        let inside = ["169.254.0.0/16", "169.254.0.0/24", "169.254.255.255/32", "fe80::/10", "fe80::/64", "febf::/16"];
        for net in inside {
            let why = not_for_hosts(net.parse().unwrap());
            assert!(why.is_some_and(|why| why.ends_with("(link-local)")), "{net}: {why:?}");
        }
        for net in ["169.253.0.0/16", "169.255.0.0/16", "fe7f::/16", "fec0::/10"] {
            assert_eq!(not_for_hosts(net.parse().unwrap()), None, "{net}");
        }
    }
}
