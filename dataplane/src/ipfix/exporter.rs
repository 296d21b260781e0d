//! The exporter thread: samples into flows, flows into records, records to the collector.
//!
//! A flow is a 5-tuple with its customer, verdict and reason. It is reported when no
//! sample came for `idle_timeout` (and forgotten), or when it has been reported last
//! `active_timeout` ago (and counted afresh), and when the exporter stops. The exporter
//! reads the running snapshot for its settings and for customer names; a reload that
//! changes the names, the sampling or the observation domain reports every open flow
//! first, under the names, sampling and domain it was counted with. A sample carries the
//! generation of the snapshot it was made under: one queued across such a reload is
//! reported as a flow of its own under the names it was made under, never under a customer
//! the index now names (in the new domain's messages, though). Without `[ipfix]` it only
//! empties the queue, and keeps no replaced snapshot (see `Exporter::follow`).
//!
//! Memory is bounded: at most [`MAX_FLOWS`] flows are kept; past that (a flood of spoofed
//! sources makes a flow of nearly every sample), a new flow's sample is reported as a flow
//! of its own, so that no count is lost.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use super::wire::{self, FlowRecord};
use super::{FlowSample, Ignored, Samples};
use crate::pipeline::Verdict;
use crate::snapshot::{Ipfix, Snapshot};

/// How often the queue is emptied and timeouts looked at.
const TICK: Duration = Duration::from_millis(100);
/// Flows kept at most: about 130 bytes each, 32 MiB.
pub const MAX_FLOWS: usize = 262_144;
/// Samples past [`MAX_FLOWS`] held as flows of their own before they are sent.
const OVERFLOW_BATCH: usize = 1024;
/// Samples taken off the queue between looks at the timeouts: workers that outpace the
/// exporter must not keep it from reporting.
const DRAIN_MAX: usize = 65_536;

/// What the exporter did.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Flow records sent (in messages the socket took).
    pub records: AtomicU64,
    /// Messages sent.
    pub messages: AtomicU64,
    /// Messages the socket refused.
    pub send_errors: AtomicU64,
    /// Samples reported as flows of their own: the flow cache was full.
    pub cache_full: AtomicU64,
    /// Samples reported as flows of their own: queued across a reload that named customers
    /// otherwise (or changed sampling), reported under the snapshot they were made under.
    pub late: AtomicU64,
    /// Samples not counted: made under a snapshot the exporter no longer holds (reloads
    /// faster than it drains), so that no customer can be named for them with certainty.
    pub unnamed: AtomicU64,
}

/// How many replaced snapshots the exporter keeps to name samples queued across reloads
/// (those with `[ipfix]` alone: without it no sample is made).
const RECENT_SNAPSHOTS: usize = 4;

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
    from_customer: Option<u16>,
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

impl FlowKey {
    fn of(s: &FlowSample) -> FlowKey {
        FlowKey {
            v6: s.v6,
            src: s.src,
            dst: s.dst,
            src_port: s.src_port,
            dst_port: s.dst_port,
            protocol: s.protocol,
            verdict: normalized(s.verdict),
            customer: s.customer,
            from_customer: s.from_customer,
        }
    }
}

impl Flow {
    /// A flow of the one sample `s`, taken in at `now`.
    fn of_one(s: &FlowSample, now: Instant) -> Flow {
        let ms = s.timestamp_ns / 1_000_000;
        Flow { packets: 1, octets: u64::from(s.octets), start_ms: ms, end_ms: ms, since: now, seen: now }
    }
}

/// The exporter's state.
pub struct Exporter {
    samples: Arc<Samples>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    flows: HashMap<FlowKey, Flow>,
    /// Samples of new flows while `flows` was full, each a flow of its own.
    overflow: Vec<(FlowKey, Flow)>,
    /// The snapshot the flows are counted under: their customers' names, their sampling.
    counted_under: Arc<Snapshot>,
    /// Those counted under before it, newest last (at most [`RECENT_SNAPSHOTS`]).
    replaced: VecDeque<Arc<Snapshot>>,
    /// Records of late samples ([`ExportStats::late`]), sent with the next report.
    late: Vec<FlowRecord>,
    socket: Option<UdpSocket>,
    /// Collector and domain the templates were last sent for, and when.
    templates_sent: Option<(Ipfix, Instant)>,
    /// The counts of the samples lost to a full queue taken so far ([`Samples::take_lost`]).
    lost_seen: (u64, u64),
    /// Samples of which no flow record is sent, per observation domain (RFC 7011 §4.2 tells
    /// them scoped by it, an Observation Domain's counts its own): those lost to a full queue
    /// while the exporter sent for it, and those not counted for want of the configuration
    /// they were made under ([`ExportStats::unnamed`]). A reload that changed the domain
    /// told the new one of the old one's.
    ignored: HashMap<u32, Ignored>,
    /// The domain and the ignored samples the collector was last told of (with the
    /// templates, and whenever more are ignored).
    ignored_told: Option<(u32, Ignored)>,
    /// Data records sent before, per observation domain (RFC 7011 §3.1).
    sequences: HashMap<u32, u32>,
    /// Counters.
    pub stats: Arc<ExportStats>,
}

impl Exporter {
    /// An exporter of `samples`, configured by the running snapshot.
    pub fn new(samples: Arc<Samples>, snapshot: Arc<ArcSwap<Snapshot>>) -> Exporter {
        let counted_under = snapshot.load_full();
        Exporter {
            samples,
            snapshot,
            flows: HashMap::new(),
            overflow: Vec::new(),
            counted_under,
            replaced: VecDeque::new(),
            late: Vec::new(),
            socket: None,
            templates_sent: None,
            lost_seen: (0, 0),
            ignored: HashMap::new(),
            ignored_told: None,
            sequences: HashMap::new(),
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

    /// Adds queued samples (at most [`DRAIN_MAX`]) to their flows; returns how many there
    /// were.
    fn drain(&mut self) -> usize {
        self.follow();
        let now = Instant::now();
        let mut n = 0;
        while n < DRAIN_MAX
            && let Some(s) = self.samples.pop()
        {
            n += 1;
            if s.generation > self.counted_under.generation {
                self.follow(); // a worker took up a reload before the exporter did
            }
            let Some(domain) = self.counted_under.ipfix.as_ref().map(|c| c.observation_domain) else {
                continue;
            };
            if s.generation == self.counted_under.generation {
                self.add(&s, now);
                continue;
            }
            match self.replaced.iter().find(|r| r.generation == s.generation) {
                Some(made_under) if !relabels(made_under, &self.counted_under) => self.add(&s, now),
                Some(made_under) => {
                    if let Some(config) = &made_under.ipfix {
                        let one = Flow::of_one(&s, now);
                        self.late.push(record(&FlowKey::of(&s), &one, config, made_under));
                        self.stats.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    self.stats.unnamed.fetch_add(1, Ordering::Relaxed);
                    self.ignored.entry(domain).or_insert(Ignored::NONE).add(&s);
                }
            }
        }
        n
    }

    /// Counts under the running snapshot from now on; first reports every open flow, under
    /// the names and sampling it was counted with, if the new one would report it otherwise.
    ///
    /// A replaced snapshot is kept only to name the samples made under it, and each holds a
    /// whole configuration (rule tables: hundreds of megabytes at the limits), which its
    /// last holder frees. One without `[ipfix]` names none (the workers sample only under a
    /// snapshot that has it), and while the running one has none no sample is counted: kept
    /// anyway, every reload of an edge without `[ipfix]` left four configurations' memory
    /// with the exporter. A sample made before a reload that removed `[ipfix]` and still
    /// queued after one that added it back is not counted (`unnamed`).
    fn follow(&mut self) {
        let snap = self.snapshot.load_full();
        if snap.generation == self.counted_under.generation {
            return;
        }
        if relabels(&self.counted_under, &snap) {
            self.report(true);
        }
        let old = std::mem::replace(&mut self.counted_under, snap);
        if self.counted_under.ipfix.is_none() {
            self.replaced.clear();
            return;
        }
        if old.ipfix.is_none() {
            return;
        }
        if self.replaced.len() == RECENT_SNAPSHOTS {
            self.replaced.pop_front();
        }
        self.replaced.push_back(old);
    }

    /// Takes the queued samples and sends what is due (everything if `flush`).
    pub fn tick(&mut self, flush: bool) {
        self.drain();
        self.report(flush);
    }

    /// Sends what is due under the snapshot the flows were counted under (everything if
    /// `flush`).
    fn report(&mut self, flush: bool) {
        if let Some((config, due)) = self.due(flush) {
            self.send(&config, &due);
        }
    }

    /// The records due now (every flow's if `flush`), and the settings to send them with;
    /// `None` without `[ipfix]`.
    fn due(&mut self, flush: bool) -> Option<(Ipfix, Vec<FlowRecord>)> {
        let snap = self.counted_under.clone();
        let Some(config) = snap.ipfix.clone() else {
            self.flows.clear();
            self.overflow.clear();
            self.late.clear();
            return None;
        };
        let now = Instant::now();
        let mut due: Vec<FlowRecord> = self.late.drain(..).collect();
        due.extend(self.overflow.drain(..).map(|(k, f)| record(&k, &f, &config, &snap)));
        self.flows.retain(|key, flow| {
            let idle = now.duration_since(flow.seen) >= config.idle_timeout;
            let active = now.duration_since(flow.since) >= config.active_timeout;
            if flush || idle || active {
                due.push(record(key, flow, &config, &snap));
            }
            if active && !idle && !flush {
                // Reported; counted afresh from now on, from its next packet's time.
                (flow.packets, flow.octets, flow.since) = (0, 0, now);
                (flow.start_ms, flow.end_ms) = (u64::MAX, 0);
            }
            !(flush || idle)
        });
        due.retain(|r| r.packets > 0);
        Some((config, due))
    }

    fn add(&mut self, s: &FlowSample, now: Instant) {
        let one = Flow::of_one(s, now);
        let new = Flow { packets: 0, octets: 0, ..one };
        let kept = self.flows.len();
        let flow = match self.flows.entry(FlowKey::of(s)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) if kept < MAX_FLOWS => e.insert(new),
            Entry::Vacant(e) => {
                self.stats.cache_full.fetch_add(1, Ordering::Relaxed);
                self.overflow.push((e.into_key(), one));
                if self.overflow.len() >= OVERFLOW_BATCH {
                    self.send_overflow();
                }
                return;
            }
        };
        flow.packets += 1;
        flow.octets += u64::from(s.octets);
        flow.start_ms = flow.start_ms.min(one.start_ms);
        flow.end_ms = flow.end_ms.max(one.end_ms);
        flow.seen = now;
    }

    /// Sends the flows of one sample each that did not fit the cache.
    fn send_overflow(&mut self) {
        let snap = self.counted_under.clone();
        let Some(config) = &snap.ipfix else { return self.overflow.clear() };
        let records: Vec<FlowRecord> = self.overflow.drain(..).map(|(k, f)| record(&k, &f, config, &snap)).collect();
        self.send(config, &records);
    }

    /// Sends `records` (with the templates first when due).
    fn send(&mut self, config: &Ipfix, records: &[FlowRecord]) {
        let templates_due = self
            .templates_sent
            .as_ref()
            .is_none_or(|(sent_for, at)| sent_for != config || at.elapsed() >= config.template_refresh);
        let domain = config.observation_domain;
        let ignored = self.ignored.entry(domain).or_insert(Ignored::NONE);
        *ignored = ignored.and(self.samples.take_lost(&mut self.lost_seen));
        let lost = *ignored;
        let lost_due = lost.can_be_told() && (templates_due || self.ignored_told != Some((domain, lost)));
        if records.is_empty() && !templates_due && !lost_due {
            return;
        }
        // Not connected: a connected UDP socket reports the ICMP errors of earlier messages
        // (a collector not listening yet) on the next send, and would lose that message.
        let family_changed = self.socket.as_ref().and_then(|s| s.local_addr().ok()).map(|a| a.is_ipv4())
            != Some(config.collector.is_ipv4());
        // Templates 256 and 257 defined anew (another enterprise number for the reason
        // element) go out from another socket, a new Transport Session: on the old one RFC
        // 7011 §8.4 lets an ID be reused only after three refresh intervals, as a reordered
        // data set would be read with the wrong definition.
        let redefined = self
            .templates_sent
            .as_ref()
            .is_some_and(|(sent_for, _)| sent_for.enterprise_number != config.enterprise_number);
        if family_changed || redefined {
            let bind = if config.collector.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            self.socket = UdpSocket::bind(bind).ok();
        }
        let Some(socket) = &self.socket else {
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            // Counted as sent, as a lost message's are: the collector sees the gap.
            let sequence = self.sequences.entry(config.observation_domain).or_insert(0);
            *sequence = sequence.wrapping_add(records.len() as u32);
            return;
        };
        let mut leading = if templates_due { wire::template_set(config.enterprise_number) } else { Vec::new() };
        if lost_due {
            leading.extend_from_slice(&wire::reliability_set(domain, &lost));
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
        let sequence = self.sequences.entry(config.observation_domain).or_insert(0);
        let messages = wire::messages(
            Some((&leading, u32::from(lost_due))),
            records,
            secs,
            sequence,
            config.observation_domain,
            config.max_message,
        );
        let sent = deliver(&messages, *sequence, templates_due, |m| socket.send_to(m, config.collector).map(drop));
        self.stats.messages.fetch_add(sent.messages, Ordering::Relaxed);
        self.stats.send_errors.fetch_add(sent.refused, Ordering::Relaxed);
        // Flow records: the reliability record is not one.
        let told = lost_due && sent.first;
        self.stats.records.fetch_add(sent.records - u64::from(told), Ordering::Relaxed);
        // The templates ride in the first message: lost with it, they are sent again with
        // the next one, or the collector could read nothing until the next refresh.
        if templates_due && sent.templates {
            self.templates_sent = Some((config.clone(), Instant::now()));
        }
        // Told with the first message: refused, it is told again with the next.
        if told {
            self.ignored_told = Some((domain, lost));
        }
    }
}

/// What [`deliver`] got out.
#[derive(Debug, Default, PartialEq, Eq)]
struct Delivered {
    messages: u64,
    /// Messages refused, or not sent after the templates' was refused.
    refused: u64,
    records: u64,
    /// The first message, with the templates, went out.
    templates: bool,
    /// The first message went out (with the reliability record, when there is one).
    first: bool,
}

/// Sends `messages` in order with `send`; `next` is the sequence number after the last.
/// When the first carries the templates (`templates`) and is refused, the rest are not sent:
/// a collector cannot read data sets whose templates it never got, and their records would
/// be counted as sent. They are counted as refused, their records as lost (the sequence
/// numbers show the collector the gap).
fn deliver(
    messages: &[Vec<u8>],
    next: u32,
    templates: bool,
    mut send: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Delivered {
    // Each message's header holds the records sent before it (RFC 7011 §3.1): the
    // difference to the next one's is how many it carries.
    let ends = messages.iter().skip(1).map(|m| wire::sequence_of(m)).chain([next]);
    let mut out = Delivered::default();
    for (i, (m, end)) in messages.iter().zip(ends).enumerate() {
        match send(m) {
            Ok(()) => {
                out.messages += 1;
                out.records += u64::from(end.wrapping_sub(wire::sequence_of(m)));
                out.templates |= templates && i == 0;
                out.first |= i == 0;
            }
            Err(_) if templates && i == 0 => {
                out.refused = messages.len() as u64;
                break;
            }
            Err(_) => out.refused += 1,
        }
    }
    out
}

/// Whether flows counted under `old` would be reported differently under `new`: another
/// sampling, another observation domain (RFC 7011 §3.1: the one that metered a flow reports
/// it; open flows went out in the new one), or customers named otherwise (a customer added,
/// removed or moved).
fn relabels(old: &Snapshot, new: &Snapshot) -> bool {
    let metered = |s: &Snapshot| s.ipfix.as_ref().map(|c| (c.sample, c.observation_domain));
    metered(old) != metered(new) || !old.customers.iter().map(|c| &c.name).eq(new.customers.iter().map(|c| &c.name))
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
    let vrf = |c: u16| snap.customers.get(usize::from(c)).map_or(0, |c| c.vrf_id);
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
        // Decapsulated: the customer it came from is where it entered; it leaves into a
        // customer's domain only when it goes on to another customer (a hairpin). Else the
        // customer it was for is where it leaves.
        ingress_vrf: key.from_customer.map_or(0, vrf),
        egress_vrf: match (key.from_customer, key.customer) {
            (Some(from), Some(to)) if from != to => vrf(to),
            (Some(_), _) | (None, None) => 0,
            (None, Some(to)) => vrf(to),
        },
        vrf_name: name.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{DropReason, Verdict};

    const CONFIG: &str = r#"
[server]
anycast = "192.0.2.1"
[ipfix]
collector = "127.0.0.1:9"
[[customer]]
name = "first"
prefixes = ["203.0.113.0/24"]
[[customer]]
name = "second"
prefixes = ["198.18.0.0/24"]
"#;

    fn snapshot(text: &str) -> Arc<Snapshot> {
        let loaded = crate::config::parse("test.toml", text).expect("parses");
        Arc::new(Snapshot::build(&loaded).expect("builds"))
    }

    /// The VRF ids of CONFIG's customers, `first` and `second`: their names' (the same
    /// whichever is written first).
    fn ids() -> [u32; 2] {
        let ids = crate::snapshot::vrf_ids(["first", "second"].into_iter());
        assert_eq!(crate::snapshot::vrf_ids(["second", "first"].into_iter()), [ids[1], ids[0]]);
        [ids[0], ids[1]]
    }

    /// Messages keep under `max_message_size` (templates and records alike), and carry
    /// every record once: the sequence numbers of consecutive messages differ by what each
    /// holds.
    #[test]
    fn messages_keep_under_the_configured_size() {
        let mut x = exporter(CONFIG);
        for src in 0..200 {
            x.add(&sample(src, 5, Some(src as u16 % 2)), Instant::now());
        }
        let (_, due) = x.due(true).expect("configured");
        let templates = wire::template_set(32473);
        for max in [512, 1400, 9000] {
            let mut sequence = 7;
            let messages = wire::messages(Some((&templates, 0)), &due, 0, &mut sequence, 1, max);
            assert!(
                messages.iter().all(|m| m.len() <= max),
                "{max}: {:?}",
                messages.iter().map(Vec::len).collect::<Vec<_>>()
            );
            assert!(messages.iter().all(|m| usize::from(u16::from_be_bytes([m[2], m[3]])) == m.len()));
            assert_eq!(sequence, 7 + 200);
            assert_eq!(wire::sequence_of(&messages[0]), 7);
            if max == 512 {
                assert!(messages.len() > 20, "{} messages of 512 bytes for 200 records", messages.len());
            }
        }
    }

    /// A customer's VRF id is its name's: adding a customer before it leaves it as it was
    /// (the place in the file made it another customer's at the collector). Two names whose
    /// hashes meet get different ids, the first in name order keeping its own.
    #[test]
    fn vrf_ids_follow_names_not_places() {
        use crate::snapshot::vrf_ids;
        let before = vrf_ids(["acme", "beta"].into_iter());
        let after = vrf_ids(["aardvark", "acme", "beta"].into_iter());
        assert_eq!(&after[1..], &before[..]);
        assert!(after.iter().all(|&id| id != 0));
        // Two names of one hash, found by trying (a 31-bit hash meets itself within some
        // tens of thousands of names).
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0..)
            .find_map(|i| {
                let name = format!("customer-{i}");
                let id = vrf_ids(std::iter::once(name.as_str()))[0];
                seen.insert(id, name.clone()).map(|other| (other, name))
            })
            .expect("a collision");
        let ids = vrf_ids([b.as_str(), a.as_str()].into_iter());
        assert_ne!(ids[0], ids[1]);
        let own = |n: &str| vrf_ids(std::iter::once(n))[0];
        let (first, _) = if a < b { (&a, &b) } else { (&b, &a) };
        assert!(ids.contains(&own(first)), "the first in name order keeps its hash");
    }

    fn exporter(text: &str) -> Exporter {
        Exporter::fixed(Samples::new(16), snapshot(text))
    }

    fn sample(src: u32, ms: u64, customer: Option<u16>) -> FlowSample {
        FlowSample {
            timestamp_ns: ms * 1_000_000,
            v6: false,
            src: u128::from(src),
            dst: 0xcb00_7109,
            src_port: 1,
            dst_port: 2,
            protocol: 17,
            octets: 100,
            verdict: Verdict::Drop(DropReason::Firewall),
            customer,
            from_customer: None,
            generation: 0,
        }
    }

    /// The routing domains of a flow (RFC 7011's `ingressVRFID`, `egressVRFID`): Internet
    /// to a customer leaves into the customer's; out of a customer's tunnel enters from it,
    /// to the Internet leaves into none, to another customer (a hairpin) into that one's.
    #[test]
    fn a_flow_enters_from_the_customer_it_came_out_of_and_leaves_into_the_one_it_was_for() {
        let mut x = exporter(CONFIG);
        let inbound = sample(1, 5, Some(1));
        let outbound = FlowSample { from_customer: Some(0), ..sample(2, 5, Some(0)) };
        let hairpin = FlowSample { from_customer: Some(0), ..sample(3, 5, Some(1)) };
        let nobody = sample(4, 5, None);
        for s in [inbound, outbound, hairpin, nobody] {
            x.add(&s, Instant::now());
        }
        let (_, due) = x.due(true).expect("configured");
        let mut domains: Vec<(u128, u32, u32)> = due.iter().map(|r| (r.src, r.ingress_vrf, r.egress_vrf)).collect();
        domains.sort();
        let [first, second] = ids();
        assert_eq!(domains, [(1, 0, second), (2, first, 0), (3, first, second), (4, 0, 0)]);
    }

    #[test]
    fn a_flow_reported_while_active_starts_again_at_its_next_packet() {
        let mut x = exporter(CONFIG);
        let now = Instant::now();
        x.add(&sample(1, 1_000, None), now);
        // Reported as active (the timeout as if passed), then a packet 100 s later.
        x.flows.values_mut().for_each(|f| f.since = now - Duration::from_secs(3600));
        let (_, first) = x.due(false).expect("configured");
        assert_eq!((first[0].start_ms, first[0].end_ms, first[0].packets), (1_000, 1_000, 1));
        x.add(&sample(1, 101_000, None), Instant::now());
        let (_, second) = x.due(true).expect("configured");
        assert_eq!((second[0].start_ms, second[0].end_ms, second[0].packets), (101_000, 101_000, 1));
    }

    #[test]
    fn past_the_cache_bound_each_new_flow_is_reported_on_its_own() {
        let mut x = exporter(CONFIG);
        let now = Instant::now();
        let extra = 10;
        for src in 0..(MAX_FLOWS + extra) as u32 {
            x.add(&sample(src, 5, None), now);
        }
        // An existing flow still counts into itself.
        x.add(&sample(0, 6, None), now);
        assert_eq!(x.flows.len(), MAX_FLOWS);
        assert_eq!(x.stats.cache_full.load(Ordering::Relaxed), extra as u64);
        let (_, due) = x.due(true).expect("configured");
        assert_eq!(due.len(), MAX_FLOWS + extra, "every flow reported, those kept and those over");
        assert_eq!(due.iter().map(|r| r.packets).sum::<u64>(), (MAX_FLOWS + extra + 1) as u64);
    }

    #[test]
    fn a_reload_that_renames_customers_reports_open_flows_under_the_old_names() {
        let snapshots = Arc::new(ArcSwap::new(snapshot(CONFIG)));
        let mut x = Exporter::new(Samples::new(16), snapshots.clone());
        x.add(&sample(1, 5, Some(1)), Instant::now());
        // The second customer is now the first.
        let swapped = CONFIG.replace("\"first\"", "\"tmp\"").replace("\"second\"", "\"first\"");
        let reloaded = snapshot(&swapped);
        assert!(relabels(&x.counted_under, &reloaded));
        // What `drain` does on seeing the reload, with the records kept instead of sent.
        let (_, due) = x.due(true).expect("configured");
        assert_eq!((due[0].egress_vrf, due[0].vrf_name.as_str()), (ids()[1], "second"));
        snapshots.store(reloaded);
        x.drain();
        assert!(Arc::ptr_eq(&x.counted_under, &snapshots.load_full()));
        // The same configuration again is no relabelling: flows stay open.
        assert!(!relabels(&snapshot(CONFIG), &snapshot(CONFIG)));
        assert!(relabels(&snapshot(CONFIG), &snapshot(&CONFIG.replace("[ipfix]", "[ipfix]\nsample = 10"))));
    }

    #[test]
    fn a_sample_queued_across_a_reload_is_named_by_the_snapshot_it_was_made_under() {
        let before = snapshot(CONFIG);
        let snapshots = Arc::new(ArcSwap::new(before.clone()));
        let mut x = Exporter::new(Samples::new(16), snapshots.clone());
        // The second customer is now the first; the queue still holds a sample for it.
        let swapped = CONFIG.replace("\"first\"", "\"tmp\"").replace("\"second\"", "\"first\"");
        let after = snapshot(&swapped);
        let made_under = |generation, src| FlowSample { generation, ..sample(src, 5, Some(1)) };
        x.samples.queue.push(made_under(before.generation, 1)).unwrap();
        x.samples.queue.push(made_under(after.generation, 2)).unwrap();
        x.samples.queue.push(made_under(before.generation, 3)).unwrap();
        // Made under a snapshot the exporter never counted under: no name is certain.
        x.samples.queue.push(made_under(0, 4)).unwrap();
        snapshots.store(after.clone());
        assert_eq!(x.drain(), 4);
        assert_eq!(x.counted_under.generation, after.generation);
        assert_eq!(x.stats.late.load(Ordering::Relaxed), 2);
        assert_eq!(x.stats.unnamed.load(Ordering::Relaxed), 1);
        // No flow record counts it: the collector is told it was ignored, with its octets
        // and time, in the domain the exporter counts under.
        let unnamed = Ignored { packets: 1, octets: 100, first_ms: 5, last_ms: 5 };
        assert_eq!(x.ignored.get(&1), Some(&unnamed));
        let (_, due) = x.due(true).expect("configured");
        let mut named: Vec<(u128, u32, &str)> =
            due.iter().map(|r| (r.src, r.egress_vrf, r.vrf_name.as_str())).collect();
        named.sort();
        let [first, second] = ids();
        assert_eq!(named, [(1, second, "second"), (2, first, "first"), (3, second, "second")]);

        // A reload that names every customer alike: a sample from before joins its flow.
        let same = snapshot(&swapped);
        snapshots.store(same.clone());
        x.samples.queue.push(made_under(after.generation, 2)).unwrap();
        x.samples.queue.push(made_under(same.generation, 2)).unwrap();
        x.drain();
        let (_, due) = x.due(true).expect("configured");
        assert_eq!((due.len(), due[0].packets, due[0].vrf_name.as_str()), (1, 2, "first"));
        assert_eq!(x.stats.late.load(Ordering::Relaxed), 2);
    }

    /// Without `[ipfix]` no sample is made or counted, and the snapshots reloads replace
    /// (each a whole configuration) are not kept to name one: four were, for nothing. With
    /// it, the last four are; a reload that removes it lets them go.
    #[test]
    fn replaced_snapshots_are_kept_only_while_they_can_name_a_sample() {
        let without = CONFIG.replace("[ipfix]\ncollector = \"127.0.0.1:9\"\n", "");
        assert!(snapshot(&without).ipfix.is_none());
        let snapshots = Arc::new(ArcSwap::new(snapshot(&without)));
        let mut x = Exporter::new(Samples::new(16), snapshots.clone());
        for _ in 0..6 {
            snapshots.store(snapshot(&without));
            x.drain();
        }
        assert!(x.replaced.is_empty(), "{} kept without [ipfix]", x.replaced.len());
        for _ in 0..6 {
            snapshots.store(snapshot(CONFIG));
            x.drain();
        }
        assert_eq!(x.replaced.len(), RECENT_SNAPSHOTS);
        assert!(x.replaced.iter().all(|s| s.ipfix.is_some()), "the one without [ipfix] is not among them");
        snapshots.store(snapshot(&without));
        x.drain();
        assert!(x.replaced.is_empty(), "[ipfix] removed: nothing left to name");
    }

    #[test]
    fn each_observation_domain_counts_its_own_sequence() {
        let (mut x, collector, snap, config) = exporter_to_local_collector();
        // A sample lost, for a reliability record to go with domain 1's templates.
        x.samples.lose(&sample(9, 5, None));
        let records = |n: u32| (0..n).map(|i| record(&key(i), &flow(), &config, &snap)).collect::<Vec<_>>();
        let sequence_of_next = |x: &mut Exporter, config: &Ipfix, n: u32| {
            x.send(config, &records(n));
            let mut buf = [0u8; 2048];
            let len = collector.recv(&mut buf).expect("a message");
            // RFC 7011 §3.1: version, length, export time, sequence number, domain.
            assert!(len >= 16);
            u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]])
        };
        assert_eq!(sequence_of_next(&mut x, &config, 5), 0);
        let mut other = config.clone();
        other.observation_domain = 2;
        assert_eq!(sequence_of_next(&mut x, &other, 3), 0, "domain 2 starts at 0");
        // Five flow records and the reliability record (RFC 7011 §3.1 counts options data
        // records too).
        assert_eq!(sequence_of_next(&mut x, &config, 1), 6, "domain 1 counts only its own records");
    }

    /// The sets of `message` (RFC 7011 §3.3.2): each one's ID and what follows its header.
    fn sets_of(message: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        let mut at = 16;
        while let Some(h) = message.get(at..at + 4) {
            let len = usize::from(u16::from_be_bytes([h[2], h[3]])).max(4);
            out.push((u16::from_be_bytes([h[0], h[1]]), message.get(at + 4..at + len).unwrap_or_default()));
            at += len;
        }
        out
    }

    /// The reliability records of `message`, read as RFC 7011 §4.2's fields in the order of
    /// template 258: the domain (the scope), the ignored packets and octets, the first and
    /// the last time.
    fn reliability_of(message: &[u8]) -> Vec<(u32, Ignored)> {
        let u64_at = |r: &[u8], at: usize| u64::from_be_bytes(std::array::from_fn(|i| r[at + i]));
        let sets = sets_of(message).into_iter().filter(|(id, _)| *id == wire::TEMPLATE_RELIABILITY);
        sets.flat_map(|(_, body)| body.chunks_exact(36))
            .map(|r| {
                let ignored = Ignored {
                    packets: u64_at(r, 4),
                    octets: u64_at(r, 12),
                    first_ms: u64_at(r, 20),
                    last_ms: u64_at(r, 28),
                };
                (u32::from_be_bytes([r[0], r[1], r[2], r[3]]), ignored)
            })
            .collect()
    }

    /// The next message `collector` receives (a datagram).
    fn next_message(collector: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let len = collector.recv(&mut buf).expect("a message");
        buf[..len].to_vec()
    }

    /// A socket on the loopback to play the collector, whose reads give up after 5 s (a
    /// message that never comes fails the test rather than hanging it).
    fn local_collector() -> UdpSocket {
        let collector = UdpSocket::bind("127.0.0.1:0").expect("a local socket");
        collector.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        collector
    }

    /// An exporter counting under CONFIG, a [`local_collector`], and the snapshot and the
    /// `[ipfix]` settings to send to it with: CONFIG's, the collector's address in them.
    fn exporter_to_local_collector() -> (Exporter, UdpSocket, Arc<Snapshot>, Ipfix) {
        let x = exporter(CONFIG);
        let collector = local_collector();
        let snap = x.counted_under.clone();
        let mut config = snap.ipfix.clone().expect("configured");
        config.collector = collector.local_addr().expect("bound");
        (x, collector, snap, config)
    }

    /// With nothing ignored, the templates go out without a reliability record: RFC 7011
    /// §4.2's times are those of the first and the last packet ignored, and there is none (a
    /// 0 there was read as 1 January 1970 by tshark). The first sample lost brings the
    /// record, with its time.
    #[test]
    fn nothing_ignored_sends_no_reliability_record() {
        let (mut x, collector, snap, config) = exporter_to_local_collector();
        x.send(&config, &[record(&key(1), &flow(), &config, &snap)]);
        let first = next_message(&collector);
        // The template set, the options template set, the flow record's data set: no 258.
        let ids: Vec<u16> = sets_of(&first).iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2, 3, wire::TEMPLATE_V4]);
        assert_eq!(reliability_of(&first), []);
        // Nothing sent while nothing is due.
        x.send(&config, &[]);
        x.samples.lose(&sample(2, 1_700_000_000_123, None));
        x.send(&config, &[]);
        let told = Ignored { packets: 1, octets: 100, first_ms: 1_700_000_000_123, last_ms: 1_700_000_000_123 };
        assert_eq!(reliability_of(&next_message(&collector)), [(1, told)]);
    }

    /// Each observation domain is told its own ignored samples (RFC 7011 §4.2, scoped by the
    /// domain): after a reload to domain 2, those lost under domain 1 are not domain 2's (they
    /// were told as domain 2's, which had lost none), and domain 1's go on from its own.
    #[test]
    fn each_observation_domain_is_told_its_own_ignored_samples() {
        let (mut x, collector, snap, first) = exporter_to_local_collector();
        let mut second = first.clone();
        second.observation_domain = 2;
        let one = |ms| Ignored { packets: 1, octets: 100, first_ms: ms, last_ms: ms };
        let told = |x: &mut Exporter, config: &Ipfix| {
            x.send(config, &[record(&key(1), &flow(), config, &snap)]);
            reliability_of(&next_message(&collector))
        };
        x.samples.lose(&sample(1, 5, None));
        assert_eq!(told(&mut x, &first), [(1, one(5))]);
        assert_eq!(told(&mut x, &second), [], "domain 2 has ignored nothing");
        x.samples.lose(&sample(2, 7, None));
        assert_eq!(told(&mut x, &second), [(2, one(7))]);
        // Back to domain 1 (its templates again, and its record with them): its own count.
        assert_eq!(told(&mut x, &first), [(1, one(5))]);
    }

    /// A reload to another observation domain reports the open flows in the domain that
    /// metered them (RFC 7011 §3.1), before it counts under the new one: they went out in the
    /// new domain's messages.
    #[test]
    fn a_reload_to_another_observation_domain_reports_open_flows_in_the_old_one() {
        let collector = local_collector();
        let address = collector.local_addr().expect("bound").to_string();
        let to_collector = CONFIG.replace("127.0.0.1:9", &address);
        let snapshots = Arc::new(ArcSwap::new(snapshot(&to_collector)));
        let mut x = Exporter::new(Samples::new(16), snapshots.clone());
        x.add(&sample(1, 5, None), Instant::now());
        let moved = snapshot(&to_collector.replace("[ipfix]", "[ipfix]\nobservation_domain = 2"));
        assert!(relabels(&x.counted_under, &moved));
        snapshots.store(moved);
        x.tick(true);
        let domain = |m: &[u8]| u32::from_be_bytes([m[12], m[13], m[14], m[15]]);
        let message = next_message(&collector);
        let flows = sets_of(&message).iter().any(|(id, _)| *id == wire::TEMPLATE_V4);
        assert_eq!((domain(&message), flows), (1, true), "the open flow, in domain 1");
        assert!(x.flows.is_empty());
    }

    /// A refused first message, which carries the templates, ends the batch: the messages
    /// after it went out with data sets the collector could not read, counted as sent. A
    /// later message refused is only itself.
    #[test]
    fn data_whose_templates_were_refused_is_not_sent() {
        let snap = exporter(CONFIG).counted_under.clone();
        let config = snap.ipfix.clone().expect("configured");
        let records: Vec<FlowRecord> = (0..40).map(|i| record(&key(i), &flow(), &config, &snap)).collect();
        let mut sequence = 0;
        let messages = wire::messages(Some((&wire::template_set(0), 0)), &records, 0, &mut sequence, 1, 512);
        assert!(messages.len() >= 3, "{} messages", messages.len());
        let refused = std::io::Error::from(std::io::ErrorKind::OutOfMemory);
        let mut sent = 0;
        let first_refused = deliver(&messages, sequence, true, |_| {
            sent += 1;
            if sent == 1 { Err(std::io::Error::from(refused.kind())) } else { Ok(()) }
        });
        assert_eq!(sent, 1, "nothing sent after the templates' message");
        let n = messages.len() as u64;
        assert_eq!(first_refused, Delivered { messages: 0, refused: n, records: 0, templates: false, first: false });
        let mut sent = 0;
        let second_refused = deliver(&messages, sequence, true, |_| {
            sent += 1;
            if sent == 2 { Err(std::io::Error::from(refused.kind())) } else { Ok(()) }
        });
        let lost = wire::sequence_of(&messages[2]) - wire::sequence_of(&messages[1]);
        let records = u64::from(sequence - lost);
        assert_eq!(second_refused, Delivered { messages: n - 1, refused: 1, records, templates: true, first: true });
    }

    /// A message the socket refused took its templates and records with it: neither counts
    /// as sent, and the next message carries the templates.
    #[test]
    fn templates_lost_with_their_message_go_out_with_the_next() {
        let mut x = exporter(CONFIG);
        // A sample lost, for a reliability record to go with the templates.
        x.samples.lose(&sample(9, 5, None));
        let snap = x.counted_under.clone();
        let mut config = snap.ipfix.clone().expect("configured");
        // Linux refuses a broadcast destination to a socket without SO_BROADCAST (EACCES).
        config.collector = "255.255.255.255:9".parse().expect("an address");
        let records: Vec<FlowRecord> = (0..3).map(|i| record(&key(i), &flow(), &config, &snap)).collect();
        x.send(&config, &records);
        assert_eq!(x.stats.send_errors.load(Ordering::Relaxed), 1);
        assert_eq!((x.stats.records.load(Ordering::Relaxed), x.stats.messages.load(Ordering::Relaxed)), (0, 0));
        assert!(x.templates_sent.is_none(), "the templates are still due");
        let collector = local_collector();
        config.collector = collector.local_addr().expect("bound");
        x.send(&config, &records[..1]);
        let mut buf = [0u8; 2048];
        let len = collector.recv(&mut buf).expect("a message");
        // The first set after the 16-byte header is the template set (set id 2).
        assert!(len > 20 && u16::from_be_bytes([buf[16], buf[17]]) == 2, "{:?}", &buf[..len.min(24)]);
        assert_eq!(x.stats.records.load(Ordering::Relaxed), 1);
        // RFC 7011 §3.1: the sequence counts the records of the lost message too (a collector
        // reads the gap as loss): its three flow records and its reliability record.
        assert_eq!(wire::sequence_of(&buf[..len]), 4);
    }

    /// Templates defined anew (another enterprise number) come from another source port, a
    /// new Transport Session (RFC 7011 §8.4); the same definitions again, from the same one.
    #[test]
    fn templates_defined_anew_come_from_a_new_transport_session() {
        let (mut x, collector, snap, mut config) = exporter_to_local_collector();
        let records: Vec<FlowRecord> = (0..2).map(|i| record(&key(i), &flow(), &config, &snap)).collect();
        let from = |x: &mut Exporter, config: &Ipfix| {
            x.send(config, &records);
            let mut buf = [0u8; 2048];
            collector.recv_from(&mut buf).expect("a message").1
        };
        let first = from(&mut x, &config);
        assert_eq!(from(&mut x, &config), first, "the same session");
        config.enterprise_number += 1;
        assert_ne!(from(&mut x, &config), first, "a new session for the new definitions");
    }

    fn key(i: u32) -> FlowKey {
        FlowKey::of(&sample(i, 0, None))
    }

    fn flow() -> Flow {
        let now = Instant::now();
        Flow { packets: 1, octets: 100, start_ms: 0, end_ms: 0, since: now, seen: now }
    }
}
