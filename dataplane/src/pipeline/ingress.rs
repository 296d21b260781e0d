//! The ingress stages: a packet for a customer prefix passes that customer's firewall, takes
//! that customer's route, and leaves GRE-encapsulated toward that customer's router.
//!
//! Isolation is structural: the customer is chosen once, by destination, and every later
//! stage reads only that customer's tables.

use classifier::{Action, Key, RateLimiter};
use gre::EthernetAddrs;
use gre::checksum;
use gre::encap::{EncapError, encap_gre};
use gre::ttl::{decrement_ipv4_ttl, decrement_ipv6_hop_limit};

use super::dos;
use super::parse::{IpFrame, Parsed, parse_frame};
use super::verdict::{DropReason, PassReason, Verdict};
use crate::config::Unmatched;
use crate::io::Frame;
use crate::snapshot::{Customer, CustomerId, Snapshot, Tunnel, TunnelId};

/// A frame's verdict and what decided it, for counters and dry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What to do with the frame.
    pub verdict: Verdict,
    /// The customer whose prefix the destination is in.
    pub customer: Option<CustomerId>,
    /// The firewall rule that decided (global rule index), if one did.
    pub rule: Option<u32>,
    /// The monitor-mode rule that would have decided (global rule index).
    pub monitor: Option<u32>,
    /// The tunnel the frame was sent into.
    pub tunnel: Option<TunnelId>,
    /// The DoS rule that decided (global DoS rule index), if one did.
    pub dos_rule: Option<u32>,
    /// The monitor-mode DoS rule that would have decided.
    pub dos_monitor: Option<u32>,
}

impl Outcome {
    fn new(verdict: Verdict) -> Outcome {
        Outcome { verdict, customer: None, rule: None, monitor: None, tunnel: None, dos_rule: None, dos_monitor: None }
    }
}

/// Runs every stage on one frame, rewriting it in place when it is to be transmitted with
/// Ethernet addresses `eth` (`None`: the next hop is not resolved).
pub fn process_frame(
    snap: &Snapshot,
    eth: Option<&EthernetAddrs>,
    limiter: &mut RateLimiter,
    frame: &mut Frame<'_>,
) -> Outcome {
    if frame.len > snap.frame_size {
        return Outcome::new(Verdict::Drop(DropReason::Oversize));
    }
    let Some(data) = frame.buf.get(frame.start..frame.start + frame.len) else {
        return Outcome::new(Verdict::Drop(DropReason::Truncated));
    };
    let (key, parsed) = parse_frame(data, frame.wire_len);
    let ip = match parsed {
        Parsed::Ip(ip) => ip,
        Parsed::NotIp => return Outcome::new(Verdict::Pass(PassReason::NotIp)),
        Parsed::Bad(reason) => return Outcome::new(Verdict::Drop(reason)),
    };
    if !ip.is_ipv6 && !ipv4_checksum_ok(data, &ip) {
        return Outcome::new(Verdict::Drop(DropReason::BadIpv4Checksum));
    }
    if let Some(reason) = dos::sanity(&snap.dos.sanity, &key, &ip) {
        return Outcome::new(Verdict::Drop(reason));
    }
    let now = frame.timestamp_ns;
    let global = dos::apply(&snap.dos.rules, &key, now, limiter, snap);
    let mut outcome = Outcome {
        dos_rule: global.rule,
        dos_monitor: global.monitor,
        ..Outcome::new(Verdict::Drop(DropReason::Firewall))
    };
    if let Some(reason) = global.drop {
        outcome.verdict = Verdict::Drop(reason);
        return outcome;
    }
    let Some(customer_id) = steer(snap, &key, &ip) else {
        outcome.verdict = match snap.unmatched {
            Unmatched::Pass => Verdict::Pass(PassReason::NoCustomer),
            Unmatched::Drop => Verdict::Drop(DropReason::NoCustomer),
        };
        return outcome;
    };
    outcome.customer = Some(customer_id);
    if dos::spoofs_a_customer(snap, &key, &ip) {
        outcome.verdict = Verdict::Drop(DropReason::SpoofedCustomerSource);
        return outcome;
    }
    let customer = &snap.customers[usize::from(customer_id)];
    let own = dos::apply(&customer.dos, &key, now, limiter, snap);
    if own.rule.is_some() || own.monitor.is_some() {
        outcome.dos_rule = own.rule.map(|r| customer.dos_base + r).or(outcome.dos_rule);
        outcome.dos_monitor = own.monitor.map(|r| customer.dos_base + r).or(outcome.dos_monitor);
    }
    if let Some(reason) = own.drop {
        outcome.verdict = Verdict::Drop(reason);
        return outcome;
    }

    let decision = customer.firewall.decide(&key);
    outcome.rule = decision.rule.map(|r| customer.rule_base + r);
    outcome.monitor = decision.monitor.map(|r| customer.rule_base + r);
    match decision.action {
        Action::Accept => {}
        Action::Drop => return outcome,
        Action::RateLimit(b) => {
            let spec = snap.dos.buckets.get(usize::from(b)).map_or(classifier::BucketKey::Rule, |s| s.key);
            let k = dos::bucket_key(spec, &key, outcome.rule.unwrap_or(u32::MAX));
            if !limiter.admit(usize::from(b), k, now) {
                outcome.verdict = Verdict::Drop(DropReason::RateLimited);
                return outcome;
            }
        }
    }
    let Some(tunnel_id) = route(customer, &key, &ip) else {
        outcome.verdict = Verdict::Drop(DropReason::NoRoute);
        return outcome;
    };
    outcome.tunnel = Some(tunnel_id);
    outcome.verdict = match eth {
        Some(eth) => forward(eth, &snap.tunnels[usize::from(tunnel_id)], frame, &ip),
        None => Verdict::Drop(DropReason::NextHopUnresolved),
    };
    outcome
}

fn ipv4_checksum_ok(data: &[u8], ip: &IpFrame) -> bool {
    data.get(ip.l3_start..ip.l3_start + ip.header_len).is_some_and(|h| checksum::sum(h) == 0xffff)
}

/// The customer owning the destination address.
fn steer(snap: &Snapshot, key: &Key, ip: &IpFrame) -> Option<CustomerId> {
    if ip.is_ipv6 {
        snap.customers_v6.lookup(key.dst_addr())
    } else {
        snap.customers_v4.lookup((key.dst_addr() >> 96) as u32)
    }
}

/// The customer's tunnel for the destination (longest prefix).
fn route(customer: &Customer, key: &Key, ip: &IpFrame) -> Option<TunnelId> {
    if ip.is_ipv6 {
        customer.routes_v6.lookup(key.dst_addr())
    } else {
        customer.routes_v4.lookup((key.dst_addr() >> 96) as u32)
    }
}

/// Decrements the TTL or hop limit, checks the tunnel MTU and encapsulates in place.
fn forward(eth: &EthernetAddrs, tunnel: &Tunnel, frame: &mut Frame<'_>, ip: &IpFrame) -> Verdict {
    if ip.l3_len > tunnel.mtu as usize {
        return Verdict::Drop(DropReason::MtuExceeded);
    }
    let l3 = frame.start + ip.l3_start;
    let (tos, protocol, ttl) = if ip.is_ipv6 {
        let hdr = frame.buf.get_mut(l3..l3 + 40).and_then(|h| <&mut [u8; 40]>::try_from(h).ok());
        let Some(hdr) = hdr else { return Verdict::Drop(DropReason::Truncated) };
        let tclass = (hdr[0] << 4) | (hdr[1] >> 4);
        (tclass, gre::packet::PROTO_IPV6, decrement_ipv6_hop_limit(hdr))
    } else {
        let hdr = frame.buf.get_mut(l3..l3 + 20).and_then(|h| <&mut [u8; 20]>::try_from(h).ok());
        let Some(hdr) = hdr else { return Verdict::Drop(DropReason::Truncated) };
        (hdr[1], gre::packet::PROTO_IPV4, decrement_ipv4_ttl(hdr))
    };
    if ttl.is_err() {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    match encap_gre(frame.buf, l3, ip.l3_len, protocol, tos, &tunnel.gre, eth) {
        Ok(start) => Verdict::Tx { start, len: l3 + ip.l3_len - start },
        Err(EncapError::NoHeadroom) => Verdict::Drop(DropReason::NoHeadroom),
        // The inner range was checked by the parser and the MTU bounds the length: only a
        // backend handing in an inconsistent frame gets here.
        Err(EncapError::OutOfFrame | EncapError::TooLong) => Verdict::Drop(DropReason::Truncated),
    }
}
