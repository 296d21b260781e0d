//! Addresses a packet may not go to or come from: martian and link-broadcast destinations
//! out of a tunnel, a tunnel's /30 broadcasts, our side of a tunnel (from another tunnel, or
//! from the Internet inside its customer's prefix), frames to a link-group address, and our
//! own addresses as sources from the Internet.

use super::*;

/// Out of a tunnel, a packet to an address no router forwards to is dropped, not sent to
/// the next hop: network 0, loopback, link-local, multicast, class E and the limited
/// broadcast (RFC 1812 §5.3.7, RFC 3927 §7), IPv6's unspecified, loopback, link-local,
/// multicast and IPv4-mapped addresses (RFC 4291, RFC 6890), and our own anycast
/// addresses (RFC 1812 §5.2.3: delivered, not forwarded). Beside them, the addresses just
/// outside each range go through.
#[test]
fn decapsulated_packets_to_martian_destinations_are_dropped() {
    let (config, _) = tunnel_edge();
    let file = temp("decap-martians");
    let martians = [
        "0.1.2.3",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.5",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "ff02::1",
        "::ffff:8.8.8.8",
        "192.0.2.1",
        "2001:db8:ffff::1",
    ];
    let neighbours = [
        "1.0.0.0",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "223.255.255.255",
        "fec0::1",
        "::2",
        "192.0.2.2",
        "2001:db8:ffff::2",
    ];
    let list = |a: &[&str]| a.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let script = format!(
        "def gre(dst):\n\
         \x20   inner = IPv6(src='2001:db8:acbe::7', dst=dst) if ':' in dst else IP(src='203.0.113.7', dst=dst)\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner/UDP(sport=5000, dport=53)\n\
         frames = [gre(d) for d in [{}, {}]]",
        list(&martians),
        list(&neighbours)
    );
    scapy_pcap(&file, &script);
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    assert_eq!(v.len(), martians.len() + neighbours.len(), "a verdict for every frame written");
    for (dst, v) in martians.iter().zip(&v) {
        assert_eq!(*v, Verdict::Drop(DropReason::DecapMartianDestination), "{dst}");
    }
    for (dst, v) in neighbours.iter().zip(&v[martians.len()..]) {
        assert!(matches!(v, Verdict::Tx { reason: TxReason::Decapsulated, .. }), "{dst}: {v:?}");
    }
}

/// Out of a tunnel, a packet to the network or broadcast address of the tunnel's inner /30
/// is a broadcast on its link (RFC 1812 §4.2.3.1), which no router forwards by default (RFC
/// 2644): dropped, where it went to the next hop, and a TTL of 1 gets no Time Exceeded
/// (§4.3.2.7). The next /30, which no tunnel has, goes through; so do the router's side of a
/// /31, which has no broadcast address (RFC 3021), and the broadcast of the /30 around it.
#[test]
fn decapsulated_packets_to_their_tunnels_broadcast_addresses_are_dropped() {
    let (config, _) = tunnel_edge();
    let slash30 = config.replace("interface = \"10.213.0.0/31\"", "interface = \"10.213.0.1/30\"");
    let file = temp("decap-link-broadcast");
    scapy_pcap_with_gre(
        &file,
        "udp = lambda dst, src='203.0.113.7', ttl=64: IP(src=src, dst=dst, ttl=ttl)/UDP(sport=5000, dport=53)\n\
         frames = [gre(udp('10.213.0.0')), gre(udp('10.213.0.3')), gre(udp('10.213.0.3', src='10.213.0.2')),\n\
                   gre(udp('10.213.0.3', ttl=1)), gre(udp('10.213.0.4')),\n\
                   gre(udp('10.213.0.1')), gre(udp('10.213.0.3'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (martian, sent) = (DropReason::DecapMartianDestination.name(), format!("tx:{}", TxReason::Decapsulated.name()));
    let sent = sent.as_str();
    let (v, _, _) = verdicts_of(&slash30, frames[..5].to_vec());
    assert_eq!(fates(&v), [martian, martian, martian, martian, sent], "/30: network, broadcast (thrice), next");
    let (v, _, _) = verdicts_of(&config, frames[5..].to_vec());
    assert_eq!(fates(&v), [sent, sent], "/31: the router's side, the /30's broadcast");
}

/// A tunnel's inner /30 inside its customer's own prefix (the configuration allows it): from
/// the Internet, a packet to its network or broadcast address is a directed broadcast onto
/// that link, which a router does not forward (RFC 1812 §4.2.3.1, RFC 2644): dropped as
/// `tunnel_broadcast`, a TTL-1 one too, where all were encapsulated into the tunnel. Out of
/// another customer's tunnel it is `decap_martian_destination`, as out of its own. The
/// router's side and the next address go on, as the same addresses do under a /31, which
/// has no broadcast (RFC 3021). scapy writes the frames.
#[test]
fn packets_to_a_tunnels_30_broadcast_in_its_customers_prefix_are_not_forwarded() {
    let (config, _) = tunnel_edge();
    let inside = config.replace("interface = \"10.213.0.0/31\"", "interface = \"203.0.113.201/30\"");
    let file = temp("tunnel-broadcast-inside");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         net = lambda dst, ttl=64: e/IP(src='198.51.100.9', dst=dst, ttl=ttl)/UDP(sport=5000, dport=53)\n\
         inner = lambda dst: IP(src='198.18.100.5', dst=dst)/UDP(sport=5000, dport=53)\n\
         beta = lambda dst: e/IP(src='198.51.100.2', dst='192.0.2.1')/GRE(key_present=1, key=7)/inner(dst)\n\
         frames = [net('203.0.113.203'), net('203.0.113.200'), net('203.0.113.203', ttl=1), beta('203.0.113.203'),\n\
         \x20         net('203.0.113.202'), net('203.0.113.204'), beta('203.0.113.202')]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (broadcast, martian) = (DropReason::TunnelBroadcast.name(), DropReason::DecapMartianDestination.name());
    let sent = format!("tx:{}", TxReason::Encapsulated.name());
    let sent = sent.as_str();
    let (v, _, _) = verdicts_of(&inside, frames.clone());
    assert_eq!(fates(&v), [broadcast, broadcast, broadcast, martian, sent, sent, sent]);
    let (v, _, _) = verdicts_of(&config, frames);
    assert_eq!(fates(&v)[..3], [sent, sent, "tx:icmp_time_exceeded"], "under a /31 the same addresses are hosts'");
}

/// A tunnel's inner /31 inside its customer's own prefix (the configuration allows it): from
/// the Internet, a packet to our side of it (a ping, a datagram, one whose TTL runs out) is
/// `tunnel_interface`, where it was encapsulated into the tunnel: an address of ours, which
/// a router delivers and does not forward (RFC 1812 §5.2.3), and which is served through
/// its tunnel alone, as a ping of it from the router's side is answered. The router's side
/// and the next address go on; under a private /31 the same address is a host's, and goes
/// on too. scapy writes the frames.
#[test]
fn packets_from_the_internet_to_our_side_of_a_tunnel_in_its_customers_prefix_are_not_forwarded() {
    let (config, _) = tunnel_edge();
    let inside = config.replace("interface = \"10.213.0.0/31\"", "interface = \"203.0.113.200/31\"");
    let file = temp("our-side-inside");
    scapy_pcap_with_gre(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         net = lambda dst, ttl=64: e/IP(src='198.18.0.10', dst=dst, ttl=ttl)/UDP(sport=5000, dport=53)\n\
         ping = lambda src, dst: IP(src=src, dst=dst)/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         frames = [e/ping('198.18.0.10', '203.0.113.200'), net('203.0.113.200'), net('203.0.113.200', ttl=1),\n\
         \x20         net('203.0.113.201'), net('203.0.113.202'), gre(ping('203.0.113.201', '203.0.113.200'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let ours = DropReason::TunnelInterface.name();
    let (sent, reply) = (format!("tx:{}", TxReason::Encapsulated.name()), format!("tx:{}", TxReason::EchoReply.name()));
    let (sent, reply) = (sent.as_str(), reply.as_str());
    let (v, _, _) = verdicts_of(&inside, frames.clone());
    assert_eq!(fates(&v), [ours, ours, ours, sent, sent, reply]);
    let (v, _, _) = verdicts_of(&config, frames[..3].to_vec());
    assert_eq!(fates(&v), [sent, sent, "tx:icmp_time_exceeded"], "under a private /31, a host's address");
}

/// Out of a tunnel, a packet to an address of ours other than the anycast addresses is
/// dropped as one to those is (`decap_martian_destination`: a router delivers its own
/// addresses and forwards none, RFC 1812 §5.2.3), where it left for the next hop: our side of
/// another customer's tunnel (beta's 10.214.0.0; a datagram and a ping), and our side of
/// acme's IPv4 tunnel reached through acme's IPv6 tunnel. The routers' sides of the same
/// links go on, and a ping of our side through its own tunnel is answered. scapy writes them.
#[test]
fn decapsulated_packets_to_our_side_of_another_tunnel_are_dropped() {
    let (config, _) = tunnel_edge();
    let config = config.replace("key = 7\n", "key = 7\ninterface = \"10.214.0.0/31\"\n");
    let file = temp("decap-our-sides");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         v4 = lambda inner: e/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/inner\n\
         v6 = lambda inner: e/IPv6(src='2001:db8:beef::1', dst='2001:db8:ffff::1')/GRE()/inner\n\
         udp = lambda dst: IP(src='203.0.113.7', dst=dst)/UDP(sport=5000, dport=53)\n\
         ping = lambda dst: IP(src='203.0.113.7', dst=dst)/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         frames = [v4(udp('10.214.0.0')), v4(ping('10.214.0.0')), v6(udp('10.213.0.0')), v6(ping('10.213.0.0')),\n\
         \x20         v4(udp('10.214.0.1')), v6(udp('10.213.0.1')), v4(ping('10.213.0.0'))]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let martian = DropReason::DecapMartianDestination.name();
    let sent = format!("tx:{}", TxReason::Decapsulated.name());
    let reply = format!("tx:{}", TxReason::EchoReply.name());
    let (sent, reply) = (sent.as_str(), reply.as_str());
    assert_eq!(fates(&v), [martian, martian, martian, martian, sent, sent, reply]);
}

/// RFC 1812 §5.3.4: a frame sent to an Ethernet broadcast or multicast address is not
/// forwarded, nor answered with an ICMP error (a TTL-1 one drew Time Exceeded), whether for a
/// customer or GRE to the anycast address; the same packets to this host's own MAC go
/// through. Traffic for no customer is the host's to judge, as before.
#[test]
fn frames_to_a_link_group_address_are_not_forwarded() {
    let (config, _) = tunnel_edge();
    let file = temp("link-group");
    scapy_pcap(
        &file,
        "udp = UDP(sport=5000, dport=53)\n\
         to_customer = IP(src='198.51.100.9', dst='203.0.113.5')/udp\n\
         expiring = IP(src='198.51.100.9', dst='203.0.113.5', ttl=1)/udp\n\
         v6 = IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5')/udp\n\
         gre = IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/IP(src='203.0.113.7', dst='198.51.100.200')/udp\n\
         to_host = IP(src='198.51.100.9', dst='198.51.100.77')/udp\n\
         group = ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '33:33:00:00:00:01', '03:00:00:00:00:00']\n\
         frames = [Ether(dst=m)/to_customer for m in group]\n\
         frames += [Ether(dst='ff:ff:ff:ff:ff:ff')/p for p in (expiring, v6, gre, to_host)]\n\
         frames += [Ether(dst='02:00:00:00:00:01')/p for p in (to_customer, expiring, v6, gre)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, stats, _) = verdicts_of(&config, frames);
    let _ = std::fs::remove_file(&file);
    let group = Verdict::Drop(DropReason::LinkBroadcast);
    assert_eq!(v[..7], [group; 7], "to a customer, expiring, IPv6, GRE: {v:?}");
    assert_eq!(v[7], Verdict::Pass(PassReason::NoCustomer), "for the host");
    let sent = |v: &Verdict, reason: TxReason| matches!(v, Verdict::Tx { reason: r, .. } if *r == reason);
    assert!(sent(&v[8], TxReason::Encapsulated), "{:?}", v[8]);
    assert!(sent(&v[9], TxReason::IcmpTimeExceeded), "{:?}", v[9]);
    assert!(sent(&v[10], TxReason::Encapsulated), "{:?}", v[10]);
    assert!(sent(&v[11], TxReason::Decapsulated), "{:?}", v[11]);
    assert_eq!(stats.dropped_for(DropReason::LinkBroadcast), 7);
}

/// A packet from the Internet whose source is one of the edge's own addresses (the anycast
/// addresses, our side of a tunnel) is spoofed, whatever `customer_sources` says: the edge
/// sends to a customer from those only through the customer's tunnel (strict reverse-path
/// forwarding, RFC 3704 §2.2; Linux drops a source of its own as a martian), and let on it
/// would reach the router through its tunnel as the edge's own. The same packets from a
/// global source, and from the router's side of the tunnel, go on; scapy writes them.
#[test]
fn packets_from_the_internet_with_a_source_of_ours_are_spoofed() {
    let (config, _) = tunnel_edge();
    let config = config.replace("bogons = false", "bogons = false\ncustomer_sources = false");
    let file = temp("our-sources");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         v4 = lambda src: e/IP(src=src, dst='203.0.113.10')/UDP(sport=5000, dport=53)\n\
         v6 = lambda src: e/IPv6(src=src, dst='2001:db8:acbe::10')/UDP(sport=5000, dport=53)\n\
         frames = [v4('192.0.2.1'), v4('10.213.0.0'), v6('2001:db8:ffff::1'),\n\
         \x20         v4('198.18.0.10'), v4('10.213.0.1'), v6('2001:db8:5::9')]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (spoofed, sent) = (DropReason::SpoofedCustomerSource.name(), format!("tx:{}", TxReason::Encapsulated.name()));
    let sent = sent.as_str();
    assert_eq!(fates(&v), [spoofed, spoofed, spoofed, sent, sent, sent]);
}

/// RFC 3927 §2.7, RFC 4291 §2.5.6: a router forwards no packet from a link-local source,
/// whatever its TTL. From the Internet to a customer, one is dropped (`link_local_source`)
/// with `bogons = false` too, where it was encapsulated into the customer's tunnel. The
/// sources sweep the spaces' edges (every first octet with the last three of 169.253.255.255
/// to 169.255.0.0, every IPv6 prefix from fe00:: to ffff::); Python's ipaddress says which
/// are link-local, in each frame's last byte (`L`). The others go through.
#[test]
fn packets_from_a_link_local_source_are_not_forwarded_to_a_customer() {
    let (config, _) = tunnel_edge();
    let file = temp("link-local-sources");
    scapy_pcap(
        &file,
        "import ipaddress\n\
         e = Ether(dst='02:00:00:00:00:01')\n\
         def to_customer(src):\n\
         \x20   tag = Raw(b'L' if ipaddress.ip_address(src).is_link_local else b'G')\n\
         \x20   ip = IPv6(src=src, dst='2001:db8:acbe::10') if ':' in src else IP(src=src, dst='203.0.113.10')\n\
         \x20   return e/ip/UDP(sport=5000, dport=9)/tag\n\
         ends = [(253, 255, 255), (254, 0, 0), (254, 99, 1), (254, 255, 255), (255, 0, 0)]\n\
         sources = ['%d.%d.%d.%d' % ((a,) + rest) for a in range(256) for rest in ends]\n\
         sources += ['%x::1' % w for w in range(0xfe00, 0x10000)] + ['fe80::1:2:3:4', 'febf:ffff::1']\n\
         frames = [to_customer(s) for s in sources]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, stats, _) = verdicts_of(&config, frames.clone());
    assert_eq!(v.len(), 256 * 5 + 512 + 2, "a verdict for every frame written");
    for (n, (frame, v)) in (1..).zip(frames.iter().zip(&v)) {
        if frame.last() == Some(&b'L') {
            assert_eq!(*v, Verdict::Drop(DropReason::LinkLocalSource), "frame {n}");
        } else {
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "frame {n}: {v:?}");
        }
    }
    // 169.254.0.0/16's three, and fe80::/10's 64 prefixes and two more.
    let link_local = frames.iter().filter(|f| f.last() == Some(&b'L')).count();
    assert_eq!((link_local, stats.dropped_for(DropReason::LinkLocalSource)), (69, 69));
}

/// Out of a tunnel, a link-local source is the tunnel's own link (the router's inner address
/// may be one: 169.254.10.1 here, our side 169.254.10.0): a ping of our side is answered and
/// a traceroute gets its Time Exceeded back into the tunnel, but nothing from it is sent on
/// (RFC 3927 §2.7, RFC 4291 §2.5.6): to the Internet, to another customer or back into its
/// own tunnel it is `link_local_source`, where it went out. The same from the customer's own
/// address goes through. Under a catch-all customer, whose prefixes hold every source its
/// tunnel may send from, 169.254/16 and fe80::/10 ones are not sent on either. scapy writes
/// the frames.
#[test]
fn out_of_a_tunnel_a_link_local_source_reaches_its_own_link_alone() {
    let (config, _) = tunnel_edge();
    let link_local = config.replace("interface = \"10.213.0.0/31\"", "interface = \"169.254.10.0/31\"");
    let file = temp("link-local-out-of-a-tunnel");
    scapy_pcap_with_gre(
        &file,
        "udp = lambda src, dst, ttl=64: IP(src=src, dst=dst, ttl=ttl)/UDP(sport=5000, dport=9)\n\
         ping = IP(src='169.254.10.1', dst='169.254.10.0')/ICMP(type=8, id=1, seq=1)/Raw(b'ping')\n\
         frames = [gre(udp('169.254.10.1', '8.8.8.8')), gre(udp('169.254.10.1', '198.18.100.5')),\n\
         \x20         gre(udp('169.254.10.1', '203.0.113.7')), gre(udp('169.254.10.1', '8.8.8.8', ttl=1)), gre(ping),\n\
         \x20         gre(udp('203.0.113.7', '8.8.8.8')), gre(udp('169.254.1.1', '8.8.8.8')),\n\
         \x20         gre(IPv6(src='fe80::1', dst='2001:db8::5')/UDP(sport=5000, dport=9)), gre(udp('198.18.0.1', '8.8.8.8'))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let tx = |r: TxReason| format!("tx:{}", r.name());
    let (late, reply, out, sent) = (
        tx(TxReason::IcmpTimeExceeded),
        tx(TxReason::EchoReply),
        tx(TxReason::Decapsulated),
        tx(TxReason::Encapsulated),
    );
    let (late, reply, out, sent) = (late.as_str(), reply.as_str(), out.as_str(), sent.as_str());
    let ll = DropReason::LinkLocalSource.name();
    let (v, _, _) = verdicts_of(&link_local, frames[..6].to_vec());
    assert_eq!(fates(&v), [ll, ll, ll, late, reply, out], "to the Internet, beta, acme; answered; acme's own");
    let (v, _, _) = verdicts_of(CATCH_ALL, frames[6..].to_vec());
    assert_eq!(fates(&v), [ll, ll, sent], "under a catch-all");
}
