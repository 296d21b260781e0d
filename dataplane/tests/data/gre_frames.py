# Frames for the XDP program's and the data plane's differential test (tunnels/decapsulation.rs): GRE
# (and not GRE) to the anycast addresses of dataplane/tests/data/tunnel-edge.toml, from its
# tunnels' routers and from elsewhere, over IPv4 (options, fragments, AH) and IPv6 (chains
# of extension headers and AH), with GRE headers of every flag, version and payload, scapy
# builds them, from a fixed seed; the test sets NFRAMES, tags some and damages some
# (common::tagged, common::damaged).
import random
# scapy leaves AH's next header 0 (hop-by-hop) before these: name them.
for upper, nh in [(GRE, 47), (UDP, 17), (IPv6ExtHdrDestOpt, 60), (IPv6ExtHdrRouting, 43),
                  (IPv6ExtHdrFragment, 44), (IPv6ExtHdrHopByHop, 0), (AH, 51)]:
    bind_layers(AH, upper, nh=nh)
random.seed(47)
R4, R4K, R6 = '198.51.100.1', '198.51.100.2', '2001:db8:beef::1'
A4, A6 = '192.0.2.1', '2001:db8:ffff::1'
def junk(n): return bytes(random.randrange(256) for _ in range(n))
def inner():
    # From acme's network to the Internet (decapsulated), from elsewhere (spoofed), or junk.
    c = random.random()
    if c < 0.4: return IP(src='203.0.113.10', dst='198.18.0.10')/UDP(sport=5353, dport=53)/Raw(b'query')
    if c < 0.55: return IPv6(src='2001:db8:acbe::1', dst='2001:db8:1::1')/UDP(sport=5353, dport=53)/Raw(b'query')
    if c < 0.7: return IP(src='198.18.0.10', dst='198.18.0.11')/UDP(sport=5353, dport=53)/Raw(b'query')
    return Raw(junk(random.randrange(0, 40)))
def gre():
    g = GRE(proto=random.choice([0x0800, 0x0800, 0x86dd, 0x6558, 0x8847, 0x0000]))
    if random.random() < 0.3: g.key_present, g.key = 1, random.choice([7, 7, 9])
    if random.random() < 0.2:
        g.chksum_present = 1
        if random.random() < 0.3: g.chksum = 0x1234 # wrong (scapy fills in the right one if unset)
    if random.random() < 0.2: g.seqnum_present, g.seqence_number = 1, 5
    if random.random() < 0.1: g.version = 1
    if random.random() < 0.08: g.routing_present = 1
    return g/inner()
def ah(nh): return AH(nh=nh, payloadlen=4, spi=1, seq=1, icv=junk(12))
def v4():
    src = random.choice([R4, R4, R4K, '198.51.100.77'])
    ip = IP(src=src, dst=random.choice([A4] * 8 + ['203.0.113.9']), flags=random.choice([0, 0, 'DF', 'MF']),
            frag=random.choice([0] * 8 + [1, 185]))
    if random.random() < 0.15:
        ip.options = random.choice([[IPOption_NOP()] * 4, [IPOption_RR()], [IPOption_Router_Alert()], [IPOption_LSRR(routers=['192.0.2.9'])]])
    c = random.random()
    if c < 0.15: return ip/ah(47)/gre()
    if c < 0.2: return ip/ah(17)/UDP()/Raw(b'x')
    if c < 0.3: return ip/UDP(dport=random.choice([53, 4754]))/Raw(b'x')
    return ip/gre()
EXT = ['hop', 'dst', 'rt', 'frag', 'ah']
def v6():
    src = random.choice([R6, R6, '2001:db8:beef::99'])
    p = IPv6(src=src, dst=random.choice([A6] * 8 + ['2001:db8:acbe::9']))
    for i in range(random.choice([0, 0, 0, 1, 1, 2, 3, 8, 9])):
        e = random.choice(EXT)
        if e == 'hop': p = p/IPv6ExtHdrHopByHop()
        elif e == 'dst': p = p/IPv6ExtHdrDestOpt(options=random.choice([[], [PadN(optdata=b'\0' * 4)], [HAO()]]))
        elif e == 'rt': p = p/IPv6ExtHdrRouting(segleft=random.choice([0, 0, 1]), addresses=['2001:db8::5'])
        elif e == 'frag': p = p/IPv6ExtHdrFragment(offset=random.choice([0, 0, 1, 100]), m=random.choice([0, 1]), id=7)
        else: p = p/AH(payloadlen=4, spi=1, seq=1, icv=junk(12))
    if random.random() < 0.2: return p/UDP()/Raw(b'x')
    return p/gre()
frames = []
for _ in range(NFRAMES):
    f = Ether(dst='02:00:00:00:00:01')/(v4() if random.random() < 0.5 else v6())
    frames.append(f)
# Then ICMP errors to the anycast addresses (NICMP of them, from their own seed, so that
# the frames above stay as they were): Fragmentation Needed and Packet Too Big about our GRE
# to the tunnels' routers (path MTU discovery, pipeline/pmtu.rs) and about other packets,
# other errors, quotes cut short, with options, with a wrong checksum, fragmented.
random.seed(1191)
def quoted_gre(v6):
    g = GRE()
    if random.random() < 0.5: g.key_present, g.key = 1, random.choice([7, 7, 9])
    if random.random() < 0.2: g.chksum_present = 1
    body = g/IP(src='203.0.113.10', dst='198.18.0.10')/UDP()/Raw(junk(random.randrange(0, 64)))
    if v6:
        q = IPv6(src=random.choice([A6] * 6 + ['2001:db8::7']), dst=random.choice([R6, R6, '2001:db8:beef::99']),
                 nh=random.choice([47] * 8 + [17]))/body
    else:
        q = IP(src=random.choice([A4] * 6 + ['192.0.2.7']), dst=random.choice([R4, R4K, R4K, '198.51.100.77']),
               proto=random.choice([47] * 8 + [17]), flags='DF')/body
        if random.random() < 0.1: q.options = [IPOption_NOP()] * 4
    q = bytes(q)
    return Raw(q[:random.choice([len(q)] * 6 + [random.randrange(0, len(q))])])
def icmp_v4():
    ip = IP(src=random.choice(['203.0.113.250', '192.0.2.200']), dst=random.choice([A4] * 8 + ['203.0.113.9']),
            flags=random.choice([0] * 12 + ['MF']))
    if random.random() < 0.1: ip.options = [IPOption_NOP()] * 4
    m = ICMP(type=random.choice([3] * 8 + [11]), code=random.choice([4] * 8 + [1]),
             nexthopmtu=random.choice([0, 100, 576, 1400, 1476, 1500, 9000]))
    if random.random() < 0.1: m.chksum = 0x1234
    return ip/m/quoted_gre(False)
def icmp_v6():
    p = IPv6(src='2001:db8:5::1', dst=random.choice([A6] * 8 + ['2001:db8:acbe::9']))
    if random.random() < 0.1: p = p/IPv6ExtHdrDestOpt()
    m = random.choice([ICMPv6PacketTooBig(mtu=random.choice([0, 1000, 1300, 1400, 1500, 9000]))] * 8 + [ICMPv6TimeExceeded()])
    if random.random() < 0.1: m.cksum = 0x1234
    return p/m/quoted_gre(True)
for _ in range(NICMP):
    frames.append(Ether(dst='02:00:00:00:00:01')/(icmp_v4() if random.random() < 0.5 else icmp_v6()))
