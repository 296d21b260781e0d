//! Signatures for five UDP reflection vectors (issue 19 item 6), written with byte tests, on
//! a capture of each vector beside look-alike traffic of the same protocols: each selects
//! exactly the attack frames (tshark's own dissectors say which they are), transitd selects
//! exactly what tshark selects with the same expression, and as DoS rules of a running
//! configuration they drop exactly those frames while the look-alikes reach the customer.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use transitd::pipeline::{DropReason, Verdict};

/// `(name, signature, which frames are the attack)`: the third is a tshark filter over its
/// protocol dissectors' fields, except for memcached, whose UDP frame header tshark 4.0's
/// dissector does not read (its attack frames are the first three, by construction: see
/// `pcaps/generated/amplification.py`).
const VECTORS: &[(&str, &str, &str)] = &[
    (
        "memcached",
        r#"udp.srcport == 11211 and udp.payload[6:2] == 00:00 and (udp.payload[2:2] != 00:00 or udp.payload matches "(?s)^.{8}(STAT|VALUE) ")"#,
        "frame.number <= 3",
    ),
    (
        "ntp-monlist",
        "udp.srcport == 123 and udp.payload[0] & 87 == 87 and udp.payload[3] == 2a",
        "ntp.priv.reqcode == 42 and ntp.priv.flags.r == 1",
    ),
    (
        "dns-any",
        r#"udp.srcport == 53 and udp.payload[2] & 80 and udp.payload matches "(?s)^.{12}[^\\x00]{0,255}\\x00\\x00\\xff\\x00\\x01""#,
        "dns.flags.response == 1 and dns.qry.type == 255",
    ),
    ("ssdp", r#"udp.srcport == 1900 and udp.payload[0:15] == "HTTP/1.1 200 OK""#, "ssdp and http.response.code == 200"),
    (
        "cldap",
        r#"udp.srcport == 389 and udp.payload matches "(?s)^\\x30(\\x84....|\\x83...|\\x82..|\\x81.|[\\x00-\\x7f])\\x02(\\x01.|\\x02..|\\x03...|\\x04....)\\x64""#,
        "cldap and ldap.protocolOp == 4",
    ),
];

fn theirs(file: &Path, expr: &str) -> BTreeSet<u64> {
    tshark_frames(file, expr, &[]).into_iter().collect()
}

#[test]
fn each_signature_selects_its_attack_frames_as_tshark_does() {
    let file = pcap("generated/amplification.pcap");
    let mut all = BTreeSet::new();
    for (name, signature, attack) in VECTORS {
        let attack = theirs(&file, attack);
        assert!(attack.len() >= 2, "{name}: the capture holds its attack");
        assert_eq!(theirs(&file, signature), attack, "{name}: tshark, the signature against the dissector");
        assert_eq!(transitd_frames(&file, signature), attack, "{name}: transitd");
        all.extend(attack);
    }
    // Every vector has look-alikes the signatures must leave alone.
    let total = tshark(&file, &["-T", "fields", "-e", "frame.number"]).lines().count() as u64;
    assert!(all.len() as u64 <= total / 2, "{} of {total} frames are attacks", all.len());
}

#[test]
fn as_dos_rules_they_drop_the_attacks_and_nothing_else() {
    let file = pcap("generated/amplification.pcap");
    let rules: String = VECTORS
        .iter()
        .map(|(name, signature, _)| {
            format!("[[dos.rule]]\nname = \"{name}\"\nmatch = '''{signature}'''\naction = \"drop\"\n")
        })
        .collect();
    let config =
        victim_config(&["198.51.100.0/24", "203.0.113.0/24"], "bogons = false\ncustomer_sources = false", &rules);
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (verdicts, stats, _) = verdicts_of(&config, frames);
    let attack: BTreeSet<u64> = VECTORS.iter().flat_map(|v| theirs(&file, v.2)).collect();
    // SSDP's searches go to a multicast group, which no customer can own: no customer's.
    let multicast = theirs(&file, "ip.dst == 224.0.0.0/4");
    assert!(!multicast.is_empty() && multicast.is_disjoint(&attack));
    for (i, v) in verdicts.iter().enumerate() {
        let n = i as u64 + 1;
        if attack.contains(&n) {
            assert_eq!(*v, Verdict::Drop(DropReason::DosRule), "frame {n}");
        } else if multicast.contains(&n) {
            assert!(!matches!(v, Verdict::Tx { .. } | Verdict::Drop(DropReason::DosRule)), "frame {n}: {v:?}");
        } else {
            assert!(matches!(v, Verdict::Tx { .. }), "frame {n} reaches the customer: {v:?}");
        }
    }
    assert_eq!(stats.dropped_for(DropReason::DosRule), attack.len() as u64);
}
