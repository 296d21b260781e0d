//! The seed's example end to end: examples/acme.toml on pcaps/generated/acme-ftp.pcap,
//! with tshark dissecting what transitd writes.

mod common;

use common::*;
use transitd::pipeline::WorkerStats;
use transitd::pipeline::{DropReason, PassReason, TxReason, Verdict};
use transitd::replay::replay;

fn acme() -> String {
    std::fs::read_to_string(root().join("examples/acme.toml")).unwrap()
}

fn run(config: &str, file: &str) -> (Vec<Verdict>, WorkerStats, transitd::snapshot::Snapshot) {
    verdicts_of(config, read_frames(&pcap(file)).into_iter().map(|f| f.bytes).collect())
}

fn is_tx(v: &Verdict) -> bool {
    matches!(v, Verdict::Tx { .. })
}

#[test]
fn seed_ftp_rule_decides_each_frame() {
    // The expected fate of each frame is written beside it in pcaps/generated/acme_ftp.py.
    let (v, stats, snap) = run(&acme(), "generated/acme-ftp.pcap");
    use DropReason::*;
    let expect = [
        "tx",
        "tx",
        Firewall.name(),
        Firewall.name(),
        "pass:no_customer",
        "tx",
        Firewall.name(),
        "tx",
        "pass:not_ip",
        "tx:icmp_time_exceeded",
        "tx:icmp_too_big",
        "tx",
    ];
    let got: Vec<String> = v
        .iter()
        .map(|v| match v {
            Verdict::Tx { reason: TxReason::Encapsulated, .. } => "tx".to_string(),
            Verdict::Tx { reason, .. } => format!("tx:{}", reason.name()),
            Verdict::Pass(r) => format!("pass:{}", r.name()),
            Verdict::Drop(r) => r.name().to_string(),
            Verdict::Consumed(r) => format!("consumed:{}", r.name()),
        })
        .collect();
    assert_eq!(got, expect);
    // Rule counters: ftp decided frames 1, 2, 10, 11, 12; ping 6 and 8.
    let acme = &snap.customers[0];
    let hits: Vec<(&str, u64)> = acme
        .firewall
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), stats.rule_hits[acme.rule_base as usize + i]))
        .collect();
    assert_eq!(hits, [("ftp", 5), ("ping", 2)]);
}

#[test]
fn unmatched_traffic_follows_the_config() {
    let drop = acme().replace("unmatched = \"pass\"", "unmatched = \"drop\"");
    let (v, _, _) = run(&drop, "generated/acme-ftp.pcap");
    assert_eq!(v[4], Verdict::Drop(DropReason::NoCustomer));
    let (v, _, _) = run(&acme(), "generated/acme-ftp.pcap");
    assert_eq!(v[4], Verdict::Pass(PassReason::NoCustomer));
}

#[test]
fn gre_written_by_replay_dissects_and_carries_the_input_unchanged_but_ttl() {
    let snap = std::sync::Arc::new(snapshot(&acme()));
    let input = pcap("generated/acme-ftp.pcap");
    let out = std::env::temp_dir().join(format!("transitd-acme-{}.pcap", std::process::id()));
    let summary = replay(snap.clone(), &input, Some(&out)).unwrap();
    assert_eq!(summary.stats.tx_frames, 7, "5 encapsulated, 2 ICMP errors");
    assert_eq!(summary.stats.sent_as(TxReason::Encapsulated), 5);

    // Outer headers, as tshark reads them.
    let fields = ["ip.src", "ip.dst", "ip.proto", "ip.ttl", "ip.flags.df", "gre.proto", "ip.checksum.status"];
    let mut args = vec!["-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=;"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    args.extend(["-Y", "gre"]);
    let outer = tshark(&out, &args);
    let rows: Vec<&str> = outer.lines().collect();
    assert_eq!(rows.len(), 5, "{outer}");
    // Inner IPv4 (frames 1, 2, 6, 12 of the input) and inner IPv6 (frame 8).
    let v4 = "192.0.2.1,198.18.0.10;198.51.100.1,203.0.113.100;47,";
    for (row, (inner_proto, inner_ttl)) in
        rows.iter().zip([("6", "56"), ("6", "56"), ("1", "119"), ("58", ""), ("6", "56")])
    {
        if inner_proto == "58" {
            assert_eq!(*row, "192.0.2.1;198.51.100.1;47;64;1;0x86dd;1", "IPv6 in GRE");
        } else {
            assert_eq!(*row, format!("{v4}{inner_proto};64,{inner_ttl};1,0;0x0800;1,1"), "IPv4 in GRE");
        }
    }
    let v6 =
        tshark(&out, &["-Y", "gre and ipv6", "-T", "fields", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.hlim"]);
    assert_eq!(v6.trim(), "2001:db8:c0::10\t2001:db8:acbe::100\t59");
    let ports = tshark(&out, &["-Y", "gre and tcp", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport"]);
    assert_eq!(ports, "40000\t21\n40001\t20\n40007\t21\n");

    // Byte for byte: the inner packet is the input IP packet but for TTL (or hop limit)
    // and the IPv4 header checksum, which tshark checked above.
    let inputs = read_frames(&input);
    let outputs: Vec<_> = read_frames(&out).into_iter().filter(|f| f.bytes[23] == 47).collect();
    assert_eq!(outputs.len(), 5);
    for (out_frame, in_index) in outputs.iter().zip([0usize, 1, 5, 7, 11]) {
        let inner = &out_frame.bytes[14 + 20 + 4..];
        let in_bytes = &inputs[in_index].bytes;
        let l3 = if in_index == 11 { 18 } else { 14 }; // frame 12 carries a VLAN tag
        let original = &in_bytes[l3..];
        assert_eq!(inner.len(), original.len(), "frame {}", in_index + 1);
        let mut expect = original.to_vec();
        if original[0] >> 4 == 4 {
            expect[8] -= 1;
            expect[10..12].copy_from_slice(&inner[10..12]);
        } else {
            expect[7] -= 1;
        }
        assert_eq!(inner, &expect[..], "frame {}", in_index + 1);
    }
    let _ = std::fs::remove_file(out);
}

#[test]
fn one_customers_rules_never_see_another_customers_traffic() {
    // Two customers; beta's only rule (monitor mode, counting everything) must count only
    // beta's packets, and alpha's firewall decides alpha's alone.
    let config = r#"
[server]
anycast = "192.0.2.1"
[dos.sanity]
bogons = false
[[customer]]
name = "alpha"
prefixes = ["203.0.113.0/25"]
[[customer.tunnel]]
name = "alpha-gre"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/25"
tunnel = "alpha-gre"
[customer.firewall]
default = "accept"
[[customer.firewall.rule]]
name = "count-all"
match = ""
action = "drop"
mode = "monitor"
[[customer]]
name = "beta"
prefixes = ["203.0.113.128/25"]
[[customer.tunnel]]
name = "beta-gre"
remote = "198.51.100.2"
[[customer.route]]
prefix = "203.0.113.128/25"
tunnel = "beta-gre"
[customer.firewall]
default = "drop"
[[customer.firewall.rule]]
name = "count-all"
match = "frame"
action = "accept"
"#;
    let (v, stats, snap) = run(config, "generated/acme-ftp.pcap");
    // Every IPv4 frame of the capture is for 203.0.113.100 or .50: alpha's half.
    let alpha = tshark_frames(&pcap("generated/acme-ftp.pcap"), "ip.dst == 203.0.113.0/25", &[]);
    let alpha_tx = v.iter().filter(|v| is_tx(v)).count();
    assert_eq!(stats.rule_hits[snap.customers[1].rule_base as usize], 0, "beta saw no packet");
    assert_eq!(stats.rule_hits[snap.customers[0].rule_base as usize], alpha.len() as u64, "alpha counted its own");
    // Alpha accepts everything: what TTL or MTU stop becomes an ICMP error, also sent.
    assert_eq!(alpha_tx, alpha.len());
}

/// A reload that removes a prefix holds it for `[bgp] withdrawn_grace_ms`: what reaches the
/// pipeline for it meanwhile (the XDP program still redirects it) is dropped as
/// `withdrawn_prefix`, whatever `unmatched` says, where it was handed to the host as traffic
/// for no customer. A prefix the reload gives to another customer is that one's at once;
/// without a grace (0, or no `[bgp]`) nothing is held.
#[test]
fn traffic_to_a_prefix_a_reload_removed_is_dropped_as_withdrawn_prefix() {
    use transitd::snapshot::{Snapshot, Withdrawn};
    fn config(customers: &[(&str, &str)], bgp: &str) -> String {
        let mut text = format!("[server]\nanycast = \"192.0.2.1\"\n{bgp}\n");
        for (name, prefixes) in customers {
            text.push_str(&format!("[[customer]]\nname = \"{name}\"\nprefixes = [{prefixes}]\n"));
        }
        text
    }
    let grace = "[bgp]\nwithdrawn_grace_ms = 30000";
    let old = snapshot(&config(&[("a", "\"203.0.113.0/24\", \"198.51.100.0/24\""), ("b", "\"100.64.7.0/24\"")], grace));
    // b is gone and its prefix is a's now; a no longer has 203.0.113.0/24.
    let reloaded = |bgp: &str| {
        let mut new = snapshot(&config(&[("a", "\"198.51.100.0/24\", \"100.64.7.0/24\"")], bgp));
        new.withdrawn = Withdrawn::after(&old, &new, std::time::Instant::now());
        new
    };
    let outcome = |snap: &Snapshot, dst: [u8; 4]| {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 8, 8], dst, 60)
            .udp(1000, 53)
            .write(&mut frame, b"query")
            .unwrap();
        outcome_with(snap, &mut transitd::pipeline::Limits::new(snap), &frame, 0)
    };
    let held = reloaded(grace);
    assert_eq!(outcome(&held, [203, 0, 113, 9]).verdict, Verdict::Drop(DropReason::WithdrawnPrefix));
    let moved = outcome(&held, [100, 64, 7, 9]);
    assert_eq!((moved.customer, moved.verdict), (Some(0), Verdict::Drop(DropReason::NoRoute)), "a's at once");
    let never = outcome(&held, [192, 0, 2, 9]).verdict;
    assert_eq!(never, Verdict::Pass(PassReason::NoCustomer), "no customer's, ever: the host's");
    for off in ["[bgp]\nwithdrawn_grace_ms = 0", ""] {
        let cut = reloaded(off);
        assert!(cut.withdrawn.is_empty(), "{off:?}");
        assert_eq!(outcome(&cut, [203, 0, 113, 9]).verdict, Verdict::Pass(PassReason::NoCustomer), "{off:?}");
    }
    // The same reload moving the anycast address into the removed prefix: not held, or all
    // but GRE to the edge's own address would be dropped for the grace.
    let mut own = snapshot(
        &config(&[("a", "\"198.51.100.0/24\", \"100.64.7.0/24\"")], grace).replace("192.0.2.1", "203.0.113.1"),
    );
    own.withdrawn = Withdrawn::after(&old, &own, std::time::Instant::now());
    assert!(own.withdrawn.is_empty(), "{:?}", own.withdrawn);
}

/// Decapsulated traffic from a customer's tunnel to a prefix a reload removed and holds goes
/// to the Internet, as to any address no customer has: not dropped as `withdrawn_prefix`.
/// An upstream that still routes the prefix here sends it back, and it is dropped then (one
/// round trip, no loop: the held prefix is still redirected); one that routes it elsewhere
/// (the customer moved to another provider or edge, the usual reason a prefix leaves)
/// delivers it, where a drop here would cut it off for the whole grace.
#[test]
fn decapsulated_traffic_to_a_held_prefix_goes_to_the_internet() {
    use transitd::snapshot::Withdrawn;
    // Documentation and benchmarking addresses throughout: not bogons here.
    let a = "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdrawn_grace_ms = 30000\n[dos.sanity]\nbogons = false\n\
             [[customer]]\nname = \"a\"\nprefixes = [\"198.51.100.0/24\"]\n\
             [[customer.tunnel]]\nname = \"a-gre\"\nremote = \"198.18.5.1\"\n";
    let config = |others: &str| format!("{a}{others}");
    let old = snapshot(&config("[[customer]]\nname = \"b\"\nprefixes = [\"203.0.113.0/24\"]\n"));
    let mut held = snapshot(&config(""));
    held.withdrawn = Withdrawn::after(&old, &held, std::time::Instant::now());
    let mut to_b = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
        .ipv4([198, 51, 100, 7], [203, 0, 113, 9], 60)
        .udp(1000, 53)
        .write(&mut to_b, b"query")
        .unwrap();
    let mut limits = transitd::pipeline::Limits::new(&held);
    // From the Internet (here, as it comes back): dropped while held.
    let back = outcome_with(&held, &mut limits, &to_b, 0).verdict;
    assert_eq!(back, Verdict::Drop(DropReason::WithdrawnPrefix));
    let decapsulated = outcome_with(&held, &mut limits, &in_gre(&to_b, [198, 18, 5, 1], [192, 0, 2, 1]), 0);
    assert_eq!(decapsulated.from_tunnel, Some(0));
    assert!(
        matches!(decapsulated.verdict, Verdict::Tx { reason: TxReason::Decapsulated, .. }),
        "{:?}",
        decapsulated.verdict
    );
}
