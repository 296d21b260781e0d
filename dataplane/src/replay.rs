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
    /// Frames written to the output with their time clamped to pcap's last second.
    pub clamped: u64,
    /// A read error that ended the replay early, if any.
    pub error: Option<String>,
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
    let mut error = worker.run_to_end(Some(eth)).err().map(|e| e.to_string());
    let clamped = worker.io().clamped();
    // Frames sit in the output's buffer until here: a write that fails now fails the replay.
    if let Err(e) = worker.io_mut().finish()
        && error.is_none()
    {
        error = Some(e.to_string());
    }
    let skipped = worker.io().skipped.clone();
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
            Some(format!(
                "ipfix: {} flow records in {} messages to {} (1 in {} sampled){errors}",
                n(&stats.records),
                n(&stats.messages),
                config.collector,
                config.sample
            ))
        }
        _ => None,
    };
    Ok(Summary { stats: state.stats, skipped, clamped, error, capture: None, ipfix })
}

/// What follows a rule's hits in the report: nothing for an enforced rule; `(monitor)`, and
/// for a monitor-mode rate limit how many of its hits its bucket would have refused
/// (`would_limit`, its preview count).
fn monitor_note(rule: &classifier::Rule, would_limit: Option<&u64>) -> String {
    match (rule.mode, rule.previewed_bucket()) {
        (classifier::Mode::Enforce, _) => String::new(),
        (_, Some(_)) => format!(" (monitor: {} would be rate-limited)", would_limit.copied().unwrap_or(0)),
        (_, None) => " (monitor)".to_string(),
    }
}

impl Summary {
    /// A report for people: totals, then each non-zero reason and rule.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let s = &self.stats;
        let mut out = String::new();
        crate::report::verdicts(&mut out, s);
        for (link, n) in &self.skipped {
            let _ = writeln!(out, "skipped      {n:>10}  (link type {link} is not read)");
        }
        if self.clamped > 0 {
            let _ = writeln!(
                out,
                "clamped      {:>10}  (written at 2106-02-07 06:28:15 UTC, the last second pcap holds)",
                self.clamped
            );
        }
        let mut header = false;
        for (i, rule) in snapshot.dos.rules.rules().iter().enumerate() {
            let hits = s.dos_hits.get(i).copied().unwrap_or(0);
            if !header {
                let _ = writeln!(out, "rule hits");
                header = true;
            }
            let note = monitor_note(rule, s.dos_would_limit.get(i));
            let _ = writeln!(out, "  {:<30} {:>10}{note}", format!("[dos]/{}", rule.name), hits);
        }
        for c in &snapshot.customers {
            for (i, rule) in c.dos.rules().iter().enumerate() {
                let hits = s.dos_hits.get(c.dos_base as usize + i).copied().unwrap_or(0);
                if !header {
                    let _ = writeln!(out, "rule hits");
                    header = true;
                }
                let note = monitor_note(rule, s.dos_would_limit.get(c.dos_base as usize + i));
                let _ = writeln!(out, "  {:<30} {:>10}{note}", format!("{}/dos/{}", c.name, rule.name), hits);
            }
        }
        for (i, rule) in snapshot.tcp.rules.iter().enumerate() {
            let Some(hits) = s.tcp_hits.get(i) else { continue };
            let owner = rule
                .customer
                .and_then(|c| snapshot.customers.get(usize::from(c)))
                .map_or("[tcp_protection]", |c| c.name.as_str());
            let mode = if rule.mitigate { "mitigate" } else { "monitor" };
            let events: Vec<String> = crate::pipeline::flows::FlowEvent::ALL
                .iter()
                .filter(|e| hits[e.index()] > 0)
                .map(|e| format!("{} {}", e.name(), hits[e.index()]))
                .collect();
            if !header {
                let _ = writeln!(out, "rule hits");
                header = true;
            }
            let total: u64 = hits.iter().sum();
            let _ = writeln!(
                out,
                "  {:<30} {:>10} (tcp, {mode}: {})",
                format!("{owner}/{}", rule.name),
                total,
                events.join(", ")
            );
        }
        for c in &snapshot.customers {
            for (i, rule) in c.firewall.rules().iter().enumerate() {
                let hits = s.rule_hits.get(c.rule_base as usize + i).copied().unwrap_or(0);
                if !header {
                    let _ = writeln!(out, "rule hits");
                    header = true;
                }
                let note = monitor_note(rule, s.rule_would_limit.get(c.rule_base as usize + i));
                let _ = writeln!(out, "  {:<30} {:>10}{note}", format!("{}/{}", c.name, rule.name), hits);
            }
            for (i, rule) in c.egress.rules().iter().enumerate() {
                let hits = s.rule_hits.get(c.egress_base as usize + i).copied().unwrap_or(0);
                if !header {
                    let _ = writeln!(out, "rule hits");
                    header = true;
                }
                let note = monitor_note(rule, s.rule_would_limit.get(c.egress_base as usize + i));
                let _ = writeln!(out, "  {:<30} {:>10}{note}", format!("{}/egress/{}", c.name, rule.name), hits);
            }
        }
        if let Some(c) = &self.capture {
            let _ = writeln!(out, "{c}");
        }
        if let Some(x) = &self.ipfix {
            let _ = writeln!(out, "{x}");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "error: {e}");
        }
        out
    }
}
