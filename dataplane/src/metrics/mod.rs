//! Metrics: the counters the workers publish, encoded at scrape time in the OpenMetrics or
//! the Prometheus text format, as the scraper asks (prometheus-client, [`export`]; the one
//! summary, which it has no type for, by hand: [`summary`]), and
//! served over HTTP (a bounded listener, [`http`]) on a local address, off the data path;
//! and `transitd stats`, which scrapes them and prints them for a person ([`client`]).
//!
//! Nothing here touches a worker: workers publish copies of their counters and latency
//! histograms into their [`WorkerReport`]s a few times a second, and a scrape reads those,
//! the snapshot (for customer and tunnel names, and tunnel health), the XDP program's
//! counters and the reload and drop-capture counters.

mod client;
mod export;
mod http;
mod summary;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

pub use self::client::{Sample, fetch, for_people, parse};
pub use self::export::{Format, render};
pub use self::http::{bind, serve};
use crate::dropcap::DropCapture;
use crate::snapshot::Snapshot;
use crate::worker::WorkerReport;

/// Where `transitd run` serves metrics unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9469";

/// Configuration reloads, counted by whoever applies them.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads applied.
    pub applied: AtomicU64,
    /// Reloads rejected (the running configuration stayed).
    pub rejected: AtomicU64,
    /// Unix time (seconds) of the last applied configuration, start included.
    pub applied_at: AtomicU64,
    /// With the configuration in etcd: whether etcd answers (`None`: a file).
    pub etcd_up: Option<Arc<AtomicBool>>,
    /// Whether the XDP program's maps hold other prefixes or tunnel remotes than the running
    /// configuration's: a reload could not narrow them (or put them back), and they are
    /// tried again every second. Shared with the reloads' watch.
    pub xdp_maps_stale: Arc<AtomicBool>,
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

/// BGP announcements (`[bgp]`), as the supervisor last told the guard.
#[derive(Debug, Default)]
pub struct BgpStats {
    /// Whether `[bgp]` is configured (nothing is served about BGP otherwise).
    pub configured: AtomicBool,
    /// Prefixes announced.
    pub announced: AtomicU64,
    /// Everything is withdrawn because a worker stalled or the XDP program is gone.
    pub withdrawn: AtomicBool,
    /// BIRD took the last announcement, as the guard says (false while it refuses its
    /// configuration, cannot be reached, or no guard runs).
    pub bird_in_sync: AtomicBool,
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
    /// The interface whose own counters a scrape reads (sysfs), if one is served.
    pub interface: Option<String>,
    /// The interface's MTU as the workers hold tunnels to it (0: unknown), the one word
    /// the supervisor keeps: the scrape shows what the data plane does.
    pub link_mtu: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// Process start (Unix seconds).
    pub started: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{
        DropReason, Frame, HEADROOM, Outcome, TxReason, Verdict, WorkerState, WorkerStats, process_batch,
    };

    /// Customer acme with two tunnels (one health-checked), with `dos` (buckets) before it
    /// and `rules` (its firewall's) after it.
    fn snapshot_with(dos: &str, rules: &str) -> Snapshot {
        let text = format!(
            r#"
[server]
anycast = "192.0.2.1"
{dos}
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "acme-gre"
remote = "198.51.100.1"
interface = "10.99.0.1/31"
[[customer.tunnel]]
name = "acme-spare"
remote = "198.51.100.2"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "acme-gre"
{rules}"#
        );
        Snapshot::build(&crate::config::parse("test.toml", &text).unwrap()).unwrap()
    }

    fn sources(stats: WorkerStats, snap: Arc<Snapshot>) -> Arc<Sources> {
        let mut report = WorkerReport { queue: 3, stats, snapshot: Some(snap.clone()), ..WorkerReport::default() };
        report.io.socket.rx_ring_full = 2;
        report.io.socket.tx_ring_empty = 9; // the kernel's, after every batch sent: no drop
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
            interface: Some("lo".into()),
            link_mtu: None,
            started: 0,
        })
    }

    /// A scrape (OpenMetrics) of `snap` by one worker that has counted nothing: its text and
    /// its samples.
    fn scrape_samples(snap: &Arc<Snapshot>) -> (String, Vec<Sample>) {
        let text = render(&sources(WorkerState::new(snap).stats, snap.clone()), Format::OpenMetrics);
        let samples = parse(&text);
        (text, samples)
    }

    /// A histogram bucket counts the batches that took at most its `le` (Prometheus: "less
    /// than or equal"), checked against a count of the durations recorded. hdrhistogram's
    /// buckets straddle the bounds (1 ms falls in 999,424 to 1,003,519 ns): a batch of
    /// 1,000,001 ns was counted in `le="0.001"`. One within the histogram's precision (two
    /// significant digits: 1 %) below a bound may be counted in the next bucket instead.
    #[test]
    fn no_latency_bucket_counts_a_batch_above_its_le() {
        let snap = Arc::new(snapshot_with("", ""));
        let src = sources(WorkerState::new(&snap).stats, snap);
        let bounds_ns: Vec<u64> = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 1e-1]
            .iter()
            .map(|le: &f64| (le * 1e9).round() as u64)
            .collect();
        // Durations at and around every bound, and a spread between them (an LCG: no crate).
        let mut recorded: Vec<u64> = bounds_ns
            .iter()
            .flat_map(|&le| [le - le / 200, le - 1, le, le + 1, le + le / 1000, le + le / 300])
            .collect();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Up to 0.2 s, shifted by 0 to 19 bits: as many short batches as long ones.
            let spread = ((x >> 33) % 200_000_000) >> (x % 20);
            recorded.push(1 + spread);
        }
        let mut latency = crate::worker::latency_histogram();
        for &ns in &recorded {
            latency.record(ns).unwrap();
        }
        src.workers[0].lock().unwrap().latency = latency;
        let text = render(&src, Format::OpenMetrics);
        let bucket = |le_ns: u64| -> u64 {
            let sample = parse(&text)
                .into_iter()
                .filter(|s| s.name == "transitd_batch_duration_seconds_bucket" && s.label("le") != "+Inf")
                .find(|s| (s.label("le").parse::<f64>().unwrap() * 1e9).round() as u64 == le_ns)
                .unwrap_or_else(|| panic!("no bucket of {le_ns} ns in\n{text}"));
            sample.value as u64
        };
        for &le in &bounds_ns {
            let at_most = recorded.iter().filter(|&&ns| ns <= le).count() as u64;
            let well_below = recorded.iter().filter(|&&ns| ns < le - le / 100).count() as u64;
            let counted = bucket(le);
            assert!(counted <= at_most, "le {le} ns: {counted} counted, {at_most} recorded at most it");
            assert!(counted >= well_below, "le {le} ns: {counted} counted, {well_below} recorded 1 % below it");
        }
    }

    #[test]
    fn scrapes_carry_what_the_workers_counted() {
        let snap = Arc::new(snapshot_with("", ""));
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
        state.stats.health_probes_excused = 4; // unanswered while the sockets dropped frames
        // The underlay said 1400 bytes for acme-gre's path: 1376 inside, past GRE and IPv4.
        assert!(snap.health.lower_path_mtu(0, 1376, crate::io::wall_clock_ns()));
        snap.health.set_judged(0); // a probe answered: up, not unknown
        let text = render(&sources(state.stats, snap), Format::OpenMetrics);
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
        assert_eq!(get("transitd_health_probes_excused_total", &[("worker", "q3")]), 4.0);
        assert_eq!(get("transitd_customer_packets_total", &[("customer", "acme"), ("verdict", "tx")]), 5.0);
        assert_eq!(get("transitd_customer_bytes_total", &[("customer", "acme"), ("verdict", "tx")]), 500.0);
        assert_eq!(get("transitd_customer_bytes_total", &[("customer", "acme"), ("verdict", "drop")]), 60.0);
        assert_eq!(get("transitd_tunnel_bytes_total", &[("tunnel", "acme-gre"), ("direction", "sent")]), 620.0);
        assert_eq!(get("transitd_packets_total", &[("verdict", "drop"), ("reason", "firewall")]), 1.0);
        assert_eq!(get("transitd_bytes_total", &[("verdict", "drop"), ("reason", "firewall")]), 60.0);
        assert_eq!(get("transitd_bytes_total", &[("verdict", "tx"), ("reason", "encapsulated")]), 620.0);
        assert_eq!(get("transitd_tunnel_up", &[("tunnel", "acme-gre"), ("checked", "true")]), 1.0);
        // A tunnel not health-checked is up as routing takes it, and says it is not checked
        // (so that a customer whose checked tunnels are down but who has one is not paged).
        assert_eq!(get("transitd_tunnel_up", &[("tunnel", "acme-spare"), ("checked", "false")]), 1.0);
        assert_eq!(get("transitd_tunnel_mtu_bytes", &[("tunnel", "acme-gre")]), 1376.0);
        assert_eq!(get("transitd_tunnel_mtu_bytes", &[("tunnel", "acme-spare")]), 1476.0, "its configured mtu");
        assert_eq!(get("transitd_xdp_packets_total", &[("action", "redirected")]), 7.0);
        // The histogram: cumulative buckets ending in +Inf, as many as recorded.
        assert_eq!(get("transitd_batch_duration_seconds_count", &[]), 3.0);
        assert_eq!(get("transitd_batch_duration_seconds_bucket", &[("le", "0.000001")]), 1.0);
        assert_eq!(get("transitd_batch_duration_seconds_bucket", &[("le", "0.000002")]), 2.0);
        assert_eq!(get("transitd_batch_duration_seconds_bucket", &[("le", "+Inf")]), 3.0);
        // The recent quantiles: a summary, whose count and sum are the histogram's.
        let max = get("transitd_batch_duration_recent_seconds", &[("quantile", "1.0")]);
        assert!((max - 40e-6).abs() < 1e-6, "{max}");
        assert_eq!(get("transitd_batch_duration_recent_seconds_count", &[("worker", "q3")]), 3.0);
        let sum = get("transitd_batch_duration_recent_seconds_sum", &[("worker", "q3")]);
        assert_eq!(sum, get("transitd_batch_duration_seconds_sum", &[("worker", "q3")]));
        assert!((sum - 42.4e-6).abs() < 1e-6, "{sum}");

        // The interface's own counters, as sysfs holds them (loopback: the scrape came first,
        // so what sysfs says now is at least as much).
        for counter in crate::netdev::COUNTERS {
            let now: f64 = std::fs::read_to_string(format!("/sys/class/net/lo/statistics/{counter}"))
                .map_or(0.0, |t| t.trim().parse().unwrap_or(0.0));
            let scraped = samples
                .iter()
                .find(|s| s.name == "transitd_interface_packets_total" && s.label("counter") == counter)
                .unwrap_or_else(|| panic!("no {counter} in\n{text}"));
            assert_eq!(scraped.label("interface"), "lo");
            assert!(scraped.value <= now, "{counter}: {} > {now}", scraped.value);
        }

        let people = for_people("127.0.0.1:9469".parse().unwrap(), &text, None);
        assert!(people.lines().any(|l| l.starts_with("interface lo: rx_packets ")), "{people}");
        assert!(people.lines().any(|l| l.starts_with("acme ") && l.split_whitespace().nth(1) == Some("5")), "{people}");
        assert!(people.lines().any(|l| l.starts_with("acme-gre ") && l.contains(" up ")), "{people}");
        assert!(people.contains("drop firewall"), "{people}");
        assert_eq!(get("transitd_afxdp_kernel_drops_total", &[("reason", "rx_ring_full")]), 2.0);
        assert_eq!(get("transitd_afxdp_kernel_drops_total", &[("reason", "tx_ring_empty")]), 0.0);
        assert_eq!(get("transitd_afxdp_events_total", &[("event", "tx_ring_empty")]), 9.0);
        let socket = people.lines().find(|l| l.contains("kernel drops:")).unwrap_or_else(|| panic!("{people}"));
        assert!(socket.ends_with("kernel drops: rx_ring_full 2"), "{socket}");
    }

    /// A scrape in the text format 0.0.4 (what a scraper that does not ask for OpenMetrics
    /// gets) holds the OpenMetrics scrape's samples, each under the TYPE line of its own
    /// name (0.0.4 names a counter family `x_total` where OpenMetrics says `x`, and has no
    /// info type), and no `# EOF`.
    #[test]
    fn the_text_format_holds_the_same_samples_under_their_own_names() {
        let snap = Arc::new(snapshot_with("", ""));
        let mut state = WorkerState::new(&snap);
        state.stats.rx_frames = 6;
        let mut src = sources(state.stats, snap);
        // The interface's counters (sysfs) move between two scrapes.
        Arc::get_mut(&mut src).unwrap().interface = None;
        let open_metrics = render(&src, Format::OpenMetrics);
        let text = render(&src, Format::Text);
        assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert_eq!(parse(&text), parse(&open_metrics));
        assert!(text.contains("# HELP transitd_rx_packets_total Frames received\n"), "{text}");
        assert!(text.contains("# TYPE transitd_rx_packets_total counter\n"), "{text}");
        assert!(text.contains("# TYPE transitd_build_info gauge\n"), "{text}");
        let (mut family, mut kind) = ("", "");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                (family, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let suffixes: &[&str] = match kind {
                    "histogram" => &["_bucket", "_sum", "_count"],
                    "summary" => &["", "_sum", "_count"],
                    _ => &[""],
                };
                let named = suffixes.iter().any(|s| name.strip_suffix(s) == Some(family));
                assert!(named, "{name} under # TYPE {family} {kind}");
            }
        }
    }

    /// A customer or tunnel a reload removed is served no more once the running
    /// configuration lacks it, though a worker not yet on that configuration still counts
    /// it: summed over such workers alone, its counters went down (12 to 5 here), which a
    /// scraper takes for a counter restarted from 0 (OpenMetrics: a counter's total is
    /// monotonically non-decreasing) and adds to its increase. A customer both
    /// configurations have is summed over every worker, by name.
    #[test]
    fn a_customer_a_reload_removed_is_not_served_lower() {
        let build = |customers: &[&str]| {
            let mut text = "[server]\nanycast = \"192.0.2.1\"\n".to_string();
            for (i, name) in customers.iter().enumerate() {
                text += &format!(
                    "[[customer]]\nname = \"{name}\"\nprefixes = [\"198.18.{i}.0/24\"]\n\
                     [[customer.tunnel]]\nname = \"{name}-gre\"\nremote = \"198.51.100.{}\"\n\
                     [[customer.route]]\nprefix = \"198.18.{i}.0/24\"\ntunnel = \"{name}-gre\"\n",
                    i + 1
                );
            }
            Arc::new(Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap())
        };
        // beta first, so that acme's index moves with the reload.
        let (old, new) = (build(&["beta", "acme"]), build(&["acme"]));
        // `n` frames sent into each customer's tunnel, counted under `snap`.
        let counted = |snap: &Arc<Snapshot>, n: u64| {
            let mut stats = WorkerStats::new(snap);
            for c in 0..snap.customers.len() as u16 {
                let mut tx = Outcome::new(Verdict::Tx { start: 0, len: 100, reason: TxReason::Encapsulated });
                (tx.customer, tx.tunnel) = (Some(c), Some(c));
                (0..n).for_each(|_| stats.count(&tx, 100));
            }
            stats
        };
        // Worker q0 counted 7 of each and took up the reload (acme's carried by name); q1
        // counted 5 of each and is still on the configuration before.
        let mut moved = counted(&old, 7);
        moved.rebind(&new, &new.succession_from(&old));
        let report = |queue: u32, stats: WorkerStats, snap: &Arc<Snapshot>| {
            Arc::new(Mutex::new(WorkerReport { queue, stats, snapshot: Some(snap.clone()), ..WorkerReport::default() }))
        };
        let mut src = sources(WorkerStats::default(), new.clone());
        Arc::get_mut(&mut src).unwrap().workers = vec![report(0, moved, &new), report(1, counted(&old, 5), &old)];
        let samples = parse(&render(&src, Format::OpenMetrics));
        let sent = |name: &str, label: &str, value: &str| -> Vec<(String, f64)> {
            let of = |s: &&Sample| s.name == name && s.label(label) == value;
            samples.iter().filter(of).map(|s| (s.label("customer").to_string(), s.value)).collect()
        };
        assert_eq!(sent("transitd_customer_packets_total", "verdict", "tx"), [("acme".to_string(), 12.0)]);
        assert_eq!(sent("transitd_tunnel_packets_total", "direction", "sent"), [("acme".to_string(), 12.0)]);
        let dropped = sent("transitd_tunnel_received_dropped_packets_total", "tunnel", "beta-gre");
        assert_eq!(dropped, Vec::<(String, f64)>::new());
    }

    /// The recent batch durations are a summary, and OpenMetrics 1.0 ("Summary") says a
    /// quantile of a timeframe without events is NaN: a worker without batches in its window
    /// is not said to take 0 s. Its count is the whole run's, and `transitd stats` shows no
    /// time for it.
    #[test]
    fn recent_quantiles_of_a_window_without_batches_are_nan() {
        let snap = Arc::new(snapshot_with("", ""));
        let src = sources(WorkerState::new(&snap).stats, snap);
        src.workers[0].lock().unwrap().latency_window.reset();
        let text = render(&src, Format::OpenMetrics);
        let samples = parse(&text);
        let recent: Vec<&Sample> =
            samples.iter().filter(|s| s.name == "transitd_batch_duration_recent_seconds").collect();
        let quantiles: Vec<&str> = recent.iter().map(|s| s.label("quantile")).collect();
        assert_eq!(quantiles, ["0.5", "0.9", "0.99", "0.999", "1.0"], "canonical, increasing");
        assert!(recent.iter().all(|s| s.value.is_nan()), "{text}");
        let count = samples.iter().find(|s| s.name == "transitd_batch_duration_recent_seconds_count");
        assert_eq!(count.map(|s| s.value), Some(3.0), "the whole run's");
        let people = for_people("127.0.0.1:9469".parse().unwrap(), &text, None);
        let worker = people.lines().find(|l| l.starts_with("q3 ")).unwrap_or_else(|| panic!("{people}"));
        assert!(worker.ends_with("   - / - / -"), "{worker}");
        // A worker with no batch at all sums to 0 (it was written `-0`, `f64`'s empty sum).
        src.workers[0].lock().unwrap().latency.reset();
        let text = render(&src, Format::OpenMetrics);
        let sums: Vec<&str> = text.lines().filter(|l| l.contains("_sum{")).collect();
        assert!(sums.len() >= 2 && sums.iter().all(|l| l.ends_with(" 0.0") || l.ends_with(" 0")), "{sums:?}");
    }

    /// XDP maps a reload left holding what the running configuration does not (their
    /// traffic redirected to workers that do not serve it) are a fault the operator must
    /// see: served as a gauge, 0 otherwise.
    #[test]
    fn xdp_maps_left_stale_by_a_reload_are_served() {
        let snap = Arc::new(snapshot_with("", ""));
        let src = sources(WorkerState::new(&snap).stats, snap);
        let stale = |src: &Arc<Sources>| {
            parse(&render(src, Format::OpenMetrics))
                .iter()
                .find(|s| s.name == "transitd_xdp_maps_stale")
                .map(|s| s.value)
        };
        assert_eq!(stale(&src), Some(0.0));
        src.reloads.xdp_maps_stale.store(true, Ordering::Relaxed);
        assert_eq!(stale(&src), Some(1.0));
    }

    /// A run without its punt device (one that could not be made at start) drops what it
    /// would carry: served as a gauge, where the packet counters show it only once such
    /// frames come.
    #[test]
    fn a_run_without_its_punt_device_is_served_as_such() {
        let snap = Arc::new(snapshot_with("", ""));
        let mut src = sources(WorkerState::new(&snap).stats, snap);
        // Rate 0 makes no device (nothing is asked of the kernel): as one that failed.
        Arc::get_mut(&mut src).unwrap().punt = Some(crate::punt::PuntDevice::create("td-test", 0));
        let samples = parse(&render(&src, Format::OpenMetrics));
        let up = samples.iter().find(|s| s.name == "transitd_punt_device_up").map(|s| s.value);
        assert_eq!(up, Some(0.0));
    }

    /// The customer prefixes reloads removed and hold for `withdrawn_grace_ms` are served as a
    /// gauge with `[bgp]`, counted at the scrape: one whose grace has ended is not, though the
    /// snapshot keeps it until the next reload (out of the XDP program's map by then).
    #[test]
    fn prefixes_held_for_their_grace_are_served_while_it_lasts() {
        let build = |prefixes: &str, grace_ms: u64| {
            let text = format!(
                "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdrawn_grace_ms = {grace_ms}\n\
                 [[customer]]\nname = \"a\"\nprefixes = [{prefixes}]\n"
            );
            Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap()
        };
        let old = build("\"203.0.113.0/24\", \"198.18.0.0/24\", \"2001:db8:acbe::/48\"", 60_000);
        let held = |grace_ms: u64| {
            let mut new = build("\"203.0.113.0/24\"", grace_ms);
            new.withdrawn = crate::snapshot::Withdrawn::after(&old, &new, std::time::Instant::now());
            let src = sources(WorkerStats::default(), Arc::new(new));
            src.bgp.configured.store(true, Ordering::Relaxed);
            src
        };
        let gauge = |src: &Arc<Sources>| {
            parse(&render(src, Format::OpenMetrics))
                .iter()
                .find(|s| s.name == "transitd_bgp_held_prefixes")
                .map(|s| s.value)
        };
        assert_eq!(gauge(&held(60_000)), Some(2.0), "198.18.0.0/24 and 2001:db8:acbe::/48");
        let ended = held(1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(ended.snapshot.load().withdrawn.len(), 2, "kept until the next reload");
        assert_eq!(gauge(&ended), Some(0.0), "their grace ended");
        // Without [bgp] nothing is held, and no BGP family is served.
        let snap = Arc::new(snapshot_with("", ""));
        assert_eq!(gauge(&sources(WorkerStats::default(), snap)), None);
    }

    /// A health-checked tunnel its probes have not judged yet (no probe answered nor
    /// down_after missed: at start, after a reload that added it, for ever while its probes
    /// cannot be sent) takes traffic, and transitd_tunnel_up says 1; transitd_tunnel_judged
    /// says its state is unknown, as `transitd stats` does. Up alone could not tell it from
    /// a tunnel that answers, while withdraw_customers_without_tunnels does not count on it.
    #[test]
    fn a_tunnel_not_judged_yet_is_told_from_one_that_answers() {
        let snap = Arc::new(snapshot_with("", ""));
        let scrape = |snap: &Arc<Snapshot>| {
            let (text, samples) = scrape_samples(snap);
            let get = |name: &str, tunnel: &str| {
                samples.iter().find(|s| s.name == name && s.label("tunnel") == tunnel).map(|s| s.value)
            };
            let people = for_people("127.0.0.1:9469".parse().unwrap(), &text, None);
            let health = people.lines().find(|l| l.starts_with("acme-gre ")).and_then(|l| l.split_whitespace().nth(2));
            (
                get("transitd_tunnel_up", "acme-gre"),
                get("transitd_tunnel_judged", "acme-gre"),
                get("transitd_tunnel_judged", "acme-spare"),
                health.map(str::to_string),
            )
        };
        assert_eq!(scrape(&snap), (Some(1.0), Some(0.0), None, Some("unknown".to_string())), "not judged yet");
        snap.health.set_judged(0);
        assert_eq!(scrape(&snap), (Some(1.0), Some(1.0), None, Some("up".to_string())), "answered");
        snap.health.set_up(0, false);
        assert_eq!(scrape(&snap), (Some(0.0), Some(1.0), None, Some("DOWN".to_string())), "gone down");
    }

    /// A tunnel that goes down and comes back between two scrapes reads up at both: the
    /// count of its downs says it flapped. Only health-checked tunnels have one.
    #[test]
    fn a_tunnel_that_flaps_between_scrapes_is_counted() {
        let snap = Arc::new(snapshot_with("", ""));
        let scrape = |snap: &Arc<Snapshot>| {
            let (_, samples) = scrape_samples(snap);
            let get = |name: &str, tunnel: &str| {
                samples.iter().find(|s| s.name == name && s.label("tunnel") == tunnel).map(|s| s.value)
            };
            (
                get("transitd_tunnel_up", "acme-gre"),
                get("transitd_tunnel_downs_total", "acme-gre"),
                get("transitd_tunnel_downs_total", "acme-spare"),
            )
        };
        assert_eq!(scrape(&snap), (Some(1.0), Some(0.0), None));
        for up in [false, true, false, true] {
            snap.health.set_up(0, up);
        }
        assert_eq!(scrape(&snap), (Some(1.0), Some(2.0), None), "up at both scrapes, down twice between");
    }

    /// acme's one route takes acme-gre; acme-spare (not checked: always up) is in none. With
    /// acme-gre down its prefix's traffic has nowhere to go: counted unreachable, though
    /// acme-spare reads 1 in transitd_tunnel_up, which by customer said acme had a tunnel up.
    #[test]
    fn a_prefix_whose_routes_tunnels_are_down_is_unreachable_whatever_a_spare_says() {
        let snap = Arc::new(snapshot_with("", ""));
        let scrape = |snap: &Arc<Snapshot>| {
            let (_, samples) = scrape_samples(snap);
            let unreachable = samples
                .iter()
                .find(|s| s.name == "transitd_customer_unreachable_prefixes" && s.label("customer") == "acme")
                .map(|s| s.value);
            let best_tunnel = samples
                .iter()
                .filter(|s| s.name == "transitd_tunnel_up" && s.label("customer") == "acme")
                .map(|s| s.value)
                .fold(0.0, f64::max);
            (unreachable, best_tunnel)
        };
        assert_eq!(scrape(&snap), (Some(0.0), 1.0));
        snap.health.set_up(0, false);
        assert_eq!(scrape(&snap), (Some(1.0), 1.0), "acme-spare up, and no route takes it");
    }

    /// A /24 routed as two /25s over two tunnels: with one of them down, half its traffic has
    /// nowhere to go, and BGP cannot withdraw the half, so the prefix stays announced. It is
    /// partly unreachable, not unreachable (the other half is served, as
    /// withdraw_customers_without_tunnels judges it); both down, it is unreachable, and no
    /// longer partly. Counted as served, the half lost was in no gauge and paged no one.
    #[test]
    fn a_prefix_half_of_whose_routes_take_dead_tunnels_is_partly_unreachable() {
        let text = r#"
[server]
anycast = "192.0.2.1"
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24", "198.18.0.0/24"]
[[customer.tunnel]]
name = "east"
remote = "198.51.100.1"
interface = "10.99.0.0/31"
[[customer.tunnel]]
name = "west"
remote = "198.51.100.2"
interface = "10.99.0.2/31"
[[customer.route]]
prefix = "203.0.113.0/25"
tunnel = "east"
[[customer.route]]
prefix = "203.0.113.128/25"
tunnel = "west"
[[customer.route]]
prefix = "198.18.0.0/24"
tunnel = "east"
[[customer.route]]
prefix = "198.18.0.0/24"
tunnel = "west"
"#;
        let snap = Arc::new(Snapshot::build(&crate::config::parse("test.toml", text).unwrap()).unwrap());
        let scrape = |snap: &Arc<Snapshot>| {
            let (_, samples) = scrape_samples(snap);
            let get =
                |name: &str| samples.iter().find(|s| s.name == name && s.label("customer") == "acme").map(|s| s.value);
            (get("transitd_customer_unreachable_prefixes"), get("transitd_customer_partly_unreachable_prefixes"))
        };
        assert_eq!(scrape(&snap), (Some(0.0), Some(0.0)), "both up");
        snap.health.set_up(1, false);
        // 198.18.0.0/24's one route takes east as well as west: served whole.
        assert_eq!(scrape(&snap), (Some(0.0), Some(1.0)), "west down: 203.0.113.128/25 is lost here");
        snap.health.set_up(0, false);
        assert_eq!(scrape(&snap), (Some(2.0), Some(0.0)), "both down: unreachable whole");
        snap.health.set_up(1, true);
        assert_eq!(scrape(&snap), (Some(0.0), Some(1.0)), "east down: 203.0.113.0/25 is lost here");
    }

    /// A tunnel whose outer packet would not fit the served interface's MTU is scraped at
    /// what the data plane holds it to (a 1400-byte veth: 1400 less 24 bytes of GRE over
    /// IPv4), not at its `mtu`. Needs root, as the lab tests do.
    #[test]
    fn a_tunnel_past_the_interfaces_mtu_is_scraped_at_what_fits() {
        let snap = Arc::new(snapshot_with("", ""));
        let mut sources = sources(WorkerStats::default(), snap);
        Arc::get_mut(&mut sources).unwrap().link_mtu = Some(Arc::new(std::sync::atomic::AtomicUsize::new(1400)));
        let samples = parse(&render(&sources, Format::OpenMetrics));
        let mtu = |t: &str| samples.iter().find(|s| s.name == "transitd_tunnel_mtu_bytes" && s.label("tunnel") == t);
        assert_eq!(mtu("acme-spare").map(|s| s.value), Some(1376.0));
        assert_eq!(mtu("acme-gre").map(|s| s.value), Some(1376.0));
    }

    /// A monitor-mode rate limit's preview is scraped per rule, beside its hits; an enforced
    /// rate limit, which counts its refusals as `rate_limited` drops, has no preview sample.
    #[test]
    fn scrapes_say_what_a_monitor_mode_rate_limit_would_refuse() {
        let bucket = "[[dos.bucket]]\nname = \"two\"\nkey = \"destination\"\nrate = 1\nburst = 2";
        let rules = r#"
[[customer.firewall.rule]]
name = "preview"
match = "tcp.flags.syn == 1"
action = "rate-limit"
bucket = "two"
mode = "monitor"
[[customer.firewall.rule]]
name = "enforced"
match = "tcp"
action = "rate-limit"
bucket = "two"
"#;
        let snap = Arc::new(snapshot_with(bucket, rules));
        let mut syn = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 8, 8], [203, 0, 113, 9], 60)
            .tcp(1000, 80, 1, 1000)
            .syn()
            .write(&mut syn, b"")
            .unwrap();
        let mut bufs: Vec<Vec<u8>> = (0..5).map(|_| [vec![0; HEADROOM], syn.clone(), vec![0; 256]].concat()).collect();
        let mut frames: Vec<Frame<'_>> =
            bufs.iter_mut().map(|b| Frame::new(b, HEADROOM, syn.len(), syn.len() as u32, 0)).collect();
        let mut state = WorkerState::new(&snap);
        process_batch(&snap, &mut frames, &mut state);
        // Five SYNs at one instant: the enforced rule's bucket lets two through, and so
        // would the monitor-mode rule's, were it enforced (its own tokens: the same two).
        let verdicts: Vec<_> = frames.iter().map(|f| f.verdict.kind()).collect();
        assert_eq!(verdicts, ["tx", "tx", "drop", "drop", "drop"]);
        let samples = parse(&render(&sources(state.stats, snap), Format::OpenMetrics));
        let get = |name: &str, rule: &str| -> Vec<f64> {
            let labels = |s: &&client::Sample| s.label("customer") == "acme" && s.label("rule") == rule;
            samples.iter().filter(|s| s.name == name).filter(labels).map(|s| s.value).collect()
        };
        assert_eq!(get("transitd_rule_hits_total", "preview"), [5.0]);
        assert_eq!(get("transitd_rule_would_limit_total", "preview"), [3.0]);
        assert_eq!(get("transitd_rule_would_limit_total", "enforced"), [0.0; 0]);
    }

    #[test]
    fn the_parser_undoes_label_escapes() {
        let s = parse("m_total{a=\"x\\\"y\",b=\"1\\\\2\"} 3\n# EOF\n");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].label("a"), s[0].label("b"), s[0].value), ("x\"y", "1\\2", 3.0));
    }
}
