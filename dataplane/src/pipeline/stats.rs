//! Per-worker counters: plain integers the owning worker bumps, summed by whoever reports.

use super::flows::FlowEvent;
use super::{ConsumeReason, DropReason, Outcome, PassReason, TxReason, Verdict, WouldLimit};
use crate::snapshot::{Snapshot, Succession};

/// Packets and the bytes they held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Traffic {
    #[inline]
    fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    /// Takes back one [`add`](Traffic::add).
    fn sub(&mut self, bytes: usize) {
        self.packets = self.packets.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes as u64);
    }

    /// Adds another count into this one.
    pub fn merge(&mut self, other: &Traffic) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

/// Adds customer counts `other` into `mine`.
pub fn merge_customer(mine: &mut CustomerStats, other: &CustomerStats) {
    for (a, b) in mine.iter_mut().zip(other) {
        a.merge(b);
    }
}

/// A customer's frames by verdict kind ([`Verdict::kind_index`]), counted at the length
/// they arrived with.
pub type CustomerStats = [Traffic; Verdict::KINDS.len()];

/// A tunnel's frames: those that came out of it (GRE from its router, whatever became of
/// them) and those sent into it (counted at their encapsulated length).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// Frames received from the tunnel's router.
    pub received: Traffic,
    /// Of those, dropped.
    pub received_dropped: u64,
    /// Frames sent into the tunnel.
    pub sent: Traffic,
}

impl TunnelStats {
    /// Adds another tunnel's counts into these.
    pub fn merge(&mut self, other: &TunnelStats) {
        self.received.merge(&other.received);
        self.received_dropped += other.received_dropped;
        self.sent.merge(&other.sent);
    }
}

/// One worker's counters. Never shared while the worker runs; snapshots are copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames transmitted, by what they are.
    pub tx: [u64; TxReason::COUNT],
    /// Frames consumed here (probe replies), by reason.
    pub consumed: [u64; ConsumeReason::COUNT],
    /// Frames passed to the kernel, by reason.
    pub pass: [u64; PassReason::COUNT],
    /// Frames dropped, by reason.
    pub drop: [u64; DropReason::COUNT],
    /// Bytes transmitted, by what they are.
    pub tx_bytes_by: [u64; TxReason::COUNT],
    /// Bytes (as received) consumed, by reason.
    pub consumed_bytes: [u64; ConsumeReason::COUNT],
    /// Bytes (as received) passed to the kernel, by reason.
    pub pass_bytes: [u64; PassReason::COUNT],
    /// Bytes (as received) dropped, by reason.
    pub drop_bytes: [u64; DropReason::COUNT],
    /// Packets decided by each firewall rule (global rule index), monitor hits included.
    pub rule_hits: Vec<u64>,
    /// Packets decided by each DoS rule (global, then each customer's), monitor hits included.
    pub dos_hits: Vec<u64>,
    /// Of each monitor-mode firewall or egress rule's hits, the packets its bucket would have
    /// refused, had it been enforced (by global rule index; empty when no monitor-mode rule
    /// rate-limits).
    pub rule_would_limit: Vec<u64>,
    /// The same for DoS rules.
    pub dos_would_limit: Vec<u64>,
    /// Packets each TCP protection rule covered (global, then each customer's), by what
    /// flow tracking made of them ([`FlowEvent::ALL`] order).
    pub tcp_hits: Vec<[u64; FlowEvent::ALL.len()]>,
    /// Frames of each customer (by the snapshot's customer index; kept by name across reloads).
    pub customers: Vec<CustomerStats>,
    /// Frames of each tunnel (by the snapshot's tunnel index; kept by name across reloads).
    pub tunnels: Vec<TunnelStats>,
    /// GRE datagrams from tunnels' routers made whole from their fragments.
    pub gre_reassembled: u64,
    /// Tracked TCP connections evicted while live (established) to make room for new ones.
    pub tcp_evicted: u64,
    /// GRE datagrams given up with fragments of them held (not whole within a second,
    /// evicted, or discarded with a fragment refused).
    pub gre_reassembly_discarded: u64,
    /// Path MTUs that Packet Too Big errors had lowered, raised back because a path MTU
    /// probe of the size before was answered (the prober's worker only).
    pub path_mtu_errors_disproved: u64,
    /// Health probes unanswered while the run's sockets dropped received frames, excused
    /// rather than missed (the prober's worker only).
    pub health_probes_excused: u64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_frames: 0,
            rx_bytes: 0,
            tx_frames: 0,
            tx_bytes: 0,
            tx: [0; TxReason::COUNT],
            consumed: [0; ConsumeReason::COUNT],
            pass: [0; PassReason::COUNT],
            drop: [0; DropReason::COUNT],
            tx_bytes_by: [0; TxReason::COUNT],
            consumed_bytes: [0; ConsumeReason::COUNT],
            pass_bytes: [0; PassReason::COUNT],
            drop_bytes: [0; DropReason::COUNT],
            rule_hits: Vec::new(),
            dos_hits: Vec::new(),
            rule_would_limit: Vec::new(),
            dos_would_limit: Vec::new(),
            tcp_hits: Vec::new(),
            customers: Vec::new(),
            tunnels: Vec::new(),
            gre_reassembled: 0,
            tcp_evicted: 0,
            gre_reassembly_discarded: 0,
            path_mtu_errors_disproved: 0,
            health_probes_excused: 0,
        }
    }
}

/// Counters for `rules` rules of `snap` when some monitor-mode rule rate-limits, else none.
fn previewed(snap: &Snapshot, rules: usize) -> usize {
    if snap.dos.previewed.is_empty() { 0 } else { rules }
}

impl WorkerStats {
    /// Counters sized for `snap`.
    pub fn new(snap: &Snapshot) -> WorkerStats {
        WorkerStats {
            rule_hits: vec![0; snap.rule_count],
            dos_hits: vec![0; snap.dos_rule_count],
            rule_would_limit: vec![0; previewed(snap, snap.rule_count)],
            dos_would_limit: vec![0; previewed(snap, snap.dos_rule_count)],
            tcp_hits: vec![[0; FlowEvent::ALL.len()]; snap.tcp.rules.len()],
            customers: vec![CustomerStats::default(); snap.customers.len()],
            tunnels: vec![TunnelStats::default(); snap.tunnels.len()],
            ..WorkerStats::default()
        }
    }

    /// Re-sizes the counters for `new`, which `succession` says what of the old snapshot's
    /// carries to (off the per-packet path). Rule indices change meaning with the
    /// configuration, so their counts restart; customers and tunnels keep theirs by name, so
    /// that their counters only ever grow.
    pub fn rebind(&mut self, new: &Snapshot, succession: &Succession) {
        self.rule_hits.clear();
        self.rule_hits.resize(new.rule_count, 0);
        self.dos_hits.clear();
        self.dos_hits.resize(new.dos_rule_count, 0);
        self.rule_would_limit.clear();
        self.rule_would_limit.resize(previewed(new, new.rule_count), 0);
        self.dos_would_limit.clear();
        self.dos_would_limit.resize(previewed(new, new.dos_rule_count), 0);
        self.tcp_hits.clear();
        self.tcp_hits.resize(new.tcp.rules.len(), [0; FlowEvent::ALL.len()]);
        // By where each was in the old snapshot (by name, worked out once for all workers).
        fn moved<T: Copy + Default>(was: &[Option<usize>], counts: &[T]) -> Vec<T> {
            was.iter().map(|j| j.and_then(|j| counts.get(j)).copied().unwrap_or_default()).collect()
        }
        self.customers = moved(&succession.customers, &self.customers);
        self.tunnels = moved(&succession.tunnels, &self.tunnels);
    }

    /// Counts one received frame of `rx_len` bytes: its arrival, its outcome, and what it
    /// spilled (the frames of `spill` from the `spilled_from`th on). What the vector
    /// pipeline does for each frame, and what a frame-at-a-time reference does too.
    #[inline]
    pub fn count_received(&mut self, outcome: &Outcome, rx_len: usize, spill: &super::Spill, spilled_from: usize) {
        self.rx_frames += 1;
        self.rx_bytes += rx_len as u64;
        self.count(outcome, rx_len);
        if outcome.spilled > 0 {
            self.count_spilled(spill, spilled_from);
        }
    }

    /// Takes what the worker's tables counted that no one frame's outcome says, after a
    /// batch: the reassembler's datagrams, the flow table's evictions.
    #[inline]
    pub fn count_tables(&mut self, limits: &mut super::Limits) {
        let reassembler = &limits.reassembly;
        (self.gre_reassembled, self.gre_reassembly_discarded) = (reassembler.reassembled(), reassembler.discarded());
        self.tcp_evicted += limits.flows.take_evicted();
    }

    /// Counts one frame's outcome; `rx_len` is the length it arrived with.
    #[inline]
    pub fn count(&mut self, outcome: &Outcome, rx_len: usize) {
        if let Some(c) = outcome.customer.and_then(|c| self.customers.get_mut(usize::from(c))) {
            c[outcome.verdict.kind_index()].add(rx_len);
        }
        if let Some(t) = outcome.from_tunnel.and_then(|t| self.tunnels.get_mut(usize::from(t))) {
            t.received.add(rx_len);
            if matches!(outcome.verdict, Verdict::Drop(_)) {
                t.received_dropped += 1;
            }
        }
        // Sent into a tunnel: anything transmitted with a tunnel but what left one.
        if let (Some(t), Verdict::Tx { len, reason, .. }) = (outcome.tunnel, outcome.verdict)
            && into_its_tunnel(reason)
            && let Some(t) = self.tunnels.get_mut(usize::from(t))
        {
            t.sent.add(len);
        }
        match outcome.verdict {
            Verdict::Tx { len, reason, .. } => {
                self.tx_frames += 1;
                self.tx_bytes += len as u64;
                self.tx[reason.index()] += 1;
                self.tx_bytes_by[reason.index()] += len as u64;
            }
            Verdict::Pass(r) => {
                self.pass[r.index()] += 1;
                self.pass_bytes[r.index()] += rx_len as u64;
            }
            Verdict::Drop(r) => {
                self.drop[r.index()] += 1;
                self.drop_bytes[r.index()] += rx_len as u64;
            }
            Verdict::Consumed(r) => {
                self.consumed[r.index()] += 1;
                self.consumed_bytes[r.index()] += rx_len as u64;
            }
        }
        let rules = [outcome.rule, outcome.monitor, outcome.egress_rule, outcome.egress_monitor];
        for rule in rules.into_iter().flatten() {
            if let Some(hits) = self.rule_hits.get_mut(rule as usize) {
                *hits += 1;
            }
        }
        for rule in outcome.dos_rules() {
            if let Some(hits) = self.dos_hits.get_mut(rule as usize) {
                *hits += 1;
            }
        }
        let w = outcome.would_limit;
        if w != WouldLimit::NONE {
            let count = |counts: &mut Vec<u64>, refused: bool, rule: Option<u32>| {
                if let (true, Some(n)) = (refused, rule.and_then(|r| counts.get_mut(r as usize))) {
                    *n += 1;
                }
            };
            count(&mut self.rule_would_limit, w.has(WouldLimit::FIREWALL), outcome.monitor);
            count(&mut self.rule_would_limit, w.has(WouldLimit::EGRESS), outcome.egress_monitor);
            count(&mut self.dos_would_limit, w.has(WouldLimit::DOS), outcome.dos_monitor);
            count(&mut self.dos_would_limit, w.has(WouldLimit::CUSTOMER_DOS), outcome.customer_dos_monitor);
        }
        if let (Some(rule), Some(event)) = (outcome.tcp_rule, outcome.tcp)
            && let Some(hits) = self.tcp_hits.get_mut(rule as usize)
        {
            hits[event.index()] += 1;
        }
    }

    /// Counts the frames of `spill` from the `from`th on as sent: by reason, and into their
    /// tunnel.
    #[inline]
    pub fn count_spilled(&mut self, spill: &super::Spill, from: usize) {
        for (reason, len, tunnel) in spill.counted_from(from) {
            self.tx_frames += 1;
            self.tx_bytes += len as u64;
            self.tx[reason.index()] += 1;
            self.tx_bytes_by[reason.index()] += len as u64;
            if let Some(t) = tunnel.and_then(|t| self.tunnels.get_mut(usize::from(t))) {
                t.sent.add(len);
            }
        }
    }

    /// Takes the frames of `spill` its backend could not send off the counts
    /// [`count_spilled`](WorkerStats::count_spilled) made (the backend counts why:
    /// `tx_ring_full`, `spill_no_frame`).
    pub fn uncount_unsent(&mut self, spill: &super::Spill) {
        for (reason, len, tunnel) in spill.unsent() {
            self.uncount_tx(reason, len, tunnel);
        }
    }

    /// Takes one frame of `len` bytes sent as `reason` (into `tunnel`) off the `tx` counts.
    fn uncount_tx(&mut self, reason: TxReason, len: usize, tunnel: Option<crate::snapshot::TunnelId>) {
        let bytes = len as u64;
        self.tx_frames = self.tx_frames.saturating_sub(1);
        self.tx_bytes = self.tx_bytes.saturating_sub(bytes);
        self.tx[reason.index()] = self.tx[reason.index()].saturating_sub(1);
        self.tx_bytes_by[reason.index()] = self.tx_bytes_by[reason.index()].saturating_sub(bytes);
        if let Some(t) = tunnel.and_then(|t| self.tunnels.get_mut(usize::from(t))) {
            t.sent.sub(len);
        }
    }

    /// Takes the frames of the last batch (`outcomes`) its backend did not send after all
    /// (`unsent`, indices into it, as the backend reports them) off the
    /// `tx` counts [`count`](WorkerStats::count) made, as
    /// [`uncount_unsent`](WorkerStats::uncount_unsent) does for the spill. What the
    /// pipeline decided (the customer's verdicts, rule hits) stays counted.
    pub fn uncount_unsent_frames(&mut self, outcomes: &[super::Outcome], unsent: &[u16]) {
        for outcome in unsent.iter().filter_map(|&i| outcomes.get(usize::from(i))) {
            let Verdict::Tx { len, reason, .. } = outcome.verdict else { continue };
            // Into the tunnel as `count` counted it: not what left one.
            self.uncount_tx(reason, len, outcome.tunnel.filter(|_| into_its_tunnel(reason)));
        }
    }

    /// Adds another worker's counters into these.
    pub fn add(&mut self, other: &WorkerStats) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
        self.gre_reassembled += other.gre_reassembled;
        self.tcp_evicted += other.tcp_evicted;
        self.gre_reassembly_discarded += other.gre_reassembly_discarded;
        self.path_mtu_errors_disproved += other.path_mtu_errors_disproved;
        self.health_probes_excused += other.health_probes_excused;
        for (a, b) in self.pass.iter_mut().zip(&other.pass) {
            *a += b;
        }
        for (a, b) in self.drop.iter_mut().zip(&other.drop) {
            *a += b;
        }
        for (a, b) in self.tx.iter_mut().zip(&other.tx) {
            *a += b;
        }
        for (a, b) in self.consumed.iter_mut().zip(&other.consumed) {
            *a += b;
        }
        let bytes = [
            (&mut self.tx_bytes_by[..], &other.tx_bytes_by[..]),
            (&mut self.pass_bytes[..], &other.pass_bytes[..]),
            (&mut self.drop_bytes[..], &other.drop_bytes[..]),
            (&mut self.consumed_bytes[..], &other.consumed_bytes[..]),
        ];
        for (mine, theirs) in bytes {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        if self.customers.len() < other.customers.len() {
            self.customers.resize(other.customers.len(), CustomerStats::default());
        }
        for (mine, theirs) in self.customers.iter_mut().zip(&other.customers) {
            merge_customer(mine, theirs);
        }
        if self.tunnels.len() < other.tunnels.len() {
            self.tunnels.resize(other.tunnels.len(), TunnelStats::default());
        }
        for (a, b) in self.tunnels.iter_mut().zip(&other.tunnels) {
            a.merge(b);
        }
        if self.tcp_hits.len() < other.tcp_hits.len() {
            self.tcp_hits.resize(other.tcp_hits.len(), [0; FlowEvent::ALL.len()]);
        }
        for (mine, theirs) in self.tcp_hits.iter_mut().zip(&other.tcp_hits) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for (mine, theirs) in [
            (&mut self.rule_hits, &other.rule_hits),
            (&mut self.dos_hits, &other.dos_hits),
            (&mut self.rule_would_limit, &other.rule_would_limit),
            (&mut self.dos_would_limit, &other.dos_would_limit),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }

    /// Frames passed, all reasons.
    pub fn passed(&self) -> u64 {
        self.pass.iter().sum()
    }

    /// Frames dropped, all reasons.
    pub fn dropped(&self) -> u64 {
        self.drop.iter().sum()
    }

    /// Count for one drop reason.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.drop[reason.index()]
    }

    /// Count for one kind of transmitted frame.
    pub fn sent_as(&self, reason: TxReason) -> u64 {
        self.tx[reason.index()]
    }

    /// Count for one pass reason.
    pub fn passed_for(&self, reason: PassReason) -> u64 {
        self.pass[reason.index()]
    }

    /// Frames counted under `reason`.
    pub fn frames_for(&self, reason: Reason) -> u64 {
        match reason {
            Reason::Tx(r) => self.tx[r.index()],
            Reason::Pass(r) => self.pass[r.index()],
            Reason::Consumed(r) => self.consumed[r.index()],
            Reason::Drop(r) => self.drop[r.index()],
        }
    }

    /// Bytes counted under `reason`: as sent for `tx`, as received otherwise.
    pub fn bytes_for(&self, reason: Reason) -> u64 {
        match reason {
            Reason::Tx(r) => self.tx_bytes_by[r.index()],
            Reason::Pass(r) => self.pass_bytes[r.index()],
            Reason::Consumed(r) => self.consumed_bytes[r.index()],
            Reason::Drop(r) => self.drop_bytes[r.index()],
        }
    }
}

/// A verdict's named reason, whatever the verdict: what one report line and one metric
/// series count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Transmitted as this.
    Tx(TxReason),
    /// Passed to the host for this.
    Pass(PassReason),
    /// Consumed here for this.
    Consumed(ConsumeReason),
    /// Dropped for this.
    Drop(DropReason),
}

impl Reason {
    /// Every reason, in the order reports print them: sent, passed, consumed, dropped.
    pub fn all() -> impl Iterator<Item = Reason> {
        (TxReason::ALL.iter().map(|&r| Reason::Tx(r)))
            .chain(PassReason::ALL.iter().map(|&r| Reason::Pass(r)))
            .chain(ConsumeReason::ALL.iter().map(|&r| Reason::Consumed(r)))
            .chain(DropReason::ALL.iter().map(|&r| Reason::Drop(r)))
    }

    /// Its verdict's kind, as [`Verdict::kind`] names it (`tx`, `pass`, `drop`, `consumed`).
    pub fn verdict(self) -> &'static str {
        match self {
            Reason::Tx(_) => Verdict::KINDS[0],
            Reason::Pass(_) => Verdict::KINDS[1],
            Reason::Drop(_) => Verdict::KINDS[2],
            Reason::Consumed(_) => Verdict::KINDS[3],
        }
    }

    /// The reason's own name (`encapsulated`, `firewall`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Tx(r) => r.name(),
            Reason::Pass(r) => r.name(),
            Reason::Consumed(r) => r.name(),
            Reason::Drop(r) => r.name(),
        }
    }
}
/// Whether a frame sent as `reason` with a tunnel went into it: not one that came out of
/// it for the Internet, nor a probe reply that came out of it and was relayed over the
/// backbone.
fn into_its_tunnel(reason: TxReason) -> bool {
    !matches!(reason, TxReason::Decapsulated | TxReason::ProbeReplyRelayed)
}
