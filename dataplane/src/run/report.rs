//! What `transitd run` prints: a progress line every `--stats-interval`, and the final
//! report per queue (verdicts by reason, the backend's and the XDP program's counters, where
//! the UMEM frames are).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::netdev::NetdevCounters;
use crate::pipeline::{DropReason, WorkerStats};
use crate::punt::PuntDevice;
use crate::snapshot::Snapshot;
use crate::worker::WorkerReport;

pub(super) fn progress_line(
    up: Duration,
    queues: &[u32],
    before: &[WorkerStats],
    now: &[WorkerStats],
    dt: f64,
    xdp: &transitd_bpf::XdpStats,
) -> String {
    use std::fmt::Write as _;
    let mut line = format!("[{:>6.1}s]", up.as_secs_f64());
    for ((q, b), n) in queues.iter().zip(before).zip(now) {
        let rx = n.rx_frames.saturating_sub(b.rx_frames) as f64 / dt;
        let tx = n.tx_frames.saturating_sub(b.tx_frames) as f64 / dt;
        let _ = write!(line, " q{q}: rx {rx:.0} pps tx {tx:.0} pps");
        let mut drops = Vec::new();
        for r in DropReason::ALL {
            let d = n.dropped_for(*r).saturating_sub(b.dropped_for(*r));
            if d > 0 {
                drops.push(format!("{} {d}", r.name()));
            }
        }
        if !drops.is_empty() {
            // Counts, not rates: a handful of drops is news, and 0.4/s would hide it.
            let _ = write!(line, " (dropped in the last {dt:.0} s: {})", drops.join(", "));
        }
    }
    let _ = write!(line, " | xdp since start: redirected {} passed {}", xdp.redirected, xdp.passed);
    line
}

pub(super) fn final_report(
    reports: &[WorkerReport],
    xdp: &transitd_bpf::XdpStats,
    snap: &Snapshot,
    punt: &PuntDevice,
    (ifname, interface): (&str, Option<NetdevCounters>),
) -> String {
    use std::fmt::Write as _;
    let mut total = WorkerStats::default();
    let mut out = String::new();
    for r in reports {
        total.add(&r.stats);
        let _ = writeln!(
            out,
            "queue {}: rx {} tx {} passed {} dropped {}; umem frames {} (free {}, fill {}, tx {}, held {}){}",
            r.queue,
            r.stats.rx_frames,
            r.stats.tx_frames,
            r.stats.passed(),
            r.stats.dropped(),
            r.io.frames.total,
            r.io.frames.free,
            r.io.frames.in_fill,
            r.io.frames.in_tx,
            // A jumbo packet's frames whose last part never came: kept out of the rings.
            r.io.frames.held,
            if r.io.frames.is_conserved() { "" } else { " NOT CONSERVED" }
        );
        // What the socket did with what the pipeline sent, and where the kernel lost frames:
        // transmitted means completed by the kernel, not just put on the ring.
        let (io, k) = (&r.io, &r.io.socket);
        let _ = writeln!(
            out,
            "  socket ({}): polls {} (idle {}) sent {} completed {} tx_ring_full {} backpressure {} multi_buffer {} bad_descriptors {} bad_tx {} spill_no_frame {} tx_no_frame {} kick_busy {} kick_errors {} tx_stalls {}; \
             kernel: rx_ring_full {} fill_ring_empty {} rx_dropped {} rx_invalid {} tx_invalid {}",
            if io.zero_copy { "zero-copy" } else { "copy" },
            io.polls,
            io.idle_polls,
            io.tx,
            io.completed,
            io.tx_ring_full,
            io.backpressure,
            io.multi_buffer,
            io.bad_descriptors,
            io.bad_tx,
            io.spill_no_frame,
            io.tx_no_frame,
            io.kick_busy,
            io.kick_errors,
            io.tx_stalls,
            k.rx_ring_full,
            k.rx_fill_ring_empty,
            k.rx_dropped,
            k.rx_invalid_descs,
            k.tx_invalid_descs,
        );
    }
    let _ = writeln!(out, "all queues:");
    crate::report::verdicts(&mut out, &total);
    let _ = writeln!(
        out,
        "xdp: redirected {} passed {} no_socket {} egress_local {} backbone_local {} gre_not_ours {}",
        xdp.redirected, xdp.passed, xdp.no_socket, xdp.egress_local, xdp.backbone_local, xdp.gre_not_ours
    );
    // The driver's view of the run, to set beside the sockets' (what copy mode handed the
    // kernel and the kernel then dropped shows here as tx_dropped).
    match interface {
        Some(c) => _ = writeln!(out, "interface {ifname} during the run: {}", c.line()),
        None => _ = writeln!(out, "interface {ifname}: no counters (sysfs statistics unreadable)"),
    }
    let p = &punt.stats;
    let _ = writeln!(
        out,
        "punt {}: {} to the host, {} over the rate, {} failed",
        punt.name(),
        p.punted.load(Ordering::Relaxed),
        p.over_rate.load(Ordering::Relaxed),
        p.failed.load(Ordering::Relaxed)
    );
    for (i, t) in snap.tunnels.iter().enumerate().filter(|(_, t)| t.interface.is_some()) {
        // Up and not judged: no probe answered nor down_after missed (its probes could not
        // be sent, or the run was short): taking traffic, not known to work.
        let state = match (snap.health.is_up(i as u16), snap.health.judged(i as u16)) {
            (true, true) => "up",
            (true, false) => "not judged",
            (false, _) => "down",
        };
        let _ = writeln!(out, "tunnel {} {state} (probes answered up to #{})", t.name, snap.health.replied(i as u16));
    }
    let now = crate::io::wall_clock_ns();
    for t in &snap.tunnels {
        let mtu = crate::pipeline::tunnel_mtu(snap, t, false, now, None);
        if mtu < t.mtu {
            let _ = writeln!(
                out,
                "tunnel {} path MTU: {mtu} bytes inside (mtu {}), as the underlay reported",
                t.name, t.mtu
            );
        }
    }
    out
}
