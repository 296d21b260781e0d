//! The TCP protection stage: a customer's TCP packets covered by a `[[tcp_protection.rule]]`
//! (global rules first, then the customer's) go through the worker's [`FlowTable`]; in
//! `mitigate` mode a packet that belongs to no tracked connection is dropped under its own
//! reason, in `monitor` mode only counted.
//!
//! Runs after the customer's DoS rules and before its firewall, so that rate limits still
//! cap SYNs (which always pass here: they open connections) and the firewall sees only what
//! tracking let through.
//!
//! [`FlowTable`]: super::flows::FlowTable

use classifier::limit::mix;
use classifier::{ABSENT, Dim, Key};

use super::Outcome;
use super::flows::FlowEvent;
use super::forward::Ctx;
use super::parse::IpFrame;
use super::verdict::DropReason;
use crate::snapshot::Customer;

/// IP protocol number of TCP.
const TCP: u32 = 6;

/// Tracks one packet to `customer`; the drop, if the covering rule mitigates and the packet
/// is out of state. Sets the outcome's rule and event.
pub(super) fn protect(
    ctx: &mut Ctx<'_>,
    key: &Key,
    ip: &IpFrame,
    customer: &Customer,
    outcome: &mut Outcome,
) -> Option<DropReason> {
    let tcp = &ctx.snap.tcp;
    if tcp.rules.is_empty() || key.get(Dim::L4Proto) != TCP || ip.fragment.is_some() {
        return None;
    }
    let flags = key.get(Dim::TcpFlags);
    if flags == ABSENT {
        return None;
    }
    let rule = match tcp.global.decide(key).rule {
        Some(r) => r,
        None => customer.tcp.decide(key).rule.map(|r| customer.tcp_base + r)?,
    };
    let event = ctx.limits.flows.observe(flow_of(key), flags, ctx.now, &tcp.timeouts);
    outcome.tcp_rule = Some(rule);
    outcome.tcp = Some(event);
    let mitigate = tcp.rules.get(rule as usize).is_some_and(|r| r.mitigate);
    match event {
        FlowEvent::OutOfStateAck if mitigate => Some(DropReason::TcpOutOfStateAck),
        FlowEvent::OutOfStateFin if mitigate => Some(DropReason::TcpOutOfStateFin),
        FlowEvent::OutOfStateRst if mitigate => Some(DropReason::TcpOutOfStateRst),
        _ => None,
    }
}

/// A 64-bit hash of the 4-tuple (the protocol is always TCP here).
fn flow_of(key: &Key) -> u64 {
    let fold = |v: u128| (v as u64) ^ ((v >> 64) as u64);
    let ports = u64::from(key.get(Dim::SrcPort)) << 16 | u64::from(key.get(Dim::DstPort));
    mix(fold(key.src_addr())) ^ mix(fold(key.dst_addr()).rotate_left(23)) ^ mix(ports | 6 << 32)
}
