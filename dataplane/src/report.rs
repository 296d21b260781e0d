//! The verdict report `replay`, `run` and `stats` print alike: totals, then every reason
//! that counted something, one per line (`  tx   encapsulated   12`), in the order of the
//! reason lists.

use std::fmt::Write as _;

use crate::pipeline::{Reason, WorkerStats};

/// Appends the totals and the count of each reason of `s` to `out`.
pub fn verdicts(out: &mut String, s: &WorkerStats) {
    let consumed: u64 = s.consumed.iter().sum();
    // Every frame received has one verdict; what is transmitted beyond them was made here
    // (a datagram's later fragments, health probes), so the verdicts add up to more.
    let made = (s.tx_frames + s.passed() + s.dropped() + consumed).saturating_sub(s.rx_frames);
    let made = match made {
        0 => String::new(),
        n => format!("; {n} of them made here: later fragments, probes"),
    };
    let _ = writeln!(out, "frames       {:>10}  ({} bytes)", s.rx_frames, s.rx_bytes);
    let _ = writeln!(out, "transmitted  {:>10}  ({} bytes{made})", s.tx_frames, s.tx_bytes);
    let _ = writeln!(out, "passed       {:>10}", s.passed());
    let _ = writeln!(out, "dropped      {:>10}", s.dropped());
    if consumed > 0 {
        let _ = writeln!(out, "consumed     {consumed:>10}");
    }
    reassembled(out, s.gre_reassembled as f64, s.gre_reassembly_discarded as f64);
    reasons(out, |r| s.frames_for(r) as f64);
}

/// Appends the GRE datagrams reassembled and given up, if any were.
pub fn reassembled(out: &mut String, whole: f64, lost: f64) {
    if whole + lost > 0.0 {
        let _ = writeln!(out, "reassembled  {whole:>10.0}  (GRE datagrams from fragments; {lost:.0} given up)");
    }
}

/// Appends a line for each reason `count` finds non-zero, in [`Reason::all`] order.
pub fn reasons(out: &mut String, mut count: impl FnMut(Reason) -> f64) {
    for r in Reason::all() {
        line(out, r.verdict(), r.name(), count(r));
    }
}

/// Appends `  drop firewall      12` if `n` is not zero (rates round to whole units), its
/// count in a column past the longest label any reason makes (`drop
/// underlay_too_big_unusable`), so that the counts line up whatever reasons a report holds.
pub fn line(out: &mut String, verdict: &str, reason: &str, n: f64) {
    static WIDTH: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        Reason::all().map(|r| r.verdict().len().max(4) + 1 + r.name().len()).max().unwrap_or(0)
    });
    if n > 0.0 {
        let label = format!("{verdict:<4} {reason}");
        let _ = writeln!(out, "  {label:<width$} {n:>10.0}", width = *WIDTH);
    }
}

/// `n` and `what`, plural unless one (`1 customer`, `2 tunnels`).
pub fn counted(n: usize, what: &str) -> String {
    counted_as(n, what, &format!("{what}s"))
}

/// `n` and `one`, or `many` unless one, for a plural that is not an `s` added
/// (`1 egress address`, `3 egress addresses`).
pub fn counted_as(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// `0-3,6` for a sorted list of numbers (CPUs, queues).
pub fn ranges(ids: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// `queue 1` or `queues 0-3,6`, as an operator reads a list of NIC queues.
pub fn queue_list(queues: &[u32]) -> String {
    let ids: Vec<usize> = queues.iter().map(|&q| q as usize).collect();
    match ids.len() {
        0 => "no queue".to_string(),
        1 => format!("queue {}", ids[0]),
        _ => format!("queues {}", ranges(&ids)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason's count ends in one column, the longest labels' too (`drop
    /// underlay_too_big_unusable` pushed its count past the others').
    #[test]
    fn every_reasons_count_lines_up() {
        let mut out = String::new();
        reasons(&mut out, |_| 1234567.0);
        let widths: std::collections::BTreeSet<usize> = out.lines().map(|l| l.chars().count()).collect();
        assert_eq!(widths.len(), 1, "{out}");
        assert!(out.lines().count() > 50, "{out}");
    }
}
