//! Hairpinned packets (out of one customer's tunnel into another's prefix) meet what a packet
//! from the Internet meets: the source-route check, the sanity checks (before the egress
//! rules) and the global DoS rules.

use super::*;

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
    scapy_pcap_with_gre(
        &file,
        "syn = lambda src, dst, sport: IP(src=src, dst=dst)/TCP(sport=sport, dport=80, flags='S')\n\
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

/// A hairpinned frame meets the global rules twice, as the GRE packet and as the packet it
/// carries, and keeps one rule of each kind for its counters: the carried packet's where it
/// met one, else the GRE packet's, a monitor-mode rule with its own preview's refusals. A
/// monitor-mode limit on the GRE packets counts what it drops enforced (the oracle), though
/// an enforced rule decides the carried packets; a monitor-mode rule on the carried packets
/// whose bucket refuses nothing counts no refusal. Before, the first showed no hit at all
/// and the second the GRE packets' three refusals.
#[test]
fn a_hairpinned_frame_counts_each_global_preview_for_its_own_rule() {
    let (config, _) = tunnel_edge();
    let with = |gre_mode: &str, carried: &str| {
        config.replacen(
            "[dos.sanity]\n",
            &format!(
                "[[dos.bucket]]\nname = \"one\"\nkey = \"rule\"\nrate = 1\nburst = 1\n\n\
                 [[dos.bucket]]\nname = \"wide\"\nkey = \"rule\"\nrate = 1000000\nburst = 1000\n\n\
                 [[dos.rule]]\nname = \"gre\"\nmatch = \"ip.proto == 47\"\naction = \"rate-limit\"\nbucket = \"one\"\n\
                 mode = \"{gre_mode}\"\n\n{carried}[dos.sanity]\n"
            ),
            1,
        )
    };
    let accept = "[[dos.rule]]\nname = \"udp\"\nmatch = \"udp\"\naction = \"accept\"\n\n";
    let watch = "[[dos.rule]]\nname = \"udp\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"wide\"\n\
                 mode = \"monitor\"\n\n";
    let file = temp("hairpin-previews");
    scapy_pcap(
        &file,
        "inner = lambda sport: IP(src='203.0.113.7', dst='198.18.100.5')/UDP(sport=sport, dport=53)\n\
         frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner(5000 + i) \
         for i in range(4)]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (sent, limited) = (format!("tx:{}", TxReason::Encapsulated.name()), DropReason::RateLimited.name());
    let sent = sent.as_str();
    // All at one time: the GRE packets' limit passes one, enforced.
    let (v, _, _) = verdicts_of(&with("enforce", accept), frames.clone());
    assert_eq!(fates(&v), [sent, limited, limited, limited]);
    let (v, stats, _) = verdicts_of(&with("monitor", accept), frames.clone());
    assert_eq!(fates(&v), [sent; 4], "monitor mode changes no verdict");
    assert_eq!((stats.dos_hits[0], stats.dos_would_limit[0]), (4, 3), "the GRE packets' preview");
    assert_eq!(stats.dos_hits[1], 4, "the carried packets' rule");
    let (_, stats, _) = verdicts_of(&with("monitor", watch), frames);
    assert_eq!((stats.dos_hits[1], stats.dos_would_limit[1]), (4, 0), "a bucket that refuses nothing");
}

/// A monitor-mode rate limit previews what it drops enforced (the oracle, docs/dos.md) on
/// hairpinned frames too, whose GRE packet and carried packet it charges under two keys.
/// One a second per destination, all at one time: the second GRE packet (to the anycast
/// address) is refused, so enforced its carried packet never spends the token of
/// 198.18.100.6, and a packet from the Internet to that host then passes. Before, the
/// preview charged the carried packet after refusing the GRE packet, and counted the third
/// frame as refused too.
#[test]
fn a_preview_of_hairpinned_frames_counts_what_enforcing_drops() {
    let (config, _) = tunnel_edge();
    let with = |mode: &str| {
        config.replacen(
            "[dos.sanity]\n",
            &format!(
                "[[dos.bucket]]\nname = \"per-destination\"\nkey = \"destination\"\nrate = 1\nburst = 1\n\n\
                 [[dos.rule]]\nname = \"all\"\nmatch = \"ip\"\naction = \"rate-limit\"\n\
                 bucket = \"per-destination\"\nmode = \"{mode}\"\n\n[dos.sanity]\n"
            ),
            1,
        )
    };
    let file = temp("hairpin-preview-keys");
    scapy_pcap(
        &file,
        "inner = lambda dst: IP(src='203.0.113.7', dst=dst)/UDP(sport=5000, dport=53)\n\
         gre = lambda dst: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner(dst)\n\
         frames = [gre('198.18.100.5'), gre('198.18.100.6'),\n\
                   Ether(dst='02:00:00:00:00:01')/IP(src='8.8.8.8', dst='198.18.100.6')/UDP(sport=5000, dport=53)]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (sent, limited) = (format!("tx:{}", TxReason::Encapsulated.name()), DropReason::RateLimited.name());
    let sent = sent.as_str();
    let (v, _, _) = verdicts_of(&with("enforce"), frames.clone());
    assert_eq!(fates(&v), [sent, limited, sent], "enforced: the second GRE packet is refused");
    let (v, stats, _) = verdicts_of(&with("monitor"), frames);
    assert_eq!(fates(&v), [sent; 3], "monitor mode changes no verdict");
    assert_eq!((stats.dos_hits[0], stats.dos_would_limit[0]), (3, 1), "the preview refuses what enforcing drops");
}
