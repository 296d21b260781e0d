//! docs/configuration.md against the configuration types: every section the types accept
//! is documented with exactly the keys they accept. The types say which keys those are
//! themselves: every section is `deny_unknown_fields`, so an unknown key in it is rejected
//! with the list of the keys it expects.

use std::collections::{BTreeMap, BTreeSet};

/// The keys the configuration types accept in `section` (e.g. `customer.tunnel`), from the
/// error an unknown key there gets.
fn accepted_keys(section: &str) -> BTreeSet<String> {
    // Every table on the path, then the unknown key in the last one.
    let parts: Vec<&str> = section.split('.').collect();
    let mut text = String::new();
    for i in 1..=parts.len() {
        let path = parts[..i].join(".");
        if is_array(&path) {
            text.push_str(&format!("[[{path}]]\n"));
        } else if i == parts.len() {
            text.push_str(&format!("[{path}]\n"));
        }
    }
    text.push_str("not_a_key_anywhere = 1\n");
    let errors = match transitd::config::parse("reference.toml", &text) {
        Ok(_) => panic!("`not_a_key_anywhere` accepted in [{section}]:\n{text}"),
        Err(e) => e.to_string(),
    };
    let expected = errors
        .split("expected one of ")
        .nth(1)
        .or_else(|| errors.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("[{section}]: no list of keys in {errors:?}"));
    key_list(expected)
}

/// serde's "`a`, `b`, `c`" or "`a` or `b`" (what the message says after it left out: the
/// table the key was read into).
fn key_list(text: &str) -> BTreeSet<String> {
    let text = text.split(": ").next().unwrap_or(text);
    text.split(',')
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim().trim_matches('`').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

/// Tables that are arrays of tables.
fn is_array(path: &str) -> bool {
    matches!(
        path,
        "customer"
            | "customer.tunnel"
            | "customer.route"
            | "customer.firewall.rule"
            | "customer.egress.rule"
            | "customer.dos.rule"
            | "customer.tcp_protection.rule"
            | "tcp_protection.rule"
            | "dos.bucket"
            | "dos.rule"
            | "soft_unicast.data_centre"
            | "soft_unicast.server"
            | "soft_unicast.egress"
    )
}

/// Each documented section (from the headings, `[x]` or `[[x]]`, several per heading when
/// they share a table) and the keys in the first column of its table.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with('#') {
            current = line
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| s.starts_with('['))
                .map(|s| s.trim_matches(|c| c == '[' || c == ']').to_string())
                .collect();
            for s in &current {
                out.entry(s.clone()).or_default();
            }
            in_table = false;
        } else if let Some(row) = line.strip_prefix('|') {
            let first = row.split('|').next().unwrap_or("").trim();
            if first == "key" {
                in_table = true;
                continue;
            }
            if !in_table || first.starts_with("---") {
                continue;
            }
            for key in first.split(',').map(|k| k.trim().trim_matches('`')) {
                for s in &current {
                    out.entry(s.clone()).or_default().insert(key.to_string());
                }
            }
        } else if line.trim().is_empty() {
            in_table = false;
        }
    }
    out
}

/// Sections whose keys the reference gives by saying they are those of another section.
const SAME_AS: &[(&str, &str)] = &[
    ("dos.rule", "customer.firewall.rule"),
    ("customer.dos.rule", "customer.firewall.rule"),
    ("customer.egress", "customer.firewall"),
    ("customer.egress.rule", "customer.firewall.rule"),
];

#[test]
fn every_key_the_types_accept_is_documented_and_nothing_else() {
    let docs = documented();
    let sections = [
        "server",
        "bgp",
        "ipfix",
        "health",
        "dos",
        "dos.sanity",
        "dos.bucket",
        "dos.rule",
        "tcp_protection",
        "tcp_protection.rule",
        "soft_unicast",
        "soft_unicast.data_centre",
        "soft_unicast.server",
        "soft_unicast.egress",
        "customer",
        "customer.tunnel",
        "customer.route",
        "customer.firewall",
        "customer.firewall.rule",
        "customer.egress",
        "customer.egress.rule",
        "customer.dos",
        "customer.dos.rule",
        "customer.tcp_protection",
        "customer.tcp_protection.rule",
    ];
    let mut problems = Vec::new();
    for section in sections {
        let accepted = accepted_keys(section);
        let doc_section = SAME_AS.iter().find(|(s, _)| *s == section).map_or(section, |(_, d)| d);
        let Some(documented) = docs.get(doc_section) else {
            problems.push(format!("[{section}] is not documented"));
            continue;
        };
        // Sub-tables are keys to the types and sections to the reference.
        let accepted: BTreeSet<String> =
            accepted.into_iter().filter(|k| !docs.contains_key(&format!("{section}.{k}"))).collect();
        for k in accepted.difference(documented) {
            problems.push(format!("[{section}] `{k}` is accepted but not documented"));
        }
        for k in documented.difference(&accepted) {
            problems.push(format!("[{section}] `{k}` is documented but not accepted"));
        }
    }
    // The top level: every section the file accepts has a heading.
    for k in accepted_keys_top() {
        if !docs.contains_key(&k) {
            problems.push(format!("top-level section [{k}] is not documented"));
        }
    }
    assert!(problems.is_empty(), "docs/configuration.md disagrees with the types:\n{}", problems.join("\n"));
}

fn accepted_keys_top() -> BTreeSet<String> {
    let errors = transitd::config::parse("reference.toml", "not_a_key_anywhere = 1\n").unwrap_err().to_string();
    let list = errors.split("expected one of ").nth(1).unwrap_or_else(|| panic!("{errors}"));
    key_list(list)
}

#[test]
fn every_verdict_reason_is_explained_in_the_architecture_doc() {
    use transitd::pipeline::{ConsumeReason, DropReason, PassReason, TxReason};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/architecture.md")).unwrap();
    let section = text.split("## Verdicts and reasons").nth(1).expect("a Verdicts and reasons section");
    let names = DropReason::ALL
        .iter()
        .map(|r| r.name())
        .chain(PassReason::ALL.iter().map(|r| r.name()))
        .chain(TxReason::ALL.iter().map(|r| r.name()))
        .chain(ConsumeReason::ALL.iter().map(|r| r.name()));
    let missing: Vec<&str> = names.filter(|n| !section.contains(&format!("| `{n}` |"))).collect();
    assert!(missing.is_empty(), "reasons missing from docs/architecture.md: {missing:?}");
}

#[test]
fn limits_are_documented_as_the_code_sets_them() {
    use classifier::{bytes, compile, parse, table};
    use transitd::limits::*;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
    let section = text.split("## Limits").nth(1).expect("a Limits section").split("\n## ").next().unwrap_or("");
    // 1234567 as "1,234,567", as the table writes numbers.
    let grouped = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let rows: &[(&str, u64)] = &[
        ("configuration file", MAX_CONFIG_BYTES),
        ("plan file", MAX_PLAN_BYTES),
        ("geofeed", MAX_GEOFEED_BYTES),
        ("capture record", transitd::io::pcap::MAX_RECORD as u64),
        ("customers", MAX_CUSTOMERS as u64),
        ("tunnels", MAX_TUNNELS as u64),
        ("customer prefixes", MAX_PREFIXES_PER_FAMILY as u64),
        ("tunnel remote addresses", MAX_REMOTES_PER_FAMILY as u64),
        ("rules per list", MAX_RULES_PER_LIST as u64),
        ("`matches` pattern text", bytes::MAX_PATTERN_TEXT as u64),
        ("`matches` compiled pattern", bytes::MAX_PATTERN_BYTES as u64),
        ("distinct `matches` patterns", bytes::MAX_DISTINCT_PATTERNS as u64),
        ("rule nesting", parse::MAX_NESTING as u64),
        ("masked ranges per rule", parse::MAX_MASKED_RANGES_PER_RULE as u64),
        ("masked ranges per configuration", parse::MAX_MASKED_RANGES_PER_CONFIG as u64),
        ("boxes per rule", compile::MAX_BOXES_PER_RULE as u64),
        ("rule expansion steps", compile::MAX_EXPANSION_STEPS as u64),
        ("boxes per rule list", table::MAX_BOXES_PER_TABLE as u64),
        ("boxes per configuration", MAX_BOXES_PER_CONFIG as u64),
        ("lookup table bytes per configuration", MAX_TABLE_BYTES_PER_CONFIG as u64),
        ("buckets", MAX_BUCKETS as u64),
        ("bucket keys per worker", MAX_BUCKET_KEYS as u64),
        ("tracked TCP connections per worker", u64::from(MAX_TCP_FLOWS)),
        ("egress addresses", MAX_EGRESS_ADDRESSES),
        ("egress slices", MAX_EGRESS_SLICES),
        ("fleet members", MAX_FLEET_MEMBERS as u64),
        ("`--queues`, `--cores` entries", MAX_LIST_ENTRIES as u64),
        ("`--frames`", u64::from(MAX_UMEM_FRAMES)),
        ("`--frames`", u64::from(MIN_UMEM_FRAMES)),
        ("`--idle-sleep-us`", MAX_IDLE_SLEEP_US),
        ("seconds flags", MAX_SECONDS_FLAG),
        ("`--napi-defer`", u64::from(MAX_NAPI_DEFER)),
        ("`--capture-snaplen`", MIN_CAPTURE_SNAPLEN as u64),
        ("`--capture-snaplen`", MAX_CAPTURE_SNAPLEN as u64),
        ("`--capture-max-size`", MIN_CAPTURE_BYTES),
        ("errors shown", MAX_REPORTED_ERRORS as u64),
    ];
    let mut problems = Vec::new();
    for (label, value) in rows {
        let row = section.lines().find(|l| l.starts_with(&format!("| {label} |")));
        match row {
            None => problems.push(format!("no row `{label}`")),
            Some(r) if !r.split('|').nth(2).unwrap_or("").contains(&grouped(*value)) => {
                problems.push(format!("`{label}` does not say {}: {r}", grouped(*value)))
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "docs/configuration.md's limits disagree with the code:\n{}", problems.join("\n"));
}
