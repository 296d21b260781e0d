//! `transitd match`: a rule, or the whole configuration, tried on a capture; nothing is sent.
//!
//! With `-Y EXPR` it answers tshark's question, `tshark -r FILE -Y EXPR -T fields -e
//! frame.number`, with the compiled classifier: the expression is compiled into a one-rule
//! table, exactly as a firewall rule is. With `--config` it runs every frame through the
//! whole pipeline and reports, per frame, who decided what.

use std::collections::BTreeMap;
use std::path::Path;

use classifier::{Expr, Key, Membership, Mode, RuleTable};
use serde::Serialize;

use crate::io::MonotonicClock;
use crate::io::capture::{CaptureError, CaptureReader, Record, data_plane_wire_len};
use crate::pipeline::{Frame, HEADROOM, Spill};
use crate::pipeline::{Limits, SPILL_SLOTS, WouldLimit, parse_frame, process_frame};
use crate::snapshot::Snapshot;

/// Largest frame read (as in replay).
const MAX_RECORD: usize = crate::io::pcap::MAX_RECORD;

/// The Wireshark preferences (name, value) under which `-Y EXPR` answers tshark's question:
/// reassembly off, since transitd judges each frame alone. tshark takes each as `-o
/// NAME:VALUE`; the tests' oracle and `transitd-bench match` run tshark and sharkd with them.
pub const TSHARK_PREFERENCES: [(&str, &str); 3] =
    [("ip.defragment", "FALSE"), ("ipv6.defragment", "FALSE"), ("tcp.desegment_tcp_streams", "FALSE")];

/// Why `match` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// The expression does not parse or compile (rendered with a caret line).
    #[error("{0}")]
    Expression(String),
    /// The capture could not be read (on).
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// What [`match_filter`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FramesRead {
    /// Frames read, as tshark numbers them.
    pub frames: u64,
    /// Frames of a link type transitd does not read, by link type: numbered, never
    /// selected (only a test of `frame` itself could select them), so that a filter over a
    /// capture of such frames would select nothing without a word.
    pub unread: BTreeMap<u32, u64>,
}

/// Reads `path` and calls `selected` with the 1-based number of every frame `expr` selects,
/// reading at most `limit` frames; `membership` answers the lists `expr` names (the
/// registry it was parsed with).
pub fn match_filter(
    path: &Path,
    expr: &Expr,
    membership: &Membership,
    limit: Option<u64>,
    mut selected: impl FnMut(u64),
) -> Result<FramesRead, MatchError> {
    let table = RuleTable::build([expr]).map_err(|e| MatchError::Expression(e.error.to_string()))?;
    let mut reader = CaptureReader::open(path)?;
    let mut buf = vec![0u8; MAX_RECORD];
    let mut n = 0u64;
    let mut unread = BTreeMap::new();
    while limit.is_none_or(|l| n < l) {
        let (key, len) = match reader.next_into(&mut buf)? {
            None => break,
            Some(Record::Frame { len, wire_len, uncaptured_len, ethernet, .. }) => {
                // The parser measures what is on the wire from the frame it reads, whose
                // Ethernet header may be made up: the length of that frame, not the capture's.
                let on_the_wire = data_plane_wire_len(len, wire_len, uncaptured_len, ethernet);
                let mut key = parse_frame(&buf[..len], on_the_wire).0;
                if !ethernet {
                    // tshark shows no `eth` where the capture has none, its `frame` starts
                    // where the capture's bytes do (behind the made-up header), and its
                    // `frame.len` is the capture's (held below ABSENT, as `Key::new` holds it).
                    key.clear_ethernet();
                    key.set(classifier::Dim::FrameAt, crate::io::capture::ETH as u32);
                    key.set(classifier::Dim::FrameLen, wire_len.min(classifier::ABSENT - 1));
                }
                membership.fill(&mut key);
                (key, len)
            }
            // A frame of a link type transitd does not read, or a pcapng block that holds no
            // packet, still has tshark's number and length.
            Some(Record::Unsupported { wire_len: len, link_type }) => {
                *unread.entry(link_type).or_default() += 1;
                (Key::new(len), 0)
            }
            Some(Record::NotAPacket { len }) => (Key::new(len), 0),
        };
        n += 1;
        if table.first_match(&key, &buf[..len]).is_some() {
            selected(n);
        }
    }
    Ok(FramesRead { frames: n, unread })
}

/// One frame's fate in a dry run.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FrameReport {
    /// 1-based frame number.
    pub frame: u64,
    /// The customer whose prefix holds the destination.
    pub customer: Option<String>,
    /// The rule that decided, if one did (`None`: the default action or an earlier stage).
    pub rule: Option<RuleRef>,
    /// The monitor-mode rule that would have decided, if any.
    pub monitor: Option<RuleRef>,
    /// The DoS rule that decided (global `[dos]` rules have customer `[dos]`).
    pub dos_rule: Option<RuleRef>,
    /// The monitor-mode global DoS rule that would have decided.
    pub dos_monitor: Option<RuleRef>,
    /// The customer's monitor-mode DoS rule that would have decided, after the global ones.
    pub customer_dos_monitor: Option<RuleRef>,
    /// The egress rule that decided a decapsulated packet (customer `NAME/egress`).
    pub egress_rule: Option<RuleRef>,
    /// The monitor-mode egress rule that would have decided.
    pub egress_monitor: Option<RuleRef>,
    /// The monitor-mode rate limits among those whose bucket would have refused the frame
    /// (`customer/name`): what enforcing them would drop as `rate_limited`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_limit: Vec<String>,
    /// The DoS stage dropped it (its rule drops or rate-limits; an accepting DoS rule that
    /// matched decided nothing).
    #[serde(skip)]
    pub dropped_by_dos: bool,
    /// The last rule stage it met (the customer's firewall, or the egress rules of a
    /// decapsulated packet) decided by its default action: no rule matched.
    #[serde(rename = "default_action")]
    pub by_default: bool,
    /// `tx`, `pass`, `drop` or `consumed`.
    pub verdict: &'static str,
    /// What a transmitted frame is, or why it was passed, dropped or consumed.
    pub reason: Option<&'static str>,
    /// The tunnel a transmitted frame was encapsulated into, or a decapsulated one came
    /// out of.
    pub tunnel: Option<String>,
    /// Further frames it became (later fragments).
    pub spilled: u16,
    /// What TCP protection made of it, when a `[tcp_protection]` rule covered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpReport>,
}

/// TCP protection's part in a frame's fate.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TcpReport {
    /// The covering rule: `[tcp_protection]/NAME` or `CUSTOMER/tcp_protection/NAME`, and its
    /// mode.
    pub rule: String,
    /// `new`, `tracked`, `picked_up`, `out_of_state_ack`, `out_of_state_fin` or
    /// `out_of_state_rst`.
    pub event: &'static str,
}

/// A rule, named for people.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RuleRef {
    /// Its customer.
    pub customer: String,
    /// Its name.
    pub name: String,
    /// Its 0-based position in the customer's firewall.
    pub index: usize,
    /// `enforce` or `monitor`.
    pub mode: &'static str,
}

/// A whole dry run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DryRun {
    /// Every frame, in order.
    pub frames: Vec<FrameReport>,
    /// Packets decided per rule (`customer/name`), monitor hits included, and per TCP
    /// protection rule the packets it judged (`[tcp_protection]/name`,
    /// `customer/tcp_protection/name`: those with an event, as `replay` counts them); every
    /// rule listed.
    pub rule_hits: BTreeMap<String, u64>,
    /// Of each monitor-mode rate limit's hits, the packets its bucket would have refused;
    /// every such rule listed (none without one).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub would_limit: BTreeMap<String, u64>,
    /// Frames per verdict and reason (`tx`, `pass:no_customer`, `drop:firewall`, ...).
    pub verdicts: BTreeMap<String, u64>,
}

/// A DoS rule by its index over all DoS rules (the global ones, then each customer's, whose
/// scope is `NAME/dos`: a customer's DoS and firewall rules may share a name), and whether
/// it drops or rate-limits.
fn dos_rule(snap: &Snapshot, index: u32) -> Option<(RuleRef, bool)> {
    let global = snap.dos.rules.rules();
    let (scope, list, i) = if (index as usize) < global.len() {
        ("[dos]".to_string(), global, index as usize)
    } else {
        let c = snap.customers.iter().rev().find(|c| c.dos_base <= index)?;
        (format!("{}/dos", c.name), c.dos.rules(), (index - c.dos_base) as usize)
    };
    let rule = list.get(i)?;
    let mode = if rule.mode == Mode::Monitor { "monitor" } else { "enforce" };
    let drops = rule.action != classifier::Action::Accept;
    Some((RuleRef { customer: scope, name: rule.name.clone(), index: i, mode }, drops))
}

fn dos_rule_ref(snap: &Snapshot, index: u32) -> Option<RuleRef> {
    dos_rule(snap, index).map(|(r, _)| r)
}

/// A firewall or egress rule by its global index; egress rules' scope is `NAME/egress`.
fn rule_ref(snap: &Snapshot, global: u32) -> Option<RuleRef> {
    snap.customers.iter().find_map(|c| {
        let (scope, rule, i) = match global.checked_sub(c.egress_base) {
            Some(i) if (i as usize) < c.egress.rules().len() => {
                (format!("{}/egress", c.name), c.egress.rules().get(i as usize)?, i as usize)
            }
            _ => {
                let i = global.checked_sub(c.rule_base)? as usize;
                (c.name.clone(), c.firewall.rules().get(i)?, i)
            }
        };
        let mode = if rule.mode == Mode::Monitor { "monitor" } else { "enforce" };
        Some(RuleRef { customer: scope, name: rule.name.clone(), index: i, mode })
    })
}

/// Runs every frame of `path` (at most `limit`) through the pipeline of `snap`: the report
/// of the frames read, and why reading stopped early, if it did (a capture cut short is
/// reported up to its last whole frame, as `-Y` and tshark do).
pub fn dry_run(snap: &Snapshot, path: &Path, limit: Option<u64>) -> (DryRun, Result<(), MatchError>) {
    let mut report = DryRun::default();
    let result = dry_run_into(snap, path, limit, &mut report);
    (report, result)
}

fn dry_run_into(snap: &Snapshot, path: &Path, limit: Option<u64>, report: &mut DryRun) -> Result<(), MatchError> {
    let mut reader = CaptureReader::open(path)?;
    let mut buf = vec![0u8; HEADROOM + MAX_RECORD];
    let lists = std::iter::once(("[dos]".to_string(), &snap.dos.rules)).chain(snap.customers.iter().flat_map(|c| {
        [(format!("{}/dos", c.name), &c.dos), (c.name.clone(), &c.firewall), (format!("{}/egress", c.name), &c.egress)]
    }));
    for (scope, rules) in lists {
        for r in rules.rules() {
            report.rule_hits.insert(format!("{scope}/{}", r.name), 0);
            if r.previewed_bucket().is_some() {
                report.would_limit.insert(format!("{scope}/{}", r.name), 0);
            }
        }
    }
    // And TCP protection's, global and each customer's (one list, `snap.tcp.rules`).
    for i in 0..snap.tcp.rules.len() as u32 {
        report.rule_hits.extend(crate::dropcap::tcp_rule_label(snap, i).map(|label| (label, 0)));
    }
    let mut limits = Limits::new(snap);
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    let (mut n, mut clock) = (0u64, MonotonicClock::default());
    while limit.is_none_or(|l| n < l) {
        let Some(record) = reader.next_into(&mut buf[HEADROOM..])? else { break };
        n += 1;
        let (len, wire_len, ts) = match record {
            Record::Frame { len, wire_len, uncaptured_len, timestamp_ns, ethernet, outgoing: false } => {
                (len, data_plane_wire_len(len, wire_len, uncaptured_len, ethernet), clock.at(timestamp_ns))
            }
            // As replay skips them: a frame the capturing host sent is no arrival.
            skipped => {
                let reason = match skipped {
                    Record::NotAPacket { .. } => "not_a_packet",
                    Record::Frame { .. } => "outgoing",
                    Record::Unsupported { .. } => "unsupported_link_type",
                };
                *report.verdicts.entry(format!("skip:{reason}")).or_default() += 1;
                report.frames.push(FrameReport {
                    frame: n,
                    customer: None,
                    rule: None,
                    monitor: None,
                    dos_rule: None,
                    dos_monitor: None,
                    customer_dos_monitor: None,
                    egress_rule: None,
                    egress_monitor: None,
                    would_limit: Vec::new(),
                    dropped_by_dos: false,
                    by_default: false,
                    verdict: "skip",
                    reason: Some(reason),
                    tunnel: None,
                    spilled: 0,
                    tcp: None,
                });
                continue;
            }
        };
        // Capture time is the clock, as in replay (never running back, as a live clock
        // does not): rate limits behave as they would live.
        let mut frame = Frame::new(&mut buf, HEADROOM, len, wire_len, ts);
        let outcome = process_frame(snap, Some(&snap.eth), &mut limits, &mut spill, &mut frame);
        spill.clear(); // nothing is sent in a dry run
        let (verdict, reason) = (outcome.verdict.kind(), Some(outcome.verdict.reason()));
        let key = reason.map_or_else(|| verdict.to_string(), |r| format!("{verdict}:{r}"));
        *report.verdicts.entry(key).or_default() += 1;
        let rule = outcome.rule.and_then(|r| rule_ref(snap, r));
        let monitor = outcome.monitor.and_then(|r| rule_ref(snap, r));
        let dos_decided = outcome.deciding_dos_rule().and_then(|r| dos_rule(snap, r));
        // The firewall and egress rules run only after the DoS stage let the frame through:
        // one that matched decided a rate limit, even under a DoS rule that rate-limits too.
        let dropped_by_dos = dos_decided.as_ref().is_some_and(|(_, drops)| *drops)
            && matches!(reason, Some("dos_rule" | "rate_limited"))
            && outcome.rule.is_none()
            // An egress rule that let a decapsulated packet on to a customer prefix ran
            // before that customer's DoS rules; one that rate-limited it ended it there.
            && (outcome.egress_rule.is_none() || outcome.customer_dos_rule.is_some());
        let dos_rule = dos_decided.map(|(r, _)| r);
        let dos_monitor = outcome.dos_monitor.and_then(|r| dos_rule_ref(snap, r));
        let customer_dos_monitor = outcome.customer_dos_monitor.and_then(|r| dos_rule_ref(snap, r));
        let egress_rule = outcome.egress_rule.and_then(|r| rule_ref(snap, r));
        let egress_monitor = outcome.egress_monitor.and_then(|r| rule_ref(snap, r));
        // Every DoS rule that decided at its stage is hit: a global one that let the frame
        // on to the customer's, and the customer's that then decided.
        let dos_hits = outcome.dos_rules().filter_map(|r| dos_rule_ref(snap, r));
        for r in [&rule, &monitor, &egress_rule, &egress_monitor].into_iter().flatten().cloned().chain(dos_hits) {
            *report.rule_hits.entry(format!("{}/{}", r.customer, r.name)).or_default() += 1;
        }
        // The TCP protection rule that judged the frame, where tracking made an event of it.
        if let Some(label) = outcome.tcp.and(outcome.tcp_rule).and_then(|r| crate::dropcap::tcp_rule_label(snap, r)) {
            *report.rule_hits.entry(label).or_default() += 1;
        }
        let w = outcome.would_limit;
        let would_limit: Vec<String> = [
            (WouldLimit::DOS, &dos_monitor),
            (WouldLimit::CUSTOMER_DOS, &customer_dos_monitor),
            (WouldLimit::FIREWALL, &monitor),
            (WouldLimit::EGRESS, &egress_monitor),
        ]
        .into_iter()
        .filter_map(|(stage, r)| r.as_ref().filter(|_| w.has(stage)).map(|r| format!("{}/{}", r.customer, r.name)))
        .collect();
        for name in &would_limit {
            *report.would_limit.entry(name.clone()).or_default() += 1;
        }
        report.frames.push(FrameReport {
            frame: n,
            customer: outcome.customer.map(|c| snap.customers[usize::from(c)].name.clone()),
            rule,
            monitor,
            dos_rule,
            dos_monitor,
            customer_dos_monitor,
            egress_rule,
            egress_monitor,
            would_limit,
            dropped_by_dos,
            by_default: outcome.by_default && !dropped_by_dos,
            verdict,
            reason,
            tunnel: outcome.tunnel.map(|t| snap.tunnels[usize::from(t)].name.clone()),
            spilled: u16::from(outcome.spilled),
            tcp: match (outcome.tcp_rule, outcome.tcp) {
                (Some(r), Some(event)) => Some(TcpReport {
                    rule: crate::dropcap::tcp_rule_name(snap, r).unwrap_or_else(|| r.to_string()),
                    event: event.name(),
                }),
                _ => None,
            },
        });
    }
    Ok(())
}

impl DryRun {
    /// A table for people: one line per frame, then the totals.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "{:>7}  {:<12} {:<28} {:<8} verdict", "frame", "customer", "decided by", "mode");
        for f in &self.frames {
            // A DoS rule that dropped decided; otherwise the firewall rule did. An egress rule
            // decided only where the egress rules were the last rule stage: a packet it let on
            // to a customer prefix was then decided by that customer's TCP protection or
            // firewall, its default action included, not by the sender's egress rule.
            let egress_last = !f.by_default && f.tcp.is_none();
            let decider = if f.dropped_by_dos {
                &f.dos_rule
            } else if f.rule.is_none() && f.egress_rule.is_some() && egress_last {
                &f.egress_rule
            } else {
                &f.rule
            };
            let (by, mode) = match decider.as_ref().or(f.rule.as_ref()) {
                Some(r) => (format!("{}/{}", r.customer, r.name), r.mode),
                None if f.by_default => ("(default action)".to_string(), "-"),
                None => ("-".to_string(), "-"),
            };
            let mut verdict = f.reason.map_or_else(|| f.verdict.to_string(), |r| format!("{} {r}", f.verdict));
            match (&f.tunnel, f.reason) {
                (Some(t), Some("decapsulated" | "gre_keepalive")) => {
                    let _ = write!(verdict, " from {t}");
                }
                (Some(t), _) if f.verdict == "tx" => {
                    let _ = write!(verdict, " via {t}");
                }
                _ => {}
            }
            if f.spilled > 0 {
                let _ = write!(verdict, " (+{} fragments)", f.spilled);
            }
            for m in [&f.monitor, &f.dos_monitor, &f.customer_dos_monitor, &f.egress_monitor].into_iter().flatten() {
                let name = format!("{}/{}", m.customer, m.name);
                let limited = if f.would_limit.contains(&name) { ", would rate-limit" } else { "" };
                let _ = write!(verdict, " (monitor: {name}{limited})");
            }
            if let Some(t) = &f.tcp {
                let _ = write!(verdict, " (tcp: {} by {})", t.event, t.rule);
            }
            let customer = f.customer.as_deref().unwrap_or("-");
            let _ = writeln!(out, "{:>7}  {customer:<12} {by:<28} {mode:<8} {verdict}", f.frame);
        }
        let _ = writeln!(out, "\nrule hits");
        for (rule, hits) in &self.rule_hits {
            let _ = writeln!(out, "  {rule:<40} {hits:>10}");
        }
        if !self.would_limit.is_empty() {
            let _ = writeln!(out, "would be rate-limited (monitor mode)");
            for (rule, n) in &self.would_limit {
                let _ = writeln!(out, "  {rule:<40} {n:>10}");
            }
        }
        let _ = writeln!(out, "verdicts");
        for (v, n) in &self.verdicts {
            let _ = writeln!(out, "  {v:<40} {n:>10}");
        }
        out
    }
}
