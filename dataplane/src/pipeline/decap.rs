//! The decapsulation stages: GRE from a customer's router to the anycast address.
//!
//! GRE a router fragmented is first put back together in the worker's fixed memory
//! ([`gre::reassembly`]); the fragment that completes a datagram goes on as the whole. The
//! tunnel is found by the outer source and the key, exactly (RFC 2890: a keyed tunnel takes
//! only packets with its key, an unkeyed one only packets without). What comes out is then
//! one of:
//! - a GRE keepalive (an inner packet from us back to the router, RFC 2784 carries it like
//!   any other): returned to the router as routers expect, unchanged but for its TTL;
//! - from a source that is not the customer's: dropped, whatever it is addressed to;
//! - addressed to our side of the tunnel: a health-probe reply (recorded), a ping
//!   (answered through the tunnel), or nothing we serve;
//! - the customer's own traffic: it passes the customer's egress rules, and goes to the
//!   Internet, or, addressed to a customer prefix, through that customer's ingress stages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use classifier::{Dim, Key};
use gre::icmp::{
    ICMP_HEADER_LEN, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST, ipv4_echo_answerable, ipv4_echo_reply_in_place,
    is_ipv4_message_intact,
};
use gre::packet::{PROTO_IPV4, PROTO_IPV6};
use gre::reassembly::{FirstWent, Offer, Refusal};
use gre::{GrePacket, GreRepr, IpPacket, ecn};

use super::dos::{self, RuleId, one_form};
use super::forward::{self, Ctx, back_into, to_next_hop};
use super::ingress::{admit, steer, to_customer};
use super::parse::{IpFrame, Parsed, parse_frame_into, parse_inner, terminable};
use super::verdict::{ConsumeReason, DropReason, PassReason, TxReason, Verdict};
use super::{Frame, by_fate};
use super::{Outcome, WouldLimit};
use crate::snapshot::health::{probe_sender, probe_tunnel};
use crate::snapshot::{RemoteAddr, Snapshot, Tunnel, TunnelId};

/// IP protocol number of GRE.
const GRE: u32 = gre::encap::IPPROTO_GRE as u32;
/// IPv6 next-header number of a Destination Options header.
const DESTINATION_OPTIONS: u32 = 60;

/// True for GRE (or a fragment of it) addressed to one of our anycast addresses.
pub(super) fn is_gre_to_us(snap: &Snapshot, key: &Key, ip: &IpFrame) -> bool {
    let proto = ip.fragment.map_or(key.get(Dim::L4Proto), |f| u32::from(f.protocol));
    if proto == GRE {
        return is_anycast(snap, key.dst_addr(), ip.is_ipv6);
    }
    // RFC 8200 §4.5: destination options with no routing header before them are in the
    // fragmentable part, behind the fragment header (RFC 2473's tunnel encapsulation limit
    // is such an option), so every later fragment of such GRE names them, not GRE, while its
    // first fragment reads on to GRE and waits for them. From a tunnel's router (which sends
    // the anycast address nothing else) they are taken for GRE, as the XDP program takes them.
    proto == DESTINATION_OPTIONS
        && ip.is_ipv6
        && !ip.under_ah
        && ip.is_later_fragment()
        && is_anycast(snap, key.dst_addr(), true)
        && router_of_source(snap, key, true).is_some()
}

/// True when `dst` (as the key holds it) is one of our anycast addresses.
fn is_anycast(snap: &Snapshot, dst: u128, is_ipv6: bool) -> bool {
    match is_ipv6 {
        true => snap.anycast_v6.is_some_and(|a| u128::from(a) == dst),
        false => (dst >> 96) as u32 == u32::from_be_bytes(snap.anycast),
    }
}

/// Where the tunnels of the router that sent the outer packet start in the tunnel index
/// ([`router_entries`]), if its source is a tunnel's router. An IPv4-mapped IPv6 source
/// (::ffff:a.b.c.d) is no router's: the tunnel index keeps IPv4 remotes in that form, and no
/// router sends IPv6 from one (RFC 4291 §2.5.5.2).
#[inline(always)] // decapsulation's, on every GRE packet
fn router_of_source(snap: &Snapshot, outer_key: &Key, is_ipv6: bool) -> Option<usize> {
    let src = outer_key.src_addr();
    let mapped = is_ipv6 && src >> 32 == 0xffff;
    if mapped { None } else { router_entries(snap, one_form(src, outer_key)) }
}

/// Where the tunnels of router `remote` start in the tunnel index (sorted by remote, then
/// key), if it is some tunnel's router.
#[inline(always)] // decapsulation's, on every GRE packet; path MTU discovery's too
pub(super) fn router_entries(snap: &Snapshot, remote: RemoteAddr) -> Option<usize> {
    let index = &snap.tunnel_index;
    let at = index.partition_point(|e| e.0 < remote);
    index.get(at).is_some_and(|e| e.0 == remote).then_some(at)
}

/// The tunnel of the router whose entries start at `at` ([`router_entries`]) that takes
/// GRE with `gre_key`: its first entry, as a router with one tunnel has, or by a search of
/// the rest; `gre_key_mismatch` if none.
#[inline(always)] // as router_entries
pub(super) fn find_tunnel(snap: &Snapshot, at: usize, gre_key: Option<u32>) -> Result<TunnelId, DropReason> {
    let entries = snap.tunnel_index.get(at..).unwrap_or(&[]);
    let Some(&(remote, key, first)) = entries.first() else { return Err(DropReason::GreKeyMismatch) };
    if key == gre_key {
        return Ok(first);
    }
    match entries.binary_search_by(|e| (e.0, e.1).cmp(&(remote, gre_key))) {
        Ok(i) => Ok(entries[i].2),
        Err(_) => Err(DropReason::GreKeyMismatch),
    }
}

/// GRE addressed to us.
pub(super) fn process(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    outer_key: &Key,
    outer: &IpFrame,
    outcome: &mut Outcome,
) {
    outcome.verdict = decap(ctx, frame, outer_key, outer, outcome);
}

fn decap(ctx: &mut Ctx<'_>, frame: &mut Frame<'_>, outer_key: &Key, outer: &IpFrame, outcome: &mut Outcome) -> Verdict {
    let snap = ctx.snap;
    let router = match router_of(ctx, frame, outer_key, outer) {
        Ok(router) => router,
        Err(verdict) => return verdict,
    };
    // RFC 1812 §5.3.4 once the GRE is ours (from a tunnel's router, not refused above): a
    // router ends no tunnel on a frame received as a link-layer broadcast. GRE not ours went
    // by `gre_unsupported` above, whatever the link address, as the XDP program passes it
    // (`gre_unsupported = "pass"`) before the data plane could judge the address.
    if super::sent_to_a_link_group(outer_key) {
        return Verdict::Drop(DropReason::LinkBroadcast);
    }
    let whole;
    let outer = match outer.fragment {
        None => outer,
        Some(_) if !snap.gre_reassembly => return Verdict::Drop(DropReason::GreFragment),
        Some(_) => match reassemble(ctx, frame, outer) {
            Ok(ip) => {
                whole = ip;
                &whole
            }
            Err(verdict) => return verdict,
        },
    };
    let (tid, repr) = match tunnel_of(snap, frame, outer, router) {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let tunnel = &snap.tunnels[usize::from(tid)];
    outcome.tunnel = Some(tid);
    outcome.from_tunnel = Some(tid);
    ctx.from = Some(tid);
    outcome.customer = Some(tunnel.customer);
    forward_carried(ctx, frame, outer, tid, tunnel, &repr, outcome)
}

/// The packet the GRE of `outer` carries from tunnel `tid`: parsed, then returned to the
/// router (a keepalive), served (our side of the tunnel), dropped, or sent on to a customer
/// or the Internet.
#[inline(always)] // one call, from decap
fn forward_carried(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    outer: &IpFrame,
    tid: TunnelId,
    tunnel: &Tunnel,
    repr: &GreRepr,
    outcome: &mut Outcome,
) -> Verdict {
    let snap = ctx.snap;
    // The inner packet: parsed within the outer one, offsets the frame's.
    let outer_end = frame.start + outer.l3_start + outer.l3_len;
    let data = frame.buf.get(frame.start..outer_end).unwrap_or(&[]);
    let mut key = Key::new(frame.wire_len);
    let ip = match parse_inner(&mut key, data, outer.l4_start + repr.header_len(), repr.protocol) {
        Parsed::Ip(ip) => ip,
        Parsed::NotIp | Parsed::Mpls => return unsupported(snap),
        Parsed::Bad(reason) => return Verdict::Drop(reason),
    };
    if !ip.is_ipv6 && !forward::ipv4_checksum_ok(data, &ip) {
        return Verdict::Drop(DropReason::BadIpv4Checksum);
    }
    snap.membership.fill(&mut key); // for the customer's egress rules

    if is_keepalive(tunnel, &key, &ip, data) {
        // Its source is our end of the tunnel: a Time Exceeded about it would be addressed
        // to ourselves (RFC 1812 §4.3.2.7's spirit: no error to a source that is us).
        if forward::ttl_expires(frame.buf, frame.start + ip.l3_start, ip.is_ipv6) {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        return to_next_hop(ctx, frame, &ip, &key, tunnel, TxReason::Keepalive);
    }
    // Before our side is served too: a ping's reply goes back through the tunnel to the
    // ping's source, which must then be one the customer may send from, not another
    // customer's host or any address of the Internet the request names.
    if !source_is_customers(snap, tunnel, &key, ip.is_ipv6) {
        return Verdict::Drop(DropReason::DecapSpoofedSource);
    }
    if let Some(iface) = tunnel.interface
        && !ip.is_ipv6
        && (key.dst_addr() >> 96) as u32 == u32::from(iface.ours)
    {
        return to_our_side(ctx, frame, &ip, &key, tid, tunnel);
    }
    let dst = key.dst_addr();
    // Any tunnel's /30: its own is a broadcast on the link it came by; another's would
    // leave for that link or the next hop.
    let link_broadcast = !ip.is_ipv6 && snap.is_tunnel_broadcast(std::net::Ipv4Addr::from((dst >> 96) as u32));
    if is_martian_destination(dst, ip.is_ipv6) || is_ours(snap, dst, ip.is_ipv6) || link_broadcast {
        return Verdict::Drop(DropReason::DecapMartianDestination);
    }
    let target = steer(snap, &key, ip.is_ipv6);
    if let Some(verdict) = target.and_then(|_| onward_checks(ctx, &key, &ip, data, outcome)) {
        return verdict;
    }
    if let Some(verdict) = egress_rules(ctx, tunnel, &key, data, outcome) {
        return verdict;
    }
    if let Err(reason) = carry_ecn(frame, outer, &ip) {
        return Verdict::Drop(reason);
    }
    if let Some(target) = target {
        // Through that customer's ingress stages.
        outcome.tunnel = None;
        to_customer(ctx, frame, &key, &ip, target, outcome);
        return outcome.verdict;
    }
    to_next_hop(ctx, frame, &ip, &key, tunnel, TxReason::Decapsulated)
}

/// The outer packet's checks before its GRE is read: the tunnel router it comes from (where
/// its entries start in the tunnel index), or what becomes of it.
#[inline(always)] // one call, from decap
fn router_of(ctx: &mut Ctx<'_>, frame: &Frame<'_>, outer_key: &Key, outer: &IpFrame) -> Result<usize, Verdict> {
    let snap = ctx.snap;
    if outer.under_ah {
        // An authentication header transitd cannot verify (it holds no security
        // association): decapsulating would take the packet as authenticated. The host may
        // hold the association; the XDP program judges it so too.
        return Err(unsupported(snap));
    }
    let Some(router) = router_of_source(snap, outer_key, outer.is_ipv6) else {
        // From no tunnel's router, GRE is not ours, whatever it holds (a fragment, a cut or
        // bad header, options): the XDP program passes it, or hands it over to be dropped,
        // by `gre_unsupported`, and so does replay.
        return Err(by_fate(snap.gre_unsupported, PassReason::GreUnknownTunnel, DropReason::GreUnknownTunnel));
    };
    // A first fragment's GRE header is judged before it is kept (a later one's data holds
    // none); the datagram it completes is judged whole, as any packet. A first fragment
    // without the GRE header is refused (RFC 7112: it holds the whole header chain; the
    // later fragments must not supply what was judged).
    if !outer.is_later_fragment() {
        let verdict = match gre_fixed_header(frame, outer) {
            Some(header) => not_ours(snap, header),
            None if outer.fragment.is_some() => Some(Verdict::Drop(DropReason::GreFragment)),
            None => None, // a whole packet cut short: GRE's own parse says so
        };
        if let Some(verdict) = verdict {
            if outer.fragment.is_some() {
                // Its later fragments would wait for nothing: those held are given up, those
                // still to come go as it went ([`after_refused_first`]), not kept a second
                // each in slots a sender repeating this would fill.
                let went = if matches!(verdict, Verdict::Pass(_)) { FirstWent::Passed } else { FirstWent::Dropped };
                ctx.limits.reassembly.refuse(outer_packet(frame, outer), ctx.now, went);
            }
            return Err(verdict);
        }
    }
    if outer.fragment.is_some()
        && let Some(verdict) = after_refused_first(ctx, frame, outer)
    {
        return Err(verdict);
    }
    Ok(router)
}

/// A fragment of GRE from a tunnel's router, its header (if it has one) ours: a later
/// fragment of a datagram whose first fragment was refused goes as that one went, before
/// the link address is judged (GRE not ours goes by `gre_unsupported` whatever it was sent
/// to). Passed to the host as GRE not ours, the rest follows it there (`gre_unsupported`),
/// as the XDP program passes it (it remembers the first fragments it passed, `gre_refused`
/// in `bpf/src/bpf/maps.h`): the host gets the whole datagram, and no slot is held for it.
/// A first fragment dropped (its GRE not ours under "drop", or no GRE header), or one passed
/// here before a reload to `gre_unsupported = "drop"`, has the rest dropped as it comes
/// (`gre_fragment_of_refused`). (Under `run` the program passed the first itself: after such
/// a reload it hands the rest over, which, its first never seen here, is held and given up.)
/// A first fragment ends the refusal of its identity (identifications come round), as the
/// program forgets it.
#[cold]
#[inline(never)]
fn after_refused_first(ctx: &mut Ctx<'_>, frame: &Frame<'_>, outer: &IpFrame) -> Option<Verdict> {
    let snap = ctx.snap;
    Some(match ctx.limits.reassembly.refused_first(outer_packet(frame, outer), ctx.now)? {
        FirstWent::Passed => {
            by_fate(snap.gre_unsupported, PassReason::GreUnsupported, DropReason::GreFragmentOfRefused)
        }
        FirstWent::Dropped => Verdict::Drop(DropReason::GreFragmentOfRefused),
    })
}

/// The outer IP packet of `frame`, from its header to its length (without link padding).
fn outer_packet<'a>(frame: &'a Frame<'_>, outer: &IpFrame) -> &'a [u8] {
    let at = frame.start + outer.l3_start;
    frame.buf.get(at..at + outer.l3_len).unwrap_or(&[])
}

/// The whole outer packet's GRE header, checked, and the tunnel of `router` it names.
#[inline(always)] // one call, from decap
fn tunnel_of(
    snap: &Snapshot,
    frame: &Frame<'_>,
    outer: &IpFrame,
    router: usize,
) -> Result<(TunnelId, GreRepr), Verdict> {
    let outer_end = frame.start + outer.l3_start + outer.l3_len;
    let gre_start = frame.start + outer.l4_start;
    let Some(bytes) = frame.buf.get(gre_start..outer_end) else { return Err(Verdict::Drop(DropReason::Truncated)) };
    let optioned = if outer.is_ipv6 { outer.extension_headers > 0 } else { outer.header_len > 20 };
    if optioned && !terminable(frame.buf.get(frame.start + outer.l3_start..outer_end).unwrap_or(&[]), outer) {
        // A source route through us, or an option we must not ignore: ending the packet
        // here would take it from where its sender sent it (Linux drops these too).
        return Err(Verdict::Drop(DropReason::DecapOuterForbids));
    }
    let repr = GreRepr::parse(&GrePacket::new_unchecked(bytes)).map_err(|e| Verdict::Drop(e.into()))?;
    let tid = find_tunnel(snap, router, repr.key).map_err(Verdict::Drop)?;
    Ok((tid, repr))
}

/// To a customer prefix (this one's or another's), a decapsulated packet meets the sanity
/// checks of the packet and a source route onward first, as from the Internet
/// (`path_by_address`): no egress token is spent on what they drop. And the global DoS
/// rules, which protect every customer: they judged the GRE packet, addressed to us, not
/// the traffic it carries to a customer (a tenant flooded another past a per-destination
/// limit). A bucket and key the GRE packet paid are not paid twice.
#[inline(always)] // one call, from decap
fn onward_checks(ctx: &mut Ctx<'_>, key: &Key, ip: &IpFrame, data: &[u8], outcome: &mut Outcome) -> Option<Verdict> {
    let snap = ctx.snap;
    if ip.routed_onward && snap.dos.sanity.source_route {
        return Some(Verdict::Drop(DropReason::SourceRouted));
    }
    if let Some(reason) = super::dos::packet_sanity(&snap.dos.sanity, key, ip) {
        return Some(Verdict::Drop(reason));
    }
    let global = dos::apply(ctx, &snap.dos.rules, key, data);
    // The frame keeps one global rule of each kind for its counters: the carried packet's
    // where it met one, else the GRE packet's. Whether a preview refused belongs to the
    // monitor-mode rule kept: the GRE packet's refusal once went to the carried packet's
    // rule (a bucket that refused nothing counted refusals), and a GRE packet's preview was
    // lost wherever an enforced rule decided the carried packet. One rule refused the frame
    // if it refused either packet.
    outcome.dos_rule = global.rule.or(outcome.dos_rule);
    if let Some(monitor) = global.monitor {
        let refused_outside = outcome.dos_monitor == Some(monitor) && outcome.would_limit.has(WouldLimit::DOS);
        outcome.dos_monitor = Some(monitor);
        outcome.would_limit.replace(WouldLimit::DOS, global.would_limit || refused_outside);
    }
    global.drop.map(Verdict::Drop)
}

/// The tunnel's customer's egress rules on a decapsulated packet: a drop, or `None` to go on.
#[inline(always)] // one call, from decap
fn egress_rules(ctx: &mut Ctx<'_>, tunnel: &Tunnel, key: &Key, data: &[u8], outcome: &mut Outcome) -> Option<Verdict> {
    let customer = &ctx.snap.customers[usize::from(tunnel.customer)];
    let decision = customer.egress.decide(key, data);
    outcome.egress_rule = decision.rule.map(|r| customer.egress_base + r);
    outcome.egress_monitor = decision.monitor.map(|r| customer.egress_base + r);
    let id = |m| RuleId::firewall(Some(customer.egress_base + m));
    outcome.would_limit.set(WouldLimit::EGRESS, dos::would_limit(ctx, &customer.egress, decision.monitor, id, key));
    outcome.by_default = decision.rule.is_none();
    if admit(ctx, decision.action, key, outcome.egress_rule) {
        return None;
    }
    Some(Verdict::Drop(match decision.action {
        classifier::Action::Drop => DropReason::Egress,
        _ => DropReason::RateLimited,
    }))
}

/// GRE of another version (PPTP's), or with a payload we do not carry: not ours whatever
/// the rest of the header, the outer options or a first fragment's flag say. The XDP
/// program reads the fixed header alone and judges so, and the two agree.
fn not_ours(snap: &Snapshot, (version, protocol): (u8, u16)) -> Option<Verdict> {
    (version != 0 || (protocol != PROTO_IPV4 && protocol != PROTO_IPV6)).then(|| unsupported(snap))
}

/// The GRE fixed header's version and protocol type, if the packet holds it.
fn gre_fixed_header(frame: &Frame<'_>, outer: &IpFrame) -> Option<(u8, u16)> {
    let outer_end = frame.start + outer.l3_start + outer.l3_len;
    let bytes = frame.buf.get(frame.start + outer.l4_start..outer_end)?;
    GrePacket::new_unchecked(bytes).fixed_header()
}

/// Offers a fragment of GRE from a tunnel's router to the worker's reassembler. The
/// fragment that completes a datagram has the whole written over it, behind its own link
/// header, and goes on as that packet: its IP header as parsed. Any other is kept
/// (`consumed:gre_fragment_held`) or refused (`gre_fragment`; `gre_fragment_of_refused`
/// after its datagram's first fragment was).
#[cold]
#[inline(never)]
fn reassemble(ctx: &mut Ctx<'_>, frame: &mut Frame<'_>, outer: &IpFrame) -> Result<IpFrame, Verdict> {
    let at = frame.start + outer.l3_start;
    // The whole is written where the IP packet of the frame that completes it starts: no
    // longer than the configured frame size allows, as any frame that arrives whole (what
    // a fragment says past that is refused as it comes), nor than that frame's buffer holds
    // (under AF_XDP a frame that came in one UMEM frame: 3840 bytes past the headroom;
    // one of several, a jumbo buffer), known only then.
    let room = ctx.snap.frame_size.saturating_sub(outer.l3_start);
    let packet = frame.buf.get(at..at + outer.l3_len).unwrap_or(&[]);
    let complete = match ctx.limits.reassembly.offer(packet, ctx.now, room) {
        Offer::Held => return Err(Verdict::Consumed(ConsumeReason::GreFragmentHeld)),
        Offer::Refused(Refusal::FirstRefused) => return Err(Verdict::Drop(DropReason::GreFragmentOfRefused)),
        Offer::Refused(_) => return Err(Verdict::Drop(DropReason::GreFragment)),
        Offer::Whole(complete) => complete,
    };
    let out = frame.buf.get_mut(at..).unwrap_or_default();
    let room = room.min(out.len());
    let Some(len) = ctx.limits.reassembly.write(complete, &mut out[..room]) else {
        return Err(Verdict::Drop(DropReason::GreFragment));
    };
    frame.len = outer.l3_start + len;
    frame.wire_len = frame.len as u32;
    frame.uncaptured_len = 0;
    let mut key = Key::new(frame.wire_len);
    match parse_frame_into(&mut key, frame.data(), frame.wire_len) {
        Parsed::Ip(ip) if ip.fragment.is_none() => Ok(ip),
        Parsed::Bad(reason) => Err(Verdict::Drop(reason)),
        // A datagram whose header the parse reads otherwise than its fragments' (none
        // known): not whole after all.
        _ => Err(Verdict::Drop(DropReason::GreFragment)),
    }
}

fn unsupported(snap: &Snapshot) -> Verdict {
    by_fate(snap.gre_unsupported, PassReason::GreUnsupported, DropReason::GreUnsupported)
}

/// A keepalive: GRE inside, from our end of the tunnel to the router's (Cisco's keepalives
/// are built so that the far end returns them by plain forwarding), and nothing in that GRE
/// (protocol type 0, no payload, as routers send them). It is returned without the
/// customer's egress rules: anything more inside (a packet for the customer's network)
/// would reach the router as if transitd had sent it, past every ingress stage. So would a
/// source route onward (IPv4 LSRR or SSRR, an IPv6 routing header with segments left): it
/// would go on from the router, from our address, to wherever the route names (another
/// customer's router, as a keepalive reply from us), which no keepalive asks for and RFC
/// 7126 §4.3-4.4 has routers drop.
fn is_keepalive(tunnel: &Tunnel, key: &Key, ip: &IpFrame, data: &[u8]) -> bool {
    if key.get(Dim::L4Proto) != GRE || ip.fragment.is_some() || ip.routed_onward {
        return false;
    }
    let ends = match tunnel.gre.endpoints {
        gre::Endpoints::V4 { local, remote } if !ip.is_ipv6 => {
            (key.src_addr() >> 96) as u32 == u32::from(local) && (key.dst_addr() >> 96) as u32 == u32::from(remote)
        }
        gre::Endpoints::V6 { local, remote } if ip.is_ipv6 => {
            key.src_addr() == u128::from(local) && key.dst_addr() == u128::from(remote)
        }
        _ => false,
    };
    let inner_gre = data.get(ip.l4_start..ip.l3_start + ip.l3_len).unwrap_or(&[]);
    ends && GreRepr::parse(&GrePacket::new_unchecked(inner_gre))
        .is_ok_and(|g| g.protocol == 0 && g.header_len() == inner_gre.len())
}

/// The source of a decapsulated packet must lie in the tunnel's customer's prefixes, or be
/// the router's side of the tunnel.
fn source_is_customers(snap: &Snapshot, tunnel: &Tunnel, key: &Key, is_ipv6: bool) -> bool {
    (!is_ipv6 && from_router_side(tunnel, key))
        || snap.customer_by_prefix.lookup(is_ipv6, key.src_addr()) == Some(tunnel.customer)
}

/// Whether an IPv4 packet's source (`key`'s) is the router's side of `tunnel`'s `interface`.
fn from_router_side(tunnel: &Tunnel, key: &Key) -> bool {
    tunnel.interface.is_some_and(|i| u32::from(i.peer) == (key.src_addr() >> 96) as u32)
}

/// An address of ours ([`dos::is_our_address`]; `dst` as the key holds it): an anycast
/// address, or our side of any tunnel's `interface`. A router delivers its own addresses to
/// itself and never sends them back out (RFC 1812 §5.2.3): sent upstream, such a packet came
/// back to an edge's host stack from a customer's tunnel. Our side of this tunnel was served
/// before ([`to_our_side`]); another tunnel's (another customer's, or this customer's IPv4
/// tunnel's reached through its IPv6 one) is served through that tunnel alone, the one its
/// router reaches it by and whose probe replies it records.
#[inline(always)] // one call, from decap
fn is_ours(snap: &Snapshot, dst: u128, is_ipv6: bool) -> bool {
    let dst = match is_ipv6 {
        true => IpAddr::V6(Ipv6Addr::from(dst)),
        false => IpAddr::V4(Ipv4Addr::from((dst >> 96) as u32)),
    };
    dos::is_our_address(snap, dst)
}

/// A destination no router forwards to (beside our own addresses, [`is_ours`]) (`dst` as
/// the key holds it: IPv4 in the top 32 bits): RFC 1812 §5.3.7's network 0, loopback and
/// class E (with the limited broadcast), link-local (RFC 3927 §7, RFC 4291 §2.5.6: routers
/// must not forward them), multicast (transitd routes none), and IPv6's unspecified,
/// loopback and IPv4-mapped (RFC 4291 §2.5.5.2: not for the wire) addresses. A customer's
/// router sends these only by mistake or to probe what lies behind the edge. (Documentation
/// and other special-purpose ranges RFC 6890 calls not forwardable are left to the
/// upstream: the tests use them.)
fn is_martian_destination(dst: u128, is_ipv6: bool) -> bool {
    if is_ipv6 {
        let a = std::net::Ipv6Addr::from(dst);
        a.is_unspecified()
            || a.is_loopback()
            || a.is_unicast_link_local()
            || a.is_multicast()
            || a.to_ipv4_mapped().is_some()
    } else {
        let a = std::net::Ipv4Addr::from((dst >> 96) as u32);
        a.octets()[0] == 0 || a.is_loopback() || a.is_link_local() || a.octets()[0] >= 224
    }
}

/// A packet for our side of the tunnel: a probe reply is recorded, a ping answered back
/// through the tunnel; anything else is not served.
fn to_our_side(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    key: &Key,
    tid: TunnelId,
    tunnel: &Tunnel,
) -> Verdict {
    let icmp_type = key.get(Dim::IcmpType);
    if key.get(Dim::L4Proto) != 1 || ip.fragment.is_some() {
        return Verdict::Drop(DropReason::TunnelInterface);
    }
    let l3 = frame.start + ip.l3_start;
    let end = l3 + ip.l3_len;
    // A probe comes back as it left: from the router's side of the tunnel. Only from there
    // is a reply recorded here, as it is when relayed (`relayed_probe_reply`), and relayed:
    // one from another address of the customer's network brought the tunnel up on the
    // server it reached, while on every other server of a fleet, its copies not relayed,
    // the tunnel stayed down.
    if icmp_type == u32::from(ICMPV4_ECHO_REPLY) && from_router_side(tunnel, key) {
        if !frame.buf.get(frame.start + ip.l4_start..end).is_some_and(is_ipv4_message_intact) {
            return Verdict::Drop(DropReason::BadProbeReplyChecksum);
        }
        let payload = frame.buf.get(frame.start + ip.l4_start + ICMP_HEADER_LEN..end).unwrap_or(&[]);
        if ctx.snap.health.record_reply(tid, &tunnel.name, payload) {
            return Verdict::Consumed(ConsumeReason::HealthProbeReply);
        }
        // Another server of the fleet's probe: the one that sent it judges it.
        return probe_sender(payload)
            .and_then(|to| super::egress::relay_probe_reply(ctx, frame, ip, to, tid, false))
            .unwrap_or(Verdict::Drop(DropReason::TunnelInterface));
    }
    // The budget is spent on replies sent, not on requests refused (RFC 1812 §4.3.2.8):
    // else pings with options would take the tokens errors need. None goes to a source no
    // ICMP error may go to: an address of ours (anycast, our side of a tunnel: the reply
    // would be to ourselves, from a request someone else wrote) or a tunnel's broadcast.
    let src = Ipv4Addr::from((key.src_addr() >> 96) as u32);
    let answerable = icmp_type == u32::from(ICMPV4_ECHO_REQUEST)
        && frame.buf.get(l3..end).is_some_and(ipv4_echo_answerable)
        && !forward::is_unanswerable_source(ctx, IpAddr::V4(src));
    if answerable {
        // A reply as long as a request that just fitted its way in may not fit back (the
        // tunnel's MTU is what its path takes): known before the request is rewritten, so that
        // it is dropped as it came (a drop capture shows the request, not the reply written
        // over it) and spends no token.
        if ip.l3_len > forward::room(ctx, tunnel, false) {
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        // Nor is one written, or paid for, whose reply cannot leave (the next hop not resolved).
        if ctx.eth.is_none() {
            return Verdict::Drop(DropReason::NextHopUnresolved);
        }
        if ctx.limits.icmp.admit(0, 0, ctx.now)
            && let Some(packet) = frame.buf.get_mut(l3..end)
            && ipv4_echo_reply_in_place(packet, 64)
        {
            return back_into(ctx, tunnel, frame.buf, l3, ip.l3_len, false, TxReason::EchoReply);
        }
    }
    Verdict::Drop(DropReason::TunnelInterface)
}

/// A probe reply another server of the fleet relayed ([`super::egress::relay_probe_reply`]):
/// an ICMP echo reply from the router's side of the tunnel its payload names to ours, as it
/// left the router. Recorded if its tag is ours; else, sent to this data centre for a
/// server of it (`via_dc`), relayed on to that server.
pub(super) fn relayed_probe_reply(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    via_dc: bool,
) -> Verdict {
    let end = frame.start + ip.l3_start + ip.l3_len;
    let payload = frame.buf.get(frame.start + ip.l4_start + ICMP_HEADER_LEN..end).unwrap_or(&[]);
    let tid = probe_tunnel(payload).unwrap_or(TunnelId::MAX);
    let Some(tunnel) = ctx.snap.tunnels.get(usize::from(tid)) else {
        return Verdict::Drop(DropReason::TunnelInterface);
    };
    let ends = tunnel.interface.map(|i| (u32::from(i.peer), u32::from(i.ours)));
    let this = ((key.src_addr() >> 96) as u32, (key.dst_addr() >> 96) as u32);
    if ip.is_ipv6
        || ip.fragment.is_some()
        || key.get(Dim::L4Proto) != 1
        || key.get(Dim::IcmpType) != u32::from(ICMPV4_ECHO_REPLY)
        || ends != Some(this)
    {
        return Verdict::Drop(DropReason::TunnelInterface);
    }
    if !frame.buf.get(frame.start + ip.l4_start..end).is_some_and(is_ipv4_message_intact) {
        return Verdict::Drop(DropReason::BadProbeReplyChecksum);
    }
    if ctx.snap.health.record_reply(tid, &tunnel.name, payload) {
        return Verdict::Consumed(ConsumeReason::HealthProbeReply);
    }
    let sender = probe_sender(payload).filter(|_| via_dc);
    sender
        .and_then(|to| super::egress::relay_probe_reply(ctx, frame, ip, to, tid, true))
        .unwrap_or(Verdict::Drop(DropReason::TunnelInterface))
}

/// RFC 6040 §4.2 (normal mode): a congestion mark a router put on the outer header on the
/// tunnel's path reaches the inner packet; on an inner packet that is not ECN-capable it
/// cannot, and the packet is dropped, as that router would have dropped it. For a customer's
/// tunnel and the backbone alike.
pub(super) fn carry_ecn(frame: &mut Frame<'_>, outer: &IpFrame, inner: &IpFrame) -> Result<(), DropReason> {
    let (outer_at, inner_at) = (frame.start + outer.l3_start, frame.start + inner.l3_start);
    let outer_ecn = frame.buf.get(outer_at..).and_then(|b| IpPacket::new_checked(b, outer.is_ipv6).ok());
    let Some(outer_ecn) = outer_ecn.map(|p| p.dscp_ecn() & ecn::CE) else { return Ok(()) };
    let Some(mut packet) = frame.buf.get_mut(inner_at..).and_then(|b| IpPacket::new_checked(b, inner.is_ipv6).ok())
    else {
        return Ok(());
    };
    let inner_ecn = packet.dscp_ecn() & ecn::CE;
    match ecn::decapsulated(outer_ecn, inner_ecn) {
        None => Err(DropReason::DecapCeNotEct),
        Some(e) if e != inner_ecn => {
            ecn::set(&mut packet, e);
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router's tunnel is found by its key, the first entry or past it, against a linear
    /// scan of the configured tunnels: unknown routers are told apart from known ones with
    /// another key.
    #[test]
    fn tunnels_are_found_by_router_and_key_as_a_scan_finds_them() {
        let tunnels = [("a", "198.51.100.1", Some(5)), ("b", "198.51.100.1", Some(7)), ("c", "198.51.100.1", None)];
        let tunnels = [&tunnels[..], &[("d", "198.51.100.2", Some(5)), ("e", "2001:db8::1", None)]].concat();
        let mut text = String::from(
            "[server]\nanycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db8:ffff::1\"\n[[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n",
        );
        for (name, remote, key) in &tunnels {
            let key = key.map_or(String::new(), |k| format!("key = {k}\n"));
            text += &format!("[[customer.tunnel]]\nname = \"{name}\"\nremote = \"{remote}\"\n{key}");
        }
        let snap = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        let addr = |a: &str| crate::snapshot::remote_addr(a.parse().unwrap());
        for remote in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "2001:db8::1", "2001:db8::2"] {
            for key in [None, Some(5), Some(6), Some(7)] {
                let known = tunnels.iter().any(|t| t.1 == remote);
                let scan = tunnels.iter().find(|t| t.1 == remote && t.2 == key).map(|t| t.0);
                let found = router_entries(&snap, addr(remote))
                    .map(|at| find_tunnel(&snap, at, key).map(|t| snap.tunnels[usize::from(t)].name.as_str()));
                let expected = known.then(|| scan.ok_or(DropReason::GreKeyMismatch));
                assert_eq!(found, expected, "{remote} key {key:?}");
            }
        }
    }
}
