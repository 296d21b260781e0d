//! `transitd replay`: a capture through the whole pipeline, one worker, pcap backend.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dropcap::{CaptureOptions, DropCapture, Tap};
use crate::io::pcap::PcapIo;
use crate::ipfix::exporter::Exporter;
use crate::ipfix::{Sampler, Samples};
use crate::pipeline::WorkerStats;
use crate::snapshot::Snapshot;
use crate::worker::Worker;

/// What a replay did.
#[derive(Debug)]
pub struct Summary {
    /// Counters.
    pub stats: WorkerStats,
    /// Records skipped for their link type.
    pub skipped: BTreeMap<u32, u64>,
    /// Frames skipped as the capturing host sent them (a Linux cooked capture's outgoing
    /// packets, a pcapng packet flagged outbound): no arrivals.
    pub outgoing: u64,
    /// Frames written to the output with their time clamped to pcap's last second.
    pub clamped: u64,
    /// The output's write failed (a full disk): the frames it holds whole, the first of
    /// those counted transmitted, fewer than all of them. (A file is cut back to them.)
    pub written: Option<u64>,
    /// A read or write error that ended the replay early, if any: `transitd replay` says it
    /// on standard error, after the summary.
    pub error: Option<String>,
    /// The output was standard output and its reader went away (`--out - | tshark -c 5`):
    /// the replay ended early, as its reader wished, not for an error.
    pub reader_gone: bool,
    /// What the drop capture wrote, if one ran.
    pub capture: Option<String>,
    /// What the IPFIX exporter sent, with `[ipfix]`.
    pub ipfix: Option<String>,
}

/// Replays `input` through `snapshot`, writing transmitted frames to `output`.
pub fn replay(snapshot: Arc<Snapshot>, input: &Path, output: Option<&Path>) -> anyhow::Result<Summary> {
    replay_tapped(snapshot, input, output, None)
}

/// [`replay`], writing dropped frames (and monitor-mode hits) to a pcapng file as
/// `transitd run --capture-drops` does, the rate bound applying to capture time.
pub fn replay_capturing(
    snapshot: Arc<Snapshot>,
    input: &Path,
    output: Option<&Path>,
    capture: Option<CaptureOptions>,
) -> anyhow::Result<Summary> {
    let Some(options) = capture else { return replay(snapshot, input, output) };
    let stop = Arc::new(AtomicBool::new(false));
    let (capture, writer) = DropCapture::start(options, stop.clone())?;
    let writer = std::thread::Builder::new().name("transitd-capture".into()).spawn(move || writer.run())?;
    let tap = capture.tap(1).waiting();
    let summary = replay_tapped(snapshot, input, output, Some(tap));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().map_err(|_| anyhow::anyhow!("the drop capture writer panicked"))?;
    let mut summary = summary?;
    if let Err(e) = written {
        // The replay itself went on: report it, and the capture's failure as its error.
        summary.error.get_or_insert(format!("--capture-drops: {e:#}"));
    }
    summary.capture = Some(crate::dropcap::summary(&capture));
    Ok(summary)
}

fn replay_tapped(
    snapshot: Arc<Snapshot>,
    input: &Path,
    output: Option<&Path>,
    tap: Option<Tap>,
) -> anyhow::Result<Summary> {
    let eth = snapshot.eth;
    let ipfix = snapshot.ipfix.clone();
    let mut worker = Worker::new(PcapIo::open(input, output)?, snapshot.clone());
    if let Some(tap) = tap {
        worker = worker.capture(tap);
    }
    // Every sample is exported (the sampler waits for room): the records describe the whole
    // capture at the configured rate.
    let stop = Arc::new(AtomicBool::new(false));
    let exporter = match &ipfix {
        Some(_) => {
            let samples = Samples::new(4096);
            worker = worker.sample_flows(Sampler::new(samples.clone()).waiting());
            let exporter = Exporter::fixed(samples, snapshot);
            let stats = exporter.stats.clone();
            let stop = stop.clone();
            let thread =
                std::thread::Builder::new().name("transitd-ipfix".into()).spawn(move || exporter.run(&stop))?;
            Some((stats, thread))
        }
        None => None,
    };
    let ran = worker.run_to_end(Some(eth));
    let clamped = worker.io().clamped();
    // Frames sit in the output's buffer until here: a write that fails now fails the replay.
    let finished = worker.io_mut().finish();
    let failed = ran.err().or(finished.err());
    let written = worker.io().written_before_failing();
    let reader_gone = failed.as_ref().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        && output.is_some_and(crate::files::is_standard_stream);
    let error = failed.filter(|_| !reader_gone).map(|e| e.to_string());
    let (skipped, outgoing) = (worker.io().skipped.clone(), worker.io().outgoing);
    let (_, state) = worker.into_parts();
    stop.store(true, Ordering::Relaxed);
    let ipfix = match (exporter, ipfix) {
        (Some((stats, thread)), Some(config)) => {
            thread.join().map_err(|_| anyhow::anyhow!("the IPFIX exporter panicked"))?;
            let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let errors = match n(&stats.send_errors) {
                0 => String::new(),
                e => format!(", {e} refused by the socket"),
            };
            let counted = |c: &std::sync::atomic::AtomicU64, what: &str| crate::report::counted(n(c) as usize, what);
            Some(format!(
                "ipfix: {} in {} to {} (1 in {} sampled){errors}",
                counted(&stats.records, "flow record"),
                counted(&stats.messages, "message"),
                config.collector,
                config.sample
            ))
        }
        _ => None,
    };
    Ok(Summary { stats: state.stats, skipped, outgoing, clamped, written, error, reader_gone, capture: None, ipfix })
}

/// A rule's line in the report: `label`, its hits (`hits[at]`), then nothing for an enforced
/// rule; `(monitor)`, and for a monitor-mode rate limit how many of its hits its bucket would
/// have refused (`would_limit[at]`, its preview count).
fn rule_line(label: &str, rule: &classifier::Rule, hits: &[u64], would_limit: &[u64], at: usize) -> String {
    let count = |v: &[u64]| v.get(at).copied().unwrap_or(0);
    let note = match (rule.mode, rule.previewed_bucket()) {
        (classifier::Mode::Enforce, _) => String::new(),
        (_, Some(_)) => format!(" (monitor: {} would be rate-limited)", count(would_limit)),
        (_, None) => " (monitor)".to_string(),
    };
    format!("  {label:<30} {:>10}{note}", count(hits))
}

impl Summary {
    /// A report for people: totals, then each non-zero reason and rule.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let s = &self.stats;
        let mut out = String::new();
        crate::report::verdicts(&mut out, s);
        // Said beside what was transmitted: the report counts what the pipeline sent, the
        // output's file holds fewer.
        if let Some(written) = self.written {
            let sent = s.tx_frames;
            let _ = writeln!(out, "written      {written:>10}  (to --out, of the {sent} transmitted: a write failed)");
        }
        for (link, n) in &self.skipped {
            let _ = writeln!(out, "skipped      {n:>10}  (link type {link} is not read)");
        }
        if self.outgoing > 0 {
            let _ = writeln!(out, "skipped      {:>10}  (sent by the capturing host, not received)", self.outgoing);
        }
        if self.clamped > 0 {
            let _ = writeln!(
                out,
                "clamped      {:>10}  (written at 2106-02-07 06:28:15 UTC, the last second pcap holds)",
                self.clamped
            );
        }
        // Every rule, in the order the pipeline meets them: global DoS, each customer's DoS,
        // TCP protection, each customer's firewall and egress rules.
        let (dos, dos_would) = (&s.dos_hits[..], &s.dos_would_limit[..]);
        let (rules, rules_would) = (&s.rule_hits[..], &s.rule_would_limit[..]);
        let mut lines = Vec::new();
        for (i, rule) in snapshot.dos.rules.rules().iter().enumerate() {
            lines.push(rule_line(&format!("[dos]/{}", rule.name), rule, dos, dos_would, i));
        }
        for c in &snapshot.customers {
            for (i, rule) in c.dos.rules().iter().enumerate() {
                let label = format!("{}/dos/{}", c.name, rule.name);
                lines.push(rule_line(&label, rule, dos, dos_would, c.dos_base as usize + i));
            }
        }
        for (i, rule) in snapshot.tcp.rules.iter().enumerate() {
            let Some(hits) = s.tcp_hits.get(i) else { continue };
            let Some(label) = crate::dropcap::tcp_rule_label(snapshot, i as u32) else { continue };
            let mode = if rule.mitigate { "mitigate" } else { "monitor" };
            let events: Vec<String> = crate::pipeline::flows::FlowEvent::ALL
                .iter()
                .filter(|e| hits[e.index()] > 0)
                .map(|e| format!("{} {}", e.name(), hits[e.index()]))
                .collect();
            let total: u64 = hits.iter().sum();
            lines.push(format!("  {label:<30} {total:>10} (tcp, {mode}: {})", events.join(", ")));
        }
        for c in &snapshot.customers {
            for (i, rule) in c.firewall.rules().iter().enumerate() {
                let label = format!("{}/{}", c.name, rule.name);
                lines.push(rule_line(&label, rule, rules, rules_would, c.rule_base as usize + i));
            }
            for (i, rule) in c.egress.rules().iter().enumerate() {
                let label = format!("{}/egress/{}", c.name, rule.name);
                lines.push(rule_line(&label, rule, rules, rules_would, c.egress_base as usize + i));
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "rule hits");
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(c) = &self.capture {
            let _ = writeln!(out, "{c}");
        }
        if let Some(x) = &self.ipfix {
            let _ = writeln!(out, "{x}");
        }
        out
    }
}
