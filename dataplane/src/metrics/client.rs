//! `transitd stats`: scraping a running transitd and printing its metrics for a person.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest response read: a scrape of the largest configuration is a few MiB, and
/// whatever answers at the address cannot make the client grow past this.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Scrapes `addr`'s `/metrics` in OpenMetrics (HTTP/1.0, 5 s timeouts): what [`parse`] and
/// the readers of `transitd stats --raw` expect (a client that does not ask gets the text
/// format 0.0.4).
pub fn fetch(addr: SocketAddr) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let timeout = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| anyhow::anyhow!("{addr}: {e} (is `transitd run` running, with --metrics {addr}?)"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // Errors name the address and say what they mean here ("Resource temporarily
    // unavailable" is a server that never answered).
    let said = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow::anyhow!("{addr}: no answer within {} s", timeout.as_secs())
        }
        std::io::ErrorKind::InvalidData => anyhow::anyhow!("{addr}: the answer is not UTF-8 text: is it transitd?"),
        _ => anyhow::anyhow!("{addr}: {e}"),
    };
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n"
    )
    .map_err(said)?;
    let mut response = String::new();
    stream.take(MAX_RESPONSE_BYTES + 1).read_to_string(&mut response).map_err(said)?;
    anyhow::ensure!(
        response.len() as u64 <= MAX_RESPONSE_BYTES,
        "{addr}: the response is longer than {} MiB: is it transitd?",
        MAX_RESPONSE_BYTES >> 20
    );
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
    let now = parse(text);
    let started =
        |samples: &[Sample]| samples.iter().find(|s| s.name == "transitd_start_time_seconds").map(|s| s.value);
    let then = before.map(|(t, dt)| {
        let old = parse(t);
        match (started(&old), started(&now)) {
            // Restarted between the readings: its counters began at 0 when it started, so
            // the rates are over its life since, not against the old process's counts.
            (Some(was), Some(is)) if was != is => {
                // Its uptime by this machine's clock (another's, with --metrics remote),
                // within the interval; the interval itself where the clocks disagree.
                let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                let up = wall - is;
                (HashMap::new(), if up > 0.0 { up.min(dt).max(1e-3) } else { dt })
            }
            _ => (old.into_iter().map(|o| ((o.name, o.labels), o.value)).collect(), dt),
        }
    });
    let mut families: HashMap<&str, Vec<&Sample>> = HashMap::new();
    for s in &now {
        families.entry(s.name.as_str()).or_default().push(s);
    }
    let view = View { families, then };
    let mut out = String::new();
    view.header(&mut out, addr);
    view.workers(&mut out);
    view.verdicts(&mut out);
    view.customers(&mut out);
    view.tunnels(&mut out);
    view.sockets(&mut out);
    view.host(&mut out);
    view.services(&mut out);
    out
}

/// A scrape as the report reads it: its samples by metric and, for rates, an earlier
/// scrape's values and the seconds between the two. Every section is one pass over the
/// samples it shows (whatever answers at the address may send a million of one metric).
struct View<'a> {
    families: HashMap<&'a str, Vec<&'a Sample>>,
    then: Option<(HashMap<SampleKey, f64>, f64)>,
}

/// The first sample of each key among `samples`, as a search from the start finds it.
fn first_by<'s, K: std::hash::Hash + Eq>(
    samples: impl Iterator<Item = &'s Sample>,
    key: impl Fn(&'s Sample) -> K,
) -> HashMap<K, &'s Sample> {
    let mut map = HashMap::new();
    for s in samples {
        map.entry(key(s)).or_insert(s);
    }
    map
}

impl View<'_> {
    /// A counter's total, or its rate over the interval.
    fn value(&self, s: &Sample) -> f64 {
        match &self.then {
            Some((old, dt)) => {
                let was = old.get(&(s.name.clone(), s.labels.clone())).copied().unwrap_or(0.0);
                (s.value - was).max(0.0) / dt
            }
            None => s.value,
        }
    }

    /// The samples of metric `name`.
    fn find<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Sample> + 's {
        self.families.get(name).into_iter().flatten().copied()
    }

    /// The first sample of `name`, as scraped, or 0.
    fn one(&self, name: &str) -> f64 {
        self.find(name).next().map_or(0.0, |s| s.value)
    }

    /// "/s" when showing rates: for column headings.
    fn unit(&self) -> &'static str {
        if self.then.is_some() { "/s" } else { "" }
    }

    /// " (per second)" when showing rates: for a line's or a section's name, before its
    /// colon (an interface's name with "/s" on it read as another name).
    fn per_second(&self) -> &'static str {
        if self.then.is_some() { " (per second)" } else { "" }
    }

    /// The samples of `name` as `LABEL VALUE` each, `label`'s value and the count or rate.
    fn named(&self, name: &str, label: &str) -> Vec<String> {
        self.find(name).map(|s| format!("{} {:.0}", s.label(label), self.value(s))).collect()
    }

    /// Version, address, uptime, reloads.
    fn header(&self, out: &mut String, addr: SocketAddr) {
        let version = self.find("transitd_build_info").next().map_or("?", |s| s.label("version")).to_string();
        let started = self.one("transitd_start_time_seconds");
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let reloads = |result: &str| {
            self.find("transitd_config_reloads_total").find(|s| s.label("result") == result).map_or(0.0, |s| s.value)
        };
        let _ = writeln!(
            out,
            "transitd {version} at {addr}, up {}; configuration reloads: {} applied, {} rejected",
            human_duration(wall - started),
            reloads("applied"),
            reloads("rejected"),
        );
        if let Some(up) = self.find("transitd_config_source_up").next() {
            let state = if up.value == 1.0 { "reachable" } else { "UNREACHABLE: the last good configuration runs" };
            let _ = writeln!(out, "configuration from etcd: {state}");
        }
        if self.one("transitd_xdp_maps_stale") > 0.0 {
            let _ = writeln!(
                out,
                "XDP maps STALE: they hold prefixes or tunnel remotes the running configuration does not \
                 (their traffic goes to the workers; tried again every second)"
            );
        }
        if let Some((old, dt)) = &self.then {
            let _ = writeln!(out, "(rates per second over {dt:.2} s)");
            if old.is_empty() {
                let _ = writeln!(out, "(transitd restarted between the two readings: the rates are since its start)");
            }
        }
    }

    /// A line per worker: traffic and recent batch durations.
    fn workers(&self, out: &mut String) {
        let unit = self.unit();
        let _ = writeln!(
            out,
            "\n{:<8} {:>14} {:>16} {:>14} {:>16}   batch p50 / p99 / max (last 10 s)",
            "worker",
            format!("rx pkts{unit}"),
            format!("rx bytes{unit}"),
            format!("tx pkts{unit}"),
            format!("tx bytes{unit}")
        );
        let by_worker = |name: &str| first_by(self.find(name), |x| x.label("worker"));
        let families = ["transitd_rx_bytes_total", "transitd_tx_packets_total", "transitd_tx_bytes_total"];
        let [rx_bytes, tx_packets, tx_bytes] = families.map(by_worker);
        let quantiles =
            first_by(self.find("transitd_batch_duration_recent_seconds"), |x| (x.label("worker"), x.label("quantile")));
        for s in self.find("transitd_rx_packets_total") {
            let w = s.label("worker");
            let of = |family: &HashMap<&str, &Sample>| family.get(w).map_or(0.0, |x| self.value(x));
            // A quantile is NaN for a window without batches (shown as `-`). The maximum's
            // label is `1` from a transitd that served the quantiles as gauges, not a summary.
            let q = |quantile: &str| quantiles.get(&(w, quantile)).map_or(0.0, |x| x.value);
            let max = quantiles.get(&(w, "1.0")).or_else(|| quantiles.get(&(w, "1"))).map_or(0.0, |x| x.value);
            let _ = writeln!(
                out,
                "{w:<8} {:>14.0} {:>16.0} {:>14.0} {:>16.0}   {} / {} / {}",
                self.value(s),
                of(&rx_bytes),
                of(&tx_packets),
                of(&tx_bytes),
                human_seconds(q("0.5")),
                human_seconds(q("0.99")),
                human_seconds(max),
            );
        }
    }

    /// Frames by verdict and reason, summed over workers, in the run report's order.
    fn verdicts(&self, out: &mut String) {
        let _ = writeln!(out, "\nverdicts (all workers, non-zero)");
        let sum = |name: &str| self.find(name).map(|s| self.value(s)).sum::<f64>();
        let (whole, lost) = (sum("transitd_gre_reassembled_total"), sum("transitd_gre_reassembly_discarded_total"));
        crate::report::reassembled(out, whole, lost);
        let mut by_reason: HashMap<(&str, &str), f64> = HashMap::new();
        for s in self.find("transitd_packets_total") {
            *by_reason.entry((s.label("verdict"), s.label("reason"))).or_default() += self.value(s);
        }
        crate::report::reasons(out, |r| by_reason.remove(&(r.verdict(), r.name())).unwrap_or(0.0));
        // Reasons this binary does not know (a newer transitd answering): after the others.
        let mut unknown: Vec<_> = by_reason.into_iter().collect();
        unknown.sort_by(|a, b| a.0.cmp(&b.0));
        for ((verdict, reason), n) in unknown {
            crate::report::line(out, verdict, reason, n);
        }
    }

    /// A line per customer: packets by verdict.
    fn customers(&self, out: &mut String) {
        let mut customers: Vec<&str> =
            self.find("transitd_customer_packets_total").map(|s| s.label("customer")).collect();
        customers.dedup();
        if customers.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n{:<20} {:>14} {:>14} {:>14} {:>14}   (packets{})",
            "customer",
            "tx",
            "pass",
            "drop",
            "consumed",
            self.unit()
        );
        // One pass over the samples, so that many customers cost linear time.
        let by_verdict: HashMap<(&str, &str), f64> = self
            .find("transitd_customer_packets_total")
            .map(|s| ((s.label("customer"), s.label("verdict")), self.value(s)))
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

    /// A line per tunnel: health and packets each way.
    fn tunnels(&self, out: &mut String) {
        let mut tunnels: Vec<(&str, &str)> =
            self.find("transitd_tunnel_packets_total").map(|s| (s.label("tunnel"), s.label("customer"))).collect();
        tunnels.dedup();
        if tunnels.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n{:<20} {:<14} {:<8} {:>6} {:>14} {:>14} {:>14}   (packets{})",
            "tunnel",
            "customer",
            "health",
            "mtu",
            "received",
            "dropped",
            "sent",
            self.unit()
        );
        let packets: HashMap<(&str, &str), f64> = self
            .find("transitd_tunnel_packets_total")
            .map(|s| ((s.label("tunnel"), s.label("direction")), self.value(s)))
            .collect();
        let dropped: HashMap<&str, f64> = self
            .find("transitd_tunnel_received_dropped_packets_total")
            .map(|s| (s.label("tunnel"), self.value(s)))
            .collect();
        // Only a checked tunnel's state is news (one not checked is always up).
        let up: HashMap<&str, f64> = self
            .find("transitd_tunnel_up")
            .filter(|s| s.label("checked") != "false")
            .map(|s| (s.label("tunnel"), s.value))
            .collect();
        // Up, and not judged yet: it takes traffic but is not known to work. (A transitd
        // older than the metric serves none: its tunnels are shown as up says.)
        let unjudged: HashSet<&str> =
            self.find("transitd_tunnel_judged").filter(|s| s.value <= 0.0).map(|s| s.label("tunnel")).collect();
        // What each takes now: its `mtu`, or less while a path MTU the underlay reported
        // holds it or where its outer packet would not fit the interface.
        let mtu: HashMap<&str, f64> =
            self.find("transitd_tunnel_mtu_bytes").map(|s| (s.label("tunnel"), s.value)).collect();
        for (t, c) in tunnels {
            let mtu = mtu.get(t).map_or_else(|| "-".to_string(), |m| format!("{m:.0}"));
            let health = match up.get(t) {
                Some(v) if *v > 0.0 && unjudged.contains(t) => "unknown",
                Some(v) if *v > 0.0 => "up",
                Some(_) => "DOWN",
                None => "-",
            };
            let _ = writeln!(
                out,
                "{t:<20} {c:<14} {health:<8} {mtu:>6} {:>14.0} {:>14.0} {:>14.0}",
                packets.get(&(t, "received")).copied().unwrap_or(0.0),
                dropped.get(t).copied().unwrap_or(0.0),
                packets.get(&(t, "sent")).copied().unwrap_or(0.0),
            );
        }
    }

    /// A line per AF_XDP socket: bind mode, frames, what the kernel dropped.
    fn sockets(&self, out: &mut String) {
        let mut sockets = String::new();
        let events = first_by(self.find("transitd_afxdp_events_total"), |x| (x.label("worker"), x.label("event")));
        let mut drops_of: HashMap<&str, Vec<String>> = HashMap::new();
        for x in self.find("transitd_afxdp_kernel_drops_total").filter(|x| x.value > 0.0) {
            drops_of.entry(x.label("worker")).or_default().push(format!("{} {:.0}", x.label("reason"), self.value(x)));
        }
        for s in self.find("transitd_afxdp_zero_copy") {
            let w = s.label("worker");
            let event = |e: &str| events.get(&(w, e)).map_or(0.0, |x| self.value(x));
            // A worker said twice (no transitd does) is shown once with its drops.
            let drops = drops_of.remove(w).unwrap_or_default();
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
            let _ = write!(out, "\nAF_XDP sockets{}\n{sockets}", self.per_second());
        }
    }

    /// The XDP program's decisions, the interface's own counters, the drop capture.
    fn host(&self, out: &mut String) {
        let per_second = self.per_second();
        let _ = writeln!(out, "\nxdp{per_second}: {}", self.named("transitd_xdp_packets_total", "action").join(", "));
        // Each interface once, in the order first seen, its counters in theirs.
        let mut interfaces: Vec<&str> = Vec::new();
        let mut counters: HashMap<&str, Vec<String>> = HashMap::new();
        for s in self.find("transitd_interface_packets_total") {
            let i = s.label("interface");
            let seen = counters.entry(i).or_insert_with(|| {
                interfaces.push(i);
                Vec::new()
            });
            seen.push(format!("{} {:.0}", s.label("counter"), self.value(s)));
        }
        for i in interfaces {
            let shown = counters.get(i).map(|c| c.join(", ")).unwrap_or_default();
            let _ = writeln!(out, "interface {i}{per_second}: {shown}");
        }
        let capture = self.named("transitd_drop_capture_packets_total", "result");
        if !capture.is_empty() {
            let bytes = self.one("transitd_drop_capture_file_bytes");
            // The file's size is a size, not a rate.
            let _ = writeln!(out, "drop capture{per_second}: {}; the file holds {bytes} bytes", capture.join(", "));
        }
    }

    /// BGP announcements, the IPFIX export and the punt path, each where it runs: whether
    /// the edge is announced, whether the collector gets its records, whether the host gets
    /// what the pipeline passes it. They were in the raw scrape alone.
    fn services(&self, out: &mut String) {
        let per_second = self.per_second();
        let mut said = String::new();
        if let Some(announced) = self.find("transitd_bgp_announced_prefixes").next() {
            let set = |name: &str| self.one(name) > 0.0;
            let withdrawn =
                if set("transitd_bgp_withdrawn") { ", every announcement WITHDRAWN (the log says why)" } else { "" };
            let bird = match set("transitd_bgp_bird_in_sync") {
                true => "BIRD in sync",
                false => "BIRD NOT IN SYNC (it refuses its configuration, or cannot be reached)",
            };
            // Gauges: what is held now, not a rate.
            let held = self.one("transitd_bgp_held_prefixes");
            let held = if held > 0.0 { format!("; {held:.0} held after a reload removed them") } else { String::new() };
            let _ = writeln!(said, "bgp: {:.0} prefixes announced{withdrawn}; {bird}{held}", announced.value);
        }
        let ipfix = self.named("transitd_ipfix_total", "what");
        if !ipfix.is_empty() {
            let _ = writeln!(said, "ipfix{per_second}: {}", ipfix.join(", "));
        }
        let punt = self.named("transitd_punt_packets_total", "result");
        if !punt.is_empty() {
            let device = match self.find("transitd_punt_device_up").next() {
                Some(up) if up.value > 0.0 => "up",
                Some(_) => "DOWN",
                None => "-",
            };
            let _ = writeln!(said, "punt{per_second}: {}; the device is {device}", punt.join(", "));
        }
        if !said.is_empty() {
            let _ = write!(out, "\n{said}");
        }
    }
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
    if v.is_nan() || v <= 0.0 {
        "-".to_string()
    } else if v < 1e-3 {
        format!("{:.1} µs", v * 1e6)
    } else {
        format!("{:.2} ms", v * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    /// Whatever answers at the address, the client reads at most 64 MiB of it (it read to
    /// the end: an endless answer grew `transitd stats` to gigabytes in seconds).
    #[test]
    fn an_endless_answer_is_refused_at_the_bound() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
            let chunk = vec![b'#'; 1 << 20];
            for _ in 0..100 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let e = super::fetch(addr).unwrap_err();
        assert!(e.to_string().contains("longer than 64 MiB"), "{e}");
        server.join().unwrap();
    }

    /// The GRE datagrams reassembled, summed over workers, under the verdicts; none said
    /// while none were.
    #[test]
    fn reassembled_datagrams_are_said_under_the_verdicts() {
        let addr = "127.0.0.1:9469".parse().unwrap();
        let scrape = |whole: [u64; 2], lost: u64| {
            format!(
                "# TYPE transitd_gre_reassembled counter\n\
                 transitd_gre_reassembled_total{{worker=\"0\"}} {}\n\
                 transitd_gre_reassembled_total{{worker=\"1\"}} {}\n\
                 # TYPE transitd_gre_reassembly_discarded counter\n\
                 transitd_gre_reassembly_discarded_total{{worker=\"0\"}} {lost}\n# EOF\n",
                whole[0], whole[1]
            )
        };
        let report = super::for_people(addr, &scrape([7, 5], 2), None);
        let line = "reassembled          12  (GRE datagrams from fragments; 2 given up)";
        assert!(report.contains(line), "{report}");
        assert!(!super::for_people(addr, &scrape([0, 0], 0), None).contains("reassembled"));
    }

    /// A report is one pass over each metric's samples: 200,000 workers (what a hostile
    /// answer might send; the 64 MiB read bound allows millions) render, each with its own
    /// counters, where a search of every sample per worker took hours. Each worker's values
    /// are its own, whatever order the families come in.
    #[test]
    fn a_scrape_of_many_samples_renders_each_workers_own() {
        let addr = "127.0.0.1:9469".parse().unwrap();
        let n = 200_000;
        let mut text = String::new();
        for family in ["transitd_tx_packets_total", "transitd_rx_packets_total", "transitd_rx_bytes_total"] {
            for w in (0..n).rev() {
                let value = if family == "transitd_rx_bytes_total" { w * 3 } else { w * 2 };
                text.push_str(&format!("{family}{{worker=\"{w}\"}} {value}\n"));
            }
        }
        for w in 0..n {
            text.push_str(&format!("transitd_afxdp_zero_copy{{worker=\"{w}\"}} 0\n"));
            text.push_str(&format!("transitd_interface_packets_total{{interface=\"if{}\",counter=\"rx\"}} 1\n", w % 2));
        }
        let report = super::for_people(addr, &text, None);
        let line = |w: u64| report.lines().find(|l| l.starts_with(&format!("{w} "))).unwrap_or("").to_string();
        let fields = |w: u64| line(w).split_whitespace().take(4).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(fields(7), ["7", "14", "21", "14"], "{}", line(7));
        assert_eq!(
            fields(n - 1),
            [(n - 1).to_string(), (2 * (n - 1)).to_string(), (3 * (n - 1)).to_string(), (2 * (n - 1)).to_string()]
        );
        // Interfaces once each, in the order first seen, with all their counters.
        let interfaces: Vec<&str> = report.lines().filter(|l| l.starts_with("interface ")).collect();
        assert_eq!(interfaces.len(), 2, "{interfaces:?}");
        assert!(interfaces[0].starts_with("interface if0: rx 1, rx 1"), "{}", &interfaces[0][..40]);
    }

    /// Rates over two readings of one process are said plainly; across a restart (another
    /// start time), that they count only from it, not silently as zeros.
    #[test]
    fn a_restart_between_the_readings_is_said() {
        let addr = "127.0.0.1:9469".parse().unwrap();
        let scrape = |started: u64, frames: u64| {
            format!(
                "# TYPE transitd_start_time_seconds gauge\ntransitd_start_time_seconds {started}\n\
                 # TYPE transitd_rx_packets counter\ntransitd_rx_packets_total{{worker=\"0\"}} {frames}\n# EOF\n"
            )
        };
        let same = super::for_people(addr, &scrape(100, 300), Some((&scrape(100, 100), 2.0)));
        assert!(!same.contains("configuration from etcd"), "a file's configuration: {same}");
        let away = format!("# TYPE transitd_config_source_up gauge\ntransitd_config_source_up 0\n{}", scrape(100, 1));
        let report = super::for_people(addr, &away, None);
        assert!(report.contains("configuration from etcd: UNREACHABLE"), "{report}");
        assert!(same.contains("(rates per second over 2.00 s)") && !same.contains("restarted"), "{same}");
        let rx = |report: &str| {
            report
                .lines()
                .find_map(|l| l.strip_prefix("0 "))
                .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        };
        assert_eq!(rx(&same).as_deref(), Some("100"), "(300 - 100) / 2: {same}");
        // Started a second ago (within the two readings' 2 s): 30 frames since, 30 a second.
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 1;
        let restarted = super::for_people(addr, &scrape(wall, 30), Some((&scrape(100, 100), 2.0)));
        assert!(restarted.contains("transitd restarted between the two readings"), "{restarted}");
        // 30 over the one to two seconds it has run (its start is read in whole seconds);
        // against the old process's 100 it was 0.
        let rate: f64 = rx(&restarted).and_then(|r| r.parse().ok()).unwrap_or(0.0);
        assert!((15.0..=30.0).contains(&rate), "{restarted}");
        // A server clock ahead of this one (a start "in the future"): over the interval.
        let ahead = super::for_people(addr, &scrape(wall + 6, 30), Some((&scrape(100, 100), 2.0)));
        assert_eq!(rx(&ahead).as_deref(), Some("15"), "{ahead}");
    }

    /// With rates, the XDP program's, each interface's and the drop capture's lines say once,
    /// before their colon, that they are per second (they said nothing, and the interface's
    /// name had "/s" stuck to it: `interface eth0/s:`); the capture file's size stays a size.
    #[test]
    fn rate_lines_say_per_second_once() {
        let addr = "127.0.0.1:9469".parse().unwrap();
        let scrape = |n: u64| {
            format!(
                "transitd_xdp_packets_total{{action=\"redirected\"}} {n}\n\
                 transitd_interface_packets_total{{interface=\"eth0\",counter=\"rx_packets\"}} {n}\n\
                 transitd_drop_capture_packets_total{{result=\"written\"}} {n}\n\
                 transitd_drop_capture_file_bytes 4096\n# EOF\n"
            )
        };
        let rates = super::for_people(addr, &scrape(300), Some((&scrape(100), 2.0)));
        for line in ["xdp (per second): redirected 100", "interface eth0 (per second): rx_packets 100"] {
            assert!(rates.lines().any(|l| l == line), "{line}: {rates}");
        }
        let capture = "drop capture (per second): written 100; the file holds 4096 bytes";
        assert!(rates.lines().any(|l| l == capture), "{rates}");
        assert!(!rates.contains("/s:"), "{rates}");
        let totals = super::for_people(addr, &scrape(300), None);
        for line in ["xdp: redirected 300", "interface eth0: rx_packets 300"] {
            assert!(totals.lines().any(|l| l == line), "{line}: {totals}");
        }
        assert!(totals.lines().any(|l| l == "drop capture: written 300; the file holds 4096 bytes"), "{totals}");
    }

    /// BGP, the IPFIX export and the punt path are said where they run, as totals or rates
    /// (their state as it is), and nothing of them where they do not: a withdrawn edge, a
    /// collector's refused messages, a punt device gone were in the raw scrape alone. So is
    /// the XDP program's maps gone stale.
    #[test]
    fn bgp_ipfix_and_the_punt_path_are_said_where_they_run() {
        let addr = "127.0.0.1:9469".parse().unwrap();
        let scrape = |n: u64, announced: u64, healthy: u8| {
            let sick = 1 - healthy;
            format!(
                "transitd_bgp_announced_prefixes {announced}\n\
                 transitd_bgp_withdrawn {sick}\n\
                 transitd_bgp_bird_in_sync {healthy}\n\
                 transitd_bgp_held_prefixes {sick}\n\
                 transitd_ipfix_total{{what=\"records\"}} {n}\n\
                 transitd_ipfix_total{{what=\"send_errors\"}} 4\n\
                 transitd_punt_packets_total{{result=\"punted\"}} {n}\n\
                 transitd_punt_device_up {healthy}\n\
                 transitd_xdp_maps_stale {sick}\n# EOF\n"
            )
        };
        let totals = super::for_people(addr, &scrape(300, 3, 1), None);
        let lines = [
            "bgp: 3 prefixes announced; BIRD in sync",
            "ipfix: records 300, send_errors 4",
            "punt: punted 300; the device is up",
        ];
        for line in lines {
            assert!(totals.lines().any(|l| l == line), "{line}: {totals}");
        }
        assert!(!totals.contains("STALE"), "{totals}");
        let rates = super::for_people(addr, &scrape(300, 0, 0), Some((&scrape(100, 0, 0), 2.0)));
        let lines = [
            "bgp: 0 prefixes announced, every announcement WITHDRAWN (the log says why); BIRD NOT IN SYNC (it refuses \
             its configuration, or cannot be reached); 1 held after a reload removed them",
            "ipfix (per second): records 100, send_errors 0",
            "punt (per second): punted 100; the device is DOWN",
        ];
        for line in lines {
            assert!(rates.lines().any(|l| l == line), "{line}: {rates}");
        }
        assert!(rates.contains("XDP maps STALE"), "{rates}");
        let neither = super::for_people(addr, "transitd_rx_packets_total{worker=\"0\"} 1\n# EOF\n", None);
        let theirs = |l: &&str| ["bgp", "ipfix", "punt", "XDP maps"].iter().any(|p| l.starts_with(p));
        assert_eq!(neither.lines().filter(theirs).count(), 0, "{neither}");
    }
}
