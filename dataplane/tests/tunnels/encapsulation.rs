//! What goes into a tunnel: the flow label of GRE over IPv6, SYNs' MSS clamped (between two
//! customers' tunnels, fragmented, not under AH), the one tunnel a datagram's fragments take,
//! and each tunnel's sent count.

use super::*;

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

/// A SYN too big for its way out that cannot go in fragments (DF, or IPv6) is answered by an
/// ICMP error quoting it as it was received, MSS and all (RFC 1812 §4.3.2.3: the user data
/// returned identical to what was received): the clamp, which changes no length, no longer
/// writes before the MTU check decides. Into acme's tunnel, over IPv4 and IPv6 (held to a
/// link of 1400: clamped, 1336 and 1316), and out of it to that link (acme's 1436). Without
/// DF, where `fragment_ipv4 = false` forbids fragments, it is dropped, and the drop capture
/// holds it as it came. tshark reads the MSS in the errors' quotes and in the drop capture.
#[test]
fn a_syn_too_big_is_quoted_and_captured_with_its_mss_as_received() {
    let (config, _) = tunnel_edge();
    let file = temp("syn-too-big");
    let syn = "syn = TCP(sport=40001, dport=80, flags='S', options=[('MSS', 1460)])/Raw(b'f' * 1440)\n\
               e = Ether(dst='02:00:00:00:00:01')\n";
    scapy_pcap(
        &file,
        &format!(
            "{syn}frames = [e/IP(src='198.18.0.10', dst='203.0.113.10', flags='DF')/syn, \
             e/IPv6(src='2001:db8:5::10', dst='2001:db8:acbe::10')/syn, \
             e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/\
             IP(src='203.0.113.7', dst='198.51.100.200', flags='DF')/syn]"
        ),
    );
    let (io, _) = run_on_link(&config, &file, 1400);
    assert_eq!(fates(&io.verdicts), ["tx:icmp_too_big"; 3]);
    let out = temp("syn-too-big-out");
    write_pcap(&out, &io.sent);
    let errors = "icmp.type == 3 or icmpv6.type == 2";
    let quoted = tshark(&out, &["-Y", errors, "-T", "fields", "-e", "tcp.options.mss_val"]);
    assert_eq!(quoted, "1460\n1460\n1460\n");

    let config = config.replacen("[server]\n", "[server]\nfragment_ipv4 = false\n", 1);
    let no_df = temp("syn-too-big-no-df");
    scapy_pcap(&no_df, &format!("{syn}frames = [e/IP(src='198.18.0.10', dst='203.0.113.10')/syn]"));
    let (no_df_out, drops) = replay_capturing_drops(&config, &no_df, "syn-too-big-no-df-out");
    let captured = tshark(&drops, &["-T", "fields", "-e", "frame.comment", "-e", "tcp.options.mss_val"]);
    assert!(captured.starts_with("drop: mtu_exceeded;") && captured.ends_with("\t1460\n"), "{captured}");
    for f in [file, out, no_df, no_df_out, drops] {
        let _ = std::fs::remove_file(f);
    }
}

/// A SYN that would go in fragments but is dropped whole before they are made (the spill
/// full: `fragments_overflow`) is captured as it came, MSS and all, as one answered by an
/// error is: the clamp comes once the fragments are sure to go. Thirty SYNs of 8,944 bytes
/// without DF into acme's tunnel (1476) make seven fragments each, six of them spilled: the
/// spill's 128 slots take 21 datagrams, and the other 9 are dropped. tshark reads the MSS in
/// the drop capture (8960, as received; it held 1436) and in the 21 sent, whole again (1436).
#[test]
fn a_syn_dropped_before_its_fragments_go_is_captured_with_its_mss_as_received() {
    let (config, _) = tunnel_edge();
    let config = config.replacen("[server]\n", "[server]\nframe_size = 9216\n", 1);
    let file = temp("syn-overflow");
    scapy_pcap(
        &file,
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.18.0.10', dst='203.0.113.10', id=i + 1)/\
         TCP(sport=40000 + i, dport=80, flags='S', options=[('MSS', 8960)])/Raw(b'f' * 8900) for i in range(30)]",
    );
    let (out, drops) = replay_capturing_drops(&config, &file, "syn-overflow-out");
    let captured = tshark(&drops, &["-T", "fields", "-e", "frame.comment", "-e", "tcp.options.mss_val"]);
    let captured: Vec<&str> = captured.lines().collect();
    assert_eq!(captured.len(), 9, "{captured:#?}");
    let as_received = |l: &&str| l.starts_with("drop: fragments_overflow;") && l.ends_with("\t8960");
    assert!(captured.iter().all(as_received), "{captured:#?}");
    let mss = ["-o", "ip.defragment:TRUE", "-Y", "tcp", "-T", "fields", "-e", "tcp.options.mss_val"];
    let sent = tshark_checked(&out, &mss);
    assert_eq!(sent, "1436\n".repeat(21), "the datagrams that went, clamped");
    for f in [file, out, drops] {
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
    let dir = scratch_dir("frag-tunnel");
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

/// A SYN that reaches the edge already fragmented (TCP Fast Open's data, cut by a router
/// before us) has its MSS clamped in the first fragment, which holds the whole TCP header, as
/// any SYN into the tunnel is (it went in at 1460). The checksum covers the whole datagram and
/// is patched in the first fragment: tshark reassembles each datagram inside GRE and reads
/// the MSS and the checksum, IPv4 and IPv6.
#[test]
fn a_syn_that_arrives_in_fragments_is_clamped() {
    let (config, _) = tunnel_edge();
    let file = temp("syn-arrives-fragmented");
    scapy_pcap(
        &file,
        "syn = lambda sport: TCP(sport=sport, dport=80, flags='S', options=[('MSS', 1460)])/Raw(b'f' * 100)\n\
         v4 = fragment(IP(src='198.18.0.10', dst='203.0.113.10', id=78)/syn(40002), fragsize=48)\n\
         v6 = fragment6(IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::10')/IPv6ExtHdrFragment(id=79)/syn(40003), 96)\n\
         frames = [Ether(dst='02:00:00:00:00:01')/p for p in v4 + v6]",
    );
    let (out, stats) = replay_to(&config, &file, "syn-arrives-fragmented-out");
    let rows = tshark_checked(
        &out,
        &[
            "-o",
            "ip.defragment:TRUE",
            "-o",
            "ipv6.defragment:TRUE",
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
    let _ = (std::fs::remove_file(&file), std::fs::remove_file(&out));
    assert_eq!(stats.sent_as(TxReason::Encapsulated), 6, "three fragments of each, as they came");
    // acme-gre's mtu 1476, less 40 (IPv4) and 60 (IPv6); checksum status 1 is good.
    assert_eq!(rows, "1436\t1\n1416\t1\n");
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

/// The outer headers of what goes into a tunnel, as tshark reads them (docs/tunnels.md,
/// encapsulation step 5): over IPv4 DF set whatever the inner DF, identification 0 (an
/// atomic datagram, RFC 6864 §4.1), TTL 64 and a header checksum that verifies; over IPv6
/// hop limit 64 and a flow label; over both the inner DSCP and ECN field copied whole, CE
/// too (RFC 6040 §4.1, normal mode), and a GRE header of version 0 with the C bit alone and
/// a checksum that verifies (RFC 2784 §2.5).
#[test]
fn outer_headers_copy_the_inner_dscp_and_ecn_and_fix_the_rest() {
    let (config, _) = tunnel_edge();
    let config = config
        .replacen("name = \"acme-gre\"\n", "name = \"acme-gre\"\nchecksum = true\n", 1)
        .replacen("name = \"acme-v6\"\n", "name = \"acme-v6\"\nchecksum = true\n", 1)
        .replacen(
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
            1,
        );
    let file = temp("outer-fields");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         udp = UDP(sport=4000, dport=53)/Raw(b'q' * 11)\n\
         frames = [e/IP(src='198.18.0.10', dst='203.0.113.10', tos=0xb8 | ecn, flags=df)/udp for ecn in range(4) for df in ['DF', 0]]\n\
         frames += [e/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::10', tc=0xb8 | ecn)/udp for ecn in range(4)]",
    );
    let (out, stats) = replay_to(&config, &file, "outer-fields-out");
    let fields = [
        "ip.dsfield",
        "ip.flags.df",
        "ip.id",
        "ip.ttl",
        "ip.checksum.status",
        "gre.flags_and_version",
        "gre.checksum.status",
        "ipv6.tclass",
        "ipv6.hlim",
        "ipv6.flow",
    ];
    let mut args = vec!["-T", "fields", "-E", "occurrence=f"];
    for f in fields {
        args.extend(["-e", f]);
    }
    let rows = tshark_checked(&out, &args);
    let _ = (std::fs::remove_file(&file), std::fs::remove_file(&out));
    assert_eq!(stats.sent_as(TxReason::Encapsulated), 12, "{rows}");
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('\t').collect()).collect();
    for (i, ecn) in (0..4u8).flat_map(|e| [e, e]).enumerate() {
        let tos = format!("0x{:02x}", 0xb8 | ecn);
        assert_eq!(rows[i], [tos.as_str(), "1", "0x0000", "64", "1", "0x8000", "1", "", "", ""], "IPv4 row {i}");
    }
    for (row, ecn) in rows[8..].iter().zip(0..4u8) {
        let class = format!("0x{:08x}", 0xb8 | ecn);
        assert_eq!(row[..9], ["", "", "", "", "", "0x8000", "1", class.as_str(), "64"], "{row:?}");
        assert_ne!(u32::from_str_radix(row[9].trim_start_matches("0x"), 16), Ok(0), "{row:?}");
    }
}
