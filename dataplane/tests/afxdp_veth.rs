//! `transitd run` on AF_XDP in a veth/namespace lab (scripts/veth-lab): real traffic from a
//! sender namespace through transitd to a customer-router namespace, checked with tshark.
//! Needs root; each test builds and removes its own lab, one at a time.

mod common;

use std::time::{Duration, Instant};

use common::lab::{Lab, SERIAL, scapy_send};
use common::*;

const ACME: &str = r#"
[server]
anycast = "192.0.2.1"
next_hop = "10.2.0.1"          # the lab's upstream router, resolved from the neighbour table
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "acme-gre"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "acme-gre"
[customer.firewall]
default = "drop"
[[customer.firewall.rule]]
name = "ftp"
match = "ip.dst == 203.0.113.100 and tcp.dstport in {20..21}"
action = "accept"
"#;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `(rx, tx)` of each queue from the final report, and whether every UMEM frame was conserved.
fn queues(report: &str) -> (Vec<(u64, u64)>, bool) {
    let rows = report
        .lines()
        .filter(|l| l.starts_with("queue "))
        .map(|l| {
            let n = |k: &str| {
                l.split(k).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap()
            };
            (n(" rx "), n(" tx "))
        })
        .collect();
    (rows, !report.contains("NOT CONSERVED") && report.contains("umem frames"))
}

#[test]
fn seed_rule_is_enforced_on_the_wire_and_the_host_keeps_its_own_traffic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("ta", 1);
    let cap = lab.capture("up", "u1");
    let t = lab.transitd(ACME, &[]);
    wait_for("the next hop to resolve", || t.log().contains("next hop 10.2.0.1 is at"));
    // The host's own address answers while transitd runs (XDP passes what is not ours).
    let ping = lab.cmd("snd", "ping").args(["-c", "3", "-i", "0.2", "-W", "1", "10.2.0.2"]).output().unwrap();
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    scapy_send(
        &lab,
        "snd",
        "[IP(dst='203.0.113.100')/TCP(sport=40000+p, dport=p, flags='S') for p in (21, 22, 20)] + [IP(dst='203.0.113.7')/UDP(dport=53)]",
    );
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let (rows, conserved) = queues(&report);
    assert!(conserved, "{report}");
    assert_eq!(rows, vec![(4, 2)], "{report}");

    // On the wire toward the upstream router: GRE from the anycast address to Acme's router,
    // carrying the FTP SYNs only, sent to the MAC the neighbour table holds for 10.2.0.1.
    let up_mac = lab.mac("up", "u1");
    assert!(log.contains(&format!("next hop 10.2.0.1 is at {up_mac}")), "{log}");
    let gre = tshark(
        &file,
        &[
            "-Y",
            "gre and not icmp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "eth.dst",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ],
    );
    let rows: Vec<&str> = gre.lines().collect();
    assert_eq!(
        rows,
        [
            format!("{up_mac};192.0.2.1,10.1.0.2;198.51.100.1,203.0.113.100;21"),
            format!("{up_mac};192.0.2.1,10.1.0.2;198.51.100.1,203.0.113.100;20"),
        ]
    );
    // Detached on exit.
    let link = lab.run("dut", "ip", &["-d", "link", "show", "dev", &lab.dev("d0")]);
    assert!(!String::from_utf8_lossy(&link.stdout).contains("prog/xdp"), "XDP still attached");
}
