//! The operator's alerting rules and dashboard (`deploy/`): Prometheus's own `promtool`
//! checks the rules and runs their unit tests, every PromQL expression of the Grafana
//! dashboard parses (promtool, as recording rules), and every transitd metric the rules and
//! the dashboard name is one a running transitd serves.

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

/// Every metric family a running transitd serves, with the names its samples take: a
/// configuration (families are served whether or not they have samples yet), a drop capture
/// running and [bgp] configured (their families are served only then).
fn served() -> BTreeSet<String> {
    let dir = std::env::temp_dir().join(format!("transitd-alerting-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (capture, writer) =
        transitd::dropcap::DropCapture::start(transitd::dropcap::CaptureOptions::new(dir.join("drops.pcapng")), stop)
            .unwrap();
    let sources = Arc::new(transitd::metrics::Sources {
        workers: vec![Arc::default()],
        snapshot: Arc::new(arc_swap::ArcSwap::from_pointee(snapshot(lab::ACME))),
        xdp: Default::default(),
        reloads: transitd::metrics::ReloadStats { etcd_up: Some(Arc::default()), ..Default::default() },
        bgp: transitd::metrics::BgpStats { configured: true.into(), ..Default::default() },
        ipfix: None,
        capture: Some(capture),
        punt: None,
        interface: None,
        started: 0,
    });
    let text = transitd::metrics::render(&sources);
    drop(writer);
    let _ = std::fs::remove_dir_all(&dir);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(ty)) = (words.next(), words.next()) else { continue };
        let suffixes: &[&str] = match ty {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_count", "_sum"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    assert!(names.len() > 20, "{text}");
    names
}

#[test]
fn alerting_rules_check_and_pass_their_unit_tests() {
    let dir = root().join("deploy/prometheus");
    let checked = promtool(&dir, &["check", "rules", "transitd-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 11 rules found"), "{checked}");
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
    let dir = std::env::temp_dir().join(format!("transitd-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("queries.yml"), format!("groups:\n  - name: dashboard\n    rules:\n{rules}")).unwrap();
    let checked = promtool(&dir, &["check", "rules", "queries.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let _ = std::fs::remove_dir_all(&dir);
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
