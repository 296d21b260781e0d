//! The per-packet core: stages as plain functions over a read-only [`Snapshot`] and one
//! frame, run over a batch.
//!
//! ```text
//!                                      ┌─ GRE to the anycast address: decap ─► tunnel ─► keepalive / probe / ping
//! parse ─► check ─► sanity ─► DoS ─────┤      └─► source check ─► egress rules ─┬─► forward to the Internet
//!                                      │                                         └─► (a customer's prefix) ─┐
//!                                      └─ steer ─► customer DoS ─► firewall ─► route ─► TTL, MTU ─► GRE encap
//!                                                                                          └─► ICMP errors, fragments
//! ```
//!
//! Every way out is a [`Verdict`] with its reason: transmitted (and as what), passed to the
//! kernel, dropped, or consumed here (a health-probe reply). Nothing here allocates, locks,
//! reads a clock or does I/O; frames the stages originate beyond the one they were handed
//! (later fragments) go into the worker's [`Spill`].

pub mod dos;
pub mod frame;
pub mod parse;
pub mod stats;
pub mod verdict;

mod decap;
pub mod egress;
mod forward;
mod ingress;

pub use frame::{BATCH_SIZE, Frame, HEADROOM, Spill};
pub use parse::{IpFrame, Parsed, parse_frame, parse_inner};
pub use stats::WorkerStats;
pub use verdict::{ConsumeReason, DropReason, PassReason, TxReason, Verdict};

use classifier::RateLimiter;
use gre::EthernetAddrs;

use self::forward::Ctx;
use crate::snapshot::{CustomerId, Snapshot, TunnelId};

/// Spill slots per worker: the later fragments one batch may produce.
pub const SPILL_SLOTS: usize = 128;

/// A frame's verdict and what decided it, for counters and dry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What to do with the frame.
    pub verdict: Verdict,
    /// The customer whose prefix the destination is in, or whose tunnel it came from.
    pub customer: Option<CustomerId>,
    /// The firewall rule that decided (global rule index), if one did.
    pub rule: Option<u32>,
    /// The monitor-mode rule that would have decided (global rule index).
    pub monitor: Option<u32>,
    /// The egress rule that let a decapsulated packet out or dropped it.
    pub egress_rule: Option<u32>,
    /// The monitor-mode egress rule that would have decided.
    pub egress_monitor: Option<u32>,
    /// The tunnel the frame was sent into, or (if it was not sent) came out of.
    pub tunnel: Option<TunnelId>,
    /// The tunnel the frame came out of (GRE from a customer's router).
    pub from_tunnel: Option<TunnelId>,
    /// The DoS rule that decided (global DoS rule index), if one did.
    pub dos_rule: Option<u32>,
    /// The monitor-mode DoS rule that would have decided.
    pub dos_monitor: Option<u32>,
    /// Frames put into the spill besides this one (later fragments).
    pub spilled: u16,
}

impl Outcome {
    pub(crate) const fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            customer: None,
            rule: None,
            monitor: None,
            egress_rule: None,
            egress_monitor: None,
            tunnel: None,
            from_tunnel: None,
            dos_rule: None,
            dos_monitor: None,
            spilled: 0,
        }
    }
}

/// A worker's rate-limit state: the DoS buckets and its ICMP error budget.
#[derive(Debug)]
pub struct Limits {
    /// Buckets of `rate-limit` rules.
    pub dos: RateLimiter,
    /// One bucket: the ICMP errors this worker may send.
    pub icmp: RateLimiter,
}

impl Limits {
    /// Limits sized for `snap`.
    pub fn new(snap: &Snapshot) -> Limits {
        Limits {
            dos: RateLimiter::new(&snap.dos.buckets, snap.dos.table_size),
            icmp: RateLimiter::new(std::slice::from_ref(&snap.icmp), 1),
        }
    }
}

/// A worker's mutable per-packet state: counters, rate limits, spilled frames, and the
/// outcome of each frame of the last batch (for whoever observes outcomes from outside the
/// core: drop capture, dry runs).
#[derive(Debug)]
pub struct WorkerState {
    /// Counters.
    pub stats: WorkerStats,
    /// Rate-limit buckets.
    pub limits: Limits,
    /// Frames to send after the batch.
    pub spill: Spill,
    /// The last batch's outcomes, frame by frame (its first `batch_len`).
    outcomes: [Outcome; BATCH_SIZE],
    batch_len: usize,
}

impl WorkerState {
    /// State sized for `snap`.
    pub fn new(snap: &Snapshot) -> WorkerState {
        WorkerState {
            stats: WorkerStats::new(snap),
            limits: Limits::new(snap),
            spill: Spill::new(SPILL_SLOTS, snap.frame_size),
            outcomes: [Outcome::new(Verdict::Drop(DropReason::Truncated)); BATCH_SIZE],
            batch_len: 0,
        }
    }

    /// The outcomes of the last batch processed, in frame order (of its first
    /// [`BATCH_SIZE`] frames).
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes[..self.batch_len]
    }
}

/// Runs the pipeline over a batch: sets each frame's verdict and counts it. Frames are sent
/// with the configuration's Ethernet addresses.
pub fn process_batch(snapshot: &Snapshot, frames: &mut [Frame<'_>], state: &mut WorkerState) {
    process_batch_via(snapshot, Some(snapshot.eth), frames, state);
}

/// [`process_batch`] with the Ethernet addresses of the moment (a next hop learned from the
/// neighbour table); `None` while the next hop is unresolved, which drops what would be
/// sent as `next_hop_unresolved`.
pub fn process_batch_via(
    snapshot: &Snapshot,
    eth: Option<EthernetAddrs>,
    frames: &mut [Frame<'_>],
    state: &mut WorkerState,
) {
    if let Some(f) = frames.first() {
        state.spill.timestamp_ns = f.timestamp_ns;
    }
    state.batch_len = frames.len().min(BATCH_SIZE);
    for (i, frame) in frames.iter_mut().enumerate() {
        state.stats.rx_frames += 1;
        state.stats.rx_bytes += frame.len as u64;
        let before = state.spill.len();
        let rx_len = frame.len;
        let outcome = process_frame(snapshot, eth.as_ref(), &mut state.limits, &mut state.spill, frame);
        state.stats.count(&outcome, rx_len);
        if outcome.spilled > 0 {
            state.stats.count_spilled(TxReason::Fragment, state.spill.len() - before, state.spill.bytes_from(before));
        }
        frame.verdict = outcome.verdict;
        if let Some(slot) = state.outcomes.get_mut(i) {
            *slot = outcome;
        }
    }
}

/// Runs every stage on one frame, rewriting it in place when it is to be transmitted with
/// Ethernet addresses `eth` (`None`: the next hop is not resolved).
pub fn process_frame(
    snap: &Snapshot,
    eth: Option<&EthernetAddrs>,
    limits: &mut Limits,
    spill: &mut Spill,
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
    if !ip.is_ipv6 && !forward::ipv4_checksum_ok(data, &ip) {
        return Outcome::new(Verdict::Drop(DropReason::BadIpv4Checksum));
    }
    let now = frame.timestamp_ns;
    if let Some(su) = &snap.soft_unicast
        && egress::is_backbone(su, &key, &ip)
    {
        // From the fleet's own servers: not Internet traffic, past sanity and DoS.
        let mut ctx = Ctx { snap, eth, limits, spill, now, spilled: 0, via: None };
        return Outcome::new(egress::process(&mut ctx, su, frame, &key, &ip));
    }
    if let Some(reason) = dos::sanity(&snap.dos.sanity, &key, &ip) {
        return Outcome::new(Verdict::Drop(reason));
    }
    let global = dos::apply(&snap.dos.rules, &key, now, &mut limits.dos, snap);
    let mut outcome = Outcome {
        dos_rule: global.rule,
        dos_monitor: global.monitor,
        ..Outcome::new(Verdict::Drop(DropReason::Firewall))
    };
    if let Some(reason) = global.drop {
        outcome.verdict = Verdict::Drop(reason);
        return outcome;
    }
    let mut ctx = Ctx { snap, eth, limits, spill, now, spilled: 0, via: None };
    if let Some(su) = &snap.soft_unicast
        && egress::is_ours(su, &key, &ip)
    {
        outcome.verdict = egress::process(&mut ctx, su, frame, &key, &ip);
    } else if decap::is_gre_to_us(snap, &key, &ip) {
        decap::process(&mut ctx, frame, &key, &ip, &mut outcome);
    } else {
        ingress::process(&mut ctx, frame, &key, &ip, &mut outcome);
    }
    outcome.spilled = ctx.spilled;
    // The tunnel a frame was sent into; an ICMP error sent to the Internet went into none.
    match (ctx.via, outcome.verdict) {
        (Some(t), _) => outcome.tunnel = Some(t),
        (None, Verdict::Tx { reason: TxReason::IcmpTooBig | TxReason::IcmpTimeExceeded, .. }) => outcome.tunnel = None,
        _ => {}
    }
    outcome
}
