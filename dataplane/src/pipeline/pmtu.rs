//! Path MTU discovery on the underlay: an ICMP Fragmentation Needed (RFC 1191) or ICMPv6
//! Packet Too Big (RFC 8201) that a router between us and a customer's router sends about
//! GRE we sent lowers that tunnel's MTU for ten minutes, as a host's stack lowers a route's
//! (the host here has no tunnel to lower: the kernel has no GRE device, and the XDP program
//! hands these errors to the data plane).
//!
//! Which tunnel it is comes from the quoted packet: the outer header we wrote (from the
//! anycast address to a tunnel's router, GRE) and the GRE key, found as decapsulation finds
//! a tunnel. Anyone can send such an error, as anyone can to a host; the floor (552 bytes of
//! outer packet over IPv4, Linux's `min_pmtu`; over IPv6 a Packet Too Big naming less than
//! 1280, RFC 8200 §5, is discarded, RFC 8201 §4) bounds what a forged one costs, and an
//! error never raises the estimate (RFC 1191 §6.3). The prober checks each lowering of a
//! health-checked tunnel with a probe of the size before, and an answer raises it back
//! (`crate::health`'s path MTU probes).

use std::net::IpAddr;

use classifier::{Dim, Key};
use gre::checksum;
use gre::icmp::{ICMP_HEADER_LEN, IPPROTO_ICMPV6, ipv6_pseudo_header_sum};
use gre::{GrePacket, Ipv4Packet, Ipv6Packet};

use super::forward::Ctx;
use super::parse::{IpFrame, terminable};
use super::verdict::{ConsumeReason, DropReason, PassReason, Verdict};
use super::{Frame, by_fate, decap, sent_to_a_link_group};
use crate::snapshot::{Snapshot, Tunnel, TunnelId, remote_addr};

/// ICMPv4 Destination Unreachable, code 4: fragmentation needed and DF set.
const ICMPV4_UNREACHABLE: u32 = 3;
const FRAGMENTATION_NEEDED: u32 = 4;
/// ICMPv6 Packet Too Big.
const ICMPV6_PACKET_TOO_BIG: u32 = 2;
/// IP protocol number of GRE.
const GRE: u8 = 47;

/// The smallest path MTU an error may set over IPv4: Linux's `min_pmtu` (552), which a
/// forged error cannot take a tunnel under.
pub const PATH_MTU_FLOOR_V4: u32 = 552;
/// The same over IPv6: the minimum link MTU (RFC 8200 §5); RFC 8201 §4 has an error naming
/// less discarded.
pub const PATH_MTU_FLOOR_V6: u32 = 1280;

/// RFC 1191 §7's plateaus: the estimate for an error from a router that names no next-hop
/// MTU (RFC 792's, before RFC 1191), the largest below the quoted packet's length.
const PLATEAUS: [u32; 10] = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// True for an ICMP Fragmentation Needed (or ICMPv6 Packet Too Big right behind the fixed
/// header) to our anycast address, whole, with path MTU discovery on: steered by its
/// addresses and type, as the XDP program steers it, before its quote is read.
#[inline]
pub(super) fn is_too_big_to_us(snap: &Snapshot, key: &Key, ip: &IpFrame) -> bool {
    // Every frame the steering reaches comes here: the protocol first, which ends it for
    // nearly all of them.
    let proto = key.get(Dim::L4Proto);
    if proto != 1 && proto != u32::from(IPPROTO_ICMPV6) {
        return false;
    }
    if !snap.path_mtu_discovery || ip.fragment.is_some() || ip.under_ah {
        return false;
    }
    let (kind, code) = (key.get(Dim::IcmpType), key.get(Dim::IcmpCode));
    if ip.is_ipv6 {
        proto == u32::from(IPPROTO_ICMPV6)
            && kind == ICMPV6_PACKET_TOO_BIG
            && ip.extension_headers == 0
            && snap.anycast_v6.is_some_and(|a| u128::from(a) == key.dst_addr())
    } else {
        proto == 1
            && kind == ICMPV4_UNREACHABLE
            && code == FRAGMENTATION_NEEDED
            && (key.dst_addr() >> 96) as u32 == u32::from_be_bytes(snap.anycast)
    }
}

/// A Packet Too Big to the anycast address ([`is_too_big_to_us`]). About GRE we sent a
/// tunnel's router, it is consumed here, the tunnel's path MTU lowered if it says less
/// than the tunnel takes; one that names no tunnel (another key, a quote cut before the
/// key) or whose checksum fails is dropped. About anything else it is the host's, as any
/// traffic for no customer (`unmatched`).
#[cold] // rare (a router's error), and kept out of the batch loop's code
#[inline(never)]
pub(super) fn process(ctx: &mut Ctx<'_>, frame: &Frame<'_>, key: &Key, ip: &IpFrame) -> Verdict {
    let snap = ctx.snap;
    let l3 = frame.start + ip.l3_start;
    let Some(packet) = frame.buf.get(l3..l3 + ip.l3_len) else { return Verdict::Drop(DropReason::Truncated) };
    let Some(message) = packet.get(ip.l4_start.saturating_sub(ip.l3_start)..) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let Some(quote) = Quote::read(snap, message, ip.is_ipv6) else {
        return by_fate(snap.unmatched, PassReason::NoCustomer, DropReason::NoCustomer);
    };
    // Ours to act on as a host acts on what reaches it: not received as a link broadcast
    // (RFC 1812 §5.3.4, as decapsulation judges GRE), not source-routed on past us.
    if sent_to_a_link_group(key) {
        return Verdict::Drop(DropReason::LinkBroadcast);
    }
    if !ip.is_ipv6 && ip.header_len > 20 && !terminable(packet, ip) {
        return Verdict::Drop(DropReason::DecapOuterForbids);
    }
    if !checksum_ok(packet, message, ip.is_ipv6) {
        return Verdict::Drop(DropReason::UnderlayTooBigUnusable);
    }
    let Some(tunnel) = quote.tunnel(snap) else { return Verdict::Drop(DropReason::UnderlayTooBigUnusable) };
    let t = &snap.tunnels[usize::from(tunnel)];
    let path_mtu = reported_mtu(message, quote.length, ip.is_ipv6);
    if ip.is_ipv6 && path_mtu < PATH_MTU_FLOOR_V6 {
        // RFC 8201 §4: a Packet Too Big naming less than IPv6's minimum link MTU is
        // discarded (no IPv6 link is that small; anyone may send one), as Linux does.
        return Verdict::Drop(DropReason::UnderlayTooBigUnusable);
    }
    let floor = if ip.is_ipv6 { PATH_MTU_FLOOR_V6 } else { PATH_MTU_FLOOR_V4 };
    let inner = path_mtu.max(floor).saturating_sub(t.gre.overhead() as u32); // the floors exceed any overhead
    // Not below what the tunnel's `mtu` already keeps its packets under: nothing to lower
    // (and nothing to hold: the configuration may lower `mtu` further meanwhile).
    if inner < t.mtu {
        snap.health.path_mtu_error(tunnel, inner, ctx.now);
    }
    Verdict::Consumed(ConsumeReason::UnderlayTooBig)
}

/// The largest inner packet `t` takes at `now` (a frame's receive time) on a link of MTU
/// `link` (none when the backend knows no link): its `mtu`, or less while its underlay's
/// path MTU holds lower ([`process`]), and never more than fits the link with its outer
/// headers ([`Tunnel::mtu_on_link`]: a tunnel whose `mtu` does not fit, which `run` names,
/// is held to what does, as a router's tunnel follows its underlay's route MTU). An IPv6
/// packet is never held below 1280 bytes by a path MTU: IPv6 senders take no smaller
/// (RFC 8201 §4), and a path that carries less would need the outer packet fragmented,
/// which transitd does not do.
#[inline]
pub fn tunnel_mtu(snap: &Snapshot, t: &Tunnel, is_ipv6: bool, now: u64, link: Option<usize>) -> u32 {
    // Nearly always: no tunnel holds a path MTU, and the forwarding path pays one load.
    let mtu = if snap.health.any_path_mtu() { held_mtu(snap, t, is_ipv6, now) } else { t.mtu };
    match link {
        // What fits the link is worked out only where there is one (AF_XDP's).
        Some(link) => mtu.min(u32::try_from(t.mtu_on_link(link)).unwrap_or(u32::MAX)),
        None => mtu,
    }
}

/// [`tunnel_mtu`] while some tunnel holds a path MTU.
fn held_mtu(snap: &Snapshot, t: &Tunnel, is_ipv6: bool, now: u64) -> u32 {
    let Some(learned) = snap.health.path_mtu(t.id, now) else { return t.mtu };
    let learned = if is_ipv6 { learned.max(PATH_MTU_FLOOR_V6) } else { learned };
    t.mtu.min(learned)
}

/// The packet an error quotes, when it is GRE we sent to a tunnel's router.
struct Quote {
    /// The router's tunnels in the tunnel index.
    router: usize,
    /// The quoted packet's length field (the whole packet's, not the quote's).
    length: u32,
    /// The GRE header's key, if its flags say one follows; `Err` when the quote ends
    /// before it (or before the header's other options: the key's place is theirs to say).
    key: Result<Option<u32>, ()>,
}

impl Quote {
    /// The quote of ICMP `message`, if it is GRE from our anycast address to a tunnel's
    /// router: what the XDP program reads to hand the error over, and no more.
    fn read(snap: &Snapshot, message: &[u8], is_ipv6: bool) -> Option<Quote> {
        let quoted = message.get(ICMP_HEADER_LEN..)?;
        let (remote, length, gre) = if is_ipv6 {
            let fixed = Ipv6Packet::new_checked(quoted).ok()?;
            let dst = fixed.dst_addr();
            if fixed.version() != 6 || fixed.next_header() != GRE || Some(fixed.src_addr()) != snap.anycast_v6 {
                return None;
            }
            if dst.to_ipv4_mapped().is_some() {
                return None; // how tunnels' IPv4 routers are indexed: none of ours
            }
            (IpAddr::V6(dst), 40 + u32::from(fixed.payload_len()), quoted.get(40..)?)
        } else {
            // Checked: 20 bytes or more of header, all of it in the quote.
            let fixed = Ipv4Packet::new_checked(quoted).ok()?;
            if fixed.version() != 4 || fixed.protocol() != GRE || fixed.src_addr().octets() != snap.anycast {
                return None;
            }
            (IpAddr::V4(fixed.dst_addr()), u32::from(fixed.total_len()), quoted.get(fixed.header_len()..)?)
        };
        let router = decap::router_entries(snap, remote_addr(remote))?;
        let key = GrePacket::new_checked(gre).map(|g| g.key()).map_err(|_| ());
        Some(Quote { router, length, key })
    }

    /// The tunnel that sent the quoted GRE.
    fn tunnel(&self, snap: &Snapshot) -> Option<TunnelId> {
        decap::find_tunnel(snap, self.router, self.key.ok()?).ok()
    }
}

/// The ICMP checksum verifies (ICMPv6's over the pseudo-header too, RFC 4443 §2.3).
fn checksum_ok(packet: &[u8], message: &[u8], is_ipv6: bool) -> bool {
    let pseudo = match (is_ipv6, packet.get(8..24), packet.get(24..40)) {
        (false, ..) => 0,
        (true, Some(src), Some(dst)) => {
            let (Ok(src), Ok(dst)) = (src.try_into(), dst.try_into()) else { return false };
            ipv6_pseudo_header_sum(src, dst, message.len() as u32, IPPROTO_ICMPV6)
        }
        _ => return false,
    };
    checksum::fold(u64::from(checksum::sum(message)) + pseudo) == 0xffff
}

/// The path MTU an error reports: ICMPv6's MTU field, ICMPv4's next-hop MTU (RFC 1191 §4),
/// or for a router that leaves it 0 the plateau below the quoted packet's `length` (§5).
fn reported_mtu(message: &[u8], length: u32, is_ipv6: bool) -> u32 {
    let field =
        |r: std::ops::Range<usize>| message.get(r).map_or(0, |b| b.iter().fold(0u32, |a, &x| a << 8 | u32::from(x)));
    if is_ipv6 {
        return field(4..8);
    }
    match field(6..8) {
        0 => PLATEAUS.into_iter().find(|&p| p < length).unwrap_or(0),
        mtu => mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_naming_no_mtu_is_taken_at_the_plateau_below_the_quoted_packet() {
        let message = |mtu: u16| [3, 4, 0, 0, 0, 0, (mtu >> 8) as u8, mtu as u8];
        assert_eq!(reported_mtu(&message(1400), 1500, false), 1400);
        // RFC 1191 §7's table: 1500 (Ethernet) falls to 1492 (IEEE 802.3), 1492 to 1006.
        assert_eq!(reported_mtu(&message(0), 1500, false), 1492);
        assert_eq!(reported_mtu(&message(0), 1492, false), 1006);
        assert_eq!(reported_mtu(&message(0), 68, false), 0);
        assert_eq!(reported_mtu(&[2, 0, 0, 0, 0, 0, 5, 0x14], 1500, true), 1300);
    }
}
