//! The per-packet core: stages as plain functions over a read-only [`Snapshot`] and one
//! frame, run over a batch.
//!
//! ```text
//! parse ─► check ─► sanity ─► DoS rules ─► steer ─► customer DoS ─► firewall ─► route ─► forward
//!   │        │         │          │           │          │              │          │         │
//!   └ Bad ───┴─────────┴──────────┴── Drop(reason) ──────┴──────────────┴──────────┴─────────┘
//!                                              NotIp / no customer: Pass
//! ```
//!
//! Nothing here allocates, locks, reads a clock or does I/O; every way out is a
//! [`Verdict`], and every drop has a [`DropReason`].

pub mod dos;
pub mod parse;
pub mod verdict;

mod ingress;

pub use dos::WorkerState;
pub use ingress::{Outcome, process_frame};
pub use parse::{IpFrame, Parsed, parse_frame};
pub use verdict::{DropReason, PassReason, Verdict};

use gre::EthernetAddrs;

use crate::io::Frame;
use crate::snapshot::Snapshot;

/// Runs the pipeline over a batch: sets each frame's verdict and counts it. Encapsulated
/// frames are sent with the configuration's Ethernet addresses.
pub fn process_batch(snapshot: &Snapshot, frames: &mut [Frame<'_>], state: &mut WorkerState) {
    process_batch_via(snapshot, Some(snapshot.eth), frames, state);
}

/// [`process_batch`] with the Ethernet addresses of the moment (a next hop learned from the
/// neighbour table); `None` while the next hop is unresolved, which drops what would be
/// encapsulated as `next_hop_unresolved`.
pub fn process_batch_via(
    snapshot: &Snapshot,
    eth: Option<EthernetAddrs>,
    frames: &mut [Frame<'_>],
    state: &mut WorkerState,
) {
    for frame in frames.iter_mut() {
        state.stats.rx_frames += 1;
        state.stats.rx_bytes += frame.len as u64;
        let outcome = process_frame(snapshot, eth.as_ref(), &mut state.limiter, frame);
        state.stats.count(&outcome);
        frame.verdict = outcome.verdict;
    }
}
