//! The ingress stages: a packet for a customer prefix passes that customer's DoS rules and
//! firewall, takes that customer's route, and leaves GRE-encapsulated toward one of that
//! customer's routers.
//!
//! Isolation is structural: the customer is chosen once, by destination, and every later
//! stage reads only that customer's tables.

use classifier::{Action, BucketKey, Decision, Key};

use super::Frame;
use super::dos::{self, RuleId};
use super::forward::{Ctx, back_into, choose_tunnel, ethernet, flow_hash, into_tunnel, route};
use super::parse::IpFrame;
use super::tcp::{self, Protection};
use super::verdict::{ConsumeReason, DropReason, TxReason, Verdict};
use super::{Outcome, WouldLimit};
use crate::snapshot::{Customer, CustomerId, Snapshot};

/// The customer owning the destination address.
pub(super) fn steer(snap: &Snapshot, key: &Key, is_ipv6: bool) -> Option<CustomerId> {
    snap.customer_by_prefix.lookup(is_ipv6, key.dst_addr())
}

/// A customer's rule lookups for one packet: pure, so they can run ahead of the stages
/// that act on them, over a whole batch at once.
#[derive(Clone, Copy, Debug)]
pub(super) struct Decided {
    /// The customer's DoS rules' decision (`None`: it has none).
    pub dos: Option<Decision>,
    /// Its firewall's decision.
    pub firewall: Decision,
}

impl Decided {
    /// Nothing decided yet (a placeholder in per-batch storage).
    pub const NONE: Decided = Decided { dos: None, firewall: NO_DECISION };
}

/// A decision no rule made, for storage not yet written.
pub(super) const NO_DECISION: Decision = Decision { rule: None, action: Action::Drop, monitor: None };

/// Looks up `customer`'s rules for one packet (its key, and the bytes it was parsed from).
pub(super) fn decide(customer: &Customer, key: &Key, data: &[u8]) -> Decided {
    Decided {
        dos: (!customer.dos.rules().is_empty()).then(|| customer.dos.decide(key, data)),
        firewall: customer.firewall.decide(key, data),
    }
}

/// The customer's own stages: its DoS rules, its firewall, its route, its tunnel. Also the
/// way in for a decapsulated packet addressed to a customer's prefix.
pub(super) fn to_customer(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    customer_id: CustomerId,
    outcome: &mut Outcome,
) {
    let decided = decide(&ctx.snap.customers[usize::from(customer_id)], key, frame.data());
    act_for_customer(ctx, frame, key, ip, customer_id, &decided, outcome);
}

/// [`to_customer`] with the customer's lookups done: counts tokens, routes, encapsulates.
pub(super) fn act_for_customer(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    customer_id: CustomerId,
    decided: &Decided,
    outcome: &mut Outcome,
) {
    let snap = ctx.snap;
    outcome.customer = Some(customer_id);
    outcome.by_default = false; // a decapsulated packet's egress default decided nothing here
    let customer = &snap.customers[usize::from(customer_id)];
    let own = decided.dos.map_or(dos::NO_DOS, |d| dos::enforce(ctx, &customer.dos, &d, customer.dos_base, key));
    outcome.customer_dos_rule = own.rule.map(|r| customer.dos_base + r);
    outcome.customer_dos_monitor = own.monitor.map(|r| customer.dos_base + r);
    outcome.would_limit.set(WouldLimit::CUSTOMER_DOS, own.would_limit);
    if let Some(reason) = own.drop {
        outcome.verdict = Verdict::Drop(reason);
        return;
    }
    let data = frame.buf.get(frame.start..frame.start + frame.len).unwrap_or(&[]);
    // A rate-limit rule's refusal is known only once its bucket is charged, below: such a
    // packet is tracked as any the firewall lets through.
    let firewall_drops = decided.firewall.action == Action::Drop;
    match tcp::protect(ctx, data, key, ip, customer, firewall_drops, outcome) {
        Protection::Pass => {}
        Protection::Drop(reason) => {
            outcome.verdict = Verdict::Drop(reason);
            return;
        }
        Protection::Answered => {
            outcome.verdict = Verdict::Consumed(ConsumeReason::SynChallengeAnswer);
            return;
        }
        Protection::Challenge { cookie } => {
            outcome.verdict = challenge(ctx, frame, ip, cookie);
            if matches!(outcome.verdict, Verdict::Tx { .. }) {
                // Its answer may come back while its cookie is valid: RSTs are checked till then.
                let until = tcp::answerable_until(ctx.now);
                ctx.limits.cookies_until = ctx.limits.cookies_until.max(until);
            } else {
                // No challenge went out (no next hop, no headroom): `challenged` counts the
                // SYNs answered, and the drop says why this one was not. No cookie is out
                // either: RSTs are not checked for it.
                outcome.tcp = None;
            }
            return;
        }
    }

    let decision = decided.firewall;
    outcome.rule = decision.rule.map(|r| customer.rule_base + r);
    outcome.monitor = decision.monitor.map(|r| customer.rule_base + r);
    let id = |m| RuleId::firewall(Some(customer.rule_base + m));
    outcome.would_limit.set(WouldLimit::FIREWALL, dos::would_limit(ctx, &customer.firewall, decision.monitor, id, key));
    outcome.by_default = decision.rule.is_none();
    if !admit(ctx, decision.action, key, outcome.rule) {
        outcome.verdict =
            Verdict::Drop(if decision.action == Action::Drop { DropReason::Firewall } else { DropReason::RateLimited });
        return;
    }
    let tunnel = route(snap, customer, key, ip.is_ipv6).and_then(|g| choose_tunnel(snap, g, || flow_hash(key, ip)));
    let Some(tunnel_id) = tunnel else {
        outcome.verdict = Verdict::Drop(DropReason::NoRoute);
        return;
    };
    outcome.tunnel = Some(tunnel_id);
    outcome.verdict = into_tunnel(ctx, &snap.tunnels[usize::from(tunnel_id)], frame, ip, key);
}

/// Turns a SYN over its rule's threshold into the SYN-ACK challenging it, sent back the way
/// the SYN came: through the next hop, or (decapsulated from a customer's tunnel) back into
/// that tunnel, behind which its client is.
fn challenge(ctx: &mut Ctx<'_>, frame: &mut Frame<'_>, ip: &IpFrame, cookie: u32) -> Verdict {
    let Some(eth) = ctx.eth else { return Verdict::Drop(DropReason::NextHopUnresolved) };
    let Some(bytes) = frame.buf.get_mut(frame.start..frame.start + frame.len) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let Some(len) = tcp::write_challenge(bytes, ip, eth, cookie) else { return Verdict::Drop(DropReason::Truncated) };
    let snap = ctx.snap;
    match ctx.from.and_then(|t| snap.tunnels.get(usize::from(t))) {
        // The frame's outer headers are the tunnel's: the segment is encapsulated afresh.
        Some(tunnel) => {
            let (l3, ip_len) = (frame.start + ip.l3_start, len - ip.l3_start);
            back_into(ctx, tunnel, frame.buf, l3, ip_len, ip.is_ipv6, TxReason::SynChallenge)
        }
        // A fresh Ethernet header in front of the IP header, as every frame to the next hop
        // has: the received one may hold VLAN tags.
        None => {
            let (l3, ip_len) = (frame.start + ip.l3_start, len - ip.l3_start);
            ethernet(ctx, frame.buf, l3, ip_len, ip.is_ipv6, TxReason::SynChallenge)
        }
    }
}

/// Whether a rule action lets the packet through: accept, or a rate limit with tokens left
/// in its bucket (`rule` is the global index the bucket may key on).
pub(super) fn admit(ctx: &mut Ctx<'_>, action: Action, key: &Key, rule: Option<u32>) -> bool {
    match action {
        Action::Accept => true,
        Action::Drop => false,
        Action::RateLimit(b) => {
            let spec = ctx.snap.dos.buckets.get(usize::from(b)).map_or(BucketKey::Rule, |s| s.key);
            let k = dos::bucket_key(spec, key, RuleId::firewall(rule));
            ctx.charged.admit(&mut ctx.limits.dos, b, k, ctx.now)
        }
    }
}
