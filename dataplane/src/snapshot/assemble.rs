//! The sections compiled in order and put together into one [`Snapshot`], with the checks
//! that span sections (tunnel MTUs against the frame size, what `[bgp]` would announce, the
//! egress prefixes, IPv6 prefixes without `anycast_v6`) and the settings nothing uses, said.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use toml::Spanned;

use super::customers::{self, Locals};
use super::{
    Builder, CustomerId, HealthTable, NextTunnel, OwnedPrefix, Snapshot, TcpProtection, Tunnel, Withdrawn,
    in_file_order, routes, vrf_ids,
};
use crate::config::{CustomerSection, Loaded, ServerSection};
use crate::lpm::IpPrefixTable;

/// The generation the next snapshot built gets.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl Builder<'_> {
    /// Compiles the sections in order, runs the checks that span them (each in its own
    /// function below), and puts the snapshot together. The calls keep their order: later
    /// ones take what earlier ones made (rule counts, the prefixes `check_overlaps` sorts),
    /// and it is the order of what they report.
    pub(super) fn snapshot(&mut self, loaded: &Loaded) -> Snapshot {
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
        self.check_tunnel_sizes(server, s.frame_size, customers_in, &c.tunnels);
        self.check_overlaps(&mut c.prefixes, customers_in);
        self.warn_without_anycast_v6(&c.prefixes, s.anycast_v6);
        if loaded.file.bgp.is_some() {
            self.check_announced(&c.prefixes);
        }
        let soft_unicast = loaded.file.soft_unicast.as_ref().and_then(|s| self.soft_unicast(s));
        self.check_egress_prefixes(loaded, customers_in, &c.prefixes);
        let route_groups =
            self.customer_routes(customers_in, &c.prefixes, &c.tunnel_names, &c.tunnels, &mut c.customers);
        let probed = c.tunnels.iter().any(|t| t.interface.is_some());
        let routes_probed = is_any_route_probed(&route_groups, &c.tunnels);
        let customer_by_prefix = IpPrefixTable::build(c.prefixes.iter().map(|p| (p.net, p.customer)));
        let (tunnel_sides, tunnel_broadcasts, tunnel_sides_in_prefixes) =
            tunnel_addresses(&c.tunnels, &customer_by_prefix);
        self.warn_inert(loaded, probed, routes_probed, dos.buckets.is_empty(), &tcp);
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
            customer_by_prefix,
            tunnels: c.tunnels,
            tunnel_index: c.tunnel_index,
            tunnel_sides,
            tunnel_broadcasts,
            tunnel_sides_in_prefixes,
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

    /// Tunnel sizes against the server's: a tunnel whose GRE at its `mtu`, written or the
    /// default, is longer than a frame of `frame_size` carries, and an `mss` that no SYN is
    /// clamped to.
    fn check_tunnel_sizes(
        &mut self,
        server: &ServerSection,
        frame_size: usize,
        customers_in: &[Spanned<CustomerSection>],
        tunnels: &[Tunnel],
    ) {
        // Both directions of a tunnel arrive in frames: the Internet's packets of up to its
        // mtu, and its router's GRE of them, longer by the outer headers. What a frame does
        // not carry is dropped as `oversize` on arrival (a frame_size of 1500 and the default
        // mtu: every full-size packet the router sends), and SYNs are clamped to an MSS no
        // packet reaches.
        let carried = frame_size.saturating_sub(14);
        // Tunnels are compiled in the order written (those past the bound not at all).
        let written = customers_in.iter().flat_map(|c| &c.get_ref().tunnels);
        let mut largest_default: Option<(usize, u32)> = None;
        for (section, tunnel) in written.zip(tunnels) {
            let gre = tunnel.mtu as usize + tunnel.gre.overhead();
            if gre <= carried {
                continue;
            }
            let Some(mtu) = &section.get_ref().mtu else {
                largest_default = largest_default.max(Some((gre, tunnel.mtu)));
                continue;
            };
            let fits = carried.saturating_sub(tunnel.gre.overhead());
            let why = format!(
                "mtu {} is more than a frame of frame_size {frame_size} carries with tunnel `{}`'s outer headers \
                 ({gre} bytes of IP, {carried} carried): its router's GRE of packets over {fits} bytes is dropped \
                 as oversize on arrival; raise frame_size to {} or lower mtu to {fits}",
                mtu.get_ref(),
                tunnel.name,
                gre + 14
            );
            self.warn(&mtu.span(), why);
        }
        if let (Some(fs), Some((gre, mtu))) = (&server.frame_size, largest_default) {
            let why = format!(
                "frame_size {} carries {carried} bytes of IP, less than the GRE ({gre} bytes) of tunnels without an \
                 `mtu` at the default mtu ({mtu}): their routers' full-size packets are dropped as oversize on \
                 arrival; raise frame_size to {} or set their mtu",
                fs.get_ref(),
                gre + 14
            );
            self.warn(&fs.span(), why);
        }
        if !server.mss_clamp {
            for mss in customers_in.iter().flat_map(|c| &c.get_ref().tunnels).filter_map(|t| t.get_ref().mss.as_ref()) {
                self.warn(&mss.span(), "mss is not used: [server] mss_clamp = false clamps no SYN");
            }
        }
    }

    /// What `[bgp]` would announce: every customer prefix, so none may be a default route or
    /// hold space that is no host's.
    fn check_announced(&mut self, prefixes: &[OwnedPrefix]) {
        // Every customer prefix is announced: a /0 would be a default route to the
        // upstreams, which attracts the whole Internet's traffic (or is filtered away).
        for p in prefixes.iter().filter(|p| p.net.prefix_len() == 0) {
            self.err(&p.span, format!("customer prefix {} would be announced as a default route ([bgp])", p.net));
        }
        // Inside such space a prefix is refused anyway; holding it, it would announce it.
        for p in prefixes.iter().filter(|p| p.net.prefix_len() > 0) {
            if let Some(space) = customers::holds_space_for_no_hosts(p.net) {
                let why = format!("customer prefix {} holds {space}, which [bgp] would announce with it", p.net);
                self.err(&p.span, why);
            }
        }
    }

    /// The fleet's egress prefixes as written: against the customer prefixes, and each for
    /// what a host may send from; then the addresses the configuration names against both.
    fn check_egress_prefixes(
        &mut self,
        loaded: &Loaded,
        customers_in: &[Spanned<CustomerSection>],
        prefixes: &[OwnedPrefix],
    ) {
        let egress_written = routes::egress_written(loaded.file.soft_unicast.as_ref());
        self.check_egress_overlaps(&egress_written, prefixes);
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
        let server = loaded.file.server.get_ref();
        self.check_addresses_outside_prefixes(prefixes, &egress, server, customers_in, fleet);
    }

    /// Settings written that nothing in the configuration uses: said, not refused (a fleet's
    /// shared file may hold them on purpose, for servers whose part uses them), since a
    /// setting that silently does nothing looks like one that works. `probed`: whether any
    /// tunnel is; `routes_probed`: whether any a route takes is.
    fn warn_inert(
        &mut self,
        loaded: &Loaded,
        probed: bool,
        routes_probed: bool,
        no_buckets: bool,
        tcp: &TcpProtection,
    ) {
        let file = &loaded.file;
        let h = &file.health;
        let health_written = [&h.interval_ms, &h.timeout_ms, &h.down_after, &h.up_after, &h.excused_max]
            .into_iter()
            .find(|v| !v.span().is_empty());
        if let (false, Some(key)) = (probed, health_written) {
            self.warn(
                &key.span(),
                "[health] probes tunnels with an `interface`, and no tunnel has one: it has no effect",
            );
        }
        let withdraw = file.bgp.as_ref().and_then(|b| b.get_ref().withdraw_customers_without_tunnels.as_ref());
        // A prefix is judged by the tunnels its routes take: a probed one no route takes (a
        // spare, one the customer's router only sends from) carries none of its traffic.
        if let Some(set) = withdraw.filter(|w| *w.get_ref() && !routes_probed) {
            self.warn(
                &set.span(),
                "withdraw_customers_without_tunnels acts on probed tunnels (those with an `interface`) that routes \
                 take, and no route takes one: no customer prefix is ever withdrawn for its tunnels",
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
}

/// Whether a route takes a health-checked tunnel (one with an `interface`): what
/// `withdraw_customers_without_tunnels` judges by, the tunnels routes take, not every tunnel.
fn is_any_route_probed(route_groups: &[Box<[NextTunnel]>], tunnels: &[Tunnel]) -> bool {
    route_groups
        .iter()
        .flat_map(|g| g.iter())
        .any(|n| tunnels.get(usize::from(n.tunnel)).is_some_and(|t| t.interface.is_some()))
}

/// Our addresses on the tunnels' inner links, each list sorted as the snapshot keeps it:
/// our sides ([`Snapshot::tunnel_sides`]), the /30s' network and broadcast addresses
/// ([`Snapshot::tunnel_broadcasts`]), and our sides inside a customer prefix of
/// `customer_by_prefix` ([`Snapshot::tunnel_sides_in_prefixes`]).
fn tunnel_addresses(
    tunnels: &[Tunnel],
    customer_by_prefix: &IpPrefixTable<CustomerId>,
) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    let mut sides: Vec<Ipv4Addr> = tunnels.iter().filter_map(|t| t.interface.map(|i| i.ours)).collect();
    sides.sort_unstable();
    let mut broadcasts: Vec<Ipv4Addr> = tunnels.iter().filter_map(|t| t.interface?.broadcasts()).flatten().collect();
    broadcasts.sort_unstable();
    // The prefix table takes an IPv4 address in the top 32 bits, as the key holds it.
    let sides_in_prefixes: Vec<Ipv4Addr> = sides
        .iter()
        .copied()
        .filter(|&a| customer_by_prefix.lookup(false, u128::from(u32::from(a)) << 96).is_some())
        .collect();
    (sides, broadcasts, sides_in_prefixes)
}
