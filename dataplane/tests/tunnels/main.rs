//! The tunnel side against captures nobody here wrote and against tshark: GRE headers read
//! as Wireshark reads them, real GRE sessions decapsulated to their inner packets, and every
//! message transitd originates (ICMP errors, fragments, echo replies, keepalives) dissected
//! as valid with good checksums. Each module holds one concern; this file, the helpers they
//! share.

#[path = "../common/mod.rs"]
mod common;

mod decapsulation;
mod edge_capture;
mod encapsulation;
mod fragments;
mod hairpin;
mod icmp_errors;
mod keepalives;
mod martians;
mod path_mtu;
mod public_captures;

use std::path::{Path, PathBuf};

use common::*;
use transitd::pipeline::{ConsumeReason, DropReason, PassReason, TxReason, Verdict};
use transitd::replay::replay;

/// tshark without the test harness's reassembly switches, with checksum validation on.
pub(crate) fn tshark_checked(file: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("tshark")
        .args(["-n", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"])
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// [`scapy_pcap`] with `gre(inner)` in the script's scope: `inner` in plain GRE from acme's
/// router (`acme-gre` in tunnel-edge.toml, 198.51.100.1) to the anycast address, as it comes in.
pub(crate) fn scapy_pcap_with_gre(file: &Path, script: &str) {
    let gre = "gre = lambda inner: \
               Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner";
    scapy_pcap(file, &format!("{gre}\n{script}"));
}

/// A file of its own for each call: the tests run on threads of one process, and several
/// replay the same capture (two writing one path at once read each other's half-written file).
pub(crate) fn temp(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("transitd-{name}-{}-{n}.pcap", std::process::id()))
}

/// Replays `file` through `config`, returning the output file, the verdicts and the stats.
pub(crate) fn replay_to(config: &str, file: &Path, name: &str) -> (PathBuf, transitd::pipeline::WorkerStats) {
    let snap = std::sync::Arc::new(snapshot(config));
    let out = temp(name);
    let summary = replay(snap.clone(), file, Some(&out)).unwrap();
    (out, summary.stats)
}

/// [`replay_to`] by the binary with a drop capture (`transitd replay --capture-drops`),
/// returning the output file and the drop capture.
pub(crate) fn replay_capturing_drops(config: &str, file: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = temp(name);
    let (cfg, drops) = (out.with_extension("toml"), out.with_extension("pcapng"));
    std::fs::write(&cfg, config).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--in")
        .arg(file)
        .arg("--out")
        .arg(&out)
        .arg("--capture-drops")
        .arg(&drops)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(cfg);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    (out, drops)
}

/// The inner IP packets of the GRE frames tshark selects with `filter`, cut from the input
/// at the offsets tshark reports (outer header length, GRE header length, inner length).
pub(crate) fn inner_packets(file: &Path, filter: &str) -> Vec<Vec<u8>> {
    let theirs = tshark(
        file,
        &[
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "frame.number",
            "-e",
            "ip.hdr_len",
        ],
    );
    let frames = read_frames(file);
    theirs
        .lines()
        .map(|l| {
            let (n, hdr) = l.split_once('\t').unwrap();
            let bytes = &frames[n.parse::<usize>().unwrap() - 1].bytes;
            let outer_len: usize = hdr.split(',').next().unwrap().parse().unwrap();
            let g = gre::GrePacket::new_checked(&bytes[14 + outer_len..]).unwrap();
            let inner = g.payload();
            let len = if inner[0] >> 4 == 4 {
                usize::from(u16::from_be_bytes([inner[2], inner[3]]))
            } else {
                40 + usize::from(u16::from_be_bytes([inner[4], inner[5]]))
            };
            inner[..len].to_vec()
        })
        .collect()
}

/// `packet` as a router forwards it: TTL or hop limit one less, IPv4 checksum patched.
pub(crate) fn forwarded(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    if p[0] >> 4 == 4 {
        p[8] -= 1;
        p[10..12].copy_from_slice(&[0, 0]);
        let ihl = usize::from(p[0] & 15) * 4;
        let c = gre::checksum::checksum(&p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        p[7] -= 1;
    }
    p
}

pub(crate) fn tunnel_edge() -> (String, PathBuf) {
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    (config, pcap("generated/tunnel-edge.pcap"))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
