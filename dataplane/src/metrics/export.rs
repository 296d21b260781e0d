//! The scrape: every counter of the run, encoded in the OpenMetrics text format or, for
//! scrapers that do not ask for it, the Prometheus text format 0.0.4 ([`Format`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Sources;
use crate::netdev::NetdevCounters;
use crate::pipeline::flows::FlowEvent;
use crate::pipeline::stats::{CustomerStats, TunnelStats, WorkerStats};
use crate::pipeline::{Reason, Verdict};
use crate::snapshot::{CustomerId, Snapshot};
use crate::worker::WorkerReport;

/// Upper bounds (seconds) of the batch-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 14] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 1e-1];

/// Every firewall, egress and DoS rule of `snap`, each customer's and then `[dos]`'s (customer
/// `""`): its customer, kind (`firewall`, `egress`, `dos`), the rule, and its counters' index
/// (the DoS counters' for kind `dos`, the firewall and egress counters' for the others).
fn each_rule(snap: &Snapshot) -> impl Iterator<Item = (&str, &'static str, &classifier::Rule, usize)> {
    let customers = snap.customers.iter().flat_map(|c| {
        [("firewall", &c.firewall, c.rule_base), ("egress", &c.egress, c.egress_base), ("dos", &c.dos, c.dos_base)]
            .into_iter()
            .flat_map(move |(kind, rules, base)| {
                rules.rules().iter().enumerate().map(move |(i, r)| (c.name.as_str(), kind, r, base as usize + i))
            })
    });
    let global = snap.dos.rules.rules().iter().enumerate().map(|(i, r)| ("", "dos", r, i));
    customers.chain(global)
}

/// A sample for each rule of `snap` that `keep` keeps, labelled by customer, kind and name:
/// its count in `dos` (a DoS rule's) or `rules` (a firewall or egress rule's).
fn rule_samples(
    m: &mut MetricEncoder<'_>,
    snap: &Snapshot,
    keep: impl Fn(&classifier::Rule) -> bool,
    dos: &[u64],
    rules: &[u64],
) -> fmt::Result {
    for (customer, kind, rule, slot) in each_rule(snap).filter(|(_, _, r, _)| keep(r)) {
        let n = if kind == "dos" { dos } else { rules }.get(slot).copied().unwrap_or(0);
        sample(m, &[("customer", customer), ("kind", kind), ("rule", rule.name.as_str())], n, MetricType::Counter)?;
    }
    Ok(())
}

/// Customer `id`'s name as samples label it: `""` for an id `snap` has no customer at (a
/// snapshot builds none such; the label is not worth a panic in a scrape).
fn customer_name(snap: &Snapshot, id: CustomerId) -> &str {
    snap.customers.get(usize::from(id)).map_or("", |c| c.name.as_str())
}

/// A customer's name and its counters, summed over the workers.
type CustomerCounts<'a> = (&'a str, CustomerStats);

/// A tunnel's name, its customer's name and its counters, summed over the workers.
type TunnelCounts<'a> = (&'a str, &'a str, TunnelStats);

/// Each customer's frames and bytes by verdict, summed by [`Scrape::summed_by_name`].
fn customer_traffic(enc: &mut DescriptorEncoder<'_>, customers: &[CustomerCounts<'_>]) -> fmt::Result {
    for (name, help, bytes) in [
        ("transitd_customer_packets", "A customer's frames by verdict", false),
        ("transitd_customer_bytes", "A customer's bytes (as received) by verdict", true),
    ] {
        family(enc, name, help, MetricType::Counter, |m| {
            for (customer, counts) in customers {
                for (verdict, t) in Verdict::KINDS.iter().zip(counts) {
                    let labels = [("customer", *customer), ("verdict", verdict)];
                    sample(m, &labels, if bytes { t.bytes } else { t.packets }, MetricType::Counter)?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Each tunnel's frames and bytes received and sent, and its received frames dropped, summed
/// by [`Scrape::summed_by_name`].
fn tunnel_traffic(enc: &mut DescriptorEncoder<'_>, tunnels: &[TunnelCounts<'_>]) -> fmt::Result {
    for (name, help, bytes) in [
        ("transitd_tunnel_packets", "Frames received from (GRE) or sent into a customer tunnel", false),
        ("transitd_tunnel_bytes", "Bytes received from or sent into a customer tunnel", true),
    ] {
        family(enc, name, help, MetricType::Counter, |m| {
            for (tunnel, customer, t) in tunnels {
                for (direction, x) in [("received", t.received), ("sent", t.sent)] {
                    let labels = [("tunnel", *tunnel), ("customer", *customer), ("direction", direction)];
                    sample(m, &labels, if bytes { x.bytes } else { x.packets }, MetricType::Counter)?;
                }
            }
            Ok(())
        })?;
    }
    family(
        enc,
        "transitd_tunnel_received_dropped_packets",
        "Frames from a customer tunnel that were dropped",
        MetricType::Counter,
        |m| {
            for (tunnel, customer, t) in tunnels {
                let labels = [("tunnel", *tunnel), ("customer", *customer)];
                sample(m, &labels, t.received_dropped, MetricType::Counter)?;
            }
            Ok(())
        },
    )
}

#[derive(Debug)]
struct TransitdCollector {
    sources: Arc<Sources>,
    /// The workers' reports, copied out of their locks once for the whole scrape (the
    /// summary [`render`] writes reads the same copy, so its `_count` is the histogram's).
    reports: Arc<[WorkerReport]>,
}

/// A label value escaped as the exposition format requires (backslash, double quote and
/// line feed; OpenMetrics §"ABNF"): prometheus-client writes values as given, and names come
/// from configuration files, so an unescaped quote or newline could forge samples.
#[derive(Debug)]
struct Escaped<'a>(&'a str);

impl prometheus_client::encoding::EncodeLabelValue for Escaped<'_> {
    fn encode(&self, out: &mut prometheus_client::encoding::LabelValueEncoder<'_>) -> fmt::Result {
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
) -> fmt::Result {
    let labels = escaped(labels);
    let mut m = family.encode_family(&labels)?;
    match kind {
        MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&value, None),
        _ => m.encode_gauge(&(value as i64)),
    }
}

/// Samples `(label value, counter)` under one label name.
fn counters(m: &mut MetricEncoder<'_>, label: &'static str, values: &[(&str, &AtomicU64)]) -> fmt::Result {
    for (value, n) in values {
        sample(m, &[(label, value)], n.load(Ordering::Relaxed), MetricType::Counter)?;
    }
    Ok(())
}

/// Encodes the family `name` of `kind`, whose samples `samples` writes.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl FnOnce(&mut MetricEncoder<'_>) -> fmt::Result,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    samples(&mut m)
}

impl Collector for TransitdCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let (src, reports) = (&self.sources, &self.reports);
        let snap = src.snapshot.load();
        let workers: Vec<String> = reports.iter().map(|r| format!("q{}", r.queue)).collect();
        let scrape = Scrape { src, snap: &snap, reports, workers: &workers };
        let enc = &mut enc;
        scrape.process(enc)?;
        scrape.verdicts(enc)?;
        scrape.customers_and_tunnels(enc)?;
        scrape.rules(enc)?;
        scrape.batch_latency(enc)?;
        scrape.afxdp(enc)?;
        scrape.xdp_and_interface(enc)?;
        scrape.reloads_and_bgp(enc)?;
        scrape.exporters(enc)
    }
}

/// What one scrape reads: the workers' reports (copied out of their locks once), the
/// running snapshot, and the sources of the rest.
struct Scrape<'a> {
    src: &'a Sources,
    snap: &'a Arc<Snapshot>,
    reports: &'a [WorkerReport],
    /// Each report's worker label (`q<queue>`).
    workers: &'a [String],
}

impl Scrape<'_> {
    /// Each worker's label with its report.
    fn per_worker(&self) -> impl Iterator<Item = (&str, &WorkerReport)> {
        self.workers.iter().map(String::as_str).zip(self.reports)
    }

    /// Version and start time.
    fn process(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        family(enc, "transitd_build", "The running transitd's version", MetricType::Info, |m| {
            m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
        })?;
        family(enc, "transitd_start_time_seconds", "Unix time transitd started", MetricType::Gauge, |m| {
            m.encode_gauge(&(self.src.started as i64))
        })
    }

    /// Frames and bytes per worker, and by verdict and reason.
    fn verdicts(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        type Field = fn(&WorkerStats) -> u64;
        let per_worker: [(&str, &str, Field); 9] = [
            ("transitd_rx_packets", "Frames received", |s| s.rx_frames),
            ("transitd_rx_bytes", "Bytes received", |s| s.rx_bytes),
            ("transitd_tx_packets", "Frames transmitted (spilled fragments and probes included)", |s| s.tx_frames),
            ("transitd_tx_bytes", "Bytes transmitted", |s| s.tx_bytes),
            ("transitd_gre_reassembled", "GRE datagrams from tunnels' routers made whole from their fragments", |s| {
                s.gre_reassembled
            }),
            (
                "transitd_gre_reassembly_discarded",
                "GRE datagrams given up with fragments of them held: not whole within a second, evicted, refused, \
                 forgotten (their first fragment not ours) or dropped by a reload that changed the slots",
                |s| s.gre_reassembly_discarded,
            ),
            (
                "transitd_tcp_evicted",
                "Tracked TCP connections evicted while established to make room for new ones (the flow table is too \
                 small for the connections, or a flood fills it)",
                |s| s.tcp_evicted,
            ),
            (
                "transitd_path_mtu_errors_disproved",
                "Path MTUs that ICMP Packet Too Big errors about a tunnel's GRE lowered, raised back because the \
                 tunnel's router answered a probe of the size before (false or forged errors)",
                |s| s.path_mtu_errors_disproved,
            ),
            (
                "transitd_health_probes_excused",
                "Health probes unanswered while this server's sockets dropped received frames (their replies may have \
                 been among them), not counted as missed: at most excused_max in a row a tunnel",
                |s| s.health_probes_excused,
            ),
        ];
        for (name, help, field) in per_worker {
            family(enc, name, help, MetricType::Counter, |m| {
                for (w, r) in self.per_worker() {
                    sample(m, &[("worker", w)], field(&r.stats), MetricType::Counter)?;
                }
                Ok(())
            })?;
        }
        for (name, help, bytes) in [
            ("transitd_packets", "Frames by verdict (tx, pass, drop, consumed) and its named reason", false),
            ("transitd_bytes", "Bytes by verdict and reason (as sent for tx, as received otherwise)", true),
        ] {
            family(enc, name, help, MetricType::Counter, |m| {
                for (w, r) in self.per_worker() {
                    for reason in Reason::all() {
                        let n = if bytes { r.stats.bytes_for(reason) } else { r.stats.frames_for(reason) };
                        let labels = [("worker", w), ("verdict", reason.verdict()), ("reason", reason.name())];
                        sample(m, &labels, n, MetricType::Counter)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The running configuration's customers and tunnels: summed over workers, each worker's
    /// counters named by the snapshot they were counted under; and the tunnels' health.
    fn customers_and_tunnels(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let (customers, tunnels) = self.summed_by_name();
        customer_traffic(enc, &customers)?;
        tunnel_traffic(enc, &tunnels)?;
        self.tunnel_states(enc)?;
        self.tunnel_downs_and_unreachable_prefixes(enc)?;
        self.tunnel_mtus(enc)
    }

    /// The running configuration's customers (name, counts) and tunnels (name, customer's
    /// name, counts), each summed by name over the workers (one still on the configuration
    /// before a reload counts them at its own indices). One a reload removed is served no
    /// more: summed over the workers that had not moved on yet, its counters went down (to
    /// what those alone counted), which a scraper takes for a restart from 0 and adds to the
    /// increase: a phantom spike.
    fn summed_by_name(&self) -> (Vec<CustomerCounts<'_>>, Vec<TunnelCounts<'_>>) {
        let snap = self.snap;
        let mut customers: Vec<CustomerCounts<'_>> =
            snap.customers.iter().map(|c| (c.name.as_str(), Default::default())).collect();
        let mut tunnels: Vec<TunnelCounts<'_>> = snap
            .tunnels
            .iter()
            .map(|t| (t.name.as_str(), customer_name(snap, t.customer), Default::default()))
            .collect();
        let customer_at: HashMap<&str, usize> = customers.iter().enumerate().map(|(i, c)| (c.0, i)).collect();
        let tunnel_at: HashMap<&str, usize> = tunnels.iter().enumerate().map(|(i, t)| (t.0, i)).collect();
        for r in self.reports {
            let Some(s) = &r.snapshot else { continue };
            for (c, counts) in s.customers.iter().zip(&r.stats.customers) {
                if let Some(&i) = customer_at.get(c.name.as_str()) {
                    crate::pipeline::stats::merge_customer(&mut customers[i].1, counts);
                }
            }
            for (t, counts) in s.tunnels.iter().zip(&r.stats.tunnels) {
                if let Some(&i) = tunnel_at.get(t.name.as_str()) {
                    tunnels[i].2.merge(counts);
                }
            }
        }
        (customers, tunnels)
    }

    /// Whether each tunnel takes traffic now, and whether its probes have judged it.
    fn tunnel_states(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.snap;
        family(
            enc,
            "transitd_tunnel_up",
            "1 while a tunnel takes traffic: a health-checked one (label checked true, with an interface) while it answers its probes, and until its probes have judged it (transitd_tunnel_judged 0); one not checked is always up, as routing takes it",
            MetricType::Gauge,
            |m| {
                for (i, t) in snap.tunnels.iter().enumerate() {
                    let customer = customer_name(snap, t.customer);
                    let checked = if t.interface.is_some() { "true" } else { "false" };
                    let labels = [("tunnel", t.name.as_str()), ("customer", customer), ("checked", checked)];
                    sample(m, &labels, u64::from(snap.health.is_up(i as u16)), MetricType::Gauge)?;
                }
                Ok(())
            },
        )?;
        // A checked tunnel's state is known once a probe was answered or down_after missed.
        // Before (at start, after a reload that added it, for ever while its probes cannot
        // be sent) it takes traffic, as up, but is not known to work: up alone said it
        // worked, and withdraw_customers_without_tunnels, which does not count on it,
        // withdrew a customer whose tunnels all showed up.
        family(
            enc,
            "transitd_tunnel_judged",
            "1 once a health-checked tunnel's probes have judged it (a probe answered, or down after down_after misses); 0 while its state is unknown: transitd_tunnel_up is then 1 (it takes traffic), but withdraw_customers_without_tunnels does not count on it. Tunnels not checked have no sample",
            MetricType::Gauge,
            |m| {
                for (i, t) in snap.tunnels.iter().enumerate().filter(|(_, t)| t.interface.is_some()) {
                    let labels = [("tunnel", t.name.as_str()), ("customer", customer_name(snap, t.customer))];
                    sample(m, &labels, u64::from(snap.health.judged(i as u16)), MetricType::Gauge)?;
                }
                Ok(())
            },
        )
    }

    /// The largest inner packet each tunnel takes now.
    fn tunnel_mtus(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.snap;
        let now = crate::io::wall_clock_ns();
        let link = self.src.link_mtu.as_ref().map(|m| m.load(std::sync::atomic::Ordering::Relaxed)).filter(|&m| m > 0);
        family(
            enc,
            "transitd_tunnel_mtu_bytes",
            "The largest inner IPv4 packet a tunnel takes now: its mtu, or less while a path MTU the underlay reported holds (path_mtu_discovery, ten minutes; IPv6 is held no lower than 1280) or where its outer packet would not fit the interface's MTU",
            MetricType::Gauge,
            |m| {
                for t in &snap.tunnels {
                    let labels = [("tunnel", t.name.as_str()), ("customer", customer_name(snap, t.customer))];
                    let mtu = crate::pipeline::tunnel_mtu(snap, t, false, now, link);
                    sample(m, &labels, u64::from(mtu), MetricType::Gauge)?;
                }
                Ok(())
            },
        )
    }

    /// What a tunnel's state at a scrape does not say, in `customers_and_tunnels`' output
    /// where it is called: how often each health-checked tunnel went down, and how many of
    /// each customer's prefixes have every tunnel of their routes down, or those of a part.
    fn tunnel_downs_and_unreachable_prefixes(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.snap;
        // A tunnel that goes down and comes back between two scrapes reads up at both: only a
        // count says it flapped (and how often), as the log does.
        family(
            enc,
            "transitd_tunnel_downs",
            "Times a health-checked tunnel went down (down_after probes missed in a row), counted across reloads that keep its name: a tunnel that flaps between two scrapes reads up at both in transitd_tunnel_up. Tunnels not checked have no sample",
            MetricType::Counter,
            |m| {
                for (i, t) in snap.tunnels.iter().enumerate().filter(|(_, t)| t.interface.is_some()) {
                    let labels = [("tunnel", t.name.as_str()), ("customer", customer_name(snap, t.customer))];
                    sample(m, &labels, snap.health.downs(i as u16), MetricType::Counter)?;
                }
                Ok(())
            },
        )?;
        // Whether a customer's traffic has somewhere to go is the tunnels its prefixes' routes
        // take: read from transitd_tunnel_up by customer, a spare no route takes (not checked,
        // so always 1) said it had while every tunnel its traffic took was down.
        let unreachable = crate::bgp::unreachable_prefixes(snap);
        let mut checked = vec![false; snap.customers.len()];
        for t in snap.tunnels.iter().filter(|t| t.interface.is_some()) {
            if let Some(c) = checked.get_mut(usize::from(t.customer)) {
                *c = true;
            }
        }
        family(
            enc,
            "transitd_customer_unreachable_prefixes",
            "Prefixes of the customer every tunnel of whose routes is down (as withdraw_customers_without_tunnels judges them, set or not): their traffic has nowhere to go from here. A tunnel no route takes counts for nothing. Customers without a health-checked tunnel have no sample",
            MetricType::Gauge,
            |m| {
                let customers = snap.customers.iter().zip(&unreachable).zip(&checked);
                for ((c, &n), _) in customers.filter(|(_, is_checked)| **is_checked) {
                    sample(m, &[("customer", c.name.as_str())], n, MetricType::Gauge)?;
                }
                Ok(())
            },
        )?;
        // BGP announces a prefix whole: one half of which is routed over dead tunnels stays
        // announced, and out of the count above (the other half is served), while the traffic
        // to that half is lost here. Apart, so that the count above keeps meaning what
        // withdraw_customers_without_tunnels withdraws.
        let partly = crate::bgp::partly_unreachable_prefixes(snap);
        family(
            enc,
            "transitd_customer_partly_unreachable_prefixes",
            "Prefixes of the customer served in part only: some of their addresses take routes every tunnel of which is down while others take a tunnel that is up. BGP cannot withdraw the part: the prefix stays announced and the traffic to that part is lost here. Customers without a health-checked tunnel have no sample",
            MetricType::Gauge,
            |m| {
                let customers = snap.customers.iter().zip(&partly).zip(&checked);
                for ((c, &n), _) in customers.filter(|(_, is_checked)| **is_checked) {
                    sample(m, &[("customer", c.name.as_str())], n, MetricType::Gauge)?;
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Hits of every rule of the running snapshot (firewall, egress, DoS, TCP protection),
    /// from the workers that run it.
    fn rules(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.snap;
        let mut hits = WorkerStats::default();
        for r in self.reports.iter().filter(|r| r.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap))) {
            hits.add(&r.stats);
        }
        family(
            enc,
            "transitd_rule_hits",
            "Frames each rule decided or (monitor mode) would have; restart at a reload",
            MetricType::Counter,
            |m| rule_samples(m, snap, |_| true, &hits.dos_hits, &hits.rule_hits),
        )?;
        let previewed = |r: &classifier::Rule| r.previewed_bucket().is_some();
        family(
            enc,
            "transitd_rule_would_limit",
            "Of a monitor-mode rate-limit rule's hits, the frames its bucket would have refused (rate_limited) had it been enforced; restart at a reload",
            MetricType::Counter,
            |m| rule_samples(m, snap, previewed, &hits.dos_would_limit, &hits.rule_would_limit),
        )?;
        family(
            enc,
            "transitd_tcp_protection_packets",
            "TCP packets each [tcp_protection] rule covered, by what flow tracking made of them (out_of_state_*: dropped in mitigate mode, only counted in monitor mode); restart at a reload",
            MetricType::Counter,
            |m| {
                for (i, rule) in snap.tcp.rules.iter().enumerate() {
                    let customer = rule.customer.map_or("", |c| customer_name(snap, c));
                    let mode = if rule.mitigate { "mitigate" } else { "monitor" };
                    for event in FlowEvent::ALL {
                        let n = hits.tcp_hits.get(i).map_or(0, |h| h[event.index()]);
                        let labels = [
                            ("customer", customer),
                            ("rule", rule.name.as_str()),
                            ("mode", mode),
                            ("event", event.name()),
                        ];
                        sample(m, &labels, n, MetricType::Counter)?;
                    }
                }
                Ok(())
            },
        )
    }

    /// Each worker's batch duration over the whole run, as a histogram (the recent quantiles
    /// are a summary, which [`render`] writes itself).
    fn batch_latency(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        family(
            enc,
            "transitd_batch_duration_seconds",
            "Time a worker spends on one batch: receive, process, transmit",
            MetricType::Histogram,
            |m| {
                for (w, r) in self.per_worker() {
                    LatencyHistogram(&r.latency).encode(m.encode_family(&escaped(&[("worker", w)]))?)?;
                }
                Ok(())
            },
        )
    }

    /// Each worker's socket: where its UMEM frames are, its events, what the kernel counts
    /// for it, its bind mode.
    fn afxdp(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        family(enc, "transitd_umem_frames", "Where each worker's UMEM frames are", MetricType::Gauge, |m| {
            for (w, r) in self.per_worker() {
                let f = &r.io.frames;
                for (place, n) in [("free", f.free), ("fill", f.in_fill), ("tx", f.in_tx), ("held", f.held)] {
                    sample(m, &[("worker", w), ("where", place)], n, MetricType::Gauge)?;
                }
            }
            Ok(())
        })?;
        family(enc, "transitd_afxdp_events", "AF_XDP socket events per worker", MetricType::Counter, |m| {
            for (w, r) in self.per_worker() {
                let io = &r.io;
                for (event, n) in [
                    ("sent", io.tx),
                    ("completed", io.completed),
                    ("tx_ring_full", io.tx_ring_full),
                    ("backpressure", io.backpressure),
                    ("multi_buffer", io.multi_buffer),
                    ("spill_no_frame", io.spill_no_frame),
                    ("tx_no_frame", io.tx_no_frame),
                    ("bad_descriptor", io.bad_descriptors),
                    ("bad_tx", io.bad_tx),
                    ("kick", io.kicks),
                    ("kick_busy", io.kick_busy),
                    ("kick_error", io.kick_errors),
                    ("tx_stall", io.tx_stalls),
                    // The kernel's (XDP_STATISTICS), but no drop: it found the tx ring empty,
                    // as it does after every batch it sent.
                    ("tx_ring_empty", io.socket.tx_ring_empty),
                ] {
                    sample(m, &[("worker", w), ("event", event)], n, MetricType::Counter)?;
                }
            }
            Ok(())
        })?;
        family(
            enc,
            "transitd_afxdp_kernel_drops",
            "What the kernel counts for each worker's AF_XDP socket (XDP_STATISTICS)",
            MetricType::Counter,
            |m| {
                for (w, r) in self.per_worker() {
                    let k = &r.io.socket;
                    for (reason, n) in [
                        ("rx_ring_full", k.rx_ring_full),
                        ("fill_ring_empty", k.rx_fill_ring_empty),
                        ("rx_dropped", k.rx_dropped),
                        ("rx_invalid_descs", k.rx_invalid_descs),
                        ("tx_invalid_descs", k.tx_invalid_descs),
                    ] {
                        sample(m, &[("worker", w), ("reason", reason)], n, MetricType::Counter)?;
                    }
                }
                Ok(())
            },
        )?;
        family(
            enc,
            "transitd_afxdp_zero_copy",
            "1 while the worker's socket is bound in zero-copy mode, 0 in copy mode",
            MetricType::Gauge,
            |m| {
                for (w, r) in self.per_worker() {
                    sample(m, &[("worker", w)], u64::from(r.io.zero_copy), MetricType::Gauge)?;
                }
                Ok(())
            },
        )
    }

    /// What the XDP program decided, and the interface's own counters.
    fn xdp_and_interface(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let xdp = self.src.xdp.lock().map(|x| *x).unwrap_or_default();
        family(
            enc,
            "transitd_xdp_packets",
            "Frames the XDP program decided: to a socket, or to the kernel",
            MetricType::Counter,
            |m| {
                for (action, n) in [
                    ("redirected", xdp.redirected),
                    ("passed", xdp.passed),
                    ("no_socket", xdp.no_socket),
                    ("egress_local", xdp.egress_local),
                    ("backbone_local", xdp.backbone_local),
                    ("gre_not_ours", xdp.gre_not_ours),
                ] {
                    sample(m, &[("action", action)], n, MetricType::Counter)?;
                }
                Ok(())
            },
        )?;
        let Some((name, c)) = self.src.interface.as_deref().and_then(|i| NetdevCounters::read(i).map(|c| (i, c)))
        else {
            return Ok(());
        };
        family(
            enc,
            "transitd_interface_packets",
            "The interface's own packet counters since it was created (sysfs statistics, as ip -s link shows them)",
            MetricType::Counter,
            |m| {
                for (counter, n) in c.named() {
                    sample(m, &[("interface", name), ("counter", counter)], n, MetricType::Counter)?;
                }
                Ok(())
            },
        )
    }

    /// Configuration reloads, and BGP where it is configured.
    fn reloads_and_bgp(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let src = self.src;
        let reloads = &src.reloads;
        family(
            enc,
            "transitd_config_reloads",
            "Configuration reloads, applied or rejected (the running one stays)",
            MetricType::Counter,
            |m| counters(m, "result", &[("applied", &reloads.applied), ("rejected", &reloads.rejected)]),
        )?;
        family(
            enc,
            "transitd_config_applied_time_seconds",
            "Unix time the running configuration was applied",
            MetricType::Gauge,
            |m| m.encode_gauge(&(reloads.applied_at.load(Ordering::Relaxed) as i64)),
        )?;
        family(
            enc,
            "transitd_xdp_maps_stale",
            "1 while the XDP program's maps hold prefixes or tunnel remotes the running configuration does not (a reload could not remove or put them back: their traffic goes to the workers); tried again every second",
            MetricType::Gauge,
            |m| m.encode_gauge(&i64::from(reloads.xdp_maps_stale.load(Ordering::Relaxed))),
        )?;
        if let Some(up) = &reloads.etcd_up {
            family(
                enc,
                "transitd_config_source_up",
                "1 while the etcd holding the configuration answers; 0 while the last good configuration runs without it",
                MetricType::Gauge,
                |m| m.encode_gauge(&i64::from(up.load(Ordering::Relaxed))),
            )?;
        }
        if src.bgp.configured.load(Ordering::Relaxed) {
            family(
                enc,
                "transitd_bgp_announced_prefixes",
                "Prefixes this server has BIRD announce ([bgp])",
                MetricType::Gauge,
                |m| m.encode_gauge(&(src.bgp.announced.load(Ordering::Relaxed) as i64)),
            )?;
            family(
                enc,
                "transitd_bgp_withdrawn",
                "1 while every announcement is withdrawn because a worker stalled or the XDP program is gone",
                MetricType::Gauge,
                |m| m.encode_gauge(&i64::from(src.bgp.withdrawn.load(Ordering::Relaxed))),
            )?;
            family(
                enc,
                "transitd_bgp_bird_in_sync",
                "1 while BIRD announces what transitd last asked (0: BIRD refuses its configuration or cannot be reached)",
                MetricType::Gauge,
                |m| m.encode_gauge(&i64::from(src.bgp.bird_in_sync.load(Ordering::Relaxed))),
            )?;
            // Counted now: a prefix whose grace has ended stays in the snapshot until the next
            // reload, but is out of the XDP program's map (its traffic the host's again).
            let held = self.snap.withdrawn.in_grace(Instant::now()).count();
            family(
                enc,
                "transitd_bgp_held_prefixes",
                "Customer prefixes reloads removed, held for withdrawn_grace_ms: still redirected, their traffic dropped as withdrawn_prefix",
                MetricType::Gauge,
                |m| m.encode_gauge(&(held as i64)),
            )?;
        }
        Ok(())
    }

    /// The optional exporters and paths where they run: IPFIX, the punt path, the drop
    /// capture.
    fn exporters(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let src = self.src;
        if let Some((x, samples)) = &src.ipfix
            && self.snap.ipfix.is_some()
        {
            family(
                enc,
                "transitd_ipfix",
                "IPFIX export: flow records and messages sent, messages the socket refused, samples lost to a full queue, samples sent as flows of their own (the flow cache was full; queued across a reload that named customers otherwise), samples not counted (made under a configuration no longer known)",
                MetricType::Counter,
                |m| {
                    let values = [
                        ("records", &x.records),
                        ("messages", &x.messages),
                        ("send_errors", &x.send_errors),
                        ("samples_lost", &samples.lost),
                        ("cache_full", &x.cache_full),
                        ("late", &x.late),
                        ("unnamed", &x.unnamed),
                    ];
                    counters(m, "what", &values)
                },
            )?;
        }
        if let Some(punt) = &src.punt {
            let p = &punt.stats;
            family(
                enc,
                "transitd_punt_packets",
                "Frames the XDP program redirected and the pipeline passed, handed to the host (or not, and why)",
                MetricType::Counter,
                |m| counters(m, "result", &[("punted", &p.punted), ("over_rate", &p.over_rate), ("failed", &p.failed)]),
            )?;
            family(
                enc,
                "transitd_punt_device_up",
                "1 while the punt device is open and its writes succeed; 0 when it could not be made at start (the frames it would carry are dropped, counted failed), while its writes fail (deleted or set down under the run), or --punt-rate 0 made none",
                MetricType::Gauge,
                |m| m.encode_gauge(&i64::from(punt.is_up())),
            )?;
        }
        if let Some(cap) = &src.capture {
            let s = &cap.stats;
            family(
                enc,
                "transitd_drop_capture_packets",
                "Frames offered to the drop capture: written, or not and why",
                MetricType::Counter,
                |m| {
                    let values = [
                        ("written", &s.written),
                        ("over_rate", &s.over_rate),
                        ("no_record", &s.no_record),
                        ("over_size", &s.over_size),
                        ("write_failed", &s.write_failed),
                    ];
                    counters(m, "result", &values)
                },
            )?;
            family(enc, "transitd_drop_capture_file_bytes", "Size of the drop capture", MetricType::Gauge, |m| {
                m.encode_gauge(&(s.bytes.load(Ordering::Relaxed) as i64))
            })?;
        }
        Ok(())
    }
}

/// An hdrhistogram as a Prometheus histogram with [`LATENCY_BUCKETS`].
#[derive(Debug)]
struct LatencyHistogram<'a>(&'a Histogram<u64>);

impl EncodeMetric for LatencyHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let h = self.0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        let mut below = 0u64;
        let mut seen = 0u64;
        for le in LATENCY_BUCKETS {
            let upper = (le * 1e9) as u64;
            let cumulative = at_most(h, upper);
            buckets.push((le, cumulative - below));
            below = cumulative;
            seen = cumulative;
        }
        buckets.push((f64::MAX, h.len() - seen));
        encoder.encode_histogram::<NoLabelSet>(sum_seconds(h), h.len(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// How many durations `h` holds of at most `upper` nanoseconds, each taken as the top of its
/// hdrhistogram bucket, as [`sum_seconds`] takes it: a Prometheus bucket counts no
/// observation above its `le`. `count_between(0, upper)` counted the whole bucket `upper`
/// falls in, up to 0.4 % above it (`le="0.001"` took batches up to 1,003,519 ns). The bucket
/// that straddles `upper` is left to the next `le`: a duration can be said above its bound
/// by less than the histogram's precision, never below it.
fn at_most(h: &Histogram<u64>, upper: u64) -> u64 {
    if h.highest_equivalent(upper) == upper {
        return h.count_between(0, upper);
    }
    // The top of the bucket before the one `upper` is in; none below a bucket from 0.
    h.lowest_equivalent(upper).checked_sub(1).map_or(0, |top| h.count_between(0, top))
}

/// The sum of the durations (nanoseconds) `h` holds, in seconds, each counted at the top of
/// its hdrhistogram bucket: the histogram's `_sum`, and the recent summary's.
pub(super) fn sum_seconds(h: &Histogram<u64>) -> f64 {
    // Folded from +0.0: `f64`'s `Sum` starts at -0.0, which an idle worker's sum was written
    // as (`-0.0`: parsers take it, people stop at it).
    h.iter_recorded().fold(0.0, |sum, v| sum + v.value_iterated_to() as f64 * v.count_at_value() as f64) / 1e9
}

/// The exposition formats a scrape is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0, what Prometheus asks for.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, what other scrapers read (and what is served to a
    /// client that does not say).
    Text,
}

impl Format {
    /// The Content-Type of a scrape in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The text a scrape returns, in `format`.
pub fn render(sources: &Arc<Sources>, format: Format) -> String {
    let mut registry = Registry::default();
    // A report a panicking writer left locked is skipped.
    let reports: Arc<[WorkerReport]> =
        sources.workers.iter().filter_map(|w| w.lock().ok().map(|r| r.clone())).collect();
    registry.register_collector(Box::new(TransitdCollector { sources: sources.clone(), reports: reports.clone() }));
    let mut out = String::new();
    // Writing into a String cannot fail. The summary prometheus-client cannot write goes
    // after its families, before the `# EOF` that must end an OpenMetrics scrape.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    super::summary::write_recent_batch_duration(&mut out, &reports);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    match format {
        Format::OpenMetrics => out,
        Format::Text => as_text_format(&out),
    }
}

/// prometheus-client's OpenMetrics (it writes no other format) as the text format 0.0.4.
/// Samples are written alike in both (a counter's as `<family>_total`, an info's as
/// `<family>_info`, a histogram's as `_sum`, `_count` and `_bucket`, a summary's as
/// `<family>{quantile=..}`, `_sum` and `_count`; no `_created`, exemplar or timestamp is
/// written); what differs is the comments: in 0.0.4 a family's
/// HELP and TYPE name what its samples are called (`# TYPE x_total counter`, where
/// OpenMetrics says `# TYPE x counter`), there is no `info` type (a gauge of 1 instead) nor
/// `unknown` (`untyped`), and neither `# UNIT` nor the closing `# EOF`.
fn as_text_format(open_metrics: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(open_metrics.len());
    // The family's help (what follows `# HELP `): the encoder writes it just before its TYPE.
    let mut help: Option<&str> = None;
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let Some((family, kind)) = rest.rsplit_once(' ') else { continue };
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "gauge" | "histogram" | "summary" => ("", kind),
                _ => ("", "untyped"),
            };
            // The help text after the family's name: its leading space included.
            if let Some(text) = help.take().and_then(|h| h.strip_prefix(family)) {
                let _ = writeln!(out, "# HELP {family}{suffix}{text}");
            }
            let _ = writeln!(out, "# TYPE {family}{suffix} {kind}");
        } else if !line.starts_with('#') {
            // A sample: label values are escaped alike in both formats.
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
