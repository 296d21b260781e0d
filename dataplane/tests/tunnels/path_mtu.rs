//! A tunnel's MTU below its configured one: the underlay's Fragmentation Needed and Packet
//! Too Big lowering it (and a forged one disproved by a probe), and a tunnel held to what the
//! link carries.

use super::*;

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
    let (io, _) = run_on_link(&config, &file, 1400);
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
