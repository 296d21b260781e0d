//! The ICMP transitd originates: when an error is sent and when not (errors about errors,
//! fragments, broadcasts, sources no error may go to), from which address and how much it
//! quotes, echo replies from our side of a tunnel and the sources they go to, and the ICMP
//! budget they spend.

use super::*;

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
    scapy_pcap_with_gre(
        &file,
        "ping = IP(src='10.213.0.1', dst='10.213.0.0', options=[IPOption_NOP()] * 4)/ICMP(type=8, id=1, seq=1)\n\
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
    scapy_pcap_with_gre(
        &file,
        "ping = lambda src: IP(src=src, dst='203.0.113.201')/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
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
    scapy_pcap_with_gre(
        &file,
        "ping = lambda src: IP(src=src, dst='10.213.0.0')/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
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
    let (config, _) = tunnel_edge();
    // IPv6 needs 1280 bytes: acme's IPv6 route goes by its other tunnel here.
    let config = config.replacen("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nmtu = 300", 1).replacen(
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
        "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
        1,
    );
    let snap = snapshot(&config);
    let mut limits = transitd::pipeline::Limits::new(&snap);
    let mut send = |inner: &[u8]| {
        let input = in_gre(inner, [198, 51, 100, 1], [192, 0, 2, 1]);
        let (outcome, sent) = outcome_and_frame_with(&snap, Some(&snap.eth), &mut limits, &input, 1);
        (outcome.verdict, sent)
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

/// RFC 792: an ICMPv4 error quotes the offending datagram's header and the 64 bits after
/// it, by which its sender finds the socket (RFC 1122 §3.2.2). A tunnel of `mtu` 80 leaves
/// 52 bytes for the quote behind the error's own 28: a router's traceroute probe with 40
/// bytes of options (a 60-byte header; scapy writes both probes) got an error whose quote
/// ended inside the header, which tshark read as a source address and nothing after it (no
/// destination, no ports). It gets none (`ttl_exceeded`) and spends no token: with a burst
/// of one, the probe without options after it still gets its error, read whole by tshark.
#[test]
fn no_icmp_error_whose_quote_would_end_inside_the_header() {
    let config = small_acme_tunnel_one_icmp_token(80);
    let file = temp("quote-too-small");
    scapy_pcap_with_gre(
        &file,
        "udp = UDP(sport=33434, dport=33435)/Raw(b'x' * 10)\n\
         probe = lambda opts: IP(src='10.213.0.1', dst='8.8.8.8', ttl=1, options=opts)/udp\n\
         frames = [gre(probe([IPOption_NOP()] * 36 + [IPOption_Router_Alert()])), gre(probe([]))]",
    );
    let (out, stats) = replay_to(&config, &file, "quote-too-small-out");
    let _ = std::fs::remove_file(&file);
    assert_eq!(stats.dropped_for(DropReason::TtlExceeded), 1, "the optioned probe gets no error");
    assert_eq!(stats.sent_as(TxReason::IcmpTimeExceeded), 1, "the plain one gets its error");
    // The outer packet's, the error's and the quoted packet's destinations and header
    // lengths, and the quoted ports: one frame, the plain probe's error, read whole.
    let fields = tshark_checked(
        &out,
        &[
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "ip.dst",
            "-e",
            "ip.hdr_len",
            "-e",
            "udp.srcport",
            "-e",
            "icmp.checksum.status",
        ],
    );
    let _ = std::fs::remove_file(&out);
    assert_eq!(fields.trim(), "198.51.100.1,10.213.0.1,8.8.8.8\t20,20,20\t33434\t1");
}

/// acme's tunnel at `mtu`, its IPv6 route moved to acme-v6 (IPv6 needs 1280 bytes), and a
/// burst of one ICMP message: which errors took the token shows.
fn small_acme_tunnel_one_icmp_token(mtu: u32) -> String {
    let (config, _) = tunnel_edge();
    config
        .replacen("remote = \"198.51.100.1\"", &format!("remote = \"198.51.100.1\"\nmtu = {mtu}"), 1)
        .replacen(
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
            1,
        )
        .replacen("[server]\n", "[server]\nicmp_rate = 1\nicmp_burst = 1\n", 1)
}

/// The IPv6 twin of the test above: an ICMPv6 error quotes the packet's headers and the 8
/// bytes after them, or it reaches no socket (Linux reads that much: 6.18 dropped shorter
/// quotes of transitd's unread in a veth lab, counting them in Icmp6InErrors). A tunnel of
/// `mtu` 100 leaves 52 bytes behind the error's own 48. Three traceroute probes scapy
/// writes: from the Internet behind 1,296 bytes of Destination Options (the largest error,
/// 1,280 bytes, quotes 1,232 of them), out of the tunnel behind 16 bytes of them, and out
/// of it with none. The first two got errors cut inside their headers (tshark read no UDP
/// in them), the first taking the only token; now they get none (`ttl_exceeded`), and the
/// third gets its error, which tshark reads up to the quoted ports.
#[test]
fn no_icmpv6_error_whose_quote_would_end_before_the_ports() {
    let config = small_acme_tunnel_one_icmp_token(100);
    let file = temp("quote6-too-small");
    scapy_pcap_with_gre(
        &file,
        "udp = UDP(sport=33434, dport=33435)/Raw(b'x' * 10)\n\
         hop = lambda src, dst: IPv6(src=src, dst=dst, hlim=1)\n\
         opts = lambda pads: IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(n)) for n in pads])\n\
         internet = hop('2001:db8:5::9', '2001:db8:acbe::5')/opts([250] * 5 + [32])/udp\n\
         router = lambda: hop('2001:db8:acbe::5', '2001:db8:1::1')\n\
         frames = [Ether(dst='02:00:00:00:00:01')/internet, gre(router()/opts([12])/udp), gre(router()/udp)]",
    );
    let (out, stats) = replay_to(&config, &file, "quote6-too-small-out");
    let _ = std::fs::remove_file(&file);
    assert_eq!(stats.dropped_for(DropReason::TtlExceeded), 2, "the probes with headers too long get no error");
    assert_eq!(stats.sent_as(TxReason::IcmpTimeExceeded), 1, "the plain one gets its error");
    // The outer IPv4 destination; the error's and the quoted packet's destinations and next
    // headers; the quoted ports: one frame, the plain probe's error into acme's tunnel.
    let fields = tshark_checked(
        &out,
        &[
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "ipv6.nxt",
            "-e",
            "udp.srcport",
            "-e",
            "icmpv6.checksum.status",
        ],
    );
    let _ = std::fs::remove_file(&out);
    assert_eq!(fields.trim(), "198.51.100.1\t2001:db8:acbe::5,2001:db8:1::1\t58,17\t33434\t1");
}

/// An ICMPv6 error a tunnel of `mtu` 80 cannot carry (32 bytes left for the quote, less than
/// the IPv6 header) spent the token before it was found unwritable: with a burst of one, the
/// IPv4 probe after it (scapy writes both), whose error fits, got none. It spends none now.
#[test]
fn an_icmpv6_error_that_cannot_be_written_spends_no_token() {
    let config = small_acme_tunnel_one_icmp_token(80);
    let file = temp("quote6-no-room");
    scapy_pcap_with_gre(
        &file,
        "udp = UDP(sport=33434, dport=33435)/Raw(b'x' * 10)\n\
         frames = [gre(IPv6(src='2001:db8:acbe::5', dst='2001:db8:1::1', hlim=1)/udp),\n\
                   gre(IP(src='10.213.0.1', dst='8.8.8.8', ttl=1)/udp)]",
    );
    let (out, stats) = replay_to(&config, &file, "quote6-no-room-out");
    let _ = std::fs::remove_file(&file);
    assert_eq!(stats.dropped_for(DropReason::TtlExceeded), 1, "the IPv6 probe gets no error");
    assert_eq!(stats.sent_as(TxReason::IcmpTimeExceeded), 1, "the IPv4 one gets its error");
    let args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "ip.dst", "-e", "udp.srcport"];
    let fields = tshark_checked(&out, &args);
    let _ = std::fs::remove_file(&out);
    assert_eq!(fields.trim(), "198.51.100.1,10.213.0.1,8.8.8.8\t33434");
}

/// A Packet Too Big about a later IPv6 fragment quotes its headers up to and with its
/// fragment header: its data holds no transport header, and a receiver's walk of the quote
/// stops at that header (Linux's `ipv6_skip_exthdr` stops at a fragment header at a non-zero
/// offset, and `icmpv6_notify` reads its 8 bytes, no more; KAME's `icmp6_notify_error` reads
/// it whole and lowers the path MTU). The rule asked for 8 bytes of data past it as well,
/// which a tunnel of `mtu` 100 (52 bytes of quote behind the error's 48) cannot give: a later
/// fragment from acme's router to acme's prefix, too large for acme's IPv6 tunnel it goes
/// back out by (1456), was dropped as `mtu_exceeded` with no error. Its Packet Too Big now
/// goes back into acme's GRE tunnel, tshark reads the quoted fragment header in it, and Linux
/// (6.18, a network namespace of its own holding the fragment's source, given the error on a
/// veth) takes it without counting it in Icmp6InErrors, where it counts one cut inside the
/// fragment header. scapy writes the fragment.
#[test]
fn a_packet_too_big_about_a_later_fragment_quotes_up_to_its_fragment_header() {
    let config = small_acme_tunnel_one_icmp_token(100);
    let file = temp("too-big-later-fragment");
    scapy_pcap_with_gre(
        &file,
        "later = IPv6ExtHdrFragment(offset=185, m=1, nh=17, id=7)/Raw(bytes(1480))\n\
         frames = [gre(IPv6(src='2001:db8:acbe::5', dst='2001:db8:acbe::9')/later)]",
    );
    let (out, stats) = replay_to(&config, &file, "too-big-later-fragment-out");
    let _ = std::fs::remove_file(&file);
    assert_eq!(stats.sent_as(TxReason::IcmpTooBig), 1, "the later fragment gets its error");
    // The outer IPv4 destination; the error's and the quoted packet's addresses and payload
    // lengths (8 + 52: 40 bytes of IPv6 header, the fragment header's 8, 4 of data); the
    // MTU named; the quoted fragment header's offset; the error's checksum.
    let fields =
        ["ip.dst", "ipv6.src", "ipv6.dst", "ipv6.plen", "icmpv6.mtu", "ipv6.fraghdr.offset", "icmpv6.checksum.status"];
    let mut args = vec!["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"];
    for field in fields {
        args.extend(["-e", field]);
    }
    let error = tshark_checked(&out, &args);
    let sent = read_frames(&out).remove(0).bytes;
    let _ = std::fs::remove_file(&out);
    let (src, dst) = ("2001:db8:ffff::1,2001:db8:acbe::5", "2001:db8:acbe::5,2001:db8:acbe::9");
    assert_eq!(error, format!("198.51.100.1\t{src}\t{dst}\t60,1488\t1456\t185\t1\n"));
    // The error as it leaves the tunnel (behind Ethernet, the outer IPv4 and GRE's 4 bytes),
    // given to the fragment's source.
    let host = temp("too-big-later-fragment-host");
    let ethernet = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0xfe, 0x86, 0xdd];
    write_pcap(&host, &[[&ethernet[..], &sent[14 + 20 + 4..]].concat()]);
    let deltas = host_counter_deltas(&host, &["2001:db8:acbe::5/64"], &["Icmp6InPktTooBigs", "Icmp6InErrors"]);
    let _ = std::fs::remove_file(&host);
    assert_eq!(deltas, [1, 0], "taken, not counted as an error it cannot read");
}

/// A TTL-1 packet from a customer's router itself (a traceroute from its tunnel address,
/// which no customer prefix holds) gets its time-exceeded back through the tunnel it came
/// out of, not toward the Internet, where that address means nothing.
#[test]
fn icmp_errors_about_a_routers_own_packets_go_back_into_its_tunnel() {
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket};
    let (config, _) = tunnel_edge();
    let snap = snapshot(&config);
    let probe = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
        .ipv4([10, 213, 0, 1], [8, 8, 8, 8], 1)
        .udp(33434, 33435);
    let mut inner = Vec::new();
    probe.write(&mut inner, b"from the router").unwrap();
    let input = in_gre(&inner, [198, 51, 100, 1], [192, 0, 2, 1]);
    let mut limits = transitd::pipeline::Limits::new(&snap);
    let (outcome, sent) = outcome_and_frame_with(&snap, Some(&snap.eth), &mut limits, &input, 1);
    assert!(matches!(outcome.verdict, Verdict::Tx { reason: TxReason::IcmpTimeExceeded, .. }), "{:?}", outcome.verdict);
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
/// (RFC 4291 §2.5.5.2: not used on the wire; RFC 4443 §2.4 (e.3)). An IPv4-mapped one is
/// dropped as a packet whose error is rate-limited is (`ttl_exceeded`, `mtu_exceeded`); a
/// link-local one is not forwarded at all, and is dropped before its TTL or size is looked
/// at (`link_local_source`, RFC 3927 §2.7); the same packet from a global source is
/// answered. One from our side of a tunnel (someone else wrote it) is spoofed, dropped before
/// its TTL or size is looked at too (`spoofed_customer_source`).
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
    let (spoofed, ll) = (DropReason::SpoofedCustomerSource.name(), DropReason::LinkLocalSource.name());
    let expect = [ll, spoofed, late, ll, exceeded, late, ll, spoofed, big, ll, mtu, big];
    assert_eq!(fates(&v), expect);
}

/// Out of a tunnel, a link-local source is the tunnel's own link: a traceroute from a router
/// whose inner address is 169.254.10.1 gets its Time Exceeded back into the tunnel, where the
/// same packet from the Internet gets none (nor is it forwarded: `link_local_source`). Our
/// side of a tunnel gets none from either: with the inner network inside the customer's
/// prefix, a router sending as our side passes the source check, and the error went to
/// ourselves; the router's own side is answered.
#[test]
fn icmp_errors_answer_a_tunnels_link_local_router_but_not_our_side() {
    let (config, _) = tunnel_edge();
    let ours = "interface = \"10.213.0.0/31\"";
    let link_local = config.replace(ours, "interface = \"169.254.10.0/31\"");
    let in_prefix = config.replace(ours, "interface = \"203.0.113.254/31\"");
    let file = temp("icmp-tunnel-sources");
    scapy_pcap_with_gre(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         late = lambda src, dst='8.8.8.8': IP(src=src, dst=dst, ttl=1)/UDP(sport=33434, dport=33435)\n\
         frames = [gre(late('169.254.10.1')), e/late('169.254.10.1', '203.0.113.10'),\n\
                   gre(late('203.0.113.254')), gre(late('203.0.113.255'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (exceeded, answered) = (DropReason::TtlExceeded.name(), format!("tx:{}", TxReason::IcmpTimeExceeded.name()));
    let (v, _, _) = verdicts_of(&link_local, frames[..2].to_vec());
    let from_the_internet = DropReason::LinkLocalSource.name();
    assert_eq!(fates(&v), [answered.as_str(), from_the_internet], "the link-local router, then from the Internet");
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
    scapy_pcap_with_gre(
        &file,
        "ping = lambda **k: IP(src='10.213.0.1', dst='10.213.0.0')/ICMP(type=8, id=7, seq=1, **k)/Raw(b'hello')\n\
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

/// An error about a packet from another customer's host (with `customer_sources = false` it
/// comes from the Internet) goes into that customer's tunnel quoting what fits it (RFC 1812
/// §4.3.2.3: as much as fits), as an error back into the tunnel its packet came out of does:
/// the 576-byte error about a 1028-byte packet was dropped as `mtu_exceeded` at beta's
/// 500-byte tunnel, and its sender heard nothing. scapy writes the packet, tshark reads the
/// error: into beta's tunnel (key 7), 500 bytes long, checksums good, quoting the packet.
#[test]
fn an_error_into_a_customers_tunnel_quotes_what_fits_it() {
    let (config, _) = tunnel_edge();
    let config = config.replacen("[dos.sanity]\n", "[dos.sanity]\ncustomer_sources = false\n", 1).replacen(
        "key = 7\n",
        "key = 7\nmtu = 500\n",
        1,
    );
    let file = temp("icmp-into-small-tunnel");
    scapy_pcap(
        &file,
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.18.100.5', dst='203.0.113.10', ttl=1)\
         /UDP(sport=33434, dport=33435)/Raw(b'x' * 1000)]",
    );
    let received = read_frames(&file).remove(0).bytes;
    let (out, stats) = replay_to(&config, &file, "icmp-into-small-tunnel");
    let _ = std::fs::remove_file(&file);
    assert_eq!(stats.sent_as(TxReason::IcmpTimeExceeded), 1);
    let fields = ["ip.dst", "gre.key", "ip.len", "icmp.type", "icmp.checksum.status", "ip.checksum.status"];
    let mut args = vec!["-T", "fields"];
    for field in fields {
        args.extend(["-e", field]);
    }
    let error = tshark_checked(&out, &args);
    // The outer header, the error's and the quoted packet's, each field in that order.
    assert_eq!(error, "198.51.100.2,198.18.100.5,203.0.113.10\t0x00000007\t528,500,1028\t11\t1\t1,1,1\n");
    let sent = read_frames(&out).remove(0).bytes;
    let _ = std::fs::remove_file(out);
    // Behind Ethernet, the outer IPv4, GRE with its key and the error's IPv4 and ICMP headers.
    let quote = &sent[14 + 20 + 8 + 28..];
    assert_eq!(quote, &received[14..14 + 500 - 28], "the quote is the packet as received, cut to fit");
}

/// What is dropped on its way to an answer is dropped as it came and spends no ICMP token: a
/// ping of our side too long to go back through its tunnel (it was rewritten into its reply,
/// and the token spent, before the reply was found not to fit), and a packet whose Time
/// Exceeded has no route to the customer its source is in (`customer_sources = false`; the
/// error's headers were written over the packet's own, its Ethernet header included, before
/// the route was looked up). The drop capture holds both as scapy wrote them, and with a
/// burst of one, the packet after them still gets its error.
#[test]
fn what_is_dropped_on_its_way_to_an_answer_is_captured_as_it_came() {
    let (config, _) = tunnel_edge();
    let config = config
        .replacen("[server]\n", "[server]\nicmp_rate = 1\nicmp_burst = 1\n", 1)
        .replacen("[dos.sanity]\n", "[dos.sanity]\ncustomer_sources = false\n", 1)
        .replacen("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nmtu = 300", 1)
        // IPv6 needs 1280 bytes: acme's IPv6 route goes by its other tunnel here.
        .replacen(
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
            1,
        )
        // Beta's 198.18.100.128/25 has no route.
        .replacen("prefix = \"198.18.100.0/24\"", "prefix = \"198.18.100.0/25\"", 1);
    let file = temp("dropped-as-it-came");
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
         request = IP(src='10.213.0.1', dst='10.213.0.0')/ICMP(type=8, id=7, seq=1)/Raw(b'p' * 400)\n\
         ping = e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/request\n\
         late = lambda src: e/IP(src=src, dst='203.0.113.10', ttl=1)/UDP(sport=33434, dport=33435)\n\
         frames = [ping, late('198.18.100.200'), late('198.18.0.10')]",
    );
    let received: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, received.clone());
    let (mtu, no_route) = (DropReason::MtuExceeded.name(), DropReason::NoRoute.name());
    let late = format!("tx:{}", TxReason::IcmpTimeExceeded.name());
    assert_eq!(fates(&v), [mtu, no_route, late.as_str()]);

    let capture = temp("dropped-as-it-came-capture").with_extension("pcapng");
    let options = transitd::dropcap::CaptureOptions::new(capture.clone());
    let snap = std::sync::Arc::new(snapshot(&config));
    transitd::replay::replay_capturing(snap, &file, None, Some(options)).unwrap();
    let _ = std::fs::remove_file(&file);
    let comments = tshark(&capture, &["-T", "fields", "-e", "frame.comment"]);
    let reasons: Vec<&str> = comments.lines().map(|c| c.split(';').next().unwrap_or(c)).collect();
    assert_eq!(reasons, ["drop: mtu_exceeded", "drop: no_route"]);
    let captured: Vec<Vec<u8>> = read_frames(&capture).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&capture);
    assert_eq!(captured, received[..2], "captured as received");
}

/// A ping of our side of a tunnel whose reply cannot leave (the next hop not resolved yet,
/// as in the first moments of a run) is dropped as it came: it was rewritten into its reply
/// and an ICMP token spent on it before the reply was dropped, so that a drop capture held
/// a reply nobody sent. The frame after the pipeline is the request scapy wrote.
#[test]
fn a_ping_of_our_side_that_cannot_leave_is_dropped_as_it_came() {
    let (config, _) = tunnel_edge();
    let config = config.replacen("[server]\n", "[server]\nicmp_rate = 1\nicmp_burst = 1\n", 1);
    let file = temp("ping-unresolved");
    scapy_pcap(
        &file,
        "frames = [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')\
         /GRE()/IP(src='10.213.0.1', dst='10.213.0.0')/ICMP(type=8, id=7, seq=1)/Raw(b'p' * 40)]",
    );
    let request = read_frames(&file).remove(0).bytes;
    let _ = std::fs::remove_file(&file);
    let snap = snapshot(&config);
    let mut limits = transitd::pipeline::Limits::new(&snap);
    let (unresolved, after) = outcome_and_frame_with(&snap, None, &mut limits, &request, 1_000_000_000);
    assert_eq!(unresolved.verdict, Verdict::Drop(DropReason::NextHopUnresolved));
    assert_eq!(after, request, "the request as it came");
    // Resolved, the same ping is answered: the unresolved one spent nothing of the budget.
    let (answered, _) = outcome_and_frame_with(&snap, Some(&snap.eth), &mut limits, &request, 1_000_000_000);
    assert!(matches!(answered.verdict, Verdict::Tx { reason: TxReason::EchoReply, .. }), "{:?}", answered.verdict);
}
