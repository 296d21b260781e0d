//! Which GRE is ended here: over IPv6 behind extension headers, from an IPv4-mapped source,
//! under AH, from no tunnel's router, with an outer header that forbids ending it here, as
//! the XDP program judges it too; and the congestion mark carried inward.

use super::*;

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

/// An inner packet whose IP version is not the one its GRE protocol type names is a bad
/// header of that type, however few its bytes: tshark reads the version first ("Bogus IPv6
/// version", "Bogus IP version" short of a header's 20 bytes), where a short IPv4 packet
/// under 0x86dd was `truncated`. A short packet of the version named stays `truncated`. IPv6
/// bytes under 0x0800, which tshark hands to its IPv6 dissector, are a bad IPv4 header
/// however many there are, as a whole IPv6 packet there is (`tcpdump-kday1.pcap`'s verdict).
#[test]
fn an_inner_packet_of_another_version_is_a_bad_header_however_short() {
    let (config, _) = tunnel_edge();
    let file = temp("inner-version");
    scapy_pcap(
        &file,
        "outer = Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')\n\
         g = lambda proto, inner: outer/GRE(proto=proto)/Raw(inner)\n\
         v4 = bytes(IP(src='203.0.113.7', dst='198.51.100.99')/ICMP())\n\
         v6 = bytes(IPv6(src='2001:db8:acbe::7', dst='2001:db8:5::9')/ICMPv6EchoRequest())\n\
         frames = [g(0x86dd, v4), g(0x86dd, v4[:10]), g(0x0800, b'\\x55' + v4[1:10]), g(0x86dd, v6[:20]), \
                   g(0x0800, v4[:10]), g(0x0800, v6[:16]), g(0x0800, v6)]",
    );
    let experts = tshark(&file, &["-T", "fields", "-e", "_ws.expert.message"]);
    let bogus: Vec<bool> =
        experts.lines().map(|l| l.contains("Bogus IP version") || l.contains("Bogus IPv6 version")).collect();
    assert_eq!(bogus, [true, true, true, false, false, false, false], "{experts}");
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (v4, v6) = (DropReason::BadIpv4Header.name(), DropReason::BadIpv6Header.name());
    let cut = DropReason::Truncated.name();
    assert_eq!(fates(&v), [v6, v6, v4, cut, cut, v4, v4]);
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
    scapy_pcap(&file, &format!("NFRAMES = 3000\nNICMP = 600\n{}", include_str!("../data/gre_frames.py")));
    let frames = damaged(tagged(read_frames(&file).into_iter().map(|f| f.bytes).collect(), 8100), 47);
    // GRE under AH in an IPv6 chain, as tshark reads the frames (before the damage).
    let under_v6_ah: std::collections::BTreeSet<u64> =
        tshark_frames(&file, "eth.type == 0x86dd and ah and gre", &[]).into_iter().collect();
    let _ = std::fs::remove_file(&file);
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let not_ours = [PassReason::GreUnsupported.name(), PassReason::GreUnknownTunnel.name()];
    for gre_unsupported in ["pass", "drop"] {
        let (verdicts, seen) = judged_alike(&program, &config, gre_unsupported, &frames);
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

/// How often each (program's decision, verdict kind, reason) came up.
type CameUp = std::collections::BTreeMap<(&'static str, &'static str, &'static str), u32>;

/// The pipeline's verdicts on `frames` under `config` with `gre_unsupported` set, each held
/// beside the kernel's test run of the program (its maps programmed from the same
/// snapshot) to the lines `the_xdp_program_and_the_pipeline_judge_gre_alike` states; and
/// how often each (decision, verdict, reason) came up, for the callers' own cases.
fn judged_alike(
    program: &transitd_bpf::XdpProgram,
    config: &str,
    gre_unsupported: &str,
    frames: &[Vec<u8>],
) -> (Vec<Verdict>, CameUp) {
    use transitd_bpf::XdpDecision as X;
    let not_ours = [PassReason::GreUnsupported.name(), PassReason::GreUnknownTunnel.name()];
    let config = config.replace("[dos.sanity]", &format!("gre_unsupported = \"{gre_unsupported}\"\n[dos.sanity]"));
    let (verdicts, _, snap) = verdicts_of(&config, frames.to_vec());
    transitd::run::program_xdp(program, &snap).expect("program the XDP maps");
    let mut seen = std::collections::BTreeMap::new();
    for (i, (frame, verdict)) in frames.iter().zip(&verdicts).enumerate() {
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        let (kind, reason) = (verdict.kind(), verdict.reason());
        let fine = match decision {
            X::NoSocket => kind != "pass",
            X::GreNotOurs => {
                (kind == "pass" && not_ours.contains(&reason)) || discarded_by_the_host(frame, verdict, frames)
            }
            // A chain of extension headers longer than the program walks is the host's
            // (documented), where the sanity check drops it.
            X::Passed => {
                (kind == "pass" && !not_ours.contains(&reason))
                    || discarded_by_the_host(frame, verdict, frames)
                    || *verdict == Verdict::Drop(DropReason::Ipv6ExtensionChain)
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
    (verdicts, seen)
}

/// GRE to the IPv6 anycast address behind more extension headers than the XDP program walks
/// (eight) goes where `gre_unsupported` says, whatever `max_ipv6_extension_headers` says.
/// With "drop" the program hands it over from any source, for the pipeline to drop (for its
/// chain; with no limit, as not ours): it passed GRE from no tunnel's router to the host,
/// which the configuration says no such GRE reaches. With "pass" that GRE is the host's, as
/// the pipeline says where no limit stops it (where one does, the documented difference: the
/// pipeline drops it for its chain). From acme's router it is handed over under either
/// setting: decapsulated with no limit, or not ours (version 1), dropped, or passed round the
/// exception path (documented). scapy builds nine and twelve destination-options headers
/// before plain GRE and PPTP's version 1, from an unknown source and from the router; tshark
/// reads the GRE behind them.
#[test]
fn gre_behind_more_extension_headers_than_the_xdp_program_walks_follows_gre_unsupported() {
    use transitd_bpf::XdpDecision as X;
    let (config, _) = tunnel_edge();
    let file = temp("gre-long-chain.pcap");
    scapy_pcap(
        &file,
        "inner = IP(src='203.0.113.10', dst='198.18.0.10')/UDP(sport=5353, dport=53)/Raw(b'query')\n\
         def behind(src, n, gre):\n\
         \x20   p = Ether(dst='02:00:00:00:00:01')/IPv6(src=src, dst='2001:db8:ffff::1')\n\
         \x20   for _ in range(n):\n\
         \x20       p = p/IPv6ExtHdrDestOpt()\n\
         \x20   return p/gre\n\
         frames = [behind(src, n, gre) for src in ['2001:db8:dead::1', '2001:db8:beef::1'] for n in [9, 12]\n\
         \x20   for gre in [GRE()/inner, GRE(version=1, proto=0x880b)]]",
    );
    assert_eq!(tshark_frames(&file, "count(ipv6.dstopts) == 9 and gre", &[]), [1, 2, 5, 6]);
    assert_eq!(tshark_frames(&file, "count(ipv6.dstopts) == 12 and gre", &[]), [3, 4, 7, 8]);
    assert_eq!(tshark_frames(&file, "gre.flags.version == 1", &[]), [2, 4, 6, 8]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let chain = DropReason::Ipv6ExtensionChain.name().to_string();
    let (unknown, unsupported) = (DropReason::GreUnknownTunnel.name(), DropReason::GreUnsupported.name());
    let passed = |r: PassReason| format!("pass:{}", r.name());
    let decapsulated = format!("tx:{}", TxReason::Decapsulated.name());
    // Frames 1-4 from the unknown source, 5-8 from the router: plain GRE, then version 1.
    let from_router =
        |plain: &str, version_1: &str| [plain, version_1].repeat(2).iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (pass_unknown, pass_unsupported) = (passed(PassReason::GreUnknownTunnel), passed(PassReason::GreUnsupported));
    let no_limit_passed = [vec![pass_unknown; 4], from_router(&decapsulated, &pass_unsupported)].concat();
    let no_limit_dropped = [vec![unknown.to_string(); 4], from_router(&decapsulated, unsupported)].concat();
    let no_limit = "max_ipv6_extension_headers = 0\n";
    let cases = [
        ("", "pass", X::Passed, vec![chain.clone(); 8]),
        ("", "drop", X::NoSocket, vec![chain; 8]),
        (no_limit, "pass", X::Passed, no_limit_passed),
        (no_limit, "drop", X::NoSocket, no_limit_dropped),
    ];
    for (limit, gre_unsupported, from_unknown, pipeline) in cases {
        let config = config
            .replace("[dos.sanity]\n", &format!("gre_unsupported = \"{gre_unsupported}\"\n[dos.sanity]\n{limit}"));
        let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
        transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
        let decisions: Vec<X> = frames.iter().map(|f| program.test_run(f).expect("test run (needs root)").0).collect();
        let at = format!("{gre_unsupported}, {}", if limit.is_empty() { "the default limit" } else { limit.trim() });
        assert_eq!(decisions, [[from_unknown; 4], [X::NoSocket; 4]].concat(), "{at}");
        assert_eq!(fates(&verdicts), pipeline, "{at}");
    }
}

/// The later fragments of GRE that is not ours go where their first fragment went, in the
/// XDP program as in the pipeline, so that replay shows what a live edge does. Under
/// `gre_unsupported = "pass"` the program passes a tunnel router's first fragment of such GRE
/// (transparent Ethernet bridging, as Open vSwitch sends it; PPTP's version 1) to the host,
/// and now the rest of its datagram after it, which it remembers the first for; the pipeline
/// passes them too (`gre_unsupported`). The program handed the rest to transitd, whose
/// worker, never told of the refusal, kept each later fragment a second in one of its 64
/// slots (64 such datagrams evicted every datagram of ours being reassembled), while the
/// pipeline dropped them (`gre_fragment_of_refused`) and the host got first fragments alone.
/// Under "drop" the program hands all of it over and the pipeline drops the first
/// (`gre_unsupported`) and the rest as they come. A later fragment that comes before its
/// first is held, as before; a first fragment of ours ends the refusal of its identity; ours
/// are reassembled whole. The frames of `data/gre_refused_frames.py` (IPv4 and IPv6, behind
/// destination options too), the kernel's test run of the program in order beside the
/// pipeline's verdicts on the same sequence; tshark says which datagrams are not ours (their
/// first fragment's GRE header) and where ours are whole.
#[test]
fn later_fragments_of_gre_not_ours_follow_their_first_in_the_xdp_program_and_the_pipeline() {
    use transitd_bpf::XdpDecision as X;
    let (config, _) = tunnel_edge();
    let file = temp("gre-refused-fragments.pcap");
    scapy_pcap(&file, include_str!("../data/gre_refused_frames.py"));
    let kinds = datagrams(&file);
    let defragmented = ["-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE"];
    let whole = tshark_frames(&file, "udp.dstport == 53", &defragmented);
    assert_eq!(whole.len(), 4, "ours, whole at their last fragments: {whole:?}");
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    assert_eq!(kinds.len(), frames.len());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let held = format!("consumed:{}", ConsumeReason::GreFragmentHeld.name());
    let passed = format!("pass:{}", PassReason::GreUnsupported.name());
    for gre_unsupported in ["pass", "drop"] {
        let config = config.replace("[dos.sanity]", &format!("gre_unsupported = \"{gre_unsupported}\"\n[dos.sanity]"));
        let (verdicts, stats, snap) = verdicts_of(&config, frames.clone());
        transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
        let (not_ours, first, rest) = match gre_unsupported {
            "pass" => (X::GreNotOurs, passed.as_str(), passed.as_str()),
            _ => (X::NoSocket, DropReason::GreUnsupported.name(), DropReason::GreFragmentOfRefused.name()),
        };
        for (i, (frame, fate)) in frames.iter().zip(fates(&verdicts)).enumerate() {
            let (decision, _) = program.test_run(frame).expect("test run (needs root)");
            let n = i as u64 + 1;
            let expected = match kinds[i] {
                Datagram::FirstNotOurs => (not_ours, first),
                Datagram::AfterFirstNotOurs => (not_ours, rest),
                Datagram::Ours | Datagram::BeforeItsFirst if whole.contains(&n) => (X::NoSocket, "tx:decapsulated"),
                Datagram::Ours | Datagram::BeforeItsFirst => (X::NoSocket, held.as_str()),
            };
            assert_eq!((decision, fate.as_str()), expected, "{gre_unsupported}: frame {n}");
        }
        // Ours, and the datagram whose later fragment came first, given up at its refusal.
        assert_eq!((stats.gre_reassembled, stats.gre_reassembly_discarded), (4, 1), "{gre_unsupported}");
    }
}

/// What a frame of a capture of GRE fragments is, as tshark reads it in order (no
/// reassembly): a first fragment whose GRE is not ours (version 1, or a payload other than
/// IPv4 and IPv6), a later fragment of its datagram after it or before it, or a fragment of
/// a datagram of ours. A datagram is its source and identification (one destination here),
/// and a first fragment begins it anew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Datagram {
    FirstNotOurs,
    AfterFirstNotOurs,
    BeforeItsFirst,
    Ours,
}

fn datagrams(file: &Path) -> Vec<Datagram> {
    let fields = ["ip.src", "ip.id", "ip.frag_offset", "ipv6.src", "ipv6.fraghdr.ident", "ipv6.fraghdr.offset"];
    let fields = fields.iter().chain(&["gre.proto", "gre.flags.version"]).flat_map(|f| ["-e", *f]);
    let args: Vec<&str> = ["-T", "fields", "-E", "occurrence=f"].into_iter().chain(fields).collect();
    let rows = tshark(file, &args);
    // Each datagram's first fragment so far: not ours or ours.
    let mut not_ours = std::collections::HashMap::new();
    rows.lines()
        .map(|line| {
            let row: Vec<&str> = line.split('\t').collect();
            let (datagram, first) = identity(&row);
            if first {
                let ours = matches!(row[6], "0x0800" | "0x86dd") && row[7] == "0";
                not_ours.insert(datagram, !ours);
                return if ours { Datagram::Ours } else { Datagram::FirstNotOurs };
            }
            match not_ours.get(&datagram) {
                Some(true) => Datagram::AfterFirstNotOurs,
                Some(false) => Datagram::Ours,
                None => Datagram::BeforeItsFirst,
            }
        })
        .collect()
}

/// A row's datagram (IPv6's if it has an IPv6 header: IPv4 fields there are the inner
/// packet's) and whether the row is its first fragment.
fn identity(row: &[&str]) -> ((String, String), bool) {
    match row[3] {
        "" => ((row[0].to_string(), row[1].to_string()), row[2] == "0"),
        v6 => ((v6.to_string(), row[4].to_string()), row[5] == "0"),
    }
}

/// GRE to the anycast address in a frame to an Ethernet broadcast or multicast address is
/// judged as the XDP program judges it: what is not ours (from no tunnel's router, version 1,
/// another payload, under AH) goes by `gre_unsupported`, passed by the program itself
/// whatever the link address, and what is ours is handed over and dropped as
/// `link_broadcast` (RFC 1812 §5.3.4). The pipeline dropped both as `link_broadcast`, so
/// `replay` and `match` counted drops of GRE that `run` hands the host. The frames of
/// `data/gre_frames.py`, each to a group address (broadcast, IPv4 and IPv6 multicast, in
/// turn), the kernel's test run of the program beside the pipeline's verdict, under both
/// `gre_unsupported` settings.
#[test]
fn gre_to_a_link_group_address_is_judged_as_the_xdp_program_judges_it() {
    use transitd_bpf::XdpDecision as X;
    let (config, _) = tunnel_edge();
    let file = temp("gre-link-group.pcap");
    scapy_pcap(&file, &format!("NFRAMES = 2000\nNICMP = 400\n{}", include_str!("../data/gre_frames.py")));
    let groups = [[0xff; 6], [0x01, 0x00, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]];
    let frames: Vec<Vec<u8>> = read_frames(&file)
        .into_iter()
        .zip(groups.iter().cycle())
        .map(|(f, group)| [&group[..], &f.bytes[6..]].concat())
        .collect();
    let _ = std::fs::remove_file(&file);
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let not_ours = [PassReason::GreUnsupported.name(), PassReason::GreUnknownTunnel.name()];
    for gre_unsupported in ["pass", "drop"] {
        let (_, seen) = judged_alike(&program, &config, gre_unsupported, &frames);
        // Each side of the line came up (else the test would hold nothing).
        let at_least = |decision: X, kind: &str, reason: &str| {
            let n = seen.get(&(decision.name(), kind, reason)).copied().unwrap_or(0);
            assert!(n >= 10, "{gre_unsupported}: {} {kind}:{reason} came up {n} times: {seen:?}", decision.name());
        };
        let gre_not_ours = if gre_unsupported == "pass" { (X::GreNotOurs, "pass") } else { (X::NoSocket, "drop") };
        for reason in not_ours {
            at_least(gre_not_ours.0, gre_not_ours.1, reason);
        }
        at_least(X::NoSocket, "drop", DropReason::LinkBroadcast.name());
    }
}

/// The GRE header's bits as RFC 2784 §2.3 has a receiver that implements RFC 2890 (key and
/// sequence number) but not RFC 1701 read them, each frame's as tshark reads it: the routing
/// bit, and bits 4 and 5 (RFC 1701's strict source route and top recursion-control bit), are
/// discarded (`bad_gre_header`); bits 6 to 12 are ignored; a sequence number is accepted; a
/// checksum tshark finds wrong is `bad_gre_checksum`, one it finds right is decapsulated.
/// What is decapsulated keeps its own DSCP (AF11) under the outer one (AF21): the outer
/// DSCP is not copied inward.
#[test]
fn gre_header_bits_are_judged_as_rfc_2784_says() {
    let (config, _) = tunnel_edge();
    let file = temp("gre-bits");
    let out = temp("gre-bits-out");
    scapy_pcap(
        &file,
        "inner = IP(src='203.0.113.7', dst='198.51.100.200', tos=0x28)/UDP(sport=5000, dport=53)/Raw(b'q')\n\
         gre = lambda g: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1', tos=0x48)/g/inner\n\
         good = GRE(raw(GRE(chksum_present=1)/inner)).chksum\n\
         frames = [gre(GRE(routing_present=1)), gre(GRE(strict_route_source=1)), gre(GRE(recursion_control=4)),\n\
           gre(GRE(recursion_control=3)), gre(GRE(flags=0x1f)), gre(GRE(seqnum_present=1, sequence_number=0xffffffff)),\n\
           gre(GRE(chksum_present=1, chksum=good ^ 1)), gre(GRE(chksum_present=1))]",
    );
    let theirs = tshark(
        &file,
        &["-T", "fields", "-e", "gre.flags_and_version", "-e", "gre.sequence_number", "-e", "gre.checksum.status"],
    );
    // tshark's reading: flags word, sequence number, checksum status (0 bad, 1 good; 2 for
    // the routing bit's RFC 1701 checksum field, which it does not check).
    let expected = [
        "0x4000\t\t2",
        "0x0800\t\t",
        "0x0400\t\t",
        "0x0300\t\t",
        "0x00f8\t\t",
        "0x1000\t4294967295\t",
        "0x8000\t\t0",
        "0x8000\t\t1",
    ];
    assert_eq!(theirs.lines().collect::<Vec<_>>(), expected);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let (header, checksum, sent) =
        (DropReason::BadGreHeader.name(), DropReason::BadGreChecksum.name(), "tx:decapsulated");
    assert_eq!(fates(&v), [header, header, header, sent, sent, sent, checksum, sent]);
    transitd::replay::replay(std::sync::Arc::new(snapshot(&config)), &file, Some(&out)).unwrap();
    let dscp = tshark(&out, &["-T", "fields", "-e", "ip.dsfield"]);
    let _ = (std::fs::remove_file(&file), std::fs::remove_file(&out));
    assert_eq!(dscp, "0x28\n".repeat(4));
}
