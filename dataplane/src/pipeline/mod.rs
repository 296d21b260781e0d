//! The per-packet core: stages as plain functions over a read-only [`Snapshot`] and one
//! frame, run over a batch.
//!
//! ```text
//! parse ─► check ─► steer ─► firewall ─► route ─► forward (TTL, MTU, GRE encap)
//!   │        │        │          │          │         │
//!   └ Bad ───┴────────┴─ Drop(reason) ──────┴─────────┘       NotIp / no customer: Pass
//! ```
//!
//! Nothing here allocates, locks, reads a clock or does I/O; every way out is a
//! [`Verdict`], and every drop has a [`DropReason`].

pub mod parse;
pub mod verdict;

mod ingress;

pub use ingress::{Outcome, process_frame};
pub use parse::{IpFrame, Parsed, parse_frame};
pub use verdict::{DropReason, PassReason, Verdict};

use crate::io::Frame;
use crate::snapshot::Snapshot;
use crate::stats::WorkerStats;

/// Runs the pipeline over a batch: sets each frame's verdict and counts it.
pub fn process_batch(snapshot: &Snapshot, frames: &mut [Frame<'_>], stats: &mut WorkerStats) {
    for frame in frames.iter_mut() {
        stats.rx_frames += 1;
        stats.rx_bytes += frame.len as u64;
        let outcome = process_frame(snapshot, frame);
        stats.count(&outcome);
        frame.verdict = outcome.verdict;
    }
}
