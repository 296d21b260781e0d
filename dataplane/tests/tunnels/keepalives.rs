//! GRE keepalives: which of our packets to a tunnel's router, looped back through its
//! tunnel, are returned, and which are spoofed.

use super::*;

/// Only an empty GRE packet (protocol type 0, nothing behind it) from our end of a tunnel to
/// its router is a keepalive to return. The same shape carrying a packet would reach the
/// router as if transitd had sent it, past the ingress stages; it is spoofed, and dropped.
#[test]
fn only_an_empty_gre_packet_is_returned_as_a_keepalive() {
    let config = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[dos.sanity]
bogons = false
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "t"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "t"
"#;
    let (us, router) = ([192, 0, 2, 1], [198, 51, 100, 1]);
    let eth = || etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1]);
    // Ours to the router, GRE with `gre` (flags and protocol type) and `payload` behind it.
    let ours_to_router = |gre: [u8; 4], payload: &[u8], ttl: u8| {
        let mut header =
            etherparse::Ipv4Header::new((4 + payload.len()) as u16, ttl, etherparse::IpNumber::GRE, us, router)
                .expect("fits");
        header.header_checksum = header.calc_header_checksum();
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
        frame.extend(header.to_bytes());
        frame.extend(gre);
        frame.extend(payload);
        frame
    };
    let mut flood = Vec::new();
    eth().ipv4([8, 8, 8, 8], [203, 0, 113, 10], 64).udp(1000, 53).write(&mut flood, b"x").unwrap();
    let frames = vec![
        in_gre(&ours_to_router([0, 0, 0, 0], &[], 255), router, us),
        in_gre(&ours_to_router([0, 0, 0x08, 0x00], &flood[14..], 255), router, us),
        in_gre(&ours_to_router([0, 0, 0, 0], b"payload", 255), router, us),
        // A keepalive whose TTL runs out here is dropped: a Time Exceeded would be
        // addressed to its source, ourselves (sent into the tunnel, it was).
        in_gre(&ours_to_router([0, 0, 0, 0], &[], 1), router, us),
    ];
    let (v, _, _) = verdicts_of(config, frames);
    let expect = ["tx:gre_keepalive", "decap_spoofed_source", "decap_spoofed_source", DropReason::TtlExceeded.name()];
    assert_eq!(fates(&v), expect);
}

/// A keepalive with a source route onward (scapy's LSRR and SSRR with a hop to go, an IPv6
/// routing header with a segment left) would leave here as ours and go on from the router
/// to the hop the route names (another customer's router, say), as a keepalive reply from
/// us: nothing a keepalive asks for, and RFC 7126 §4.3-4.4 has routers drop source routes.
/// It is spoofed, as a keepalive carrying anything more is. Record route is no source
/// route, and a route whose hops are all behind it (pointer past the end) goes nowhere on:
/// both are returned.
#[test]
fn a_keepalive_routed_on_beyond_the_router_is_not_returned() {
    let (config, _) = tunnel_edge();
    let file = temp("keepalive-routed");
    scapy_pcap(
        &file,
        "gre = lambda o, inner: Ether(dst='02:00:00:00:00:01')/o/GRE()/inner\n\
         ka4 = lambda opts: IP(src='192.0.2.1', dst='198.51.100.1', options=opts)/GRE(proto=0)\n\
         v4 = lambda opts: gre(IP(src='198.51.100.1', dst='192.0.2.1'), ka4(opts))\n\
         rh0 = lambda left: IPv6ExtHdrRouting(type=0, addresses=['2001:db8:beef::2'], segleft=left)\n\
         ka6 = lambda left: IPv6(src='2001:db8:ffff::1', dst='2001:db8:beef::1')/rh0(left)/GRE(proto=0)\n\
         v6 = lambda left: gre(IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1'), ka6(left))\n\
         on = ['198.51.100.2']\n\
         frames = [v4([]), v4([IPOption_LSRR(routers=on, pointer=4)]), v4([IPOption_SSRR(routers=on, pointer=4)]),\n\
         \x20         v4([IPOption_RR()]), v4([IPOption_LSRR(routers=on, pointer=8)]), v6(1), v6(0)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (returned, spoofed) = ("tx:gre_keepalive", DropReason::DecapSpoofedSource.name());
    assert_eq!(fates(&v), [returned, spoofed, spoofed, returned, returned, spoofed, returned]);
}
