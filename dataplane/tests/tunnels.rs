//! The tunnel side against captures nobody here wrote and against tshark: GRE headers read
//! as Wireshark reads them, real GRE sessions decapsulated to their inner packets, and every
//! message transitd originates (ICMP errors, fragments, echo replies, keepalives) dissected
//! as valid with good checksums.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use transitd::pipeline::{ConsumeReason, DropReason, Parsed, PassReason, TxReason, Verdict, parse_frame};
use transitd::replay::replay;

/// tshark without the test harness's reassembly switches, with checksum validation on.
fn tshark_checked(file: &Path, args: &[&str]) -> String {
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

/// A file of its own for each call: the tests run on threads of one process, and several
/// replay the same capture (two writing one path at once read each other's half-written file).
fn temp(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("transitd-{name}-{}-{n}.pcap", std::process::id()))
}

/// A configuration with one customer behind one tunnel, for public captures.
fn one_tunnel(anycast: &str, remote: &str, key: Option<u32>, prefix: &str) -> String {
    let key = key.map_or(String::new(), |k| format!("key = {k}"));
    format!(
        r#"
[server]
anycast = "{anycast}"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[dos.sanity]
bogons = false
[[customer]]
name = "c"
prefixes = ["{prefix}"]
[[customer.tunnel]]
name = "t"
remote = "{remote}"
{key}
[[customer.route]]
prefix = "{prefix}"
tunnel = "t"
"#
    )
}

const GRE_CAPTURES: &[&str] = &[
    "ryu-gre_full_options.pcap",
    "ryu-gre_no_option.pcap",
    "ryu-gre_nvgre_option.pcap",
    "packetnet-gre_nvgre.pcap",
    "packetnet-gre_ipv6.pcap",
    "pcapplusplus-GrePackets.cap",
    "tcpdump-various_gre.pcap",
    "tcpdump-pptp.pcap",
    "tcpdump-wccp_redirect_gre.pcap",
    "tcpdump-erspan-type-iii-pb-1.pcap",
    "zeek-tunnels-gre-sample.pcap",
    "zeek-tunnels-gre-pptp.pcap",
    "zeek-tunnels-gre-within-gre.pcap",
    "zeek-tunnels-gre-erspan3-dot1q.pcap",
    "suricata-bug-5633-gre-udp.pcap",
];

#[test]
fn gre_headers_in_public_captures_read_as_tshark_reads_them() {
    let mut compared = 0;
    for name in GRE_CAPTURES {
        let file = pcap(&format!("real/{name}"));
        let fields = [
            "frame.number",
            "gre.flags.checksum",
            "gre.flags.routing",
            "gre.flags.key",
            "gre.flags.sequence_number",
            "gre.flags.version",
            "gre.proto",
            "gre.key",
            "gre.sequence_number",
            "gre.checksum",
        ];
        let mut args = vec!["-Y", "gre", "-T", "fields", "-E", "occurrence=f", "-E", "separator=;"];
        for f in &fields {
            args.extend(["-e", f]);
        }
        let theirs = tshark(&file, &args);
        let frames = read_frames(&file);
        for line in theirs.lines() {
            let t: Vec<&str> = line.split(';').collect();
            let n: usize = t[0].parse().unwrap();
            let bytes = &frames[n - 1].bytes;
            let (key, parsed) = parse_frame(bytes, bytes.len() as u32);
            let Parsed::Ip(ip) = parsed else { continue };
            // tshark's first GRE is ours only when GRE is the outer IP packet's payload (not
            // GRE in UDP, or behind another tunnel).
            if key.get(classifier::Dim::L4Proto) != 47 || ip.fragment.is_some() {
                continue;
            }
            let g = gre::GrePacket::new_checked(&bytes[ip.l4_start..ip.l3_start + ip.l3_len]).unwrap();
            let flag = |f: u16| if g.flags_version() & f != 0 { "1" } else { "0" };
            let ours = [
                flag(gre::packet::FLAG_C).to_string(),
                flag(gre::packet::FLAG_R).to_string(),
                flag(gre::packet::FLAG_K).to_string(),
                flag(gre::packet::FLAG_S).to_string(),
                g.version().to_string(),
                format!("{:#06x}", g.protocol()),
            ];
            assert_eq!(&t[1..7], &ours[..], "{name} frame {n}: flags, version, protocol");
            if g.version() == 0 {
                assert_eq!(t[7], g.key().map_or(String::new(), |k| format!("{k:#010x}")), "{name} frame {n}: key");
                assert_eq!(t[8], g.sequence_number().map_or(String::new(), |s| s.to_string()), "{name} {n}: seq");
                assert_eq!(t[9], g.checksum().map_or(String::new(), |c| format!("{c:#06x}")), "{name} {n}: checksum");
                // Every version-0 header tshark reads without complaint, we accept (or
                // refuse for the routing bit RFC 2784 retired).
                let expect_ok = t[2] == "0";
                assert_eq!(gre::GreRepr::parse(&g).is_ok(), expect_ok, "{name} frame {n}");
            } else {
                assert_eq!(gre::GreRepr::parse(&g), Err(gre::GreError::Version(1)), "{name} frame {n}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 100, "only {compared} GRE headers compared");
}

/// Replays `file` through `config`, returning the output file, the verdicts and the stats.
fn replay_to(config: &str, file: &Path, name: &str) -> (PathBuf, transitd::pipeline::WorkerStats) {
    let snap = std::sync::Arc::new(snapshot(config));
    let out = temp(name);
    let summary = replay(snap.clone(), file, Some(&out)).unwrap();
    (out, summary.stats)
}

/// The inner IP packets of the GRE frames tshark selects with `filter`, cut from the input
/// at the offsets tshark reports (outer header length, GRE header length, inner length).
fn inner_packets(file: &Path, filter: &str) -> Vec<Vec<u8>> {
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
fn forwarded(packet: &[u8]) -> Vec<u8> {
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

#[test]
fn a_real_gre_session_decapsulates_to_its_inner_packets() {
    // Zeek's GRE sample: a router at 172.27.1.66 tunnels host 66.59.111.190's traffic to
    // 66.59.109.137. With that as our anycast address, every packet the router sent comes
    // out decapsulated, byte for byte the inner packet but for the TTL.
    let file = pcap("real/zeek-tunnels-gre-sample.pcap");
    // The host alone: one of its packets goes to a neighbour in 66.59.111.0/24.
    let config = one_tunnel("66.59.109.137", "172.27.1.66", None, "66.59.111.190/32");
    let (out, stats) = replay_to(&config, &file, "zeek-gre");
    let sent = inner_packets(&file, "ip.src == 172.27.1.66 and gre");
    assert_eq!(sent.len(), 21);
    assert_eq!(stats.sent_as(TxReason::Decapsulated), 21);
    let outputs = read_frames(&out);
    assert_eq!(outputs.len(), 21);
    for (o, inner) in outputs.iter().zip(&sent) {
        assert_eq!(&o.bytes[..14], &[2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 1, 8, 0]);
        assert_eq!(o.bytes[14..], forwarded(inner)[..]);
    }
    let status = tshark_checked(&out, &["-T", "fields", "-e", "ip.checksum.status", "-e", "ip.src"]);
    assert!(status.lines().all(|l| l == "1\t66.59.111.190"), "{status}");
    // The router's packets to the other end are not addressed to us: passed to the host.
    assert_eq!(stats.passed_for(PassReason::NoCustomer), 19);
    let _ = std::fs::remove_file(out);
}

#[test]
fn ipv6_inside_ipv4_gre_from_a_public_capture_decapsulates() {
    let file = pcap("real/packetnet-gre_ipv6.pcap");
    let config = one_tunnel("10.1.1.2", "10.1.1.0", None, "1:1:1:1::/64");
    let (out, stats) = replay_to(&config, &file, "gre-ipv6");
    assert_eq!(stats.sent_as(TxReason::Decapsulated), 1);
    let inner = inner_packets(&file, "gre");
    let o = read_frames(&out);
    assert_eq!(&o[0].bytes[12..14], &[0x86, 0xdd]);
    assert_eq!(o[0].bytes[14..], forwarded(&inner[0])[..]);
    let fields = tshark(&out, &["-T", "fields", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.hlim"]);
    assert_eq!(fields.trim(), "1:1:1:1:1:1:1:1\t2:2:2:2:2:2:2:2\t31");
    let _ = std::fs::remove_file(out);
}

#[test]
fn keyed_tunnels_take_only_their_key() {
    // Ryu's GRE with checksum, key 1000 and sequence number 10, from 172.16.25.2.
    let file = pcap("real/ryu-gre_full_options.pcap");
    let fates = |key: Option<u32>, remote: &str| {
        let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
        verdicts_of(&one_tunnel("172.16.15.2", remote, key, "192.168.0.2/32"), frames).0
    };
    assert!(matches!(fates(Some(1000), "172.16.25.2")[0], Verdict::Tx { reason: TxReason::Decapsulated, .. }));
    assert_eq!(fates(Some(1001), "172.16.25.2")[0], Verdict::Drop(DropReason::GreKeyMismatch));
    assert_eq!(fates(None, "172.16.25.2")[0], Verdict::Drop(DropReason::GreKeyMismatch));
    // From no tunnel's router: not ours (passed to the host by default, as the XDP program
    // does), or dropped with `gre_unsupported = "drop"`.
    assert_eq!(fates(Some(1000), "172.16.25.3")[0], Verdict::Pass(PassReason::GreUnknownTunnel));
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let dropping = one_tunnel("172.16.15.2", "172.16.25.3", Some(1000), "192.168.0.2/32")
        .replace("[dos.sanity]", "gre_unsupported = \"drop\"\n[dos.sanity]");
    assert_eq!(verdicts_of(&dropping, frames).0[0], Verdict::Drop(DropReason::GreUnknownTunnel));
}

#[test]
fn pptp_and_other_payloads_are_not_ours() {
    // PcapPlusPlus's PPTP (GRE version 1) between 20.0.0.1 and 20.0.0.2, and tcpdump's GRE
    // with ERSPAN-like and keepalive payloads between 10.172.64.6 and .7.
    for (file, anycast, remote, n) in [
        // `#1`: the outermost header (tshark 4.0's layer operator), as transitd sees it.
        ("real/pcapplusplus-GrePackets.cap", "20.0.0.2", "20.0.0.1", "gre#1 and ip.dst#1 == 20.0.0.2"),
        ("real/tcpdump-various_gre.pcap", "10.172.64.7", "10.172.64.6", "gre#1 and ip.dst#1 == 10.172.64.7"),
    ] {
        let path = pcap(file);
        let expect = tshark_frames(&path, n, &[]).len() as u64;
        assert!(expect > 0);
        let config = one_tunnel(anycast, remote, Some(0x28), "198.18.0.0/24");
        let frames: Vec<Vec<u8>> = read_frames(&path).into_iter().map(|f| f.bytes).collect();
        let (_, stats, _) = verdicts_of(&config, frames.clone());
        assert_eq!(stats.passed_for(PassReason::GreUnsupported), expect, "{file}");
        let dropping = config.replace("[dos.sanity]", "gre_unsupported = \"drop\"\n[dos.sanity]");
        let (_, stats, _) = verdicts_of(&dropping, frames);
        assert_eq!(stats.dropped_for(DropReason::GreUnsupported), expect, "{file}");
    }
}

fn tunnel_edge() -> (String, PathBuf) {
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    (config, pcap("generated/tunnel-edge.pcap"))
}

#[test]
fn tunnel_edge_frames_get_their_documented_fates() {
    // What each frame must become is written beside it in pcaps/generated/tunnel_edge.py.
    let (config, file) = tunnel_edge();
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, stats, snap) = verdicts_of(&config, frames);
    use DropReason as D;
    use TxReason as T;
    let tx = |r: TxReason| format!("tx:{}", r.name());
    let expect = [
        tx(T::Encapsulated),
        tx(T::IcmpTooBig),
        tx(T::Fragment),
        tx(T::IcmpTimeExceeded),
        tx(T::IcmpTooBig),
        tx(T::IcmpTimeExceeded),
        tx(T::Decapsulated),
        tx(T::Decapsulated),
        tx(T::Keepalive),
        tx(T::EchoReply),
        format!("consumed:{}", ConsumeReason::HealthProbeReply.name()),
        D::DecapSpoofedSource.name().to_string(),
        D::Egress.name().to_string(),
        tx(T::Encapsulated),
        D::GreKeyMismatch.name().to_string(),
        format!("pass:{}", PassReason::GreUnknownTunnel.name()),
        D::BadGreChecksum.name().to_string(),
        D::BadGreHeader.name().to_string(),
        format!("pass:{}", PassReason::GreUnsupported.name()),
        format!("pass:{}", PassReason::GreUnsupported.name()),
        tx(T::Decapsulated),
        tx(T::IcmpTimeExceeded),
        tx(T::Encapsulated),
        tx(T::IcmpTooBig),
    ];
    let got = fates(&v);
    assert_eq!(got, expect);
    assert_eq!(stats.sent_as(T::Fragment), 3, "the 3000-byte datagram became three fragments");
    assert_eq!(snap.health.replied(0), 1, "the probe reply was recorded for acme-gre");
}

/// The path MTU capture (`pcaps/generated/underlay_too_big.py`, which says what each frame
/// must become), replayed on its capture times: the fates, and the errors transitd then
/// writes to the client as tshark reads them (type, code, next-hop MTU, checksum status).
#[test]
fn underlay_too_big_frames_get_their_documented_fates() {
    let (config, _) = tunnel_edge();
    let file = pcap("generated/underlay-too-big.pcap");
    let (v, _) = verdicts_timed(&config, &file);
    let (used, unusable) = ("consumed:underlay_too_big", "underlay_too_big_unusable");
    let (encapsulated, too_big) = ("tx:encapsulated", "tx:icmp_too_big");
    let expect = [encapsulated, used, too_big, encapsulated, unusable, unusable, encapsulated, used, too_big, used];
    assert_eq!(fates(&v), expect);
    let (out, _) = replay_to(&config, &file, "underlay-too-big");
    let errors = tshark_checked(
        &out,
        &["-Y", "icmp.type == 3", "-T", "fields", "-e", "icmp.code", "-e", "icmp.mtu", "-e", "icmp.checksum.status"],
    );
    // Frame 3 (acme-gre: 1400 less 24) and frame 9 (beta-gre, keyed: 1000 less 28).
    assert_eq!(errors.lines().collect::<Vec<_>>(), ["4\t1376\t1", "4\t972\t1"]);
    let _ = std::fs::remove_file(out);
}

/// The replay output of the tunnel-edge capture.
fn edge_output() -> PathBuf {
    let (config, file) = tunnel_edge();
    let (out, _) = replay_to(&config, &file, "tunnel-edge");
    out
}

#[test]
fn icmp_errors_dissect_as_valid_and_quote_the_offending_packet() {
    let out = edge_output();
    // ICMPv4: type, code, MTU, checksum status, the error's addresses, the quoted packet's.
    let v4 = tshark_checked(
        &out,
        &[
            "-Y",
            "icmp.type == 3 or icmp.type == 11",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "icmp.type",
            "-e",
            "icmp.code",
            "-e",
            "icmp.mtu",
            "-e",
            "icmp.checksum.status",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ip.checksum.status",
            "-e",
            "ip.len",
        ],
    );
    let rows: Vec<&str> = v4.lines().collect();
    assert_eq!(
        rows,
        [
            // Frame 2: 1500 bytes with DF toward the 1476-byte tunnel. The error goes to the
            // client through the next hop: 576 bytes, the first 548 of the packet quoted.
            "3\t4\t1476\t1\t192.0.2.1,198.18.0.10\t198.18.0.10,203.0.113.10\t1,1\t576,1500",
            // Frame 4: TTL 1. The whole 38-byte packet fits in the quote.
            "11\t0\t\t1\t192.0.2.1,198.18.0.10\t198.18.0.10,203.0.113.10\t1,1\t66,38",
            // Frame 22: acme's host sent TTL 1 out: the error goes back into acme's tunnel,
            // from our side of it (10.213.0.0, RFC 1812 §4.3.2.4), not the anycast address.
            "11\t0\t\t1\t192.0.2.1,10.213.0.0,203.0.113.10\t198.51.100.1,203.0.113.10,198.18.0.10\t1,1,1\t89,65,37",
            // Frame 24: one byte over the MTU.
            "3\t4\t1476\t1\t192.0.2.1,198.18.0.10\t198.18.0.10,203.0.113.10\t1,1\t576,1477",
        ]
    );
    // ICMPv6 from the IPv6 anycast address: packet too big (MTU 1476, 1280 bytes long) and
    // hop limit exceeded; checksums over the pseudo-header verify.
    let v6 = tshark(
        &out,
        &[
            "-Y",
            "icmpv6.type == 2 or icmpv6.type == 3",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "icmpv6.type",
            "-e",
            "icmpv6.code",
            "-e",
            "icmpv6.mtu",
            "-e",
            "icmpv6.checksum.status",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.plen",
        ],
    );
    assert_eq!(
        v6.lines().collect::<Vec<_>>(),
        [
            "2\t0\t1476\t1\t2001:db8:ffff::1,2001:db8:c0::10\t1240,1460",
            "3\t0\t\t1\t2001:db8:ffff::1,2001:db8:c0::10\t67,19",
        ]
    );
    let _ = std::fs::remove_file(out);
}

#[test]
fn fragments_reassemble_in_tshark_to_the_original_datagram() {
    let out = edge_output();
    // With reassembly on, tshark rebuilds the 3000-byte UDP datagram from the three
    // encapsulated fragments; its UDP checksum, computed by scapy over the original, verifies.
    let rows = tshark_checked(
        &out,
        &[
            "-o",
            "ip.defragment:TRUE",
            "-Y",
            "ip.id == 0x4242",
            "-T",
            "fields",
            "-E",
            "occurrence=l",
            "-e",
            "ip.frag_offset",
            "-e",
            "ip.flags.mf",
            "-e",
            "ip.len",
            "-e",
            "ip.ttl",
            "-e",
            "udp.length",
            "-e",
            "udp.checksum.status",
            "-e",
            "ip.reassembled.length",
        ],
    );
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(
        rows,
        // Offsets in 8-byte units. The first fragment is sent in place of the datagram, the
        // other two after the batch.
        ["0\t1\t1476\t56\t\t\t", "182\t1\t1476\t56\t\t\t", "364\t0\t84\t56\t2976\t1\t2976"],
        "fragments within the MTU, at 8-byte offsets, TTL decremented, reassembled whole"
    );
    // Each fragment carries the time of the frame it was cut from (the capture's third, at
    // 1700000000.002), not that of the batch's first frame.
    let (_, input) = tunnel_edge();
    let sent_at = tshark(&input, &["-Y", "ip.id == 0x4242", "-T", "fields", "-e", "frame.time_epoch"]);
    let times = tshark(&out, &["-Y", "ip.id == 0x4242", "-T", "fields", "-e", "frame.time_epoch"]);
    assert_eq!(sent_at.trim(), "1700000000.002000000");
    assert_eq!(times.lines().collect::<Vec<_>>(), [sent_at.trim(); 3], "{times}");
    let _ = std::fs::remove_file(out);
}

#[test]
fn mss_is_clamped_both_ways_with_valid_checksums() {
    let out = edge_output();
    let rows = tshark_checked(
        &out,
        &[
            "-Y",
            "tcp.flags.syn == 1",
            "-T",
            "fields",
            "-E",
            "occurrence=l",
            "-e",
            "ip.src",
            "-e",
            "tcp.flags.ack",
            "-e",
            "tcp.options.mss_val",
            "-e",
            "tcp.checksum.status",
            "-e",
            "tcp.options.wscale.shift",
        ],
    );
    // The client's SYN into the tunnel and the host's SYN-ACK out of it: 1460 → 1436
    // (1476 less 40); the other options untouched.
    assert_eq!(rows.lines().collect::<Vec<_>>(), ["198.18.0.10\t0\t1436\t1\t7", "203.0.113.10\t1\t1436\t1\t"]);
    let _ = std::fs::remove_file(out);
}

#[test]
fn keepalives_pings_and_hairpins_come_out_as_routers_expect() {
    let out = edge_output();
    let fields = |filter: &str, f: &[&str]| {
        let mut args = vec!["-Y", filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"];
        for x in f {
            args.extend(["-e", x]);
        }
        tshark_checked(&out, &args).trim().to_string()
    };
    // The keepalive goes to the router as the plain GRE packet the router built (the
    // inner packet of frame 9), one TTL less.
    assert_eq!(
        fields("gre.proto == 0", &["ip.src", "ip.dst", "ip.ttl", "ip.checksum.status"]),
        "192.0.2.1\t198.51.100.1\t254\t1"
    );
    // The router's ping of our side of the tunnel is answered through the tunnel.
    assert_eq!(
        fields("icmp.type == 0", &["ip.src", "ip.dst", "icmp.ident", "icmp.seq", "icmp.checksum.status", "data.data"]),
        format!("192.0.2.1,10.213.0.0\t198.51.100.1,10.213.0.1\t99\t3\t1\t{}", hex(b"tunnel ping"))
    );
    // acme's packet to beta's prefix leaves through beta's tunnel, with beta's key.
    assert_eq!(
        fields("gre.key == 7", &["ip.src", "ip.dst", "ip.ttl", "udp.dstport"]),
        "192.0.2.1,203.0.113.10\t198.51.100.2,198.18.100.5\t64,63\t7"
    );
    // GRE over IPv6 from acme's other router: decapsulated like any other.
    assert_eq!(
        fields("udp.dstport == 8 and not gre", &["ip.src", "ip.dst", "ip.ttl"]),
        "203.0.113.10\t198.18.0.10\t63"
    );
    let _ = std::fs::remove_file(out);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn gre_checksums_and_keys_transitd_writes_verify_in_tshark() {
    // acme's tunnel with a key and GRE checksums: every frame sent into it carries both, and
    // tshark verifies the checksum over header and payload. (The router's own GRE in the
    // capture has no key, so it is now refused: what goes into the tunnel is frame 1 and the
    // three fragments of frame 3.)
    let (config, file) = tunnel_edge();
    let config =
        config.replace("interface = \"10.213.0.0/31\"", "interface = \"10.213.0.0/31\"\nkey = 1001\nchecksum = true");
    let (out, stats) = replay_to(&config, &file, "gre-checksum");
    let rows = tshark(
        &out,
        &[
            "-Y",
            "ip.dst#1 == 198.51.100.1 and gre",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "gre.flags.checksum",
            "-e",
            "gre.flags.key",
            "-e",
            "gre.key",
            "-e",
            "gre.checksum.status",
        ],
    );
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows, ["1\t1\t0x000003e9\t1"; 4]);
    // Frames 7-14 and 22 from acme's router, 15 from beta's, as before.
    assert_eq!(stats.dropped_for(DropReason::GreKeyMismatch), 10);
    assert_eq!(stats.sent_as(TxReason::Fragment), 3);
    let _ = std::fs::remove_file(out);
}

#[test]
fn icmp_rate_zero_sends_no_icmp_error_and_no_ping_reply() {
    let (config, file) = tunnel_edge();
    let config = config.replacen("[server]\n", "[server]\nicmp_rate = 0\n", 1);
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, stats, _) = verdicts_of(&config, frames);
    use TxReason as T;
    for reason in [T::IcmpTimeExceeded, T::IcmpTooBig, T::EchoReply] {
        assert_eq!(stats.sent_as(reason), 0, "{}", reason.name());
    }
    // The frames that would have been answered are dropped under their own reasons.
    assert_eq!(stats.dropped_for(DropReason::TtlExceeded), 3);
    assert_eq!(v.iter().filter(|v| matches!(v, Verdict::Tx { reason: T::Encapsulated, .. })).count(), 3);
}

/// The ICMP budget is spent on messages sent, not on requests refused (RFC 1812 §4.3.2.8):
/// pings of our side of a tunnel that get no reply (they carry IP options, which an
/// in-place reply cannot honour) took a token each, and the errors after them found none.
/// With a burst of two, two such pings, then two packets whose TTL runs out: both errors go.
#[test]
fn pings_that_get_no_reply_spend_no_icmp_budget() {
    let (config, _) = tunnel_edge();
    let config = config.replacen("[server]\n", "[server]\nicmp_rate = 1\nicmp_burst = 2\n", 1);
    let file = temp("ping-options");
    scapy_pcap(
        &file,
        "gre = lambda inner: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         ping = IP(src='10.213.0.1', dst='10.213.0.0', options=[IPOption_NOP()] * 4)/ICMP(type=8, id=1, seq=1)\n\
         late = IP(src='198.18.0.10', dst='203.0.113.10', ttl=1)/UDP(sport=5000, dport=53)\n\
         frames = [gre(ping), gre(ping), Ether(dst='02:00:00:00:00:01')/late, Ether(dst='02:00:00:00:00:01')/late]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (refused, late) = (DropReason::TunnelInterface.name(), format!("tx:{}", TxReason::IcmpTimeExceeded.name()));
    assert_eq!(fates(&v), [refused, refused, &late, &late]);
}

/// A ping of our side of a tunnel is not answered from a source no ICMP error goes to (RFC
/// 1812 §4.3.2.7): one of our own addresses (our side of this tunnel: someone else wrote the
/// request, and the reply would go to ourselves) or the network or broadcast address of the
/// tunnel's /30 (no one host). With the tunnel's /30 inside its customer's prefix, these pass
/// the source check (elsewhere they fail it: the next test). Each is `tunnel_interface`, and
/// spends none of the ICMP budget: with a burst of two, the two pings after them from the
/// router's side and a customer's address are both answered. scapy writes them.
#[test]
fn pings_of_our_side_from_our_own_addresses_are_not_answered() {
    let (config, _) = tunnel_edge();
    let config = config.replace("interface = \"10.213.0.0/31\"", "interface = \"203.0.113.201/30\"");
    let config = config.replacen("[server]\n", "[server]\nicmp_rate = 1\nicmp_burst = 2\n", 1);
    let file = temp("ping-from-ours");
    scapy_pcap(
        &file,
        "gre = lambda inner: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         ping = lambda src: IP(src=src, dst='203.0.113.201')/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         ours = ['203.0.113.201', '203.0.113.200', '203.0.113.203']\n\
         frames = [gre(ping(s)) for s in ours + ['203.0.113.202', '203.0.113.7']]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (refused, reply) = (DropReason::TunnelInterface.name(), format!("tx:{}", TxReason::EchoReply.name()));
    let reply = reply.as_str();
    assert_eq!(fates(&v), [refused, refused, refused, reply, reply]);
}

/// A ping of our side of a tunnel is answered only to a source the tunnel's customer may
/// send from (its prefixes, the router's side of the tunnel): its reply goes back through
/// the tunnel to that source. From any other it is `decap_spoofed_source`, as anything else
/// from there is, where it was answered: an address of the Internet, another customer's
/// host, another tunnel's router side, and our own addresses outside the customer's
/// prefixes (the anycast address, another tunnel's side and its /30's broadcast). The
/// router's side and a customer's host are answered. scapy writes them.
#[test]
fn pings_of_our_side_from_sources_not_the_customers_are_not_answered() {
    let (config, _) = tunnel_edge();
    let config = config.replace("key = 7\n", "key = 7\ninterface = \"10.214.0.1/30\"\n");
    let file = temp("ping-from-elsewhere");
    scapy_pcap(
        &file,
        "gre = lambda inner: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         ping = lambda src: IP(src=src, dst='10.213.0.0')/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         elsewhere = ['198.18.0.10', '198.18.100.5', '10.214.0.2', '192.0.2.1', '10.214.0.1', '10.214.0.3']\n\
         frames = [gre(ping(s)) for s in elsewhere + ['10.213.0.1', '203.0.113.7']]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (spoofed, reply) = (DropReason::DecapSpoofedSource.name(), format!("tx:{}", TxReason::EchoReply.name()));
    let reply = reply.as_str();
    assert_eq!(fates(&v), [spoofed, spoofed, spoofed, spoofed, spoofed, spoofed, reply, reply]);
}

/// What we send back into a tunnel fits its MTU: a time-exceeded about a packet as long as
/// the tunnel takes quotes less of it (RFC 1812 §4.3.2.3: as much as fits; the full quote
/// was dropped as `mtu_exceeded`, and the hop was missing from the router's tracepath), and
/// an echo reply longer than the tunnel takes is dropped as `mtu_exceeded` rather than
/// sent for the underlay to drop. Read back by etherparse.
#[test]
fn what_goes_back_into_a_small_tunnel_fits_it() {
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket};
    use transitd::pipeline::{Frame, HEADROOM, Limits, SPILL_SLOTS, Spill, process_frame};
    let (config, _) = tunnel_edge();
    // IPv6 needs 1280 bytes: acme's IPv6 route goes by its other tunnel here.
    let config = config.replacen("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nmtu = 300", 1).replacen(
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
        1,
    );
    let snap = snapshot(&config);
    let (mut limits, mut spill) = (Limits::new(&snap), Spill::new(SPILL_SLOTS, snap.frame_size));
    let mut send = |inner: &[u8]| {
        let input = in_gre(inner, [198, 51, 100, 1], [192, 0, 2, 1]);
        let mut buf = vec![0u8; HEADROOM + 2048];
        buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(&input);
        let mut frame = Frame::new(&mut buf, HEADROOM, input.len(), input.len() as u32, 1);
        let outcome = process_frame(&snap, Some(&snap.eth), &mut limits, &mut spill, &mut frame);
        frame.verdict = outcome.verdict;
        (outcome.verdict, frame.tx_bytes().map(<[u8]>::to_vec))
    };
    // A 300-byte TTL-1 datagram from the router: its error is 28 + 272 bytes, not 328.
    let mut probe = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
        .ipv4([10, 213, 0, 1], [8, 8, 8, 8], 1)
        .udp(33434, 33435)
        .write(&mut probe, &[0x55; 300 - 28])
        .unwrap();
    let (verdict, sent) = send(&probe);
    assert!(matches!(verdict, Verdict::Tx { reason: TxReason::IcmpTimeExceeded, .. }), "{verdict:?}");
    let sent = sent.unwrap();
    let error = SlicedPacket::from_ip(&sent[14 + 20 + 4..]).unwrap();
    let Some(NetSlice::Ipv4(e)) = error.net else { panic!("not IPv4: {error:?}") };
    assert_eq!(e.header().total_len(), 300, "the error fills the tunnel, no more");
    assert_eq!(&sent[14 + 20 + 4 + 28..14 + 20 + 4 + 48], &probe[14..34], "the quote starts with the packet's header");
    // A 300-byte ping of our side is answered; a 301-byte one is not sent back.
    for (len, fits) in [(300, true), (301, false)] {
        let mut ping = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([10, 213, 0, 1], [10, 213, 0, 0], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut ping, &vec![0x66; len - 28])
            .unwrap();
        let (verdict, _) = send(&ping);
        match fits {
            true => assert!(matches!(verdict, Verdict::Tx { reason: TxReason::EchoReply, .. }), "{verdict:?}"),
            false => assert_eq!(verdict, Verdict::Drop(DropReason::MtuExceeded)),
        }
    }
}

/// A TTL-1 packet from a customer's router itself (a traceroute from its tunnel address,
/// which no customer prefix holds) gets its time-exceeded back through the tunnel it came
/// out of, not toward the Internet, where that address means nothing.
#[test]
fn icmp_errors_about_a_routers_own_packets_go_back_into_its_tunnel() {
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket};
    use transitd::pipeline::{Frame, HEADROOM, Limits, SPILL_SLOTS, Spill, process_frame};
    let (config, _) = tunnel_edge();
    let snap = snapshot(&config);
    let (mut limits, mut spill) = (Limits::new(&snap), Spill::new(SPILL_SLOTS, snap.frame_size));
    let probe = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
        .ipv4([10, 213, 0, 1], [8, 8, 8, 8], 1)
        .udp(33434, 33435);
    let mut inner = Vec::new();
    probe.write(&mut inner, b"from the router").unwrap();
    let input = in_gre(&inner, [198, 51, 100, 1], [192, 0, 2, 1]);
    let mut buf = vec![0u8; HEADROOM + 2048];
    buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(&input);
    let mut frame = Frame::new(&mut buf, HEADROOM, input.len(), input.len() as u32, 1);
    let outcome = process_frame(&snap, Some(&snap.eth), &mut limits, &mut spill, &mut frame);
    assert!(matches!(outcome.verdict, Verdict::Tx { reason: TxReason::IcmpTimeExceeded, .. }), "{:?}", outcome.verdict);
    frame.verdict = outcome.verdict;
    let sent = frame.tx_bytes().unwrap().to_vec();
    let outer = SlicedPacket::from_ethernet(&sent).unwrap();
    let Some(NetSlice::Ipv4(o)) = outer.net else { panic!("not IPv4: {outer:?}") };
    assert_eq!((o.header().destination(), o.header().protocol()), ([198, 51, 100, 1], etherparse::IpNumber::GRE));
    // Behind the 4-byte GRE header: ICMP time exceeded from our side of the tunnel (an
    // address of the interface it leaves by, RFC 1812 §4.3.2.4: a router filtering sources
    // strictly on its tunnel dropped errors from the anycast address) to the router.
    let error = SlicedPacket::from_ip(&sent[14 + 20 + 4..]).unwrap();
    let Some(NetSlice::Ipv4(e)) = error.net else { panic!("not IPv4: {error:?}") };
    assert_eq!((e.header().source(), e.header().destination()), ([10, 213, 0, 0], [10, 213, 0, 1]));
    assert_eq!(sent[14 + 20 + 4 + 20], 11, "ICMP type: time exceeded");
}

/// GRE over IPv6 labels each inner flow (RFC 6438), as tshark reads the outer header: never
/// 0, one label per flow, distinct flows apart, and the fragments of one datagram (which
/// carry no ports but the first) under one label.
#[test]
fn gre_over_ipv6_carries_the_inner_flow_in_its_flow_label() {
    let config = std::fs::read_to_string(root().join("bench/configs/catch-all.toml"))
        .unwrap()
        .replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db8:ffff::1\"")
        .replace("remote = \"198.51.100.1\"", "remote = \"2001:db8:beef::1\"");
    let fields = |out: &Path, extra: &[&str]| -> Vec<Vec<String>> {
        let mut args = vec!["-Y", "ipv6.nxt == 47", "-T", "fields", "-E", "occurrence=f", "-e", "ipv6.flow"];
        for e in extra {
            args.extend(["-e", e]);
        }
        tshark_checked(out, &args).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
    };
    let label = |row: &[String]| u32::from_str_radix(row[0].trim_start_matches("0x"), 16).unwrap();

    let (out, _) = replay_to(&config, &pcap("real/suricata-syn-flood.pcap"), "flow-label-flows");
    let rows = fields(&out, &["ip.src", "ip.dst", "tcp.srcport", "tcp.dstport"]);
    assert_eq!(rows.len(), 200, "every SYN encapsulated over IPv6");
    let mut by_flow: std::collections::HashMap<&[String], std::collections::HashSet<u32>> = Default::default();
    for row in &rows {
        assert_ne!(label(row), 0, "{row:?}");
        by_flow.entry(&row[1..]).or_default().insert(label(row));
    }
    assert!(by_flow.values().all(|labels| labels.len() == 1), "one label per flow");
    let distinct: std::collections::HashSet<u32> = rows.iter().map(|r| label(r)).collect();
    assert!(distinct.len() >= by_flow.len() - 2, "{} labels for {} flows", distinct.len(), by_flow.len());

    let (out, _) = replay_to(&config, &pcap("real/pcapplusplus-ip4_fragments.pcap"), "flow-label-fragments");
    let rows = fields(&out, &["ip.src", "ip.dst", "ip.id", "ip.frag_offset"]);
    let mut by_datagram: std::collections::HashMap<&[String], std::collections::HashSet<u32>> = Default::default();
    for row in &rows {
        by_datagram.entry(&row[1..4]).or_default().insert(label(row));
    }
    assert!(rows.iter().any(|r| r[4] != "0"), "later fragments are in the capture");
    assert!(by_datagram.values().all(|labels| labels.len() == 1), "{by_datagram:?}");
}

/// GRE over IPv6 from acme's router behind a destination-options header (which the XDP
/// program now redirects from a tunnel's router) is walked and decapsulated like the plain
/// one; behind a fragment header, as a first fragment whose data is no multiple of 8 bytes
/// (which no first fragment can be), it is dropped as a GRE fragment.
#[test]
fn gre_over_ipv6_behind_extension_headers_is_decapsulated_or_dropped_with_its_reason() {
    let (config, _) = tunnel_edge();
    let mut inner = Vec::new();
    etherparse::PacketBuilder::ipv4([203, 0, 113, 10], [198, 18, 0, 10], 64)
        .udp(5353, 53)
        .write(&mut inner, b"query")
        .unwrap();
    let frame = |ext: &[u8], next: u8| {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x86, 0xdd];
        let gre = [0u8, 0, 0x08, 0x00];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((ext.len() + gre.len() + inner.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[next, 60]);
        f.extend_from_slice(&"2001:db8:beef::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"2001:db8:ffff::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(ext);
        f.extend_from_slice(&gre);
        f.extend_from_slice(&inner);
        f
    };
    // Destination options (60): next header GRE, 8 bytes, a PadN option filling them.
    let options = frame(&[47, 0, 1, 4, 0, 0, 0, 0], 60);
    // A fragment header (44): next header GRE, offset 0, more fragments.
    let fragment = frame(&[47, 0, 0, 1, 0, 0, 0, 9], 44);
    let (v, _, _) = verdicts_of(&config, vec![frame(&[], 47), options, fragment]);
    let names = fates(&v);
    assert_eq!(names, ["tx:decapsulated", "tx:decapsulated", DropReason::GreFragment.name()]);
}

/// No ICMP error about an ICMP error behind IPv6 extension headers or IPv4 AH (the header
/// checks see only the first next header), and no Time Exceeded about an IPv6 fragment
/// other than the first; a Packet Too Big about a later fragment is still sent (path MTU
/// discovery needs it). scapy makes the packets; beside each, one the same but for what
/// forbids the error, which is answered.
#[test]
fn no_icmp_error_about_an_error_behind_extension_headers_or_a_later_fragment() {
    let (config, _) = tunnel_edge();
    let file = std::env::temp_dir().join(format!("transitd-icmp-deep-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "big = Raw(b'x' * 1500)\n\
         frames = [\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5', hlim=1)/IPv6ExtHdrDestOpt()/ICMPv6DestUnreach()/IPv6()/UDP(),\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5', hlim=1)/IPv6ExtHdrDestOpt()/ICMPv6EchoRequest(),\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5', hlim=1)/IPv6ExtHdrFragment(offset=100, m=1, nh=17, id=7)/Raw(b'y' * 64),\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5', hlim=1)/IPv6ExtHdrFragment(offset=0, m=1, nh=17, id=8)/UDP()/Raw(b'y' * 64),\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5', hlim=64)/IPv6ExtHdrFragment(offset=100, m=1, nh=17, id=9)/big,\n\
           Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.9', dst='203.0.113.5', ttl=1, proto=51)/AH(nh=1, payloadlen=4, icv=b'\\0' * 12)/ICMP(type=3, code=1)/IP()/UDP(),\n\
           Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.9', dst='203.0.113.5', ttl=1, proto=51)/AH(nh=1, payloadlen=4, icv=b'\\0' * 12)/ICMP(type=8),\n\
         ]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    use TxReason as T;
    let exceeded = Verdict::Drop(DropReason::TtlExceeded);
    let answered = |v: &Verdict, reason: T| matches!(v, Verdict::Tx { reason: r, .. } if *r == reason);
    assert_eq!(v[0], exceeded, "an ICMPv6 error behind destination options");
    assert!(answered(&v[1], T::IcmpTimeExceeded), "an echo request behind them: {:?}", v[1]);
    assert_eq!(v[2], exceeded, "a later IPv6 fragment");
    assert!(answered(&v[3], T::IcmpTimeExceeded), "the first fragment: {:?}", v[3]);
    assert!(answered(&v[4], T::IcmpTooBig), "too big, a later fragment: {:?}", v[4]);
    assert_eq!(v[5], exceeded, "an ICMP error behind AH");
    assert!(answered(&v[6], T::IcmpTimeExceeded), "an echo request behind AH: {:?}", v[6]);
}

/// An IPv4 first fragment with fewer than 6 bytes of ICMP has no ICMP layer, in tshark and so
/// in the key: with no type to tell, it may be an error, and gets no error about it. Behind
/// AH the header checks in `gre::icmp` cannot read the type either (they see protocol 51), so
/// only the fragment's own protocol kept a Destination Unreachable of 4 bytes from being
/// answered. With 6 bytes an echo request is read, and answered. (With the sanity checks on,
/// all are tiny fragments.)
#[test]
fn no_icmp_error_about_a_first_fragment_too_short_for_its_icmp_type() {
    let (config, _) = tunnel_edge();
    let config = config.replacen("[dos.sanity]\n", "[dos.sanity]\nfragments = false\n", 1);
    let file = std::env::temp_dir().join(format!("transitd-icmp-short-fragment-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "echo = bytes(ICMP(type=8, id=7, seq=1))\n\
         ip = lambda p: IP(src='198.51.100.9', dst='203.0.113.5', ttl=1, proto=p, flags='MF')\n\
         ah = AH(nh=1, payloadlen=4, icv=b'\\0' * 12)\n\
         frames = [Ether(dst='02:00:00:00:00:01')/p for p in [\n\
           ip(51)/ah/Raw(bytes([3, 1, 0, 0])),\n\
           ip(51)/ah/Raw(echo[:4]),\n\
           ip(1)/Raw(echo[:4]),\n\
           ip(51)/ah/Raw(echo[:6]),\n\
           ip(1)/Raw(echo[:6]),\n\
         ]]",
    );
    assert_eq!(tshark_frames(&file, "icmp", &[]), [4, 5], "tshark's ICMP layer begins at 6 bytes");
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    let exceeded = Verdict::Drop(DropReason::TtlExceeded);
    assert_eq!(v[..3], [exceeded; 3], "4 bytes of ICMP: no type, no error");
    for (verdict, how) in v[3..].iter().zip(["behind AH", "plain"]) {
        let answered = matches!(verdict, Verdict::Tx { reason: TxReason::IcmpTimeExceeded, .. });
        assert!(answered, "an echo request of 6 bytes ({how}): {verdict:?}");
    }
}

/// RFC 6040 §4.2 at decapsulation: an outer Congestion Experienced mark reaches an
/// ECN-capable inner packet (the IPv4 checksum still verifying, as tshark checks), outer
/// ECT(1) over inner ECT(0) becomes ECT(1), a not-ECN-capable inner packet under an outer CE
/// is dropped, and anything else keeps its inner field; IPv6 inside too.
#[test]
fn decapsulation_carries_the_congestion_mark_inward() {
    let (config, _) = tunnel_edge();
    let file = std::env::temp_dir().join(format!("transitd-ecn-{}.pcap", std::process::id()));
    let out = std::env::temp_dir().join(format!("transitd-ecn-out-{}.pcap", std::process::id()));
    // (outer ECN, inner ECN) from acme's router; the inner DSCP is 0x28 (AF11) throughout.
    scapy_pcap(
        &file,
        "def gre(outer, inner, v6=False):\n\
         \x20   ip = IPv6(src='2001:db8:acbe::7', dst='2001:db8:5::9', tc=0x28 | inner) if v6 else IP(src='203.0.113.7', dst='198.51.100.200', tos=0x28 | inner)\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1', tos=outer)/GRE()/ip/UDP(sport=5000, dport=53)/Raw(b'q')\n\
         frames = [gre(3, 2), gre(3, 1), gre(3, 3), gre(3, 0), gre(1, 2), gre(2, 1), gre(0, 2), gre(3, 2, True), gre(3, 0, True)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let sent = |v: &Verdict| matches!(v, Verdict::Tx { reason: TxReason::Decapsulated, .. });
    let fates: Vec<bool> = v.iter().map(sent).collect();
    assert_eq!(fates, [true, true, true, false, true, true, true, true, false], "{v:?}");
    assert_eq!(v[3], Verdict::Drop(DropReason::DecapCeNotEct));
    assert_eq!(v[8], Verdict::Drop(DropReason::DecapCeNotEct));
    // What went out, as tshark reads it: the ECN field and (IPv4) the checksum's status.
    let snap = std::sync::Arc::new(snapshot(&config));
    transitd::replay::replay(snap, &file, Some(&out)).unwrap();
    let rows = tshark(
        &out,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.dsfield.ecn",
            "-e",
            "ipv6.tclass.ecn",
            "-e",
            "ip.checksum.status",
            "-e",
            "ip.dsfield.dscp",
            "-e",
            "ipv6.tclass.dscp",
        ],
    );
    let got: Vec<&str> = rows.lines().collect();
    let v4 = |ecn: u8| format!("{ecn}\t\t1\t10\t");
    let v6 = |ecn: u8| format!("\t{ecn}\t\t\t10");
    assert_eq!(
        got,
        [v4(3), v4(3), v4(3), v4(1), v4(1), v4(2), v6(3)].iter().map(String::as_str).collect::<Vec<_>>(),
        "{rows}"
    );
    let _ = (std::fs::remove_file(file), std::fs::remove_file(out));
}

/// A SYN out of one customer's tunnel into another's crosses both: its MSS is clamped to
/// the smaller (acme's tunnel at MTU 1400 here, beta's at the default 1476); it was clamped
/// to the tunnel it went into alone. tshark reads the MSS that went out.
#[test]
fn a_syn_between_two_customers_tunnels_fits_both() {
    let (config, _) = tunnel_edge();
    let config = config.replacen("name = \"acme-gre\"\n", "name = \"acme-gre\"\nmtu = 1400\n", 1);
    let file = std::env::temp_dir().join(format!("transitd-hairpin-mss-{}.pcap", std::process::id()));
    let out = std::env::temp_dir().join(format!("transitd-hairpin-mss-out-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "syn = lambda dst: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/IP(src='203.0.113.7', dst=dst)/TCP(sport=40000, dport=80, flags='S', options=[('MSS', 1460)])\n\
         frames = [syn('198.18.100.5'), syn('198.51.100.200')]",
    );
    let snap = std::sync::Arc::new(snapshot(&config));
    transitd::replay::replay(snap, &file, Some(&out)).unwrap();
    let rows = tshark(&out, &["-T", "fields", "-E", "occurrence=l", "-e", "ip.dst", "-e", "tcp.options.mss_val"]);
    let got: Vec<&str> = rows.lines().collect();
    // Into beta's tunnel: 1400 - 40; to the Internet: acme's tunnel's alone, the same.
    assert_eq!(got, ["198.18.100.5\t1360", "198.51.100.200\t1360"], "{rows}");
    let _ = (std::fs::remove_file(file), std::fs::remove_file(out));
}

/// A SYN too big for the tunnel (data, no DF: TCP Fast Open's, say) goes in fragments, and
/// the first carries its MSS clamped as any SYN into the tunnel is (it went out at 1460: the
/// fragmentation came before the clamp). tshark reassembles the fragments inside GRE and
/// reads the MSS and the checksum.
#[test]
fn a_syn_fragmented_into_a_tunnel_is_clamped() {
    let (config, _) = tunnel_edge();
    let file = temp("syn-fragmented");
    let out = temp("syn-fragmented-out");
    scapy_pcap(
        &file,
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.18.0.10', dst='203.0.113.10', id=77)/TCP(sport=40001, dport=80, flags='S', options=[('MSS', 1460)])/Raw(b'f' * 1440)]",
    );
    let snap = std::sync::Arc::new(snapshot(&config));
    replay(snap, &file, Some(&out)).unwrap();
    let rows = tshark_checked(
        &out,
        &[
            "-o",
            "ip.defragment:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "tcp.options.mss_val",
            "-e",
            "tcp.checksum.status",
        ],
    );
    // acme-gre's mtu 1476, less 40.
    assert_eq!(rows, "1436\t1\n", "the SYN, whole again");
    let pieces = tshark(&out, &["-Y", "gre", "-T", "fields", "-e", "frame.len"]);
    assert_eq!(pieces.lines().count(), 2, "in two fragments: {pieces}");
    for f in [file, out] {
        let _ = std::fs::remove_file(f);
    }
}

/// A packet out of one customer's tunnel into another's prefix whose source route still has
/// hops to go is dropped as one from the Internet is (`source_routed`): it reached the
/// other customer's firewall, which reads the header's destination where tshark reads the
/// route's end (a review found the hairpin path without the check).
#[test]
fn a_source_routed_packet_hairpinned_into_another_customer_is_dropped() {
    let (config, _) = tunnel_edge();
    let file = temp("hairpin-lsrr");
    scapy_pcap(
        &file,
        "inner = IP(src='203.0.113.7', dst='198.18.100.5', options=[IPOption_LSRR(routers=['198.18.100.6'], pointer=4)])/UDP(sport=5000, dport=53)\n\
         frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames.clone());
    assert_eq!(v, [Verdict::Drop(DropReason::SourceRouted)]);
    let unchecked = config.replacen("[dos.sanity]\n", "[dos.sanity]\nsource_route = false\n", 1);
    let (v, _, _) = verdicts_of(&unchecked, frames);
    assert!(matches!(v[..], [Verdict::Tx { reason: TxReason::Encapsulated, .. }]), "into beta's tunnel: {v:?}");
}

/// GRE over IPv6 from the IPv4-mapped form of a tunnel's IPv4 router (::ffff:198.51.100.1)
/// is no tunnel's: the tunnel index keeps IPv4 remotes in that form, and it was decapsulated
/// as acme-gre's (with the bogon check off, which would drop it first). Its fate is that of
/// GRE from any address that is no tunnel's.
#[test]
fn gre_from_an_ipv4_mapped_source_is_no_tunnels() {
    let (config, _) = tunnel_edge();
    let file = temp("mapped-gre");
    scapy_pcap(
        &file,
        "inner = IP(src='203.0.113.7', dst='198.51.100.99')/UDP(sport=5000, dport=53)\n\
         gre = lambda src: Ether(dst='02:00:00:00:00:01')/IPv6(src=src, dst='2001:db8:ffff::1')/GRE()/inner\n\
         frames = [gre('::ffff:198.51.100.1'), gre('2001:db8:5::99')]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    assert_eq!(v[0], v[1], "{v:?}");
    assert!(!matches!(v[0], Verdict::Tx { .. }), "{v:?}");
}

/// What the sanity checks keep from the Internet they keep from another customer's tunnel
/// (and from a customer's own, hairpinned back): TCP flags no stack sends, a first fragment
/// too short for the TCP header, a later one overwriting it, a land packet. Each goes
/// through with its check off. The source's checks are the tunnel's own (bogons are off
/// here, and on would judge the customer's own prefix).
#[test]
fn hairpinned_packets_meet_the_sanity_checks() {
    let (config, _) = tunnel_edge();
    let file = temp("hairpin-sanity");
    scapy_pcap(
        &file,
        "tcp = bytes(TCP(sport=5000, dport=80, flags='S'))\n\
         inner = [IP(src='203.0.113.7', dst='198.18.100.5')/TCP(sport=5000, dport=80, flags='SR'),\n\
                  IP(src='203.0.113.7', dst='198.18.100.5', proto=6, flags='MF', id=7)/Raw(tcp[:8]),\n\
                  IP(src='203.0.113.7', dst='198.18.100.5', proto=6, frag=1, id=7)/Raw(tcp),\n\
                  IP(src='203.0.113.7', dst='203.0.113.7')/UDP(sport=7, dport=7)]\n\
         frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/p for p in inner]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames.clone());
    use DropReason as D;
    let dropped = [D::BadTcpFlags, D::TinyFragment, D::OverlappingFragment, D::Land].map(Verdict::Drop);
    assert_eq!(v, dropped);
    let unchecked =
        config.replacen("[dos.sanity]\n", "[dos.sanity]\ntcp_flags = false\nfragments = false\nland = false\n", 1);
    let (v, _, _) = verdicts_of(&unchecked, frames);
    assert!(v.iter().all(|v| matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. })), "{v:?}");
}

/// The sanity checks come before the customer's egress rules: what they drop spends no
/// egress token. Under a limit of one packet to beta's host, a SYN+RST and then a good
/// packet: the bad one is dropped, the good one goes (it was rate-limited when the bad one
/// had taken the token first).
#[test]
fn a_hairpinned_packet_the_sanity_checks_drop_spends_no_egress_token() {
    let (config, _) = tunnel_edge();
    let limited = config
        .replacen(
            "[[customer.egress.rule]]\n",
            "[[customer.egress.rule]]\nname = \"one-to-beta\"\nmatch = \"ip.dst == 198.18.100.5\"\n\
             action = \"rate-limit\"\nbucket = \"one\"\n\n[[customer.egress.rule]]\n",
            1,
        )
        .replacen("[dos.sanity]\n", "[[dos.bucket]]\nname = \"one\"\nkey = \"rule\"\nrate = 1\n\n[dos.sanity]\n", 1);
    assert_ne!(limited, config);
    let file = temp("hairpin-token");
    scapy_pcap(
        &file,
        "inner = [IP(src='203.0.113.7', dst='198.18.100.5')/TCP(sport=5000, dport=80, flags='SR'),\n\
                  IP(src='203.0.113.7', dst='198.18.100.5')/UDP(sport=5000, dport=53)]\n\
         frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/p for p in inner]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&limited, frames);
    assert_eq!(v[0], Verdict::Drop(DropReason::BadTcpFlags));
    assert!(matches!(v[1], Verdict::Tx { reason: TxReason::Encapsulated, .. }), "{v:?}");
}

/// A later fragment's data is data: the later pieces of an IPv4 datagram under AH (protocol
/// 51 in every piece, the AH header only in the first) and of an IPv6 datagram with
/// destination options in its fragmentable part (the fragment header's next header 60 in
/// every piece) go through like any fragment; they were read as AH or options headers and
/// dropped as malformed. scapy fragments them; tshark reassembles what went out whole.
#[test]
fn later_fragments_of_ah_and_extension_header_datagrams_go_through() {
    let (config, _) = tunnel_edge();
    let file = temp("later-fragments");
    let out = temp("later-fragments-out");
    // Zero-filled data: read as a header, it is a malformed one (AH length 0, or options
    // followed by a hop-by-hop header).
    scapy_pcap(
        &file,
        "data = Raw(b'\\0' * 2000)\n\
         v4 = IP(src='198.51.100.9', dst='203.0.113.5', id=0x5151)/AH(nh=17, payloadlen=4, spi=1, seq=1, icv=b'\\0' * 12)/UDP(sport=53, dport=5353)/data\n\
         v6 = IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5')/IPv6ExtHdrFragment(id=0x6161)/IPv6ExtHdrDestOpt()/UDP(sport=53, dport=5353)/data\n\
         frames = [Ether(dst='02:00:00:00:00:01')/f for f in fragment(v4, fragsize=800)] + [Ether(dst='02:00:00:00:00:01')/f for f in fragment6(v6, 900)]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    assert_eq!(frames.len(), 6, "three pieces of each");
    let (v, _, _) = verdicts_of(&config, frames);
    assert!(v.iter().all(|v| matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. })), "{v:?}");
    let snap = std::sync::Arc::new(snapshot(&config));
    replay(snap, &file, Some(&out)).unwrap();
    let rows = tshark_checked(
        &out,
        &[
            "-o",
            "ip.defragment:TRUE",
            "-o",
            "ipv6.defragment:TRUE",
            "-Y",
            "ip.reassembled.length or ipv6.reassembled.length",
            "-T",
            "fields",
            "-E",
            "occurrence=l",
            "-e",
            "ip.reassembled.length",
            "-e",
            "ipv6.reassembled.length",
            "-e",
            "ah.spi",
            "-e",
            "udp.checksum.status",
        ],
    );
    // AH (24 bytes) + UDP (8) + 2000; destination options (8) + UDP (8) + 2000. scapy
    // leaves the UDP checksum under AH out (status 3, not present); the IPv6 one verifies.
    assert_eq!(rows.lines().collect::<Vec<_>>(), ["2032\t\t0x00000001\t3", "\t2016\t\t1"], "{rows}");
    let _ = (std::fs::remove_file(file), std::fs::remove_file(out));
}

/// Out of a tunnel, a packet to an address no router forwards to is dropped, not sent to
/// the next hop: network 0, loopback, link-local, multicast, class E and the limited
/// broadcast (RFC 1812 §5.3.7, RFC 3927 §7), IPv6's unspecified, loopback, link-local,
/// multicast and IPv4-mapped addresses (RFC 4291, RFC 6890), and our own anycast
/// addresses (RFC 1812 §5.2.3: delivered, not forwarded). Beside them, the addresses just
/// outside each range go through.
#[test]
fn decapsulated_packets_to_martian_destinations_are_dropped() {
    let (config, _) = tunnel_edge();
    let file = temp("decap-martians");
    let martians = [
        "0.1.2.3",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.5",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "ff02::1",
        "::ffff:8.8.8.8",
        "192.0.2.1",
        "2001:db8:ffff::1",
    ];
    let neighbours = [
        "1.0.0.0",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "223.255.255.255",
        "fec0::1",
        "::2",
        "192.0.2.2",
        "2001:db8:ffff::2",
    ];
    let list = |a: &[&str]| a.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let script = format!(
        "def gre(dst):\n\
         \x20   inner = IPv6(src='2001:db8:acbe::7', dst=dst) if ':' in dst else IP(src='203.0.113.7', dst=dst)\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner/UDP(sport=5000, dport=53)\n\
         frames = [gre(d) for d in [{}, {}]]",
        list(&martians),
        list(&neighbours)
    );
    scapy_pcap(&file, &script);
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    assert_eq!(v.len(), martians.len() + neighbours.len(), "a verdict for every frame written");
    for (dst, v) in martians.iter().zip(&v) {
        assert_eq!(*v, Verdict::Drop(DropReason::DecapMartianDestination), "{dst}");
    }
    for (dst, v) in neighbours.iter().zip(&v[martians.len()..]) {
        assert!(matches!(v, Verdict::Tx { reason: TxReason::Decapsulated, .. }), "{dst}: {v:?}");
    }
}

/// Out of a tunnel, a packet to the network or broadcast address of the tunnel's inner /30
/// is a broadcast on its link (RFC 1812 §4.2.3.1), which no router forwards by default (RFC
/// 2644): dropped, where it went to the next hop, and a TTL of 1 gets no Time Exceeded
/// (§4.3.2.7). The next /30, which no tunnel has, goes through; so do the router's side of a
/// /31, which has no broadcast address (RFC 3021), and the broadcast of the /30 around it.
#[test]
fn decapsulated_packets_to_their_tunnels_broadcast_addresses_are_dropped() {
    let (config, _) = tunnel_edge();
    let slash30 = config.replace("interface = \"10.213.0.0/31\"", "interface = \"10.213.0.1/30\"");
    let file = temp("decap-link-broadcast");
    scapy_pcap(
        &file,
        "gre = lambda inner: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         udp = lambda dst, src='203.0.113.7', ttl=64: IP(src=src, dst=dst, ttl=ttl)/UDP(sport=5000, dport=53)\n\
         frames = [gre(udp('10.213.0.0')), gre(udp('10.213.0.3')), gre(udp('10.213.0.3', src='10.213.0.2')),\n\
                   gre(udp('10.213.0.3', ttl=1)), gre(udp('10.213.0.4')),\n\
                   gre(udp('10.213.0.1')), gre(udp('10.213.0.3'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (martian, sent) = (DropReason::DecapMartianDestination.name(), format!("tx:{}", TxReason::Decapsulated.name()));
    let sent = sent.as_str();
    let (v, _, _) = verdicts_of(&slash30, frames[..5].to_vec());
    assert_eq!(fates(&v), [martian, martian, martian, martian, sent], "/30: network, broadcast (thrice), next");
    let (v, _, _) = verdicts_of(&config, frames[5..].to_vec());
    assert_eq!(fates(&v), [sent, sent], "/31: the router's side, the /30's broadcast");
}

/// A tunnel's inner /30 inside its customer's own prefix (the configuration allows it): from
/// the Internet, a packet to its network or broadcast address is a directed broadcast onto
/// that link, which a router does not forward (RFC 1812 §4.2.3.1, RFC 2644): dropped as
/// `tunnel_broadcast`, a TTL-1 one too, where all were encapsulated into the tunnel. Out of
/// another customer's tunnel it is `decap_martian_destination`, as out of its own. The
/// router's side and the next address go on, as the same addresses do under a /31, which
/// has no broadcast (RFC 3021). scapy writes the frames.
#[test]
fn packets_to_a_tunnels_30_broadcast_in_its_customers_prefix_are_not_forwarded() {
    let (config, _) = tunnel_edge();
    let inside = config.replace("interface = \"10.213.0.0/31\"", "interface = \"203.0.113.201/30\"");
    let file = temp("tunnel-broadcast-inside");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         net = lambda dst, ttl=64: e/IP(src='198.51.100.9', dst=dst, ttl=ttl)/UDP(sport=5000, dport=53)\n\
         inner = lambda dst: IP(src='198.18.100.5', dst=dst)/UDP(sport=5000, dport=53)\n\
         beta = lambda dst: e/IP(src='198.51.100.2', dst='192.0.2.1')/GRE(key_present=1, key=7)/inner(dst)\n\
         frames = [net('203.0.113.203'), net('203.0.113.200'), net('203.0.113.203', ttl=1), beta('203.0.113.203'),\n\
         \x20         net('203.0.113.202'), net('203.0.113.204'), beta('203.0.113.202')]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (broadcast, martian) = (DropReason::TunnelBroadcast.name(), DropReason::DecapMartianDestination.name());
    let sent = format!("tx:{}", TxReason::Encapsulated.name());
    let sent = sent.as_str();
    let (v, _, _) = verdicts_of(&inside, frames.clone());
    assert_eq!(fates(&v), [broadcast, broadcast, broadcast, martian, sent, sent, sent]);
    let (v, _, _) = verdicts_of(&config, frames);
    assert_eq!(fates(&v)[..3], [sent, sent, "tx:icmp_time_exceeded"], "under a /31 the same addresses are hosts'");
}

/// A tunnel's inner /31 inside its customer's own prefix (the configuration allows it): from
/// the Internet, a packet to our side of it (a ping, a datagram, one whose TTL runs out) is
/// `tunnel_interface`, where it was encapsulated into the tunnel: an address of ours, which
/// a router delivers and does not forward (RFC 1812 §5.2.3), and which is served through
/// its tunnel alone, as a ping of it from the router's side is answered. The router's side
/// and the next address go on; under a private /31 the same address is a host's, and goes
/// on too. scapy writes the frames.
#[test]
fn packets_from_the_internet_to_our_side_of_a_tunnel_in_its_customers_prefix_are_not_forwarded() {
    let (config, _) = tunnel_edge();
    let inside = config.replace("interface = \"10.213.0.0/31\"", "interface = \"203.0.113.200/31\"");
    let file = temp("our-side-inside");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         net = lambda dst, ttl=64: e/IP(src='198.18.0.10', dst=dst, ttl=ttl)/UDP(sport=5000, dport=53)\n\
         ping = lambda src, dst: IP(src=src, dst=dst)/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         gre = lambda inner: e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         frames = [e/ping('198.18.0.10', '203.0.113.200'), net('203.0.113.200'), net('203.0.113.200', ttl=1),\n\
         \x20         net('203.0.113.201'), net('203.0.113.202'), gre(ping('203.0.113.201', '203.0.113.200'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let ours = DropReason::TunnelInterface.name();
    let (sent, reply) = (format!("tx:{}", TxReason::Encapsulated.name()), format!("tx:{}", TxReason::EchoReply.name()));
    let (sent, reply) = (sent.as_str(), reply.as_str());
    let (v, _, _) = verdicts_of(&inside, frames.clone());
    assert_eq!(fates(&v), [ours, ours, ours, sent, sent, reply]);
    let (v, _, _) = verdicts_of(&config, frames[..3].to_vec());
    assert_eq!(fates(&v), [sent, sent, "tx:icmp_time_exceeded"], "under a private /31, a host's address");
}

/// Out of a tunnel, a packet to an address of ours other than the anycast addresses is
/// dropped as one to those is (`decap_martian_destination`: a router delivers its own
/// addresses and forwards none, RFC 1812 §5.2.3), where it left for the next hop: our side of
/// another customer's tunnel (beta's 10.214.0.0; a datagram and a ping), and our side of
/// acme's IPv4 tunnel reached through acme's IPv6 tunnel. The routers' sides of the same
/// links go on, and a ping of our side through its own tunnel is answered. scapy writes them.
#[test]
fn decapsulated_packets_to_our_side_of_another_tunnel_are_dropped() {
    let (config, _) = tunnel_edge();
    let config = config.replace("key = 7\n", "key = 7\ninterface = \"10.214.0.0/31\"\n");
    let file = temp("decap-our-sides");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         v4 = lambda inner: e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         v6 = lambda inner: e/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')/GRE()/inner\n\
         udp = lambda dst: IP(src='203.0.113.7', dst=dst)/UDP(sport=5000, dport=53)\n\
         ping = lambda dst: IP(src='203.0.113.7', dst=dst)/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         frames = [v4(udp('10.214.0.0')), v4(ping('10.214.0.0')), v6(udp('10.213.0.0')), v6(ping('10.213.0.0')),\n\
         \x20         v4(udp('10.214.0.1')), v6(udp('10.213.0.1')), v4(ping('10.213.0.0'))]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let martian = DropReason::DecapMartianDestination.name();
    let sent = format!("tx:{}", TxReason::Decapsulated.name());
    let reply = format!("tx:{}", TxReason::EchoReply.name());
    let (sent, reply) = (sent.as_str(), reply.as_str());
    assert_eq!(fates(&v), [martian, martian, martian, martian, sent, sent, reply]);
}

/// RFC 1812 §5.3.4: a frame sent to an Ethernet broadcast or multicast address is not
/// forwarded, nor answered with an ICMP error (a TTL-1 one drew Time Exceeded), whether for a
/// customer or GRE to the anycast address; the same packets to this host's own MAC go
/// through. Traffic for no customer is the host's to judge, as before.
#[test]
fn frames_to_a_link_group_address_are_not_forwarded() {
    let (config, _) = tunnel_edge();
    let file = temp("link-group");
    scapy_pcap(
        &file,
        "udp = UDP(sport=5000, dport=53)\n\
         to_customer = IP(src='198.51.100.9', dst='203.0.113.5')/udp\n\
         expiring = IP(src='198.51.100.9', dst='203.0.113.5', ttl=1)/udp\n\
         v6 = IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5')/udp\n\
         gre = IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/IP(src='203.0.113.7', dst='198.51.100.200')/udp\n\
         to_host = IP(src='198.51.100.9', dst='198.51.100.77')/udp\n\
         group = ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '33:33:00:00:00:01', '03:00:00:00:00:00']\n\
         frames = [Ether(dst=m)/to_customer for m in group]\n\
         frames += [Ether(dst='ff:ff:ff:ff:ff:ff')/p for p in (expiring, v6, gre, to_host)]\n\
         frames += [Ether(dst='02:00:00:00:00:01')/p for p in (to_customer, expiring, v6, gre)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, stats, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    let group = Verdict::Drop(DropReason::LinkBroadcast);
    assert_eq!(v[..7], [group; 7], "to a customer, expiring, IPv6, GRE: {v:?}");
    assert_eq!(v[7], Verdict::Pass(PassReason::NoCustomer), "for the host");
    let sent = |v: &Verdict, reason: TxReason| matches!(v, Verdict::Tx { reason: r, .. } if *r == reason);
    assert!(sent(&v[8], TxReason::Encapsulated), "{:?}", v[8]);
    assert!(sent(&v[9], TxReason::IcmpTimeExceeded), "{:?}", v[9]);
    assert!(sent(&v[10], TxReason::Encapsulated), "{:?}", v[10]);
    assert!(sent(&v[11], TxReason::Decapsulated), "{:?}", v[11]);
    assert_eq!(stats.dropped_for(DropReason::LinkBroadcast), 7);
}

/// Only an empty GRE packet (protocol type 0, nothing behind it) from our end of a tunnel to
/// its router is a keepalive to return. The same shape carrying a packet would reach the
/// router as if transitd had sent it, past the ingress stages; it is spoofed, and dropped.
#[test]
fn only_an_empty_gre_packet_is_returned_as_a_keepalive() {
    let config = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[dos.sanity]
bogons = false
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "t"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "t"
"#;
    let (us, router) = ([192, 0, 2, 1], [198, 51, 100, 1]);
    let eth = || etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1]);
    // Ours to the router, GRE with `gre` (flags and protocol type) and `payload` behind it.
    let ours_to_router = |gre: [u8; 4], payload: &[u8], ttl: u8| {
        let mut header =
            etherparse::Ipv4Header::new((4 + payload.len()) as u16, ttl, etherparse::IpNumber::GRE, us, router)
                .expect("fits");
        header.header_checksum = header.calc_header_checksum();
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
        frame.extend(header.to_bytes());
        frame.extend(gre);
        frame.extend(payload);
        frame
    };
    let mut flood = Vec::new();
    eth().ipv4([8, 8, 8, 8], [203, 0, 113, 10], 64).udp(1000, 53).write(&mut flood, b"x").unwrap();
    let frames = vec![
        in_gre(&ours_to_router([0, 0, 0, 0], &[], 255), router, us),
        in_gre(&ours_to_router([0, 0, 0x08, 0x00], &flood[14..], 255), router, us),
        in_gre(&ours_to_router([0, 0, 0, 0], b"payload", 255), router, us),
        // A keepalive whose TTL runs out here is dropped: a Time Exceeded would be
        // addressed to its source, ourselves (sent into the tunnel, it was).
        in_gre(&ours_to_router([0, 0, 0, 0], &[], 1), router, us),
    ];
    let (v, _, _) = verdicts_of(config, frames);
    let expect = ["tx:gre_keepalive", "decap_spoofed_source", "decap_spoofed_source", DropReason::TtlExceeded.name()];
    assert_eq!(fates(&v), expect);
}

/// A keepalive with a source route onward (scapy's LSRR and SSRR with a hop to go, an IPv6
/// routing header with a segment left) would leave here as ours and go on from the router
/// to the hop the route names (another customer's router, say), as a keepalive reply from
/// us: nothing a keepalive asks for, and RFC 7126 §4.3-4.4 has routers drop source routes.
/// It is spoofed, as a keepalive carrying anything more is. Record route is no source
/// route, and a route whose hops are all behind it (pointer past the end) goes nowhere on:
/// both are returned.
#[test]
fn a_keepalive_routed_on_beyond_the_router_is_not_returned() {
    let (config, _) = tunnel_edge();
    let file = temp("keepalive-routed");
    scapy_pcap(
        &file,
        "gre = lambda o, inner: Ether(dst='02:00:00:00:00:01')/o/GRE()/inner\n\
         ka4 = lambda opts: IP(src='192.0.2.1', dst='198.51.100.1', options=opts)/GRE(proto=0)\n\
         v4 = lambda opts: gre(IP(src='198.51.100.1', dst='192.0.2.1'), ka4(opts))\n\
         rh0 = lambda left: IPv6ExtHdrRouting(type=0, addresses=['2001:db8:beef::2'], segleft=left)\n\
         ka6 = lambda left: IPv6(src='2001:db8:ffff::1', dst='2001:db8:beef::1')/rh0(left)/GRE(proto=0)\n\
         v6 = lambda left: gre(IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1'), ka6(left))\n\
         on = ['198.51.100.2']\n\
         frames = [v4([]), v4([IPOption_LSRR(routers=on, pointer=4)]), v4([IPOption_SSRR(routers=on, pointer=4)]),\n\
         \x20         v4([IPOption_RR()]), v4([IPOption_LSRR(routers=on, pointer=8)]), v6(1), v6(0)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (returned, spoofed) = ("tx:gre_keepalive", DropReason::DecapSpoofedSource.name());
    assert_eq!(fates(&v), [returned, spoofed, spoofed, returned, returned, spoofed, returned]);
}

/// A packet from the Internet whose source is one of the edge's own addresses (the anycast
/// addresses, our side of a tunnel) is spoofed, whatever `customer_sources` says: the edge
/// sends to a customer from those only through the customer's tunnel (strict reverse-path
/// forwarding, RFC 3704 §2.2; Linux drops a source of its own as a martian), and let on it
/// would reach the router through its tunnel as the edge's own. The same packets from a
/// global source, and from the router's side of the tunnel, go on; scapy writes them.
#[test]
fn packets_from_the_internet_with_a_source_of_ours_are_spoofed() {
    let (config, _) = tunnel_edge();
    let config = config.replace("bogons = false", "bogons = false\ncustomer_sources = false");
    let file = temp("our-sources");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         v4 = lambda src: e/IP(src=src, dst='203.0.113.10')/UDP(sport=5000, dport=53)\n\
         v6 = lambda src: e/IPv6(src=src, dst='2001:db8:acbe::10')/UDP(sport=5000, dport=53)\n\
         frames = [v4('192.0.2.1'), v4('10.213.0.0'), v6('2001:db8:ffff::1'),\n\
         \x20         v4('198.18.0.10'), v4('10.213.0.1'), v6('2001:db8:5::9')]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (spoofed, sent) = (DropReason::SpoofedCustomerSource.name(), format!("tx:{}", TxReason::Encapsulated.name()));
    let sent = sent.as_str();
    assert_eq!(fates(&v), [spoofed, spoofed, spoofed, sent, sent, sent]);
}

/// GRE under an authentication header is not decapsulated, even from a tunnel's router:
/// transitd holds no security association to verify it with, and decapsulating would take
/// it as authenticated. It fares as GRE that is not ours (`gre_unsupported`), as the XDP
/// program judges it; without the AH the same packet is decapsulated. scapy builds them
/// (IPv4 and IPv6, whole and as a first fragment; over IPv6 also with options after the AH
/// and before it).
#[test]
fn gre_under_ah_is_not_decapsulated() {
    let (config, _) = tunnel_edge();
    let file = temp("gre-ah.pcap");
    scapy_pcap(
        &file,
        "inner = IP(src='203.0.113.10', dst='198.18.0.10')/UDP(sport=5353, dport=53)/Raw(b'query')\n\
         ah = AH(nh=47, payloadlen=4, spi=1, seq=1, icv=b'\\0' * 12)\n\
         v4 = lambda flags=0: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1', flags=flags, proto=51)\n\
         v6 = Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1', nh=51)\n\
         frames = [\n\
           v4()/ah/GRE()/inner,\n\
           v4('MF')/ah/GRE()/inner,\n\
           v6/ah/GRE()/inner,\n\
           Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner,\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1', nh=51)/AH(nh=60, payloadlen=4, spi=1, seq=1, icv=b'\\0' * 12)/IPv6ExtHdrDestOpt(nh=47)/GRE()/inner,\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')/IPv6ExtHdrDestOpt()/ah/GRE()/inner,\n\
         ]",
    );
    // tshark reads the AH and the GRE behind it in all but the fourth.
    assert_eq!(tshark_frames(&file, "ah.spi == 1 and gre", &[]), [1, 2, 3, 5, 6]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let pass = format!("pass:{}", PassReason::GreUnsupported.name());
    let (v, _, _) = verdicts_of(&config, frames.clone());
    assert_eq!(fates(&v), [pass.as_str(), &pass, &pass, "tx:decapsulated", &pass, &pass]);
    let dropping = config.replace("[dos.sanity]", "gre_unsupported = \"drop\"\n[dos.sanity]");
    let (v, _, _) = verdicts_of(&dropping, frames);
    let drop = DropReason::GreUnsupported.name();
    assert_eq!(fates(&v), [drop, drop, drop, "tx:decapsulated", drop, drop]);
}

/// GRE from no tunnel's router is not ours, whatever it holds: passed
/// (`gre_unknown_tunnel`), or dropped with `gre_unsupported = "drop"`, as the XDP program
/// hands it over: behind an IPv6 destination options header, a first and a later fragment,
/// an IPv4 fragment, a header cut short, a header with the routing bit. Fragments and bad
/// headers from no router were dropped as `gre_fragment`, `truncated`, `bad_gre_header`
/// whatever `gre_unsupported` said, where the XDP program passes them. From the tunnel's
/// router, the same frames are decapsulated, kept for reassembly or dropped under their own
/// reasons. scapy builds them; tshark reads the GRE.
#[test]
fn gre_from_no_router_follows_gre_unsupported_whatever_it_holds() {
    let (config, _) = tunnel_edge();
    let file = temp("gre-v6-ext.pcap");
    scapy_pcap(
        &file,
        "inner = IP(src='203.0.113.10', dst='198.18.0.10')/UDP(sport=5353, dport=53)/Raw(b'query')\n\
         def v6(src, ext):\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IPv6(src=src, dst='2001:db8:ffff::1')/ext\n\
         def v4(src, flags=0):\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src=src, dst='192.0.2.1', flags=flags, id=9, proto=47)\n\
         frames = []\n\
         for (src, src4) in [('2001:db8:dead::1', '198.51.100.99'), ('2001:db8:beef::1', '198.51.100.1')]:\n\
         \x20   frames += [\n\
         \x20       v6(src, IPv6ExtHdrDestOpt()/GRE()/inner),\n\
         \x20       v6(src, IPv6ExtHdrFragment(nh=47, offset=0, m=1, id=7)/GRE()/inner),\n\
         \x20       v6(src, IPv6ExtHdrFragment(nh=47, offset=8, m=0, id=7)/Raw(b'x' * 16)),\n\
         \x20       v4(src4, 'MF')/GRE()/inner,\n\
         \x20       v4(src4)/Raw(b'\\0\\0'),\n\
         \x20       v4(src4)/GRE(routing_present=1)/inner,\n\
         \x20   ]",
    );
    assert_eq!(tshark_frames(&file, "ipv6.dstopts and gre", &[]), [1, 7]);
    assert_eq!(tshark_frames(&file, "ip.flags.mf == 1 and gre", &[]), [4, 10]);
    assert_eq!(tshark_frames(&file, "gre.flags.routing == 1", &[]), [6, 12]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (passed, _, _) = verdicts_of(&config, frames.clone());
    let dropping = config.replace("[dos.sanity]", "gre_unsupported = \"drop\"\n[dos.sanity]");
    let (dropped, _, _) = verdicts_of(&dropping, frames);
    let pass = format!("pass:{}", PassReason::GreUnknownTunnel.name());
    assert_eq!(fates(&passed)[..6], [pass.as_str(); 6]);
    assert_eq!(fates(&dropped)[..6], [DropReason::GreUnknownTunnel.name(); 6]);
    // From the routers: not a matter of `gre_unsupported`.
    let fragment = DropReason::GreFragment.name();
    let (cut, routed) = (DropReason::Truncated.name(), DropReason::BadGreHeader.name());
    // The first fragments carry data of no multiple of 8 bytes (refused); the later one is
    // kept for a datagram that never completes.
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let from_routers = ["tx:decapsulated", fragment, &held, fragment, cut, routed];
    assert_eq!(fates(&passed)[6..], from_routers);
    assert_eq!(fates(&dropped)[6..], from_routers);
}

/// A first fragment from a tunnel's router that holds its header chain but not the GRE
/// header behind it is refused (RFC 7112 §5: the whole chain and the upper-layer header are
/// in the first fragment), as a tiny fragment by the sanity checks or, with those off, as
/// `gre_fragment`: its later fragment, which holds the GRE header (and names GRE, where the
/// first names the options), waits for a datagram that never completes, or, refused with
/// the first by decapsulation, is dropped (`gre_fragment_of_refused`). Before, the
/// datagram completed and was decapsulated, its GRE header never judged in the first
/// fragment. tshark finds no GRE in the first fragment.
#[test]
fn a_first_fragment_without_the_gre_header_is_refused() {
    let (config, _) = tunnel_edge();
    let file = temp("gre-first-fragment-chain-only.pcap");
    scapy_pcap(
        &file,
        "inner = bytes(GRE()/IP(src='203.0.113.10', dst='198.18.0.10')/UDP(sport=5353, dport=53)/Raw(b'query'))\n\
         ip = lambda: Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')\n\
         first = ip()/IPv6ExtHdrFragment(nh=60, offset=0, m=1, id=11)/IPv6ExtHdrDestOpt(nh=47, options=[HBHOptUnknown(otype=0x1E, optdata=b'\\0' * 42)])\n\
         later = ip()/IPv6ExtHdrFragment(nh=47, offset=6, m=0, id=11)/Raw(inner)\n\
         frames = [first, later]",
    );
    assert_eq!(tshark_frames(&file, "gre", &[]), Vec::<u64>::new(), "no GRE in either fragment");
    assert_eq!(tshark_frames(&file, "ipv6.dstopts", &[]), [1]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let (v, _, _) = verdicts_of(&config, frames.clone());
    assert_eq!(fates(&v), [DropReason::TinyFragment.name(), &held]);
    let unchecked = config.replace("[dos.sanity]", "[dos.sanity]\nfragments = false");
    let (v, _, _) = verdicts_of(&unchecked, frames);
    assert_eq!(fates(&v), [DropReason::GreFragment.name(), DropReason::GreFragmentOfRefused.name()]);
}

/// The later fragments of a datagram whose first fragment is refused as GRE not ours (PPTP's
/// version 1, or transparent Ethernet bridging, a payload we do not carry) are dropped as
/// they come (`gre_fragment_of_refused`), taking no slot of the reassembler. They were kept
/// a second each for nothing, and as many such datagrams as a worker has slots (64) evicted
/// a datagram of ours being reassembled. Here one of ours is begun, then 64 refused
/// datagrams come, each first fragment then the two later ones, then one whose later
/// fragment comes before its first (held, and given up when the first is refused; its last
/// is dropped); ours still completes, and only that one datagram was given up. scapy builds
/// and fragments them; tshark reads GRE not ours in the refused first fragments and
/// reassembles ours at its last fragment.
#[test]
fn later_fragments_of_a_refused_datagram_are_dropped_and_take_no_slot() {
    let (config, _) = tunnel_edge();
    let file = temp("gre-refused-fragments");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         outer = lambda n: e/IP(src='198.51.100.1', dst='192.0.2.1', id=n)\n\
         inner = lambda n: IP(src='203.0.113.10', dst='198.18.0.10', id=n)/UDP(sport=5000, dport=53)/Raw(b'x' * 1400)\n\
         ours = fragment(outer(1)/GRE()/inner(1), fragsize=720)\n\
         def refused(n):\n\
         \x20   gre = GRE(version=1, proto=0x880b, key_present=1, key=n) if n % 2 else GRE(proto=0x6558)/Ether()\n\
         \x20   return fragment(outer(n)/gre/inner(n), fragsize=488)\n\
         frames = [ours[0]]\n\
         for n in range(100, 164):\n\
         \x20   frames += refused(n)\n\
         late = refused(200)\n\
         frames += [late[1], late[0], late[2], ours[1]]",
    );
    // The refused datagrams' first fragments: every third frame from the second, and the
    // late one's.
    let firsts: Vec<u64> = (0..64).map(|k| 2 + 3 * k).chain([195]).collect();
    assert_eq!(tshark_frames(&file, "gre.flags.version == 1 or gre.proto == 0x6558", &[]), firsts);
    let ours_whole = ["-o", "ip.defragment:TRUE", "-Y", "ip.id == 1 and udp", "-T", "fields", "-e", "frame.number"];
    assert_eq!(tshark(&file, &ours_whole), "197\n", "ours is whole at its last fragment");
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, stats, _) = verdicts_of(&config, frames);
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let pass = format!("pass:{}", PassReason::GreUnsupported.name());
    let dropped = DropReason::GreFragmentOfRefused.name();
    let refused = [pass.as_str(), dropped, dropped];
    let expect = [
        [held.as_str()].as_slice(),       // ours' first
        &refused.repeat(64)[..],          // 64 refused, in order
        &[held.as_str(), &pass, dropped], // the late one: a later fragment first
        &["tx:decapsulated"],             // ours' last completes it
    ]
    .concat();
    assert_eq!(fates(&v), expect);
    assert_eq!((stats.gre_reassembled, stats.gre_reassembly_discarded), (1, 1));
}

/// GRE that a router fragmented after encapsulating it (no DF on the outer header, as Cisco
/// sends it for an inner packet without DF) is reassembled and decapsulated: over IPv4 and
/// IPv6 (scapy's `fragment`, `fragment6`: `pcaps/generated/gre_fragments.py`, each frame's
/// fate in its script), in order, reversed, and interleaved with another datagram's; a CE mark on one fragment of an ECN-capable datagram marks the whole (RFC
/// 3168 §5.3). Each comes out byte for byte as the inner packet scapy wrapped, a hop on
/// (cut out of the unfragmented GRE by tshark's offsets). A datagram one of whose fragments
/// overlaps another is not decapsulated (RFC 5722), nor are fragments from no router, and
/// with `gre_reassembly = false` every fragment is dropped as before.
#[test]
fn fragmented_gre_from_a_router_is_reassembled_and_decapsulated() {
    let (config, _) = tunnel_edge();
    // The capture's datagrams whole, as its script (pcaps/generated/gre_fragments.py) makes
    // them before cutting them.
    let whole = temp("gre-whole.pcap");
    scapy_pcap(
        &whole,
        "def inner(n):\n\
         \x20   return IP(src='203.0.113.10', dst='198.18.0.10', id=n, tos=(2 if n == 3 else 0))/UDP(sport=5000+n, dport=53)/Raw(bytes([n]) * 1400)\n\
         def v4(n):\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1', tos=(2 if n == 3 else 0))/GRE()/inner(n)\n\
         frames = [v4(1), v4(2), v4(3), Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')/GRE()/inner(4)]",
    );
    let file = pcap("generated/gre-fragments.pcap");
    assert_eq!(tshark_frames(&file, "ip.flags.mf == 1 or ip.frag_offset > 0", &[]).len(), 16);
    assert_eq!(tshark_frames(&file, "ipv6.fraghdr.offset > 0", &[]), [10, 11]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, stats, _) = verdicts_of(&config, frames.clone());
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let (held, decap) = (held.as_str(), "tx:decapsulated");
    let unknown = format!("pass:{}", PassReason::GreUnknownTunnel.name());
    let fragment = DropReason::GreFragment.name();
    let expect = [
        [held, held, decap].as_slice(), // a, in order
        &[held, held],                  // b's last two, reversed
        &[held],                        // c's first
        &[decap],                       // b's first completes b
        &[held, decap],                 // the rest of c
        &[held, held, decap],           // d, IPv6, reversed
        &[unknown.as_str(); 3],         // e, from no router
        &[held, fragment, held, held],  // f: its overlap discards it
    ]
    .concat();
    assert_eq!(fates(&v), expect);
    assert_eq!((stats.gre_reassembled, stats.gre_reassembly_discarded), (4, 1));

    // What came out is the inner packets, a hop on: ids 1, 2, 3, 4 in the order they were
    // completed, 3 marked CE.
    let (out, _) = replay_to(&config, &file, "gre-reassembled");
    let got: Vec<Vec<u8>> = read_frames(&out).into_iter().map(|f| f.bytes[14..].to_vec()).collect();
    let mut want: Vec<Vec<u8>> =
        inner_packets(&whole, "ip.src#1 == 198.51.100.1").iter().map(|p| forwarded(p)).collect();
    // The IPv6 one: behind the 40-byte header and GRE's 4, as tshark reads it.
    assert_eq!(
        tshark(&whole, &["-Y", "ipv6.nxt == 47 and gre.flags_and_version == 0", "-T", "fields", "-e", "frame.number"]),
        "4\n"
    );
    want.push(forwarded(&read_frames(&whole)[3].bytes[14 + 40 + 4..]));
    want[2][1] |= 3;
    want[2][10..12].copy_from_slice(&[0, 0]);
    let c = gre::checksum::checksum(&want[2][..20]);
    want[2][10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(got.len(), 4);
    for (n, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(hex(got), hex(want), "datagram {}", n + 1);
    }
    let checked = tshark_checked(
        &out,
        &[
            "-T",
            "fields",
            "-e",
            "ip.id",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "ip.dsfield.ecn",
            "-e",
            "udp.length",
        ],
    );
    // Checksum status 1: good.
    let rows = "0x0001\t1\t1\t0\t1408\n0x0002\t1\t1\t0\t1408\n0x0003\t1\t1\t3\t1408\n0x0004\t1\t1\t0\t1408\n";
    assert_eq!(checked, rows);

    let off = config.replace("anycast_v6 =", "gre_reassembly = false\nanycast_v6 =");
    let (v, stats, _) = verdicts_of(&off, frames);
    let from_routers: Vec<String> = fates(&v).into_iter().filter(|f| *f != unknown).collect();
    assert_eq!(from_routers, vec![fragment.to_string(); 16]);
    assert_eq!((stats.gre_reassembled, stats.gre_reassembly_discarded), (0, 0));
    for f in [whole, out] {
        let _ = std::fs::remove_file(f);
    }
}

/// A datagram reassembled from fragments that each fit the link can be larger than the link
/// once decapsulated (a customer's LAN with a larger MTU than the path): it leaves as a
/// router would send it on a smaller link. Without DF, in fragments (tshark reassembles them
/// into the inner packet scapy made, its UDP checksum good); with DF, a Fragmentation Needed
/// naming the link's MTU goes back into the tunnel; IPv6, a Packet Too Big.
#[test]
fn a_reassembled_packet_larger_than_the_link_is_fragmented_or_answered() {
    let (config, _) = tunnel_edge();
    let file = temp("gre-past-link.pcap");
    scapy_pcap(
        &file,
        "def gre(inner):\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         frames = []\n\
         for flags, n in [(0, 1), ('DF', 2)]:\n\
         \x20   inner = IP(src='203.0.113.10', dst='198.18.0.10', id=n, flags=flags)/UDP(sport=6000+n, dport=9)/Raw(bytes([n]) * 1548)\n\
         \x20   frames += fragment(gre(inner), fragsize=1480)\n\
         inner6 = IPv6(src='2001:db8:acbe::10', dst='2001:db8:1::2')/UDP(sport=6003, dport=9)/Raw(b'\\x03' * 1528)\n\
         frames += fragment(gre(inner6), fragsize=1480)",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    assert!(frames.iter().all(|f| f.len() <= 1514), "each fragment fits a 1500-byte link");
    let snap = std::sync::Arc::new(snapshot(&config));
    let mut io = transitd::io::memory::MemoryIo::new(frames, snap.frame_size);
    io.link_mtu = Some(1500);
    let mut worker = transitd::worker::Worker::new(io, snap.clone());
    worker.run_to_end(Some(snap.eth)).unwrap();
    let (io, state) = worker.into_parts();
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let expect = [held.as_str(), "tx:decapsulated", &held, "tx:icmp_too_big", &held, "tx:icmp_too_big"];
    assert_eq!(fates(&io.verdicts), expect);
    assert_eq!(state.stats.gre_reassembled, 3);
    assert!(io.sent.iter().all(|f| f.len() <= 1514), "nothing sent is longer than the link takes");
    let out = temp("gre-past-link-out.pcap");
    write_pcap(&out, &io.sent);
    // The first datagram in two fragments, which tshark puts back together.
    let whole = tshark_checked(
        &out,
        &[
            "-o",
            "ip.defragment:TRUE",
            "-Y",
            "udp.srcport == 6001",
            "-T",
            "fields",
            "-e",
            "ip.reassembled.length",
            "-e",
            "udp.checksum.status",
            "-e",
            "ip.ttl",
        ],
    );
    assert_eq!(whole, format!("{}\t1\t63\n", 8 + 1548));
    // The errors, in GRE to the router: the link's MTU, quoting the datagram.
    let errors = tshark_checked(
        &out,
        &["-Y", "ip.dst#1 == 198.51.100.1 and gre and (icmp or icmpv6)", "-T", "fields", "-E", "occurrence=l"]
            .into_iter()
            .chain(["-e", "icmp.mtu", "-e", "icmpv6.mtu", "-e", "udp.srcport"])
            .collect::<Vec<_>>(),
    );
    assert_eq!(errors, "1500\t\t6002\n\t1500\t6003\n");
    for f in [file, out] {
        let _ = std::fs::remove_file(f);
    }
}

/// A tunnel whose `mtu` with its outer headers does not fit the link (`mtu` 1476 and GRE
/// over IPv4, a 1400-byte link) is held to what does: a packet with DF gets a Fragmentation
/// Needed naming 1376, one without is sent in fragments whose GRE packets fit the link
/// (tshark reads the error and reassembles the inner datagram). A SYN's MSS is clamped to
/// the tunnel as held (it followed the configured `mtu`, and the segments it let the
/// receiver send were answered with errors or cut into fragments).
#[test]
fn a_tunnel_is_held_to_what_the_link_carries() {
    let (config, _) = tunnel_edge();
    let file = temp("tunnel-past-link.pcap");
    // Two datagrams too large for the link (with DF, without) and a SYN.
    scapy_pcap(
        &file,
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.18.0.10', dst='203.0.113.10', id=n, flags=f)/UDP(sport=7000+n, dport=9)/Raw(b'x' * 1422)\n\
         \x20         for n, f in [(1, 'DF'), (2, 0)]]\n\
         frames.append(Ether(dst='02:00:00:00:00:01')/IP(src='198.18.0.10', dst='203.0.113.10')/TCP(sport=40000, dport=80, flags='S', options=[('MSS', 1460)]))",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let snap = std::sync::Arc::new(snapshot(&config));
    let mut io = transitd::io::memory::MemoryIo::new(frames, snap.frame_size);
    io.link_mtu = Some(1400);
    let mut worker = transitd::worker::Worker::new(io, snap.clone());
    worker.run_to_end(Some(snap.eth)).unwrap();
    let (io, _) = worker.into_parts();
    assert_eq!(fates(&io.verdicts), ["tx:icmp_too_big", "tx:fragment", "tx:encapsulated"]);
    assert!(io.sent.iter().all(|f| f.len() <= 14 + 1400), "every frame fits the link");
    let out = temp("tunnel-past-link-out.pcap");
    write_pcap(&out, &io.sent);
    let error = tshark_checked(&out, &["-Y", "icmp.type == 3", "-T", "fields", "-e", "icmp.type", "-e", "icmp.mtu"]);
    assert_eq!(error, "3\t1376\n");
    // The MSS fits the tunnel as held (1376 less 40), not its mtu (1476 less 40).
    let mss = tshark_checked(&out, &["-Y", "tcp", "-T", "fields", "-e", "tcp.options.mss_val"]);
    assert_eq!(mss, "1336\n");
    let whole = tshark_checked(
        &out,
        &[
            "-o",
            "ip.defragment:TRUE",
            "-Y",
            "gre and udp.srcport == 7002",
            "-T",
            "fields",
            "-e",
            "udp.length",
            "-e",
            "udp.checksum.status",
        ],
    );
    assert_eq!(whole, "1430\t1\n", "the datagram, reassembled from the fragments in GRE");
    for f in [file, out] {
        let _ = std::fs::remove_file(f);
    }
}

/// A tunnel's `sent` counts every frame that went into it: the later fragments of a datagram
/// fragmented to fit it too (they were counted in the totals only). Health probes are
/// counted the same way, by the tunnel each spilled frame carries, but replay sends none:
/// this holds the fragments. tshark counts the GRE frames to each tunnel's router in what
/// replay wrote.
#[test]
fn a_tunnels_sent_count_is_every_frame_that_went_into_it() {
    let (config, file) = tunnel_edge();
    let (out, stats) = replay_to(&config, &file, "tunnel-sent");
    let snap = snapshot(&config);
    let mut fragmented = false;
    for (t, filter) in [
        ("acme-gre", "gre and ip.dst#1 == 198.51.100.1"),
        ("acme-v6", "gre and ipv6.dst#1 == 2001:db8:beef::1"),
        ("beta-gre", "gre and ip.dst#1 == 198.51.100.2"),
    ] {
        let id = snap.tunnels.iter().position(|x| x.name == t).unwrap();
        let frames = tshark_frames(&out, filter, &[]);
        let sent = stats.tunnels[id].sent;
        assert_eq!(sent.packets, frames.len() as u64, "{t}");
        let bytes: u64 = tshark(&out, &["-Y", filter, "-T", "fields", "-e", "frame.len"])
            .lines()
            .map(|l| l.trim().parse::<u64>().unwrap())
            .sum();
        assert_eq!(sent.bytes, bytes, "{t}");
        fragmented |= !tshark_frames(&out, &format!("{filter} and ip.frag_offset#2 > 0"), &[]).is_empty();
    }
    assert!(fragmented, "the capture fragments a datagram into a tunnel");
    // The report says how many of the frames written were made here rather than received:
    // those tshark counts in the output beyond the received frames sent.
    let written = tshark_frames(&out, "frame", &[]).len();
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let sent_as_received = verdicts_of(&config, frames).0.iter().filter(|v| matches!(v, Verdict::Tx { .. })).count();
    let mut report = String::new();
    transitd::report::verdicts(&mut report, &stats);
    let made = format!("; {} of them made here", written - sent_as_received);
    assert!(written > sent_as_received && report.contains(&made), "{made}:\n{report}");
    let _ = std::fs::remove_file(out);
}

/// The fragments of a datagram take one tunnel (RFC 8900 §3.4): a customer router that
/// reassembles them gets them all. The flow hash left the first fragment's ports in and the
/// later ones' out, and 7 of 8 datagrams were split between two routers. tshark reads which
/// router each fragment went to.
#[test]
fn the_fragments_of_a_datagram_take_one_tunnel() {
    let config = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[dos.sanity]
bogons = false
fragments = false
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "a"
remote = "198.51.100.1"
[[customer.tunnel]]
name = "b"
remote = "198.51.100.3"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "a"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "b"
"#;
    let dir = std::env::temp_dir().join(format!("transitd-frag-tunnel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, out, conf) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("t.toml"));
    std::fs::write(&conf, config).unwrap();
    scapy_pcap(
        &file,
        "frames = []\n\
         for i in range(16):\n\
         \x20   p = IP(src='8.8.8.%d' % (i + 1), dst='203.0.113.10', id=100 + i)/UDP(sport=1000 + i, dport=53)/Raw(b'q' * 1400)\n\
         \x20   frames += [Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')/f for f in fragment(p, fragsize=800)]",
    );
    replay(std::sync::Arc::new(snapshot(config)), &file, Some(&out)).unwrap();
    // Every occurrence, outer header first: the router is the first destination, the
    // datagram the last (inner) identification.
    let rows = tshark(&out, &["-o", "ip.defragment:FALSE", "-T", "fields", "-e", "ip.dst", "-e", "ip.id"]);
    let mut routers: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for line in rows.lines() {
        let (dsts, ids) = line.split_once('\t').unwrap();
        let (router, id) = (dsts.split(',').next().unwrap(), ids.split(',').next_back().unwrap());
        routers.entry(id.to_string()).or_default().insert(router.to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(routers.len(), 16, "{rows}");
    assert!(routers.values().all(|r| r.len() == 1), "{routers:?}");
    let used: std::collections::BTreeSet<_> = routers.values().flatten().collect();
    assert_eq!(used.len(), 2, "both tunnels carry datagrams: {routers:?}");
}

/// GRE from a tunnel's router whose outer header forbids ending it here is not
/// decapsulated: an IPv4 loose source route with a hop to go, an IPv6 routing header with
/// segments left (RFC 8200 §4.4; type 0 is also deprecated, RFC 5095), a destination
/// option whose type says "discard if unknown" (§4.2), and options Linux's `ip6_parse_tlv`
/// refuses as malformed: padding that is not zero (RFC 4942 §2.1.9.5) or longer than 7
/// bytes, an option past its header's end. The same headers exhausted, or with options to
/// skip, are decapsulated. tshark's fields pick the forbidding ones.
#[test]
fn gre_whose_outer_header_forbids_ending_it_here_is_not_decapsulated() {
    let (config, _) = tunnel_edge();
    let file = temp("outer-forbids");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         inner = IP(src='203.0.113.7', dst='198.51.100.200')/UDP(sport=5000, dport=53)\n\
         v4 = lambda ptr: e/IP(src='198.51.100.1', dst='192.0.2.1', options=[IPOption_LSRR(pointer=ptr, routers=['203.0.113.99'])])/GRE()/inner\n\
         v6 = lambda ext: e/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')/ext/GRE()/inner\n\
         frames = [v4(4), v4(8),\n\
           v6(IPv6ExtHdrRouting(type=0, segleft=1, addresses=['2001:db8:dead::1'])),\n\
           v6(IPv6ExtHdrRouting(type=0, segleft=0, addresses=['2001:db8:dead::1'])),\n\
           v6(IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x9E, optdata=b'\\0' * 4)])),\n\
           v6(IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b'\\0' * 4)])),\n\
           v6(IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\\0' * 4)])),\n\
           v6(IPv6ExtHdrDestOpt(options=[PadN(optdata=b'SECRET!!!!')])),\n\
           e/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1', nh=60)/Raw(bytes([47, 0, 1, 9, 0xaa, 0xbb, 0xcc, 0xdd]) + raw(GRE()/inner)),\n\
           v6(IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\\0' * 6)])),\n\
           v6(IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\\0' * 4)]))]",
    );
    let forbidding = tshark_frames(
        &file,
        "(ip.opt.type in {131, 137} and ip.opt.ptr <= ip.opt.len) or ipv6.routing.segleft > 0 or ipv6.opt.type.action > 0 \
         or ipv6.opt.padn matches \"[^\\x00]\" or (ipv6.opt.type == 1 and ipv6.opt.length > 5) \
         or ipv6.opt.length + 4 > ipv6.dstopts.len_oct",
        &[],
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    assert_eq!(forbidding, [1, 3, 5, 8, 9, 10], "the oracle's selection");
    assert_eq!(v.len(), 11, "a verdict for every frame written");
    for (i, v) in v.iter().enumerate() {
        if forbidding.contains(&(i as u64 + 1)) {
            assert_eq!(*v, Verdict::Drop(DropReason::DecapOuterForbids), "frame {}", i + 1);
        } else {
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Decapsulated, .. }), "frame {}: {v:?}", i + 1);
        }
    }
}

/// The XDP program and the pipeline judge GRE to the anycast address alike, so that replay
/// shows what a live edge does: on 3000 frames scapy builds at random (GRE and not, from
/// the tunnels' routers and from elsewhere, IPv4 options, fragments and AH, IPv6 chains of
/// extension headers and AH, GRE of every flag, version and payload, then 600 ICMP errors
/// to the anycast addresses, about our GRE to the routers (path MTU discovery) and about
/// other packets; `data/gre_frames.py`; some behind VLAN tags, some cut short or with a
/// byte changed), the kernel's test run of the program with
/// the tables `run` gives it beside the pipeline's verdict, under both `gre_unsupported`
/// settings:
/// - what the pipeline transmits or drops, the program hands over (here: to a queue with no
///   socket), but for what the host discards as well ([`DISCARDED_BY_THE_HOST`]) and chains
///   of extension headers longer than the program walks (the host's; the sanity check's
///   drop);
/// - what the pipeline passes (GRE not ours, no customer's), the program passes itself,
///   as what it is (GRE not ours as such): never handed over, to be punted back;
/// - GRE that is not ours goes where `gre_unsupported` says: passed by the program itself,
///   or handed over for the pipeline to drop.
#[test]
fn the_xdp_program_and_the_pipeline_judge_gre_alike() {
    use DropReason as D;
    use transitd_bpf::XdpDecision as X;
    let (config, _) = tunnel_edge();
    let file = temp("gre-judged.pcap");
    scapy_pcap(&file, &format!("NFRAMES = 3000\nNICMP = 600\n{}", include_str!("data/gre_frames.py")));
    let frames = damaged(tagged(read_frames(&file).into_iter().map(|f| f.bytes).collect(), 8100), 47);
    // GRE under AH in an IPv6 chain, as tshark reads the frames (before the damage).
    let under_v6_ah: std::collections::BTreeSet<u64> =
        tshark_frames(&file, "eth.type == 0x86dd and ah and gre", &[]).into_iter().collect();
    let _ = std::fs::remove_file(&file);
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let not_ours = [PassReason::GreUnsupported.name(), PassReason::GreUnknownTunnel.name()];
    for gre_unsupported in ["pass", "drop"] {
        let config = config.replace("[dos.sanity]", &format!("gre_unsupported = \"{gre_unsupported}\"\n[dos.sanity]"));
        let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
        transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
        let mut seen = std::collections::BTreeMap::new();
        for (i, (frame, verdict)) in frames.iter().zip(&verdicts).enumerate() {
            let (decision, _) = program.test_run(frame).expect("test run (needs root)");
            let (kind, reason) = (verdict.kind(), verdict.reason());
            let fine = match decision {
                X::NoSocket => kind != "pass",
                X::GreNotOurs => (kind == "pass" && not_ours.contains(&reason)) || discarded_by_the_host(verdict),
                // A chain of extension headers longer than the program walks is the host's
                // (documented), where the sanity check drops it.
                X::Passed => {
                    (kind == "pass" && !not_ours.contains(&reason))
                        || discarded_by_the_host(verdict)
                        || *verdict == Verdict::Drop(D::Ipv6ExtensionChain)
                }
                _ => false,
            };
            assert!(
                fine,
                "{gre_unsupported}: frame {} ({:02x?}): the program {}, the pipeline {kind}:{reason}",
                i + 1,
                frame,
                decision.name()
            );
            *seen.entry((decision.name(), kind, reason)).or_insert(0u32) += 1;
        }
        // Each case the frames are made for came up (else the test would hold nothing).
        let at_least = |decision: X, kind: &str, reason: &str| {
            let n = seen.get(&(decision.name(), kind, reason)).copied().unwrap_or(0);
            assert!(n >= 10, "{gre_unsupported}: {} {kind}:{reason} came up {n} times: {seen:?}", decision.name());
        };
        let gre_not_ours = if gre_unsupported == "pass" { (X::GreNotOurs, "pass") } else { (X::NoSocket, "drop") };
        for reason in not_ours {
            at_least(gre_not_ours.0, gre_not_ours.1, reason);
        }
        at_least(X::NoSocket, "tx", TxReason::Decapsulated.name());
        at_least(X::NoSocket, "tx", TxReason::Encapsulated.name());
        let gre_reasons = [D::GreFragment, D::GreKeyMismatch, D::BadGreHeader, D::BadGreChecksum, D::DecapOuterForbids];
        for reason in gre_reasons.into_iter().chain([D::DecapSpoofedSource]) {
            at_least(X::NoSocket, "drop", reason.name());
        }
        at_least(X::Passed, "pass", PassReason::NoCustomer.name());
        // Path MTU discovery's errors about our GRE, used and unusable.
        at_least(X::NoSocket, "consumed", ConsumeReason::UnderlayTooBig.name());
        at_least(X::NoSocket, "drop", D::UnderlayTooBigUnusable.name());
        // GRE under AH in an IPv6 chain came up whole, not only as a drop.
        let whole_under_v6_ah = (1..)
            .zip(&verdicts)
            .filter(|(n, v)| under_v6_ah.contains(n) && v.reason() == PassReason::GreUnsupported.name())
            .filter(|(n, _)| program.test_run(&frames[*n as usize - 1]).is_ok_and(|(d, _)| d == gre_not_ours.0))
            .count();
        assert!(whole_under_v6_ah >= 10, "{gre_unsupported}: {whole_under_v6_ah} frames of GRE under AH over IPv6");
    }
}

/// An ICMPv6 Packet Too Big naming less than IPv6's minimum link MTU (1280) is discarded
/// (RFC 8201 §4; Linux too): it was taken at 1280, and anyone could hold a tunnel over
/// IPv6 to 1236 bytes inside for ten minutes. One naming 1280 is taken.
#[test]
fn a_packet_too_big_below_the_ipv6_minimum_is_discarded() {
    let (config, _) = tunnel_edge();
    let config = config.replacen(
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
        1,
    );
    let file = temp("too-big-v6");
    scapy_pcap(
        &file,
        "def too_big6(mtu):\n\
         \x20   q = IPv6(src='2001:db8:ffff::1', dst='2001:db8:beef::1', nh=47)/GRE(proto=0x86dd)/IPv6(src='2001:db8:1::1', dst='2001:db8:acbe::10')/UDP()\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::1', dst='2001:db8:ffff::1')/ICMPv6PacketTooBig(mtu=mtu)/q\n\
         big = Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:1::1', dst='2001:db8:acbe::10')/UDP(sport=4000, dport=53)/Raw(b'x' * 1352)\n\
         frames = [too_big6(1279), too_big6(1000), big, too_big6(1280), big]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (used, unusable) = ("consumed:underlay_too_big", DropReason::UnderlayTooBigUnusable.name());
    // 1400 bytes of IPv6 fit acme-v6's mtu (1456) until 1280 less 44 holds it, at 1280.
    assert_eq!(fates(&v), [unusable, unusable, "tx:encapsulated", used, "tx:icmp_too_big"]);
}

/// Path MTU discovery on the underlay (RFC 1191, RFC 8201): an ICMP Fragmentation Needed or
/// Packet Too Big that scapy writes about GRE we sent a tunnel's router lowers that tunnel's
/// MTU, for what it tells packets' senders (the next-hop MTU of the errors transitd writes,
/// read back by etherparse) and for the MSS of SYNs, for ten minutes, never below the floor,
/// never raised by an error; one about another tunnel's key, with a bad checksum or about
/// something else changes nothing. The expected figures are the RFCs': the reported MTU less
/// the outer IPv4 and GRE headers (24 bytes; 28 with a key), 44 over IPv6.
#[test]
fn a_packet_too_big_from_the_underlay_lowers_its_tunnels_mtu_for_ten_minutes() {
    use transitd::pipeline::{Frame, HEADROOM, Limits, SPILL_SLOTS, Spill, process_frame};
    const S: u64 = 1_000_000_000;
    let (config, _) = tunnel_edge();
    // acme's IPv6 by its IPv6 tunnel, so that one path is IPv6.
    let config = config.replacen(
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
        1,
    );
    let file = temp("too-big");
    scapy_pcap(
        &file,
        "def big(dst, n, v6=False, syn=False):\n\
         \x20   if v6: ip = IPv6(src='2001:db8:1::1', dst=dst)\n\
         \x20   else: ip = IP(src='198.18.0.10', dst=dst, flags='DF')\n\
         \x20   if syn: return Ether(dst='02:00:00:00:00:01')/ip/TCP(sport=40000, dport=443, flags='S', options=[('MSS', 1460)])\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/ip/UDP(sport=4000, dport=53)/Raw(b'x' * (n - len(ip/UDP())))\n\
         def gre_to(remote, key=None):\n\
         \x20   g = GRE() if key is None else GRE(key_present=1, key=key)\n\
         \x20   return IP(src='192.0.2.1', dst=remote, proto=47, flags='DF', len=1500)/g/IP(src='198.18.0.10', dst='203.0.113.10')/UDP()\n\
         def too_big(remote, mtu, key=None, chksum=None, proto=47):\n\
         \x20   m = ICMP(type=3, code=4, nexthopmtu=mtu)\n\
         \x20   if chksum is not None: m.chksum = chksum\n\
         \x20   q = gre_to(remote, key)\n\
         \x20   q.proto = proto\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src='192.0.2.200', dst='192.0.2.1')/m/q\n\
         def too_big6(mtu, dst='2001:db8:beef::1'):\n\
         \x20   q = IPv6(src='2001:db8:ffff::1', dst=dst, nh=47)/GRE(proto=0x86dd)/IPv6(src='2001:db8:1::1', dst='2001:db8:acbe::10')/UDP()\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::1', dst='2001:db8:ffff::1')/ICMPv6PacketTooBig(mtu=mtu)/q\n\
         frames = [big('203.0.113.10', 1400), too_big('198.51.100.1', 1400), big('203.0.113.10', 1376),\n\
         \x20   big('203.0.113.10', 1377), big('198.18.100.10', 1400), big('203.0.113.10', 0, syn=True),\n\
         \x20   too_big('198.51.100.2', 1000, key=9), too_big('198.51.100.1', 900, chksum=0x1234),\n\
         \x20   too_big('198.51.100.1', 900, proto=17), too_big('198.51.100.1', 1450), too_big('198.51.100.2', 1000, key=7),\n\
         \x20   big('198.18.100.10', 973), big('203.0.113.10', 1377), too_big('198.51.100.1', 100), big('203.0.113.10', 529),\n\
         \x20   big('203.0.113.10', 1400), too_big('198.51.100.1', 0),  big('203.0.113.10', 1469),\n\
         \x20   big('2001:db8:acbe::10', 1400, v6=True), too_big6(1300), big('2001:db8:acbe::10', 1281, v6=True),\n\
         \x20   too_big('198.51.100.1', 1000), too_big('198.51.100.1', 1000), too_big6(1300, dst='::ffff:198.51.100.1'),\n\
         \x20   big('203.0.113.10', 1400)]\n\
         frames[-4].dst = 'ff:ff:ff:ff:ff:ff'\n\
         frames[-3][IP].options = [IPOption_LSRR(routers=['192.0.2.9'], pointer=4)]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    // Each frame with its receive time in seconds.
    let times = [1, 2, 3, 3, 3, 4, 5, 5, 5, 5, 5, 6, 6, 7, 8, 608, 700, 701, 702, 703, 704, 705, 705, 705, 706];
    assert_eq!(frames.len(), times.len());
    let run = |config: &str| {
        let snap = snapshot(config);
        let (mut limits, mut spill) = (Limits::new(&snap), Spill::new(SPILL_SLOTS, snap.frame_size));
        let mut out = Vec::new();
        for (input, t) in frames.iter().zip(times) {
            let mut buf = vec![0u8; HEADROOM + 2048];
            buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
            let mut frame = Frame::new(&mut buf, HEADROOM, input.len(), input.len() as u32, t * S);
            let outcome = process_frame(&snap, Some(&snap.eth), &mut limits, &mut spill, &mut frame);
            frame.verdict = outcome.verdict;
            out.push((outcome.verdict, frame.tx_bytes().map(<[u8]>::to_vec).unwrap_or_default()));
        }
        out
    };
    let out = run(&config);
    let fate = |i: usize| format!("{}:{}", out[i].0.kind(), out[i].0.reason());
    // The next-hop MTU an ICMPv4 error to the Internet names (Ethernet, IPv4, then ICMP's
    // bytes 6 and 7), or ICMPv6's MTU field.
    let mtu4 = |i: usize| u16::from_be_bytes([out[i].1[14 + 20 + 6], out[i].1[14 + 20 + 7]]);
    let mtu6 = |i: usize| u32::from_be_bytes(out[i].1[14 + 40 + 4..14 + 40 + 8].try_into().unwrap());
    let (encapsulated, too_big) = ("tx:encapsulated", "tx:icmp_too_big");
    let (used, unusable) = ("consumed:underlay_too_big", "drop:underlay_too_big_unusable");
    assert_eq!(fate(0), encapsulated, "the tunnel's own mtu (1476) takes 1400 bytes");
    assert_eq!(fate(1), used);
    assert_eq!((fate(2), fate(3)), (encapsulated.into(), too_big.into()), "1400 less 24 fits, one more does not");
    assert_eq!(mtu4(3), 1376);
    assert_eq!(fate(4), encapsulated, "another tunnel's path is its own");
    // The SYN's MSS: the outer IPv4 and GRE, the inner IPv4 and TCP headers, then the
    // option (kind 2, length 4).
    assert_eq!(fate(5), encapsulated);
    let mss_at = 14 + 24 + 20 + 20;
    assert_eq!(out[5].1[mss_at..mss_at + 2], [2, 4]);
    assert_eq!(u16::from_be_bytes([out[5].1[mss_at + 2], out[5].1[mss_at + 3]]), 1376 - 40, "clamped to the path");
    assert_eq!((fate(6), fate(7)), (unusable.into(), unusable.into()), "another key; a bad checksum");
    assert_eq!(fate(8), "pass:no_customer", "about UDP, not our GRE: the host's");
    assert_eq!(fate(9), used, "a larger MTU (below the tunnel's own) is taken and changes nothing");
    assert_eq!(fate(10), used);
    assert_eq!((fate(11), mtu4(11)), (too_big.into(), 1000 - 28), "beta's keyed tunnel: 28 bytes of headers");
    assert_eq!((fate(12), mtu4(12)), (too_big.into(), 1376), "an error never raises the estimate");
    assert_eq!((fate(13), fate(14), mtu4(14)), (used.into(), too_big.into(), 552 - 24), "100 is below the floor, 552");
    assert_eq!(fate(15), encapsulated, "ten minutes on, the configured mtu again");
    // A router that names no MTU (RFC 792's): the plateau below the quoted 1500 bytes, 1492.
    assert_eq!((fate(16), fate(17), mtu4(17)), (used.into(), too_big.into(), 1492 - 24));
    // Over IPv6: 1300 less 44 is 1256, but an IPv6 packet is never held below 1280.
    assert_eq!(fate(18), encapsulated);
    assert_eq!((fate(19), fate(20)), (used.into(), too_big.into()), "{:02x?}", out[20].1);
    assert_eq!(mtu6(20), 1280);
    // As GRE to us: not when received as a link broadcast, nor with a source route that
    // goes on past us. A quote to an IPv4-mapped address names no IPv4 tunnel.
    assert_eq!((fate(21), fate(22)), ("drop:link_broadcast".into(), "drop:decap_outer_forbids".into()));
    assert_eq!(fate(23), "pass:no_customer");
    assert_eq!(fate(24), encapsulated, "1400 bytes still fit the 1468 held: neither error lowered it");

    // Off, the errors are the host's, and the tunnel's mtu stands.
    let off = run(&config.replacen("[dos.sanity]", "path_mtu_discovery = false\n[dos.sanity]", 1));
    let off_fate = |i: usize| format!("{}:{}", off[i].0.kind(), off[i].0.reason());
    assert_eq!((off_fate(1), off_fate(3)), ("pass:no_customer".into(), encapsulated.into()));
}

/// A forged Fragmentation Needed (scapy's, naming 552 about our GRE to acme's router) holds
/// acme-gre to 528 bytes inside only until its router answers the path MTU probe the prober
/// sends next: the tunnel's `mtu`, as tshark reads it (1476 bytes inside 1500 of outer IPv4,
/// DF set on both, good checksums). scapy plays the router, routing the probe's inner packet
/// back through the tunnel, padding and all; the whole answer brings 1476 back. Forged again,
/// and no answer this time (the next probe waits ten seconds): 528 stands.
#[test]
fn a_forged_too_big_is_disproved_by_the_padded_probe_its_router_answers() {
    use transitd::health::{Prober, spill_path_mtu_probe};
    use transitd::pipeline::{Limits, SPILL_SLOTS, Spill};
    const S: u64 = 1_000_000_000;
    let (config, _) = tunnel_edge();
    let snap = snapshot(&config);
    let acme = snap.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let mut limits = Limits::new(&snap);
    let file = temp("forged-too-big");
    scapy_pcap(
        &file,
        "q = IP(src='192.0.2.1', dst='198.51.100.1', proto=47, flags='DF', len=1500)/GRE()\n\
         q = q/IP(src='198.18.0.10', dst='203.0.113.10')/UDP()\n\
         e = Ether(dst='02:00:00:00:00:01')/IP(src='192.0.2.200', dst='192.0.2.1')\n\
         frames = [e/ICMP(type=3, code=4, nexthopmtu=552)/q]",
    );
    let forged = read_frames(&file).remove(0).bytes;
    let _ = std::fs::remove_file(&file);
    let mut prober = Prober::default();
    prober.rebind(None, &snap);
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    // One look of the prober at `now`: the path MTU probes it sent, and the errors disproved.
    let look = |prober: &mut Prober, spill: &mut Spill, now: u64| {
        spill.clear();
        let probe = |t, seq, mtu| spill_path_mtu_probe(&snap, t, seq, mtu, Some(&snap.eth), spill);
        let disproved = prober.path_mtus(&snap, now, probe, |_, _| {});
        (spill.frames().map(<[u8]>::to_vec).collect::<Vec<_>>(), disproved)
    };
    let used = ["consumed:underlay_too_big"];
    assert_eq!(fates(&[verdict_with(&snap, &mut limits, &forged, S)]), used);
    assert_eq!(snap.health.path_mtu(acme, S), Some(552 - 24), "the floor less the outer IPv4 and GRE headers");
    let (probes, disproved) = look(&mut prober, &mut spill, 2 * S);
    assert_eq!((probes.len(), disproved), (1, 0));
    let probe_file = temp("path-mtu-probe");
    write_pcap(&probe_file, &probes);
    let fields = ["frame.len", "ip.len", "ip.flags.df", "ip.checksum.status", "icmp.type", "icmp.checksum.status"];
    let args: Vec<&str> = ["-T", "fields"].into_iter().chain(fields.iter().flat_map(|f| ["-e", *f])).collect();
    // Ethernet, outer IPv4 and GRE (38 bytes), then the echo reply of 1476; checksum status 1: good.
    assert_eq!(tshark_checked(&probe_file, &args), "1514\t1500,1476\t1,1\t1,1\t0\t1\n");
    // The router's answer, and the same a byte short (its padding not all back).
    let reply_file = temp("path-mtu-probe-answer");
    scapy_pcap(
        &reply_file,
        &format!(
            "inner = rdpcap({:?})[0][GRE].payload\n\
             inner.ttl -= 1\n\
             del inner.chksum\n\
             short = inner.copy()\n\
             short[Raw].load = short[Raw].load[:-1]\n\
             del short.len, short[ICMP].chksum\n\
             e = Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()\n\
             frames = [e/inner, e/short]",
            probe_file.display().to_string()
        ),
    );
    let answers: Vec<Vec<u8>> = read_frames(&reply_file).into_iter().map(|f| f.bytes).collect();
    let _ = (std::fs::remove_file(&probe_file), std::fs::remove_file(&reply_file));
    assert_eq!(answers.iter().map(Vec::len).collect::<Vec<_>>(), [1514, 1513]);
    let answered = |bytes: &[u8], limits: &mut Limits| fates(&[verdict_with(&snap, limits, bytes, 2 * S + S / 10)]);
    assert_eq!(answered(&answers[1], &mut limits), [DropReason::TunnelInterface.name()], "a byte short");
    assert_eq!(answered(&answers[0], &mut limits), ["consumed:health_probe_reply"]);
    let (probes, disproved) = look(&mut prober, &mut spill, 3 * S);
    assert_eq!((probes.len(), disproved), (0, 1));
    assert_eq!(snap.health.path_mtu(acme, 3 * S), None, "its mtu, 1476, again");

    // Disproved once, the tunnel's errors are doubted: the next claims 528 but lowers
    // nothing until a probe of the size in force (1476) goes unanswered.
    assert_eq!(fates(&[verdict_with(&snap, &mut limits, &forged, 4 * S)]), used);
    assert_eq!(snap.health.path_mtu(acme, 4 * S), None, "doubted: claimed, not lowered");
    assert_eq!(look(&mut prober, &mut spill, 5 * S), (vec![], 0), "ten seconds after the last probe, not before");
    let (probes, _) = look(&mut prober, &mut spill, 12 * S);
    assert_eq!(probes.iter().map(Vec::len).collect::<Vec<_>>(), [1514]);
    for now in 13..40 {
        assert_eq!(look(&mut prober, &mut spill, now * S), (vec![], 0), "at {now} s");
    }
    assert_eq!(snap.health.path_mtu(acme, 40 * S), Some(528), "unanswered, the claim is taken");
}

/// No ICMP error about an ICMP message that is not a query or its reply: RFC 1812
/// §4.3.2.7 forbids errors about errors, and a type unassigned or deprecated (31, conversion
/// error; 40, Photuris) may be one (Linux takes any unknown type for one). A timestamp
/// request, a query, is answered. Nor an error to our own anycast address: someone else
/// wrote it there, and the error would go to the next hop and back to an edge; from the
/// Internet such a packet is spoofed before its TTL is looked at (`spoofed_customer_source`).
#[test]
fn no_icmp_error_about_unknown_icmp_types_nor_to_our_own_address() {
    let (config, _) = tunnel_edge();
    let file = temp("icmp-types");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         late = lambda inner, src='198.18.0.10': e/IP(src=src, dst='203.0.113.10', ttl=1)/inner\n\
         frames = [\n\
           late(ICMP(type=40)/Raw(b'x' * 20)),\n\
           late(ICMP(type=31)/Raw(b'x' * 20)),\n\
           late(ICMP(type=200)/Raw(b'x' * 20)),\n\
           late(ICMP(type=13)/Raw(b'x' * 12)),\n\
           late(UDP(sport=5000, dport=53), src='192.0.2.1'),\n\
           e/IPv6(src='2001:db8:ffff::1', dst='2001:db8:acbe::10', hlim=1)/UDP(sport=5000, dport=53),\n\
           late(UDP(sport=5000, dport=53)),\n\
         ]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (exceeded, answered) = (DropReason::TtlExceeded.name(), format!("tx:{}", TxReason::IcmpTimeExceeded.name()));
    let spoofed = DropReason::SpoofedCustomerSource.name();
    assert_eq!(fates(&v), [exceeded, exceeded, exceeded, &answered, spoofed, spoofed, &answered]);
}

/// With `bogons = false`, no ICMP error goes to a source from the Internet that no error may
/// go to: link-local (169.254/16, fe80::/10: no router forwards such a packet off its link,
/// RFC 3927 §7, RFC 4291 §2.5.6, so its sender is not where the error would go), IPv4-mapped
/// (RFC 4291 §2.5.5.2: not used on the wire; RFC 4443 §2.4 (e.3)). Each is dropped as a
/// packet whose error is rate-limited is (`ttl_exceeded`, `mtu_exceeded`); the same packet
/// from a global source is answered. One from our side of a tunnel (someone else wrote it)
/// is spoofed, dropped before its TTL or size is looked at (`spoofed_customer_source`).
#[test]
fn no_icmp_error_from_the_internet_to_link_local_mapped_or_our_tunnel_sources() {
    let (config, _) = tunnel_edge();
    let file = temp("icmp-sources");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         udp = UDP(sport=5000, dport=53)\n\
         late = lambda src: e/IP(src=src, dst='203.0.113.10', ttl=1)/udp\n\
         late6 = lambda src: e/IPv6(src=src, dst='2001:db8:acbe::10', hlim=1)/udp\n\
         big = lambda src: e/IP(src=src, dst='203.0.113.10', flags='DF')/udp/Raw(b'x' * 1500)\n\
         big6 = lambda src: e/IPv6(src=src, dst='2001:db8:acbe::10')/udp/Raw(b'x' * 1500)\n\
         frames = [\n\
           late('169.254.10.1'), late('10.213.0.0'), late('198.18.0.10'),\n\
           late6('fe80::1'), late6('::ffff:198.18.0.10'), late6('2001:db8:5::9'),\n\
           big('169.254.10.1'), big('10.213.0.0'), big('198.18.0.10'),\n\
           big6('fe80::1'), big6('::ffff:198.18.0.10'), big6('2001:db8:5::9'),\n\
         ]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (exceeded, mtu) = (DropReason::TtlExceeded.name(), DropReason::MtuExceeded.name());
    let tx = |r: TxReason| format!("tx:{}", r.name());
    let (late, big) = (tx(TxReason::IcmpTimeExceeded), tx(TxReason::IcmpTooBig));
    let (late, big) = (late.as_str(), big.as_str());
    let spoofed = DropReason::SpoofedCustomerSource.name();
    let expect = [exceeded, spoofed, late, exceeded, exceeded, late, mtu, spoofed, big, mtu, mtu, big];
    assert_eq!(fates(&v), expect);
}

/// Out of a tunnel, a link-local source is the tunnel's own link: a traceroute from a router
/// whose inner address is 169.254.10.1 gets its Time Exceeded back into the tunnel, where the
/// same packet from the Internet gets none. Our side of a tunnel gets none from either: with
/// the inner network inside the customer's prefix, a router sending as our side passes the
/// source check, and the error went to ourselves; the router's own side is answered.
#[test]
fn icmp_errors_answer_a_tunnels_link_local_router_but_not_our_side() {
    let (config, _) = tunnel_edge();
    let ours = "interface = \"10.213.0.0/31\"";
    let link_local = config.replace(ours, "interface = \"169.254.10.0/31\"");
    let in_prefix = config.replace(ours, "interface = \"203.0.113.254/31\"");
    let file = temp("icmp-tunnel-sources");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         gre = lambda inner: e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         late = lambda src, dst='8.8.8.8': IP(src=src, dst=dst, ttl=1)/UDP(sport=33434, dport=33435)\n\
         frames = [gre(late('169.254.10.1')), e/late('169.254.10.1', '203.0.113.10'),\n\
                   gre(late('203.0.113.254')), gre(late('203.0.113.255'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (exceeded, answered) = (DropReason::TtlExceeded.name(), format!("tx:{}", TxReason::IcmpTimeExceeded.name()));
    let (v, _, _) = verdicts_of(&link_local, frames[..2].to_vec());
    assert_eq!(fates(&v), [answered.as_str(), exceeded], "the link-local router, then from the Internet");
    let (v, _, _) = verdicts_of(&in_prefix, frames[2..].to_vec());
    assert_eq!(fates(&v), [exceeded, answered.as_str()], "as our side, then as the router's");
}

/// No ICMP error about a packet to or from the network or broadcast address of a tunnel's
/// inner /30: they are broadcasts to us, on that link (RFC 1812 §4.2.3.1, §4.3.2.7). Inside the
/// customer's prefix (203.0.113.253/30), a TTL-1 or too-big packet from the Internet to either
/// gets none (it is not forwarded either: `tunnel_broadcast`), nor one from the tunnel with
/// the broadcast as its source; out of another customer's tunnel, one to a private /30's
/// broadcast (10.213.0.1/30) gets none (and goes nowhere). The same packets to or from a
/// neighbouring address are answered.
#[test]
fn no_icmp_error_about_a_packet_to_or_from_a_tunnels_30_broadcast() {
    let (config, _) = tunnel_edge();
    let ours = "interface = \"10.213.0.0/31\"";
    let in_prefix = config.replace(ours, "interface = \"203.0.113.253/30\"");
    let private = config.replace(ours, "interface = \"10.213.0.1/30\"");
    let file = temp("icmp-tunnel-broadcast");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         udp = UDP(sport=33434, dport=33435)\n\
         late = lambda dst, src='198.18.0.10': IP(src=src, dst=dst, ttl=1)/udp\n\
         big = lambda dst: e/IP(src='198.18.0.10', dst=dst, flags='DF')/udp/Raw(b'x' * 1500)\n\
         acme = lambda inner: e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         beta = lambda inner: e/IP(src='198.51.100.2', dst='192.0.2.1')/GRE(key_present=1, key=7)/inner\n\
         frames = [e/late('203.0.113.252'), e/late('203.0.113.255'), e/late('203.0.113.250'),\n\
                   big('203.0.113.255'), big('203.0.113.250'),\n\
                   acme(late('8.8.8.8', src='203.0.113.255')), acme(late('8.8.8.8', src='203.0.113.250')),\n\
                   beta(late('10.213.0.3', src='198.18.100.5')), beta(late('10.213.0.5', src='198.18.100.5'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let exceeded = DropReason::TtlExceeded.name();
    let (broadcast, martian) = (DropReason::TunnelBroadcast.name(), DropReason::DecapMartianDestination.name());
    let tx = |r: TxReason| format!("tx:{}", r.name());
    let (late, big) = (tx(TxReason::IcmpTimeExceeded), tx(TxReason::IcmpTooBig));
    let (late, big) = (late.as_str(), big.as_str());
    let (v, _, _) = verdicts_of(&in_prefix, frames[..7].to_vec());
    let expected = [broadcast, broadcast, late, broadcast, big, exceeded, late];
    assert_eq!(fates(&v), expected, "inside the customer's prefix");
    let (v, _, _) = verdicts_of(&private, frames[7..].to_vec());
    assert_eq!(fates(&v), [martian, late], "out of another customer's tunnel");
}

/// A ping of our side of a tunnel whose ICMP checksum is wrong gets no reply (a host's stack
/// drops it; the reply's checksum, patched, would have been as wrong); the same ping with
/// the checksum scapy computes is answered.
#[test]
fn a_corrupt_ping_of_our_side_of_a_tunnel_is_not_answered() {
    let (config, _) = tunnel_edge();
    let file = temp("corrupt-ping");
    scapy_pcap(
        &file,
        "gre = lambda inner: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         ping = lambda **k: IP(src='10.213.0.1', dst='10.213.0.0')/ICMP(type=8, id=7, seq=1, **k)/Raw(b'hello')\n\
         frames = [gre(ping(chksum=0x1234)), gre(ping())]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    assert_eq!(
        fates(&v),
        [DropReason::TunnelInterface.name().to_string(), format!("tx:{}", TxReason::EchoReply.name())]
    );
}

/// A SYN under an authentication header keeps its MSS into the tunnel: AH's integrity check
/// covers the TCP header and its options (RFC 4302 §3.3.3.1), so a clamped SYN would be
/// refused by its receiver. The same SYN without AH is clamped (1460 to 1436). Read by
/// tshark.
#[test]
fn a_syn_under_an_authentication_header_is_not_clamped() {
    let (config, _) = tunnel_edge();
    let file = temp("ah-syn");
    scapy_pcap(
        &file,
        "syn = TCP(sport=1234, dport=21, flags='S', options=[('MSS', 1460)])\n\
         ip = IP(src='198.18.0.5', dst='203.0.113.100')\n\
         frames = [\n\
           Ether(dst='02:00:00:00:00:01')/ip/AH(nh=6, payloadlen=4, spi=1, seq=1, icv=b'\\x11' * 12)/syn,\n\
           Ether(dst='02:00:00:00:00:01')/ip/syn,\n\
         ]",
    );
    let (out, stats) = replay_to(&config, &file, "ah-syn-out");
    let rows = tshark_checked(&out, &["-T", "fields", "-e", "ah.spi", "-e", "tcp.options.mss_val"]);
    let _ = (std::fs::remove_file(&file), std::fs::remove_file(&out));
    assert_eq!(stats.sent_as(TxReason::Encapsulated), 2);
    assert_eq!(rows.lines().collect::<Vec<_>>(), ["0x00000001\t1460", "\t1436"]);
}

/// A packet one customer's tunnel carries to another customer meets the global `[dos]`
/// rules as a packet from the Internet does: four SYNs hairpinned from acme's tunnel to one
/// of beta's hosts, under a per-destination limit of one, give one to beta's tunnel and
/// three drops, as four from the Internet do (the GRE packets, addressed to the anycast
/// address, met the rules as well; it is the destination inside that the limit protects).
#[test]
fn hairpinned_packets_meet_the_global_dos_rules() {
    let (config, _) = tunnel_edge();
    let config = config.replacen(
        "[dos.sanity]\n",
        "[[dos.bucket]]\nname = \"syn-per-destination\"\nkey = \"destination\"\nrate = 1\nburst = 1\n\n\
         [[dos.rule]]\nname = \"syn-flood\"\nmatch = \"tcp.flags.syn == 1 and tcp.flags.ack == 0\"\n\
         action = \"rate-limit\"\nbucket = \"syn-per-destination\"\n\n[dos.sanity]\n",
        1,
    );
    let file = temp("hairpin-dos");
    scapy_pcap(
        &file,
        "syn = lambda src, dst, sport: IP(src=src, dst=dst)/TCP(sport=sport, dport=80, flags='S')\n\
         gre = lambda inner: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         frames = [gre(syn('203.0.113.%d' % i, '198.18.100.5', 1000 + i)) for i in range(1, 5)]\n\
         frames += [Ether(dst='02:00:00:00:00:01')/syn('198.51.100.%d' % (20 + i), '198.18.100.6', 2000 + i) for i in range(4)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (sent, limited) = (format!("tx:{}", TxReason::Encapsulated.name()), DropReason::RateLimited.name());
    let sent = sent.as_str();
    assert_eq!(fates(&v), [sent, limited, limited, limited, sent, limited, limited, limited]);
}
