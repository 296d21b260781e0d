//! The DoS stage: sanity checks, then rule lists whose actions drop or rate-limit, before
//! any customer's firewall. Rate-limit state is the worker's own [`RateLimiter`], fixed in
//! size, fed the frame's receive time (capture time in replay).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use classifier::limit::{fold_address, mix};
use classifier::{Action, BucketKey, Decision, Dim, Key, RateLimiter, RuleSet};

use super::forward::Ctx;
use super::parse::IpFrame;
use super::verdict::DropReason;
use crate::snapshot::{Sanity, Snapshot};

/// TCP flag bits.
const FIN: u32 = 0x01;
const SYN: u32 = 0x02;
const RST: u32 = 0x04;
const ACK: u32 = 0x10;

/// The first sanity check a packet fails, if any (customer-source spoofing is checked after
/// steering, in [`spoofs_a_customer`], and so is a source route onward). Fragments are judged before flags: the "flags" of a
/// tiny first fragment are whatever bytes it happens to end with.
pub fn sanity(s: &Sanity, key: &Key, ip: &IpFrame) -> Option<DropReason> {
    if let Some(reason) = packet_sanity(s, key, ip) {
        return Some(reason);
    }
    if s.bogons.as_ref().is_some_and(|b| b.lookup(ip.is_ipv6, key.src_addr()).is_some()) {
        return Some(DropReason::BogonSource);
    }
    None
}

/// The sanity checks of the packet itself, all but the source's: what a packet a customer's
/// tunnel carries to a customer prefix meets too (its source is the customer's own, which
/// decapsulation checked), so that one customer cannot send another what the edge keeps from
/// the Internet.
pub fn packet_sanity(s: &Sanity, key: &Key, ip: &IpFrame) -> Option<DropReason> {
    if s.land && key.src_addr() == key.dst_addr() {
        return Some(DropReason::Land);
    }
    if s.fragments
        && let Some(frag) = ip.fragment
    {
        // A piece ending past the largest datagram, 65,535 bytes with its headers (RFC 791's
        // total length; RFC 8200 §4.5's payload length, which discards it): the "ping of
        // death", which no sender makes and some reassemblers overflow on.
        if frag.headers + frag.offset as usize + frag.data_len > usize::from(u16::MAX) {
            return Some(DropReason::OversizeFragment);
        }
        let proto = u32::from(frag.protocol);
        // RFC 1858 §3.2: a TCP fragment at offset 8 can only be meant to overwrite the flags.
        // More generally, a later fragment at an offset below the smallest first fragment
        // the check below lets through overlaps every first fragment that passes, and can
        // only be meant to rewrite what the rules read: TCP's at 8 and 16 (its first holds
        // 20 bytes, cut at 24). An IPv4 fragment's protocol is in every piece and in the key
        // receivers reassemble by (RFC 791), so it can be trusted: 51 under an authentication
        // header, whose first fragment holds AH (24 bytes with the usual 96-bit ICV, RFC
        // 4302) and the transport header: TCP's ends at 44, cut at 48. An IPv4 first fragment
        // with a 20-byte header holds 48 bytes at the least anyway (RFC 791's 68-byte MTU).
        // An IPv6 later fragment's Next Header is not: receivers take the first fragment's
        // (RFC 8200 §4.5), so a piece claiming UDP may rewrite a TCP first fragment's flags.
        // Every IPv6 later fragment below 48 is refused, whatever it names (behind 8 bytes
        // of options TCP's header ends at 28; an IPv6 first fragment holds 1232 bytes on the
        // smallest link). A floor, not a proof: longer options put the flags further in,
        // where RFC 5722's receivers (which discard overlapping IPv6 fragments) are the
        // defence.
        // Tunnels likewise: below their inner header's end (IPv4-in-IP's 20 bytes, cut at 24;
        // IPv6-in-IP's 40), a later piece rewrites the inner addresses the rules read.
        let smallest_first = match proto {
            _ if ip.is_ipv6 => 48,
            6 | 4 => 24,
            41 => 40,
            51 => 48,
            _ => 8,
        };
        if frag.offset > 0 && frag.offset < smallest_first {
            return Some(DropReason::OverlappingFragment);
        }
        // RFC 1858 §3.1 and RFC 7112: a first fragment must hold the whole transport header
        // (20 bytes of TCP, 8 of UDP or ICMP), so that rules see ports and flags; a
        // tunnel's, the header that says what it carries (GRE's 4 fixed bytes, ESP's SPI
        // and sequence number, IPv4's or IPv6's fixed header).
        let needed = match proto {
            6 | 4 => 20,
            17 | 1 | 58 | 50 => 8,
            47 => 4,
            41 => 40,
            _ => 0,
        };
        if frag.offset == 0 && frag.data_len < needed {
            return Some(DropReason::TinyFragment);
        }
    }
    if s.tcp_flags && key.get(Dim::L4Proto) == 6 {
        let f = key.get(Dim::TcpFlags);
        // None of SYN, RST and ACK (no flags at all, or PSH, URG, FIN and ECN's alone), SYN
        // with FIN or RST, FIN without ACK: no TCP stack sends these; scanners and stack
        // fingerprinters do. Every state of a receiver discards a segment with none of the
        // three (RFC 9293 §3.10.7: one that is not a SYN or RST must carry an ACK).
        let impossible =
            f & (SYN | RST | ACK) == 0 || (f & SYN != 0 && f & (FIN | RST) != 0) || (f & FIN != 0 && f & ACK == 0);
        if f != classifier::ABSENT && impossible {
            return Some(DropReason::BadTcpFlags);
        }
    }
    if s.max_ipv6_extension_headers > 0 && ip.extension_headers > u16::from(s.max_ipv6_extension_headers) {
        return Some(DropReason::Ipv6ExtensionChain);
    }
    None
}

/// True when the source lies in some customer's prefixes (with `customer_sources`): such a
/// packet can only be the customer's own if it arrives through its tunnel, not from the
/// Internet. Or when it is an address of ours ([`is_our_address`]), whatever the switch
/// says: we send to a customer from one only through its tunnel, so from the Internet it is
/// spoofed (strict reverse-path forwarding, RFC 3704 §2.2: our side of a tunnel is reached
/// through the tunnel, the anycast address here; Linux drops a source of its own as a
/// martian), and let on it reached the router as the edge's own, past what the router
/// trusts of its tunnel's peer.
pub fn spoofs_a_customer(snap: &Snapshot, key: &Key, ip: &IpFrame) -> bool {
    // An IPv4 source is the key's first address word: the whole address is not assembled
    // for every packet to a customer.
    let ours = match ip.is_ipv6 {
        true => is_our_address(snap, IpAddr::V6(Ipv6Addr::from(key.src_addr()))),
        false => is_our_ipv4(snap, key.get(Dim::Src0)),
    };
    ours || (snap.dos.sanity.customer_sources && snap.customer_by_prefix.lookup(ip.is_ipv6, key.src_addr()).is_some())
}

/// An address only this edge sends from: an anycast address, or our side of a tunnel's
/// `interface`. A packet from one that reaches us was written by someone else.
#[inline]
pub fn is_our_address(snap: &Snapshot, addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => is_our_ipv4(snap, u32::from(a)),
        IpAddr::V6(a) => snap.anycast_v6 == Some(a),
    }
}

/// [`is_our_address`] for IPv4 `a`.
#[inline]
pub(super) fn is_our_ipv4(snap: &Snapshot, a: u32) -> bool {
    let sides = &snap.tunnel_sides; // few or none: most tunnels are not probed
    a == u32::from_be_bytes(snap.anycast) || (!sides.is_empty() && sides.binary_search(&Ipv4Addr::from(a)).is_ok())
}

/// What a DoS rule list did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DosOutcome {
    /// The drop, if the packet is to be dropped.
    pub drop: Option<DropReason>,
    /// The enforced rule that decided (index in `rules`).
    pub rule: Option<u32>,
    /// The monitor rule that would have decided.
    pub monitor: Option<u32>,
    /// The monitor rule rate-limits, and its bucket would have refused the packet.
    pub would_limit: bool,
}

/// What a DoS rule list with no rules does: nothing.
pub const NO_DOS: DosOutcome = DosOutcome { drop: None, rule: None, monitor: None, would_limit: false };

/// The buckets, and keys in them, one packet has been charged in, and whether each took it.
/// A packet meets rules at up to four stages (the global DoS rules; a decapsulated packet's
/// egress rules; its customer's DoS rules; its firewall), and where two name one bucket it is
/// charged once under a key: charged at each, a flood at a destination bucket's rate passed
/// 1% of it, every token the first stage refilled taken for a packet the second then dropped.
/// The preview tables of monitor-mode rate limits keep a record of their own: sharing this
/// one, a preview could take the slot that spares an enforced rule a second token.
#[derive(Clone, Copy, Debug, Default)]
pub struct Charged {
    /// `(bucket, key, admitted)` for each charge, in order: a `u16` bucket and the flag fit
    /// where a `usize` bucket was (the record is made for every frame).
    charges: [(u16, u64, bool); 4],
    len: usize,
}

impl Charged {
    /// Whether the packet conforms to `bucket` under `key`: free where it has paid there
    /// already, refused where the bucket has refused it already (under any key), else a
    /// token from `limiter`. Enforced, a refusal drops the packet, which meets no bucket
    /// after it; a preview's packet goes on, and charged again it would spend tokens that
    /// enforcing never spends (a hairpinned frame's carried packet after its GRE packet was
    /// refused: the preview counted more than enforcing dropped).
    pub fn admit(&mut self, limiter: &mut RateLimiter, bucket: u16, key: u64, now_ns: u64) -> bool {
        let charges = &self.charges[..self.len];
        if charges.iter().any(|&(b, _, admitted)| b == bucket && !admitted) {
            return false;
        }
        if charges.contains(&(bucket, key, true)) {
            return true;
        }
        let admitted = limiter.admit(usize::from(bucket), key, now_ns);
        if let Some(charge) = self.charges.get_mut(self.len) {
            *charge = (bucket, key, admitted);
            self.len += 1;
        }
        admitted
    }
}

/// Applies a DoS rule list. `drop` drops; `rate-limit` drops when the rule's bucket is out of
/// tokens for the packet's key; `accept` lets the packet through to the next stage.
pub(super) fn apply(ctx: &mut Ctx<'_>, rules: &RuleSet, key: &Key, data: &[u8]) -> DosOutcome {
    if rules.rules().is_empty() {
        return NO_DOS;
    }
    enforce(ctx, rules, &rules.decide(key, data), 0, key)
}

/// Carries out `rules`' decision `d`: the lookup's part is pure (and may run over a batch);
/// this part counts tokens, so it runs frame by frame in arrival order. `base` is the list's
/// first rule's number among all DoS rules (0 for the global list, a customer's
/// `dos_base`): a `key = "rule"` bucket counts each rule of each list apart.
pub(super) fn enforce(ctx: &mut Ctx<'_>, rules: &RuleSet, d: &Decision, base: u32, key: &Key) -> DosOutcome {
    let drop = match d.action {
        Action::Accept => None,
        Action::Drop => Some(DropReason::DosRule),
        Action::RateLimit(b) => {
            let spec = ctx.snap.dos.buckets.get(usize::from(b)).map_or(BucketKey::Rule, |s| s.key);
            let k = bucket_key(spec, key, RuleId::dos(d.rule.map(|r| base + r)));
            (!ctx.charged.admit(&mut ctx.limits.dos, b, k, ctx.now)).then_some(DropReason::RateLimited)
        }
    };
    let would_limit = would_limit(ctx, rules, d.monitor, |m| RuleId::dos(Some(base + m)), key);
    DosOutcome { drop, rule: d.rule, monitor: d.monitor, would_limit }
}

/// Whether the monitor-mode rule that would have decided a packet (`monitor`, its index in
/// `rules`; `id` its number as a `key = "rule"` bucket keeps it) rate-limits, and its bucket
/// would have refused the packet: the rule's preview of its enforcement. It is charged as
/// it would charge its bucket, but in the worker's preview tables: the tokens enforced rules
/// spend are not touched, and what a monitor rule would refuse is counted, not dropped.
///
/// Inlined for its first test alone (most frames meet no monitor-mode rule); the rest is
/// out of line, so that a stage's code does not grow for a rule most configurations lack.
#[inline(always)]
pub(super) fn would_limit(
    ctx: &mut Ctx<'_>,
    rules: &RuleSet,
    monitor: Option<u32>,
    id: impl FnOnce(u32) -> RuleId,
    key: &Key,
) -> bool {
    match monitor {
        None => false,
        Some(m) => preview(ctx, rules, m, id(m), key),
    }
}

/// [`would_limit`] for a frame a monitor-mode rule (`m`, numbered `id`) would have decided.
#[cold]
#[inline(never)]
fn preview(ctx: &mut Ctx<'_>, rules: &RuleSet, m: u32, id: RuleId, key: &Key) -> bool {
    let Some(b) = rules.rules().get(m as usize).and_then(|r| r.previewed_bucket()) else { return false };
    let dos = &ctx.snap.dos;
    let Some(&Some(table)) = dos.preview_of.get(usize::from(b)) else { return false };
    let spec = dos.buckets.get(usize::from(b)).map_or(BucketKey::Rule, |s| s.key);
    let k = bucket_key(spec, key, id);
    // Charged even where an enforced rule paid this bucket and key at an earlier stage
    // (enforced, this rule would then take no token of its own): the preview table follows
    // the tokens the packets reaching the rule took, whichever rule took them.
    let paid = ctx.previewed.get_or_insert_with(Charged::default);
    !paid.admit(&mut ctx.limits.previews, table, k, ctx.now)
}

/// A rule as a `key = "rule"` bucket tells it apart from every other: DoS rules and the
/// firewall and egress rules are numbered in two sequences (all lists of each together), so
/// the sequence is part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleId(u64);

impl RuleId {
    /// No rule (a list's default action).
    pub const NONE: RuleId = RuleId(u64::MAX);

    /// DoS rule `rule` (its number among all DoS rules).
    pub fn dos(rule: Option<u32>) -> RuleId {
        rule.map_or(RuleId::NONE, |r| RuleId(1 << 32 | u64::from(r)))
    }

    /// Firewall or egress rule `rule` (its number among all of them).
    pub fn firewall(rule: Option<u32>) -> RuleId {
        rule.map_or(RuleId::NONE, |r| RuleId(u64::from(r)))
    }
}

/// A 64-bit hash of `key`'s addresses and protocol with `ports` (the source port in the
/// high half, the destination port in the low; 0 to leave them out): the flow of ECMP-like
/// choices (a `flow` bucket, a tunnel among equals, an outer flow label).
pub(super) fn flow_fold(key: &Key, ports: u64) -> u64 {
    let fold = |v: u128| (v as u64) ^ ((v >> 64) as u64);
    mix(fold(key.src_addr()))
        ^ mix(fold(key.dst_addr()).rotate_left(17))
        ^ mix(ports ^ u64::from(key.get(Dim::IpProto)))
}

/// `key`'s ports as [`flow_fold`] takes them.
pub(super) fn ports_of(key: &Key) -> u64 {
    u64::from(key.get(Dim::SrcPort)) << 32 | u64::from(key.get(Dim::DstPort))
}

/// An address in one 128-bit form for both versions: IPv4 as IPv4-mapped IPv6 (RFC 4291
/// §2.5.5.2), as bucket keys and the tunnel index (routers by address) take it. The key
/// holds IPv4 in the top 32 bits, where 38.0.31.24 and 2600:1f18:: are one number.
pub(super) fn one_form(address: u128, key: &Key) -> u128 {
    if key.get(Dim::IpVersion) == 6 { address } else { 0xffff << 32 | address >> 96 }
}

/// The 64-bit key a bucket counts the packet under.
pub fn bucket_key(spec: BucketKey, key: &Key, rule: RuleId) -> u64 {
    match spec {
        BucketKey::Destination => fold_address(one_form(key.dst_addr(), key)),
        BucketKey::SourceNetwork => {
            // IPv4 /24 (top 24 of the 128-bit form), IPv6 /48; the version apart (an IPv6
            // /48 can have an IPv4 /24's bits).
            let (mask, version) = if key.get(Dim::IpVersion) == 6 { (!0u128 << 80, 6) } else { (!0u128 << 104, 4) };
            fold_address(key.src_addr() & mask | version)
        }
        // Keyed, as the addresses are: with `flow_fold`'s plain `hi ^ lo`, an IPv6 sender
        // could pick an interface id whose fold is another flow's and spend its tokens.
        // The protocol sits apart from the ports (XORed in, TCP 80 was UDP 71).
        BucketKey::Flow => {
            mix(fold_address(one_form(key.src_addr(), key)))
                ^ mix(fold_address(one_form(key.dst_addr(), key)).rotate_left(17))
                ^ mix(ports_of(key) ^ u64::from(flow_protocol(key)) << 16)
        }
        BucketKey::Rule => rule.0,
    }
}

/// The protocol of a `flow` bucket's 5-tuple: the transport's, behind any IPv6 extension
/// headers. The fixed header's next header names the first of them: keyed by it, one UDP
/// flow with and without a Hop-by-Hop header was two keys (twice its limit), and TCP and
/// UDP between the same ports behind a Destination Options header were one. A later
/// fragment has no transport: IPv4's protocol field, which every fragment carries and
/// receivers reassemble by (RFC 791); an IPv6 one's Next Header is not what receivers take
/// (the first fragment's, RFC 8200 §4.5), so IPv6 later fragments share one key whatever
/// they name.
fn flow_protocol(key: &Key) -> u32 {
    match key.get(Dim::L4Proto) {
        classifier::ABSENT if key.get(Dim::IpVersion) == 4 => key.get(Dim::IpProto),
        transport => transport,
    }
}
