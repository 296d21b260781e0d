//! The soft-unicast return path: a packet to a shared egress address goes to the server
//! that owns its (address, port), wherever it lands.
//!
//! ```text
//! from the Internet ─► owner? ─ this server ─────────────► the host's stack (its socket)
//!                          ├─ another server here ─► backbone GRE, hop 2 ─► that server
//!                          └─ another data centre ─► backbone GRE, hop 1 ─► that data centre
//! from the backbone (hop 1) ─► owner? ─ this server ─► host; another server here ─► hop 2
//! from the backbone (hop 2) ─► owner? ─ this server ─► host
//! ```
//!
//! The port is the destination port (TCP, UDP), the identifier of an ICMP echo reply, or,
//! for an ICMP error about one of our packets, the source port quoted in it. A later
//! fragment goes where its datagram's first fragment went ([`fragments`]). A packet with no
//! port (another protocol, a fragment whose first was not seen) or a port in no slice
//! belongs to the address's data centre as a whole and is delivered by whichever of its
//! servers receives it.
//!
//! Backbone GRE carries the hop in the key's low byte, so that no packet crosses more than
//! one data centre boundary and one server hop: a plan that disagrees between servers (a
//! reload half-way through the fleet) drops as `backbone_loop` rather than looping. The
//! backbone also carries tunnel health probes' replies, and path MTU probes' answers, to the
//! server that sent the probe ([`relay_probe_reply`], [`PROBE_REPLY`] or
//! [`PROBE_REPLY_VIA_DC`] in the low byte). The XDP program does the common cases itself
//! (delivers what this server owns, decapsulating backbone GRE for it); what reaches here is
//! forwarded, and counted.
//!
//! A packet from the Internet has its owner looked up ([`lookup_owner`]) before the sanity
//! checks and the global DoS rules, as the XDP program's `egress_mine` decides before
//! anything: what this server owns goes to its host unread (the host judges it), what
//! another owns meets them before [`process`] sends it on.

use classifier::{Dim, Key};
use gre::Ipv4Packet;
use gre::encap::{Endpoints, GreTunnel, encap_gre};
use gre::icmp::ICMP_HEADER_LEN;
use gre::ip::IPV4_HEADER_LEN;
use gre::packet::PROTO_IPV4;
use gre::{GrePacket, GreRepr};
use portslice::Owner;

use super::decap::carry_ecn;
use super::forward::{Ctx, Way, ipv4_checksum_ok, too_big};
use super::parse::{IpFrame, Parsed, parse_inner};
use super::scope;
use super::verdict::{DropReason, PassReason, TxReason, Verdict};
use super::{Frame, fragments};
use crate::snapshot::health::probe_reply_payload_len;
use crate::snapshot::{Snapshot, SoftUnicast, TunnelId};

/// TTL of backbone GRE.
const BACKBONE_TTL: u8 = 64;
const GRE: u32 = gre::encap::IPPROTO_GRE as u32;

/// True for a packet to an egress address: return traffic (IPv4 only; not backbone GRE,
/// which goes to a backbone address).
pub(super) fn is_to_egress(su: &SoftUnicast, key: &Key, ip: &IpFrame) -> bool {
    !ip.is_ipv6 && su.owners.data_centre((key.dst_addr() >> 96) as u32).is_some()
}

/// Backbone GRE: IPv4 to one of our backbone addresses, whole, not under AH (the fleet
/// sends it plain; the XDP program passes anything else to the host, and so does this). An
/// IPv6 address whose top 32 bits spell a backbone address is not one.
pub(super) fn is_backbone(su: &SoftUnicast, key: &Key, ip: &IpFrame) -> bool {
    let dst = (key.dst_addr() >> 96) as u32;
    !ip.is_ipv6
        && ip.fragment.is_none()
        && !ip.under_ah
        && key.get(Dim::L4Proto) == GRE
        && (dst == u32::from(su.backbone) || dst == u32::from(su.dc_backbone))
}

/// A packet soft unicast sends on: backbone GRE ([`is_backbone`]; `owner` is `None`), or
/// one from the Internet to an egress address whose `owner` ([`lookup_owner`]) is not this
/// server.
pub(super) fn process(
    ctx: &mut Ctx<'_>,
    su: &SoftUnicast,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    owner: Option<Owner>,
) -> Verdict {
    match owner {
        Some(owner) => return_path(ctx, su, frame, key, ip, owner, 0),
        None => from_backbone(ctx, su, frame, key, ip),
    }
}

/// Backbone GRE: from a server of the fleet, with our key; the inner packet goes on by its
/// hop.
fn from_backbone(
    ctx: &mut Ctx<'_>,
    su: &SoftUnicast,
    frame: &mut Frame<'_>,
    outer_key: &Key,
    outer: &IpFrame,
) -> Verdict {
    let src = (outer_key.src_addr() >> 96) as u32;
    if !su.server_backbone.iter().chain(&su.dc_backbone_of).any(|a| u32::from(*a) == src) {
        return Verdict::Drop(DropReason::BackboneUnknownSource);
    }
    let outer_end = frame.start + outer.l3_start + outer.l3_len;
    let Some(bytes) = frame.buf.get(frame.start + outer.l4_start..outer_end) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let repr = match GreRepr::parse(&GrePacket::new_unchecked(bytes)) {
        Ok(r) => r,
        Err(e) => return Verdict::Drop(e.into()),
    };
    if !in_the_fleets_shape(outer, bytes) {
        return Verdict::Drop(DropReason::BackboneBadHeader);
    }
    let hop = match repr.key {
        Some(k)
            if k >> 8 == su.key_id
                && matches!(k as u8, 1 | 2 | PROBE_REPLY | PROBE_REPLY_VIA_DC)
                && repr.protocol == PROTO_IPV4 =>
        {
            k as u8
        }
        _ => return Verdict::Drop(DropReason::BackboneBadKey),
    };
    let data = frame.buf.get(frame.start..outer_end).unwrap_or(&[]);
    let mut key = Key::new(frame.wire_len);
    let parsed = parse_inner(&mut key, data, outer.l4_start + repr.header_len(), PROTO_IPV4);
    let ip = match parsed {
        Parsed::Ip(ip) => ip,
        Parsed::NotIp | Parsed::Mpls => return Verdict::Drop(DropReason::BackboneNotEgress),
        Parsed::Bad(reason) => return Verdict::Drop(reason),
    };
    if !ipv4_checksum_ok(data, &ip) {
        return Verdict::Drop(DropReason::BadIpv4Checksum);
    }
    if matches!(hop, PROBE_REPLY | PROBE_REPLY_VIA_DC) {
        return super::decap::relayed_probe_reply(ctx, frame, &key, &ip, hop == PROBE_REPLY_VIA_DC);
    }
    if su.owners.data_centre((key.dst_addr() >> 96) as u32).is_none() {
        return Verdict::Drop(DropReason::BackboneNotEgress);
    }
    // A mark a router on the backbone put on the outer header goes on with the packet,
    // whether it is delivered here or sent on to its owner.
    if let Err(reason) = carry_ecn(frame, outer, &ip) {
        return Verdict::Drop(reason);
    }
    let owner = lookup_owner(ctx, su, frame, &key, &ip);
    let verdict = return_path(ctx, su, frame, &key, &ip, owner, hop);
    if let Verdict::Pass(_) = verdict {
        strip_backbone(frame, outer.l3_start, ip.l3_start, ip.l3_len);
    }
    verdict
}

/// Whether backbone GRE (`gre`: its header on) is in the one shape the fleet sends it in
/// ([`encap_backbone`]): an outer IPv4 header with no options, and GRE flags that are the
/// key's bit or none (a missing key is `backbone_bad_key`'s), version 0. The XDP program
/// delivers that shape alone itself and hands any other to the data plane: delivered here,
/// it would reach the host through the exception path, past an outer source route or a GRE
/// checksum nobody sends. A fleet's server sends nothing else, so it is forged or damaged.
fn in_the_fleets_shape(outer: &IpFrame, gre: &[u8]) -> bool {
    const KEY_PRESENT: u8 = 0x20;
    outer.header_len == IPV4_HEADER_LEN && matches!(gre, [flags, 0, ..] if flags & !KEY_PRESENT == 0)
}

/// Makes a backbone frame for this server the inner packet behind the outer link header,
/// as the XDP program's `backbone_mine` does: the host is handed what the Internet sent,
/// not the tunnel it came through. `link_len` is the outer link header's length (tags
/// included; its type is IPv4, as the inner packet's is); `inner` and `inner_len` are the
/// inner IPv4 packet's offset and length from the frame's start.
fn strip_backbone(frame: &mut Frame<'_>, link_len: usize, inner: usize, inner_len: usize) {
    let Some(start) = (frame.start + inner).checked_sub(link_len) else { return };
    frame.buf.copy_within(frame.start..frame.start + link_len, start);
    frame.start = start;
    frame.len = link_len + inner_len;
}

/// Who owns the packet `ip` of `frame`, to an egress address, as the XDP program's
/// `egress_mine` finds it: the owner of its port ([`steering_port`]); with no port, or one
/// in no slice, the address's data centre as a whole. A later fragment's is its datagram's
/// first fragment's, remembered here for it whoever owns it and whatever the stages after
/// make of the first, as the program remembers it. Stateful: frames come here in arrival
/// order.
pub(super) fn lookup_owner(ctx: &mut Ctx<'_>, su: &SoftUnicast, frame: &Frame<'_>, key: &Key, ip: &IpFrame) -> Owner {
    let data = frame.buf.get(frame.start..frame.start + ip.l3_start + ip.l3_len).unwrap_or(&[]);
    let dst = (key.dst_addr() >> 96) as u32;
    let by_port = || match steering_port(data, key, ip) {
        Some(port) => su.owners.owner(dst, port),
        None => match su.owners.data_centre(dst) {
            Some(dc) => Owner::Unsliced { dc },
            None => Owner::NotEgress,
        },
    };
    match ip.fragment {
        None => by_port(),
        Some(f) => {
            let datagram = fragments::datagram(data, key, ip);
            if f.offset == 0 {
                let owner = by_port();
                ctx.limits.fragments.remember(datagram, owner, ctx.now);
                owner
            } else {
                ctx.limits.fragments.owner(datagram, ctx.now).filter(|o| su.knows(*o)).unwrap_or_else(by_port)
            }
        }
    }
}

/// True when `owner` is this server, or its data centre as a whole: the packet is for a
/// socket in this server's host.
pub(super) fn is_this_servers(su: &SoftUnicast, owner: Owner) -> bool {
    match owner {
        Owner::Server { server, .. } => server == su.this_server,
        Owner::Unsliced { dc } => dc == su.this_dc,
        Owner::NotEgress => false,
    }
}

/// Sends a packet to an egress address to its `owner` ([`lookup_owner`]); `hop` is how it
/// came (0: from the Internet, 1: from another data centre, 2: from a server of this one).
fn return_path(
    ctx: &mut Ctx<'_>,
    su: &SoftUnicast,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    owner: Owner,
    hop: u8,
) -> Verdict {
    let (target, next_hop) = match owner {
        Owner::NotEgress => return Verdict::Drop(DropReason::BackboneNotEgress),
        _ if is_this_servers(su, owner) => return Verdict::Pass(PassReason::EgressLocal),
        // Another server of this data centre: one server hop, unless this is that hop.
        Owner::Server { dc, server } if dc == su.this_dc => {
            if hop >= 2 {
                return Verdict::Drop(DropReason::BackboneLoop);
            }
            (su.server_backbone[usize::from(server)], 2)
        }
        // Another data centre: only from the Internet.
        Owner::Server { dc, .. } | Owner::Unsliced { dc } => {
            if hop >= 1 {
                return Verdict::Drop(DropReason::BackboneLoop);
            }
            (su.dc_backbone_of[usize::from(dc)], 1)
        }
    };
    // RFC 7126 §4.3-4.4, as toward a customer: a source route with hops to go is on its way
    // through the owner's host to somewhere else, which Linux refuses unless told to
    // (`accept_source_route`). Dropped before the backbone carries it; what this server
    // delivers is its host's to judge (the XDP program hands it over unread), and what
    // another server sent on was judged there.
    if hop == 0 && ip.routed_onward && ctx.snap.dos.sanity.source_route {
        return Verdict::Drop(DropReason::SourceRouted);
    }
    // RFC 3927 §2.7: a link-local source is the upstream's link's, and the backbone would
    // take it off that link to another server (whose host could answer it only through a
    // router that forwards nothing there). This server's own went to its host above, as the
    // XDP program hands it over unread; what another server sent on was judged there.
    if hop == 0 && scope::is_link_local(key.src_addr(), ip.is_ipv6) {
        return Verdict::Drop(DropReason::LinkLocalSource);
    }
    to_server(ctx, su, frame, key, ip, target, next_hop, TxReason::Backbone)
}

/// Sends the IPv4 packet `ip` of `frame` over the backbone to the server or data centre at
/// backbone address `target`, with `hop` in the key's low byte, as `reason`.
#[allow(clippy::too_many_arguments)]
fn to_server(
    ctx: &mut Ctx<'_>,
    su: &SoftUnicast,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    target: std::net::Ipv4Addr,
    hop: u8,
    reason: TxReason,
) -> Verdict {
    let Some(eth) = ctx.eth else { return Verdict::Drop(DropReason::NextHopUnresolved) };
    let (tunnel, room) = backbone_to(ctx, su, target, hop);
    if ip.l3_len > room {
        return too_big(ctx, Way::Backbone(&tunnel), frame, ip, key, room, None);
    }
    encap_backbone(frame, ip, &tunnel, eth, reason)
}

/// The backbone GRE to the server or data centre at backbone address `target`, with `hop`
/// in the key's low byte, and the longest packet it carries inside.
fn backbone_to(ctx: &Ctx<'_>, su: &SoftUnicast, target: std::net::Ipv4Addr, hop: u8) -> (GreTunnel, usize) {
    let tunnel = GreTunnel {
        endpoints: Endpoints::V4 { local: su.backbone, remote: target },
        key: Some(su.key(hop)),
        checksum: false,
        ttl: BACKBONE_TTL,
    };
    // A `backbone_mtu` the link does not carry (`run` says so) is held to what it does.
    let outer = ctx.limits.link_mtu.map_or(ctx.snap.backbone_mtu(), |link| link.min(ctx.snap.backbone_mtu()));
    let room = outer.saturating_sub(tunnel.overhead());
    (tunnel, room)
}

/// Encapsulates the IPv4 packet `ip` of `frame`, which fits, in backbone GRE `tunnel`, to
/// be sent as `reason`.
fn encap_backbone(
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    tunnel: &GreTunnel,
    eth: &gre::EthernetAddrs,
    reason: TxReason,
) -> Verdict {
    let l3 = frame.start + ip.l3_start;
    let tos = frame.buf.get(l3..).and_then(|b| Ipv4Packet::new_checked(b).ok()).map_or(0, |p| p.tos());
    match encap_gre(frame.buf, l3, ip.l3_len, PROTO_IPV4, tos, tunnel, eth) {
        Ok(start) => Verdict::Tx { start, len: l3 + ip.l3_len - start, reason },
        Err(gre::EncapError::NoHeadroom) => Verdict::Drop(DropReason::NoHeadroom),
        Err(_) => Verdict::Drop(DropReason::Truncated),
    }
}

/// The low byte of the backbone key of a probe's reply relayed to the server that sent the
/// probe ([`relay_probe_reply`]): no hop of the return path (1 or 2), so the XDP
/// program hands it to the data plane, not to the host.
pub const PROBE_REPLY: u8 = 0x80;
/// The same, sent to the data centre of the server that probed (a server's own backbone
/// address is its data centre's to reach, as for return traffic): the server there relays it
/// once more, as [`PROBE_REPLY`], unless the probe was its own.
pub const PROBE_REPLY_VIA_DC: u8 = 0x81;

/// A reply to a probe of tunnel `tunnel` (a health probe, or a path MTU probe's padded
/// answer) that another server of the fleet sent, whose payload names that server's
/// backbone address `to`: sent on to it over the backbone (to its data centre when that is
/// another; `within_dc`: only within this one). The router's replies come to the anycast
/// address, so to whichever server is nearest the router, not to the one that probed; each
/// server's tags are under its own key, and the one that probed is the one that can tell
/// its reply. `None`: not in a fleet, `to` is no other server of it, or the packet is not
/// the length its payload says the probe was ([`probe_reply_payload_len`]: a probe's reply
/// is the probe as it was sent). Past the tunnel's relay budget
/// ([`super::probe_relay_bucket`], health probes and path MTU probes together), dropped as
/// `probe_reply_relay_limited`: this server cannot tell a good tag of another's from a
/// forged one, and copies of one reply would each cross the backbone. A reply that cannot
/// go (no next hop yet, or a backbone too small for it: a path MTU probe's answer of the
/// tunnel's `mtu` needs a `backbone_mtu` 28 bytes larger) is dropped as such, and spends
/// none.
pub(super) fn relay_probe_reply(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    ip: &IpFrame,
    to: std::net::Ipv4Addr,
    tunnel: TunnelId,
    within_dc: bool,
) -> Option<Verdict> {
    let su = ctx.snap.soft_unicast.as_ref()?;
    let end = frame.start + ip.l3_start + ip.l3_len;
    let payload = frame.buf.get(frame.start + ip.l4_start + ICMP_HEADER_LEN..end).unwrap_or(&[]);
    let probe_len = probe_reply_payload_len(payload).map(|len| IPV4_HEADER_LEN + ICMP_HEADER_LEN + len);
    if ip.is_ipv6 || probe_len != Some(ip.l3_len) || to == su.backbone {
        return None;
    }
    let server = su.server_backbone.iter().position(|a| *a == to)?;
    let dc = *su.owners.server_dc.get(server)?;
    let (target, hop) = if dc == su.this_dc {
        (to, PROBE_REPLY)
    } else if within_dc {
        return None;
    } else {
        (*su.dc_backbone_of.get(usize::from(dc))?, PROBE_REPLY_VIA_DC)
    };
    // What cannot go spends no token: a server whose backbone next hop was unresolved for a
    // while (its start, a neighbour lost) spent a tunnel's budget on nothing, and refused the
    // replies of the probes that followed, misses to the servers that sent them.
    let Some(eth) = ctx.eth else { return Some(Verdict::Drop(DropReason::NextHopUnresolved)) };
    let (backbone, room) = backbone_to(ctx, su, target, hop);
    if ip.l3_len > room {
        // Fragments of it would reach the host there, not the data plane that judges it.
        return Some(Verdict::Drop(DropReason::BackboneMtuExceeded));
    }
    // Spent on what is relayed, as the ICMP budget is on errors sent.
    if !ctx.limits.relays.admit(0, u64::from(tunnel), ctx.now) {
        return Some(Verdict::Drop(DropReason::ProbeReplyRelayLimited));
    }
    Some(encap_backbone(frame, ip, &backbone, eth, TxReason::ProbeReplyRelayed))
}

/// The port that says who owns a return packet: TCP or UDP destination port; an ICMP echo
/// reply's identifier (a ping socket's port); for an ICMP error, the source port (or echo
/// identifier) of our packet that it quotes. `None` for anything else.
pub fn steering_port(data: &[u8], key: &Key, ip: &IpFrame) -> Option<u16> {
    if ip.is_later_fragment() {
        return None;
    }
    let word = |at: usize| data.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match key.get(Dim::L4Proto) {
        6 | 17 => word(ip.l4_start + 2),
        1 => match key.get(Dim::IcmpType) {
            0 => word(ip.l4_start + 4),
            3 | 4 | 5 | 11 | 12 => {
                // The quoted packet: our IPv4 header, then the first 8 bytes of its payload.
                let quoted = Ipv4Packet::new_checked(data.get(ip.l4_start + 8..)?).ok()?;
                // A quoted later fragment has no transport header: its first bytes are data,
                // not a port (RFC 792 errors are about fragment zero; one about another is
                // spoofed or broken, and stays here). The XDP program reads it alike.
                if quoted.version() != 4 || quoted.frag_offset() != 0 {
                    return None;
                }
                let l4 = ip.l4_start + 8 + quoted.header_len();
                match quoted.protocol() {
                    6 | 17 => word(l4),
                    1 if data.get(l4) == Some(&8) => word(l4 + 4),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

impl Snapshot {
    /// Largest backbone packet (outer IP header included).
    pub fn backbone_mtu(&self) -> usize {
        self.soft_unicast.as_ref().map_or(1500, |su| su.backbone_mtu)
    }
}
