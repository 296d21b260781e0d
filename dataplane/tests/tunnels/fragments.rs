//! Fragments: later fragments of AH and extension-header datagrams going through, GRE a
//! router fragmented reassembled and decapsulated (or refused with its first fragment), and a
//! reassembled packet larger than the link fragmented or answered.

use super::*;

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
/// version 1, or transparent Ethernet bridging, a payload we do not carry) go as their first
/// went, taking no slot of the reassembler: passed to the host after it (`gre_unsupported =
/// "pass"`, as the XDP program passes them: the host gets the whole datagram), or dropped as
/// they come (`gre_fragment_of_refused`, with "drop"). They were kept a second each for
/// nothing, and as many such datagrams as a worker has slots (64) evicted a datagram of ours
/// being reassembled; then dropped under "pass" too, where the XDP program passes them. Here
/// one of ours is begun, then 64 refused datagrams come, each first fragment then the two
/// later ones, then one whose later fragment comes before its first (held, and given up when
/// the first is refused; its last goes as the first did); ours still completes, and only
/// that one datagram was given up. With `gre_reassembly = false` ours is dropped
/// (`gre_fragment`) and the refused ones still go as their first went. scapy builds and
/// fragments them; tshark reads GRE not ours in the refused first fragments and reassembles
/// ours at its last fragment.
#[test]
fn later_fragments_of_a_refused_datagram_go_as_their_first_and_take_no_slot() {
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
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let pass = format!("pass:{}", PassReason::GreUnsupported.name());
    let (drop, dropped) = (DropReason::GreUnsupported.name(), DropReason::GreFragmentOfRefused.name());
    let unkept = DropReason::GreFragment.name();
    let settings = [
        // `gre_unsupported`, `gre_reassembly`; what becomes of ours (begun, completed) and of
        // the refused (first, later); datagrams reassembled and given up.
        ("pass", true, (held.as_str(), "tx:decapsulated"), (pass.as_str(), pass.as_str()), (1, 1)),
        ("drop", true, (held.as_str(), "tx:decapsulated"), (drop, dropped), (1, 1)),
        ("pass", false, (unkept, unkept), (pass.as_str(), pass.as_str()), (0, 0)),
    ];
    for (gre_unsupported, reassembly, ours, (first, later), counts) in settings {
        let setting = format!("gre_unsupported = \"{gre_unsupported}\"\ngre_reassembly = {reassembly}\n[dos.sanity]");
        let (v, stats, _) = verdicts_of(&config.replace("[dos.sanity]", &setting), frames.clone());
        let expect = [
            [ours.0].as_slice(),                   // ours' first
            &[first, later, later].repeat(64)[..], // 64 refused, in order
            &[ours.0, first, later],               // the late one: a later fragment first
            &[ours.1],                             // ours' last completes it
        ]
        .concat();
        assert_eq!(fates(&v), expect, "{gre_unsupported}, reassembly {reassembly}");
        let given = (stats.gre_reassembled, stats.gre_reassembly_discarded);
        assert_eq!(given, counts, "{gre_unsupported}, reassembly {reassembly}");
    }
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

/// GRE over IPv6 with destination options, cut where RFC 8200 §4.5 cuts it (options with no
/// routing header before them are in the fragmentable part, behind the fragment header;
/// RFC 2473's tunnel encapsulation limit is such an option), is reassembled and
/// decapsulated, in order and reversed. Every fragment's header names the options (60), not
/// GRE: the later ones were taken for no one's traffic (`pass:no_customer`, and the XDP
/// program passed them to the host) while the first, which reads on to GRE, waited for them
/// a second. scapy cuts the datagrams (`fragment6`); tshark reads that each fragment names
/// the options and that the first holds the limit; what comes out is the inner packet scapy
/// wrapped, a hop on, its UDP checksum good; the program hands every fragment over.
#[test]
fn gre_over_ipv6_cut_behind_destination_options_is_reassembled() {
    let (config, _) = tunnel_edge();
    let (file, whole) = (temp("gre-v6-dstopts-fragments"), temp("gre-v6-dstopts-inner"));
    // RFC 2473's tunnel encapsulation limit (option type 4), at 4 as Linux sets it, and a PadN.
    let script = "inner = IPv6(src='2001:db8:acbe::10', dst='2001:db8:5::9')/UDP(sport=5000, dport=6000)\n\
         inner = inner/Raw(b'x' * 1400)\n\
         limit = IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b'\\x04'), PadN(optdata=b'\\0')])\n\
         outer = IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')\n\
         gre = lambda n: outer/IPv6ExtHdrFragment(id=n)/limit/GRE(proto=0x86dd)/inner\n\
         cut = lambda n: [Ether(dst='02:00:00:00:00:01')/f for f in fragment6(gre(n), 700)]\n";
    scapy_pcap(&file, &format!("{script}frames = cut(1) + cut(2)[::-1]"));
    scapy_pcap(&whole, &format!("{script}frames = [Ether(dst='02:00:00:00:00:01')/inner]"));
    assert_eq!(tshark_frames(&file, "ipv6.fraghdr.nxt == 60", &[]), [1, 2, 3, 4, 5, 6]);
    assert_eq!(tshark_frames(&file, "ipv6.fraghdr.offset == 0 and ipv6.opt.tel == 4", &[]), [1, 6]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, stats, snap) = verdicts_of(&config, frames.clone());
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let datagram = [held.as_str(), &held, "tx:decapsulated"];
    assert_eq!(fates(&v), [datagram, datagram].concat());
    assert_eq!((stats.gre_reassembled, stats.gre_reassembly_discarded), (2, 0));

    let (out, _) = replay_to(&config, &file, "gre-v6-dstopts-out");
    let got: Vec<String> = read_frames(&out).into_iter().map(|f| hex(&f.bytes[14..])).collect();
    let want = hex(&forwarded(&read_frames(&whole)[0].bytes[14..]));
    assert_eq!(got, [want.clone(), want]);
    assert_eq!(tshark_checked(&out, &["-T", "fields", "-e", "udp.checksum.status"]), "1\n1\n");

    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    for (n, frame) in (1..).zip(&frames) {
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        assert_eq!(decision, transitd_bpf::XdpDecision::NoSocket, "frame {n}: handed over");
    }
    for f in [file, whole, out] {
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
    assert!(read_frames(&file).iter().all(|f| f.bytes.len() <= 1514), "each fragment fits a 1500-byte link");
    let (io, stats) = run_on_link(&config, &file, 1500);
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let expect = [held.as_str(), "tx:decapsulated", &held, "tx:icmp_too_big", &held, "tx:icmp_too_big"];
    assert_eq!(fates(&io.verdicts), expect);
    assert_eq!(stats.gre_reassembled, 3);
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
