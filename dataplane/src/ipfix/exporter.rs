//! The exporter thread: samples into flows, flows into records, records to the collector.
//!
//! A flow is a 5-tuple with its customer, verdict and reason. It is reported when no
//! sample came for `idle_timeout` (and forgotten), or when it has been reported last
//! `active_timeout` ago (and counted afresh), and when the exporter stops. The exporter
//! reads the running snapshot for its settings and for customer names (a reload that
//! renumbers customers between a sample and its aggregation, a tenth of a second, may name
//! the wrong one). Without `[ipfix]` it only empties the queue.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use super::wire::{self, FlowRecord};
use super::{FlowSample, Samples};
use crate::pipeline::Verdict;
use crate::snapshot::{Ipfix, Snapshot};

/// How often the queue is emptied and timeouts looked at.
const TICK: Duration = Duration::from_millis(100);
/// Templates are sent again this often (RFC 7011 §8.4: over UDP, periodically).
const TEMPLATE_EVERY: Duration = Duration::from_secs(60);

/// What the exporter did.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Flow records sent.
    pub records: AtomicU64,
    /// Messages sent.
    pub messages: AtomicU64,
    /// Messages the socket refused.
    pub send_errors: AtomicU64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    v6: bool,
    src: u128,
    dst: u128,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    verdict: Verdict,
    customer: Option<u16>,
}

#[derive(Debug)]
struct Flow {
    packets: u64,
    octets: u64,
    start_ms: u64,
    end_ms: u64,
    /// When it was first seen since its last report, and when it was last seen.
    since: Instant,
    seen: Instant,
}

/// The exporter's state.
pub struct Exporter {
    samples: Arc<Samples>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    flows: HashMap<FlowKey, Flow>,
    socket: Option<UdpSocket>,
    /// Collector and domain the templates were last sent for, and when.
    templates_sent: Option<(Ipfix, Instant)>,
    sequence: u32,
    /// Counters.
    pub stats: Arc<ExportStats>,
}

impl Exporter {
    /// An exporter of `samples`, configured by the running snapshot.
    pub fn new(samples: Arc<Samples>, snapshot: Arc<ArcSwap<Snapshot>>) -> Exporter {
        Exporter {
            samples,
            snapshot,
            flows: HashMap::new(),
            socket: None,
            templates_sent: None,
            sequence: 0,
            stats: Arc::default(),
        }
    }

    /// An exporter for one snapshot that never changes (a replay, a benchmark).
    pub fn fixed(samples: Arc<Samples>, snapshot: Arc<Snapshot>) -> Exporter {
        Exporter::new(samples, Arc::new(ArcSwap::new(snapshot)))
    }

    /// Runs until `stop`, then reports every flow. The queue is emptied as fast as samples
    /// come (a sleep only when it was empty); timeouts are looked at every [`TICK`].
    pub fn run(mut self, stop: &AtomicBool) {
        let mut looked = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if self.drain() == 0 {
                std::thread::sleep(TICK / 10);
            }
            if looked.elapsed() >= TICK {
                self.tick(false);
                looked = Instant::now();
            }
        }
        self.tick(true);
    }

    /// Adds the queued samples to their flows; returns how many there were.
    fn drain(&mut self) -> usize {
        let configured = self.snapshot.load().ipfix.is_some();
        let now = Instant::now();
        let mut n = 0;
        while let Some(s) = self.samples.pop() {
            if configured {
                self.add(&s, now);
            }
            n += 1;
        }
        n
    }

    /// Takes the queued samples and sends what is due (everything if `flush`).
    pub fn tick(&mut self, flush: bool) {
        self.drain();
        let snap = self.snapshot.load_full();
        let Some(config) = snap.ipfix.clone() else {
            self.flows.clear();
            return;
        };
        let now = Instant::now();
        let mut due = Vec::new();
        self.flows.retain(|key, flow| {
            let idle = now.duration_since(flow.seen) >= config.idle_timeout;
            let active = now.duration_since(flow.since) >= config.active_timeout;
            if flush || idle || active {
                due.push(record(key, flow, &config, &snap));
            }
            if active && !idle && !flush {
                // Reported; counted afresh from now on.
                (flow.packets, flow.octets, flow.since) = (0, 0, now);
                flow.start_ms = flow.end_ms;
            }
            !(flush || idle)
        });
        due.retain(|r| r.packets > 0);
        self.send(&config, &due);
    }

    fn add(&mut self, s: &FlowSample, now: Instant) {
        let key = FlowKey {
            v6: s.v6,
            src: s.src,
            dst: s.dst,
            src_port: s.src_port,
            dst_port: s.dst_port,
            protocol: s.protocol,
            verdict: normalized(s.verdict),
            customer: s.customer,
        };
        let ms = s.timestamp_ns / 1_000_000;
        let flow = self.flows.entry(key).or_insert(Flow {
            packets: 0,
            octets: 0,
            start_ms: ms,
            end_ms: ms,
            since: now,
            seen: now,
        });
        flow.packets += 1;
        flow.octets += u64::from(s.octets);
        flow.start_ms = flow.start_ms.min(ms);
        flow.end_ms = flow.end_ms.max(ms);
        flow.seen = now;
    }

    /// Sends `records` (with the templates first when due).
    fn send(&mut self, config: &Ipfix, records: &[FlowRecord]) {
        let templates_due = self
            .templates_sent
            .as_ref()
            .is_none_or(|(sent_for, at)| sent_for != config || at.elapsed() >= TEMPLATE_EVERY);
        if records.is_empty() && !templates_due {
            return;
        }
        // Not connected: a connected UDP socket reports the ICMP errors of earlier messages
        // (a collector not listening yet) on the next send, and would lose that message.
        let family_changed = self.socket.as_ref().and_then(|s| s.local_addr().ok()).map(|a| a.is_ipv4())
            != Some(config.collector.is_ipv4());
        if family_changed {
            let bind = if config.collector.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            self.socket = UdpSocket::bind(bind).ok();
        }
        let Some(socket) = &self.socket else {
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let templates = templates_due.then(|| wire::template_set(config.enterprise_number));
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
        let messages =
            wire::messages(templates.as_deref(), records, secs, &mut self.sequence, config.observation_domain);
        for m in &messages {
            match socket.send_to(m, config.collector) {
                Ok(_) => self.stats.messages.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.stats.send_errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        self.stats.records.fetch_add(records.len() as u64, Ordering::Relaxed);
        if templates_due {
            self.templates_sent = Some((config.clone(), Instant::now()));
        }
    }
}

/// The verdict without what differs per packet (a transmitted frame's offsets).
fn normalized(v: Verdict) -> Verdict {
    match v {
        Verdict::Tx { reason, .. } => Verdict::Tx { start: 0, len: 0, reason },
        other => other,
    }
}

fn record(key: &FlowKey, flow: &Flow, config: &Ipfix, snap: &Snapshot) -> FlowRecord {
    let name = key.customer.and_then(|c| snap.customers.get(usize::from(c))).map(|c| c.name.clone());
    FlowRecord {
        start_ms: flow.start_ms,
        end_ms: flow.end_ms,
        v6: key.v6,
        src: key.src,
        dst: key.dst,
        src_port: key.src_port,
        dst_port: key.dst_port,
        protocol: key.protocol,
        packets: flow.packets,
        octets: flow.octets,
        verdict: key.verdict,
        sampling: config.sample,
        vrf_id: key.customer.map_or(0, |c| u32::from(c) + 1),
        vrf_name: name.unwrap_or_default(),
    }
}
