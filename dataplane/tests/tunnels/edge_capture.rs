//! The tunnel-edge capture (`pcaps/generated/tunnel_edge.py`): each frame's documented fate,
//! and what transitd writes from it (ICMP errors, fragments, clamped SYNs, keepalives, echo
//! replies, GRE checksums and keys) dissected by tshark as valid.

use super::*;

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

/// A health-probe reply whose ICMP checksum does not verify answers no probe, though its
/// tag (over the payload's first 24 bytes) does: the capture's reply (frame 11) with its ICMP
/// identifier changed by scapy and the checksum left as it was, which tshark reads as bad
/// (status 0; the reply as it came, 1). It was recorded: a reply damaged on its way counted.
#[test]
fn a_probe_reply_with_a_bad_icmp_checksum_answers_no_probe() {
    let (config, file) = tunnel_edge();
    let damaged = temp("damaged-probe-reply");
    scapy_pcap(
        &damaged,
        &format!(
            "good = rdpcap({:?})[10]\n\
             bad = good.copy()\n\
             bad[ICMP].id ^= 1\n\
             frames = [bad, good]",
            file.display().to_string()
        ),
    );
    let status = tshark_checked(&damaged, &["-T", "fields", "-e", "icmp.ident", "-e", "icmp.checksum.status"]);
    let frames: Vec<Vec<u8>> = read_frames(&damaged).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&damaged);
    assert_eq!(status, "29797\t0\n29796\t1\n", "0x7465 under the checksum of 0x7464, then the reply as it came");
    let snap = snapshot(&config);
    let mut limits = transitd::pipeline::Limits::new(&snap);
    let fate = |limits: &mut transitd::pipeline::Limits, bytes: &[u8]| fates(&[verdict_with(&snap, limits, bytes, 0)]);
    assert_eq!(fate(&mut limits, &frames[0]), [DropReason::BadProbeReplyChecksum.name()]);
    assert_eq!(snap.health.replied(0), 0, "the damaged reply answered nothing");
    assert_eq!(fate(&mut limits, &frames[1]), [format!("consumed:{}", ConsumeReason::HealthProbeReply.name())]);
    assert_eq!(snap.health.replied(0), 1, "the reply as it came is recorded");
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
