//! `transitd match -Y` against tshark: over more than a hundred expressions and a merge of
//! real captures, transitd selects exactly the frames tshark selects, on every frame that
//! carries exactly one IP header and is neither a fragment nor malformed. On the other
//! frames transitd deliberately differs; the tests at the end name each difference and check
//! the documented behaviour.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use transitd::dryrun::match_filter;

/// Captures merged into the test file: plain, VLAN and QinQ IPv4/IPv6 TCP/UDP/ICMP/ICMPv6,
/// extension headers, raw-IP link types, pcapng, GRE, a SYN flood, a port scan, MPLS label
/// stacks (two public captures and a generated one), Ethernet pseudowires and 802.1ad
/// service tags.
const FILES: &[&str] = &[
    "real/zeek-communityid-tcp.pcap",
    "real/zeek-communityid-udp.pcap",
    "real/zeek-communityid-icmp.pcap",
    "real/zeek-communityid-icmp6.pcap",
    "real/zeek-communityid-ipv6.pcap",
    "real/zeek-http-vlan-0.pcap",
    "real/zeek-http-qinq-0.pcap",
    "real/zeek-vlan-pcp-dei.pcapng",
    "real/zeek-icmp_dot1q.pcap",
    "real/zeek-tcp-fast-open.pcap",
    "real/zeek-tcp-payload-syn.pcap",
    "real/zeek-chksums-ip6-udp-good-chksum.pcap",
    "real/tcpdump-802.1ad_QinQ.pcap",
    "real/pcapplusplus-VlanPackets.pcap",
    "real/tcpdump-ipv6-routing-header.pcap",
    "real/tcpdump-icmpv6.pcap",
    "real/tcpdump-ipv6_no_next_header.pcap",
    "real/tcpdump-LINKTYPE_RAW_ipv4.pcap",
    "real/tcpdump-LINKTYPE_IPV6.pcap",
    "real/tcpdump-pptp.pcap",
    "real/ndpi-tcp_scan.pcapng",
    "real/suricata-syn-flood.pcap",
    "real/glb-1k_pkts.pcap",
    "real/pcapplusplus-GrePackets.cap",
    "real/pcapplusplus-raw_ip.pcap",
    "real/zeek-ipv4-fragmented-syn.pcap",
    "real/zeek-icmp-destunreach-udp.pcap",
    "real/zeek-tunnels-4in4.pcap",
    "real/zeek-mixed-vlan-mpls.pcap",
    "real/zeek-mpls-in-vlan.pcap",
    "generated/mpls.pcap",
    "real/packetnet-802.1ad_vlan_ipv4.pcap",
    "generated/link-headers.pcap",
];

/// Frames that carry exactly one IP header and are neither fragments nor malformed.
const COMPARABLE: &str = "((count(ip.version) == 1 and not ipv6) or (count(ipv6.version) == 1 and not ip)) \
    and not (ip.flags.mf == 1 or ip.frag_offset > 0 or ipv6.fraghdr) and not _ws.malformed";

/// The merged capture, in a file of the calling test's own (`name`).
fn merged(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("transitd-match-oracle-{name}-{}.pcapng", std::process::id()));
    let status = Command::new("mergecap")
        .args(["-a", "-F", "pcapng", "-w"])
        .arg(&out)
        .args(FILES.iter().map(|f| pcap(f)))
        .status()
        .expect("mergecap (from tshark's wireshark-common) builds the test capture");
    assert!(status.success());
    out
}

/// The frames the scapy `script` makes ([`scapy_pcap`]), in a capture of the calling test's
/// own (`name`).
fn scapy_capture(name: &str, script: &str) -> PathBuf {
    let file = std::env::temp_dir().join(format!("transitd-match-{name}-{}.pcap", std::process::id()));
    scapy_pcap(&file, script);
    file
}

/// tshark's selection, with TCP sequence numbers as they are on the wire (`tcp.seq`).
fn theirs(file: &Path, expr: &str) -> BTreeSet<u64> {
    tshark_frames(file, expr, &["-o", TCP_SEQ_ON_THE_WIRE.join(":").as_str()]).into_iter().collect()
}

const TCP_SEQ_ON_THE_WIRE: [&str; 2] = ["tcp.relative_sequence_numbers", "FALSE"];

/// scapy, put before the scripts that cut frames as a snap length does: `snap(p, n)` is the
/// Ethernet frame `p` cut to its first `n` bytes, dissected from them (which must build the
/// same bytes again), keeping `p`'s length on the wire.
const SNAP_PY: &str =
    "def snap(p, n): q = Ether(bytes(p)[:n]); assert bytes(q) == bytes(p)[:n]; q.wirelen = len(p); return q\n";

/// The expressions of `exprs` whose frames of `file` transitd and tshark select differently,
/// each with both selections.
fn differences(file: &Path, exprs: &[&str]) -> Vec<String> {
    exprs
        .iter()
        .filter_map(|expr| {
            let (ours, theirs) = (transitd_frames(file, expr), theirs(file, expr));
            (ours != theirs).then(|| format!("{expr}: transitd {ours:?}, tshark {theirs:?}"))
        })
        .collect()
}

/// tshark's answers for a whole list of expressions on one capture. Most come from one
/// `sharkd` (the same dissectors and filter engine, a few milliseconds an expression instead
/// of tshark's half-second start-up). The length of a protocol (`len(tcp)`) is not the same
/// in both: sharkd dissects in two passes, as Wireshark's window does, and then gives TCP's
/// item its header's length where one-pass `tshark -Y` gives it the segment's; transitd
/// decides each frame in one pass, so those expressions ask tshark itself.
struct Wireshark<'a> {
    file: &'a Path,
    sharkd: Sharkd,
}

impl<'a> Wireshark<'a> {
    fn open(file: &'a Path) -> Self {
        Wireshark { file, sharkd: Sharkd::open(file, &[(TCP_SEQ_ON_THE_WIRE[0], TCP_SEQ_ON_THE_WIRE[1])]) }
    }

    fn frames(&mut self, expr: &str) -> BTreeSet<u64> {
        if expr.contains("len(") {
            return theirs(self.file, expr);
        }
        self.sharkd.frames(expr).unwrap_or_else(|e| panic!("sharkd rejects `{expr}`: {e}"))
    }
}

fn expressions() -> Vec<String> {
    std::fs::read_to_string(root().join("dataplane/tests/data/match_expressions.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn over_a_hundred_expressions_select_what_tshark_selects() {
    let file = merged("expressions");
    let mut wireshark = Wireshark::open(&file);
    let domain = wireshark.frames(COMPARABLE);
    // `eth.*` is the frame's own Ethernet header; tshark's also holds a pseudowire's.
    let one_ethernet: BTreeSet<u64> = domain.intersection(&wireshark.frames("count(eth.type) <= 1")).copied().collect();
    assert!(one_ethernet.len() < domain.len());
    let total = frame_count(&file) as usize;
    assert!(domain.len() > 1000 && domain.len() < total, "{} of {total} frames comparable", domain.len());
    let exprs = expressions();
    assert!(exprs.len() >= 100);
    let results: Vec<(String, BTreeSet<u64>, BTreeSet<u64>)> =
        exprs.iter().map(|e| (e.clone(), transitd_frames(&file, e), wireshark.frames(e))).collect();
    let mut selective = 0;
    for (expr, ours, theirs) in &results {
        let domain = if expr.contains("eth") { &one_ethernet } else { &domain };
        let ours: BTreeSet<u64> = ours.intersection(domain).copied().collect();
        let theirs: BTreeSet<u64> = theirs.intersection(domain).copied().collect();
        assert_eq!(
            ours.symmetric_difference(&theirs).take(10).collect::<Vec<_>>(),
            Vec::<&u64>::new(),
            "`{expr}`: transitd {} frames, tshark {} (first differences shown)",
            ours.len(),
            theirs.len()
        );
        // An expression that selects all or nothing tests little.
        if !ours.is_empty() && ours.len() < domain.len() {
            selective += 1;
        }
    }
    assert!(selective * 10 >= results.len() * 8, "only {selective} of {} expressions split the frames", results.len());
    let _ = std::fs::remove_file(file);
}

#[test]
fn transitd_alias_for_the_reset_flag_means_what_wiresharks_name_means() {
    // tshark rejects `tcp.flags.rst`; transitd accepts it as its own alias of `tcp.flags.reset`.
    let file = pcap("real/ndpi-tcp_scan.pcapng");
    assert!(!theirs(&file, "tcp.flags.reset == 1").is_empty());
    assert_eq!(transitd_frames(&file, "tcp.flags.rst == 1"), theirs(&file, "tcp.flags.reset == 1"));
}

#[test]
fn difference_tunnels_match_only_the_outer_header() {
    // tshark also matches the inner header of IP-in-IP; transitd matches the packet's own
    // (outermost) header only.
    let file = pcap("real/zeek-tunnels-4in4.pcap");
    let both = tshark(&file, &["-c", "1", "-T", "fields", "-e", "ip.src"]);
    let (outer, inner) = both.trim().split_once(',').expect("two IPv4 headers");
    assert_ne!(outer, inner);
    let first_frame = BTreeSet::from([1]);
    assert!(theirs(&file, &format!("ip.src == {inner}")).contains(&1));
    assert!(!transitd_frames(&file, &format!("ip.src == {inner}")).contains(&1));
    assert!(transitd_frames(&file, &format!("ip.src == {outer}")).is_superset(&first_frame));
}

#[test]
fn difference_icmp_errors_never_match_the_quoted_header() {
    // An ICMP destination-unreachable quotes the UDP datagram that caused it: tshark's
    // `udp.port` sees the quoted ports, transitd's never does (the packet is ICMP).
    let file = pcap("real/zeek-icmp-destunreach-udp.pcap");
    let quoted = theirs(&file, "udp");
    let errors = theirs(&file, "icmp.type == 3");
    assert!(!errors.is_empty() && errors.is_subset(&quoted));
    assert!(transitd_frames(&file, "udp").is_disjoint(&errors));
    assert_eq!(transitd_frames(&file, "icmp.type == 3"), errors);
}

#[test]
fn difference_first_fragments_carry_ports_later_ones_none() {
    // With reassembly off, tshark dissects the transport header of a first fragment as far
    // as its bytes go, and nothing of later fragments; transitd fills what the first
    // fragment's bytes hold and nothing more (the fields of a header cut short:
    // `a_first_fragment_cut_in_the_tcp_header_has_the_fields_tshark_reads`).
    let file = pcap("real/zeek-ipv4-fragmented-syn.pcap");
    let first = theirs(&file, "ip.flags.mf == 1 and ip.frag_offset == 0");
    let later = theirs(&file, "ip.frag_offset > 0");
    assert!(!first.is_empty() && !later.is_empty());
    let ours: BTreeSet<u64> = transitd_frames(&file, "tcp.srcport").intersection(&first).copied().collect();
    let tsharks: BTreeSet<u64> = theirs(&file, "tcp.srcport").intersection(&first).copied().collect();
    assert_eq!(ours, tsharks, "the same first fragments, not only as many");
    assert!(transitd_frames(&file, "tcp").is_disjoint(&later));
    assert!(theirs(&file, "tcp.srcport").is_disjoint(&later));
}

#[test]
fn difference_a_pseudowires_ethernet_header_is_payload() {
    // tshark's `eth.src` also holds the Ethernet header inside an MPLS pseudowire; transitd's
    // is the frame's own only, as for any tunnel. The IP inside is read by both.
    let file = pcap("generated/mpls.pcap");
    let pseudowires = theirs(&file, "pwethcw or pweth"); // with a control word, without
    let inner = theirs(&file, "eth.src == 00:50:56:aa:00:01");
    assert!(!pseudowires.is_empty() && !inner.is_empty() && inner.is_subset(&pseudowires));
    assert!(transitd_frames(&file, "eth.src == 00:50:56:aa:00:01").is_empty());
    assert_eq!(transitd_frames(&file, "eth.src == 00:1b:21:3a:00:01"), theirs(&file, "eth.src == 00:1b:21:3a:00:01"));
    assert_eq!(transitd_frames(&file, "ip or ipv6").intersection(&pseudowires).count(), pseudowires.len());
}

/// IP behind a link layer the data plane does not read (802.2 LLC, with SNAP or SAP 6; a
/// PPPoE session; an 802.1ah I-tag, alone or behind an 802.1ad tag) is no IP to transitd:
/// the frame passes to the host as `not_ip`, whose stack routes none of it. tshark dissects
/// the IP packet, and its `ip`, `tcp` and `udp` select the frame. The link fields in front of
/// it (`eth.*`, `vlan.id`, `ieee8021ad.id`) and `frame` are read by both.
#[test]
fn difference_ip_behind_llc_pppoe_or_an_802_1ah_tag_is_not_read() {
    let script = r#"
h = '02:00:00:00:00:aa'
eth = lambda **o: Ether(src=h, dst='02:00:00:00:00:01', **o)
dot3 = lambda: Dot3(src=h, dst='02:00:00:00:00:01')
v4 = IP(src='198.51.100.1', dst='203.0.113.2')/TCP(sport=1234, dport=80, flags='S')
v6 = IPv6(src='2001:db8::1', dst='2001:db8::2')/UDP(sport=40000, dport=9)/Raw(b'hello')
llc_snap = lambda code, ip: LLC(dsap=0xaa, ssap=0xaa, ctrl=3)/SNAP(OUI=0, code=code)/ip
session = lambda proto, ip: PPPoE(sessionid=1)/PPP(proto=proto)/ip
itag = lambda ip: Raw(bytes([0, 0, 1, 0]) + bytes(Ether(src='02:00:00:00:00:0a', dst='02:00:00:00:00:0b')/ip))
# 1-9: IP behind LLC/SNAP, LLC SAP 6, LLC/SNAP behind a VLAN tag, a PPPoE session (alone
# and behind a VLAN tag), 802.1ah (alone and behind an 802.1ad tag); 10: PPPoE discovery;
# 11-12: IPv4 and IPv6 behind their own EtherTypes.
frames = [dot3()/llc_snap(0x0800, v4), dot3()/llc_snap(0x86dd, v6), dot3()/LLC(dsap=6, ssap=6, ctrl=3)/v4]
frames += [eth(type=0x8100)/Dot1Q(vlan=5, type=len(llc_snap(0x0800, v4)))/llc_snap(0x0800, v4)]
frames += [eth(type=0x8864)/session(0x21, v4), eth(type=0x8864)/session(0x57, v6)]
frames += [eth()/Dot1Q(vlan=10, type=0x8864)/session(0x21, v4)]
frames += [eth(type=0x88e7)/itag(v4), eth(type=0x88a8)/Dot1Q(vlan=77, type=0x88e7)/itag(v4)]
frames += [eth(type=0x8863)/PPPoED(code=9)/Raw(b'\x01\x01\x00\x00'), eth()/v4, eth()/v6]
"#;
    let file = scapy_capture("link-layers", script);
    let behind: BTreeSet<u64> = (1..=9).collect();
    let own = BTreeSet::from([11, 12]);
    assert_eq!(theirs(&file, "llc or pppoes or ieee8021ah.isid"), behind, "the link layers, as tshark names them");
    assert_eq!(theirs(&file, "ip or ipv6"), &behind | &own);
    assert_eq!(theirs(&file, "tcp or udp"), &behind | &own);
    assert_eq!(transitd_frames(&file, "ip or ipv6"), own);
    assert_eq!(transitd_frames(&file, "tcp or udp"), own);
    let wrong = differences(
        &file,
        &["eth.type", "eth.len", "vlan.id == 5", "vlan.id == 10", "ieee8021ad.id == 77", "frame contains \"hello\""],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The Ethernet header's own fields are read on every frame, IP or not: 802.3 lengths
/// (`eth.len`, no `eth.type`), type values that are neither, VLAN and 802.1ad tags over ARP,
/// STP and LLC.
#[test]
fn link_fields_select_what_tshark_selects_on_every_frame() {
    let files = ["generated/link-headers.pcap", "real/tcpdump-802.1ad_QinQ.pcap", "real/pcapplusplus-VlanPackets.pcap"];
    let exprs = [
        "eth",
        "eth.type",
        "eth.len",
        "eth.len == 46",
        "eth.len > 100",
        "eth.type == 0",
        "eth.type < 0x0600",
        "not eth.type and not eth.len",
        "eth.type == 0x0806 or eth.type == 0x88a8",
        "vlan and eth.len",
        "vlan.id == 30 and not ip and not ipv6",
        "ieee8021ad.id == 200",
        "vlan.id === 2001",
    ];
    let mut selective = 0;
    for file in files.map(pcap) {
        for expr in exprs {
            let (ours, theirs) = (transitd_frames(&file, expr), theirs(&file, expr));
            assert_eq!(ours, theirs, "`{expr}` on {}", file.display());
            selective += usize::from(!theirs.is_empty());
        }
    }
    assert!(selective >= 20, "only {selective} of the pairs select a frame");
}

/// `matches` selects what tshark's PCRE2 selects, pattern by pattern, over datagrams made
/// for it (line ends, vertical and horizontal white space, NEL, escapes, metacharacters as
/// text); the patterns transitd refuses (backtracking-only constructs) tshark accepts.
#[test]
fn patterns_match_what_pcre2_matches() {
    let file = pcap("generated/payload-text.pcap");
    let mut sharkd = Sharkd::open(&file, &[]);
    let text = std::fs::read_to_string(root().join("dataplane/tests/data/match_patterns.txt")).unwrap();
    let (mut compared, mut selective) = (0, 0);
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (refused, pattern) = match line.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, line),
        };
        // Quoted into a display filter, whose strings take `\\` and `\"` escapes.
        let expr = format!("udp.payload matches \"{}\"", pattern.replace('\\', "\\\\").replace('"', "\\\""));
        let theirs = sharkd.frames(&expr).unwrap_or_else(|e| panic!("tshark refuses `{pattern}`: {e}"));
        match classifier::parse(&expr) {
            Err(e) => assert!(refused, "transitd refuses `{pattern}`: {}", e.render(&expr)),
            Ok(_) => {
                assert!(!refused, "transitd accepts `{pattern}`, listed as refused");
                assert_eq!(transitd_frames(&file, &expr), theirs, "`{pattern}`");
                compared += 1;
                selective += usize::from(!theirs.is_empty());
            }
        }
    }
    assert!(compared >= 90 && selective * 10 >= compared * 8, "{selective} of {compared} patterns select a frame");
}

/// PCRE2 backtracks, and gives up after its match limit (10,000,000 steps), which tshark then
/// counts as no match: `(a+)+$` over forty `a`s and `!a` would take PCRE2 some 2^40 steps
/// before it tried the last `a`. transitd's engine is linear and finds the match that `a$`
/// finds in both.
#[test]
fn difference_tshark_counts_a_match_pcre2_gave_up_on_as_none() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.0.0.1', dst='10.0.0.2')
frames = [e/UDP(sport=1234, dport=9)/Raw(b'a' * 40 + b'!a'), e/UDP(sport=1235, dport=9)/Raw(b'a' * 40 + b'!'),
          e/UDP(sport=1236, dport=9)/Raw(b'a' * 8)]
"#;
    let file = scapy_capture("backtrack", script);
    let (plain, nested) = ("udp.payload matches \"a$\"", "udp.payload matches \"(a+)+$\"");
    assert_eq!(theirs(&file, plain), BTreeSet::from([1, 3]));
    assert_eq!(theirs(&file, nested), BTreeSet::from([3]), "PCRE2 gives up on the first datagram");
    assert_eq!(transitd_frames(&file, plain), BTreeSet::from([1, 3]));
    assert_eq!(transitd_frames(&file, nested), BTreeSet::from([1, 3]));
    let _ = std::fs::remove_file(&file);
}

/// tshark expands display filter macros (`${name}`, `${name:args}`) anywhere in a filter's
/// text, inside strings too, and refuses a filter naming a macro it lacks: the Log4Shell
/// signature `contains "${jndi:"` is refused there. transitd has no macros: the string is
/// its bytes, and selects what tshark selects for the same bytes written `\x24{`.
#[test]
fn difference_a_dollar_brace_in_a_string_is_text_not_a_macro() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.0.0.1', dst='10.0.0.2')
frames = [e/TCP(sport=1234, dport=8080, flags='PA')/Raw(b'GET / HTTP/1.1\r\nUser-Agent: ${jndi:ldap://x/a}\r\n\r\n'),
          e/TCP(sport=1235, dport=8080, flags='PA')/Raw(b'GET / HTTP/1.1\r\nUser-Agent: $jndi:{x}\r\n\r\n'),
          e/UDP(sport=1236, dport=9)/Raw(b'${a}')]
"#;
    let file = scapy_capture("macro", script);
    let mut sharkd = Sharkd::open(&file, &[]);
    for (dollar_brace, same_bytes) in [
        (r#"tcp.payload contains "${jndi:""#, r#"tcp.payload contains "\x24{jndi:""#),
        (r#"tcp.payload matches "\\${jndi""#, r#"tcp.payload matches "\\x24\\{jndi""#),
        (r#"udp.payload == "${a}""#, r#"udp.payload == "\x24{a}""#),
    ] {
        assert!(sharkd.frames(dollar_brace).is_err(), "tshark reads a macro in `{dollar_brace}`");
        let selected = sharkd.frames(same_bytes).unwrap_or_else(|e| panic!("tshark refuses `{same_bytes}`: {e}"));
        assert_eq!(selected.len(), 1, "`{same_bytes}`");
        assert_eq!(transitd_frames(&file, dollar_brace), selected, "`{dollar_brace}`");
    }
    drop(sharkd);
    let _ = std::fs::remove_file(&file);
}

/// tshark's `tcp.options.mss_val` holds every MSS option of a segment, transitd's the first
/// and the last (the one Linux's receiver uses): they agree but on a segment with an MSS
/// option between two others, which is documented.
#[test]
fn difference_an_mss_option_between_the_first_and_the_last_is_not_read() {
    let file = pcap("generated/tcp-mss.pcap");
    let three = theirs(&file, "count(tcp.options.mss_val) == 3");
    assert_eq!(three.len(), 1);
    let mut selective = 0;
    for expr in [
        "tcp.options.mss_val",
        "tcp.options.mss_val < 536",
        "tcp.options.mss_val == 1460",
        "tcp.options.mss_val != 1460",
        "tcp.options.mss_val === 1460",
        "tcp.options.mss_val !== 48",
        "tcp.options.mss_val in {48, 88}",
    ] {
        let (ours, theirs) = (transitd_frames(&file, expr), theirs(&file, expr));
        assert_eq!(&ours - &three, &theirs - &three, "`{expr}`");
        selective += usize::from(!(&theirs - &three).is_empty());
    }
    assert!(selective >= 6);
    // The middle option (48) of 1460, 48, 1460.
    assert!(theirs(&file, "tcp.options.mss_val == 48").is_superset(&three));
    assert!(transitd_frames(&file, "tcp.options.mss_val == 48").is_disjoint(&three));
}

/// `in $name` selects what the same members written inline select in tshark.
#[test]
fn lists_select_what_their_members_written_inline_select() {
    let file = merged("lists");
    let mut wireshark = Wireshark::open(&file);
    let domain = wireshark.frames(COMPARABLE);
    let config = root().join("dataplane/tests/data/lists.toml");
    let cases = [
        ("ip.src in $bad_sources", "ip.src in {10.0.0.0/24, 192.150.187.43, 141.142.228.5, 20.0.0.0/8}"),
        ("ipv6.src in $bad_sources", "ipv6.src in {2001:618:400::/48, 3ffe:507::/32}"),
        (
            "ip.addr in $bad_sources or ipv6.addr in $bad_sources",
            "ip.addr in {10.0.0.0/24, 192.150.187.43, 141.142.228.5, 20.0.0.0/8} \
             or ipv6.addr in {2001:618:400::/48, 3ffe:507::/32}",
        ),
        ("not ip.src in $bad_sources", "not ip.src in {10.0.0.0/24, 192.150.187.43, 141.142.228.5, 20.0.0.0/8}"),
        (
            "tcp.port in $web_ports and not tcp.dstport in $web_ports",
            "tcp.port in {80, 443, 8000..8100} and not tcp.dstport in {80, 443, 8000..8100}",
        ),
        // tshark has no empty set: an expression that selects nothing stands for it.
        ("udp.dstport in $empty", "udp.dstport == 0 and udp.dstport == 1"),
    ];
    for (with_list, inline) in cases {
        let mut registry = transitd::snapshot::list_registry(&config).unwrap();
        let expr =
            classifier::parse_with(with_list, &mut registry).unwrap_or_else(|e| panic!("{}", e.render(with_list)));
        let mut ours = BTreeSet::new();
        match_filter(&file, &expr, &registry.membership(), None, |n| {
            ours.insert(n);
        })
        .unwrap();
        let theirs: BTreeSet<u64> = wireshark.frames(inline).intersection(&domain).copied().collect();
        assert!(!theirs.is_empty() || with_list.contains("$empty"), "{inline} selects nothing");
        assert_eq!(ours.intersection(&domain).copied().collect::<BTreeSet<u64>>(), theirs, "{with_list}");
    }
    let _ = std::fs::remove_file(file);
}

/// TCP and UDP cut short in whole packets (0 to 20 bytes of header behind a protocol of 6
/// or 17) and UDP whose length is below its header's: the layers and fields tshark shows.
/// No layer before the ports are there; no UDP checksum or payload behind a bogus length.
#[test]
fn transport_headers_cut_short_in_whole_packets_have_the_fields_tshark_reads() {
    let file = scapy_capture(
        "l4-short",
        "head = bytes([0x12, 0x34, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0])\n\
         ip = lambda p: Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IP(src='10.0.0.1', dst='10.0.0.2', proto=p)\n\
         frames = [ip(p)/Raw(head[:n]) for p in (6, 17) for n in (0, 1, 2, 3, 4, 6, 8, 12, 19, 20)]\n\
         frames += [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IP(src='10.0.0.1', dst='10.0.0.2')/UDP(sport=53, dport=5353, len=n)/Raw(b'abcd') for n in (4, 8, 12)]",
    );
    let wrong = differences(
        &file,
        &[
            "tcp",
            "tcp.srcport",
            "tcp.flags",
            "udp",
            "udp.srcport",
            "udp.length",
            "udp.checksum",
            "udp.payload",
            "len(udp.payload) == 4",
            "udp contains \"ab\"",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// IPv4 options that are malformed (a Router Alert of 6 bytes, an option running past the
/// header) are dropped by the pipeline, but tshark dissects on past them and shows the
/// transport: `transitd match` shows the same fields (it showed none).
#[test]
fn a_packet_with_malformed_options_has_the_transport_fields_tshark_reads() {
    let file = scapy_capture(
        "bad-options",
        "tcp = TCP(sport=1234, dport=80, flags='S')\n\
         ip = lambda opts: Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IP(src='10.0.0.1', dst='10.0.0.2', options=opts)/tcp\n\
         frames = [ip([IPOption_Router_Alert(length=6)]), ip([IPOption_RR(length=12, pointer=4, routers=[])]), ip([])]",
    );
    let wrong = differences(
        &file,
        &["tcp", "tcp.port == 80", "tcp.srcport == 1234", "tcp.flags.syn == 1", "ip.src == 10.0.0.1", "len(tcp) == 20"],
    );
    assert!(theirs(&file, "tcp.port == 80").len() == 3, "tshark reads the transport of all three");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A first fragment cut inside the TCP header, 0 to 21 bytes of it: transitd reads the
/// fields tshark reads of those bytes. tshark reads the header up to the window at once:
/// with 14 or 15 bytes no flags (transitd read them), with 16 to 19 the numbers, header
/// length and window (transitd waited for 20), the checksum from 18, the urgent pointer
/// from 20; its `tcp` is the bytes there once its ports are (4 bytes; below, no `tcp`).
#[test]
fn a_first_fragment_cut_in_the_tcp_header_has_the_fields_tshark_reads() {
    let file = scapy_capture(
        "cut-header",
        "tcp = bytes(TCP(sport=1234, dport=80, seq=0x11223344, ack=0x55667788, flags='SA', window=0x1234, urgptr=7, chksum=0xbeef)/Raw(b'x' * 8))\n\
         frames = [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IP(src='10.0.0.1', dst='10.0.0.2', proto=6, flags='MF')/Raw(tcp[:n]) for n in range(0, 22)]",
    );
    let wrong = differences(
        &file,
        &[
            "tcp",
            "tcp.srcport == 1234",
            "tcp.flags",
            "tcp.flags.syn == 1",
            "tcp.seq == 0x11223344",
            "tcp.ack == 0x55667788",
            "tcp.hdr_len == 20",
            "tcp.window_size_value == 0x1234",
            "tcp.checksum == 0xbeef",
            "tcp.urgent_pointer == 7",
            "tcp.payload",
            "len(tcp) == 0",
            "len(tcp) == 2",
            "len(tcp) == 4",
            "len(tcp) == 8",
            "tcp[0:1] == 04",
            "tcp contains 04",
            "tcp.srcport",
            "len(tcp) == 15",
            "len(tcp) == 16",
            "len(tcp) == 20",
            "tcp[12:2] == 50:12",
            "tcp contains 12:34",
            "tcp contains \"xx\"",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A UDP header cut short of its 8 bytes (4 to 7 of them in a first fragment, over IPv4 and
/// IPv6, in a whole packet whose IP length ends inside it with Ethernet padding behind, or
/// in a capture cut inside it): tshark's `udp` is 8 bytes however few arrived. `len(udp)` is
/// 8 (transitd said the bytes there, and had no bytes of `udp` at all before `udp.length`'s),
/// a slice reaching a missing byte is empty, the padding is never read, and against 8 bytes
/// the layer compares equal whatever they are (tshark cannot read the missing bytes and
/// calls them equal). scapy makes the frames (8 and 9 bytes too); tshark is the oracle.
#[test]
fn a_udp_header_cut_short_is_the_eight_bytes_tshark_counts() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
udp = bytes(UDP(sport=1234, dport=53, len=20, chksum=0xabcd)/Raw(b'ABCDEFGHIJKL'))
v4 = lambda **k: e/IP(src='10.0.0.1', dst='10.0.0.2', proto=17, **k)
v6 = lambda **k: e/IPv6(src='2001:db8::1', dst='2001:db8::2', **k)
frames = []
for n in range(4, 10):
    frames += [
        v4(flags='MF')/Raw(udp[:n]),
        v4(flags='MF')/Raw(udp[:n])/Padding(load=b'\xee' * 20),
        v4()/Raw(udp[:n])/Padding(load=b'\xee' * 20),
        v6()/IPv6ExtHdrFragment(nh=17, m=1)/Raw(udp[:n]),
        v6(nh=17)/Raw(udp[:n]),
        snap(v4()/Raw(udp), 34 + n),
    ]
"#;
    let file = scapy_capture("udp-cut", &[SNAP_PY, script].concat());
    let wrong = differences(
        &file,
        &[
            "udp",
            "udp.port == 53",
            "udp.length",
            "udp.checksum",
            "udp.payload",
            "len(udp) == 8",
            "len(udp) == 6",
            "udp[0:4] == 04:d2:00:35",
            "udp[2-3] == 00:35",
            "udp[:5]",
            "udp[4:2]",
            "udp[6:2] == ab:cd",
            "udp[0:]",
            "udp[-1:]",
            "udp[-8:1] == 04",
            "udp[-5:1] == 35",
            "udp == 04:d2:00:35:00:14:ab:cd",
            "udp == 04:d2:00:35:00:14:ab:ce",
            "udp > 04:d2",
            "udp < 04:d2:00:35:00:14:ab:cd:00",
            "udp contains 35",
            "udp contains ee",
            "udp contains \"A\"",
            "udp matches \"5\"",
        ],
    );
    assert_eq!(theirs(&file, "len(udp) == 8").len(), 36, "tshark counts 8 bytes of every UDP header");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A TCP header cut short by the IP length (a first fragment, or a whole packet over IPv4 or
/// IPv6) once its header length is read (16 bytes): tshark sets the layer's length to the
/// header length as far as the frame's bytes go, so Ethernet padding behind counts (and a
/// capture's end cuts it) while its bytes stay unreadable. transitd's `tcp` was the bytes
/// there. Headers of 20 and 32 bytes, 14 to 36 bytes of them, behind 0, 2, 6 and 30 bytes of
/// padding and cut by a snap length; scapy makes the frames, tshark is the oracle (sharkd,
/// which dissects twice, sets the length otherwise).
#[test]
fn a_tcp_header_cut_short_is_as_long_as_tshark_counts_it() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
tcp = lambda doff: bytes(TCP(sport=1234, dport=80, flags='S', seq=1000, chksum=0x1234, dataofs=doff, options=[('NOP', None)] * ((doff - 5) * 4))) + b'PAYLOADDATA'
v4 = lambda **k: e/IP(src='10.0.0.1', dst='10.0.0.2', proto=6, **k)
v6 = e/IPv6(src='2001:db8::1', dst='2001:db8::2', nh=6)
pad = lambda n: Padding(load=b'\xee' * n)
frames = []
for doff in (5, 8):
    for n in (14, 16, 18, 20, 24, 28, 31, 36):
        t = tcp(doff)[:n]
        frames += [v4(flags='MF')/Raw(t), v4(flags='MF')/Raw(t)/pad(2), v4()/Raw(t)/pad(6), v4()/Raw(t)/pad(30),
                   v6/Raw(t)/pad(30), snap(v4()/Raw(tcp(doff)), 34 + n)]
"#;
    let file = scapy_capture("tcp-cut", &[SNAP_PY, script].concat());
    let mut exprs = vec![
        "tcp",
        "tcp.hdr_len == 32",
        "tcp.payload",
        "tcp contains \"PAY\"",
        "tcp[-1:]",
        "tcp[0:2] == 04:d2",
        "tcp[18:2]",
        "tcp[-20:1] == 04",
        "tcp == 04:d2:00:50:00:00:03:e8:00:00:00:00:50:02:20:00:12:34:00:00",
        "tcp > 04:d2",
    ];
    let lengths: Vec<String> = [14, 16, 18, 20, 22, 24, 26, 28, 30, 31, 32].map(|n| format!("len(tcp) == {n}")).into();
    exprs.extend(lengths.iter().map(String::as_str));
    let wrong = differences(&file, &exprs);
    assert_eq!(theirs(&file, "len(tcp) == 32").len(), 21, "tshark counts padding into a cut header");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IPv6 Hop-by-Hop header after another extension header (RFC 8200 §4.1 puts it first
/// only): tshark reads it, notes the error, and dissects the transport behind it; transitd
/// read no transport (the pipeline drops the packet either way, `bad_ip_ext_header`). Behind
/// Destination Options, a routing header, another Hop-by-Hop header, a first fragment's
/// fragment header and an authentication header, before TCP, UDP and ICMPv6, and the same
/// chains with the Hop-by-Hop header first; tshark is the oracle.
#[test]
fn a_hop_by_hop_header_out_of_place_is_read_through_as_tshark_reads_it() {
    let file = scapy_capture(
        "hop-by-hop-late",
        r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
# Each header as its protocol number and its bytes, given the next header's number.
H = {
    'HBH': (0, lambda nh: bytes([nh, 0, 1, 4, 0, 0, 0, 0])),
    'DO': (60, lambda nh: bytes([nh, 0, 1, 4, 0, 0, 0, 0])),
    'RT': (43, lambda nh: bytes([nh, 0, 0, 0, 0, 0, 0, 0])),
    'FRAG': (44, lambda nh: bytes([nh, 0, 0, 1, 0, 0, 0, 7])),
    'AH': (51, lambda nh: bytes([nh, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]) + bytes(12)),
}
def packet(names, number, l4):
    out = bytes(l4)
    for i in reversed(range(len(names))):
        out = H[names[i]][1](H[names[i + 1]][0] if i + 1 < len(names) else number) + out
    return e/IPv6(src='2001:db8::1', dst='2001:db8::2', nh=H[names[0]][0])/Raw(out)
l4s = [(6, TCP(sport=1234, dport=80, flags='S', chksum=0)/b'DATA'), (17, UDP(sport=5353, dport=53, chksum=0)/b'DATA'),
       (58, ICMPv6EchoRequest(cksum=0, data=b'DATA'))]
chains = [['DO', 'HBH'], ['RT', 'HBH'], ['HBH', 'HBH'], ['FRAG', 'HBH'], ['AH', 'HBH'], ['HBH', 'DO'], ['HBH', 'AH']]
frames = [packet(c, n, l4) for c in chains for (n, l4) in l4s]
"#,
    );
    let wrong = differences(
        &file,
        &[
            "tcp",
            "udp",
            "icmpv6",
            "tcp.port == 80",
            "tcp.flags.syn == 1",
            "udp.port == 53",
            "icmpv6.type == 128",
            "tcp.payload == \"DATA\"",
            "udp.payload == \"DATA\"",
            "len(ipv6) == 56",
            "len(ipv6) == 72",
            "ipv6 contains \"DATA\"",
            "ipv6.nxt == 60",
        ],
    );
    assert_eq!(theirs(&file, "tcp or udp or icmpv6").len(), 21, "tshark reads every transport");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A capture cut inside IPv6 extension headers (a Hop-by-Hop header of 16 bytes, then
/// Destination Options of 8, then TCP, snapped at every length through them and into the
/// TCP header): tshark counts the extension headers into `ipv6` only once it reaches what
/// follows them, so until then `ipv6` is the fixed header (transitd's counted the headers
/// before the one cut). tshark is the oracle (sharkd, which dissects twice, counts otherwise).
#[test]
fn a_capture_cut_inside_ipv6_extension_headers_leaves_ipv6_its_fixed_header() {
    let script = r#"
p = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IPv6(src='2001:db8::1', dst='2001:db8::2')/ \
    IPv6ExtHdrHopByHop(options=[PadN(optdata=b'\0' * 10)])/IPv6ExtHdrDestOpt()/TCP(sport=1234, dport=80, flags='S')
frames = [snap(p, n) for n in range(54, 100)]
"#;
    let file = scapy_capture("v6-extensions-cut", &[SNAP_PY, script].concat());
    let wrong = differences(
        &file,
        &[
            "ipv6",
            "len(ipv6) == 40",
            "len(ipv6) == 56",
            "len(ipv6) == 64",
            "ipv6[-1:]",
            "ipv6[40:1] == 3c",
            "tcp",
            "tcp.port == 80",
        ],
    );
    assert_eq!(theirs(&file, "len(ipv6) == 40").len(), 24, "cut inside the extension headers");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IPv6 later fragment whose payload length runs past the bytes there (a snap length at or
/// behind its fragment header, or a length that lies): tshark ends `ipv6` at the fixed
/// header, as in a whole later fragment, whatever headers precede the fragment header and
/// whatever its data looks like (transitd's counted the headers its lenient walk read, and
/// the data too where the fragment header names Destination Options). scapy makes the
/// frames; tshark is the oracle.
#[test]
fn a_later_fragment_cut_short_leaves_ipv6_its_fixed_header() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
v6 = lambda **o: IPv6(src='2001:db8::1', dst='2001:db8::2', **o)
later = lambda nh: IPv6ExtHdrFragment(offset=8, m=1, id=9, nh=nh)
data = Raw(bytes(range(64)))
cut = [e/v6()/later(17)/data, e/v6()/IPv6ExtHdrDestOpt()/later(17)/data]
frames = [snap(p, n) for p in cut for n in (62, 70, 90)]
# Payload lengths past the frame: the fragment header alone, behind one header, behind three,
# and one whose data is shaped as Destination Options, then UDP.
frames += [e/v6(plen=300)/later(17)/data, e/v6(plen=300)/IPv6ExtHdrDestOpt()/later(17)/data,
           e/v6(plen=300)/IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()/IPv6ExtHdrRouting()/later(6)/data,
           e/v6(plen=300)/later(60)/Raw(bytes([17, 0]) + bytes(6) + bytes(UDP(sport=123, dport=80)))]
"#;
    let file = scapy_capture("v6-later-fragment-cut", &[SNAP_PY, script].concat());
    let wrong = differences(
        &file,
        &[
            "ipv6",
            "len(ipv6) == 40",
            "len(ipv6) == 48",
            "len(ipv6) == 56",
            "len(ipv6) == 72",
            "ipv6[-1:] == 02",
            "ipv6[40:1]",
            "ipv6.nxt == 44",
            "udp",
            "tcp",
        ],
    );
    assert_eq!(theirs(&file, "len(ipv6) == 40").len(), 10, "every frame's `ipv6` is its fixed header");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IPv6 fragment header's fields, wherever in the chain it is (right behind the fixed
/// header, behind Destination Options, Hop-by-Hop and routing headers), first, later and
/// atomic fragments, whole or with a payload length past the frame: a rule against a
/// fragment flood reads them as tshark does (`ipv6.nxt == 44` sees only a fragment header
/// right behind the fixed one). IPv4's fragment fields stay IPv4's. scapy makes the frames;
/// tshark is the oracle.
#[test]
fn ipv6_fragment_header_fields_select_what_tshark_selects() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
v6 = lambda **o: IPv6(src='2001:db8::1', dst='2001:db8::2', **o)
frag = lambda offset, m, nh=17: IPv6ExtHdrFragment(offset=offset, m=m, id=7, nh=nh)
udp = UDP(sport=1234, dport=80)/Raw(b"x" * 16)
data = Raw(bytes(range(24)))
frames = [e/v6()/udp, e/v6()/frag(0, 1)/udp, e/v6()/frag(185, 0)/data, e/v6()/IPv6ExtHdrDestOpt()/frag(0, 1)/udp,
          e/v6()/IPv6ExtHdrDestOpt()/frag(8, 1)/data, e/v6()/frag(0, 0)/udp,
          e/v6()/IPv6ExtHdrHopByHop()/IPv6ExtHdrRouting()/frag(3, 1)/data,
          e/IP(src='192.0.2.1', dst='192.0.2.2', flags='MF', frag=0)/udp, e/IP(src='192.0.2.1', dst='192.0.2.2', frag=9)/data,
          e/v6(plen=300)/frag(8, 1)/data, e/v6(plen=300)/IPv6ExtHdrDestOpt()/frag(0, 1)/udp]
"#;
    let file = scapy_capture("v6-fraghdr", script);
    let wrong = differences(
        &file,
        &[
            "ipv6.fraghdr",
            "not ipv6.fraghdr",
            "ipv6.fraghdr.offset == 0",
            "ipv6.fraghdr.offset > 0",
            "ipv6.fraghdr.offset == 185",
            "ipv6.fraghdr.offset in {3..8}",
            "ipv6.fraghdr.more == 1",
            "ipv6.fraghdr.more == 0",
            "ipv6.fraghdr.offset == 0 and ipv6.fraghdr.more",
            "ipv6.fraghdr.more == \"Yes\"",
            "ipv6.fraghdr.more == \"no\"",
            "ip.flags.mf == 1 or ip.frag_offset > 0 or ipv6.fraghdr",
            "ip.frag_offset == 0",
            "ip.flags.mf == 0",
            "ipv6.nxt == 44",
        ],
    );
    assert_eq!(theirs(&file, "ipv6.fraghdr").len(), 8, "the oracle's fragment headers");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IPv6 fragment header's next header and identification (32 bits: 0, 65,535 and
/// 4294967295, the value a narrow slot marks absence with, among them), whole fragments and
/// atomic ones, behind other headers or not, beside IPv4's `ip.id`, which shares the slot; and
/// a chain cut short behind a whole fragment header (by the capture, by a payload length past
/// the frame or ending inside the header after it), where tshark shows the fragment header
/// and transitd showed none. scapy makes the frames; tshark is the oracle.
#[test]
fn ipv6_fragment_header_identification_and_next_header_select_what_tshark_selects() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
v6 = lambda **o: IPv6(src='2001:db8::1', dst='2001:db8::2', **o)
v4 = lambda **o: IP(src='192.0.2.1', dst='192.0.2.2', **o)
frag = lambda offset, m, nh, ident: IPv6ExtHdrFragment(offset=offset, m=m, nh=nh, id=ident)
udp = UDP(sport=1234, dport=80)/Raw(b"x" * 16)
data = Raw(bytes(range(24)))
d16 = IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(12))])
frames = [e/v6()/udp, e/v6()/frag(0, 1, 17, 7)/udp, e/v6()/frag(185, 0, 17, 0xffffffff)/data,
          e/v6()/IPv6ExtHdrDestOpt()/frag(0, 1, 17, 0x10000)/udp, e/v6()/frag(0, 0, 17, 0)/udp,
          e/v6()/IPv6ExtHdrRouting()/frag(8, 1, 6, 0xffff)/data, e/v6()/frag(0, 0, 59, 0x0a0b0c0d),
          e/v4(id=7, flags='MF')/udp, e/v4(id=0xffff)/udp]
# Cut by the capture inside the fragment header, right behind it, inside the Destination
# Options after it, inside UDP; by payload lengths past the frame, ending inside the header
# after the fragment header, ending inside the fragment header.
first = e/v6()/frag(0, 1, 60, 0x0a0b0c0d)/d16/udp
frames += [snap(first, n) for n in (60, 62, 70, 86)]
frames += [e/v6(plen=300)/frag(0, 1, 60, 5)/IPv6ExtHdrDestOpt(len=20)/Raw(bytes(6)),
           e/v6(plen=12)/frag(0, 1, 60, 6)/d16/udp, e/v6(plen=4)/frag(0, 1, 17, 6)/udp,
           e/v6(plen=300)/IPv6ExtHdrDestOpt()/frag(3, 0, 17, 1)/data]
"#;
    let file = scapy_capture("v6-fraghdr-ident", &[SNAP_PY, script].concat());
    let wrong = differences(
        &file,
        &[
            "ipv6.fraghdr",
            "ipv6.fraghdr.offset == 0",
            "ipv6.fraghdr.more == 1",
            "ipv6.fraghdr.ident",
            "not ipv6.fraghdr.ident",
            "ipv6.fraghdr.ident == 7",
            "ipv6.fraghdr.ident == 4294967295",
            "ipv6.fraghdr.ident == 0",
            "ipv6.fraghdr.ident > 65535",
            "ipv6.fraghdr.ident != 7",
            "not ipv6.fraghdr.ident == 7",
            "ipv6.fraghdr.ident in {0, 7, 65536..4294967295}",
            "ipv6.fraghdr.ident & 0xff000000 == 0x0a000000",
            "ip.id == 7",
            "ip.id == 65535",
            "ip.id == 7 and not ipv6.fraghdr.ident == 7",
            "ip.id == 65535 or ipv6.fraghdr.ident == 65535",
            "ipv6.fraghdr.nxt",
            "ipv6.fraghdr.nxt == 17",
            "ipv6.fraghdr.nxt == UDP",
            "ipv6.fraghdr.nxt == 60",
            "ipv6.fraghdr.nxt == 59",
            "ipv6.fraghdr.nxt in {6, 17}",
            "not ipv6.fraghdr.nxt == 17",
            "ipv6.fraghdr.nxt == 17 and ipv6.fraghdr.ident < 8",
        ],
    );
    assert_eq!(theirs(&file, "ipv6.fraghdr").len(), 12, "the oracle's fragment headers");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IPv6 later fragment whose fragment header follows an atomic one, whole and with a
/// payload length past the frame: tshark ends `ipv6` at the fixed header, as for any later
/// fragment (transitd asked the first fragment header alone whether the packet was a later
/// fragment, and counted the headers in). scapy makes the frames; tshark is the oracle.
#[test]
fn a_later_fragment_behind_an_atomic_fragment_header_leaves_ipv6_its_fixed_header() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
v6 = lambda **o: IPv6(src='2001:db8::1', dst='2001:db8::2', **o)
frag = lambda offset, m, nh, ident: IPv6ExtHdrFragment(offset=offset, m=m, nh=nh, id=ident)
data = Raw(bytes(range(24)))
frames = [e/v6()/frag(0, 0, 44, 1)/frag(8, 1, 17, 2)/data, e/v6(plen=300)/frag(0, 0, 44, 1)/frag(8, 1, 17, 2)/data,
          e/v6(plen=300)/IPv6ExtHdrDestOpt()/frag(0, 0, 44, 1)/frag(8, 1, 17, 2)/data]
"#;
    let file = scapy_capture("v6-atomic-then-later", script);
    let wrong = differences(
        &file,
        &["len(ipv6) == 40", "len(ipv6) == 56", "len(ipv6) == 64", "ipv6[40:1]", "ipv6[-1:] == 02", "udp"],
    );
    assert_eq!(theirs(&file, "len(ipv6) == 40").len(), 3, "every frame's `ipv6` is its fixed header");
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// tshark's `ipv6.fraghdr.*` hold every fragment header of the chain up to the first at a
/// non-zero offset (the data of a later fragment follows it), transitd's the first alone
/// (documented): they differ on a chain of two, where a rule on the second's fields (an
/// atomic fragment header put before a real one) does not see them. The pipeline drops such
/// a packet before any rule reads it (`bad_ip_ext_header`, as Linux discards it:
/// replay_captures.rs), so `transitd match -Y` alone shows the difference.
#[test]
fn difference_a_second_fragment_header_is_no_field() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
v6 = IPv6(src='2001:db8::1', dst='2001:db8::2')
frag = lambda offset, m, nh, ident: IPv6ExtHdrFragment(offset=offset, m=m, nh=nh, id=ident)
udp = UDP(sport=1234, dport=80)/Raw(b"x" * 16)
data = Raw(bytes(range(24)))
frames = [e/v6/frag(0, 1, 44, 1)/frag(5, 0, 17, 2)/data, e/v6/frag(0, 0, 44, 3)/frag(0, 1, 17, 4)/udp,
          e/v6/frag(3, 1, 44, 5)/frag(0, 1, 17, 6)/data]
"#;
    let file = scapy_capture("v6-two-fraghdrs", script);
    let answers = |expr: &str| (transitd_frames(&file, expr), theirs(&file, expr));
    let set = |frames: &[u64]| frames.iter().copied().collect::<BTreeSet<u64>>();
    // The third frame's second header is a later fragment's data to both.
    assert_eq!(theirs(&file, "count(ipv6.fraghdr) == 1"), set(&[3]));
    assert_eq!(answers("ipv6.fraghdr.offset == 5"), (set(&[]), set(&[1])));
    assert_eq!(answers("ipv6.fraghdr.more == 1"), (set(&[1, 3]), set(&[1, 2, 3])));
    assert_eq!(answers("ipv6.fraghdr.more == 0"), (set(&[2]), set(&[1, 2])));
    assert_eq!(answers("ipv6.fraghdr.ident in {2, 4, 6}"), (set(&[]), set(&[1, 2])));
    assert_eq!(answers("ipv6.fraghdr.nxt == 17"), (set(&[]), set(&[1, 2])));
    assert_eq!(answers("ipv6.fraghdr"), (set(&[1, 2, 3]), set(&[1, 2, 3])));
    let _ = std::fs::remove_file(&file);
}

/// Two malformed headers tshark reads on through and transitd does not (docs/rules.md,
/// Differences 3): an authentication header whose payload length is 0 (8 bytes, where RFC
/// 4302's fixed part is 12), over IPv4 and IPv6, which tshark takes as 8 bytes with the
/// transport behind them; and IPv4's protocol 0, which tshark reads as an IPv6 Hop-by-Hop
/// header with a transport behind it. The IP headers' fields are the same in both.
#[test]
fn difference_a_zero_length_authentication_header_and_ipv4_protocol_0_end_the_walk() {
    let file = scapy_capture(
        "ah-zero",
        r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
udp = bytes(UDP(sport=5353, dport=53, chksum=0)/b'DATA')
ah = lambda n: bytes([17, n, 0, 0, 0, 0, 0, 1]) + bytes((n + 2) * 4 - 8)
hbh = bytes([17, 0, 1, 4, 0, 0, 0, 0])
v4 = lambda p: e/IP(src='10.0.0.1', dst='10.0.0.2', proto=p)
v6 = lambda p: e/IPv6(src='2001:db8::1', dst='2001:db8::2', nh=p)
frames = [v4(51)/Raw(ah(0) + udp), v6(51)/Raw(ah(0) + udp), v4(0)/Raw(hbh + udp), v4(51)/Raw(ah(4) + udp), v6(51)/Raw(ah(4) + udp)]
"#,
    );
    let (ours, tsharks) = (transitd_frames(&file, "udp"), theirs(&file, "udp.port == 53"));
    let wrong =
        differences(&file, &["ip.src == 10.0.0.1", "ipv6.src == 2001:db8::1", "ip.proto == 51", "ip.proto == 0"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!((ours, tsharks), (BTreeSet::from([4, 5]), BTreeSet::from([1, 2, 3, 4, 5])));
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The expressions of `exprs` whose frames of `file` transitd and tshark (sharkd) select
/// differently among the frames `domain` (a display filter) selects, each with both selections.
fn differences_among(file: &Path, domain: &str, exprs: &[&str]) -> Vec<String> {
    let mut wireshark = Wireshark::open(file);
    let domain = wireshark.frames(domain);
    exprs
        .iter()
        .filter_map(|expr| {
            let ours: BTreeSet<u64> = transitd_frames(file, expr).intersection(&domain).copied().collect();
            let theirs: BTreeSet<u64> = wireshark.frames(expr).intersection(&domain).copied().collect();
            (ours != theirs).then(|| format!("{expr}: transitd {ours:?}, tshark {theirs:?}"))
        })
        .collect()
}

/// A snap length inside the IP header (`tcpdump -s 40` under two VLAN tags): tshark shows
/// `ip` or `ipv6` with each field whose bytes are all there, `ip.src` before `ip.dst` (transitd
/// showed the layer alone), and no `gre` of GRE cut short of its 4 bytes (transitd's began at
/// none). Its `ip` is as long as the header length says and `ipv6` 40 bytes, however few
/// were captured: `len()` counts them, a slice reaching past the capture is empty, and a
/// comparison with a byte string of that length is true (transitd's layer was the bytes
/// there). scapy cuts IPv4 (plain, under a VLAN tag, with options cut before the fixed header
/// ends) and IPv6 at every length through their headers, and GRE through its first 4 bytes,
/// keeping each frame's length on the wire; tshark is the oracle on each expression.
#[test]
fn a_snap_length_inside_the_ip_header_leaves_the_fields_tshark_reads() {
    let script = "eth = lambda: Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')  # no ARP for its address\n\
         tcp = TCP(sport=1234, dport=80, flags='S')/Raw(b'x' * 30)\n\
         v4 = lambda **o: IP(src='10.0.0.1', dst='192.0.2.9', ttl=63, tos=0xb8, id=7, flags='DF', **o)/tcp\n\
         v6 = IPv6(src='2001:db8::1', dst='2001:db8::2', hlim=63, tc=0xb8, fl=0x12345)/tcp\n\
         gre = IP(src='10.0.0.1', dst='192.0.2.9')/GRE(proto=0x0800)/IP(src='10.9.0.1', dst='10.9.0.2')/UDP()\n\
         frames = [snap(eth()/v4(), n) for n in range(14, 35)]\n\
         frames += [snap(eth()/Dot1Q(vlan=5)/v4(), n) for n in range(18, 39)]\n\
         frames += [snap(eth()/v4(options=[IPOption_NOP()] * 4), n) for n in range(28, 34)]\n\
         frames += [snap(eth()/v4(len=10), n) for n in range(24, 34)]\n\
         frames += [snap(eth()/v6, n) for n in range(14, 55)]\n\
         frames += [snap(eth()/gre, n) for n in range(34, 39)]";
    let file = scapy_capture("snapped-header", &[SNAP_PY, script].concat());
    let cut = ["ip.src and not ip.dst", "ipv6.src and not ipv6.dst", "ip.proto == 47 and not gre"];
    assert_eq!(cut.map(|e| theirs(&file, e).len()), [12, 16, 4], "cut between the addresses, GRE cut short");
    let wrong = differences_among(
        &file,
        "frame",
        &[
            "ip",
            "ip.hdr_len == 20",
            "ip.hdr_len == 24",
            "ip.dsfield == 0xb8",
            "ip.dsfield.dscp == 46",
            "ip.len > 60",
            "ip.id == 7",
            "ip.flags.df == 1",
            "ip.flags.mf == 0",
            "ip.frag_offset == 0",
            "ip.ttl < 64",
            "ip.proto == 6",
            "ip.src == 10.0.0.1",
            "ip.dst == 192.0.2.9",
            "ip.addr == 192.0.2.9",
            "ip.addr == 10.0.0.1",
            "ip.src and not ip.dst",
            "ip.src[0] == 0a",
            "ip[0] == 45",
            "ipv6",
            "ipv6.tclass == 0xb8",
            "ipv6.tclass.dscp == 46",
            "ipv6.flow == 0x12345",
            "ipv6.plen == 50",
            "ipv6.nxt == 6",
            "ipv6.hlim < 64",
            "ipv6.src == 2001:db8::1",
            "ipv6.dst == 2001:db8::2",
            "ipv6.addr == 2001:db8::2",
            "ipv6.src and not ipv6.dst",
            "ipv6.src[0:2] == 20:01",
            "tcp",
            "vlan.id == 5",
            "gre",
            "ip.proto == 47 and not gre",
            "len(ip) == 20",
            "len(ip) == 24",
            "ip[-2:]",
            "ip > 45",
            "ip == 45:b8:00:46:00:07:40:00:3f:06:00:00:0a:00:00:01:c0:00:02:09",
            "len(ipv6) == 40",
            "ipv6[-1:]",
            "ipv6 > 60",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A snap length inside a VLAN tag (16 to 21 bytes under one or two tags, as `tcpdump -s 16`
/// leaves): tshark shows an 802.1Q tag's `vlan.id` once the tag's first two bytes are there,
/// before its EtherType (transitd showed a tag only whole). scapy cuts frames under two tags,
/// the outer one 802.1Q, the old QinQ 0x9100 or 802.1ad (a cut 802.1ad tag tshark shows as
/// `ieee8021ad` with no ID, and transitd not at all: `ieee8021ad` alone is not compared), at
/// every length through both; tshark is the oracle on each expression.
#[test]
fn a_snap_length_inside_a_vlan_tag_leaves_its_id_as_tshark_reads_it() {
    let script = "eth = lambda t: Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01', type=t)\n\
         v4 = IP(src='10.0.0.1', dst='192.0.2.9')/UDP(sport=1234, dport=53)\n\
         tagged = lambda t: eth(t)/Dot1Q(vlan=5, prio=7, id=1)/Dot1Q(vlan=6, prio=3)/v4\n\
         frames = [snap(tagged(t), n) for t in (0x8100, 0x9100, 0x88a8) for n in range(14, 23)]";
    let file = scapy_capture("snapped-tag", &[SNAP_PY, script].concat());
    let cut = ["vlan.id == 5 and frame.cap_len < 18", "vlan.id == 6 and frame.cap_len < 22"];
    assert_eq!(cut.map(|e| theirs(&file, e).len()), [4, 6], "outer and inner tags cut after their IDs");
    let wrong = differences(
        &file,
        &[
            "vlan",
            "not vlan",
            "vlan.id == 5",
            "vlan.id == 6",
            "vlan.id === 5",
            "vlan.id !== 5",
            "vlan.id > 5",
            "ieee8021ad.id == 5",
            "eth.type == 0x8100",
            "frame.len > 40",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IPv4 header cut inside its options: tshark walks the options for a source route before
/// it shows the destination, and a byte of that walk past the capture leaves no `ip.dst`
/// (transitd showed it from 20 bytes on). scapy writes headers of 12 option bytes (NOPs; an
/// end of list early; record route; lengths of 0, 1 and 40; options of lengths Wireshark's
/// option table calls wrong, which its walk takes all the same; routes whose hops are used
/// up or whose pointer is bogus) and cuts each at every length through them; tshark is the
/// oracle. A source route with hops to go is the second file: its destination is the
/// route's last hop in tshark (docs/rules.md, Differences 3), so only whether there is one
/// is compared.
#[test]
fn a_snap_length_inside_ipv4_options_leaves_the_destination_where_tshark_does() {
    let script = |options: &str| {
        format!(
            "{SNAP_PY}base = bytes(Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IP(src='10.0.0.1', \
             dst='192.0.2.9', ttl=63, options=[IPOption_NOP()] * 12)/TCP(sport=1234, dport=80, flags='S'))\n\
             assert len(base) == 66 and base[14] == 0x48\n\
             frames = [snap(Ether(base[:34] + o + base[46:]), n) for o in {options} for n in range(34, 47)]"
        )
    };
    let route = |kind: u8, pointer: u8| format!("bytes([{kind}, 11, {pointer}, 1, 1, 1, 1, 2, 2, 2, 2, 0])");
    let options = [
        "b'\\x01' * 12".to_string(),
        "b'\\x01\\x00' + bytes(10)".into(),
        "b'\\x07\\x0b\\x04' + bytes(9)".into(),
        "b'\\x07\\x00' + bytes(10)".into(),
        "b'\\x07\\x01' + bytes(10)".into(),
        "b'\\x07\\x28' + bytes(10)".into(),
        "b'\\x01\\x44\\x03\\x00' + bytes(8)".into(),
        "b'\\x01\\x01\\x07\\x04\\x00\\x00\\x00' + bytes(5)".into(),
        "b'\\x94\\x05' + bytes(3) + b'\\x01' * 7".into(),
        "b'\\x94\\x04' + bytes(2) + b'\\x01' * 8".into(),
        "b'\\x86\\x09' + bytes(7) + b'\\x01' * 3".into(),
        "b'\\x52\\x0c' + bytes(10)".into(),
        "b'\\x19\\x07' + bytes(5) + b'\\x01' * 5".into(),
        "b'\\x95\\x05' + bytes(3) + b'\\x01' * 7".into(),
        "b'\\x9e\\x02' + b'\\x01' * 10".into(),
        route(131, 12),
        route(137, 5),
    ];
    let file = scapy_capture("snapped-options", &script(&format!("[{}]", options.join(", "))));
    let routed = scapy_capture("snapped-route", &script(&format!("[{}, {}]", route(131, 4), route(137, 8))));
    // The frames cut before the walk's last byte, option by option: 12, 2, 12, 2, 2, 2, 5, 7,
    // 12, 12, 12, 2, 12, 12, 12, 3 and 3; the routes with hops to go, before the whole header.
    let cut = "ip.src and not ip.dst";
    assert_eq!([theirs(&file, cut).len(), theirs(&routed, cut).len()], [124, 24], "cut before the destination");
    let mut wrong = differences_among(
        &file,
        "frame",
        &[
            "ip",
            "ip.dst",
            cut,
            "ip.dst == 192.0.2.9",
            "ip.addr == 192.0.2.9",
            "ip.src == 10.0.0.1",
            "ip.ttl < 64",
            "ip.hdr_len == 32",
            "ip.proto == 6",
            "tcp",
        ],
    );
    wrong.extend(differences_among(&routed, "frame", &["ip", "ip.dst", cut, "ip.src == 10.0.0.1", "tcp"]));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&routed);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Real captures cut by a snap length, as `editcap -s` (and `tcpdump -s`) cut them, select what
/// tshark selects on the frames that carry one IP header and are not fragments (as in the first
/// test; a tunnel whose inner header is there differs by design): IPv4 headers cut under VLAN,
/// QinQ and 802.1ad tags and MPLS labels, plain IPv4 cut between its addresses (30 bytes),
/// IPv6 headers cut short (30 and 40), GRE cut inside its first 4 bytes.
#[test]
fn real_captures_cut_by_a_snap_length_select_what_tshark_selects() {
    const CAPTURES: &[&str] = &[
        "real/zeek-communityid-tcp.pcap",
        "real/zeek-communityid-ipv6.pcap",
        "real/tcpdump-icmpv6.pcap",
        "real/zeek-http-qinq-0.pcap",
        "real/pcapplusplus-VlanPackets.pcap",
        "real/packetnet-802.1ad_vlan_ipv4.pcap",
        "real/zeek-mpls-in-vlan.pcap",
        "real/ndpi-4in4tunnel.pcap",
        "real/tcpdump-various_gre.pcap",
    ];
    let dir = scratch_dir("match-snapped");
    let mut copies = Vec::new();
    for (i, capture) in CAPTURES.iter().enumerate() {
        for snap in ["30", "40", "54"] {
            let copy = dir.join(format!("{i}-s{snap}.pcapng"));
            let status = Command::new("editcap")
                .args(["-F", "pcapng", "-s", snap])
                .arg(pcap(capture))
                .arg(&copy)
                .status()
                .expect("editcap (from tshark's wireshark-common) cuts the captures");
            assert!(status.success(), "editcap -s {snap} {capture}");
            copies.push(copy);
        }
    }
    let file = dir.join("snapped.pcapng");
    let status = Command::new("mergecap").args(["-a", "-F", "pcapng", "-w"]).arg(&file).args(&copies).status().unwrap();
    assert!(status.success());
    let mut wireshark = Wireshark::open(&file);
    let domain = wireshark.frames(COMPARABLE);
    let cut = ["ip.src and not ip.dst", "ip and not ip.src", "ipv6.src and not ipv6.dst", "ipv6 and not ipv6.src"];
    let cut = cut.map(|e| wireshark.frames(e).intersection(&domain).count());
    let short_gre = wireshark.frames("ip.proto == 47 and not gre").intersection(&domain).count();
    assert!(cut.iter().all(|&n| n > 0) && short_gre > 0, "headers cut each way: {cut:?}, GRE {short_gre}");
    drop(wireshark);
    let wrong = differences_among(
        &file,
        COMPARABLE,
        &[
            "ip",
            "ipv6",
            "tcp",
            "udp",
            "icmp",
            "icmpv6",
            "gre",
            "vlan.id",
            "mpls",
            "eth",
            "tcp.port == 80",
            "tcp.flags.syn == 1",
            "udp.length > 20",
            "ip.len > 60",
            "ip.ttl < 64",
            "ip.proto == 6",
            "ip.id",
            "ip.flags.df == 1",
            "ip.src",
            "ip.dst",
            "ipv6.src",
            "ipv6.dst",
            "ipv6.hlim",
            "ipv6.nxt == 58",
            "ipv6.flow",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Payloads end where the IP payload ends, as tshark's do (reassembly off): a first
/// fragment's TCP data is `tcp.payload` (it had none: fragmenting a segment slipped it past
/// every payload rule), UDP's runs past a short `udp.length` and never into Ethernet padding;
/// behind a bogus TCP header length (below 20) there is none.
/// scapy makes the packets; tshark is the oracle on each expression.
#[test]
fn payloads_end_where_tshark_ends_them_in_fragments_and_odd_lengths() {
    let file = scapy_capture(
        "payload-ends",
        "e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')\n\
         tcp = bytes(TCP(sport=1111, dport=80, flags='S', seq=1000, window=512, chksum=0x1234)/Raw(b'ABCDEFGHIJKLMNOPQRSTUVWX'))\n\
         udp_long = bytes(UDP(sport=5353, dport=53, len=200, chksum=0x4321)) + b'Q' * 8\n\
         udp_short = bytes(UDP(sport=1000, dport=2000, len=10, chksum=0)) + b'ab' + b'WXYZ'\n\
         v4 = lambda p, **k: e/IP(src='10.0.0.1', dst='10.0.0.2', **k)/Raw(p)\n\
         v6 = lambda p, nh: e/IPv6(src='2001:db8::1', dst='2001:db8::2', nh=nh)/Raw(p)\n\
         frag6 = lambda p, offset, m: e/IPv6(src='2001:db8::1', dst='2001:db8::2')/IPv6ExtHdrFragment(nh=6, offset=offset, m=m, id=7)/Raw(p)\n\
         frames = [\n\
           v4(tcp[:40], proto=6, flags='MF'),\n\
           v4(tcp[40:], proto=6, frag=5),\n\
           e/IP(src='10.0.0.1', dst='10.0.0.2', proto=17, flags='MF')/Raw(udp_long)/Padding(load=b'\\xee' * 10),\n\
           e/IP(src='10.0.0.1', dst='10.0.0.2', proto=6, flags='MF')/Raw(tcp[:20] + b'ZZZZ')/Padding(load=b'\\xee' * 10),\n\
           frag6(tcp[:40], 0, 1),\n\
           frag6(tcp[40:], 5, 0),\n\
           frag6(tcp, 0, 0),\n\
           v4(udp_short, proto=17),\n\
           v6(udp_short, 17),\n\
           v4(bytes(TCP(sport=1, dport=2, flags='PA')) + b'hello', proto=6)/Padding(load=b'PADPADPAD'),\n\
           v4(bytes(TCP(sport=1111, dport=80, flags='S', dataofs=2)) + b'ABCD' * 5, proto=6, flags='MF'),\n\
           v4(bytes(TCP(sport=1111, dport=80, flags='S', dataofs=0)) + b'ABCD' * 5, proto=6, flags='MF'),\n\
           v4(bytes(TCP(sport=1, dport=2, flags='R')) + b'ABCDevil', proto=6),\n\
           v4(bytes(TCP(sport=1, dport=2, flags='RA')) + b'\\x00ABC', proto=6),\n\
           v4(bytes(UDP(sport=7, dport=8, len=8, chksum=0)) + b'ABCDEFGH', proto=17),\n\
         ]",
    );
    let wrong = differences(
        &file,
        &[
            "tcp.payload",
            "tcp.payload contains \"ABC\"",
            "tcp contains \"ABC\"",
            "len(tcp.payload) == 20",
            "tcp.payload[0:4] == \"ABCD\"",
            "tcp.payload contains ee",
            "tcp contains \"PAD\"",
            "tcp.payload == \"hello\"",
            "udp.payload",
            "len(udp.payload) == 6",
            "len(udp.payload) == 8",
            "udp.payload[-1] == \"Z\"",
            "udp contains \"WXYZ\"",
            "udp matches \"WXYZ\"",
            "udp.payload contains ee",
            "udp contains ee",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Headers at the edges of what tshark 4.0 dissects (`data/header_edges.py` says what each
/// frame of `data/header-edges.pcap` is): TCP behind a header length below 20 (ports, sequence
/// number, header length and `tcp.len`, no flags and nothing after them; `tcp` the whole
/// segment), IPv6 later fragments and Mobility headers (`ipv6` the fixed header alone), ICMP
/// and ICMPv6 cut short (no `icmp` before 6 bytes, whole or a first fragment; no `icmpv6` of
/// no bytes behind IPv4), UDP length 0 over IPv6 (RFC 2675), IPv6 payload length 0, IPv4 total
/// length 0 (TSO) and below the header, IPv4 and IPv6 headers tshark calls bogus (`ip` with
/// its header length, `ipv6`, and nothing more), an IPv4 header longer than the bytes (its
/// fixed fields; `ip` as long as its header length, 60, where transitd said 46), GRE shorter than 4 bytes (no `gre`), IP under four VLAN tags. transitd
/// reads the fields tshark reads but on the documented differences, checked last: UDP-Lite's
/// `udp.*`, UDP behind Shim6, IPv6 behind EtherType IPv4, and a fourth tag's `vlan.id`.
#[test]
fn headers_at_the_edges_have_the_fields_tshark_reads() {
    let file = root().join("dataplane/tests/data/header-edges.pcap");
    let udp_lite = theirs(&file, "ip.proto == 136 or ipv6.nxt == 136");
    let shim6 = theirs(&file, "ipv6.nxt == 140");
    let ipv6_as_ipv4 = theirs(&file, "ip and ipv6");
    assert_eq!((udp_lite.len(), shim6.len(), ipv6_as_ipv4.len()), (6, 1, 1));
    let aside = &(&udp_lite | &shim6) | &ipv6_as_ipv4;
    let (mut wrong, mut selective) = (Vec::new(), 0);
    for expr in [
        "tcp",
        "tcp.srcport == 1111",
        "tcp.seq == 0x11223344",
        "tcp.hdr_len == 16",
        "tcp.hdr_len",
        "tcp.flags",
        "tcp.flags.syn == 1",
        "tcp.ack",
        "tcp.ack == 0x55667788",
        "tcp.window_size_value",
        "tcp.checksum == 0x1234",
        "tcp.urgent_pointer",
        "tcp.options.mss_val",
        "tcp.len",
        "tcp.len == 28",
        "tcp.len == 12",
        "tcp.len == 4",
        "tcp.len == 48",
        "tcp.len == 5",
        "tcp.len == 0",
        "tcp.payload",
        "len(tcp) == 28",
        "len(tcp) == 20",
        "len(tcp) == 16",
        "len(tcp) == 24",
        "len(tcp) == 26",
        "tcp contains \"ABCD\"",
        "tcp[12:1] == 40",
        "ipv6",
        "len(ipv6) == 40",
        "len(ipv6) == 48",
        "len(ipv6) == 56",
        "ipv6[40:1] == 06",
        "ipv6 contains 87",
        "icmp",
        "icmp.type",
        "icmp.type == 8",
        "icmp.type == 3",
        "icmp.code",
        "icmp.ident == 0x1234",
        "icmp.seq",
        "len(icmp) == 4",
        "len(icmp) == 6",
        "icmp[0] == 08",
        "icmpv6",
        "icmpv6.type == 128",
        "icmpv6.code == 0",
        "len(icmpv6) == 1",
        "udp",
        "udp.srcport == 7",
        "udp.length",
        "udp.length == 0",
        "udp.checksum",
        "udp.payload",
        "udp.payload == \"abcd\"",
        "len(udp.payload) == 4",
        "len(udp.payload) == 5",
        "udp contains \"abcd\"",
        "ip",
        "ip.len == 0",
        "ip.len == 45",
        "ip.len == 33",
        "ip.len == 10",
        "ip.hdr_len == 20",
        "len(ip) == 20",
        "ip contains \"hello\"",
        "udp.srcport == 1",
        "tcp.srcport == 1",
        "tcp.payload == \"hello\"",
        "udp.payload == \"hello\"",
        "ip.hdr_len",
        "ip.hdr_len == 16",
        "ip.hdr_len == 0",
        "ip.hdr_len == 60",
        "len(ip) == 16",
        "len(ip) == 0",
        "len(ip) == 60",
        "ip[-1:]",
        "ip[0] == 44",
        "ip[0:1] == 55",
        "ip.dsfield",
        "ip contains \"yyyy\"",
        "ip.len == 200 and ip.src == 10.0.0.1 and ip.ttl == 64 and ip.proto == 17",
        "ip.proto == 47",
        "icmpv6.type",
        "ipv6.src == 2001:db8::1",
        "ipv6.plen",
        "ipv6 contains \"xxxx\"",
        "ipv6[0] == 45",
        "udp.port == 6",
        "udp.port == 2",
        "vlan",
        "vlan.id == 1",
        "vlan.id == 3",
        "ieee8021ad.id == 30",
    ] {
        let (ours, tsharks) = (&transitd_frames(&file, expr) - &aside, &theirs(&file, expr) - &aside);
        if ours != tsharks {
            wrong.push(format!("{expr}: transitd {ours:?}, tshark {tsharks:?}"));
        }
        selective += usize::from(!tsharks.is_empty());
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(selective >= 80, "only {selective} expressions select a frame");
    // UDP-Lite: tshark dissects it with UDP's fields under the protocol `udplite`; transitd's
    // `udp.*` are UDP's alone, its `udplite` is tshark's (4 bytes and more of it).
    assert_eq!(transitd_frames(&file, "udplite"), theirs(&file, "udplite"));
    assert_eq!(theirs(&file, "udplite").len(), 4);
    assert_eq!(theirs(&file, "udp.port == 53"), theirs(&file, "udplite"));
    assert!(transitd_frames(&file, "udp.port == 53 or udp.payload or udp.checksum").is_disjoint(&udp_lite));
    // A total length below the header's: tshark's `ip` stops at `ip.len`, transitd's has the
    // rest of the header too (no transport in either).
    let short_total = theirs(&file, "ip.len < 20");
    assert_eq!(short_total.len(), 2);
    assert!(theirs(&file, "ip.src or tcp or udp").is_disjoint(&short_total));
    assert!(transitd_frames(&file, "ip.src == 10.0.0.1 and not tcp and not udp").is_superset(&short_total));
    // Shim6: tshark reads it as an extension header (in `ipv6`) and dissects the UDP behind
    // it; transitd's transport is the Shim6 header.
    assert!(theirs(&file, "udp.dstport == 6 and len(ipv6) == 48").is_superset(&shim6));
    assert!(transitd_frames(&file, "udp or len(ipv6) == 48").is_disjoint(&shim6));
    // IPv6 behind EtherType IPv4: tshark shows `ip` (a bogus version 6), then the IPv6 packet;
    // transitd's key, one IP layer, holds the IPv6 packet alone.
    let inside = "ipv6.src == 2001:db8::1 and udp.port == 6 and udp.payload == \"abcd\" and len(ipv6) == 40";
    assert_eq!(transitd_frames(&file, inside), ipv6_as_ipv4);
    assert_eq!(theirs(&file, inside), ipv6_as_ipv4);
    assert!(transitd_frames(&file, "ip or len(ip) == 0").is_disjoint(&ipv6_as_ipv4));
    // GRE: the layer begins at 4 bytes in both, whole or a first fragment (the pipeline
    // knows GRE by the protocol number however short). transitd's began at none.
    let gre = theirs(&file, "ip.proto == 47");
    assert_eq!((gre.len(), theirs(&file, "gre").len()), (4, 1));
    assert_eq!(transitd_frames(&file, "gre"), theirs(&file, "gre"));
    // A fourth VLAN tag's ID is one of tshark's `vlan.id`; the key holds the first three.
    let fourth = theirs(&file, "vlan.id == 4");
    assert_eq!(fourth.len(), 1);
    assert!(transitd_frames(&file, "vlan.id == 4").is_disjoint(&fourth));
    assert!(transitd_frames(&file, "vlan.id == 3 and udp.port == 2").is_superset(&fourth));
}

/// Spaces in a slice: transitd takes what tshark takes and refuses what it refuses (a
/// space between two numbers, `[1 2]`, is no range rather than byte 12), and what both take
/// selects the same frames.
#[test]
fn spaced_slices_are_taken_as_tshark_takes_them() {
    let file = pcap("real/zeek-communityid-tcp.pcap");
    for expr in [
        "frame[1 2]",
        "frame[1 0:2]",
        "frame[1 -2 3]",
        "frame[ - 1 ]",
        "frame[ :2 ]",
        "frame[12 : ]",
        "frame[12: ]",
        "frame[ -1: ]",
        "frame[ 12 : 2 ] == 08:00",
        "frame[12 -13] == 08:00",
        "frame[12- 13] == 08:00",
        "frame[1 -2] == 00:00",
        "frame[12 :] contains 06",
        "frame[:2 ] == 00:00",
        "frame[-1 :2]",
        "frame[0x0c : 2] == 08:00",
        "frame[014 :02] == 08:00",
        "frame[ 0xc-0xd ] == 08:00",
    ] {
        let tshark_takes = Command::new("tshark")
            .args(["-r"])
            .arg(&file)
            .args(["-c", "1", "-Y", expr])
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(classifier::parse(expr).is_ok(), tshark_takes, "{expr}");
        if tshark_takes {
            assert_eq!(transitd_frames(&file, expr), theirs(&file, expr), "{expr}");
        }
    }
}

/// Literals tshark 4.0 reads in its own ways (the names of values, a unary plus, byte strings
/// with one-digit parts, Ethernet addresses as byte strings, slice bounds): transitd takes an
/// expression exactly when tshark takes it, and then selects the frames tshark selects.
#[test]
fn literals_are_taken_and_read_as_tshark_takes_and_reads_them() {
    let file = merged("literals");
    let mut wireshark = Wireshark::open(&file);
    let domain = wireshark.frames(COMPARABLE);
    let one_ethernet: BTreeSet<u64> = domain.intersection(&wireshark.frames("count(eth.type) <= 1")).copied().collect();
    let exprs: Vec<String> = std::fs::read_to_string(root().join("dataplane/tests/data/match_literals.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let (mut taken, mut selective) = (0, 0);
    for expr in &exprs {
        let theirs = wireshark.sharkd.frames(expr).map(|_| wireshark.frames(expr));
        let ours = classifier::parse(expr);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "`{expr}`: transitd {}, tshark {}",
            ours.as_ref().map_or_else(|e| format!("refuses it: {}", e.render(expr)), |_| "takes it".into()),
            theirs.as_ref().map_or_else(|e| format!("refuses it: {e}"), |_| "takes it".to_string())
        );
        let Ok(theirs) = theirs else { continue };
        taken += 1;
        let domain = if expr.contains("eth") { &one_ethernet } else { &domain };
        let ours: BTreeSet<u64> = transitd_frames(&file, expr).intersection(domain).copied().collect();
        let theirs: BTreeSet<u64> = theirs.intersection(domain).copied().collect();
        assert_eq!(ours, theirs, "`{expr}`");
        selective += usize::from(!ours.is_empty() && ours.len() < domain.len());
    }
    assert!(taken >= 60 && exprs.len() - taken >= 40, "{taken} of {} taken", exprs.len());
    assert!(selective >= 20, "only {selective} of {taken} taken expressions split the frames");
    let _ = std::fs::remove_file(file);
}

/// The names of values (`ip.proto == UDP`) are those of the installed Wireshark: each table
/// is its `-G values` table for that field, in its order, every field of the rule language
/// that has one has it, the flags are Set and Not set, and the words tshark reads as fields
/// rather than names are those of its `-G fields` that some name spells in another case.
#[test]
fn value_names_are_the_installed_wiresharks() {
    let dump = |what: &str| {
        let out = Command::new("tshark").args(["-G", what]).output().expect("tshark runs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let values = dump("values");
    let mut tables: std::collections::HashMap<&str, Vec<(u32, &str)>> = Default::default();
    let mut flags: std::collections::HashMap<&str, (&str, &str)> = Default::default();
    for line in values.lines() {
        match line.split('\t').collect::<Vec<_>>()[..] {
            ["V", field, value, name] => {
                let value =
                    value.strip_prefix("0x").map_or_else(|| value.parse().ok(), |h| u32::from_str_radix(h, 16).ok());
                if let Some(value) = value {
                    tables.entry(field).or_default().push((value, name));
                }
            }
            ["T", field, set, unset] => drop(flags.insert(field, (set, unset))),
            _ => {}
        }
    }
    for &(field, table) in classifier::names::FIELDS {
        assert_eq!(tables.get(field).map(Vec::as_slice), Some(table), "{field}");
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    for f in classifier::field::FIELDS.iter().filter(|f| f.alias_of.is_none()) {
        let named = classifier::names::FIELDS.iter().find(|(name, _)| *name == f.name);
        match f.ty {
            classifier::field::Ty::Bool => {
                assert_eq!(flags.get(f.name), Some(&classifier::names::flag_names(f.name)), "{}", f.name)
            }
            _ => assert_eq!(named.is_some(), tables.contains_key(f.name), "{} has Wireshark names", f.name),
        }
        if let Some((_, table)) = named {
            names.extend(table.iter().map(|(_, n)| n.to_ascii_lowercase()));
        }
    }
    names.extend(["set".to_string(), "not set".to_string()]);
    let fields = dump("fields");
    let clash: BTreeSet<&str> = fields
        .lines()
        .filter_map(|l| match l.split('\t').collect::<Vec<_>>()[..] {
            ["P" | "F", _, abbrev, ..] if names.contains(&abbrev.to_ascii_lowercase()) => Some(abbrev),
            _ => None,
        })
        .collect();
    assert_eq!(clash, classifier::names::FIELD_WORDS.iter().copied().collect());
    // The names a word of hex bytes can be, which tshark reads as those (a rule refuses them).
    let hex = |w: &str| {
        let groups = w.split(['-', ':', '.']);
        !w.is_empty() && groups.clone().all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let hex_names: BTreeSet<&str> = fields
        .lines()
        .filter_map(|l| match l.split('\t').collect::<Vec<_>>()[..] {
            ["P" | "F", _, abbrev, ..] if hex(abbrev) => Some(abbrev),
            _ => None,
        })
        .collect();
    assert_eq!(hex_names, classifier::names::HEX_NAMES.iter().copied().collect());
}

/// An IPv6 payload length of 0 behind a Hop-by-Hop header is a jumbogram's (RFC 2675), whose
/// length is in the header's Jumbo Payload option: tshark reads the extension header and the
/// transport behind it. Without the Hop-by-Hop header tshark's payload is empty; with it,
/// transitd had read nothing behind the fixed header either (`len(ipv6)` 40, no `icmpv6`).
#[test]
fn a_jumbogram_is_read_behind_its_hop_by_hop_header() {
    let file = root().join("pcaps/malformed/tcpdump-ipv6_jumbogram_invalid_length.pcap");
    // Its option says 65,537 bytes, one more than the frame holds: the ICMPv6 message runs
    // to the frame's end (the bytes searched for lie 65,486 bytes past the fixed header).
    let exprs = [
        "ipv6",
        "icmpv6",
        "len(ipv6) == 40",
        "len(ipv6) == 48",
        "udp",
        "tcp",
        "len(icmpv6) == 65528",
        "icmpv6 contains 04:00:bd:a1:00",
        "ipv6 contains 04:00:bd:a1:00",
    ];
    assert!(!theirs(&file, "icmpv6").is_empty(), "tshark reads ICMPv6 behind the Hop-by-Hop header");
    let wrong = differences(&file, &exprs);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A jumbogram's payload runs as far as its Jumbo Payload option says (RFC 2675 §2), as
/// tshark reads it: no further than the frame on the wire (`tcp.len`) and its bytes no
/// further than the capture; bytes past it are a trailer, in no layer. transitd ended the
/// payload at the fixed header's length of 0: no `udp.payload`, `tcp.payload` or `tcp.len`,
/// and `icmpv6` and `ipv6` held nothing past the headers. An option tshark does not take
/// (65,535 or less, 40 more passing 32 bits, its bytes not captured, starting past the
/// Hop-by-Hop header) is none: nothing is read past the fixed header (transitd read on). The
/// data plane drops jumbograms all the same. scapy makes the packets; tshark is the oracle.
#[test]
fn a_jumbograms_payload_is_as_long_as_its_option_says() {
    let script = r#"
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
ip = IPv6(src='2001:db8::1', dst='2001:db8::2', plen=0, nh=0)
hbh = lambda nh, options, hlen=0: bytes([nh, hlen]) + options
J = lambda n: b'\xc2\x04' + n.to_bytes(4, 'big')
data = b'A' * 70000 + b'TAIL'
udp = bytes(UDP(sport=61000, dport=61001, len=0, chksum=0)) + data
tcp = lambda port: bytes(TCP(sport=port, dport=61001, flags='PA', chksum=0)) + data
L = 8 + len(udp)
T = 8 + len(tcp(0))
frames = [
    e/ip/IPv6ExtHdrHopByHop(nh=17, options=[Jumbo(jumboplen=L)])/UDP(sport=61000, dport=61001, len=0)/Raw(data),
    e/ip/IPv6ExtHdrHopByHop(nh=58, options=[Jumbo(jumboplen=16 + len(data))])/ICMPv6EchoRequest(data=data),
    e/ip/Raw(hbh(6, J(T)) + tcp(61000)),
    # Shorter than the bytes: the rest is a trailer. Longer than the frame, or the capture.
    e/ip/Raw(hbh(17, J(L)) + udp + b'TRLR' * 100),
    e/ip/Raw(hbh(6, J(T + 1000)) + tcp(61002)),
    snap(e/ip/Raw(hbh(6, J(T)) + tcp(61004)), 300),
    snap(e/ip/Raw(hbh(17, J(L)) + udp), 300),
    # No option to tshark: 65,535, a sum past 32 bits, its value cut, past the header's end.
    e/ip/Raw(hbh(17, J(65535)) + udp),
    e/ip/Raw(hbh(17, J(0xffffffd8)) + udp),
    snap(e/ip/Raw(hbh(17, J(L)) + udp), 60),
    e/ip/Raw(hbh(17, b'\x00' * 6) + J(L) + udp),
    # Taken: just short of wrapping; after PadN; after one of length 5; at the header's last byte.
    e/ip/Raw(hbh(17, J(0xffffffd7)) + udp),
    e/ip/Raw(hbh(17, b'\x01\x00' + J(L + 8) + b'\x01\x04\x00\x00\x00\x00', 1) + udp),
    e/ip/Raw(hbh(17, b'\xc2\x05\x00\x00\x00\x00\x00' + J(L + 8) + b'\x00', 1) + udp),
    e/ip/Raw(hbh(17, b'\x00' * 5 + J(L)) + udp),
    # A payload length that is not 0 stands: the option is not read.
    e/IPv6(src='2001:db8::1', dst='2001:db8::2', plen=200, nh=0)/Raw(hbh(17, J(L)) + udp),
]
"#;
    let file = scapy_capture("jumbograms", &[SNAP_PY, script].concat());
    let exprs = [
        "ipv6",
        "ipv6.plen == 0",
        "len(ipv6) == 40",
        "len(ipv6) == 48",
        "len(ipv6) == 56",
        "ipv6 contains \"TAIL\"",
        "ipv6 contains \"TRLR\"",
        "udp",
        "udp.length == 0",
        "udp.payload",
        "udp.payload contains \"TAIL\"",
        "udp.payload contains \"TRLR\"",
        "udp.payload[-4:] == \"TAIL\"",
        "len(udp.payload) == 70004",
        "len(udp.payload) == 230",
        "udp contains \"TAIL\"",
        "tcp",
        "tcp.len",
        "tcp.len == 70004",
        "tcp.len > 65535",
        "tcp.payload",
        "tcp.payload contains \"TAIL\"",
        "len(tcp.payload) == 70004",
        "len(tcp.payload) == 218",
        "tcp contains \"TAIL\"",
        "icmpv6",
        "icmpv6.type == 128",
        "icmpv6 contains \"TAIL\"",
        "len(icmpv6) == 70012",
        "frame contains \"TRLR\"",
    ];
    assert_eq!(theirs(&file, "udp.payload contains \"TAIL\"").len(), 5, "tshark reads the jumbograms' payloads");
    let wrong = differences_among(&file, "frame", &exprs);
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An IP length that claims more than the frame holds on the wire (an IPv4 total length or
/// an IPv6 payload length of 100, whole or cut by a snap length, the wire holding less or
/// more than that): tshark takes the packet to end with the frame ("exceeds packet length")
/// and counts `tcp.len` from there; transitd counted it from the length field (60 where
/// tshark says 0). In Ethernet, raw-IP and Linux cooked captures alike, whose made-up
/// Ethernet header is no part of the capture's `frame.len` (so a raw-IP frame's IP packet
/// starts 14 bytes into the frame transitd reads, but 0 into tshark's). `ip.len`,
/// `ipv6.plen` and `udp.length` are the fields' own in both. scapy makes the packets; tshark
/// is the oracle.
#[test]
fn an_ip_length_past_the_frame_ends_the_packet_where_tshark_ends_it() {
    let dir = scratch_dir("match-ip-length-past-frame");
    let script = r#"
import struct, sys
from scapy.all import IP, IPv6, TCP, UDP, Raw
ethernet = lambda ether_type: bytes.fromhex('020000000002020000000001') + struct.pack('>H', ether_type)
cooked = lambda ether_type: struct.pack('>HHH8sH', 0, 1, 6, bytes.fromhex('020000000001'), ether_type)
v4 = IP(src='10.0.0.1', dst='10.0.0.2', len=100)
v6 = IPv6(src='2001:db8::1', dst='2001:db8::2', plen=100)
syn = TCP(sport=1234, dport=80, flags='S')
push = TCP(sport=1234, dport=80, flags='PA') / Raw(b'y' * 10)
udp = UDP(sport=1234, dport=53, len=80) / Raw(b'x' * 4)
# (packet, the bytes of it captured): whole, then cut behind the TCP header of a packet the
# wire holds less of, then more of, than the IP length says.
packets = [(bytes(ip / t), None) for ip in (v4, v6) for t in (syn, push, udp)]
for ip, header, shorter in ((v4, 20, 16), (v6, 40, 26)):
    packets += [(bytes(ip / syn / Raw(b'z' * n)), header + 20) for n in (shorter, 200)]
for linktype, link in ((1, ethernet), (101, lambda _: b''), (113, cooked)):
    out = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype)
    for i, (packet, kept) in enumerate(packets):
        frame = link(0x0800 if packet[0] >> 4 == 4 else 0x86dd) + packet
        cut = frame[:len(frame) - len(packet) + kept] if kept else frame
        out += struct.pack('<IIII', 1700000000 + i, 0, len(cut), len(frame)) + cut
    open('%s/%d.pcap' % (sys.argv[1], linktype), 'wb').write(out)
"#;
    let made = Command::new("/usr/bin/python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let exprs = [
        "tcp.len",
        "tcp.len == 0",
        "tcp.len == 10",
        "tcp.len == 16",
        "tcp.len == 26",
        "tcp.len == 60",
        "tcp.len == 80",
        "ip.len == 100",
        "ipv6.plen == 100",
        "udp.length == 80",
        "udp.checksum",
        "udp.payload",
        "tcp.payload",
        "frame.len == 40",
        "frame.len == 56",
        "frame.len == 72",
    ];
    let mut wrong = Vec::new();
    for link_type in [1, 101, 113] {
        let file = dir.join(format!("{link_type}.pcap"));
        // The oracle reads the lengths as this test means them: 0 in both SYNs, and the four
        // cut segments each its own.
        assert_eq!(theirs(&file, "tcp.len == 0").len(), 2, "{link_type}");
        assert_eq!(theirs(&file, "tcp.len == 16 or tcp.len == 26 or tcp.len == 60 or tcp.len == 80").len(), 4);
        wrong.extend(differences(&file, &exprs).into_iter().map(|d| format!("link type {link_type}: {d}")));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An MPLS stack under more than three VLAN tags (the frame is dropped, `too_many_vlan_tags`):
/// tshark reads the labels and the IP packet they carry, as it does under three; transitd
/// read neither past a fourth tag (an 802.1ad tag counts), where it reads an IP packet.
/// scapy makes the frames; tshark is the oracle.
#[test]
fn an_mpls_stack_under_too_many_vlan_tags_is_read_as_tshark_reads_it() {
    let script = r#"
import functools, struct
ip = bytes(IP(src='10.0.0.1', dst='10.0.0.2')/TCP(sport=1234, dport=80, flags='S'))
ip6 = bytes(IPv6(src='2001:db8::1', dst='2001:db8::2')/UDP(sport=1, dport=9)/Raw(b'x' * 10))
entry = lambda label, bottom: struct.pack('>I', label << 12 | (0x100 if bottom else 0) | 64)
stack = lambda labels: b''.join(entry(l, i == len(labels) - 1) for i, l in enumerate(labels))
e = lambda t: Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02', type=t)
tags = lambda ids, inner: [Dot1Q(vlan=v, type=0x8100) for v in ids[:-1]] + [Dot1Q(vlan=ids[-1], type=inner)]
chain = lambda t, ids, inner, payload: e(t)/functools.reduce(lambda a, b: a/b, tags(ids, inner))/Raw(payload)
# 1-3: a stack under four 802.1Q tags, under an 802.1ad tag and three, under five (multicast
# MPLS); 4: under three tags.
frames = [chain(0x8100, [1, 2, 3, 4], 0x8847, stack([16]) + ip), chain(0x88a8, [30, 1, 2, 3], 0x8847, stack([100, 16]) + ip6)]
frames += [chain(0x8100, [1, 2, 3, 4, 5], 0x8848, stack([16]) + ip), chain(0x8100, [1, 2, 3], 0x8847, stack([16]) + ip)]
"#;
    let file = scapy_capture("mpls-tags", script);
    assert_eq!(theirs(&file, "mpls and (ip or ipv6)"), BTreeSet::from([1, 2, 3, 4]));
    let wrong = differences(
        &file,
        &[
            "mpls",
            "mpls.label == 16",
            "mpls.label == 100",
            "mpls.bottom == 1",
            "ip",
            "ipv6",
            "tcp.port == 80",
            "udp.port == 9",
            "ip.src == 10.0.0.1",
            "vlan.id == 3",
            "ieee8021ad.id == 30",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// MPLS payloads the first nibble does not tell: behind a bottom label of 13 (GAL, RFC 5586)
/// tshark reads an associated channel (`pwach`), and IP only where its channel type says
/// IPv4 (0x0021) or IPv6 (0x0057), read as behind those EtherTypes whatever the nibble;
/// behind 14 (OAM alert) OAM, no IP. transitd read the IP packet behind either by its first
/// nibble, and none behind a channel header. Above the bottom, 13 and 14 change nothing; a
/// fourth label is read as the bottom too. scapy makes the frames; tshark is the oracle.
/// (Left out: a channel of type 0x0021 holding no byte, `ip` to tshark, none to transitd;
/// IPv6 behind type 0x0021, `ip` to tshark too, Differences 3.)
#[test]
fn mpls_special_labels_carry_what_tshark_reads_behind_them() {
    let script = r#"
import struct
ip = bytes(IP(src='10.0.0.1', dst='10.0.0.2')/UDP(sport=1, dport=5353)/Raw(b'x' * 10))
ip6 = bytes(IPv6(src='2001:db8::1', dst='2001:db8::2')/UDP(sport=1, dport=5353)/Raw(b'x' * 10))
entry = lambda label, bottom: struct.pack('>I', label << 12 | (0x100 if bottom else 0) | 64)
stack = lambda labels: b''.join(entry(l, i == len(labels) - 1) for i, l in enumerate(labels))
e = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02', type=0x8847)
mpls = lambda labels, payload: e/Raw(stack(labels) + payload)
ach = lambda channel: bytes([0x10, 0]) + struct.pack('>H', channel)
# 1-8: IP behind 13 or 14 at the bottom; 9-11: 13 and 14 above it, and a plain label.
frames = [mpls(labels, p) for labels in ([13], [14], [100, 13], [100, 14]) for p in (ip, ip6)]
frames += [mpls([13, 100], ip), mpls([14, 100], ip6), mpls([100], ip)]
# 12-19: channels of IPv4, IPv6, IPv4 behind a first nibble of 0, IPv6's holding IPv4 (a
# bogus `ipv6`), BFD, a header cut short, an IPv4 packet cut short; a channel behind 14.
frames += [mpls([13], ach(0x21) + ip), mpls([13], ach(0x57) + ip6), mpls([13], bytes(3) + b'\x21' + ip)]
frames += [mpls([13], ach(0x57) + ip), mpls([13], ach(7) + bytes(24)), mpls([13], ach(0x21)[:3])]
frames += [mpls([13], ach(0x21) + ip[:10]), mpls([14], ach(0x21) + ip)]
# 20-21: the bottom label fourth, past the three the key holds.
frames += [mpls([100, 200, 300, 13], ach(0x21) + ip), mpls([100, 200, 300, 14], ip)]
"#;
    let file = scapy_capture("mpls-gal", script);
    let exprs = [
        "ip",
        "ipv6",
        "udp",
        "udp.dstport == 5353",
        "ip.src == 10.0.0.1",
        "ipv6.src == 2001:db8::1",
        "ip.len == 38",
        "mpls",
    ];
    assert_eq!(theirs(&file, "ip or ipv6").len(), 9, "tshark reads IP behind a channel header and other labels");
    let wrong = differences(&file, &exprs);
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An address field whose destination the capture cut off (a snap length between the two
/// addresses) has one occurrence, the source: tshark's `!=`, `===` and `all` over the slices,
/// masks and `len()` of `ip.addr` and `ipv6.addr` ask every occurrence there is, so the source
/// alone decides. transitd asked the missing destination too, found it false, and selected
/// none of these frames (`ip.addr[0] != 0a` on a source of 163.253.48.183). scapy cuts IPv4
/// and IPv6 between and inside the addresses; whole packets beside them keep both
/// occurrences in play; tshark is the oracle.
#[test]
fn an_address_the_capture_cut_off_is_no_occurrence_of_the_field() {
    let script = "eth = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
         v4 = lambda src: eth/IP(src=src, dst='10.1.2.3')/UDP(sport=1, dport=2)\n\
         v6 = lambda src: eth/IPv6(src=src, dst='fe80::2')/UDP(sport=1, dport=2)\n\
         frames = [snap(v4(src), n) for src in ('163.253.48.183', '10.9.9.9') for n in (30, 33, 34)]\n\
         frames += [snap(v6(src), n) for src in ('2001:db8::1', 'fe80::1') for n in (38, 50, 54)]";
    let file = scapy_capture("cut-address", &[SNAP_PY, script].concat());
    let cut = ["ip.src and not ip.dst", "ipv6.src and not ipv6.dst"];
    assert_eq!(cut.map(|e| theirs(&file, e).len()), [4, 4], "cut between the addresses");
    let wrong = differences(
        &file,
        &[
            "ip.addr[0] != 0a",
            "ip.addr[0] == 0a",
            "ip.addr[0] === a3",
            "ip.addr[0] === 0a",
            "ip.addr[0] !== 0a",
            "ip.addr[0:2] != 0a:00",
            "ip.addr[4] != 00",
            "ip.addr[0] & 0f != 0a",
            "ip.addr[0] & 0f === 0a",
            "all ip.addr[0] == 0a",
            "all ip.addr[0] == a3",
            "any ip.addr[0] != 0a",
            "all ip.addr[0] & 08 == 08",
            "all len(ip.addr) == 4",
            "ip.addr[0] != 0a and len(ip.addr) == 4",
            "not ip.addr[0] != 0a",
            "ipv6.addr[0] != fe",
            "ipv6.addr[0] === 20",
            "ipv6.addr[0] === fe",
            "ipv6.addr[-1] != 02",
            "all ipv6.addr[0] == fe",
            "eth.addr[0] != 02",
            "ip.addr != 10.1.2.3",
            "ipv6.addr === fe80::2",
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(wrong.is_empty(), "{wrong:#?}");
}
