//! The operator's alerting rules and dashboard (`deploy/`): Prometheus's own `promtool`
//! checks the rules and runs their unit tests, every PromQL expression of the Grafana
//! dashboard parses (promtool, as recording rules), and every transitd metric the rules and
//! the dashboard name is one a running transitd serves, whose scrape promtool finds clean.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::*;

fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian's prometheus package, installed by scripts/setup)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The `transitd_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("transitd_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        out.insert(name);
    }
    out
}

/// The PromQL expressions of the dashboard.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/transitd.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut exprs = Vec::new();
    for p in panels {
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {} has targets", p["title"]));
        assert!(!targets.is_empty(), "panel {} has targets", p["title"]);
        exprs.extend(targets.iter().map(|t| t["expr"].as_str().expect("a PromQL expression").to_string()));
    }
    exprs
}

/// `(metric, label, value)` of every equality matcher (`label="value"`) in a selector of a
/// transitd metric in `text`: a renamed label value would silently disable a rule whose
/// metric name still exists. Matchers on a dashboard variable (`$instance`) are left out.
fn label_matchers(text: &str) -> BTreeSet<(String, String, String)> {
    let text = text.replace("\\\"", "\"");
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("transitd_") {
        let name: String =
            text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        let Some(selector) = text[at + name.len()..].strip_prefix('{') else { continue };
        let Some(end) = selector.find('}') else { continue };
        for matcher in selector[..end].split(',') {
            let Some((label, value)) = matcher.split_once('=') else { continue };
            let (label, value) = (label.trim(), value.trim());
            if label.ends_with(['!', '=']) || value.starts_with(['~', '=']) || value.contains('$') {
                continue;
            }
            out.insert((name.clone(), label.to_string(), value.trim_matches('"').to_string()));
        }
    }
    out
}

/// Every metric family a running transitd serves, with the names its samples take: a
/// configuration (families are served whether or not they have samples yet), a drop capture
/// running and [bgp] configured (their families are served only then).
fn served() -> BTreeSet<String> {
    served_scrape().1
}

/// The scrape [`served`] reads, and the names.
fn served_scrape() -> (String, BTreeSet<String>) {
    let text = served_scrape_in(transitd::metrics::Format::OpenMetrics);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(ty)) = (words.next(), words.next()) else { continue };
        let suffixes: &[&str] = match ty {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_count", "_sum"],
            "summary" => &["", "_count", "_sum"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    assert!(names.len() > 20, "{text}");
    (text, names)
}

/// A scrape of a running transitd in `format`, with every family served. Each call has a
/// directory of its own: two tests call it at once, and one's clean-up would take the
/// other's drop capture away.
fn served_scrape_in(format: transitd::metrics::Format) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("transitd-alerting-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (capture, writer) =
        transitd::dropcap::DropCapture::start(transitd::dropcap::CaptureOptions::new(dir.join("drops.pcapng")), stop)
            .unwrap();
    // Two workers: one without batches, whose recent quantiles are NaN, and one with.
    let mut busy = transitd::worker::WorkerReport { queue: 1, ..Default::default() };
    for ns in [900, 1_500, 40_000] {
        busy.latency.record(ns).unwrap();
        busy.latency_window.record(ns).unwrap();
    }
    let sources = Arc::new(transitd::metrics::Sources {
        workers: vec![Arc::default(), Arc::new(std::sync::Mutex::new(busy))],
        // With its tunnel health-checked (an `interface`), as the dashboard's tunnel panel
        // selects `checked="true"`.
        snapshot: Arc::new(arc_swap::ArcSwap::from_pointee(snapshot(
            &lab::ACME.replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\""),
        ))),
        xdp: Default::default(),
        reloads: transitd::metrics::ReloadStats { etcd_up: Some(Arc::default()), ..Default::default() },
        bgp: transitd::metrics::BgpStats { configured: true.into(), ..Default::default() },
        ipfix: None,
        capture: Some(capture),
        // Rate 0: no device is made (nothing asked of the kernel), its families served.
        punt: Some(transitd::punt::PuntDevice::create("td-alerting", 0)),
        interface: None,
        link_mtu: None,
        started: 0,
    });
    let text = transitd::metrics::render(&sources, format);
    drop(writer);
    let _ = std::fs::remove_dir_all(&dir);
    text
}

/// `promtool check metrics` (Prometheus's own parser of the text format 0.0.4, and its
/// linter) on `text`: whether it found the text clean, and what it said.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by scripts/setup)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Exit status 1 is a text it cannot parse; 3 is lint problems, each on a line.
    (out.status.success() && said.trim().is_empty(), said)
}

/// A scraper that does not ask for OpenMetrics (curl, Telegraf, a textfile collector) gets
/// the text format 0.0.4: Prometheus's own parser and linter, `promtool check metrics`, read
/// a running transitd's whole scrape in it, every family served, and find nothing to say.
#[test]
fn the_text_format_scrape_passes_promtool() {
    let text = served_scrape_in(transitd::metrics::Format::Text);
    let (clean, said) = promtool_check_metrics(&text);
    assert!(clean, "promtool: {said}\n{text}");
    assert!(!text.contains("# EOF"), "{text}");
}

/// The recent batch durations carry a `quantile` label, so they are a summary (a gauge with
/// it is refused by promtool's linter), in both formats: written once and alike, before the
/// `# EOF` that ends an OpenMetrics scrape. promtool reads only the text format 0.0.4 (2.42
/// stops at OpenMetrics's `info` type), so it checks the OpenMetrics scrape's family alone;
/// the whole scrape goes to Python's OpenMetrics parser, which knows summaries (quantiles
/// within 0 and 1, no negative quantile value, a metric's samples together, integer counts).
#[test]
fn the_recent_batch_durations_are_one_summary_in_both_formats() {
    use std::io::Write as _;
    let name = "transitd_batch_duration_recent_seconds";
    let open_metrics = served_scrape_in(transitd::metrics::Format::OpenMetrics);
    let text = served_scrape_in(transitd::metrics::Format::Text);
    // The family's lines: from its HELP to the next family's, or to the # EOF.
    let family = |scrape: &str| -> String {
        let start = scrape.find(&format!("# HELP {name} ")).unwrap_or_else(|| panic!("no {name} in\n{scrape}"));
        let rest = &scrape[start..];
        let end = ["\n# HELP ", "\n# EOF"].iter().filter_map(|m| rest.find(m)).min().map_or(rest.len(), |i| i + 1);
        rest[..end].to_string()
    };
    let summary = family(&open_metrics);
    assert!(summary.contains(&format!("\n# TYPE {name} summary\n")), "{summary}");
    assert_eq!(summary, family(&text), "a summary is written alike in both formats");
    for scrape in [&open_metrics, &text] {
        assert_eq!(scrape.matches(&format!("# TYPE {name} ")).count(), 1, "{scrape}");
    }
    assert!(open_metrics.ends_with("# EOF\n") && open_metrics.matches("# EOF").count() == 1, "{open_metrics}");
    let (clean, said) = promtool_check_metrics(&summary);
    assert!(clean, "promtool: {said}\n{summary}");

    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.name == sys.argv[1]:
        print(family.type)
        for s in family.samples:
            print(s.name, s.labels["worker"], s.labels.get("quantile", "-"))
"#;
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", script, name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(open_metrics.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "not OpenMetrics: {}\n{open_metrics}", String::from_utf8_lossy(&out.stderr));
    let mut expected = vec!["summary".to_string()];
    for worker in ["q0", "q1"] {
        for quantile in ["0.5", "0.9", "0.99", "0.999", "1.0"] {
            expected.push(format!("{name} {worker} {quantile}"));
        }
        expected.push(format!("{name}_sum {worker} -"));
        expected.push(format!("{name}_count {worker} -"));
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(), expected);
}

#[test]
fn alerting_rules_check_and_pass_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    let checked = promtool(&dir, &["check", "rules", "transitd-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 17 rules found"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", "transitd-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_dashboards_queries_parse() {
    // promtool has no "check this expression": the queries go into a rule file as recording
    // rules, with the dashboard's `$instance` variable as a regular expression.
    let rules: String = dashboard_exprs()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!("      - record: dashboard_query_{i}\n        expr: '{}'\n", e.replace("$instance", ".*"))
        })
        .collect();
    let dir = scratch_dir("dashboard");
    std::fs::write(dir.join("queries.yml"), format!("groups:\n  - name: dashboard\n    rules:\n{rules}")).unwrap();
    let checked = promtool(&dir, &["check", "rules", "queries.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Prometheus duration of one unit (`15s`, `1m`, `1h`), in seconds.
fn seconds(duration: &str) -> u64 {
    let unit = match duration.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        _ => panic!("`{duration}` is not a duration of one unit"),
    };
    let n: u64 = duration[..duration.len() - 1].parse().unwrap_or_else(|_| panic!("`{duration}` is not a duration"));
    n * unit
}

/// The scrape configuration docs/operations.md gives is one Prometheus takes (`promtool check
/// config`), and scrapes often enough for the dashboard: four scrapes in its shortest rate
/// window, the range a rate needs to have two samples whatever the scrapes' phase and one of
/// them failed (robustperception.io, "What range should I use with rate()?"; Grafana's
/// `$__rate_interval` is four scrape intervals too). The example set no interval, so
/// Prometheus scraped every minute (its default): one scrape in each one-minute window, and
/// every rate panel was empty (a Prometheus 2.42 with that configuration answered
/// `rate(transitd_rx_packets_total[1m])` with nothing).
#[test]
fn the_documented_scrape_interval_fills_the_dashboards_rate_windows() {
    let doc = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let block = doc.find("```yaml\n# prometheus.yml\n").expect("docs/operations.md's prometheus.yml");
    let start = block + "```yaml\n".len();
    let config = &doc[start..start + doc[start..].find("```").expect("the block's end")];
    let dir = scratch_dir("scrape-config");
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let checked = promtool(&dir, &["check", "config", "prometheus.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let _ = std::fs::remove_dir_all(&dir);
    // Prometheus's default, as its configuration reference gives it: one minute.
    let interval = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("scrape_interval:"))
        .map_or(60, |v| seconds(v.trim().trim_matches('"')));
    // The range of each `rate(x[1m])`, `increase(x[5m])`: what follows a `[`.
    let exprs = dashboard_exprs();
    let windows = exprs.iter().flat_map(|e| e.split('[').skip(1).filter_map(|r| r.split_once(']')));
    let shortest = windows.map(|(d, _)| seconds(d)).min().expect("the dashboard's rates have windows");
    let scrapes = shortest / interval;
    assert!(scrapes >= 4, "a {shortest} s rate window holds {scrapes} scrapes {interval} s apart");
}

#[test]
fn rules_and_dashboard_name_only_metrics_transitd_serves() {
    let served = served();
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/transitd-alerts.yml")).unwrap();
    let mut named = metric_names(&rules);
    named.extend(dashboard_exprs().iter().flat_map(|e| metric_names(e)));
    assert!(named.len() >= 15, "{named:?}");
    let unknown: Vec<&String> = named.difference(&served).collect();
    assert!(unknown.is_empty(), "not served by transitd: {unknown:?}\nserved: {served:?}");
}

/// Every label value the rules and the dashboard select on is one a sample of that metric
/// carries in a scrape of a running transitd (every worker's reasons and actions are served
/// at zero, so the values are there before anything is counted).
#[test]
fn rules_and_dashboard_select_only_label_values_transitd_serves() {
    let (scrape, _) = served_scrape();
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/transitd-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/transitd.json")).unwrap();
    let mut matchers = label_matchers(&rules);
    matchers.extend(label_matchers(&dashboard));
    assert!(matchers.len() >= 6, "{matchers:?}");
    let missing: Vec<_> = matchers
        .iter()
        .filter(|(name, label, value)| {
            !scrape.lines().any(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("{label}=\"{value}\"")))
        })
        .collect();
    assert!(missing.is_empty(), "selected but never served: {missing:?}");
}
