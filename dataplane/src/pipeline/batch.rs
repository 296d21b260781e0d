//! The pipeline over a batch, stage by stage (VPP's vector shape): each phase runs over
//! every frame before the next phase starts, so a phase's code and tables stay hot in
//! cache, and the classifier is asked about many keys at once (its batched walk is up to
//! twice as fast per key as one at a time).
//!
//! ```text
//! 1 check    every frame: size, parse, IPv4 checksum; backbone GRE set aside, return
//!            traffic (to an egress address) marked
//! 2 global   sanity; the global DoS rules, one batched lookup
//! 3 steer    GRE to us, or a customer (address lookups)
//! 4 customer per customer, its frames together: its DoS rules and firewall, batched
//! 5 act      frame by frame in arrival order: return traffic's owner (this server's goes to
//!            its host, whatever phase 2 found), tokens, routes, TTL/MTU, encapsulation
//! ```
//!
//! Phases 1-4 are pure lookups. Everything with state runs in phase 5, in arrival order
//! (return traffic's owner too: a later fragment follows its first, so the owner of every
//! fragment is looked up in the one phase, as the frame-at-a-time pipeline looks it up),
//! through the same functions [`process_frame`](super::process_frame) uses: token buckets
//! see the same packets in the same order, spilled fragments land in the same slots, and
//! verdicts, outcomes and counters equal the frame-at-a-time pipeline's exactly (the
//! differential test, `tests/vector_pipeline.rs`, holds it to that). A lookup is wasted
//! only on a frame a global rate limit then drops.

use classifier::{Decision, Key};
use gre::EthernetAddrs;

use super::forward::Ctx;
use super::ingress::{Decided, NO_DECISION};
use super::parse::IpFrame;
use super::{
    BATCH_SIZE, DropReason, Frame, Outcome, Path, Verdict, WorkerState, WouldLimit, check, dos, dropped_by_dos, finish,
    from_backbone, is_backbone, is_to_egress, path, steer_return_traffic,
};
use crate::snapshot::Snapshot;

/// Where a frame stands between phases.
#[derive(Clone, Copy, Debug)]
enum Lane {
    /// Decided; its outcome is written.
    Done,
    /// Dropped by a global DoS rule, with a monitor-mode rule ahead of it whose preview
    /// (tokens: phase 5) is yet to be charged.
    DroppedByDos,
    /// Backbone GRE: soft unicast's, past sanity and DoS.
    Backbone,
    /// Checked; the global stages are next.
    Checked,
    /// Past the global lookups, on its way.
    On(Path),
}

/// What the phases of one batch leave for the next, one entry per frame. Kept in the
/// worker's state so that a batch initialises nothing it does not write.
#[derive(Debug)]
pub(super) struct Lanes {
    lane: [Lane; BATCH_SIZE],
    key: [Key; BATCH_SIZE],
    ip: [IpFrame; BATCH_SIZE],
    rx_len: [usize; BATCH_SIZE],
    /// Return traffic from the Internet: its owner is looked up in phase 5 (in arrival
    /// order, with every fragment's), before its sanity and DoS outcome counts.
    to_egress: [bool; BATCH_SIZE],
    global: [Decision; BATCH_SIZE],
    decided: [Decided; BATCH_SIZE],
    /// Scratch for one group's lookups.
    found: [Decision; BATCH_SIZE],
}

impl Lanes {
    pub(super) fn new() -> Box<Lanes> {
        Box::new(Lanes {
            lane: [Lane::Done; BATCH_SIZE],
            key: [Key::new(0); BATCH_SIZE],
            ip: [IpFrame::NONE; BATCH_SIZE],
            rx_len: [0; BATCH_SIZE],
            to_egress: [false; BATCH_SIZE],
            global: [NO_DECISION; BATCH_SIZE],
            decided: [Decided::NONE; BATCH_SIZE],
            found: [NO_DECISION; BATCH_SIZE],
        })
    }
}

/// Runs the pipeline over a batch: sets each frame's verdict and counts it. Frames are sent
/// with the configuration's Ethernet addresses.
pub fn process_batch(snapshot: &Snapshot, frames: &mut [Frame<'_>], state: &mut WorkerState) {
    process_batch_via(snapshot, Some(snapshot.eth), frames, state);
}

/// [`process_batch`] with the Ethernet addresses of the moment (a next hop learned from the
/// neighbour table); `None` while the next hop is unresolved, which drops what would be
/// sent as `next_hop_unresolved`. More than [`BATCH_SIZE`] frames are taken that many at a
/// time; [`WorkerState::outcomes`] then holds the last group's.
///
/// Never inlined: one call per batch costs nothing, and profilers (and `pipeline-compare.sh`'s
/// instruction counts) find the pipeline under this name in an LTO build too.
#[inline(never)]
pub fn process_batch_via(
    snapshot: &Snapshot,
    eth: Option<EthernetAddrs>,
    frames: &mut [Frame<'_>],
    state: &mut WorkerState,
) {
    for group in frames.chunks_mut(BATCH_SIZE) {
        state.batch_len = group.len();
        check_all(snapshot, group, state);
        global_stages(snapshot, group, state);
        steer_all(snapshot, group.len(), state);
        customer_lookups(snapshot, group, &mut state.lanes);
        act_in_order(snapshot, eth.as_ref(), group, state);
    }
}

/// Phase 1: size, parse and checksum of every frame.
fn check_all(snap: &Snapshot, frames: &[Frame<'_>], state: &mut WorkerState) {
    let lanes = &mut *state.lanes;
    for (i, frame) in frames.iter().enumerate() {
        lanes.rx_len[i] = frame.len;
        let checked = check(snap, frame, &mut lanes.key[i], &mut lanes.ip[i]);
        let (key, ip) = (&lanes.key[i], &lanes.ip[i]);
        lanes.lane[i] = match checked {
            Ok(()) if is_backbone(snap, key, ip) => Lane::Backbone,
            Ok(()) => Lane::Checked,
            Err(verdict) => {
                state.outcomes[i] = Outcome::new(verdict);
                Lane::Done
            }
        };
        lanes.to_egress[i] = matches!(lanes.lane[i], Lane::Checked) && is_to_egress(snap, key, ip);
    }
}

/// Phase 2: sanity, then the global DoS rules' lookup for every frame still checked. A
/// `drop` decision needs no tokens and is final here (but for return traffic this server
/// owns, which phase 5 hands over); `rate-limit` waits for phase 5.
fn global_stages(snap: &Snapshot, frames: &[Frame<'_>], state: &mut WorkerState) {
    let n = frames.len();
    let lanes = &mut *state.lanes;
    for i in 0..n {
        if let Lane::Checked = lanes.lane[i]
            && let Some(reason) = dos::sanity(&snap.dos.sanity, &lanes.key[i], &lanes.ip[i])
        {
            state.outcomes[i] = Outcome::new(Verdict::Drop(reason));
            lanes.lane[i] = Lane::Done;
        }
    }
    let rules = &snap.dos.rules;
    if rules.rules().is_empty() {
        return;
    }
    let mut at = [0u8; BATCH_SIZE];
    let mut keys: [&Key; BATCH_SIZE] = [&lanes.key[0]; BATCH_SIZE];
    let mut data: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
    let mut m = 0;
    for (i, frame) in frames.iter().enumerate() {
        if let Lane::Checked = lanes.lane[i] {
            (at[m], keys[m], data[m]) = (i as u8, &lanes.key[i], frame.data());
            m += 1;
        }
    }
    rules.decide_batch(&keys[..m], &data[..m], &mut lanes.found[..m]);
    for (&i, d) in at[..m].iter().zip(&lanes.found[..m]) {
        let i = usize::from(i);
        lanes.global[i] = *d;
        if d.action == classifier::Action::Drop {
            // No tokens involved: final now, and spares the frame the customer lookups.
            // What a monitor rule ahead of it would have refused is charged in phase 5.
            let (rule, monitor) = (d.rule, d.monitor);
            let global = dos::DosOutcome { drop: Some(DropReason::DosRule), rule, monitor, would_limit: false };
            state.outcomes[i] = dropped_by_dos(global);
            lanes.lane[i] = if d.monitor.is_some() { Lane::DroppedByDos } else { Lane::Done };
        }
    }
}

/// Phase 3: where each frame goes, by its addresses (return traffic: by its owner, in
/// phase 5).
fn steer_all(snap: &Snapshot, n: usize, state: &mut WorkerState) {
    let lanes = &mut *state.lanes;
    for i in 0..n {
        if let Lane::Checked = lanes.lane[i]
            && !lanes.to_egress[i]
        {
            lanes.lane[i] = Lane::On(path(snap, &lanes.key[i], &lanes.ip[i]));
        }
    }
}

/// Phase 4: each customer's DoS and firewall lookups, its frames gathered into one batched
/// lookup per rule set.
fn customer_lookups(snap: &Snapshot, frames: &[Frame<'_>], lanes: &mut Lanes) {
    let n = frames.len();
    let Lanes { lane, key, decided, found, .. } = lanes;
    // Frames bound to a customer, by index; taken out group by group.
    let mut todo = [0u8; BATCH_SIZE];
    let mut left = 0;
    for (i, l) in lane[..n].iter().enumerate() {
        if let Lane::On(Path::Customer(_)) = l {
            todo[left] = i as u8;
            left += 1;
        }
    }
    let customer_of = |i: u8| match lane[usize::from(i)] {
        Lane::On(Path::Customer(c)) => Some(c),
        _ => None,
    };
    let mut at = [0u8; BATCH_SIZE];
    let mut keys: [&Key; BATCH_SIZE] = [&key[0]; BATCH_SIZE];
    let mut data: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
    while left > 0 {
        let Some(c) = customer_of(todo[0]) else { break };
        let customer = &snap.customers[usize::from(c)];
        // This customer's frames into `at`, the others kept in `todo`.
        let (mut m, mut kept) = (0, 0);
        for j in 0..left {
            let i = todo[j];
            if customer_of(i) == Some(c) {
                (at[m], keys[m], data[m]) = (i, &key[usize::from(i)], frames[usize::from(i)].data());
                m += 1;
            } else {
                todo[kept] = i;
                kept += 1;
            }
        }
        left = kept;
        let (at, keys, data) = (&at[..m], &keys[..m], &data[..m]);
        customer.firewall.decide_batch(keys, data, &mut found[..m]);
        for (&i, d) in at.iter().zip(&found[..m]) {
            decided[usize::from(i)] = Decided { dos: None, firewall: *d };
        }
        if !customer.dos.rules().is_empty() {
            customer.dos.decide_batch(keys, data, &mut found[..m]);
            for (&i, d) in at.iter().zip(&found[..m]) {
                decided[usize::from(i)].dos = Some(*d);
            }
        }
    }
}

/// Phase 5: frame by frame, in arrival order, what has state: return traffic's owners,
/// tokens, routes, rewrites, spills; then the counters.
fn act_in_order(snap: &Snapshot, eth: Option<&EthernetAddrs>, frames: &mut [Frame<'_>], state: &mut WorkerState) {
    let WorkerState { stats, limits, spill, outcomes, lanes, .. } = state;
    let global_rules = !snap.dos.rules.rules().is_empty();
    for (i, frame) in frames.iter_mut().enumerate() {
        let before = spill.len();
        // Written in place; a frame decided in an earlier phase has its outcome already.
        let outcome = &mut outcomes[i];
        let mut lane = lanes.lane[i];
        spill.timestamp_ns = frame.captured_ns; // what this frame spills is stamped so
        if lanes.to_egress[i] {
            let mut ctx = Ctx::new(snap, eth, limits, spill, frame.timestamp_ns);
            match steer_return_traffic(&mut ctx, frame, &lanes.key[i], &lanes.ip[i]) {
                // This server's: handed over, whatever sanity or a DoS rule said in phase 2.
                Err(verdict) => {
                    *outcome = Outcome::new(verdict);
                    lane = Lane::Done;
                }
                Ok(path) if matches!(lane, Lane::Checked) => lane = Lane::On(path),
                Ok(_) => {}
            }
        }
        if !matches!(lane, Lane::Done) {
            let (key, ip) = (&lanes.key[i], &lanes.ip[i]);
            let mut ctx = Ctx::new(snap, eth, limits, spill, frame.timestamp_ns);
            if let Lane::Backbone = lane {
                *outcome = from_backbone(&mut ctx, frame, key, ip);
            } else if let Lane::DroppedByDos = lane {
                let monitor = lanes.global[i].monitor;
                let id = |m| dos::RuleId::dos(Some(m));
                outcome.would_limit.set(WouldLimit::DOS, dos::would_limit(&mut ctx, &snap.dos.rules, monitor, id, key));
            } else {
                let path = match lane {
                    Lane::On(path) => path,
                    // Phase 3 (return traffic: above) steered every checked frame; were one
                    // missed, steer it now.
                    _ => path(snap, key, ip),
                };
                let global = if global_rules {
                    dos::enforce(&mut ctx, &snap.dos.rules, &lanes.global[i], 0, key)
                } else {
                    dos::NO_DOS
                };
                finish(&mut ctx, frame, key, ip, global, path, &lanes.decided[i], outcome);
            }
        }
        stats.count_received(outcome, lanes.rx_len[i], spill, before);
        frame.verdict = outcome.verdict;
    }
    stats.count_tables(limits);
}
