//! GRE against captures nobody here wrote: every GRE header of the public captures read as
//! tshark reads it, real GRE sessions decapsulated byte for byte to their inner packets, and
//! keys and payloads that are not ours refused.

use super::*;
use transitd::pipeline::{Parsed, parse_frame};

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
