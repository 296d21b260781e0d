//! The DoS stage on captures nobody here wrote: floods held to the configured rate over
//! capture time (±5 %), legitimate traffic in the same captures untouched, and sanity drops
//! exactly where tshark finds the offending packets.

mod common;

use std::collections::BTreeSet;

use common::*;
use transitd::pipeline::{DropReason, Verdict};

const NO_SANITY: &str = "land = false\ntcp_flags = false\nfragments = false\nmax_ipv6_extension_headers = 0\nbogons = false\ncustomer_sources = false";

/// Packets a bucket lets through back to back: what it passes beyond `rate` per second.
const BURST: usize = 10;

fn syn_limit(rate: u64, key: &str) -> String {
    format!(
        r#"
[[dos.bucket]]
name = "syn"
key = "{key}"
rate = {rate}
burst = {BURST}
[[dos.rule]]
name = "syn-flood"
match = "tcp.flags.syn == 1 and tcp.flags.ack == 0"
action = "rate-limit"
bucket = "syn"
"#
    )
}

/// Capture-relative time of each frame, from tshark.
fn times(file: &std::path::Path) -> Vec<f64> {
    tshark(file, &["-T", "fields", "-e", "frame.time_relative"]).lines().map(|l| l.parse().unwrap()).collect()
}

fn is_tx(v: &Verdict) -> bool {
    matches!(v, Verdict::Tx { .. })
}

/// Checks that the attack frames (tshark's selection) passed at `rate` ± 5 % over the
/// attack's duration (beyond the bucket's burst, which a token bucket lets through at once),
/// and that every other frame got the same verdict as without the rule.
fn held_to_rate(file: &str, prefixes: &[&str], attack: &str, rate: u64, key: &str) {
    let path = pcap(file);
    let (limited, _) = verdicts_timed(&victim_config(prefixes, NO_SANITY, &syn_limit(rate, key)), &path);
    let (free, _) = verdicts_timed(&victim_config(prefixes, NO_SANITY, ""), &path);
    let attack: BTreeSet<usize> = tshark_frames(&path, attack, &[]).into_iter().map(|n| n as usize - 1).collect();
    assert!(attack.len() > 100, "{file}: {} attack frames", attack.len());
    let t = times(&path);
    let first = *attack.iter().next().unwrap();
    let last = *attack.iter().last().unwrap();
    let duration = t[last] - t[first];
    let passed = attack.iter().filter(|&&i| is_tx(&limited[i])).count();
    let measured = passed.saturating_sub(BURST) as f64 / duration;
    assert!(
        (measured - rate as f64).abs() <= 0.05 * rate as f64,
        "{file}: {passed} of {} attack frames in {duration:.3} s = {measured:.1}/s against a limit of {rate}/s",
        attack.len()
    );
    assert!(attack.iter().all(|&i| is_tx(&limited[i]) || limited[i] == Verdict::Drop(DropReason::RateLimited)));
    for i in (0..limited.len()).filter(|i| !attack.contains(i)) {
        assert_eq!(limited[i], free[i], "{file}: frame {} is not part of the attack and must be untouched", i + 1);
    }
}

#[test]
fn suricatas_syn_flood_is_held_to_the_configured_rate() {
    // 200 SYNs to 198.51.100.5 in 0.199 s (about 1000/s), from one address and 200 ports.
    // (At 0.199 s, a rate below 100/s lets fewer than 20 packets through: too few to tell
    // 5 % apart.)
    for rate in [100, 200, 500, 900] {
        held_to_rate("real/suricata-syn-flood.pcap", &["198.51.100.0/24"], "tcp.flags == 0x002", rate, "destination");
    }
}

#[test]
fn glb_directors_slow_syn_flood_is_held_to_the_configured_rate() {
    // 1000 SYNs to 1.1.1.1 over 66 s (about 15/s on average, in bursts).
    for rate in [2, 5] {
        held_to_rate("real/glb-1k_pkts.pcap", &["1.1.1.0/24"], "tcp.flags == 0x002", rate, "rule");
    }
}

#[test]
fn a_flood_at_one_destination_leaves_the_others_alone() {
    // The SYN flood merged (by time) with a legitimate HTTP connection to another address
    // of the same customer: the per-destination bucket of the flood never limits the
    // connection, whose every packet is encapsulated as without the rule.
    let merged = std::env::temp_dir().join(format!("transitd-dos-merge-{}.pcap", std::process::id()));
    let status = std::process::Command::new("mergecap")
        .args(["-F", "pcap", "-w"])
        .arg(&merged)
        .arg(pcap("real/suricata-syn-flood.pcap"))
        .arg(pcap("real/zeek-communityid-tcp.pcap"))
        .status()
        .unwrap();
    assert!(status.success());
    let prefixes = ["198.51.100.0/24", "66.35.250.0/24"];
    let (limited, _) = verdicts_timed(&victim_config(&prefixes, NO_SANITY, &syn_limit(10, "destination")), &merged);
    let (free, _) = verdicts_timed(&victim_config(&prefixes, NO_SANITY, ""), &merged);
    let legit = tshark_frames(&merged, "ip.dst == 66.35.250.204", &[]);
    assert!(!legit.is_empty());
    for n in &legit {
        let i = *n as usize - 1;
        assert_eq!(limited[i], free[i], "frame {n} of the legitimate connection");
    }
    let flood_dropped = tshark_frames(&merged, "ip.dst == 198.51.100.5", &[])
        .iter()
        .filter(|n| limited[**n as usize - 1] == Verdict::Drop(DropReason::RateLimited))
        .count();
    assert!(flood_dropped > 150, "{flood_dropped}");
    let _ = std::fs::remove_file(merged);
}

/// Frames of `file` dropped for `reason` under the default sanity checks (bogons off when
/// `bogons` is false), against the frames tshark selects with `filter`.
fn sanity_drops(file: &str, prefixes: &[&str], sanity: &str, reason: DropReason, filter: &str) {
    let path = pcap(file);
    let (v, _) = verdicts_timed(&victim_config(prefixes, sanity, ""), &path);
    let ours: BTreeSet<u64> =
        v.iter().enumerate().filter(|(_, v)| **v == Verdict::Drop(reason)).map(|(i, _)| i as u64 + 1).collect();
    let theirs: BTreeSet<u64> = tshark_frames(&path, filter, &[]).into_iter().collect();
    assert!(!theirs.is_empty(), "{file}: tshark finds nothing for `{filter}`");
    assert_eq!(ours, theirs, "{file}: {reason}");
}

#[test]
fn scans_with_impossible_tcp_flags_are_dropped_and_the_rest_passes() {
    // nDPI's scan capture: a SYN scan answered normally, then FIN, NULL and XMAS probes.
    sanity_drops(
        "real/ndpi-tcp_scan.pcapng",
        &["192.168.1.0/24"],
        "bogons = false\ncustomer_sources = false",
        DropReason::BadTcpFlags,
        "tcp.flags & 0x16 == 0 or (tcp.flags.syn == 1 and (tcp.flags.fin == 1 or tcp.flags.reset == 1)) or (tcp.flags.fin == 1 and tcp.flags.ack == 0)",
    );
    sanity_drops(
        "malformed/tcpdump-tcp_eight_lowest_weight_flags_set.pcap",
        &["0.0.0.0/0"],
        "bogons = false\ncustomer_sources = false",
        DropReason::BadTcpFlags,
        "tcp",
    );
}

/// A segment with none of SYN, RST and ACK is one every state of a receiver discards (RFC
/// 9293 §3.10.7: a segment that is not a SYN or a RST carries an ACK): PSH or URG alone, or
/// together, are scans' as much as the null and FIN probes are (nmap's `--scanflags`). With
/// an ACK, or a RST alone, a segment is one a stack sends. scapy writes them, tshark picks the
/// ones without the three.
#[test]
fn a_segment_without_syn_rst_or_ack_is_dropped() {
    let file = std::env::temp_dir().join(format!("transitd-flags-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "tcp = lambda flags: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.7', dst='203.0.113.9')/TCP(flags=flags)\n\
         frames = [tcp(f) for f in ['P', 'U', 'PU', 'PE', 'PA', 'UA', 'R', 'RA', 'S', 'SA', 'A']]",
    );
    assert_eq!(tshark_frames(&file, "tcp.flags & 0x16 == 0", &[]), [1, 2, 3, 4], "the oracle's selection");
    let (v, _) = verdicts_timed(&victim_config(&["203.0.113.0/24"], "bogons = false", ""), &file);
    let _ = std::fs::remove_file(file);
    assert_eq!(v[..4], [Verdict::Drop(DropReason::BadTcpFlags); 4]);
    assert!(v[4..].iter().all(is_tx), "{v:?}");
}

#[test]
fn tiny_and_overlapping_fragments_are_dropped() {
    // nDPI's fragment flood: 16-byte fragments of one TCP datagram, each offset four times.
    let file = "malformed/ndpi-ip_fragmented_garbage.pcap";
    let sanity = "bogons = false\ncustomer_sources = false";
    sanity_drops(
        file,
        &["0.0.0.0/0"],
        sanity,
        DropReason::TinyFragment,
        "ip.frag_offset == 0 and ip.flags.mf == 1 and ip.proto == 6 and ip.len - ip.hdr_len < 20",
    );
    // Suricata's defrag tests send a SYN in 8-byte fragments: those at offsets 8 and 16,
    // inside the TCP header, are dropped (and the first, which holds 8 of the header's 20
    // bytes, is tiny).
    for file in ["real/suricata-defrag-frag-ip-tcp-syn.pcap", "real/suricata-defrag-frag-eth-vlan-ip-tcp-syn.pcap"] {
        sanity_drops(
            file,
            &["0.0.0.0/0"],
            sanity,
            DropReason::OverlappingFragment,
            "ip.frag_offset in {1, 2} and ip.proto == 6",
        );
        sanity_drops(
            file,
            &["0.0.0.0/0"],
            sanity,
            DropReason::TinyFragment,
            "ip.frag_offset == 0 and ip.flags.mf == 1 and ip.proto == 6 and ip.len - ip.hdr_len < 20",
        );
    }
}

#[test]
fn later_fragments_below_the_smallest_first_fragment_are_dropped() {
    // IPv4: TCP at 8 and 16 bytes; under an authentication header, below 48 (AH with a
    // 96-bit ICV and TCP's header end at 44). IPv6: below 48, whatever the piece names.
    sanity_drops(
        "generated/overlapping-fragments.pcap",
        &["0.0.0.0/0", "::/0"],
        "bogons = false\ncustomer_sources = false",
        DropReason::OverlappingFragment,
        "(ip.frag_offset in {1, 2} and ip.proto == 6) or (ip.frag_offset in {1..5} and ip.proto == 51) \
         or ipv6.fraghdr.offset in {1..5}",
    );
}

/// The numbers (from 1) of the frames `verdicts` drops as `reason`.
fn frames_dropped_as(verdicts: &[Verdict], reason: DropReason) -> Vec<usize> {
    verdicts.iter().enumerate().filter(|(_, v)| **v == Verdict::Drop(reason)).map(|(i, _)| i + 1).collect()
}

/// An IPv6 later fragment names the first header of the fragmentable part: behind
/// destination options (or hop-by-hop options, or a routing header) TCP's flags sit past
/// offset 8, and a piece at 8 or 16 can rewrite them (RFC 1858 §3.2 again, as under AH). And
/// receivers reassemble by the first fragment's Next Header, not the later one's (RFC 8200
/// §4.5), so a piece that names UDP (17) rewrites a TCP first fragment all the same. The
/// first fragment holds the whole chain (RFC 7112) and is not dropped; tshark picks the
/// later ones below 48.
#[test]
fn ipv6_later_fragments_behind_options_are_held_to_the_first_fragments_size() {
    let file = std::env::temp_dir().join(format!("transitd-frag6-opts-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "tcp = bytes(TCP(sport=40000, dport=80, flags='A'))\n\
         ip = lambda: IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5')\n\
         first = ip()/IPv6ExtHdrFragment(id=9, nh=60, offset=0, m=1)/IPv6ExtHdrDestOpt(nh=6)/Raw(tcp)\n\
         later = lambda off, nh: ip()/IPv6ExtHdrFragment(id=9, nh=nh, offset=off, m=0)/Raw(b'\\x02' * 16)\n\
         frames = [Ether(dst='02:00:00:00:00:01')/p for p in [first, later(1, 60), later(2, 60), later(2, 0), later(3, 43), later(6, 60), later(2, 17)]]",
    );
    let dropped = "ipv6.fraghdr.offset in {1..5}";
    assert_eq!(tshark_frames(&file, dropped, &[]), [2, 3, 4, 5, 7], "the oracle's selection");
    let (v, _) = verdicts_timed(&victim_config(&["::/0"], "bogons = false\ncustomer_sources = false", ""), &file);
    let overlapping = frames_dropped_as(&v, DropReason::OverlappingFragment);
    assert_eq!(overlapping, [2, 3, 4, 5, 7], "{v:?}");
    let _ = std::fs::remove_file(file);
}

/// An IPv6 first fragment (offset 0, more to come) whose header chain runs past its own
/// payload length does not hold every header up to the upper-layer one: a tiny fragment
/// (RFC 7112 §5, RFC 8200 §4.5), whatever `[dos.sanity]` says, where it was `truncated`. What
/// is cut short otherwise stays `truncated`: the same chain in an atomic fragment (offset 0,
/// no more: RFC 6946, not fragmented) or in a packet with no fragment header (its payload
/// length lies), and a first fragment whose capture stops inside its chain (a snap length).
/// tshark tells them apart: those three it finds malformed or cut short, the first it reads
/// as a fragment whose rest is to come. The same first fragment with its chain whole goes on.
#[test]
fn an_ipv6_first_fragment_without_its_whole_header_chain_is_tiny() {
    let file = std::env::temp_dir().join(format!("transitd-frag6-chain-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         ip = lambda **k: IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::10', **k)\n\
         opts = bytes([17, 2, 1, 4, 0, 0, 0, 0])  # Destination Options: UDP next, 24 bytes long, 8 of them here\n\
         first = lambda m, id: IPv6ExtHdrFragment(nh=60, offset=0, m=m, id=id)\n\
         tiny = e/ip(plen=16, nh=44)/first(1, 1)/Raw(opts)\n\
         atomic = e/ip(plen=16, nh=44)/first(0, 2)/Raw(opts)\n\
         lying = e/ip(plen=8, nh=60)/Raw(opts + bytes(40))\n\
         whole = e/ip(nh=44)/first(1, 3)/IPv6ExtHdrDestOpt(nh=17)/UDP(sport=5000, dport=53)/Raw(b'y' * 64)\n\
         cut = Ether(bytes(whole)[:66]); cut.wirelen = len(whole)\n\
         frames = [tiny, atomic, lying, whole, cut]",
    );
    let faulty = "_ws.malformed or ipv6.plen_exceeds_framing or frame.cap_len < frame.len";
    assert_eq!(tshark_frames(&file, faulty, &[]), [2, 3, 5], "the oracle's selection");
    let (tiny, cut) = (DropReason::TinyFragment.name(), DropReason::Truncated.name());
    for sanity in ["bogons = false\ncustomer_sources = false", NO_SANITY] {
        let (v, _) = verdicts_timed(&victim_config(&["::/0"], sanity, ""), &file);
        assert_eq!(fates(&v), [tiny, cut, cut, "tx:encapsulated", cut], "{sanity}");
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn fragments_ending_past_the_largest_datagram_are_dropped() {
    // A ping of death's pieces, IPv4 and IPv6, beside pieces that end at or inside 65,535:
    // the reassembled length field's (IPv4's total length, the header in it; IPv6's payload
    // length, without the fragment header).
    let past = "ip.frag_offset * 8 + ip.len > 65535 or ipv6.fraghdr.offset * 8 + ipv6.plen - 8 > 65535";
    sanity_drops(
        "generated/ping-of-death.pcap",
        &["0.0.0.0/0", "::/0"],
        "bogons = false\ncustomer_sources = false",
        DropReason::OversizeFragment,
        past,
    );
    // Headers count: IPv4 options, and IPv6 extension headers before the fragment header.
    // Each piece past 65,535 (2, 3, 5, 6) ends a byte past it with its headers and inside it
    // without them; 1 and 4 end at 65,535 exactly.
    let file = std::env::temp_dir().join(format!("transitd-pod-headers-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
         v4 = lambda opts, n: e/IP(src='198.51.100.9', dst='203.0.113.10', id=9, frag=8188, proto=17, options=opts)/Raw(bytes(n))\n\
         v6 = lambda ext, n: e/IPv6(src='2001:db8:5::9', dst='2001:db8:1::10')/ext/IPv6ExtHdrFragment(id=9, offset=8190, nh=17)/Raw(bytes(n))\n\
         frames = [v4([], 11), v4([], 12), v4([IPOption_NOP()] * 4, 8), v6(IPv6ExtHdrDestOpt(), 7), v6(IPv6ExtHdrDestOpt(), 8), v6(IPv6ExtHdrRouting(), 8)]",
    );
    let (v, _) =
        verdicts_timed(&victim_config(&["0.0.0.0/0", "::/0"], "bogons = false\ncustomer_sources = false", ""), &file);
    let ours: BTreeSet<u64> = v
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == Verdict::Drop(DropReason::OversizeFragment))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    let theirs: BTreeSet<u64> = tshark_frames(&file, past, &[]).into_iter().collect();
    let _ = std::fs::remove_file(&file);
    assert_eq!(theirs, BTreeSet::from([2, 3, 5, 6]), "the oracle's own count");
    assert_eq!(ours, theirs);
}

#[test]
fn bogon_sources_are_dropped() {
    // The scan capture comes from RFC 1918 space.
    sanity_drops(
        "real/ndpi-tcp_scan.pcapng",
        &["192.168.1.0/24"],
        "customer_sources = false\ntcp_flags = false",
        DropReason::BogonSource,
        "ip.src == 192.168.0.0/16 and ip.dst == 192.168.1.0/24",
    );
}

#[test]
fn sources_inside_a_customers_prefixes_are_spoofed() {
    // Both ends of the scan are in the customer's /24: none of it can come from outside.
    sanity_drops(
        "real/ndpi-tcp_scan.pcapng",
        &["192.168.1.0/24"],
        "bogons = false\ntcp_flags = false",
        DropReason::SpoofedCustomerSource,
        "ip.src == 192.168.1.0/24 and ip.dst == 192.168.1.0/24",
    );
}

/// The built-in list holds IPv6's benchmarking space (2001:2::/48, RFC 5180; not globally
/// reachable in RFC 6890's registry, as 198.18.0.0/15 is not for IPv4): it was missing.
/// Python's `ipaddress` (the registry's reading, not ours) says which sources are global.
#[test]
fn ipv6_benchmarking_sources_are_bogons() {
    let sources = ["2001:2::1", "2001:2:0:ffff::1", "2001:4860::1"];
    let global = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import ipaddress, sys\nprint(' '.join(str(ipaddress.ip_address(a).is_global) for a in sys.argv[1:]))",
        ])
        .args(sources)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&global.stdout).trim(), "False False True");
    let file = std::env::temp_dir().join(format!("transitd-bench6-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        &format!(
            "frames = [Ether(dst='02:00:00:00:00:01')/IPv6(src=s, dst='2001:db8:acbe::9')/UDP(sport=53, dport=53) for s in {sources:?}]"
        ),
    );
    let (v, _) = verdicts_timed(&victim_config(&["2001:db8:acbe::/48"], "customer_sources = false", ""), &file);
    let _ = std::fs::remove_file(file);
    assert_eq!(v[..2], [Verdict::Drop(DropReason::BogonSource); 2]);
    assert!(is_tx(&v[2]), "{:?}", v[2]);
}

/// A packet whose IPv4 loose or strict source route still has hops to go is on its way
/// through the customer's host to somewhere else (RFC 7126 §4.3, §4.4: dropped by default;
/// hosts refuse to forward it), and tshark reads its `ip.dst` as the route's last hop, not
/// the header's destination the rules would read. tshark picks the frames; an exhausted
/// route and record-route pass, and with `source_route = false` all do.
#[test]
fn packets_routed_onward_by_a_source_route_are_dropped() {
    let file = std::env::temp_dir().join(format!("transitd-lsrr-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "ip = lambda opt: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.7', dst='203.0.113.5', options=[opt])/TCP(dport=22, flags='S')\n\
         frames = [ip(IPOption_LSRR(routers=['1.1.1.1', '203.0.113.6'], pointer=4)), ip(IPOption_SSRR(routers=['203.0.113.6'], pointer=4)),\n\
         \x20         ip(IPOption_LSRR(routers=['203.0.113.6'], pointer=8)), ip(IPOption_RR())]",
    );
    let onward = tshark_frames(&file, "ip.opt.type in {131, 137} and ip.opt.ptr <= ip.opt.len", &[]);
    assert_eq!(onward, [1, 2], "the oracle's selection");
    assert_eq!(tshark_frames(&file, "ip.dst == 203.0.113.6", &[]), [1, 2], "tshark's ip.dst: the route's end");
    let (v, _) = verdicts_timed(&victim_config(&["203.0.113.0/24"], "bogons = false", ""), &file);
    assert_eq!(v[..2], [Verdict::Drop(DropReason::SourceRouted); 2]);
    assert!(v[2..].iter().all(is_tx), "{v:?}");
    let (v, _) = verdicts_timed(&victim_config(&["203.0.113.0/24"], "bogons = false\nsource_route = false", ""), &file);
    assert!(v.iter().all(is_tx), "{v:?}");
    let _ = std::fs::remove_file(file);
}

/// IPv6's source routes are routing headers with segments left (RFC 8200 §4.4): type 0,
/// deprecated for its amplification (RFC 5095), and segment routing's, which an SR domain's
/// edge filters from outside (RFC 8754 §5.1), are on their way through the customer's host to
/// somewhere else and dropped as IPv4's are. Mobile IPv6's type 2, whose one segment is the
/// host's own home address (RFC 6275 §6.4), and a route already at its end pass. tshark
/// picks the frames.
#[test]
fn ipv6_packets_routed_onward_by_a_routing_header_are_dropped() {
    let file = std::env::temp_dir().join(format!("transitd-rh-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "ip = lambda rh: Ether(dst='02:00:00:00:00:01')/IPv6(src='2001:db8:5::7', dst='2001:db8:acbe::5')/rh/TCP(dport=22, flags='S')\n\
         frames = [ip(IPv6ExtHdrRouting(addresses=['2001:db8:99::1'], segleft=1)),\n\
         \x20         ip(IPv6ExtHdrSegmentRouting(addresses=['2001:db8:99::1', '2001:db8:acbe::5'], segleft=1)),\n\
         \x20         ip(IPv6ExtHdrRouting(type=2, addresses=['2001:db8:acbe::6'], segleft=1)),\n\
         \x20         ip(IPv6ExtHdrRouting(addresses=['2001:db8:99::1'], segleft=0))]",
    );
    let onward = tshark_frames(&file, "ipv6.routing.segleft > 0 and ipv6.routing.type != 2", &[]);
    assert_eq!(onward, [1, 2], "the oracle's selection");
    let (v, _) = verdicts_timed(&victim_config(&["2001:db8:acbe::/48"], "bogons = false", ""), &file);
    assert_eq!(v[..2], [Verdict::Drop(DropReason::SourceRouted); 2]);
    assert!(v[2..].iter().all(is_tx), "{v:?}");
    let (v, _) =
        verdicts_timed(&victim_config(&["2001:db8:acbe::/48"], "bogons = false\nsource_route = false", ""), &file);
    assert!(v.iter().all(is_tx), "{v:?}");
    let _ = std::fs::remove_file(file);
}

/// `max_ipv6_extension_headers` holds at its largest, 255: a chain of 256 or more headers is
/// dropped, one of 255 passes (the count saturated at 255 and let every longer chain through
/// that limit). scapy writes the chains of Destination Options, tshark counts them.
#[test]
fn the_longest_extension_chain_limit_holds_past_it() {
    let file = std::env::temp_dir().join(format!("transitd-chain-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "from functools import reduce\n\
         chain = lambda n: reduce(lambda p, _: p/IPv6ExtHdrDestOpt(), range(n), IPv6(src='2001:db8:5::7', dst='2001:db8:acbe::5'))\n\
         frames = [Ether(dst='02:00:00:00:00:01')/chain(n)/UDP(sport=1024, dport=53) for n in (255, 256, 300)]",
    );
    assert_eq!(tshark_frames(&file, "count(ipv6.dstopts) > 255", &[]), [2, 3], "the oracle's count");
    let sanity = "bogons = false\nmax_ipv6_extension_headers = 255";
    let (v, _) = verdicts_timed(&victim_config(&["2001:db8:acbe::/48"], sanity, ""), &file);
    let _ = std::fs::remove_file(file);
    assert!(is_tx(&v[0]), "{v:?}");
    assert_eq!(v[1..], [Verdict::Drop(DropReason::Ipv6ExtensionChain); 2]);
}

#[test]
fn land_packets_are_dropped() {
    // No public capture has one: scapy makes it (source = destination = 203.0.113.9).
    let file = std::env::temp_dir().join(format!("transitd-land-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='203.0.113.9', dst='203.0.113.9')/TCP(sport=139, dport=139, flags='S'), \
         Ether(dst='02:00:00:00:00:01')/IP(src='198.18.0.1', dst='203.0.113.9')/TCP(flags='S')]",
    );
    let (v, _) =
        verdicts_timed(&victim_config(&["203.0.113.0/24"], "bogons = false\ncustomer_sources = false", ""), &file);
    assert_eq!(v[0], Verdict::Drop(DropReason::Land));
    assert!(is_tx(&v[1]));
    let _ = std::fs::remove_file(file);
}

/// A `key = "rule"` bucket counts each rule apart: the first DoS rule of one customer, of
/// another, and the first global DoS rule and firewall rule sharing the bucket are four
/// rules, not one (they were once counted by their number within their own list, so one
/// customer's traffic spent another's tokens).
#[test]
fn a_rule_bucket_keeps_each_customers_rules_apart() {
    let config = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[dos.sanity]
bogons = false
[[dos.bucket]]
name = "per-rule"
key = "rule"
rate = 1
burst = 1
[[dos.rule]]
name = "global-tcp"
match = "tcp"
action = "rate-limit"
bucket = "per-rule"
[[customer]]
name = "a"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "t"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "t"
[[customer.dos.rule]]
name = "a-udp"
match = "udp"
action = "rate-limit"
bucket = "per-rule"
[[customer.firewall.rule]]
name = "a-icmp"
match = "icmp"
action = "rate-limit"
bucket = "per-rule"
[[customer]]
name = "b"
prefixes = ["198.18.0.0/24"]
[[customer.tunnel]]
name = "tb"
remote = "198.51.100.2"
[[customer.route]]
prefix = "198.18.0.0/24"
tunnel = "tb"
[[customer.dos.rule]]
name = "b-udp"
match = "udp"
action = "rate-limit"
bucket = "per-rule"
"#;
    let eth = || etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1]);
    let udp = |dst: [u8; 4]| {
        let mut out = Vec::new();
        eth().ipv4([8, 8, 8, 8], dst, 60).udp(1000, 2000).write(&mut out, b"x").unwrap();
        out
    };
    let mut tcp = Vec::new();
    eth().ipv4([8, 8, 8, 8], [203, 0, 113, 9], 60).tcp(1000, 80, 1, 1000).syn().write(&mut tcp, b"").unwrap();
    let mut icmp = Vec::new();
    eth().ipv4([8, 8, 8, 8], [203, 0, 113, 9], 60).icmpv4_echo_request(1, 1).write(&mut icmp, b"").unwrap();
    // All at time 0: each rule's one token, once; the second UDP frame to a is over.
    let frames = vec![tcp, udp([203, 0, 113, 9]), udp([198, 18, 0, 9]), icmp, udp([203, 0, 113, 9])];
    let (v, _, _) = verdicts_of(config, frames);
    let sent = |v: &Verdict| matches!(v, Verdict::Tx { .. });
    assert!(v[..4].iter().all(sent), "one frame per rule passes: {v:?}");
    assert_eq!(v[4], Verdict::Drop(DropReason::RateLimited), "a's UDP rule's second frame: {v:?}");
}

/// A `key = "rule"` bucket keeps tokens by rule number: a reload that inserts a rule before
/// another gives the other's number to the new one, which must start with tokens of its
/// own, not the spent ones of the rule that had the number before. A reload that numbers
/// every rule as before keeps the tokens.
#[test]
fn a_reload_that_renumbers_rule_keyed_rules_does_not_hand_over_their_tokens() {
    use transitd::pipeline::Limits;
    let rule = |name: &str, matches: &str| {
        format!(
            "[[dos.rule]]\nname = \"{name}\"\nmatch = \"{matches}\"\naction = \"rate-limit\"\nbucket = \"per-rule\"\n"
        )
    };
    let config = |rules: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\nmac = \"02:00:00:00:00:01\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n\
             [dos.sanity]\nbogons = false\n[[dos.bucket]]\nname = \"per-rule\"\nkey = \"rule\"\nrate = 1\nburst = 1\n\
             {rules}[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n[[customer.tunnel]]\nname = \"t\"\n\
             remote = \"198.51.100.1\"\n[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"t\"\n"
        )
    };
    let before = snapshot(&config(&rule("tcp", "tcp")));
    let same = snapshot(&config(&rule("tcp", "tcp")));
    let inserted = snapshot(&config(&(rule("udp", "udp") + &rule("tcp", "tcp"))));
    let eth = || etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1]);
    let mut tcp = Vec::new();
    eth().ipv4([8, 8, 8, 8], [203, 0, 113, 9], 60).tcp(1000, 80, 1, 1000).syn().write(&mut tcp, b"").unwrap();
    let mut udp = Vec::new();
    eth().ipv4([8, 8, 8, 8], [203, 0, 113, 9], 60).udp(1000, 2000).write(&mut udp, b"x").unwrap();
    let mut limits = Limits::new(&before);
    // All at one time: each rule has its one token, once.
    let send = |snap, limits: &mut Limits, bytes: &[u8]| verdict_with(snap, limits, bytes, 1_000_000_000);
    assert!(matches!(send(&before, &mut limits, &tcp), Verdict::Tx { .. }));
    assert_eq!(send(&before, &mut limits, &tcp), Verdict::Drop(DropReason::RateLimited));
    limits.rebind(&before, &same);
    assert_eq!(send(&same, &mut limits, &tcp), Verdict::Drop(DropReason::RateLimited), "same numbering: kept");
    limits.rebind(&same, &inserted);
    assert!(matches!(send(&inserted, &mut limits, &udp), Verdict::Tx { .. }), "the new rule 0 has its own token");
    assert_eq!(send(&inserted, &mut limits, &udp), Verdict::Drop(DropReason::RateLimited));
}

/// A global DoS rule that lets a frame on to its customer's DoS rules is counted a hit even
/// when one of those decides next, and so is a global monitor-mode rule beside a customer's
/// (the customer's rule once took the one slot the global rule's hit was in: a global rule
/// tried in monitor mode showed 0 hits under traffic it matched). Monitor-mode rules come
/// first: a rule after the first match at its stage decides nothing. `match --config`
/// counts the same.
#[test]
fn global_and_customer_dos_rules_that_both_match_are_both_counted() {
    let config = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[dos.sanity]
bogons = false
[[dos.rule]]
name = "g-watch"
match = "tcp.flags.syn == 1"
action = "drop"
mode = "monitor"
[[dos.rule]]
name = "g-accept"
match = "tcp"
action = "accept"
[[customer]]
name = "a"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "t"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "t"
[[customer.dos.rule]]
name = "a-watch"
match = "tcp.flags.syn == 1"
action = "drop"
mode = "monitor"
[[customer.dos.rule]]
name = "a-accept"
match = "tcp.dstport == 80"
action = "accept"
"#;
    let syn = |port: u16| {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 8, 8], [203, 0, 113, 9], 60)
            .tcp(1000, port, 1, 1000)
            .syn()
            .write(&mut out, b"")
            .unwrap();
        out
    };
    let frames = vec![syn(80), syn(80), syn(443)];
    let (v, stats, snap) = verdicts_of(config, frames.clone());
    assert!(v.iter().all(|v| matches!(v, Verdict::Tx { .. })), "{v:?}");
    let global = snap.dos.rules.rules().iter().enumerate().map(|(i, r)| (r.name.clone(), stats.dos_hits[i]));
    let customer = &snap.customers[0];
    let own = customer.dos.rules().iter().enumerate();
    let own = own.map(|(i, r)| (format!("a/{}", r.name), stats.dos_hits[customer.dos_base as usize + i]));
    let hits: Vec<(String, u64)> = global.chain(own).collect();
    let want = [("g-watch", 3), ("g-accept", 3), ("a/a-watch", 3), ("a/a-accept", 2)];
    assert_eq!(hits, want.map(|(n, h)| (n.to_string(), h)));

    // transitd match --config, on the same frames.
    let dir = scratch_dir("dos-both");
    let (file, pcap) = (dir.join("c.toml"), dir.join("f.pcap"));
    std::fs::write(&file, config).unwrap();
    write_pcap(&pcap, &frames);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["match", "--json", "--config"])
        .arg(&file)
        .arg("-r")
        .arg(&pcap)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, hits) in [("[dos]/g-accept", 3), ("[dos]/g-watch", 3), ("a/dos/a-accept", 2), ("a/dos/a-watch", 3)] {
        assert_eq!(report["rule_hits"][name], hits, "{name}: {}", report["rule_hits"]);
    }
    // Each frame names both monitor-mode rules that would have decided.
    let first = &report["frames"][0];
    assert_eq!(
        (&first["dos_monitor"]["name"], &first["customer_dos_monitor"]["name"]),
        (&"g-watch".into(), &"a-watch".into()),
        "{first}"
    );
}

/// A pcapng whose frames are stamped at or past 2^64 ns since 1970 (2554: only a crafted file
/// says so; its 64-bit ticks can). The reader holds such times at `u64::MAX`, where a token
/// bucket's arrival time could not move on: every frame of a flood passed its rate limit
/// (`transitd replay`: 100 of 100 transmitted). The same 100 frames 1 ms apart are held to
/// the limit (10/s, a burst of 1: over 0.099 s, tshark's span of them, 1 frame) in 2010, and
/// must be in 2554 too.
#[test]
fn a_capture_stamped_past_the_clocks_end_is_still_rate_limited() {
    let dir = scratch_dir("far-future");
    let config = dir.join("limit.toml");
    let limit = "[[dos.bucket]]\nname = \"udp\"\nkey = \"destination\"\nrate = 10\nburst = 1\n\
                 [[dos.rule]]\nname = \"udp-flood\"\nmatch = \"udp.dstport == 2000\"\naction = \"rate-limit\"\n\
                 bucket = \"udp\"\n";
    std::fs::write(&config, victim_config(&["203.0.113.0/24"], NO_SANITY, limit)).unwrap();
    let frames: Vec<Vec<u8>> = (0..100).map(|i| udp_between("198.18.0.1", "203.0.113.5", 1000 + i)).collect();
    // Microsecond ticks: 2010-01-01, and the first microsecond at or past 2^64 ns.
    let past_u64_us = (1u64 << 63) / 500 + 1;
    for (year, first_us) in [("2010", 1_262_304_000_000_000u64), ("2554", past_u64_us)] {
        let file = dir.join(format!("{year}.pcapng"));
        write_pcapng_us(&file, &frames, first_us, 1000);
        // The oracle reads the file as written: 100 frames over 0.099 s, and when.
        let t = times(&file);
        assert_eq!(t.len(), 100, "{year}");
        assert!((t[99] - 0.099).abs() < 1e-6, "{year}: {}", t[99]);
        let epoch = tshark(&file, &["-c", "1", "-T", "fields", "-e", "frame.time_epoch"]);
        let (s, frac) = epoch.trim().split_once('.').unwrap();
        let ns = s.parse::<u128>().unwrap() * 1_000_000_000 + format!("{frac:0<9}")[..9].parse::<u128>().unwrap();
        assert_eq!(ns >= 1 << 64, year == "2554", "{year}: {epoch}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(["replay", "-c"])
            .arg(&config)
            .arg("-i")
            .arg(&file)
            .output()
            .unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{year}: {}", String::from_utf8_lossy(&out.stderr));
        let count = |what: &str| -> Option<u64> {
            summary.lines().find_map(|l| l.trim().strip_prefix(what)?.split_whitespace().next()?.parse().ok())
        };
        assert_eq!(count("transmitted"), Some(1), "{year}:\n{summary}");
        assert_eq!(count("drop rate_limited"), Some(99), "{year}:\n{summary}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `frames` (Ethernet) as a pcapng of microsecond ticks (`if_tsresol` 6), the first
/// at `first_us`, each `step_us` after the one before.
fn write_pcapng_us(path: &std::path::Path, frames: &[Vec<u8>], first_us: u64, step_us: u64) {
    use pcap_file::DataLink;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
    let mut w = PcapNgWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let options = vec![InterfaceDescriptionOption::IfTsResol(6)];
    w.write_pcapng_block(InterfaceDescriptionBlock { linktype: DataLink::ETHERNET, snaplen: 0, options }).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        // pcap-file writes a timestamp's nanoseconds as the ticks, whatever the resolution.
        let ticks = first_us + step_us * i as u64;
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: std::time::Duration::from_nanos(ticks),
            original_len: frame.len() as u32,
            data: std::borrow::Cow::Borrowed(frame),
            options: vec![],
        })
        .unwrap();
    }
}

/// UDP from `src` to `dst` (IPv4 or IPv6, by the addresses' length), ports 1000 to 2000.
fn udp_between(src: &str, dst: &str, sport: u16) -> Vec<u8> {
    let eth = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1]);
    let mut out = Vec::new();
    match (src.parse::<std::net::IpAddr>().unwrap(), dst.parse::<std::net::IpAddr>().unwrap()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            eth.ipv4(s.octets(), d.octets(), 60).udp(sport, 2000).write(&mut out, b"x").unwrap()
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            eth.ipv6(s.octets(), d.octets(), 60).udp(sport, 2000).write(&mut out, b"x").unwrap()
        }
        _ => unreachable!("one version"),
    }
    out
}

/// A bucket named by rules at two stages (a global DoS rule and the customer's firewall,
/// both keyed by destination) charges a packet once: a flood holds to `burst + rate·T`, the
/// documented bound (docs/dos.md), as with one stage. Charged at each stage, every token the
/// first refilled was spent on a packet the second then dropped: about 50 of 20,000 passed.
#[test]
fn a_bucket_two_stages_name_charges_a_packet_once() {
    let bucket = "[[dos.bucket]]\nname = \"dst\"\nkey = \"destination\"\nrate = 1000\nburst = 100\n";
    let global = "[[dos.rule]]\nname = \"g\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"dst\"\n";
    let firewall =
        "[[customer.firewall.rule]]\nname = \"f\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"dst\"\n";
    let passed = |dos: &str, customer: &str| {
        let snap = snapshot(&(victim_config(&["203.0.113.0/24"], NO_SANITY, dos) + customer));
        let mut limits = transitd::pipeline::Limits::new(&snap);
        let frame = udp_between("198.51.100.9", "203.0.113.9", 1000);
        // 10,000 a second for 2 s.
        (0..20_000u64).filter(|i| is_tx(&verdict_with(&snap, &mut limits, &frame, i * 100_000))).count()
    };
    // 100 back to back, then 1000 a second over the 1.9999 s after the first.
    let bound = 100 + 1999;
    let one_stage = passed(&format!("{bucket}{global}"), "");
    let two_stages = passed(&format!("{bucket}{global}"), firewall);
    assert!((bound - 2..=bound + 1).contains(&one_stage), "one stage: {one_stage}");
    assert_eq!(two_stages, one_stage, "two stages naming one bucket");
}

/// A customer replaced by another in its place, both with an unnamed rule (`rule-1`) on a
/// `key = "rule"` bucket: the newcomer's rule has the same number and name, but not the
/// spent tokens of the customer that had them (names are unique only per customer).
#[test]
fn a_customer_replaced_in_its_place_does_not_inherit_rule_tokens() {
    let config = |name: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\nmac = \"02:00:00:00:00:01\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n\
             [dos.sanity]\nbogons = false\n[[dos.bucket]]\nname = \"per-rule\"\nkey = \"rule\"\nrate = 1\nburst = 1\n\
             [[customer]]\nname = \"{name}\"\nprefixes = [\"203.0.113.0/24\"]\n[[customer.tunnel]]\nname = \"t\"\n\
             remote = \"198.51.100.1\"\n[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"t\"\n\
             [[customer.firewall.rule]]\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"per-rule\"\n"
        )
    };
    let (alpha, alpha_again, beta) =
        (snapshot(&config("alpha")), snapshot(&config("alpha")), snapshot(&config("beta")));
    spent_kept_then_afresh([&alpha, &alpha_again, &beta], "beta's rule has a token of its own");
}

/// One UDP frame's token spent under `first`, still spent after a reload to `kept`, and
/// back (a frame passes) after a reload to `afresh` (`why`). Rate 1, burst 1 throughout.
fn spent_kept_then_afresh([first, kept, afresh]: [&transitd::snapshot::Snapshot; 3], why: &str) {
    let frame = udp_between("198.51.100.9", "203.0.113.9", 1000);
    let mut limits = transitd::pipeline::Limits::new(first);
    assert!(is_tx(&verdict_with(first, &mut limits, &frame, 0)));
    assert_eq!(verdict_with(first, &mut limits, &frame, 1), Verdict::Drop(DropReason::RateLimited));
    limits.rebind(first, kept);
    assert_eq!(verdict_with(kept, &mut limits, &frame, 2), Verdict::Drop(DropReason::RateLimited), "kept");
    limits.rebind(kept, afresh);
    assert!(is_tx(&verdict_with(afresh, &mut limits, &frame, 3)), "{why}");
}

/// Keys that must not meet: an IPv4 destination and the IPv6 one whose top 32 bits spell it
/// (38.0.31.24 and 2600:1f18::, one number where IPv4 sits in the top bits), and two IPv6
/// flows whose addresses' 64-bit halves XOR alike (a sender could make its interface id so
/// and spend another flow's tokens).
#[test]
fn bucket_keys_do_not_meet_across_versions_or_by_folded_addresses() {
    let bucket = |key: &str| {
        format!(
            "[[dos.bucket]]\nname = \"b\"\nkey = \"{key}\"\nrate = 1\nburst = 1\n\
             [[dos.rule]]\nname = \"g\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"b\"\n"
        )
    };
    let both = |key: &str, prefixes: &[&str], first: Vec<u8>, second: Vec<u8>| {
        let snap = snapshot(&victim_config(prefixes, NO_SANITY, &bucket(key)));
        let mut limits = transitd::pipeline::Limits::new(&snap);
        let v = [verdict_with(&snap, &mut limits, &first, 0), verdict_with(&snap, &mut limits, &second, 0)];
        // The control: the same frame again has no token left.
        let again = verdict_with(&snap, &mut limits, &first, 0);
        assert_eq!(again, Verdict::Drop(DropReason::RateLimited), "{key}: the first key spent its token");
        v
    };
    let v = both(
        "destination",
        &["38.0.31.0/24", "2600:1f18::/48"],
        udp_between("198.51.100.9", "38.0.31.24", 1000),
        udp_between("2001:db8:5::9", "2600:1f18::", 1000),
    );
    assert!(v.iter().all(is_tx), "IPv4 and IPv6 destinations apart: {v:?}");
    // 2001:db8:1111:2222:aaaa:bbbb:cccc:dddd and 2a02:6b8:1:2:a0a9:b0bb:dddc:fffd: both halves
    // XOR to 8aab:b603:dddd:ffff.
    let v = both(
        "flow",
        &["2001:db8:acbe::/48"],
        udp_between("2001:db8:1111:2222:aaaa:bbbb:cccc:dddd", "2001:db8:acbe::5", 1000),
        udp_between("2a02:6b8:1:2:a0a9:b0bb:dddc:fffd", "2001:db8:acbe::5", 1000),
    );
    assert!(v.iter().all(is_tx), "two IPv6 flows apart: {v:?}");
}

/// A `flow` bucket's protocol is the transport's, behind any IPv6 extension headers (the
/// 5-tuple, docs/dos.md; what tshark's `udp` and `tcp` read): one UDP flow with and without
/// a Hop-by-Hop header is one key, and TCP and UDP between the same addresses and ports
/// behind a Destination Options header are two. Keyed by the fixed header's next header,
/// which names the first extension header, it was the other way round both times.
#[test]
fn a_flow_bucket_keys_ipv6_by_the_transport_behind_extension_headers() {
    const HOP_BY_HOP: u8 = 0;
    const DESTINATION_OPTIONS: u8 = 60;
    let config = "[[dos.bucket]]\nname = \"b\"\nkey = \"flow\"\nrate = 1\nburst = 1\n\
                  [[dos.rule]]\nname = \"g\"\nmatch = \"udp or tcp\"\naction = \"rate-limit\"\nbucket = \"b\"\n";
    let snap = snapshot(&victim_config(&["2001:db8:acbe::/48"], NO_SANITY, config));
    let (src, dst) = ("2001:db8:5::9", "2001:db8:acbe::5");
    let udp = udp_between(src, dst, 1000);
    let octets = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut tcp = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
        .ipv6(octets(src), octets(dst), 60)
        .tcp(1000, 2000, 1, 1000)
        .ack(1)
        .write(&mut tcp, b"x")
        .unwrap();
    let (udp_hop_by_hop, udp_options, tcp_options) = (
        behind_extension_header(&udp, HOP_BY_HOP),
        behind_extension_header(&udp, DESTINATION_OPTIONS),
        behind_extension_header(&tcp, DESTINATION_OPTIONS),
    );
    // Each list of frames at one instant, into a fresh bucket.
    let verdicts = |frames: &[&[u8]]| {
        let mut limits = transitd::pipeline::Limits::new(&snap);
        frames.iter().map(|f| verdict_with(&snap, &mut limits, f, 0)).collect::<Vec<_>>()
    };
    let v = verdicts(&[udp.as_slice(), udp_hop_by_hop.as_slice()]);
    assert!(is_tx(&v[0]), "{v:?}");
    assert_eq!(v[1], Verdict::Drop(DropReason::RateLimited), "one UDP flow behind a Hop-by-Hop header");
    let v = verdicts(&[tcp_options.as_slice(), udp_options.as_slice(), tcp_options.as_slice()]);
    assert!(is_tx(&v[0]) && is_tx(&v[1]), "TCP and UDP behind Destination Options apart: {v:?}");
    assert_eq!(v[2], Verdict::Drop(DropReason::RateLimited), "the control: the TCP flow spent its token");
}

/// `frame` (Ethernet, then IPv6 with no extension header) with an empty 8-byte extension
/// header of type `header` (one PadN option, RFC 8200 §4.2) between the fixed header and
/// the transport, which it leaves as it was (its checksum covers neither).
fn behind_extension_header(frame: &[u8], header: u8) -> Vec<u8> {
    let (fixed, transport) = frame.split_at(14 + 40);
    let mut out = fixed.to_vec();
    let next = std::mem::replace(&mut out[14 + 6], header);
    let payload_len = u16::from_be_bytes([out[14 + 4], out[14 + 5]]) + 8;
    out[14 + 4..14 + 6].copy_from_slice(&payload_len.to_be_bytes());
    out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    out.extend_from_slice(transport);
    out
}

/// The per-worker bound on bucket keys counts tables as the limiter allocates them (a power
/// of two): 255 buckets of 65,537 keys are 255 tables of 131,072 (510 MiB a worker).
#[test]
fn the_bucket_key_bound_counts_tables_as_allocated() {
    let buckets: String =
        (0..255).map(|i| format!("[[dos.bucket]]\nname = \"b{i}\"\nkey = \"source\"\nrate = 1\n")).collect();
    let text = victim_config(&["203.0.113.0/24"], NO_SANITY, &format!("[dos]\ntable_size = 65537\n{buckets}"));
    let loaded = transitd::config::parse("test.toml", &text).unwrap();
    let errors = transitd::snapshot::Snapshot::build(&loaded).unwrap_err().to_string();
    assert!(
        errors.contains("table_size 65537 (a table of 131072 keys) for 255 buckets keeps more than 16777216"),
        "{errors}"
    );
    snapshot(&victim_config(&["203.0.113.0/24"], NO_SANITY, &format!("[dos]\ntable_size = 65536\n{buckets}")));
}

/// A bucket a monitor-mode rate limit charges has a second table per worker, its preview:
/// the bound counts it. Three tables of 4,194,304 keys fit; five do not.
#[test]
fn the_bucket_key_bound_counts_preview_tables() {
    let buckets: String =
        (0..3).map(|i| format!("[[dos.bucket]]\nname = \"b{i}\"\nkey = \"source\"\nrate = 1\n")).collect();
    let rule = |bucket: &str, mode: &str| {
        format!(
            "[[dos.rule]]\nname = \"r-{bucket}\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"{bucket}\"\n\
             mode = \"{mode}\"\n"
        )
    };
    let config = |rules: &str| {
        victim_config(&["203.0.113.0/24"], NO_SANITY, &format!("[dos]\ntable_size = 4194304\n{buckets}{rules}"))
    };
    snapshot(&config(&(rule("b0", "enforce") + &rule("b1", "enforce"))));
    // Two rules in monitor mode over one bucket: one preview table.
    let twice = rule("b0", "monitor").replace("r-b0", "r-b0-again");
    let one = snapshot(&config(&(rule("b0", "monitor") + &twice + &rule("b1", "enforce"))));
    assert_eq!(one.dos.previewed, [0]);
    let loaded =
        transitd::config::parse("test.toml", &config(&(rule("b0", "monitor") + &rule("b2", "monitor")))).unwrap();
    let errors = transitd::snapshot::Snapshot::build(&loaded).unwrap_err().to_string();
    assert!(
        errors.contains(
            "table_size 4194304 (a table of 4194304 keys) for 3 buckets and the 2 that monitor-mode rules preview \
             keeps more than 16777216 keys per worker"
        ),
        "{errors}"
    );
}

/// A reload keeps each bucket's state by name while the bucket is the same: one added in
/// front of it (all indices move) leaves its spent tokens spent; a new rate starts it afresh.
/// Any change once restarted every bucket, each key with a full burst mid-attack.
#[test]
fn a_reload_keeps_the_buckets_it_did_not_change() {
    let [before, added, faster] = bucket_reloads("enforce");
    spent_kept_then_afresh([&before, &added, &faster], "another rate: afresh");
}

/// A UDP rate limit in `mode` on bucket `dst` (1 a second), then reloaded with a bucket
/// added ahead of it (`dst` the same), then with `dst` at another rate.
fn bucket_reloads(mode: &str) -> [transitd::snapshot::Snapshot; 3] {
    let config = |buckets: &str| {
        let rule = format!(
            "[[dos.rule]]\nname = \"udp\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"dst\"\nmode = \"{mode}\"\n"
        );
        snapshot(&victim_config(&["203.0.113.0/24"], NO_SANITY, &format!("{buckets}{rule}")))
    };
    let bucket =
        |name: &str, rate: u32| format!("[[dos.bucket]]\nname = \"{name}\"\nkey = \"destination\"\nrate = {rate}\n");
    [
        config(&bucket("dst", 1)),
        config(&(bucket("other", 5) + &bucket("dst", 1))),
        config(&(bucket("other", 5) + &bucket("dst", 2))),
    ]
}

/// A monitor-mode rule's preview table follows its bucket across reloads: kept with a bucket
/// added ahead of it, afresh with a new rate. The enforced tokens are never touched: every
/// frame is sent.
#[test]
fn a_reload_keeps_the_previews_of_the_buckets_it_did_not_change() {
    let [before, added, faster] = bucket_reloads("monitor");
    let frame = udp_between("198.51.100.9", "203.0.113.9", 1000);
    let mut limits = transitd::pipeline::Limits::new(&before);
    let would_limit = |snap: &transitd::snapshot::Snapshot, limits: &mut transitd::pipeline::Limits, t: u64| {
        let outcome = outcome_with(snap, limits, &frame, t);
        assert!(is_tx(&outcome.verdict), "{outcome:?}");
        outcome.would_limit.has(transitd::pipeline::WouldLimit::DOS)
    };
    assert!(!would_limit(&before, &mut limits, 0), "the first frame has the burst's token");
    assert!(would_limit(&before, &mut limits, 1));
    limits.rebind(&before, &added);
    assert!(would_limit(&added, &mut limits, 2), "kept");
    limits.rebind(&added, &faster);
    assert!(!would_limit(&faster, &mut limits, 3), "another rate: afresh");
}

/// A monitor-mode rule added to a `key = "rule"` bucket after its enforced rule leaves the
/// enforced tokens spent (it keys the preview table, not the bucket's): previewing a
/// rule-keyed limit mid-attack restarted the bucket with a full burst. One added before it
/// renumbers the enforced rule, whose tokens start afresh.
#[test]
fn a_monitor_mode_rule_added_to_a_rule_keyed_bucket_keeps_its_tokens() {
    let (udp, watch) = (per_rule("udp", "enforce"), per_rule("watch", "monitor"));
    let before = rule_keyed(&[&udp]);
    let watched = rule_keyed(&[&udp, &watch]);
    let renumbered = rule_keyed(&[&watch, &udp]);
    spent_kept_then_afresh([&before, &watched, &renumbered], "the enforced rule renumbered: afresh");
}

/// A UDP rate limit `name` in `mode` on [`rule_keyed`]'s bucket.
fn per_rule(name: &str, mode: &str) -> String {
    format!(
        "[[dos.rule]]\nname = \"{name}\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"per-rule\"\n\
         mode = \"{mode}\"\n"
    )
}

/// `rules` ([`per_rule`]) on a `key = "rule"` bucket of rate 1, burst 1.
fn rule_keyed(rules: &[&String]) -> transitd::snapshot::Snapshot {
    let bucket = "[[dos.bucket]]\nname = \"per-rule\"\nkey = \"rule\"\nrate = 1\nburst = 1\n";
    let rules: String = rules.iter().map(|r| r.as_str()).collect();
    snapshot(&victim_config(&["203.0.113.0/24"], NO_SANITY, &format!("{bucket}{rules}")))
}

/// The preview side of the same: an enforced rule added to a `key = "rule"` bucket leaves a
/// monitor-mode rule's preview spent (enforced rules key the bucket's own table); a
/// monitor-mode rule added before it renumbers it, and its preview starts afresh (kept, the
/// new first rule would have spent the old one's tokens).
#[test]
fn an_enforced_rule_added_to_a_rule_keyed_bucket_keeps_its_previews() {
    let (watch, first, udp) = (per_rule("watch", "monitor"), per_rule("first", "monitor"), per_rule("udp", "enforce"));
    let before = rule_keyed(&[&watch]);
    let enforced = rule_keyed(&[&watch, &udp]);
    let renumbered = rule_keyed(&[&first, &watch, &udp]);
    let frame = udp_between("198.51.100.9", "203.0.113.9", 1000);
    let mut limits = transitd::pipeline::Limits::new(&before);
    let would_limit = |snap: &transitd::snapshot::Snapshot, limits: &mut transitd::pipeline::Limits, t: u64| {
        outcome_with(snap, limits, &frame, t).would_limit.has(transitd::pipeline::WouldLimit::DOS)
    };
    assert!(!would_limit(&before, &mut limits, 0), "the first frame has the burst's token");
    assert!(would_limit(&before, &mut limits, 1));
    limits.rebind(&before, &enforced);
    assert!(would_limit(&enforced, &mut limits, 2), "an enforced rule added: kept");
    limits.rebind(&enforced, &renumbered);
    assert!(!would_limit(&renumbered, &mut limits, 3), "the monitor-mode rules renumbered: afresh");
}

/// `transitd match --json --config` of `config` on `capture`: the dry run's report.
fn match_json(config: &str, capture: &std::path::Path, tag: &str) -> serde_json::Value {
    let dir = scratch_dir(&format!("dos-{tag}"));
    let file = dir.join("c.toml");
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["match", "--json", "--config"])
        .arg(&file)
        .arg("-r")
        .arg(capture)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A monitor-mode rate limit changes no verdict, and counts as "would limit" exactly the
/// frames the same rule enforced drops as `rate_limited`: the enforced rule is the oracle,
/// by count from the worker and frame by frame from `match --config` (which runs the
/// frame-at-a-time pipeline). At every stage a rule can stand: the global DoS rules, the
/// customer's, its firewall and, for what comes out of its tunnels, its egress rules. Before,
/// a monitor-mode rate limit counted every packet it matched, and nobody could size a limit
/// before enforcing it.
#[test]
fn a_monitor_mode_rate_limit_counts_what_enforcing_it_would_drop() {
    let bucket = |key: &str, rate: u32, burst: u32| {
        format!("[[dos.bucket]]\nname = \"b\"\nkey = \"{key}\"\nrate = {rate}\nburst = {burst}\n")
    };
    let rule = |table: &str, filter: &str, mode: &str| {
        format!(
            "[[{table}]]\nname = \"preview\"\nmatch = \"{filter}\"\naction = \"rate-limit\"\nbucket = \"b\"\nmode = \"{mode}\"\n"
        )
    };
    let syn = "tcp.flags.syn == 1 and tcp.flags.ack == 0";
    let flood = pcap("real/suricata-syn-flood.pcap");
    let prefixes = ["198.51.100.0/24"];
    let global = |mode: Option<&str>| {
        let rules = mode.map(|m| rule("dos.rule", syn, m)).unwrap_or_default();
        victim_config(&prefixes, NO_SANITY, &format!("{}{rules}", bucket("destination", 100, 10)))
    };
    // The customer's own lists come after its routes: the configuration's last table.
    let own = |list: &'static str| {
        move |mode: Option<&str>| {
            let rules = mode.map(|m| rule(&format!("customer.{list}.rule"), syn, m)).unwrap_or_default();
            let section =
                if list == "dos" { String::new() } else { format!("[customer.{list}]\ndefault = \"accept\"\n") };
            victim_config(&prefixes, NO_SANITY, &bucket("destination", 100, 10)) + &section + &rules
        }
    };
    // What comes out of acme's tunnel in the generated tunnel-edge capture, one bucket for it.
    let edge = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    let egress = |mode: Option<&str>| {
        let rules = mode.map(|m| rule("customer.egress.rule", "ip or ipv6", m)).unwrap_or_default();
        let text = edge.replace(
            "[[customer]]\nname = \"acme\"",
            &format!("{}[[customer]]\nname = \"acme\"", bucket("rule", 1, 2)),
        );
        text.replace(
            "[customer.egress]\ndefault = \"accept\"\n",
            &format!("[customer.egress]\ndefault = \"accept\"\n{rules}"),
        )
    };
    // Each stage's configurations: without the rule, with it enforced, in monitor mode.
    let modes = |config: &dyn Fn(Option<&str>) -> String| [None, Some("enforce"), Some("monitor")].map(config);
    let stages = [
        ("global", modes(&global), flood.clone(), "[dos]/preview", 150),
        ("customer-dos", modes(&own("dos")), flood.clone(), "victim/dos/preview", 150),
        ("firewall", modes(&own("firewall")), flood, "victim/preview", 150),
        ("egress", modes(&egress), pcap("generated/tunnel-edge.pcap"), "acme/egress/preview", 2),
    ];
    for (stage, [without, enforce, monitor], capture, name, least) in stages {
        let (free, _) = verdicts_timed(&without, &capture);
        let (enforced, _) = verdicts_timed(&enforce, &capture);
        let (monitored, stats) = verdicts_timed(&monitor, &capture);
        let limited: BTreeSet<u64> = (1..)
            .zip(&enforced)
            .filter(|(_, v)| **v == Verdict::Drop(DropReason::RateLimited))
            .map(|(n, _)| n)
            .collect();
        assert!(limited.len() >= least, "{stage}: enforced, the rule limits {} frames", limited.len());
        assert_eq!(monitored, free, "{stage}: a monitor-mode rule changes no verdict");
        let counted: u64 = stats.dos_would_limit.iter().chain(&stats.rule_would_limit).sum();
        assert_eq!(counted, limited.len() as u64, "{stage}: would limit, counted by the worker");

        let report = match_json(&monitor, &capture, stage);
        let frames = report["frames"].as_array().unwrap();
        let previewed: BTreeSet<u64> = frames
            .iter()
            .filter(|f| f["would_limit"].as_array().is_some_and(|w| w.iter().any(|r| r == name)))
            .map(|f| f["frame"].as_u64().unwrap())
            .collect();
        assert_eq!(previewed, limited, "{stage}: the frames `match` says {name} would limit");
        assert_eq!(report["would_limit"][name], limited.len() as u64, "{stage}: {}", report["would_limit"]);

        // Replay's report and its drop capture (monitor hits are captured as sent) say it too.
        let (report, comments) = replay_capturing(&monitor, &capture, stage);
        let line = report.lines().find(|l| l.trim_start().starts_with(&format!("{name} "))).unwrap_or("");
        assert!(line.ends_with(&format!("(monitor: {} would be rate-limited)", limited.len())), "{stage}: {report}");
        let said = comments.iter().filter(|c| c.contains(&format!("{name} (would rate-limit)"))).count();
        assert_eq!(said, limited.len(), "{stage}: drop capture comments");
    }
}

/// `transitd replay` of `config` on `capture`, capturing drops and monitor hits (every one):
/// its report, and each captured frame's comment (tshark).
fn replay_capturing(config: &str, capture: &std::path::Path, tag: &str) -> (String, Vec<String>) {
    let dir = scratch_dir(&format!("dos-replay-{tag}"));
    let (file, drops) = (dir.join("c.toml"), dir.join("drops.pcapng"));
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config"])
        .arg(&file)
        .arg("--in")
        .arg(capture)
        .arg("--capture-drops")
        .arg(&drops)
        .args(["--capture-rate", "1000000"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    let comments = tshark(&drops, &["-T", "fields", "-e", "frame.comment"]).lines().map(str::to_string).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (report, comments)
}

/// A later fragment of IPv4-in-IP below 24 bytes, or of IPv6-in-IP below 40, lands on the
/// inner header's addresses (bytes 12-19; 8-39), which rules read: dropped as overlapping,
/// as a first fragment that short is tiny. The same pieces further in go through. tshark
/// picks them.
#[test]
fn later_fragments_of_ip_in_ip_below_the_inner_header_are_dropped() {
    let file = std::env::temp_dir().join(format!("transitd-ipip-frags-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "piece = lambda proto, off: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.9', dst='203.0.113.5', proto=proto, frag=off, id=7)/Raw(b'\\x01' * 16)\n\
         frames = [piece(4, 1), piece(4, 2), piece(4, 3), piece(41, 1), piece(41, 4), piece(41, 5), piece(17, 1)]",
    );
    let dropped = "(ip.proto == 4 and ip.frag_offset in {1..2}) or (ip.proto == 41 and ip.frag_offset in {1..4})";
    assert_eq!(tshark_frames(&file, dropped, &[]), [1, 2, 4, 5], "the oracle's selection");
    let (v, _) = verdicts_timed(&victim_config(&["0.0.0.0/0"], "bogons = false\ncustomer_sources = false", ""), &file);
    let overlapping = frames_dropped_as(&v, DropReason::OverlappingFragment);
    assert_eq!(overlapping, [1, 2, 4, 5], "{v:?}");
    let _ = std::fs::remove_file(file);
}

/// The clock a replay gives the pipeline never runs back: a capture merged from several
/// (or reordered) has frames stamped earlier than the one before, and a rate limit that
/// took such a frame at its own time counted it as borrowed from the future, refusing what
/// its burst allows. Two packets under a burst of two pass in either order, in `replay`
/// (counted where they arrive: tshark reads the GRE written) and in `match --config`.
#[test]
fn frames_stamped_earlier_than_the_one_before_spend_the_burst_as_if_in_order() {
    let dir = scratch_dir("backwards");
    let (capture, config, out) = (dir.join("in.pcap"), dir.join("edge.toml"), dir.join("out.pcap"));
    // Ten seconds back: past the bucket's tolerance (a burst of 2 at 1/s: 1 s).
    scapy_pcap(
        &capture,
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.18.0.%d' % (10 + i), dst='203.0.113.9')/UDP(dport=7) \
         for i in range(2)]\nframes[0].time = 1700000000\nframes[1].time = 1699999990",
    );
    let bucket = "[[dos.bucket]]\nname = \"b\"\nkey = \"destination\"\nrate = 1\nburst = 2\n\
                  [[dos.rule]]\nname = \"echo\"\nmatch = \"udp.dstport == 7\"\naction = \"rate-limit\"\nbucket = \"b\"\n";
    std::fs::write(&config, victim_config(&["203.0.113.0/24"], NO_SANITY, bucket)).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_transitd")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "replay".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--in".as_ref(),
        capture.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(tshark(&out, &["-Y", "gre and udp.dstport == 7"]).lines().count(), 2, "both are forwarded");
    let dry = run(&["match".as_ref(), "-r".as_ref(), capture.as_os_str(), "--config".as_ref(), config.as_os_str()]);
    assert!(!dry.contains("rate_limited"), "{dry}");
    assert_eq!(dry.matches("tx encapsulated").count(), 2, "{dry}");
    let _ = std::fs::remove_dir_all(dir);
}
