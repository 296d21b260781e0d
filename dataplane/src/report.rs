//! The verdict report `replay` and `run` print alike: totals, then every reason that counted
//! something, one per line (`  tx   encapsulated   12`), in the order of the reason lists.

use std::fmt::Write as _;

use crate::pipeline::{ConsumeReason, DropReason, PassReason, TxReason, WorkerStats};

/// Appends the totals and the count of each reason of `s` to `out`.
pub fn verdicts(out: &mut String, s: &WorkerStats) {
    let _ = writeln!(out, "frames       {:>10}  ({} bytes)", s.rx_frames, s.rx_bytes);
    let _ = writeln!(out, "transmitted  {:>10}  ({} bytes)", s.tx_frames, s.tx_bytes);
    let _ = writeln!(out, "passed       {:>10}", s.passed());
    let _ = writeln!(out, "dropped      {:>10}", s.dropped());
    let consumed: u64 = s.consumed.iter().sum();
    if consumed > 0 {
        let _ = writeln!(out, "consumed     {consumed:>10}");
    }
    for r in TxReason::ALL {
        line(out, "tx", r.name(), s.sent_as(*r));
    }
    for r in PassReason::ALL {
        line(out, "pass", r.name(), s.passed_for(*r));
    }
    for r in ConsumeReason::ALL {
        line(out, "consumed", r.name(), s.consumed[r.index()]);
    }
    for r in DropReason::ALL {
        line(out, "drop", r.name(), s.dropped_for(*r));
    }
}

fn line(out: &mut String, verdict: &str, reason: &str, n: u64) {
    if n > 0 {
        let label = format!("{verdict:<4} {reason}");
        let _ = writeln!(out, "  {label:<27} {n:>10}");
    }
}
