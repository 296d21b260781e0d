//! Tunnel health as data: the up/down flag and last answered probe of each tunnel, which
//! the prober (in the shell, `crate::health`) writes and the pipeline's decapsulation and
//! route stages read and record; and the probes' timing. Single relaxed atomics per tunnel:
//! no lock, and no write on the forwarding path but a recognised probe reply.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::TunnelId;

/// The first bytes of every probe's payload.
pub const PROBE_MAGIC: [u8; 8] = *b"transitd";
/// Payload: magic, nonce (8), tunnel id (2), zero (2), sequence number (4).
pub const PROBE_PAYLOAD_LEN: usize = 24;

/// Health state shared by the workers for one snapshot's tunnels.
#[derive(Debug)]
pub struct HealthTable {
    tunnels: Box<[TunnelHealth]>,
    /// Random per process, so that nobody off the path can forge a reply.
    nonce: AtomicU64,
}

#[derive(Debug)]
struct TunnelHealth {
    up: AtomicBool,
    /// Highest probe sequence number answered.
    replied: AtomicU32,
}

impl HealthTable {
    /// Every tunnel up, nothing answered yet.
    pub fn new(tunnels: usize) -> HealthTable {
        let tunnels =
            (0..tunnels).map(|_| TunnelHealth { up: AtomicBool::new(true), replied: AtomicU32::new(0) }).collect();
        HealthTable { tunnels, nonce: AtomicU64::new(0) }
    }

    /// Whether tunnel `t` may carry new traffic.
    #[inline]
    pub fn is_up(&self, t: TunnelId) -> bool {
        self.tunnels.get(usize::from(t)).is_none_or(|h| h.up.load(Ordering::Relaxed))
    }

    /// Sets tunnel `t`'s state.
    pub fn set_up(&self, t: TunnelId, up: bool) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            h.up.store(up, Ordering::Relaxed);
        }
    }

    /// The nonce probes carry.
    pub fn nonce(&self) -> u64 {
        self.nonce.load(Ordering::Relaxed)
    }

    /// Sets the nonce (once, before the snapshot is used, or copied from the last one).
    pub fn set_nonce(&self, nonce: u64) {
        self.nonce.store(nonce, Ordering::Relaxed);
    }

    /// Highest sequence number answered on tunnel `t`.
    pub fn replied(&self, t: TunnelId) -> u32 {
        self.tunnels.get(usize::from(t)).map_or(0, |h| h.replied.load(Ordering::Relaxed))
    }

    /// Records a probe reply that arrived through tunnel `t`, if its payload is one of ours
    /// for that tunnel. Returns whether it was.
    pub fn record_reply(&self, t: TunnelId, payload: &[u8]) -> bool {
        let Some(p) = payload.get(..PROBE_PAYLOAD_LEN) else { return false };
        let word = |r: std::ops::Range<usize>| p[r].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        if p[..8] != PROBE_MAGIC || word(8..16) != self.nonce() || word(16..18) != u64::from(t) {
            return false;
        }
        let Some(h) = self.tunnels.get(usize::from(t)) else { return false };
        h.replied.fetch_max(word(20..24) as u32, Ordering::Relaxed);
        true
    }

    /// Carries state over from the table of the previous snapshot, matching tunnels by
    /// name, so that a reload neither revives a dead tunnel nor forgets probes in flight.
    pub fn inherit(&self, names: &[&str], old: &HealthTable, old_names: &[&str]) {
        self.set_nonce(old.nonce());
        let old_index: std::collections::HashMap<&str, usize> =
            old_names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        for (t, name) in names.iter().enumerate() {
            if let Some(&o) = old_index.get(name) {
                let (new, old) = (&self.tunnels[t], &old.tunnels[o]);
                new.up.store(old.up.load(Ordering::Relaxed), Ordering::Relaxed);
                new.replied.store(old.replied.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// The health-check timing and thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Between probes of a settled tunnel.
    pub interval_ns: u64,
    /// How long a reply may take; also the probe spacing of a tunnel in doubt.
    pub timeout_ns: u64,
    /// Misses in a row that take a tunnel down.
    pub down_after: u32,
    /// Answers in a row that bring it back.
    pub up_after: u32,
}
