//! Where customer traffic goes: the customers' prefixes checked against each other and the
//! shared egress ranges, each customer's routes into route groups of its own tunnels, and
//! the prefix tables the pipeline and the XDP program look destinations up in.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use super::{Builder, Customer, CustomerId, DEFAULT_PRIORITY, NextTunnel, OwnedPrefix, RouteGroupId, Tunnel, TunnelId};
use crate::config::{self, CustomerSection};

/// An egress range as the section writes it: network, length and the span of its `prefix`.
pub(super) type EgressWritten = (std::net::Ipv4Addr, u8, Range<usize>);

/// The section's egress ranges that read as networks, whether or not the rest of the
/// section built: what they overlap is reported in the same pass as its other errors (a
/// country misspelt hid every overlap until it was mended).
pub(super) fn egress_written(section: Option<&Spanned<config::SoftUnicastSection>>) -> Vec<EgressWritten> {
    let Some(section) = section else { return Vec::new() };
    let read = |e: &Spanned<config::EgressSection>| {
        let net: ipnet::Ipv4Net = e.get_ref().prefix.get_ref().parse().ok()?;
        (net.trunc() == net).then(|| (net.network(), net.prefix_len(), e.get_ref().prefix.span()))
    };
    section.get_ref().egress.iter().filter_map(read).collect()
}
use crate::lpm::IpPrefixTable;

/// Tunnels by name: where each is written, its customer, its id.
type TunnelNames<'c> = HashMap<&'c str, (Range<usize>, CustomerId, TunnelId)>;

/// The smallest MTU of a link that carries IPv6 (RFC 8200 section 5).
const IPV6_MIN_MTU: u32 = 1280;

/// A prefix as its family (4 or 6) and its first and last address.
fn prefix_bounds(net: &IpNet) -> (u8, u128, u128) {
    match net {
        IpNet::V4(n) => (4, u32::from(n.network()).into(), u32::from(n.broadcast()).into()),
        IpNet::V6(n) => (6, n.network().into(), n.broadcast().into()),
    }
}

/// The overlapping pairs [`nested_pairs`] gives at most; past them it counts. Every pair is
/// a configuration error with its own message, and pairs grow as prefixes times their depth
/// (129 in IPv6): the 32,000 /128s of a /113 inside the 82 prefixes /32 to /113 holding it,
/// a 700 kB file within the bounds, were 2.6 million errors, 830 MB that `check-config` and a
/// reload held to show a screenful of them.
pub(super) const MAX_OVERLAPS_SAID: usize = 10_000;

/// The overlapping pairs among `ranges` (prefixes as [`prefix_bounds`] gives them, in any
/// order), as indices: (enclosing, enclosed), the first [`MAX_OVERLAPS_SAID`] of them, and
/// how many more there are. Prefixes are aligned, so two overlap only if one holds the
/// other: taken by family and start, widest first, each lies inside exactly the ones still
/// open on a stack of enclosing prefixes (each inside the one below it) once those that end
/// before it are closed. A copy of the prefix open on top is paired with the stack but not
/// opened itself: n copies make n - 1 pairs among themselves, not n²/2, and no prefix is
/// paired with more than one of each length (33 in IPv4, 129 in IPv6).
pub(super) fn nested_pairs(ranges: &[(u8, u128, u128)]) -> (Vec<(usize, usize)>, usize) {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    // Stable: of equal prefixes the one given first is opened.
    order.sort_by_key(|&i| (ranges[i].0, ranges[i].1, std::cmp::Reverse(ranges[i].2)));
    let mut open: Vec<usize> = Vec::new();
    let (mut pairs, mut more) = (Vec::new(), 0);
    for i in order {
        let (family, first, _) = ranges[i];
        while let Some(&o) = open.last() {
            if ranges[o].0 == family && first <= ranges[o].2 {
                break; // inside it, and so inside every one below
            }
            open.pop();
        }
        let room = MAX_OVERLAPS_SAID - pairs.len(); // never more pairs than that
        pairs.extend(open.iter().take(room).map(|&o| (o, i)));
        more += open.len().saturating_sub(room);
        if open.last().is_none_or(|&o| ranges[o] != ranges[i]) {
            open.push(i);
        }
    }
    (pairs, more)
}

impl Builder<'_> {
    /// Our own addresses (anycast, the fleet's backbone addresses), the tunnels' routers and
    /// the upstream router must lie outside every prefix this edge announces (customers' and
    /// soft-unicast egress ranges): GRE sent to a router inside one is routed back to the
    /// edge, encapsulated again, and loops until its TTL runs out; an anycast address inside
    /// one is taken for that customer's, and backbone GRE to a server's address inside one
    /// reaches whichever server is nearest the sender, not that server. The upstream router
    /// (`next_hop`) shares a link with the host: with its address inside one, the traffic
    /// between the two on that link is judged as the customer's (live, the router's pings
    /// to the host were dropped as `spoofed_customer_source`). A catch-all
    /// prefix (`0.0.0.0/0`, `::/0`: a lab's or a benchmark's customer owning everything)
    /// holds every address: a warning there, as it cannot be meant for announcing.
    pub(super) fn check_addresses_outside_prefixes(
        &mut self,
        prefixes: &[OwnedPrefix],
        egress: &[(std::net::Ipv4Addr, u8)],
        server: &config::ServerSection,
        customers: &[Spanned<CustomerSection>],
        fleet: Option<&config::SoftUnicastSection>,
    ) {
        let owned: HashMap<IpNet, &OwnedPrefix> = prefixes.iter().map(|p| (p.net, p)).collect();
        let egress: HashSet<IpNet> =
            egress.iter().filter_map(|&(a, len)| ipnet::Ipv4Net::new(a, len).ok().map(IpNet::V4)).collect();
        // `egress_too`: backbone addresses in an egress range are refused where the fleet
        // is built (`backbone_addresses`), whether or not the section built.
        let check = |b: &mut Self, text: &Spanned<String>, what: &str, egress_too: bool, why: &str| {
            let Ok(addr) = text.get_ref().parse::<std::net::IpAddr>() else { return };
            let host = IpNet::from(addr);
            for net in std::iter::successors(Some(host), IpNet::supernet) {
                if let Some(p) = owned.get(&net) {
                    let at = b.src.pos(p.span.start);
                    let name = customers.get(p.customer as usize).map_or("", |c| c.get_ref().name.get_ref().as_str());
                    let message = format!(
                        "{what} `{addr}` is inside prefix {net} of customer `{name}` (at {at}), which this edge \
                         announces: {why}"
                    );
                    if net.prefix_len() == 0 {
                        b.warn(&text.span(), message);
                    } else {
                        b.err(&text.span(), message);
                    }
                    return;
                }
                if egress_too && egress.contains(&net) {
                    let message =
                        format!("{what} `{addr}` is inside egress prefix {net}, which this edge announces: {why}");
                    b.err(&text.span(), message);
                    return;
                }
            }
        };
        const LOOPS: &str = "GRE to it would come back here";
        check(self, &server.anycast, "anycast address", true, LOOPS);
        if let Some(v6) = &server.anycast_v6 {
            check(self, v6, "anycast_v6 address", true, LOOPS);
        }
        if let Some(router) = &server.next_hop {
            let why = "the upstream router's own traffic (BGP, SSH, ping between it and this host) would be taken \
                       for the prefix's";
            check(self, router, "next_hop", true, why);
        }
        for c in customers {
            for t in &c.get_ref().tunnels {
                check(self, &t.get_ref().remote, "tunnel remote", true, LOOPS);
            }
        }
        if let Some(fleet) = fleet {
            for v in &fleet.servers {
                let what = format!("server `{}`'s backbone address", v.get_ref().name.get_ref());
                check(self, &v.get_ref().backbone, &what, false, LOOPS);
            }
            for d in &fleet.data_centres {
                let what = format!("data centre `{}`'s backbone address", d.get_ref().name.get_ref());
                check(self, &d.get_ref().backbone, &what, false, LOOPS);
            }
            self.check_backbone_apart(server, customers, fleet);
        }
        self.check_tunnel_interfaces(&owned, &egress, server, customers, fleet);
        self.check_next_hop_not_ours(server, customers, fleet);
    }

    /// `next_hop` is the upstream router's address, not one of ours (the anycast addresses
    /// are refused where the server is built): our side of a tunnel's `interface` and the
    /// fleet's backbone addresses are ours too. Frames for the Internet were sent to
    /// ourselves, or to an address no router on the link answers for, and waited
    /// unresolved.
    fn check_next_hop_not_ours(
        &mut self,
        server: &config::ServerSection,
        customers: &[Spanned<CustomerSection>],
        fleet: Option<&config::SoftUnicastSection>,
    ) {
        let Some(text) = &server.next_hop else { return };
        let Ok(addr) = text.get_ref().parse::<std::net::IpAddr>() else { return };
        let mut ours = None;
        for t in customers.iter().flat_map(|c| &c.get_ref().tunnels) {
            let Some(written) = &t.get_ref().interface else { continue };
            // A malformed one is reported where the tunnel is built.
            let Ok(interface) = super::customers::parse_interface(written.get_ref()) else { continue };
            if std::net::IpAddr::V4(interface.ours) == addr {
                let at = self.src.pos(written.span().start);
                ours = Some(format!("our side of tunnel `{}`'s interface (at {at})", t.get_ref().name.get_ref()));
                break;
            }
        }
        if let Some(fleet) = fleet.filter(|_| ours.is_none()) {
            let servers = fleet
                .servers
                .iter()
                .map(|v| (format!("server `{}`", v.get_ref().name.get_ref()), &v.get_ref().backbone));
            let centres = fleet
                .data_centres
                .iter()
                .map(|d| (format!("data centre `{}`", d.get_ref().name.get_ref()), &d.get_ref().backbone));
            ours = servers
                .chain(centres)
                .find(|(_, b)| b.get_ref().parse::<std::net::IpAddr>().ok() == Some(addr))
                .map(|(whose, _)| format!("{whose}'s backbone address"));
        }
        if let Some(what) = ours {
            self.err(&text.span(), format!("next_hop `{addr}` is not a router's address: it is {what}, one of ours"));
        }
    }

    /// The fleet's backbone addresses are its servers' and data centres' own: not the
    /// anycast address (announced by every edge, backbone GRE to it reaches whichever is
    /// nearest, not that server), and no customer's router (its GRE would be taken for the
    /// backbone's, and ours to it sent into the fleet).
    fn check_backbone_apart(
        &mut self,
        server: &config::ServerSection,
        customers: &[Spanned<CustomerSection>],
        fleet: &config::SoftUnicastSection,
    ) {
        let parse = |t: &Spanned<String>| t.get_ref().parse::<std::net::IpAddr>().ok();
        let anycast: Vec<std::net::IpAddr> =
            std::iter::once(&server.anycast).chain(server.anycast_v6.as_ref()).filter_map(parse).collect();
        let servers =
            fleet.servers.iter().map(|v| (format!("server `{}`", v.get_ref().name.get_ref()), &v.get_ref().backbone));
        let centres = fleet
            .data_centres
            .iter()
            .map(|d| (format!("data centre `{}`", d.get_ref().name.get_ref()), &d.get_ref().backbone));
        let backbone: Vec<(String, &Spanned<String>)> = servers.chain(centres).collect();
        for (whose, address) in &backbone {
            if parse(address).is_some_and(|a| anycast.contains(&a)) {
                let message = format!(
                    "{whose}'s backbone address `{}` is the anycast address: backbone GRE to it would reach whichever \
                     edge is nearest, not {whose}",
                    address.get_ref()
                );
                self.err(&address.span(), message);
            }
        }
        for t in customers.iter().flat_map(|c| &c.get_ref().tunnels) {
            let remote = &t.get_ref().remote;
            let Some(a) = parse(remote) else { continue };
            if let Some((whose, _)) = backbone.iter().find(|(_, b)| parse(b) == Some(a)) {
                self.err(
                    &remote.span(),
                    format!("tunnel remote `{a}` is {whose}'s backbone address, one of the fleet's own"),
                );
            }
        }
    }

    /// A tunnel's inner addresses are the customer's word for who it is: the decapsulation
    /// check takes the peer's as a source the tunnel may send from. So both ends must be
    /// addresses no one else has: not inside another customer's prefix or an egress range
    /// (the customer could send as them), not an address of ours (anycast, backbone), not on
    /// another tunnel's inner network, and not an address no host has (this network, loopback,
    /// multicast, reserved).
    /// (`owned` and `egress` are [`Builder::check_addresses_outside_prefixes`]'s maps.)
    fn check_tunnel_interfaces(
        &mut self,
        owned: &HashMap<IpNet, &OwnedPrefix>,
        egress: &HashSet<IpNet>,
        server: &config::ServerSection,
        customers: &[Spanned<CustomerSection>],
        fleet: Option<&config::SoftUnicastSection>,
    ) {
        let mut ours: Vec<(std::net::IpAddr, String)> = Vec::new();
        let mut note = |text: &Spanned<String>, what: String| {
            if let Ok(a) = text.get_ref().parse::<std::net::IpAddr>() {
                ours.push((a, what));
            }
        };
        note(&server.anycast, "the anycast address".into());
        if let Some(fleet) = fleet {
            for v in &fleet.servers {
                note(&v.get_ref().backbone, format!("server `{}`'s backbone address", v.get_ref().name.get_ref()));
            }
            for d in &fleet.data_centres {
                note(&d.get_ref().backbone, format!("data centre `{}`'s backbone address", d.get_ref().name.get_ref()));
            }
        }
        // Inner networks seen so far: (network, where).
        // Each address of an inner network seen so far: the network, where, whose (a hash:
        // a configuration holds up to 65,535 tunnels).
        let mut networks: HashMap<u32, (ipnet::Ipv4Net, usize, String)> = HashMap::new();
        for (ci, c) in customers.iter().enumerate() {
            for t in &c.get_ref().tunnels {
                let Some(text) = &t.get_ref().interface else { continue };
                // A malformed one is reported where the tunnel is built.
                let Ok(interface) = super::customers::parse_interface(text.get_ref()) else { continue };
                let tunnel = t.get_ref().name.get_ref();
                let refuse = |b: &mut Self, why: String| {
                    b.err(&text.span(), format!("tunnel `{tunnel}`'s interface `{}`: {why}", text.get_ref()))
                };
                let net = interface.network();
                let addresses = u32::from(net.network())..=u32::from(net.broadcast());
                if let Some((_, at, other)) = addresses.clone().find_map(|a| networks.get(&a)) {
                    let at = self.src.pos(*at);
                    refuse(self, format!("its inner network {net} is also tunnel `{other}`'s (at {at})"));
                    continue;
                }
                for a in addresses {
                    networks.insert(a, (net, text.span().start, tunnel.clone()));
                }
                for (end, addr) in [("our side", interface.ours), ("the peer", interface.peer)] {
                    let o = addr.octets();
                    if o[0] == 0 || o[0] == 127 || o[0] >= 224 {
                        refuse(self, format!("{end}, {addr}, is not a host's address (0/8, 127/8, 224/3)"));
                        break;
                    }
                    if let Some((_, what)) = ours.iter().find(|(a, _)| *a == std::net::IpAddr::V4(addr)) {
                        refuse(self, format!("{end}, {addr}, is {what}"));
                        break;
                    }
                    let host = IpNet::from(std::net::IpAddr::V4(addr));
                    let clash = std::iter::successors(Some(host), IpNet::supernet).find_map(|n| {
                        if let Some(p) = owned.get(&n).filter(|p| p.customer as usize != ci) {
                            let name =
                                customers.get(p.customer as usize).map_or("", |c| c.get_ref().name.get_ref().as_str());
                            Some(format!(
                                "{end}, {addr}, is inside prefix {n} of customer `{name}` (at {})",
                                self.src.pos(p.span.start)
                            ))
                        } else if egress.contains(&n) {
                            Some(format!("{end}, {addr}, is inside egress prefix {n}"))
                        } else {
                            None
                        }
                    });
                    if let Some(why) = clash {
                        refuse(self, format!("{why}: the customer could send as that address"));
                        break;
                    }
                }
            }
        }
    }

    /// Customer prefixes must be disjoint, within a customer and across customers: each
    /// overlapping pair is said at the prefix written later, with where the other is.
    pub(super) fn check_overlaps(
        &mut self,
        prefixes: &mut [OwnedPrefix],
        customers: &[Spanned<config::CustomerSection>],
    ) {
        // By family and start, widest first: `check_egress_overlaps` looks starts up in this order.
        prefixes.sort_by_key(|p| {
            let (family, first, _) = prefix_bounds(&p.net);
            (family, first, p.net.prefix_len())
        });
        let ranges: Vec<(u8, u128, u128)> = prefixes.iter().map(|p| prefix_bounds(&p.net)).collect();
        let (pairs, more) = nested_pairs(&ranges);
        if let Some(&(_, last)) = pairs.last().filter(|_| more > 0) {
            let span = prefixes[last].span.clone();
            self.err(&span, format!("and {more} more overlapping pairs of customer prefixes, not said one by one"));
        }
        for (a, b) in pairs {
            let (earlier, later) = if prefixes[a].span.start < prefixes[b].span.start { (a, b) } else { (b, a) };
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
        }
    }

    /// An address is either a customer's or shared egress, never both. `prefixes` is sorted
    /// by family and start (`check_overlaps`): a prefix overlaps a range if it contains it
    /// (one of its supernets) or starts inside it.
    pub(super) fn check_egress_overlaps(&mut self, egress_written: &[EgressWritten], prefixes: &[OwnedPrefix]) {
        let by_net: HashMap<IpNet, usize> = prefixes.iter().enumerate().map(|(i, p)| (p.net, i)).collect();
        let v4_starts: Vec<(u32, usize)> = prefixes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.net {
                IpNet::V4(n) => Some((u32::from(n.network()), i)),
                IpNet::V6(_) => None,
            })
            .collect();
        for (net, len, at) in egress_written.iter().cloned() {
            let egress = IpNet::V4(ipnet::Ipv4Net::new(net, len).unwrap_or_default());
            let (lo, hi) = match egress {
                IpNet::V4(n) => (u32::from(n.network()), u32::from(n.broadcast())),
                IpNet::V6(_) => continue,
            };
            let containing = std::iter::successors(Some(egress), IpNet::supernet).find_map(|n| by_net.get(&n));
            let first_inside = v4_starts.partition_point(|&(start, _)| start < lo);
            let inside = v4_starts.get(first_inside).filter(|&&(start, _)| start <= hi).map(|(_, i)| i);
            if let Some(p) = containing.or(inside).map(|&i| &prefixes[i]) {
                let customer_at = self.src.pos(p.span.start);
                self.err(&at, format!("egress prefix {egress} overlaps customer prefix {} (at {customer_at})", p.net));
            }
        }
    }

    /// Every customer's routes, into its tables; returns the route groups they refer to.
    pub(super) fn customer_routes(
        &mut self,
        sections: &[Spanned<CustomerSection>],
        prefixes: &[OwnedPrefix],
        tunnel_names: &TunnelNames<'_>,
        tunnels: &[Tunnel],
        customers: &mut [Customer],
    ) -> Vec<Box<[NextTunnel]>> {
        let mut groups = Vec::new();
        let mut own: Vec<HashSet<IpNet>> = vec![HashSet::new(); sections.len()];
        for p in prefixes {
            own[usize::from(p.customer)].insert(p.net);
        }
        // A prefix refused for its host bits (its own error said) still holds the routes
        // inside its network: no second error for the same mistake.
        for (set, section) in own.iter_mut().zip(sections) {
            set.extend(
                section.get_ref().prefixes.iter().filter_map(|p| p.get_ref().parse::<IpNet>().ok()).map(|n| n.trunc()),
            );
        }
        for (index, (section, customer)) in sections.iter().zip(customers).enumerate() {
            let id = index as CustomerId;
            let names = (tunnel_names, tunnels);
            customer.routes = self.routes(section.get_ref(), id, &own[index], names, sections, &mut groups);
        }
        self.warn_unrouted(sections, prefixes);
        groups
    }

    /// A customer prefix no route covers (or covers only in part) is announced, and what
    /// arrives for it is dropped as `no_route`: said, at the prefix.
    fn warn_unrouted(&mut self, sections: &[Spanned<CustomerSection>], prefixes: &[OwnedPrefix]) {
        use classifier::set::IntervalSet;
        let range = |n: &IpNet| -> (u128, u128) {
            let (_, first, last) = prefix_bounds(n);
            (first, last)
        };
        // Each customer's routes merged into the addresses they cover, per family, once (a
        // customer of thousands of prefixes and routes was quadratic here).
        let routed: Vec<[IntervalSet; 2]> = sections
            .iter()
            .map(|s| {
                let nets: Vec<IpNet> = s
                    .get_ref()
                    .routes
                    .iter()
                    .filter_map(|r| r.get_ref().prefix.get_ref().parse::<IpNet>().ok())
                    .collect();
                let of = |v6: bool| {
                    let ranges = nets.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6).map(|n| range(&n.trunc()));
                    IntervalSet::from_ranges(ranges.collect())
                };
                [of(false), of(true)]
            })
            .collect();
        for p in prefixes {
            let (Some(section), Some(routed)) =
                (sections.get(usize::from(p.customer)), routed.get(usize::from(p.customer)))
            else {
                continue;
            };
            let (lo, hi) = range(&p.net);
            let ranges = routed[usize::from(matches!(p.net, IpNet::V6(_)))].ranges();
            // The first merged range reaching the prefix: all of it, part of it, or none.
            let first = ranges.partition_point(|&(_, b)| b < lo);
            let reached = ranges.get(first).filter(|&&(a, _)| a <= hi);
            if reached.is_some_and(|&(a, b)| a <= lo && hi <= b) {
                continue;
            }
            let name = section.get_ref().name.get_ref();
            let how = if reached.is_none() { "has no route" } else { "is routed only in part" };
            self.warn(
                &p.span,
                format!(
                    "prefix {} of customer `{name}` {how}: it is announced, and traffic to what no route \
                     covers is dropped as no_route",
                    p.net
                ),
            );
        }
    }

    /// The customer's routes: prefixes inside its own, each to tunnels of its own, grouped
    /// by prefix into route groups ordered by priority.
    fn routes(
        &mut self,
        c: &config::CustomerSection,
        id: CustomerId,
        own: &std::collections::HashSet<IpNet>,
        (names, tunnels): (&TunnelNames<'_>, &[Tunnel]),
        customers: &[Spanned<config::CustomerSection>],
        groups: &mut Vec<Box<[NextTunnel]>>,
    ) -> IpPrefixTable<RouteGroupId> {
        let mut by_prefix: Vec<(IpNet, Vec<NextTunnel>)> = Vec::new();
        let mut group_of: HashMap<IpNet, usize> = HashMap::new();
        let mut seen: HashMap<(IpNet, TunnelId), Range<usize>> = HashMap::new();
        for r in &c.routes {
            let r = r.get_ref();
            let net = self.prefix(&r.prefix);
            let (tunnel, weight) = self.route_target(r, c, id, names, customers);
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
            let mtu = tunnels.get(usize::from(tid)).map_or(u32::MAX, |t| t.mtu);
            if matches!(net, IpNet::V6(_)) && mtu < IPV6_MIN_MTU {
                // RFC 8200 section 5: every link carries 1280-byte IPv6 packets whole. A
                // smaller tunnel would answer them with a Packet Too Big senders ignore (RFC
                // 8201 section 4), and they would vanish.
                let why = format!(
                    "route {net} is IPv6, but tunnel `{}` has mtu {mtu}: IPv6 needs at least {IPV6_MIN_MTU} \
                     (RFC 8200 section 5)",
                    r.tunnel.get_ref()
                );
                self.err(&r.tunnel.span(), why);
                continue;
            }
            if let Some(first) = seen.get(&(net, tid)) {
                let first = self.src.pos(first.start);
                self.err(
                    &r.prefix.span(),
                    format!("duplicate route {net} via `{}` (first at {first})", r.tunnel.get_ref()),
                );
                continue;
            }
            seen.insert((net, tid), r.prefix.span());
            // 64 bits of FNV-1a: two tunnels of a group with one seed would score alike for
            // every flow, and one of them would never be chosen (32 bits meet in real names).
            let seed = classifier::limit::mix(super::fnv1a_64(r.tunnel.get_ref().as_bytes()));
            let per_weight = 1.0 / f64::from(weight.max(1));
            let next = NextTunnel { tunnel: tid, priority, weight, per_weight, seed, weighted: false };
            match group_of.get(&net) {
                Some(&i) => by_prefix[i].1.push(next),
                None => {
                    group_of.insert(net, by_prefix.len());
                    by_prefix.push((net, vec![next]));
                }
            }
        }
        let mut table = Vec::with_capacity(by_prefix.len());
        for (net, mut list) in by_prefix {
            // Stable: equal priorities keep the order they were written in.
            list.sort_by_key(|n| n.priority);
            // Weights that differ within a priority make the choice score them; any subset
            // of equal ones ranks the same by the hash alone.
            let weighted = list.iter().any(|a| list.iter().any(|b| a.priority == b.priority && a.weight != b.weight));
            for n in &mut list {
                n.weighted = weighted;
            }
            table.push((net, groups.len() as RouteGroupId));
            groups.push(list.into_boxed_slice());
        }
        IpPrefixTable::build(table)
    }

    /// A route's tunnel (one of its own customer's) and weight, each reported where wrong.
    fn route_target(
        &mut self,
        r: &config::RouteSection,
        c: &config::CustomerSection,
        id: CustomerId,
        tunnels: &TunnelNames<'_>,
        customers: &[Spanned<config::CustomerSection>],
    ) -> (Option<TunnelId>, u16) {
        let tunnel = match tunnels.get(r.tunnel.get_ref().as_str()) {
            None => {
                self.err(&r.tunnel.span(), format!("unknown tunnel `{}`", r.tunnel.get_ref()));
                None
            }
            Some((_, owner, _)) if *owner != id => {
                let owner = customers[*owner as usize].get_ref().name.get_ref();
                let why = format!(
                    "tunnel `{}` belongs to customer `{owner}`, not `{}`",
                    r.tunnel.get_ref(),
                    c.name.get_ref()
                );
                self.err(&r.tunnel.span(), why);
                None
            }
            Some((_, _, tid)) => Some(*tid),
        };
        let weight = match &r.weight {
            None => 1,
            Some(w) => super::within(w, 1..=u16::MAX).unwrap_or_else(|| {
                self.err(&w.span(), format!("weight {} is not in 1..={}", w.get_ref(), u16::MAX));
                1
            }),
        };
        (tunnel, weight)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_OVERLAPS_SAID, nested_pairs};

    /// Prefixes nested deep with many inside the deepest make more overlapping pairs than
    /// are said: the first [`MAX_OVERLAPS_SAID`] are given, each one prefix holding the other
    /// and none twice, and the rest counted, all pairs being what a check of every pair
    /// against every other finds.
    #[test]
    fn overlapping_pairs_past_the_bound_are_counted_not_given() {
        let base = 0x2001_0db8_u128 << 96;
        let prefix = |len: u32| (6, base, base | (u128::MAX >> len));
        // 2001:db8::/32 to /113, then 300 of the /128s inside the /113.
        let mut ranges: Vec<(u8, u128, u128)> = (32..114).map(prefix).collect();
        ranges.extend((0..300).map(|k| (6, base + k, base + k)));
        let holds = |a: (u8, u128, u128), b: (u8, u128, u128)| a.0 == b.0 && a.1 <= b.1 && b.2 <= a.2;
        let every = (0..ranges.len())
            .flat_map(|j| (0..j).map(move |i| (i, j)))
            .filter(|&(i, j)| holds(ranges[i], ranges[j]) || holds(ranges[j], ranges[i]))
            .count();
        assert!(every > MAX_OVERLAPS_SAID, "{every}");
        let (pairs, more) = nested_pairs(&ranges);
        assert_eq!((pairs.len(), pairs.len() + more), (MAX_OVERLAPS_SAID, every));
        assert!(pairs.iter().all(|&(a, b)| holds(ranges[a], ranges[b])), "each enclosing, then enclosed");
        let distinct: std::collections::HashSet<_> = pairs.iter().collect();
        assert_eq!(distinct.len(), pairs.len());
        // Under the bound, nothing is left over.
        let (pairs, more) = nested_pairs(&ranges[..90]);
        assert_eq!((pairs.len(), more), (82 * 81 / 2 + 8 * 82, 0));
    }
}
