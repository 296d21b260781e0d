//! Metrics: the counters the workers publish, encoded at scrape time in the Prometheus /
//! OpenMetrics text format (prometheus-client) and served over HTTP (tiny_http) on a local
//! address, off the data path.
//!
//! Nothing here touches a worker: workers publish copies of their counters and latency
//! histograms into their [`WorkerReport`]s a few times a second, and a scrape reads those,
//! the snapshot (for customer and tunnel names, and tunnel health), the XDP program's
//! counters and the reload and drop-capture counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::dropcap::DropCapture;
use crate::pipeline::flows::FlowEvent;
use crate::pipeline::stats::{CustomerStats, WorkerStats};
use crate::pipeline::{ConsumeReason, DropReason, PassReason, TxReason, Verdict};
use crate::snapshot::Snapshot;
use crate::worker::WorkerReport;

/// Where `transitd run` serves metrics unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9469";

/// The OpenMetrics content type Prometheus asks for.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the batch-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 14] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 1e-1];

/// Quantiles of the recent window reported as gauges.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// Configuration reloads, counted by whoever applies them.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads applied.
    pub applied: AtomicU64,
    /// Reloads rejected (the running configuration stayed).
    pub rejected: AtomicU64,
    /// Unix time (seconds) of the last applied configuration, start included.
    pub applied_at: AtomicU64,
}

impl ReloadStats {
    /// Counts an applied configuration now.
    pub fn applied_now(&self, initial: bool) {
        if !initial {
            self.applied.fetch_add(1, Ordering::Relaxed);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.applied_at.store(now, Ordering::Relaxed);
    }
}

/// BGP announcements ([bgp]), as the supervisor last told the guard.
#[derive(Debug, Default)]
pub struct BgpStats {
    /// Whether [bgp] is configured (nothing is served about BGP otherwise).
    pub configured: AtomicBool,
    /// Prefixes announced.
    pub announced: AtomicU64,
    /// Everything is withdrawn because a worker stalled or the XDP program is gone.
    pub withdrawn: AtomicBool,
}

/// Everything a scrape reads.
#[derive(Debug)]
pub struct Sources {
    /// One per worker.
    pub workers: Vec<Arc<Mutex<WorkerReport>>>,
    /// The running snapshot.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The XDP program's counters, refreshed by the main loop.
    pub xdp: Mutex<transitd_bpf::XdpStats>,
    /// Configuration reloads.
    pub reloads: ReloadStats,
    /// BGP announcements.
    pub bgp: BgpStats,
    /// The IPFIX exporter's counters and the samples queue, if an exporter runs.
    pub ipfix: Option<(Arc<crate::ipfix::exporter::ExportStats>, Arc<crate::ipfix::Samples>)>,
    /// The drop capture, if one runs.
    pub capture: Option<Arc<DropCapture>>,
    /// The exception path to the host, if there is one.
    pub punt: Option<Arc<crate::punt::PuntDevice>>,
    /// Process start (Unix seconds).
    pub started: u64,
}

#[derive(Debug)]
struct TransitdCollector(Arc<Sources>);

/// A label value escaped as the exposition format requires (backslash, double quote and
/// line feed; OpenMetrics §"ABNF"): prometheus-client writes values as given, and names come
/// from configuration files, so an unescaped quote or newline could forge samples.
#[derive(Debug)]
struct Escaped<'a>(&'a str);

impl prometheus_client::encoding::EncodeLabelValue for Escaped<'_> {
    fn encode(&self, out: &mut prometheus_client::encoding::LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            match c {
                '\\' => out.write_str("\\\\")?,
                '"' => out.write_str("\\\"")?,
                '\n' => out.write_str("\\n")?,
                c => out.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `labels` with every value escaped.
fn escaped<'a>(labels: &[(&'static str, &'a str)]) -> Vec<(&'static str, Escaped<'a>)> {
    labels.iter().map(|&(k, v)| (k, Escaped(v))).collect()
}

/// Encodes one sample of a counter or gauge with `labels`.
fn sample(
    family: &mut MetricEncoder<'_>,
    labels: &[(&'static str, &str)],
    value: u64,
    kind: MetricType,
) -> Result<(), std::fmt::Error> {
    let labels = escaped(labels);
    let mut m = family.encode_family(&labels)?;
    match kind {
        MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&value, None),
        _ => m.encode_gauge(&(value as i64)),
    }
}

impl Collector for TransitdCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let src = &self.0;
        let reports: Vec<WorkerReport> = src.workers.iter().filter_map(|w| w.lock().ok().map(|r| r.clone())).collect();
        let snap = src.snapshot.load();
        let workers: Vec<String> = reports.iter().map(|r| format!("q{}", r.queue)).collect();

        let mut info =
            enc.encode_descriptor("transitd_build", "The running transitd's version", None, MetricType::Info)?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        let mut m = enc.encode_descriptor(
            "transitd_start_time_seconds",
            "Unix time transitd started",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&(src.started as i64))?;

        type Field = fn(&WorkerStats) -> u64;
        let per_worker: [(&str, &str, Field); 4] = [
            ("transitd_rx_packets", "Frames received", |s| s.rx_frames),
            ("transitd_rx_bytes", "Bytes received", |s| s.rx_bytes),
            ("transitd_tx_packets", "Frames transmitted (spilled fragments and probes included)", |s| s.tx_frames),
            ("transitd_tx_bytes", "Bytes transmitted", |s| s.tx_bytes),
        ];
        for (name, help, field) in per_worker {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (w, r) in workers.iter().zip(&reports) {
                sample(&mut m, &[("worker", w.as_str())], field(&r.stats), MetricType::Counter)?;
            }
        }

        for (name, help, bytes) in [
            ("transitd_packets", "Frames by verdict (tx, pass, drop, consumed) and its named reason", false),
            ("transitd_bytes", "Bytes by verdict and reason (as sent for tx, as received otherwise)", true),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (w, r) in workers.iter().zip(&reports) {
                let s = &r.stats;
                let pick = |frames: &[u64], octets: &[u64], i: usize| if bytes { octets[i] } else { frames[i] };
                let rows = TxReason::ALL
                    .iter()
                    .map(|x| ("tx", x.name(), pick(&s.tx, &s.tx_bytes_by, x.index())))
                    .chain(PassReason::ALL.iter().map(|x| ("pass", x.name(), pick(&s.pass, &s.pass_bytes, x.index()))))
                    .chain(DropReason::ALL.iter().map(|x| ("drop", x.name(), pick(&s.drop, &s.drop_bytes, x.index()))))
                    .chain(
                        ConsumeReason::ALL
                            .iter()
                            .map(|x| ("consumed", x.name(), pick(&s.consumed, &s.consumed_bytes, x.index()))),
                    );
                for (verdict, reason, n) in rows {
                    let labels = [("worker", w.as_str()), ("verdict", verdict), ("reason", reason)];
                    sample(&mut m, &labels, n, MetricType::Counter)?;
                }
            }
        }

        // Customers and tunnels: summed over workers, each worker's counters named by the
        // snapshot they were counted under.
        let mut customers: Vec<(String, CustomerStats)> = Vec::new();
        let mut tunnels: Vec<(String, String, crate::pipeline::stats::TunnelStats)> = Vec::new();
        let mut customer_at: HashMap<String, usize> = HashMap::new();
        let mut tunnel_at: HashMap<String, usize> = HashMap::new();
        for r in &reports {
            let Some(s) = &r.snapshot else { continue };
            for (c, counts) in s.customers.iter().zip(&r.stats.customers) {
                let i = *customer_at.entry(c.name.clone()).or_insert_with(|| {
                    customers.push((c.name.clone(), Default::default()));
                    customers.len() - 1
                });
                crate::pipeline::stats::merge_customer(&mut customers[i].1, counts);
            }
            for (t, counts) in s.tunnels.iter().zip(&r.stats.tunnels) {
                let customer = s.customers.get(usize::from(t.customer)).map_or("", |c| c.name.as_str());
                let i = *tunnel_at.entry(t.name.clone()).or_insert_with(|| {
                    tunnels.push((t.name.clone(), customer.to_string(), Default::default()));
                    tunnels.len() - 1
                });
                tunnels[i].2.merge(counts);
            }
        }
        for (name, help, bytes) in [
            ("transitd_customer_packets", "A customer's frames by verdict", false),
            ("transitd_customer_bytes", "A customer's bytes (as received) by verdict", true),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (customer, counts) in &customers {
                for (verdict, t) in Verdict::KINDS.iter().zip(counts) {
                    let labels = [("customer", customer.as_str()), ("verdict", verdict)];
                    sample(&mut m, &labels, if bytes { t.bytes } else { t.packets }, MetricType::Counter)?;
                }
            }
        }
        for (name, help, bytes) in [
            ("transitd_tunnel_packets", "Frames received from (GRE) or sent into a customer tunnel", false),
            ("transitd_tunnel_bytes", "Bytes received from or sent into a customer tunnel", true),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (tunnel, customer, t) in &tunnels {
                for (direction, x) in [("received", t.received), ("sent", t.sent)] {
                    let labels =
                        [("tunnel", tunnel.as_str()), ("customer", customer.as_str()), ("direction", direction)];
                    sample(&mut m, &labels, if bytes { x.bytes } else { x.packets }, MetricType::Counter)?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "transitd_tunnel_received_dropped_packets",
            "Frames from a customer tunnel that were dropped",
            None,
            MetricType::Counter,
        )?;
        for (tunnel, customer, t) in &tunnels {
            let labels = [("tunnel", tunnel.as_str()), ("customer", customer.as_str())];
            sample(&mut m, &labels, t.received_dropped, MetricType::Counter)?;
        }
        let mut m = enc.encode_descriptor(
            "transitd_tunnel_up",
            "1 while a health-checked tunnel answers its probes (tunnels without [customer.tunnel] interface are not checked)",
            None,
            MetricType::Gauge,
        )?;
        for (i, t) in snap.tunnels.iter().enumerate().filter(|(_, t)| t.interface.is_some()) {
            let customer = snap.customers.get(usize::from(t.customer)).map_or("", |c| c.name.as_str());
            let labels = [("tunnel", t.name.as_str()), ("customer", customer)];
            sample(&mut m, &labels, u64::from(snap.health.is_up(i as u16)), MetricType::Gauge)?;
        }

        let mut m = enc.encode_descriptor(
            "transitd_rule_hits",
            "Frames each rule decided or (monitor mode) would have; restart at a reload",
            None,
            MetricType::Counter,
        )?;
        let mut rule_hits = WorkerStats::default();
        for r in reports.iter().filter(|r| r.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snap))) {
            rule_hits.add(&r.stats);
        }
        for c in &snap.customers {
            for (kind, rules, base, hits) in [
                ("firewall", c.firewall.rules(), c.rule_base, &rule_hits.rule_hits),
                ("egress", c.egress.rules(), c.egress_base, &rule_hits.rule_hits),
                ("dos", c.dos.rules(), c.dos_base, &rule_hits.dos_hits),
            ] {
                for (i, rule) in rules.iter().enumerate() {
                    let n = hits.get(base as usize + i).copied().unwrap_or(0);
                    let labels = [("customer", c.name.as_str()), ("kind", kind), ("rule", rule.name.as_str())];
                    sample(&mut m, &labels, n, MetricType::Counter)?;
                }
            }
        }
        for (i, rule) in snap.dos.rules.rules().iter().enumerate() {
            let n = rule_hits.dos_hits.get(i).copied().unwrap_or(0);
            sample(&mut m, &[("customer", ""), ("kind", "dos"), ("rule", rule.name.as_str())], n, MetricType::Counter)?;
        }

        let mut m = enc.encode_descriptor(
            "transitd_tcp_protection_packets",
            "TCP packets each [tcp_protection] rule covered, by what flow tracking made of them (out_of_state_*: dropped in mitigate mode, only counted in monitor mode); restart at a reload",
            None,
            MetricType::Counter,
        )?;
        for (i, rule) in snap.tcp.rules.iter().enumerate() {
            let customer =
                rule.customer.and_then(|c| snap.customers.get(usize::from(c))).map_or("", |c| c.name.as_str());
            let mode = if rule.mitigate { "mitigate" } else { "monitor" };
            for event in FlowEvent::ALL {
                let n = rule_hits.tcp_hits.get(i).map_or(0, |h| h[event.index()]);
                let labels =
                    [("customer", customer), ("rule", rule.name.as_str()), ("mode", mode), ("event", event.name())];
                sample(&mut m, &labels, n, MetricType::Counter)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "transitd_batch_duration_seconds",
            "Time a worker spends on one batch: receive, process, transmit",
            None,
            MetricType::Histogram,
        )?;
        for (w, r) in workers.iter().zip(&reports) {
            let labels = escaped(&[("worker", w)]);
            LatencyHistogram(&r.latency).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "transitd_batch_duration_recent_seconds",
            "Quantiles of the batch duration over the last 10 s window",
            None,
            MetricType::Gauge,
        )?;
        for (w, r) in workers.iter().zip(&reports) {
            for q in QUANTILES {
                let v = r.latency_window.value_at_quantile(q) as f64 / 1e9;
                let qs = q.to_string();
                let labels = escaped(&[("worker", w), ("quantile", &qs)]);
                m.encode_family(&labels)?.encode_gauge(&v)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "transitd_umem_frames",
            "Where each worker's UMEM frames are",
            None,
            MetricType::Gauge,
        )?;
        for (w, r) in workers.iter().zip(&reports) {
            for (place, n) in [("free", r.io.frames.free), ("fill", r.io.frames.in_fill), ("tx", r.io.frames.in_tx)] {
                sample(&mut m, &[("worker", w.as_str()), ("where", place)], n, MetricType::Gauge)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "transitd_afxdp_events",
            "AF_XDP socket events per worker",
            None,
            MetricType::Counter,
        )?;
        for (w, r) in workers.iter().zip(&reports) {
            let io = &r.io;
            for (event, n) in [
                ("sent", io.tx),
                ("completed", io.completed),
                ("tx_ring_full", io.tx_ring_full),
                ("backpressure", io.backpressure),
                ("multi_buffer", io.multi_buffer),
                ("spill_no_frame", io.spill_no_frame),
                ("bad_descriptor", io.bad_descriptors),
                ("bad_tx", io.bad_tx),
                ("kick", io.kicks),
                ("kick_error", io.kick_errors),
            ] {
                sample(&mut m, &[("worker", w.as_str()), ("event", event)], n, MetricType::Counter)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "transitd_afxdp_kernel_drops",
            "What the kernel counts for each worker's AF_XDP socket (XDP_STATISTICS)",
            None,
            MetricType::Counter,
        )?;
        for (w, r) in workers.iter().zip(&reports) {
            let k = &r.io.socket;
            for (reason, n) in [
                ("rx_ring_full", k.rx_ring_full),
                ("fill_ring_empty", k.rx_fill_ring_empty),
                ("rx_dropped", k.rx_dropped),
                ("rx_invalid_descs", k.rx_invalid_descs),
                ("tx_invalid_descs", k.tx_invalid_descs),
                ("tx_ring_empty", k.tx_ring_empty),
            ] {
                sample(&mut m, &[("worker", w.as_str()), ("reason", reason)], n, MetricType::Counter)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "transitd_afxdp_zero_copy",
            "1 while the worker's socket is bound in zero-copy mode, 0 in copy mode",
            None,
            MetricType::Gauge,
        )?;
        for (w, r) in workers.iter().zip(&reports) {
            sample(&mut m, &[("worker", w.as_str())], u64::from(r.io.zero_copy), MetricType::Gauge)?;
        }

        let xdp = src.xdp.lock().map(|x| *x).unwrap_or_default();
        let mut m = enc.encode_descriptor(
            "transitd_xdp_packets",
            "Frames the XDP program decided: to a socket, or to the kernel",
            None,
            MetricType::Counter,
        )?;
        for (action, n) in [
            ("redirected", xdp.redirected),
            ("passed", xdp.passed),
            ("no_socket", xdp.no_socket),
            ("egress_local", xdp.egress_local),
            ("backbone_local", xdp.backbone_local),
            ("gre_not_ours", xdp.gre_not_ours),
        ] {
            sample(&mut m, &[("action", action)], n, MetricType::Counter)?;
        }

        let mut m = enc.encode_descriptor(
            "transitd_config_reloads",
            "Configuration reloads, applied or rejected (the running one stays)",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [("applied", &src.reloads.applied), ("rejected", &src.reloads.rejected)] {
            sample(&mut m, &[("result", result)], n.load(Ordering::Relaxed), MetricType::Counter)?;
        }
        let mut m = enc.encode_descriptor(
            "transitd_config_applied_time_seconds",
            "Unix time the running configuration was applied",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&(src.reloads.applied_at.load(Ordering::Relaxed) as i64))?;

        if let Some((x, samples)) = &src.ipfix
            && snap.ipfix.is_some()
        {
            let mut m = enc.encode_descriptor(
                "transitd_ipfix",
                "IPFIX export: flow records and messages sent, messages the socket refused, samples lost to a full queue",
                None,
                MetricType::Counter,
            )?;
            for (what, n) in [
                ("records", &x.records),
                ("messages", &x.messages),
                ("send_errors", &x.send_errors),
                ("samples_lost", &samples.lost),
            ] {
                sample(&mut m, &[("what", what)], n.load(Ordering::Relaxed), MetricType::Counter)?;
            }
        }

        if src.bgp.configured.load(Ordering::Relaxed) {
            let mut m = enc.encode_descriptor(
                "transitd_bgp_announced_prefixes",
                "Prefixes this server has BIRD announce ([bgp])",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&(src.bgp.announced.load(Ordering::Relaxed) as i64))?;
            let mut m = enc.encode_descriptor(
                "transitd_bgp_withdrawn",
                "1 while every announcement is withdrawn because a worker stalled or the XDP program is gone",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&i64::from(src.bgp.withdrawn.load(Ordering::Relaxed)))?;
        }

        if let Some(punt) = &src.punt {
            let p = &punt.stats;
            let mut m = enc.encode_descriptor(
                "transitd_punt_packets",
                "Frames the XDP program redirected and the pipeline passed, handed to the host (or not, and why)",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in [("punted", &p.punted), ("over_rate", &p.over_rate), ("failed", &p.failed)] {
                sample(&mut m, &[("result", result)], n.load(Ordering::Relaxed), MetricType::Counter)?;
            }
        }
        if let Some(cap) = &src.capture {
            let s = &cap.stats;
            let mut m = enc.encode_descriptor(
                "transitd_drop_capture_packets",
                "Frames offered to the drop capture: written, or not and why",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in [
                ("written", &s.written),
                ("over_rate", &s.over_rate),
                ("no_record", &s.no_record),
                ("over_size", &s.over_size),
                ("write_failed", &s.write_failed),
            ] {
                sample(&mut m, &[("result", result)], n.load(Ordering::Relaxed), MetricType::Counter)?;
            }
            let mut m = enc.encode_descriptor(
                "transitd_drop_capture_file_bytes",
                "Size of the drop capture",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&(s.bytes.load(Ordering::Relaxed) as i64))?;
        }
        Ok(())
    }
}

/// An hdrhistogram as a Prometheus histogram with [`LATENCY_BUCKETS`].
#[derive(Debug)]
struct LatencyHistogram<'a>(&'a Histogram<u64>);

impl EncodeMetric for LatencyHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let h = self.0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        let mut below = 0u64;
        let mut seen = 0u64;
        for le in LATENCY_BUCKETS {
            let upper = (le * 1e9) as u64;
            let cumulative = h.count_between(0, upper);
            buckets.push((le, cumulative - below));
            below = cumulative;
            seen = cumulative;
        }
        buckets.push((f64::MAX, h.len() - seen));
        let sum =
            h.iter_recorded().map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64).sum::<f64>() / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, h.len(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The text a scrape returns.
pub fn render(sources: &Arc<Sources>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(TransitdCollector(sources.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Serves `GET /metrics` on `addr` until `stop` is set.
pub fn serve(
    addr: SocketAddr,
    sources: Arc<Sources>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let server = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?;
    let handle = std::thread::Builder::new().name("transitd-metrics".into()).spawn(move || {
        // Failed responses (a scraper that hung up, say) are counted and logged at most once
        // a minute, so that neither a broken client nor a broken listener floods the log.
        let mut failed = 0u64;
        let mut logged = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let request = match server.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!("transitd: metrics server: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let response = match (request.method(), request.url()) {
                (tiny_http::Method::Get, "/metrics") => {
                    let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE).ok();
                    let r = tiny_http::Response::from_string(render(&sources));
                    match header {
                        Some(h) => r.with_header(h),
                        None => r,
                    }
                }
                (tiny_http::Method::Get, "/") => {
                    tiny_http::Response::from_string("transitd: metrics at /metrics\n".to_string())
                }
                _ => tiny_http::Response::from_string("not found: try /metrics\n".to_string()).with_status_code(404),
            };
            if let Err(e) = request.respond(response) {
                failed += 1;
                if logged.elapsed() >= Duration::from_secs(60) {
                    eprintln!("transitd: metrics: {failed} responses failed so far (the last: {e})");
                    logged = std::time::Instant::now();
                }
            }
        }
    })?;
    Ok(handle)
}

/// Scrapes `addr`'s `/metrics` (HTTP/1.0, 5 s timeouts).
pub fn fetch(addr: SocketAddr) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let timeout = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| anyhow::anyhow!("{addr}: {e} (is `transitd run` running, with --metrics {addr}?)"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) =
        response.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("{addr}: not an HTTP response"))?;
    let status = head.lines().next().unwrap_or("");
    anyhow::ensure!(status.split_whitespace().nth(1) == Some("200"), "{addr}: {status}");
    Ok(body.to_string())
}

/// One sample of the text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, suffix (`_total`, `_bucket`, ...) included.
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, or "".
    pub fn label(&self, key: &str) -> &str {
        self.labels.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }
}

/// A sample's name and labels: what identifies it across scrapes.
type SampleKey = (String, Vec<(String, String)>);

/// Parses the samples of the text format (comments skipped; escapes in label values undone).
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let mut end = body.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        // A quoted value follows.
                        let _ = chars.next();
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '"' => break,
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => {}
                                },
                                c => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let Some(value) = rest.split_whitespace().next() else { continue };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// A report for people from a scrape; with `before` (an earlier scrape and the seconds
/// between), counters are shown as rates per second.
pub fn for_people(addr: SocketAddr, text: &str, before: Option<(&str, f64)>) -> String {
    use std::fmt::Write as _;
    let now = parse(text);
    let then: Option<(HashMap<SampleKey, f64>, f64)> =
        before.map(|(t, dt)| (parse(t).into_iter().map(|o| ((o.name, o.labels), o.value)).collect(), dt));
    // A counter's total, or its rate over the interval.
    let value = |s: &Sample| -> f64 {
        match &then {
            Some((old, dt)) => {
                let was = old.get(&(s.name.clone(), s.labels.clone())).copied().unwrap_or(0.0);
                (s.value - was).max(0.0) / dt
            }
            None => s.value,
        }
    };
    let find = |name: &'static str| now.iter().filter(move |s| s.name == name);
    let one = |name: &'static str| find(name).next().map_or(0.0, |s| s.value);
    let unit = if then.is_some() { "/s" } else { "" };
    let mut out = String::new();
    let version = find("transitd_build_info").next().map_or("?", |s| s.label("version")).to_string();
    let started = one("transitd_start_time_seconds");
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let _ = writeln!(
        out,
        "transitd {version} at {addr}, up {}; configuration reloads: {} applied, {} rejected",
        human_duration(wall - started),
        find("transitd_config_reloads_total").find(|s| s.label("result") == "applied").map_or(0.0, |s| s.value),
        find("transitd_config_reloads_total").find(|s| s.label("result") == "rejected").map_or(0.0, |s| s.value),
    );
    if let Some((_, dt)) = &then {
        let _ = writeln!(out, "(rates per second over {dt} s)");
    }

    let _ = writeln!(
        out,
        "\n{:<8} {:>14} {:>16} {:>14} {:>16}   batch p50 / p99 / max (last 10 s)",
        "worker",
        format!("rx pkts{unit}"),
        format!("rx bytes{unit}"),
        format!("tx pkts{unit}"),
        format!("tx bytes{unit}")
    );
    for s in find("transitd_rx_packets_total") {
        let w = s.label("worker");
        let of = |name: &str| now.iter().find(|x| x.name == name && x.label("worker") == w).map_or(0.0, value);
        let q = |quantile: &str| {
            now.iter()
                .find(|x| {
                    x.name == "transitd_batch_duration_recent_seconds"
                        && x.label("worker") == w
                        && x.label("quantile") == quantile
                })
                .map_or(0.0, |x| x.value)
        };
        let _ = writeln!(
            out,
            "{w:<8} {:>14.0} {:>16.0} {:>14.0} {:>16.0}   {} / {} / {}",
            value(s),
            of("transitd_rx_bytes_total"),
            of("transitd_tx_packets_total"),
            of("transitd_tx_bytes_total"),
            human_seconds(q("0.5")),
            human_seconds(q("0.99")),
            human_seconds(q("1")),
        );
    }

    let _ = writeln!(out, "\nverdicts (all workers, non-zero)");
    let mut verdicts: Vec<(String, f64)> = Vec::new();
    for s in find("transitd_packets_total") {
        let key = format!("{} {}", s.label("verdict"), s.label("reason"));
        match verdicts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += value(s),
            None => verdicts.push((key, value(s))),
        }
    }
    for (k, v) in verdicts.iter().filter(|(_, v)| *v > 0.0) {
        let _ = writeln!(out, "  {k:<34} {v:>14.0}");
    }

    let customers: Vec<&str> = {
        let mut c: Vec<&str> = find("transitd_customer_packets_total").map(|s| s.label("customer")).collect();
        c.dedup();
        c
    };
    if !customers.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<20} {:>14} {:>14} {:>14} {:>14}   (packets{unit})",
            "customer", "tx", "pass", "drop", "consumed"
        );
        // One pass over the samples, so that many customers cost linear time.
        let by_verdict: HashMap<(&str, &str), f64> = find("transitd_customer_packets_total")
            .map(|s| ((s.label("customer"), s.label("verdict")), value(s)))
            .collect();
        for c in customers {
            let of = |verdict: &str| by_verdict.get(&(c, verdict)).copied().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "{c:<20} {:>14.0} {:>14.0} {:>14.0} {:>14.0}",
                of("tx"),
                of("pass"),
                of("drop"),
                of("consumed")
            );
        }
    }

    let tunnels: Vec<(&str, &str)> = {
        let mut t: Vec<(&str, &str)> =
            find("transitd_tunnel_packets_total").map(|s| (s.label("tunnel"), s.label("customer"))).collect();
        t.dedup();
        t
    };
    if !tunnels.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<20} {:<14} {:<8} {:>14} {:>14} {:>14}   (packets{unit})",
            "tunnel", "customer", "health", "received", "dropped", "sent"
        );
        let packets: HashMap<(&str, &str), f64> = find("transitd_tunnel_packets_total")
            .map(|s| ((s.label("tunnel"), s.label("direction")), value(s)))
            .collect();
        let dropped: HashMap<&str, f64> =
            find("transitd_tunnel_received_dropped_packets_total").map(|s| (s.label("tunnel"), value(s))).collect();
        let up: HashMap<&str, f64> = find("transitd_tunnel_up").map(|s| (s.label("tunnel"), s.value)).collect();
        for (t, c) in tunnels {
            let health = match up.get(t) {
                Some(v) if *v > 0.0 => "up",
                Some(_) => "DOWN",
                None => "-",
            };
            let _ = writeln!(
                out,
                "{t:<20} {c:<14} {health:<8} {:>14.0} {:>14.0} {:>14.0}",
                packets.get(&(t, "received")).copied().unwrap_or(0.0),
                dropped.get(t).copied().unwrap_or(0.0),
                packets.get(&(t, "sent")).copied().unwrap_or(0.0),
            );
        }
    }

    let mut sockets = String::new();
    for s in find("transitd_afxdp_zero_copy") {
        let w = s.label("worker");
        let event = |e: &str| {
            find("transitd_afxdp_events_total")
                .find(|x| x.label("worker") == w && x.label("event") == e)
                .map_or(0.0, value)
        };
        let drops: Vec<String> = find("transitd_afxdp_kernel_drops_total")
            .filter(|x| x.label("worker") == w && x.value > 0.0)
            .map(|x| format!("{} {:.0}", x.label("reason"), value(x)))
            .collect();
        let _ = writeln!(
            sockets,
            "{w:<8} {:<10} sent {:.0} completed {:.0} backpressure {:.0}; kernel drops: {}",
            if s.value > 0.0 { "zero-copy" } else { "copy" },
            event("sent"),
            event("completed"),
            event("backpressure"),
            if drops.is_empty() { "none".to_string() } else { drops.join(", ") }
        );
    }
    if !sockets.is_empty() {
        let _ = write!(out, "\nAF_XDP sockets{}\n{sockets}", if unit.is_empty() { "" } else { " (per second)" });
    }
    let xdp: Vec<String> =
        find("transitd_xdp_packets_total").map(|s| format!("{} {:.0}", s.label("action"), value(s))).collect();
    let _ = writeln!(out, "\nxdp: {}", xdp.join(", "));
    let capture: Vec<String> =
        find("transitd_drop_capture_packets_total").map(|s| format!("{} {:.0}", s.label("result"), value(s))).collect();
    if !capture.is_empty() {
        let _ =
            writeln!(out, "drop capture: {} ({} bytes)", capture.join(", "), one("transitd_drop_capture_file_bytes"));
    }
    out
}

fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86400, s / 3600 % 24),
    }
}

fn human_seconds(v: f64) -> String {
    if v <= 0.0 {
        "-".to_string()
    } else if v < 1e-3 {
        format!("{:.1} µs", v * 1e6)
    } else {
        format!("{:.2} ms", v * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Outcome, WorkerState};

    fn snapshot() -> Snapshot {
        let text = r#"
[server]
anycast = "192.0.2.1"
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "acme-gre"
remote = "198.51.100.1"
interface = "10.99.0.1/31"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "acme-gre"
"#;
        Snapshot::build(&crate::config::parse("test.toml", text).unwrap()).unwrap()
    }

    fn sources(stats: WorkerStats, snap: Arc<Snapshot>) -> Arc<Sources> {
        let mut report = WorkerReport { queue: 3, stats, snapshot: Some(snap.clone()), ..WorkerReport::default() };
        for ns in [900, 1_500, 40_000] {
            report.latency.record(ns).unwrap();
            report.latency_window.record(ns).unwrap();
        }
        Arc::new(Sources {
            workers: vec![Arc::new(Mutex::new(report))],
            snapshot: Arc::new(ArcSwap::new(snap)),
            xdp: Mutex::new(transitd_bpf::XdpStats { redirected: 7, ..Default::default() }),
            reloads: ReloadStats::default(),
            bgp: BgpStats::default(),
            ipfix: None,
            capture: None,
            punt: None,
            started: 0,
        })
    }

    #[test]
    fn scrapes_carry_what_the_workers_counted() {
        let snap = Arc::new(snapshot());
        let mut state = WorkerState::new(&snap);
        let mut tx = Outcome::new(Verdict::Tx { start: 0, len: 124, reason: TxReason::Encapsulated });
        tx.customer = Some(0);
        tx.tunnel = Some(0);
        let mut dropped = Outcome::new(Verdict::Drop(DropReason::Firewall));
        dropped.customer = Some(0);
        for _ in 0..5 {
            state.stats.count(&tx, 100);
        }
        state.stats.count(&dropped, 60);
        state.stats.rx_frames = 6;
        let text = render(&sources(state.stats, snap));
        let samples = parse(&text);
        let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
            samples
                .iter()
                .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == *v))
                .map(|s| s.value)
                .sum()
        };
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
        assert_eq!(get("transitd_rx_packets_total", &[("worker", "q3")]), 6.0);
        assert_eq!(get("transitd_customer_packets_total", &[("customer", "acme"), ("verdict", "tx")]), 5.0);
        assert_eq!(get("transitd_customer_bytes_total", &[("customer", "acme"), ("verdict", "tx")]), 500.0);
        assert_eq!(get("transitd_customer_bytes_total", &[("customer", "acme"), ("verdict", "drop")]), 60.0);
        assert_eq!(get("transitd_tunnel_bytes_total", &[("tunnel", "acme-gre"), ("direction", "sent")]), 620.0);
        assert_eq!(get("transitd_packets_total", &[("verdict", "drop"), ("reason", "firewall")]), 1.0);
        assert_eq!(get("transitd_bytes_total", &[("verdict", "drop"), ("reason", "firewall")]), 60.0);
        assert_eq!(get("transitd_bytes_total", &[("verdict", "tx"), ("reason", "encapsulated")]), 620.0);
        assert_eq!(get("transitd_tunnel_up", &[("tunnel", "acme-gre")]), 1.0);
        assert_eq!(get("transitd_xdp_packets_total", &[("action", "redirected")]), 7.0);
        // The histogram: cumulative buckets ending in +Inf, as many as recorded.
        assert_eq!(get("transitd_batch_duration_seconds_count", &[]), 3.0);
        assert_eq!(get("transitd_batch_duration_seconds_bucket", &[("le", "0.000001")]), 1.0);
        assert_eq!(get("transitd_batch_duration_seconds_bucket", &[("le", "0.000002")]), 2.0);
        assert_eq!(get("transitd_batch_duration_seconds_bucket", &[("le", "+Inf")]), 3.0);
        let max = get("transitd_batch_duration_recent_seconds", &[("quantile", "1")]);
        assert!((max - 40e-6).abs() < 1e-6, "{max}");

        let people = for_people("127.0.0.1:9469".parse().unwrap(), &text, None);
        assert!(people.lines().any(|l| l.starts_with("acme ") && l.split_whitespace().nth(1) == Some("5")), "{people}");
        assert!(people.lines().any(|l| l.starts_with("acme-gre ") && l.contains(" up ")), "{people}");
        assert!(people.contains("drop firewall"), "{people}");
    }

    #[test]
    fn the_parser_undoes_label_escapes() {
        let s = parse("m_total{a=\"x\\\"y\",b=\"1\\\\2\"} 3\n# EOF\n");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].label("a"), s[0].label("b"), s[0].value), ("x\"y", "1\\2", 3.0));
    }
}
