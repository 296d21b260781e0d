//! The TCP protection stage: a customer's TCP packets covered by a `[[tcp_protection.rule]]`
//! (global rules first, then the customer's) go through the worker's [`FlowTable`]; in
//! `mitigate` mode a packet that belongs to no tracked connection is dropped under its own
//! reason, in `monitor` mode only counted.
//!
//! Runs after the customer's DoS rules and before its firewall, so that rate limits still
//! cap SYNs (which always pass here: they open connections) and the firewall sees only what
//! tracking let through. What that firewall drops outright, though, is left to it (its
//! decision is made ahead, with the customer's other lookups): a SYN to a port the customer
//! closes would be answered with a challenge from its address (a scan would find every port
//! open), spend the rule's threshold and the worker's challenge budget that SYNs to the ports
//! it serves need, and open an entry, all for a packet dropped next. Conntrack likewise keeps
//! no entry for a packet a later hook drops, and synproxy is a verdict of the filter's own
//! rules.
//!
//! [`FlowTable`]: super::flows::FlowTable

use std::hash::Hasher;

use classifier::{ABSENT, Dim, Key};

use gre::tcp::{self, TCP_HEADER_LEN, TcpPacket};
use gre::{EthernetAddrs, Ipv4Packet, Ipv6Packet, checksum};

use super::Outcome;
use super::flows::{FlowEvent, Segment};
use super::forward::Ctx;
use super::parse::IpFrame;
use super::verdict::DropReason;
use crate::snapshot::{Customer, TcpProtection};

/// IP protocol number of TCP.
const TCP: u32 = 6;
/// TCP flag bits.
const SYN: u32 = 0x02;
const RST: u32 = 0x04;
/// Cookies are valid in the slot they were made in and the next four (2^30 ns, about a
/// second each): a client answers a challenge within a round trip.
const COOKIE_SLOT_SHIFT: u32 = 30;
const COOKIE_SLOTS: u64 = 5;
/// TTL / hop limit of the challenges we send.
const CHALLENGE_TTL: u8 = 64;

/// What the stage decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protection {
    /// On to the firewall.
    Pass,
    /// Dropped.
    Drop(DropReason),
    /// Answer the SYN with a SYN-ACK acknowledging `cookie`.
    Challenge { cookie: u32 },
    /// A RST answering a challenge: its source is authenticated; nothing to send.
    Answered,
}

/// Tracks one packet to `customer` and decides what the covering rule (if any) does with
/// it. One the customer's firewall drops outright (`firewall_drops`) is only checked for
/// being the answer to a challenge. Sets the outcome's rule and event.
pub(super) fn protect(
    ctx: &mut Ctx<'_>,
    data: &[u8],
    key: &Key,
    ip: &IpFrame,
    customer: &Customer,
    firewall_drops: bool,
    outcome: &mut Outcome,
) -> Protection {
    let tcp = &ctx.snap.tcp;
    if tcp.rules.is_empty() || key.get(Dim::L4Proto) != TCP || ip.fragment.is_some() {
        return Protection::Pass;
    }
    let flags = key.get(Dim::TcpFlags);
    if flags == ABSENT {
        return Protection::Pass;
    }
    let now = ctx.now;
    // The answer to a challenge: a RST whose sequence number is the cookie we sent, whatever
    // rule covers it, or none (a threshold rule written for SYNs alone covers no RST), and
    // whatever the firewall would make of it: it is the edge's, consumed here. One hash: the
    // cookie names its slot. Looked for only while a cookie this worker sent is still valid
    // (as Linux checks SYN cookies only while it has recently sent them): a RST flood with no
    // SYN flood costs no hash, and no blind RST passes as an answer when no challenge is out.
    if flags & RST != 0
        && !tcp.syn_buckets.is_empty()
        && now < ctx.limits.cookies_until
        && let Some(seq) = field_u32(data, ip.l4_start + 4)
        && cookie_matches(&tcp.cookie_key, key, seq, now)
    {
        take_answer(ctx, data, key, customer, outcome);
        return Protection::Answered;
    }
    // Dropped next by the firewall: no entry, no challenge, no threshold spent, no event
    // (nor the lookup of the covering rule).
    if firewall_drops {
        return Protection::Pass;
    }
    let rule_index = covering_rule(tcp, customer, key, data);
    let rule = rule_index.and_then(|r| tcp.rules.get(r as usize));
    outcome.tcp_rule = rule_index.filter(|_| rule.is_some());
    let Some(rule) = rule else { return Protection::Pass };
    // A new connection over the threshold from a source not yet authenticated: a
    // client's SYN, or a server's SYN-ACK answering a customer's own SYN.
    if let Some(bucket) = rule.syn_bucket
        && flags & SYN != 0
        && flags & RST == 0
        && !ctx.limits.authenticated.contains(source_of(key), now)
        && !ctx.limits.syn.admit(usize::from(bucket), 0, now)
    {
        return challenge_syn(ctx, data, key, ip, flags, rule.mitigate, outcome);
    }

    let event = observe(ctx, outcome, flow_of(key), segment(data, ip, flags));
    outcome.tcp = Some(event);
    match event {
        FlowEvent::OutOfStateAck if rule.mitigate => Protection::Drop(DropReason::TcpOutOfStateAck),
        FlowEvent::OutOfStateFin if rule.mitigate => Protection::Drop(DropReason::TcpOutOfStateFin),
        FlowEvent::OutOfStateRst if rule.mitigate => Protection::Drop(DropReason::TcpOutOfStateRst),
        _ => Protection::Pass,
    }
}

/// The index in `tcp.rules` of the rule covering `key`'s packet, if one does: the first
/// global rule that selects it, else the customer's (numbered after the global ones).
#[inline]
fn covering_rule(tcp: &TcpProtection, customer: &Customer, key: &Key, data: &[u8]) -> Option<u32> {
    match tcp.global.decide(key, data).rule {
        Some(r) => Some(r),
        None => customer.tcp.decide(key, data).rule.map(|r| customer.tcp_base + r),
    }
}

/// Takes in a RST that answers a challenge ([`protect`]): its source is authenticated for
/// `authenticated_ns`, and the outcome says the challenge passed. Cold: answers come no
/// faster than challenges go out (`challenge_rate`).
#[cold]
fn take_answer(ctx: &mut Ctx<'_>, data: &[u8], key: &Key, customer: &Customer, outcome: &mut Outcome) {
    let tcp = &ctx.snap.tcp;
    let now = ctx.now;
    let until = now.saturating_add(tcp.authenticated_ns);
    ctx.limits.authenticated.insert(source_of(key), now, until);
    outcome.tcp = Some(FlowEvent::ChallengePassed);
    // Counted under the rule that challenged, the one covering the SYN this answers, else
    // whichever covers the RST, if any (a lookup more, for answers only: challenges are
    // bounded by `challenge_rate`).
    let known = |r: &u32| tcp.rules.get(*r as usize).is_some();
    let mut syn = *key;
    syn.set_tcp_flags(SYN as u16);
    outcome.tcp_rule = covering_rule(tcp, customer, &syn, data)
        .filter(known)
        .or_else(|| covering_rule(tcp, customer, key, data).filter(known));
}

/// What becomes of a SYN or SYN-ACK (`flags`) over its rule's SYN threshold from a source
/// not yet authenticated: under a `monitor` rule (`mitigate` false) it is counted as
/// challenged and tracked; under a `mitigate` rule it is challenged, or dropped as a flood
/// when it cannot be answered.
#[inline]
fn challenge_syn(
    ctx: &mut Ctx<'_>,
    data: &[u8],
    key: &Key,
    ip: &IpFrame,
    flags: u32,
    mitigate: bool,
    outcome: &mut Outcome,
) -> Protection {
    outcome.tcp = Some(FlowEvent::Challenged);
    if !mitigate {
        // Monitor: counted as challenged, and tracked as the SYN it is.
        observe(ctx, outcome, flow_of(key), segment(data, ip, flags));
        return Protection::Pass;
    }
    let now = ctx.now;
    // IPv6 extension headers, IPv4 options or AH would have to be rewritten too (a
    // source route reversed, an integrity check value made): not answered.
    let answerable = ip.l4_start == ip.l3_start + if ip.is_ipv6 { 40 } else { 20 };
    if !answerable || !ctx.limits.challenges.admit(0, 0, now) {
        outcome.tcp = Some(FlowEvent::SynFlood);
        return Protection::Drop(DropReason::TcpSynFlood);
    }
    let isn = field_u32(data, ip.l4_start + 4).unwrap_or(0);
    Protection::Challenge { cookie: cookie(&ctx.snap.tcp.cookie_key, key, now >> COOKIE_SLOT_SHIFT, isn) }
}

/// Tracks `segment` of `flow` for the frame's customer, whose grace period runs from when
/// its tracking began: the first packet tracked after the start or the reload that changed
/// what covers it, whoever's (a customer's own first packet would be an attacker's to
/// choose: the flood that opens its window).
fn observe(ctx: &mut Ctx<'_>, outcome: &Outcome, flow: u64, segment: Segment) -> FlowEvent {
    let limits = &mut *ctx.limits;
    if limits.tracking_pending {
        limits.tracking_pending = false;
        limits.tracked_since.iter_mut().filter(|s| s.is_none()).for_each(|s| *s = Some(ctx.now));
    }
    let mut unknown = None;
    let since = outcome.customer.and_then(|c| limits.tracked_since.get_mut(usize::from(c))).unwrap_or(&mut unknown);
    limits.flows.observe(flow, segment, ctx.now, &ctx.snap.tcp.timeouts, since)
}

/// The challenge's acknowledgement number for the connection of `key` in time slot `slot`:
/// the slot's low three bits, then 29 bits of SipHash-2-4 under the configuration's secret
/// key over both addresses, both ports and the slot (a PRF: cookies seen give nothing toward
/// the key or another connection's cookie), never the one number the client would accept
/// (its ISN + 1), so that its stack answers with a RST carrying it (RFC 9293 §3.10.7.3)
/// instead of completing a connection. Carrying its slot, a cookie is checked with one
/// hash, as Linux's SYN cookies carry their counter: a flood of RSTs costs one each.
fn cookie(secret: &[u8; 16], key: &Key, slot: u64, isn: u32) -> u32 {
    let c = cookie_of(secret, key, slot);
    if c == isn.wrapping_add(1) { c ^ 1 } else { c }
}

fn cookie_of(secret: &[u8; 16], key: &Key, slot: u64) -> u32 {
    let mut h = siphasher::sip::SipHasher24::new_with_key(secret);
    h.write_u32(key.get(Dim::IpVersion)); // an IPv4 address is an IPv6 one's top 32 bits here
    h.write_u128(key.src_addr());
    h.write_u128(key.dst_addr());
    h.write_u32(key.get(Dim::SrcPort) << 16 | key.get(Dim::DstPort));
    h.write_u64(slot);
    ((slot as u32 & SLOT_MASK) << SLOT_BITS_AT) | (h.finish() as u32 & MAC_MASK)
}

/// Where a cookie keeps its slot: the top three bits; the rest is the MAC.
const SLOT_BITS_AT: u32 = 29;
const SLOT_MASK: u32 = 0b111;
const MAC_MASK: u32 = (1 << SLOT_BITS_AT) - 1;

/// True when `seq` is the cookie of `key`'s connection for the current slot or one of the
/// previous ones (whatever the client's ISN was, hence both forms): the slot it names, if
/// recent enough, is the one hash computed.
fn cookie_matches(secret: &[u8; 16], key: &Key, seq: u32, now_ns: u64) -> bool {
    let now = now_ns >> COOKIE_SLOT_SHIFT;
    let back = (now as u32).wrapping_sub(seq >> SLOT_BITS_AT) & SLOT_MASK;
    if u64::from(back) >= COOKIE_SLOTS {
        return false;
    }
    let c = cookie_of(secret, key, now.wrapping_sub(u64::from(back)));
    seq == c || seq == c ^ 1
}

/// Until when the cookie of a challenge sent at `now_ns` is accepted: the end of the last slot
/// [`cookie_matches`] takes it in (a cookie made earlier lapses sooner). Until then, RSTs are
/// checked against cookies ([`Limits::cookies_until`]).
///
/// [`Limits::cookies_until`]: super::Limits::cookies_until
pub(super) fn answerable_until(now_ns: u64) -> u64 {
    ((now_ns >> COOKIE_SLOT_SHIFT) + COOKIE_SLOTS).saturating_mul(1 << COOKIE_SLOT_SHIFT)
}

/// The segment tracking reads: flags, sequence number and payload length (the parser has
/// checked the TCP header is within the packet).
fn segment(data: &[u8], ip: &IpFrame, flags: u32) -> Segment {
    let seq = field_u32(data, ip.l4_start + 4).unwrap_or(0);
    let header = data.get(ip.l4_start + 12).map_or(TCP_HEADER_LEN, |b| usize::from(b >> 4) * 4);
    let len = (ip.l3_start + ip.l3_len).saturating_sub(ip.l4_start + header) as u32;
    Segment { flags, seq, len }
}

fn field_u32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A keyed 64-bit hash of `value` (an address, addresses and an identification) and `more`:
/// see [`keyed_words`].
pub(super) fn keyed(value: u128, more: u64) -> u64 {
    keyed_words([(value >> 64) as u64, value as u64, more])
}

/// A keyed 64-bit hash of `words`: the tables of tracked connections, authenticated sources
/// and fragments index and tell entries apart by it. SipHash-1-3 (std's `RandomState`'s)
/// under a key drawn once per process: without it, an attacker cannot make two connections
/// or sources one entry (the unkeyed fold once made every IPv6 address `(hi ^ x, lo ^ x)`
/// the same source), nor aim at one set of a table. Fed a word at a time: std's hasher takes
/// a `u128` as bytes, through its general loop over a buffer, and a connection's two nested
/// hashes of it cost 470 instructions a packet, where one hash of its five words costs 170.
fn keyed_words<const N: usize>(words: [u64; N]) -> u64 {
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let &(k0, k1) = KEY.get_or_init(|| {
        let state = std::hash::RandomState::new();
        let draw = |n: u64| std::hash::BuildHasher::hash_one(&state, n);
        (draw(0), draw(1))
    });
    let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
    for word in words {
        h.write_u64(word);
    }
    h.finish()
}

/// Rewrites the SYN or SYN-ACK in `frame` (Ethernet at 0, the IP header at `ip.l3_start`)
/// into the segment that challenges it, from the customer's address (addresses and ports
/// swapped) to the next hop `eth`, no options, no data, acknowledging `cookie`:
/// - a SYN gets a SYN-ACK; the client's stack, in SYN-SENT, finds the acknowledgement
///   unacceptable and answers with a RST carrying it (RFC 9293 §3.10.7.3);
/// - a SYN-ACK (a server answering a customer's SYN) gets an ACK with the sequence number
///   the server expects; its stack, in SYN-RECEIVED, finds the acknowledgement unacceptable
///   and answers with a RST carrying it (§3.10.7.4), then sends its SYN-ACK again.
///
/// Returns the segment's length.
pub(super) fn write_challenge(frame: &mut [u8], ip: &IpFrame, eth: &EthernetAddrs, cookie: u32) -> Option<usize> {
    let (l3, l4) = (ip.l3_start, ip.l4_start);
    let len = l4 + TCP_HEADER_LEN;
    if frame.len() < len || frame.len() < 14 {
        return None;
    }
    frame[0..6].copy_from_slice(&eth.dst);
    frame[6..12].copy_from_slice(&eth.src);
    // TCP: ports swapped, the cookie acknowledged, no options.
    let mut segment = TcpPacket::new_unchecked(&mut frame[l4..len]);
    let answering_syn_ack = segment.flags() & tcp::ACK != 0;
    let (sport, dport) = (segment.src_port(), segment.dst_port());
    segment.set_src_port(dport);
    segment.set_dst_port(sport);
    // Answering a SYN-ACK, our sequence number is what it acknowledged: the server's next
    // expected.
    let seq = if answering_syn_ack { segment.ack_number() } else { cookie ^ 0x5bd1_e995 };
    segment.set_seq_number(seq);
    segment.set_ack_number(cookie);
    segment.set_header_len(TCP_HEADER_LEN);
    segment.set_flags(if answering_syn_ack { tcp::ACK } else { tcp::SYN | tcp::ACK });
    segment.set_window(1024);
    segment.set_checksum(0); // below
    segment.set_urgent(0);
    let pseudo = if ip.is_ipv6 {
        // `answerable` held l4 at l3 + 40: no extension headers to drop (nor options, AH).
        let mut header = Ipv6Packet::new_unchecked(&mut frame[l3..l4]);
        header.swap_addrs();
        // Not ECN-capable (RFC 3168 §6.1.1: never on a SYN-ACK), the SYN's DSCP kept, as
        // Linux keeps its TOS; no flow label of the client's.
        header.set_version_class_flow(header.traffic_class() & !ECN_MASK, 0);
        header.set_payload_len(TCP_HEADER_LEN as u16);
        header.set_hop_limit(CHALLENGE_TTL);
        gre::icmp::ipv6_pseudo_header_sum(&header.src_octets(), &header.dst_octets(), TCP_HEADER_LEN as u32, 6)
    } else {
        let mut header = Ipv4Packet::new_unchecked(&mut frame[l3..l4]);
        header.swap_addrs();
        header.set_tos(header.tos() & !ECN_MASK);
        header.set_total_len((l4 - l3 + TCP_HEADER_LEN) as u16);
        header.set_ident(0);
        header.set_flags_and_offset(true, false, 0);
        header.set_ttl(CHALLENGE_TTL);
        header.fill_checksum();
        let addrs = u64::from(checksum::sum(&header.src_octets())) + u64::from(checksum::sum(&header.dst_octets()));
        addrs + 6 + TCP_HEADER_LEN as u64
    };
    let segment = &mut frame[l4..len];
    let sum = !checksum::fold(pseudo + u64::from(checksum::sum(segment)));
    TcpPacket::new_unchecked(segment).set_checksum(sum);
    Some(len)
}

/// The ECN field of the IPv4 TOS and IPv6 traffic class (RFC 3168 §5).
const ECN_MASK: u8 = 0b11;

/// A keyed 64-bit hash of the 4-tuple (the protocol is always TCP here) and the IP version:
/// the key holds an IPv4 address as an IPv6 one's top 32 bits (42.11.18.52 and 2a0b:1234::
/// are one number), and without the version the two shared connections and cookies.
fn flow_of(key: &Key) -> u64 {
    let ports = u64::from(key.get(Dim::SrcPort)) << 16 | u64::from(key.get(Dim::DstPort));
    let (src, dst) = (key.src_addr(), key.dst_addr());
    let version_ports = ports | u64::from(key.get(Dim::IpVersion)) << 32;
    keyed_words([(src >> 64) as u64, src as u64, (dst >> 64) as u64, dst as u64, version_ports])
}

/// A keyed hash of the source address and its IP version, what an authenticated source is
/// remembered by (see [`flow_of`]).
fn source_of(key: &Key) -> u64 {
    keyed(key.src_addr(), u64::from(key.get(Dim::IpVersion)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(src: u128, dst: u128, sport: u16, dport: u16) -> Key {
        let mut key = Key::new(100);
        key.set_ipv6(src.to_be_bytes(), dst.to_be_bytes(), 6, 64, 20);
        key.set_ports(sport, dport);
        key
    }

    /// An IPv4 address and the IPv6 address whose top 32 bits spell it are one number in the
    /// key: they were one source (an IPv6 host answering a challenge authenticated the IPv4
    /// address), one connection and one cookie.
    #[test]
    fn an_ipv4_address_and_its_ipv6_twin_are_different_sources_and_connections() {
        let mut v4 = Key::new(100);
        v4.set_ipv4([42, 11, 18, 52], [203, 0, 113, 9], 6, 64, 40, false, false, 0);
        v4.set_ports(1000, 80);
        let v6 = v6(0x2a0b_1234u128 << 96, 0xcb00_7109u128 << 96, 1000, 80);
        assert_eq!((v4.src_addr(), v4.dst_addr()), (v6.src_addr(), v6.dst_addr()), "one number each");
        assert_ne!(source_of(&v4), source_of(&v6));
        assert_ne!(flow_of(&v4), flow_of(&v6));
        let secret = [7u8; 16];
        assert_ne!(cookie_of(&secret, &v4, 5), cookie_of(&secret, &v6, 5));
    }

    #[test]
    fn ipv6_addresses_that_fold_alike_are_different_sources_and_connections() {
        // The unkeyed fold (hi ^ lo) made every (hi ^ x, lo ^ x) one source and one flow.
        let (src, dst) = (0x2001_0db8_0000_0000_0000_0000_0000_0001u128, 0x2001_0db8_0000_0000_0000_0000_0000_0002u128);
        let x = 0x0123_4567_89ab_cdefu128;
        let twin = src ^ (x << 64 | x);
        assert_eq!((src as u64) ^ (src >> 64) as u64, (twin as u64) ^ (twin >> 64) as u64, "they do fold alike");
        assert_ne!(keyed(src, 0), keyed(twin, 0));
        assert_ne!(flow_of(&v6(src, dst, 1000, 80)), flow_of(&v6(twin, dst, 1000, 80)));
    }

    /// A connection's hash is of its two addresses (each word of them), its two ports and
    /// their direction: one number changed, or the two ends swapped, makes another.
    #[test]
    fn a_connection_is_its_four_tuple_in_its_direction() {
        let flow = flow_of(&v6(1, 2, 1000, 80));
        assert_eq!(flow_of(&v6(1, 2, 1000, 80)), flow, "one connection, one hash");
        for other in [
            v6(2, 1, 80, 1000),
            v6(1, 2, 80, 1000),
            v6(3, 2, 1000, 80),
            v6(1, 3, 1000, 80),
            v6(1 | 1 << 64, 2, 1000, 80),
            v6(1, 2 | 1 << 64, 1000, 80),
            v6(1, 2, 1001, 80),
            v6(1, 2, 1000, 81),
        ] {
            assert_ne!(flow_of(&other), flow, "{other:?}");
        }
    }

    #[test]
    fn a_cookie_is_of_its_connection_and_slot() {
        let secret = [7u8; 16];
        let key = v6(1, 2, 1000, 80);
        let c = cookie_of(&secret, &key, 5);
        for other in [v6(1, 2, 1001, 80), v6(1, 2, 1000, 81), v6(3, 2, 1000, 80), v6(1, 3, 1000, 80)] {
            assert_ne!(cookie_of(&secret, &other, 5), c);
        }
        assert_ne!(cookie_of(&secret, &key, 6), c);
        assert_ne!(cookie_of(&[8u8; 16], &key, 5), c);
        // Accepted in its slot and the four after, not later, nor before it was made; so is
        // the form that is not the client's ISN + 1.
        let at = |slot: u64| slot << COOKIE_SLOT_SHIFT;
        assert!((5..5 + COOKIE_SLOTS).all(|s| cookie_matches(&secret, &key, c, at(s))));
        assert!((5..5 + COOKIE_SLOTS).all(|s| cookie_matches(&secret, &key, c ^ 1, at(s))));
        assert!(!cookie_matches(&secret, &key, c, at(5 + COOKIE_SLOTS)));
        assert!(!cookie_matches(&secret, &key, c, at(4)));
        assert!(!cookie_matches(&secret, &key, c, at(5 + 8)), "a slot that wrapped the three bits");
        assert!(!cookie_matches(&secret, &key, c ^ 2, at(5)));
        // A challenge sent anywhere in the slot keeps RSTs checked for as long as its cookie
        // is accepted, and no longer.
        assert_eq!(answerable_until(at(5)), at(5 + COOKIE_SLOTS));
        assert_eq!(answerable_until(at(6) - 1), at(5 + COOKIE_SLOTS));
        // A cookie names its slot: across slots that differ only above the three bits, the
        // MACs differ.
        assert_eq!(cookie_of(&secret, &key, 13) >> 29, c >> 29);
        assert_ne!(cookie_of(&secret, &key, 13), c);
    }
}
