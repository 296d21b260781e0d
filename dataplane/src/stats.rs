//! Per-worker counters: plain integers the owning worker bumps, summed by whoever reports.

use crate::pipeline::{ConsumeReason, DropReason, Outcome, PassReason, TxReason, Verdict};

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
    /// Packets decided by each firewall rule (global rule index), monitor hits included.
    pub rule_hits: Vec<u64>,
    /// Packets decided by each DoS rule (global, then each customer's), monitor hits included.
    pub dos_hits: Vec<u64>,
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
            rule_hits: Vec::new(),
            dos_hits: Vec::new(),
        }
    }
}

impl WorkerStats {
    /// Counters for a snapshot with `rules` firewall rules and `dos_rules` DoS rules in all.
    pub fn new(rules: usize, dos_rules: usize) -> WorkerStats {
        WorkerStats { rule_hits: vec![0; rules], dos_hits: vec![0; dos_rules], ..WorkerStats::default() }
    }

    /// Resizes the rule counters for a new snapshot (off the per-packet path). Rule indices
    /// change meaning with the configuration, so their counts restart.
    pub fn reset_rules(&mut self, rules: usize, dos_rules: usize) {
        self.rule_hits.clear();
        self.rule_hits.resize(rules, 0);
        self.dos_hits.clear();
        self.dos_hits.resize(dos_rules, 0);
    }

    /// Counts one frame's outcome.
    #[inline]
    pub fn count(&mut self, outcome: &Outcome) {
        match outcome.verdict {
            Verdict::Tx { len, reason, .. } => {
                self.tx_frames += 1;
                self.tx_bytes += len as u64;
                self.tx[reason.index()] += 1;
            }
            Verdict::Pass(r) => self.pass[r.index()] += 1,
            Verdict::Drop(r) => self.drop[r.index()] += 1,
            Verdict::Consumed(r) => self.consumed[r.index()] += 1,
        }
        let rules = [outcome.rule, outcome.monitor, outcome.egress_rule, outcome.egress_monitor];
        for rule in rules.into_iter().flatten() {
            if let Some(hits) = self.rule_hits.get_mut(rule as usize) {
                *hits += 1;
            }
        }
        for rule in [outcome.dos_rule, outcome.dos_monitor].into_iter().flatten() {
            if let Some(hits) = self.dos_hits.get_mut(rule as usize) {
                *hits += 1;
            }
        }
    }

    /// Counts `frames` frames of `bytes` bytes sent from the spill as `reason`.
    #[inline]
    pub fn count_spilled(&mut self, reason: TxReason, frames: usize, bytes: usize) {
        self.tx_frames += frames as u64;
        self.tx_bytes += bytes as u64;
        self.tx[reason.index()] += frames as u64;
    }

    /// Adds another worker's counters into these.
    pub fn add(&mut self, other: &WorkerStats) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
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
        for (mine, theirs) in [(&mut self.rule_hits, &other.rule_hits), (&mut self.dos_hits, &other.dos_hits)] {
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
}
