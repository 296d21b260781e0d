//! The forwarding tail both directions share: choosing one of a customer's tunnels, the
//! checks a router makes before sending (TTL, a link-local source, then MTU), the ICMP
//! errors and fragments those checks produce, MSS clamping, and the final write: GRE
//! encapsulation toward a customer's router, or a plain Ethernet header toward the next hop.

use std::net::{IpAddr, Ipv4Addr};

use classifier::{ABSENT, Dim, Key};
use gre::encap::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, EncapError, Endpoints, GreTunnel, encap_gre, prepend_ethernet};
use gre::fragment::Plan;
use gre::icmp::{self, Icmpv4Error, Icmpv6Error};
use gre::ip::{IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use gre::packet::{PROTO_IPV4, PROTO_IPV6};
use gre::{EthernetAddrs, IpPacket, Ipv4Packet, checksum};

use super::Limits;
use super::dos::{self, flow_fold, ports_of};
use super::parse::IpFrame;
use super::pmtu::tunnel_mtu;
use super::scope;
use super::verdict::{DropReason, TxReason, Verdict};
use super::{Frame, HEADROOM, Spill};
use crate::snapshot::{Customer, NextTunnel, Snapshot, Tunnel, TunnelId};

/// TTL of the ICMP errors and replies we originate.
const ICMP_TTL: u8 = 64;

/// What the stages use besides the frame.
pub(super) struct Ctx<'a> {
    pub snap: &'a Snapshot,
    /// Ethernet addresses of the moment (`None`: next hop unresolved).
    pub eth: Option<&'a EthernetAddrs>,
    pub limits: &'a mut Limits,
    pub spill: &'a mut Spill,
    /// The frame's receive time.
    pub now: u64,
    /// Frames spilled for this frame (at most the spill's slots).
    pub spilled: u8,
    /// The tunnel the frame was last encapsulated into.
    pub via: Option<TunnelId>,
    /// The customer's tunnel a decapsulated frame came out of: what we originate about it
    /// (an ICMP error, a SYN challenge) goes back into it, where its source is.
    pub from: Option<TunnelId>,
    /// The outer flow label for GRE over IPv6 (RFC 6438: from the inner flow, so that the
    /// underlay's ECMP and link aggregation spread a tunnel's flows); 0 (unlabelled) for
    /// what we originate.
    pub label: u32,
    /// The rate-limit buckets and keys this frame has paid a token to.
    pub charged: dos::Charged,
    /// The same in the preview tables (monitor-mode rate limits); made at a frame's first
    /// preview, which most frames never meet.
    pub previewed: Option<dos::Charged>,
}

impl<'a> Ctx<'a> {
    /// A frame's context as it enters the stages, received at `now`: nothing spilled,
    /// encapsulated, decapsulated or paid yet.
    pub fn new(
        snap: &'a Snapshot,
        eth: Option<&'a EthernetAddrs>,
        limits: &'a mut Limits,
        spill: &'a mut Spill,
        now: u64,
    ) -> Ctx<'a> {
        Ctx {
            snap,
            eth,
            limits,
            spill,
            now,
            spilled: 0,
            via: None,
            from: None,
            label: 0,
            charged: dos::Charged::default(),
            previewed: None,
        }
    }
}

/// True when the IPv4 header checksum verifies.
pub(super) fn ipv4_checksum_ok(data: &[u8], ip: &IpFrame) -> bool {
    data.get(ip.l3_start..ip.l3_start + ip.header_len).is_some_and(|h| checksum::sum(h) == 0xffff)
}

/// The customer's route group for the destination (longest prefix).
pub(super) fn route<'s>(snap: &'s Snapshot, customer: &Customer, key: &Key, is_ipv6: bool) -> Option<&'s [NextTunnel]> {
    let group = customer.routes.lookup(is_ipv6, key.dst_addr())?;
    snap.route_groups.get(group as usize).map(|g| &g[..])
}

/// Picks the tunnel for a flow: among the tunnels of the best priority that has one up, by
/// weighted rendezvous hashing (Thaler and Ravishankar, 1998; Schindelhauer and Schomaker's
/// weights): each scores `weight / -ln(u)`, `u` in (0, 1) a hash of the flow's (`flow`,
/// computed only when there is a choice) and the tunnel's seed, and the highest wins. A
/// flow's share of each tunnel is its weight's, and it stays on its tunnel while that one
/// is up: a tunnel going down moves its own flows only (a modulo of the hash moved most of
/// the others' too, and a customer firewall keeping state per tunnel lost their sessions),
/// and they come back when it does. With every tunnel down, the best priority's tunnels are
/// used as if up: a route must not black-hole on a false alarm.
#[inline]
pub(super) fn choose_tunnel(snap: &Snapshot, group: &[NextTunnel], flow: impl FnOnce() -> u64) -> Option<TunnelId> {
    if let [only] = group {
        return Some(only.tunnel);
    }
    let up = |n: &NextTunnel| snap.health.is_up(n.tunnel);
    let (priority, any_up) = match group.iter().find(|n| up(n)) {
        Some(n) => (n.priority, true),
        None => (group.first()?.priority, false),
    };
    let eligible = |n: &&NextTunnel| n.priority == priority && (!any_up || up(n));
    let flow = flow();
    // 52 bits of the mixed hash of the flow's and the tunnel's: `u` is their value as a
    // fraction, centred in its step (exactly: never 0 or 1, so ln(u) < 0).
    let hash = |n: &NextTunnel| classifier::limit::mix(flow ^ n.seed) >> 12;
    // Equal weights (the usual case) rank by the hash alone, as the score would: no
    // floating point, no logarithm.
    if !group.first().is_some_and(|n| n.weighted) {
        let mut best = None::<(u64, TunnelId)>;
        for n in group.iter().filter(eligible) {
            let h = hash(n);
            if best.is_none_or(|(top, _)| h > top) {
                best = Some((h, n.tunnel));
            }
        }
        return best.map(|(_, t)| t);
    }
    // The highest `weight / -ln(u)` is the lowest `-ln(u) / weight`.
    let mut best = None::<(f64, TunnelId)>;
    for n in group.iter().filter(eligible) {
        let u = (hash(n) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64);
        let cost = -ln_approx(u) * n.per_weight;
        if best.is_none_or(|(low, _)| cost < low) {
            best = Some((cost, n.tunnel));
        }
    }
    best.map(|(_, t)| t)
}

/// ln(u) for a normal 0 < u < 1, within 1e-7 and, near 1 where it tends to 0, within a
/// millionth of itself (the tunnel choice's score: a light tunnel's share beside a heavy one
/// rests on the costs near 0): ln of the exponent, and of the mantissa m, taken in
/// [√½, √2], by 2·atanh((m−1)/(m+1)) to z⁷. Inlined, the tunnels' logarithms overlap;
/// libm's, one call each, cost the pipeline a quarter of its time with four weighted tunnels.
#[inline]
fn ln_approx(u: f64) -> f64 {
    let bits = u.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let ln_m = 2.0 * z * (1.0 + z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0))));
    exponent as f64 * std::f64::consts::LN_2 + ln_m
}

/// The flow hash tunnel choice uses: addresses, protocol and ports, but for a fragment
/// (only the first has ports), so that the fragments of a datagram take one tunnel and
/// reach a customer router that reassembles them together (RFC 8900 §3.4).
pub(super) fn flow_hash(key: &Key, ip: &IpFrame) -> u64 {
    flow_fold(key, flow_ports(key, ip))
}

/// The ports a flow hash takes: none for a fragment.
fn flow_ports(key: &Key, ip: &IpFrame) -> u64 {
    if ip.fragment.is_some() { 0 } else { ports_of(key) }
}

/// Sends the packet into `tunnel`: TTL check, link-local source check, MTU check (ICMP error
/// or fragments, the MSS clamped once they are sure to go: [`fragment_into`]), MSS clamp,
/// TTL decrement, encapsulation.
pub(super) fn into_tunnel(
    ctx: &mut Ctx<'_>,
    tunnel: &Tunnel,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    key: &Key,
) -> Verdict {
    let l3 = frame.start + ip.l3_start;
    if ttl_expires(frame.buf, l3, ip.is_ipv6) {
        return icmp_error(ctx, frame, ip, key, IcmpKind::TimeExceeded)
            .unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
    }
    if is_from_link_local(key, ip) {
        return Verdict::Drop(DropReason::LinkLocalSource);
    }
    // Out of one customer's tunnel into another's: the segment crosses both.
    let snap = ctx.snap;
    let from = ctx.from.and_then(|t| snap.tunnels.get(usize::from(t)));
    let mtu = room(ctx, tunnel, ip.is_ipv6);
    if ip.l3_len > mtu {
        return too_big(ctx, Way::Tunnel(tunnel), frame, ip, key, mtu, Some((tunnel, from)));
    }
    clamp_mss(ctx, frame, ip, key, tunnel, from);
    decrement_ttl(frame.buf, l3, ip.is_ipv6);
    ctx.label = flow_label(tunnel, key, ip);
    encap(ctx, tunnel, frame.buf, l3, ip.l3_len, ip.is_ipv6, TxReason::Encapsulated)
}

/// Sends the packet to the next hop as it is (a customer's traffic out of its tunnel):
/// TTL check, link-local source check, MSS clamp for the tunnel it came from, TTL
/// decrement, Ethernet header.
pub(super) fn to_next_hop(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    key: &Key,
    from: &Tunnel,
    reason: TxReason,
) -> Verdict {
    let l3 = frame.start + ip.l3_start;
    if ttl_expires(frame.buf, l3, ip.is_ipv6) {
        return icmp_error(ctx, frame, ip, key, IcmpKind::TimeExceeded)
            .unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
    }
    if is_from_link_local(key, ip) {
        return Verdict::Drop(DropReason::LinkLocalSource);
    }
    // Larger than the link sends: a datagram reassembled from fragments that each fit it.
    if let Some(mtu) = ctx.limits.link_mtu.filter(|&mtu| ip.l3_len > mtu) {
        if reason == TxReason::Keepalive {
            // Its source is our end of the tunnel: no error may go to it, and no router
            // sends a keepalive that large.
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        return too_big(ctx, Way::Link(reason), frame, ip, key, mtu, Some((from, None)));
    }
    clamp_mss(ctx, frame, ip, key, from, None);
    decrement_ttl(frame.buf, l3, ip.is_ipv6);
    ethernet(ctx, frame.buf, l3, ip.l3_len, ip.is_ipv6, reason)
}

/// Whether the packet's source is link-local: it goes no further than its link (RFC 3927
/// §2.7, RFC 4291 §2.5.6). Asked once the TTL is found not to run out, as Linux's
/// ip6_forward asks it after the hop limit: out of a tunnel, the router's inner address may
/// be link-local (169.254.x.y), and a traceroute from it is answered back into the tunnel,
/// its link, while nothing from it is sent on. (From the Internet, steering dropped it.)
fn is_from_link_local(key: &Key, ip: &IpFrame) -> bool {
    scope::is_link_local(key.src_addr(), ip.is_ipv6)
}

/// The IP header at `buf[l3..]`, of the family the parser found (`None` only for a frame
/// the parser did not check, which no stage sees).
fn ip_at(buf: &[u8], l3: usize, is_ipv6: bool) -> Option<IpPacket<&[u8]>> {
    IpPacket::new_checked(buf.get(l3..)?, is_ipv6).ok()
}

pub(super) fn ttl_expires(buf: &[u8], l3: usize, is_ipv6: bool) -> bool {
    ip_at(buf, l3, is_ipv6).is_none_or(|p| p.hop_limit() <= 1)
}

/// Decrements the TTL or hop limit (checked above 1 by the caller).
fn decrement_ttl(buf: &mut [u8], l3: usize, is_ipv6: bool) {
    if let Some(mut packet) = buf.get_mut(l3..).and_then(|b| IpPacket::new_checked(b, is_ipv6).ok()) {
        let _ = gre::ttl::decrement(&mut packet);
    }
}

/// The largest inner packet `tunnel` takes now: [`tunnel_mtu`] on the backend's link.
#[inline]
pub(super) fn room(ctx: &Ctx<'_>, tunnel: &Tunnel, is_ipv6: bool) -> usize {
    tunnel_mtu(ctx.snap, tunnel, is_ipv6, ctx.now, ctx.limits.link_mtu) as usize
}

/// IPv4 without DF: a router may cut it into fragments (RFC 791).
fn is_fragmentable(buf: &[u8], l3: usize, is_ipv6: bool) -> bool {
    matches!(ip_at(buf, l3, is_ipv6), Some(IpPacket::V4(p)) if !p.dont_frag())
}

/// Lowers the MSS of a TCP SYN or SYN-ACK to what fits `tunnel` (and `also`, the tunnel a
/// decapsulated segment came out of, when it goes into another) now: its `mss`, or less
/// while a lower path MTU or the link holds it lower.
#[inline(always)]
fn clamp_mss(ctx: &Ctx<'_>, frame: &mut Frame<'_>, ip: &IpFrame, key: &Key, tunnel: &Tunnel, also: Option<&Tunnel>) {
    const SYN: u32 = 0x02;
    let flags = key.get(Dim::TcpFlags);
    // Not under AH: its integrity check covers the TCP header (RFC 4302 §3.3.3.1), and a
    // clamped SYN would be refused by the receiver.
    let plain_tcp = key.get(Dim::L4Proto) == 6 && !ip.under_ah;
    // A first fragment is clamped as a whole segment is (as Linux's TCPMSS target does): the
    // checksum covers the whole datagram but is patched, not computed, so the later
    // fragments' bytes are not needed. One whose TCP header runs past it is left alone.
    if !ctx.snap.mss_clamp || ip.is_later_fragment() || !plain_tcp || flags == classifier::ABSENT {
        return;
    }
    if flags & SYN == 0 || key.get(Dim::TcpMss) == ABSENT {
        return; // no SYN, or no MSS option to lower
    }
    clamp_syn(ctx, frame, ip, key, tunnel, also);
}

/// [`clamp_mss`] for a SYN: out of line, so that every other packet pays only the test.
#[inline(never)]
fn clamp_syn(ctx: &Ctx<'_>, frame: &mut Frame<'_>, ip: &IpFrame, key: &Key, tunnel: &Tunnel, also: Option<&Tunnel>) {
    let fits = |t: &Tunnel| {
        let (mss, headers) = if ip.is_ipv6 { (t.mss_v6, 60) } else { (t.mss_v4, 40) };
        let mtu = room(ctx, t, ip.is_ipv6);
        if mtu < t.mtu as usize { mss.min(mtu.saturating_sub(headers).min(65535) as u16) } else { mss }
    };
    let mss = also.map_or(fits(tunnel), |a| fits(tunnel).min(fits(a)));
    if mss_within(key, mss) {
        return;
    }
    let end = frame.start + ip.l3_start + ip.l3_len;
    if let Some(tcp) = frame.buf.get_mut(frame.start + ip.l4_start..end) {
        gre::mss::clamp_mss(tcp, mss);
    }
}

/// Whether the key shows no MSS option above `max` in the segment: none, or one (no last
/// apart from the first) at most `max`. Then [`gre::mss::clamp_mss`] would change nothing,
/// and the options need not be read again: the parser read them as it does (`parse::l4`,
/// up to the end of the list or the first malformed option; held to it by a property test
/// there). Of two or more, those between the first and the last are in no slot.
pub(super) fn mss_within(key: &Key, max: u16) -> bool {
    let first = key.get(Dim::TcpMss);
    first == ABSENT || (key.get(Dim::TcpMssLast) == ABSENT && first <= u32::from(max))
}

/// Encapsulates the IP packet at `buf[l3..l3 + len]` into `tunnel`.
fn encap(
    ctx: &mut Ctx<'_>,
    tunnel: &Tunnel,
    buf: &mut [u8],
    l3: usize,
    len: usize,
    is_ipv6: bool,
    reason: TxReason,
) -> Verdict {
    let Some(eth) = ctx.eth else { return Verdict::Drop(DropReason::NextHopUnresolved) };
    let protocol = if is_ipv6 { PROTO_IPV6 } else { PROTO_IPV4 };
    let tos = ip_at(buf, l3, is_ipv6).map_or(0, |p| p.dscp_ecn());
    match encap_gre(buf, l3, len, protocol, tos, &tunnel.gre, eth) {
        Ok(start) => {
            label_outer(buf, start, tunnel, ctx.label);
            ctx.via = Some(tunnel.id);
            Verdict::Tx { start, len: l3 + len - start, reason }
        }
        Err(EncapError::NoHeadroom) => Verdict::Drop(DropReason::NoHeadroom),
        // The inner range was checked by the parser and the MTU bounds the length: only a
        // backend handing in an inconsistent frame gets here.
        Err(EncapError::OutOfFrame | EncapError::TooLong) => Verdict::Drop(DropReason::Truncated),
    }
}

/// The outer flow label of the inner packet `key` in `tunnel`: for GRE over IPv6, 20 bits
/// of a hash of its addresses, protocol and ports, never 0 (which means unlabelled: RFC 6437
/// section 3); 0 over IPv4. A fragment is hashed without ports (only its first has them),
/// so the fragments of a datagram share a label and a path; so do the fragments a datagram
/// is cut into here.
fn flow_label(tunnel: &Tunnel, key: &Key, ip: &IpFrame) -> u32 {
    if !matches!(tunnel.gre.endpoints, Endpoints::V6 { .. }) {
        return 0;
    }
    let h = flow_fold(key, flow_ports(key, ip));
    ((h ^ h >> 32) as u32 & 0x000f_ffff).max(1)
}

/// Writes `label` into the outer IPv6 header of the frame at `buf[start..]` that `tunnel`'s
/// encapsulation wrote (nothing for GRE over IPv4, or label 0).
fn label_outer(buf: &mut [u8], start: usize, tunnel: &Tunnel, label: u32) {
    if label == 0 || !matches!(tunnel.gre.endpoints, Endpoints::V6 { .. }) {
        return;
    }
    if let Some(outer) = buf.get_mut(start + gre::encap::ETHERNET_LEN..) {
        let mut packet = gre::Ipv6Packet::new_unchecked(outer);
        let class = packet.traffic_class();
        packet.set_version_class_flow(class, label);
    }
}

/// Puts an Ethernet header in front of the IP packet at `buf[l3..l3 + len]`.
pub(super) fn ethernet(
    ctx: &Ctx<'_>,
    buf: &mut [u8],
    l3: usize,
    len: usize,
    is_ipv6: bool,
    reason: TxReason,
) -> Verdict {
    let Some(eth) = ctx.eth else { return Verdict::Drop(DropReason::NextHopUnresolved) };
    let ether_type = if is_ipv6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
    match prepend_ethernet(buf, l3, eth, ether_type) {
        Some(start) => Verdict::Tx { start, len: l3 + len - start, reason },
        None => Verdict::Drop(DropReason::NoHeadroom),
    }
}

/// The way out a packet too big for it was to take, where its fragments go: a customer's
/// tunnel (a router hop: the TTL is decremented, the outer header labelled), the backbone
/// toward a server of the fleet (the packet is still on its way to this edge's egress
/// address), or the link to the next hop as it is (a router hop, each fragment sent as
/// `reason`).
#[derive(Clone, Copy)]
pub(super) enum Way<'a> {
    Tunnel(&'a Tunnel),
    Backbone(&'a GreTunnel),
    Link(TxReason),
}

impl Way<'_> {
    /// The GRE each fragment is wrapped in (none on the link).
    fn gre(&self) -> Option<&GreTunnel> {
        match self {
            Way::Tunnel(t) => Some(&t.gre),
            Way::Backbone(g) => Some(g),
            Way::Link(_) => None,
        }
    }

    /// Why a packet too big for it is dropped.
    fn too_big(&self) -> DropReason {
        match self {
            Way::Tunnel(_) | Way::Link(_) => DropReason::MtuExceeded,
            Way::Backbone(_) => DropReason::BackboneMtuExceeded,
        }
    }
}

/// A packet larger than the `mtu` bytes `out` carries, as a tunnel's entry point answers one
/// (RFC 4459 §3, RFC 2003 §5.1): with DF (or IPv6), an ICMP error naming `mtu` to its sender,
/// whose path MTU discovery then sends smaller packets; without, fragments (where `[server]
/// fragment_ipv4` allows), a SYN's MSS clamped to `clamp` ([`fragment_into`]). What can be
/// neither is dropped as `out`'s too-big reason.
pub(super) fn too_big(
    ctx: &mut Ctx<'_>,
    out: Way<'_>,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    key: &Key,
    mtu: usize,
    clamp: Option<(&Tunnel, Option<&Tunnel>)>,
) -> Verdict {
    if !is_fragmentable(frame.buf, frame.start + ip.l3_start, ip.is_ipv6) {
        return icmp_error(ctx, frame, ip, key, IcmpKind::TooBig(mtu as u32)).unwrap_or(Verdict::Drop(out.too_big()));
    }
    if !ctx.snap.fragment_ipv4 {
        return Verdict::Drop(out.too_big());
    }
    if let Way::Tunnel(tunnel) = out {
        ctx.label = flow_label(tunnel, key, ip);
    }
    fragment_into(ctx, out, frame, ip, key, mtu, clamp)
}

/// Fragments an IPv4 datagram without DF to `mtu` bytes (RFC 791) into `out`: the later
/// fragments into the spill, each encapsulated, the first in place. A SYN's MSS is clamped to
/// `clamp` (the tunnel it goes into or comes out of, and the one it came out of into it) once
/// the fragments are sure to go, not before: a datagram dropped whole here (no next hop, no
/// room in the spill) is left as it came, as one answered by an error is (RFC 1812 §4.3.2.3),
/// and a drop capture shows it so. The clamp changes no length, so the plan holds after it.
fn fragment_into(
    ctx: &mut Ctx<'_>,
    out: Way<'_>,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    key: &Key,
    mtu: usize,
    clamp: Option<(&Tunnel, Option<&Tunnel>)>,
) -> Verdict {
    let Some(eth) = ctx.eth else { return Verdict::Drop(DropReason::NextHopUnresolved) };
    let (reason, tunnel) = match out {
        Way::Tunnel(t) => (TxReason::Fragment, Some(t.id)),
        Way::Backbone(_) => (TxReason::Backbone, None),
        Way::Link(reason) => (reason, None),
    };
    let l3 = frame.start + ip.l3_start;
    let Some(packet) = frame.buf.get(l3..l3 + ip.l3_len) else { return Verdict::Drop(DropReason::Truncated) };
    let Ok(plan) = Plan::new(packet, mtu) else { return Verdict::Drop(out.too_big()) };
    if ctx.spill.room() < plan.count() - 1 {
        return Verdict::Drop(DropReason::FragmentsOverflow);
    }
    if let Some((clamp_to, also)) = clamp {
        clamp_mss(ctx, frame, ip, key, clamp_to, also);
    }
    if let Way::Tunnel(_) | Way::Link(_) = out {
        decrement_ttl(frame.buf, l3, false);
    }
    let packet = &frame.buf[l3..l3 + ip.l3_len];
    let tos = Ipv4Packet::new_unchecked(packet).tos();
    let (spill_before, spilled_before) = (ctx.spill.len(), ctx.spilled);
    for index in 1..plan.count() {
        let Some(slot) = ctx.spill.next_slot() else { break };
        let Some(len) = slot.get_mut(HEADROOM..).and_then(|out| plan.write_later(packet, index, out)) else { break };
        let framed = match out.gre() {
            Some(gre) => encap_gre(slot, HEADROOM, len, PROTO_IPV4, tos, gre, eth).ok(),
            None => prepend_ethernet(slot, HEADROOM, eth, ETHERTYPE_IPV4),
        };
        if let Some(start) = framed {
            if let Way::Tunnel(t) = out {
                label_outer(slot, start, t, ctx.label);
            }
            ctx.spill.push(start, HEADROOM + len - start, reason, tunnel);
            ctx.spilled = ctx.spilled.saturating_add(1);
        }
    }
    let len = plan.shrink_to_first(&mut frame.buf[l3..l3 + ip.l3_len]);
    let verdict = match out {
        Way::Tunnel(t) => encap(ctx, t, frame.buf, l3, len, false, reason),
        Way::Backbone(g) => match encap_gre(frame.buf, l3, len, PROTO_IPV4, tos, g, eth) {
            Ok(start) => Verdict::Tx { start, len: l3 + len - start, reason },
            Err(EncapError::NoHeadroom) => Verdict::Drop(DropReason::NoHeadroom),
            Err(_) => Verdict::Drop(DropReason::Truncated),
        },
        Way::Link(_) => ethernet(ctx, frame.buf, l3, len, false, reason),
    };
    if !matches!(verdict, Verdict::Tx { .. }) {
        // The datagram is dropped whole: none of its later fragments may go alone.
        ctx.spill.truncate(spill_before);
        ctx.spilled = spilled_before;
    }
    verdict
}

/// An ICMP error to originate.
#[derive(Clone, Copy, Debug)]
pub(super) enum IcmpKind {
    /// TTL or hop limit exceeded in transit.
    TimeExceeded,
    /// Fragmentation needed (IPv4 with DF) or packet too big (IPv6), with the MTU.
    TooBig(u32),
}

/// Rewrites the packet into an ICMP error about it and sends that to the packet's source;
/// `None` when no error may be sent (RFC 1812 §4.3.2.7, RFC 4443 §2.4, a source of ours or
/// a link-local one from the Internet, a tunnel's /30 broadcast, a quote short of the
/// packet's headers and 8 bytes, the worker's ICMP rate limit, no IPv6 source address) and
/// the packet is simply dropped.
pub(super) fn icmp_error(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    key: &Key,
    kind: IcmpKind,
) -> Option<Verdict> {
    if !error_may_answer(key, ip, kind) {
        return None;
    }
    let l3 = frame.start + ip.l3_start;
    let packet = frame.buf.get(l3..l3 + ip.l3_len)?;
    let header = ip_at(packet, 0, ip.is_ipv6)?;
    if is_unanswerable_source(ctx, header.src_addr()) || is_tunnel_broadcast(ctx.snap, header.dst_addr()) {
        return None;
    }
    if !is_error_allowed(ctx, packet, ip.is_ipv6, kind) {
        return None;
    }
    // Where the error goes is settled before a byte of it is written or a token spent: a
    // packet whose error can go nowhere is dropped as it came (a drop capture shows it so,
    // not with the error's headers over its own), and the error quotes what fits the tunnel
    // it goes into (RFC 1812 §4.3.2.3, RFC 4443 §2.4 (c): as much as fits; a full quote
    // was dropped as `mtu_exceeded`, and out of a tunnel the hop vanished from the sender's
    // tracepath). An IPv4 one about a packet that came out of a tunnel comes from our side
    // of it where it has one (RFC 1812 §4.3.2.4: an address of the interface it leaves by;
    // the anycast address is not on the tunnel, and a router filtering sources strictly on
    // it dropped every such error).
    let way = match error_way(ctx, header.src_addr(), ip.is_ipv6) {
        Ok(way) => way,
        Err(reason) => return Some(Verdict::Drop(reason)),
    };
    if ctx.eth.is_none() {
        return Some(Verdict::Drop(DropReason::NextHopUnresolved));
    }
    // A quote too short to name the packet takes no error, and spends no token.
    let quoted = error_quote_len(ctx, way, ip, packet)?;
    if !ctx.limits.icmp.admit(0, 0, ctx.now) {
        return None;
    }
    let (start, len) = write_error(ctx, frame.buf, l3, quoted, ip.is_ipv6, kind)?;
    let reason = kind.tx_reason();
    Some(match way {
        Some(tunnel) => back_into(ctx, tunnel, frame.buf, start, len, ip.is_ipv6, reason),
        None => ethernet(ctx, frame.buf, start, len, ip.is_ipv6, reason),
    })
}

/// Whether `gre::icmp` lets a router send an error about `packet` (RFC 1812 §4.3.2.7, RFC
/// 4443 §2.4), and, about an IPv6 one, whether there is an address to send it from
/// (`anycast_v6`). Once per error about to be sent (`#[inline]`: one call site).
#[inline]
fn is_error_allowed(ctx: &Ctx<'_>, packet: &[u8], is_ipv6: bool, kind: IcmpKind) -> bool {
    if is_ipv6 {
        ctx.snap.anycast_v6.is_some() && icmp::ipv6_error_allowed(packet, kind.v6())
    } else {
        icmp::ipv4_error_allowed(packet)
    }
}

/// How many bytes of the packet (`ip`, its bytes `packet`) an error about it quotes on `way`
/// (`None`: the next hop); `None` if that would not name the packet to its sender.
#[inline]
fn error_quote_len(ctx: &Ctx<'_>, way: Option<&Tunnel>, ip: &IpFrame, packet: &[u8]) -> Option<usize> {
    let room = way.map_or(usize::MAX, |t| room(ctx, t, ip.is_ipv6));
    let (headers, most) = if ip.is_ipv6 {
        (IPV6_HEADER_LEN + icmp::ICMP_HEADER_LEN, icmp::ICMPV6_ERROR_MAX)
    } else {
        (IPV4_HEADER_LEN + icmp::ICMP_HEADER_LEN, icmp::ICMPV4_ERROR_MAX)
    };
    // As much as fits the way and the largest error (RFC 1812 §4.3.2.3, RFC 4443 §2.4 (c)).
    let quoted = ip.l3_len.min(room.min(most).saturating_sub(headers));
    // A quote that would end before the packet's headers and the 8 bytes after them takes no
    // error, and spends no token: cut there, it named nothing to its sender (RFC 792; Linux
    // drops such an ICMPv6 error unread). It comes of a way too small for them (a tunnel
    // `mtu` under 36 bytes more than an optioned IPv4 header, 56 more than IPv6 headers), or
    // of IPv6 extension headers longer than an error quotes.
    let suffices = if ip.is_ipv6 {
        icmp::ipv6_quote_suffices(ip.l3_len, headers_walked(ip), quoted)
    } else {
        icmp::ipv4_quote_suffices(packet, quoted)
    };
    suffices.then_some(quoted)
}

/// Writes the error of `kind` about the packet at `buf[l3..]`, quoting `quoted` bytes of it,
/// into the headroom in front of it; returns where the error's IP packet starts and its
/// length. An IPv6 one comes from `anycast_v6`; an IPv4 one from our side of the tunnel the
/// packet came out of, where it has one, else from the anycast address.
#[inline]
fn write_error(
    ctx: &Ctx<'_>,
    buf: &mut [u8],
    l3: usize,
    quoted: usize,
    is_ipv6: bool,
    kind: IcmpKind,
) -> Option<(usize, usize)> {
    if is_ipv6 {
        let src = ctx.snap.anycast_v6?;
        icmp::icmpv6_error(buf, l3, quoted, kind.v6(), src, ICMP_TTL)
    } else {
        let back = ctx.from.and_then(|t| ctx.snap.tunnels.get(usize::from(t)));
        let src = back.and_then(|t| t.interface).map_or(Ipv4Addr::from(ctx.snap.anycast), |i| i.ours);
        icmp::icmpv4_error(buf, l3, quoted, kind.v4(), src, ICMP_TTL)
    }
}

impl IcmpKind {
    /// The ICMPv4 error of this kind.
    fn v4(self) -> Icmpv4Error {
        match self {
            IcmpKind::TimeExceeded => Icmpv4Error::TtlExceeded,
            IcmpKind::TooBig(mtu) => Icmpv4Error::FragmentationNeeded { next_hop_mtu: mtu.min(65535) as u16 },
        }
    }

    /// The ICMPv6 error of this kind.
    fn v6(self) -> Icmpv6Error {
        match self {
            IcmpKind::TimeExceeded => Icmpv6Error::HopLimitExceeded,
            IcmpKind::TooBig(mtu) => Icmpv6Error::PacketTooBig { mtu },
        }
    }

    /// What the frame is once it carries an error of this kind.
    fn tx_reason(self) -> TxReason {
        match self {
            IcmpKind::TimeExceeded => TxReason::IcmpTimeExceeded,
            IcmpKind::TooBig(_) => TxReason::IcmpTooBig,
        }
    }
}

/// Whether no error may go to `src`, the source of the packet it is about, beyond what
/// `gre::icmp` checks of any router's errors: an address of ours (the anycast addresses, our
/// side of any tunnel), as a packet "from" one came from someone else, and the error would go
/// to the next hop or into a tunnel, back to an edge, and spend the budget on nobody; or, from
/// the Internet, a link-local source (169.254/16, fe80::/10): no router forwards such a
/// packet off its link (RFC 3927 §7, RFC 4291 §2.5.6), so whoever sent it is not where the
/// error would go. Out of a tunnel it is the tunnel's own link (a router's inner address may
/// be 169.254.x.y), and answered there. Or the network or broadcast address of a tunnel's
/// inner /30, which names no one host ([`is_tunnel_broadcast`]).
pub(super) fn is_unanswerable_source(ctx: &Ctx<'_>, src: IpAddr) -> bool {
    let link_local = match src {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    };
    dos::is_our_address(ctx.snap, src) || (link_local && ctx.from.is_none()) || is_tunnel_broadcast(ctx.snap, src)
}

/// Whether `a` is the network or broadcast address of a tunnel's inner /30
/// ([`Snapshot::is_tunnel_broadcast`]): no error is sent about a packet to or from one (RFC
/// 1812 §4.3.2.7). Only the configuration tells these from unicast, so `gre::icmp` cannot
/// check them.
fn is_tunnel_broadcast(snap: &Snapshot, a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(a) if snap.is_tunnel_broadcast(a))
}

/// The bytes of the IPv6 packet `ip` that a receiver of an error quoting it walks as headers
/// before the 8 it reads to tell what the error is about ([`icmp::ipv6_quote_suffices`]): up
/// to the transport header or, in a later fragment, whose data holds none, up to its fragment
/// header, the 8 bytes read being that header's (Linux's `ipv6_skip_exthdr` stops at it and
/// `icmpv6_notify` reads no further; KAME's `icmp6_notify_error` reads it whole and lowers the
/// path MTU by a Packet Too Big). Asking 8 bytes of data past it as well refused a Packet Too
/// Big into a tunnel of `mtu` 96 to 103 that a receiver takes.
fn headers_walked(ip: &IpFrame) -> usize {
    match ip.fragment {
        // Its fragment header begins where the extension headers before it end.
        Some(f) if f.offset > 0 => IPV6_HEADER_LEN + f.headers,
        _ => ip.l4_start.saturating_sub(ip.l3_start),
    }
}

/// What the parser read of the packet, past IPv6 extension headers and AH (the header
/// checks in `gre::icmp` see only the first next header): no error about an ICMP error
/// however deep it sits (RFC 1812 §4.3.2.7, RFC 4443 §2.4 (e)), and no Time Exceeded about
/// a fragment other than the first (IPv4 refuses every error about one; an IPv6 Packet Too
/// Big about any fragment is what path MTU discovery needs). A first fragment's protocol is
/// its own even where the key has no transport (ICMP before 6 bytes, as tshark): with no
/// type to tell, it may be an error, and is not answered.
fn error_may_answer(key: &Key, ip: &IpFrame, kind: IcmpKind) -> bool {
    if ip.is_later_fragment() && (!ip.is_ipv6 || matches!(kind, IcmpKind::TimeExceeded)) {
        return false;
    }
    let icmp_type = key.get(Dim::IcmpType);
    let protocol = ip.fragment.filter(|f| f.offset == 0).map_or(key.get(Dim::L4Proto), |f| u32::from(f.protocol));
    match protocol {
        1 => u8::try_from(icmp_type).is_ok_and(gre::icmp::icmpv4_is_informational),
        // Errors (below 128) and Redirects (137) are never answered (RFC 4443 §2.4 e.1, e.2).
        58 => icmp_type != ABSENT && icmp_type >= 128 && icmp_type != u32::from(gre::icmp::ICMPV6_REDIRECT),
        _ => true,
    }
}

/// The tunnel an error to `dst` (the source of the packet it is about) goes into: the one
/// its cause came out of, else the tunnel of the customer whose prefix holds `dst`; `None`
/// for the next hop. A customer's prefix with no route to `dst` takes no error (`no_route`).
fn error_way<'s>(ctx: &Ctx<'s>, dst: IpAddr, is_ipv6: bool) -> Result<Option<&'s Tunnel>, DropReason> {
    let snap = ctx.snap;
    // The source of a decapsulated packet is behind its tunnel, even where no prefix of the
    // customer holds it (the router's own tunnel address).
    if let Some(tunnel) = ctx.from.and_then(|t| snap.tunnels.get(usize::from(t))) {
        return Ok(Some(tunnel));
    }
    let mut key = Key::new(0);
    match dst {
        IpAddr::V6(dst) => key.set_ipv6([0; 16], dst.octets(), 58, 0, 0),
        IpAddr::V4(dst) => key.set_ipv4([0; 4], dst.octets(), 1, 0, 0, false, false, 0),
    }
    let Some(customer) = snap.customer_by_prefix.lookup(is_ipv6, key.dst_addr()) else { return Ok(None) };
    let customer = &snap.customers[usize::from(customer)];
    let tunnel = route(snap, customer, &key, is_ipv6).and_then(|g| choose_tunnel(snap, g, || flow_fold(&key, 0)));
    tunnel.and_then(|t| snap.tunnels.get(usize::from(t))).map(Some).ok_or(DropReason::NoRoute)
}

/// Sends the IP packet we made at `buf[l3..l3 + len]` into `tunnel`: the one its cause came
/// out of (a reply to a ping of our side of it, a SYN challenge, an ICMP error), or the one
/// toward an error's destination.
pub(super) fn back_into(
    ctx: &mut Ctx<'_>,
    tunnel: &Tunnel,
    buf: &mut [u8],
    l3: usize,
    len: usize,
    is_ipv6: bool,
    reason: TxReason,
) -> Verdict {
    // The tunnel's MTU is what its path takes, whatever the router sent us: an echo reply
    // as long as a request that just fitted its way in may not fit back.
    if len > room(ctx, tunnel, is_ipv6) {
        return Verdict::Drop(DropReason::MtuExceeded);
    }
    encap(ctx, tunnel, buf, l3, len, is_ipv6, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        let text = r#"
[server]
anycast = "192.0.2.1"
[[customer]]
name = "c"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "a"
remote = "198.51.100.1"
[[customer.tunnel]]
name = "b"
remote = "198.51.100.2"
[[customer.tunnel]]
name = "backup"
remote = "198.51.100.3"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "backup"
priority = 200
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "a"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "b"
weight = 3
"#;
        Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap()
    }

    /// Tunnel counts over 40000 flows.
    fn spread(s: &Snapshot) -> [u32; 3] {
        let group = &s.route_groups[0];
        let mut n = [0u32; 3];
        for i in 0..40_000u64 {
            let flow = classifier::limit::mix(i);
            let t = choose_tunnel(s, group, || flow).unwrap();
            assert_eq!(choose_tunnel(s, group, || flow), Some(t), "a flow stays on its tunnel");
            n[usize::from(t)] += 1;
        }
        n
    }

    #[test]
    fn equal_priorities_share_by_weight_and_backups_wait() {
        let s = snap();
        let [a, b, backup] = spread(&s);
        assert_eq!(backup, 0);
        // Weights 1 and 3: a quarter and three quarters, within 2 %.
        assert!((9_200..=10_800).contains(&a) && (29_200..=30_800).contains(&b), "{a} {b}");
    }

    /// The approximate logarithm against libm's, over the range the hash gives.
    #[test]
    fn ln_approx_is_within_its_bound() {
        let mut worst = 0f64;
        let step = 1.0 / (1u64 << 52) as f64;
        let mut worst_near_1 = 0f64;
        for i in 0..200_000u64 {
            let h = classifier::limit::mix(i) >> 12;
            // Random, the smallest, just below 1 and just either side of powers of two.
            let edges = [(h as f64 + 0.5) * step, (i as f64 + 0.5) * step, 1.0 - (i as f64 + 0.5) * step];
            let around = [0.5, 0.25, 2f64.powi(-20)].map(|p| p * (1.0 + (i as f64 - 1e5) * 1e-9));
            for u in edges.into_iter().chain(around) {
                worst = worst.max((ln_approx(u) - u.ln()).abs());
                if u > 0.9 {
                    worst_near_1 = worst_near_1.max(((ln_approx(u) - u.ln()) / u.ln()).abs());
                }
            }
        }
        assert!(worst < 1e-7, "{worst}");
        assert!(worst_near_1 < 1e-6, "{worst_near_1}");
    }

    /// One customer with tunnels `t0`, `t1`, ... of these weights, all routes to one prefix.
    fn weighted(weights: &[u16]) -> Snapshot {
        let mut text =
            "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n"
                .to_string();
        for (i, w) in weights.iter().enumerate() {
            text += &format!(
                "[[customer.tunnel]]\nname = \"t{i}\"\nremote = \"198.51.100.{}\"\n[[customer.route]]\n\
                 prefix = \"203.0.113.0/24\"\ntunnel = \"t{i}\"\nweight = {w}\n",
                i + 1
            );
        }
        Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap()
    }

    /// Each of 40,000 flows' tunnel.
    fn picks(s: &Snapshot) -> Vec<TunnelId> {
        (0..40_000u64).map(|i| choose_tunnel(s, &s.route_groups[0], || classifier::limit::mix(i)).unwrap()).collect()
    }

    /// A tunnel going down moves its own flows, over the others by weight, and no other
    /// flow; back up, each of its flows returns to it.
    #[test]
    fn a_tunnel_going_down_moves_its_own_flows_only() {
        let s = weighted(&[1, 2, 3, 4]);
        let before = picks(&s);
        // Weights 1..=4 of 10: each tunnel's share within 2 % of the flows.
        for t in 0..4u16 {
            let n = before.iter().filter(|&&x| x == t).count() as i64;
            assert!((n - 4_000 * (i64::from(t) + 1)).abs() <= 800, "tunnel {t}: {n}");
        }
        s.health.set_up(2, false);
        let during = picks(&s);
        let mut moved = [0u32; 4];
        for (b, d) in before.iter().zip(&during) {
            if *b == 2 {
                assert_ne!(*d, 2);
                moved[usize::from(*d)] += 1;
            } else {
                assert_eq!(b, d, "a flow of a tunnel that stayed up moved");
            }
        }
        // Tunnel 2's 12,000 flows over weights 1, 2 and 4 (of 7), within 3 %.
        for (t, w) in [(0usize, 1i64), (1, 2), (3, 4)] {
            let expect = 12_000 * w / 7;
            assert!((i64::from(moved[t]) - expect).abs() <= 360, "tunnel {t} took {} of 12000", moved[t]);
        }
        s.health.set_up(2, true);
        assert_eq!(picks(&s), before, "back up, its flows return");

        // Weights 1, 1 and 2: the odd one down leaves equal weights (still scored, as the
        // group's weights differ); the flows of the two that stayed up stay on them.
        let s = weighted(&[1, 1, 2]);
        let before = picks(&s);
        s.health.set_up(2, false);
        for (b, d) in before.iter().zip(picks(&s)) {
            assert!(if *b == 2 { d != 2 } else { *b == d }, "{b} -> {d}");
        }

        // Equal weights, ranked by the hash alone: a quarter each, and the same moves only.
        let s = weighted(&[1, 1, 1, 1]);
        let before = picks(&s);
        for t in 0..4u16 {
            let n = before.iter().filter(|&&x| x == t).count() as i64;
            assert!((n - 10_000).abs() <= 800, "tunnel {t}: {n}");
        }
        s.health.set_up(1, false);
        for (b, d) in before.iter().zip(picks(&s)) {
            assert!(if *b == 1 { d != 1 } else { *b == d }, "{b} -> {d}");
        }
    }

    #[test]
    fn traffic_leaves_tunnels_that_are_down() {
        let s = snap();
        s.health.set_up(1, false);
        assert_eq!(spread(&s), [40_000, 0, 0]);
        s.health.set_up(0, false);
        assert_eq!(spread(&s), [0, 0, 40_000], "the backup takes over");
        s.health.set_up(2, false);
        let [a, b, backup] = spread(&s);
        assert!(a > 0 && b > 0 && backup == 0, "all down: the best priority as if up");
    }
}
