# Frames for the XDP program's and the data plane's differential test of soft-unicast's
# return path (soft_unicast.rs): traffic to the shared egress addresses of
# dataplane/tests/data/soft-unicast.toml as it arrives at server a1, straight from the
# Internet or over the backbone from the fleet's servers (and from no server), with ports
# in every slice and the reserved range, ICMP echo replies and errors quoting our packets,
# fragments (first and later, of a few datagrams, so that later ones follow their first),
# IPv4 options and AH. scapy builds them, from a fixed seed; the test sets NFRAMES, tags
# some and damages some (common::tagged, common::damaged).
import random
random.seed(5355)
EGRESS = ['198.18.200.1', '198.18.201.0', '198.18.201.1']
A1, A2, B1 = '10.9.0.11', '10.9.0.12', '10.9.0.21'
def peer(): return random.choice(['192.0.2.77', '192.0.2.78', '203.0.113.40'])
def port(): return random.choice([random.randrange(0, 65536), random.randrange(1024, 8192), random.randrange(0, 1024)])
def junk(n): return bytes(random.randrange(256) for _ in range(n))
def quoted():
    q = IP(src=random.choice(EGRESS), dst=peer())
    c = random.random()
    if c < 0.4: return q/UDP(sport=port(), dport=53)
    if c < 0.7: return q/TCP(sport=port(), dport=443)
    if c < 0.85: return q/ICMP(type=8, id=port())
    q.frag, q.proto = random.choice([0, 100]), 17
    return q/Raw(junk(8))
def transport():
    c = random.random()
    if c < 0.35: return UDP(sport=53, dport=port())/Raw(b'answer')
    if c < 0.6: return TCP(sport=443, dport=port(), flags=random.choice(['SA', 'A', 'R']))
    if c < 0.75: return ICMP(type=0, id=port(), seq=1)/Raw(b'pong')
    if c < 0.9: return ICMP(type=random.choice([3, 11]), code=random.choice([0, 3, 4]))/quoted()
    return Raw(junk(random.randrange(0, 30)))
def ip_packet():
    ip = IP(src=peer(), dst=random.choice(EGRESS * 4 + ['198.18.200.2']), id=random.randrange(1, 5))
    if random.random() < 0.1:
        ip.options = random.choice([[IPOption_NOP()] * 4, [IPOption_Router_Alert()]])
    t = transport()
    c = random.random()
    if c < 0.1:
        ip.flags = 'MF'  # a first fragment
    elif c < 0.2:
        ip.frag, ip.proto = random.choice([1, 100, 185]), random.choice([6, 17, 1, 51])  # a later one
        return ip/Raw(junk(random.randrange(8, 64)))
    if random.random() < 0.05:
        return ip/AH(nh=17, payloadlen=4, spi=1, seq=1, icv=junk(12))/UDP(sport=53, dport=port())
    return ip/t
def backbone():
    good = (0x5355 << 8) | random.choice([1, 2])  # the fleet's key, hop 1 or 2
    g = GRE(key_present=1, key=random.choice([good] * 6 + [0x5355 << 8, (0x5355 << 8) | 3, 7]))
    if random.random() < 0.1: g.key_present = 0
    src = random.choice([A2, A2, B1, B1, '10.66.0.1'])
    return IP(src=src, dst=A1)/g/ip_packet()
frames = []
for _ in range(NFRAMES):
    f = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/(backbone() if random.random() < 0.3 else ip_packet())
    frames.append(f)
# Frames that the test's [dos.sanity] (land, tcp_flags, fragments; bogons by its own list,
# 100.64.0.0/10) or its [[dos.rule]] (UDP from port 11211) drops where it applies, to ports a1
# owns (1500, in its slice; 80, reserved: its data centre's) and to others' (4000, a2's; data
# centre b's address): a land packet, SYN+FIN, a tiny first fragment (8 bytes of TCP) and a
# later fragment of its datagram, a bogon source, memcached's port. Not random; the test
# runs them as they are, after the others (NFRAMES = 0 makes only these).
def judged_frames():
    out = []
    for n, (dst, dport) in enumerate([(EGRESS[0], 1500), (EGRESS[0], 80), (EGRESS[0], 4000), (EGRESS[1], 1500)]):
        src = '192.0.2.77'
        tcp_start = (443).to_bytes(2, 'big') + dport.to_bytes(2, 'big') + bytes(4)
        for ip in [IP(src=dst, dst=dst)/UDP(sport=53, dport=dport),
                   IP(src=src, dst=dst)/TCP(sport=443, dport=dport, flags='SF'),
                   IP(src=src, dst=dst, id=9000 + n, flags='MF', proto=6)/Raw(tcp_start),
                   IP(src=src, dst=dst, id=9000 + n, frag=3, proto=6)/Raw(bytes(16)),
                   IP(src='100.64.0.1', dst=dst)/UDP(sport=53, dport=dport),
                   IP(src=src, dst=dst)/UDP(sport=11211, dport=dport)/Raw(b'stats')]:
            out.append(Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/ip)
    return out
judged = judged_frames()
