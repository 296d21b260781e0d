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
