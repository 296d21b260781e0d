#!/usr/bin/python3
"""Writes tunnel-edge.pcap: both directions of a GRE tunnel edge, for
dataplane/tests/tunnels/ and its configuration (dataplane/tests/data/tunnel-edge.toml).

Customer acme (203.0.113.0/24, 2001:db8:acbe::/48) has its router at 198.51.100.1 (tunnel
acme-gre, inner /31 10.213.0.0/31, our side .0) and at 2001:db8:beef::1 (tunnel acme-v6, GRE
over IPv6); customer beta (198.18.100.0/24) at 198.51.100.2 (tunnel beta-gre, key 7). The
anycast addresses are 192.0.2.1 and 2001:db8:ffff::1. Each frame's comment says what the
configuration must do with it. Run with Debian's python3-scapy:
  /usr/bin/python3 pcaps/generated/tunnel_edge.py pcaps/generated/tunnel-edge.pcap
"""
import struct
import sys

from scapy.all import (GRE, ICMP, IP, TCP, UDP, Ether, ICMPv6EchoRequest, IPv6, Raw,
                       wrpcap)
from scapy.layers.l2 import GRE_PPTP

SRC_MAC, DST_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:01"
ANYCAST, ANYCAST6 = "192.0.2.1", "2001:db8:ffff::1"
ACME_RTR, ACME_RTR6, BETA_RTR = "198.51.100.1", "2001:db8:beef::1", "198.51.100.2"
CLIENT, CLIENT6 = "198.18.0.10", "2001:db8:c0::10"
HOST, HOST6 = "203.0.113.10", "2001:db8:acbe::10"


def eth(*layers):
    frame = Ether(src=SRC_MAC, dst=DST_MAC)
    for layer in layers:
        frame = frame / layer
    return frame


def from_acme(inner, src=ACME_RTR, **gre):
    """GRE from acme's router to the anycast address."""
    return eth(IP(src=src, dst=ANYCAST, ttl=60, flags="DF") / GRE(**gre) / inner)


def siphash24(k0, k1, msg):
    """SipHash-2-4 (Aumasson and Bernstein, 2012) of the bytes `msg` under the key (k0, k1)."""
    mask = (1 << 64) - 1

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & mask

    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sipround():
        v[0] = (v[0] + v[1]) & mask; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & mask; v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & mask; v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & mask; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)

    whole = len(msg) - len(msg) % 8
    words = [int.from_bytes(msg[i:i + 8], "little") for i in range(0, whole, 8)]
    words.append((len(msg) & 0xFF) << 56 | int.from_bytes(msg[whole:], "little"))
    for m in words:
        v[3] ^= m
        sipround(); sipround()
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


# SipHash-2-4's test vector (the paper's appendix A: key 00..0f, message 00..0e).
assert siphash24(0x0706050403020100, 0x0F0E0D0C0B0A0908, bytes(range(15))) == 0xA129CA6149BE45E5

# Our probe, as transitd writes it under the key replay uses (0, 0): tunnel 0 (acme-gre),
# sequence 1, tagged with SipHash-2-4 of the tunnel's name and the sequence (little-endian).
probe_tag = siphash24(0, 0, b"acme-gre" + struct.pack("<I", 1))
probe_payload = b"transitd" + struct.pack(">QHHI", probe_tag, 0, 0, 1)

frames = [
    # 1: SYN to acme with MSS 1460 -> GRE to 198.51.100.1, MSS clamped to 1476 - 40 = 1436
    eth(IP(src=CLIENT, dst=HOST, ttl=57) / TCP(sport=40000, dport=80, flags="S", options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])),
    # 2: 1500 bytes with DF, above the tunnel MTU of 1476 -> ICMP fragmentation needed, MTU 1476
    eth(IP(src=CLIENT, dst=HOST, ttl=57, flags="DF") / TCP(sport=40001, dport=80, flags="PA") / Raw(b"d" * 1460)),
    # 3: 3000-byte UDP datagram without DF -> three fragments, each in its own GRE packet
    eth(IP(src=CLIENT, dst=HOST, ttl=57, id=0x4242) / UDP(sport=5000, dport=6000) / Raw(bytes(range(256)) * 11 + b"e" * 152)),
    # 4: TTL 1 -> ICMP time exceeded from 192.0.2.1 back to the client
    eth(IP(src=CLIENT, dst=HOST, ttl=1) / UDP(sport=33434, dport=33435) / Raw(b"traceroute")),
    # 5: IPv6, 1500 bytes, above the MTU -> ICMPv6 packet too big, MTU 1476, from 2001:db8:ffff::1
    eth(IPv6(src=CLIENT6, dst=HOST6, hlim=60) / UDP(sport=5001, dport=6001) / Raw(b"f" * 1452)),
    # 6: IPv6 hop limit 1 -> ICMPv6 time exceeded
    eth(IPv6(src=CLIENT6, dst=HOST6, hlim=1) / UDP(sport=33434, dport=33436) / Raw(b"traceroute6")),
    # 7: from acme's router: its host's SYN-ACK to the client -> decapsulated to the Internet,
    #    TTL 64 -> 63, MSS 1460 clamped to 1436
    from_acme(IP(src=HOST, dst=CLIENT, ttl=64) / TCP(sport=80, dport=40000, flags="SA", options=[("MSS", 1460)])),
    # 8: from acme's router: IPv6 inside IPv4 GRE -> decapsulated, hop limit 64 -> 63
    from_acme(IPv6(src=HOST6, dst=CLIENT6, hlim=64) / UDP(sport=6001, dport=5001) / Raw(b"v6 out")),
    # 9: a GRE keepalive (Cisco): inner IPv4 from us back to the router, GRE protocol 0 ->
    #    the inner packet is sent to the router, TTL 255 -> 254
    from_acme(IP(src=ANYCAST, dst=ACME_RTR, ttl=255) / GRE(proto=0)),
    # 10: the router pings our side of the tunnel -> echo reply back through acme-gre
    from_acme(IP(src="10.213.0.1", dst="10.213.0.0", ttl=64) / ICMP(type=8, id=99, seq=3) / Raw(b"tunnel ping")),
    # 11: a health-probe reply (what the router returns of our probe) -> consumed, recorded
    from_acme(IP(src="10.213.0.1", dst="10.213.0.0", ttl=63) / ICMP(type=0, id=0x7464, seq=1) / Raw(probe_payload)),
    # 12: inner source outside acme's prefixes -> dropped, decap_spoofed_source
    from_acme(IP(src="198.18.0.99", dst=CLIENT) / UDP(sport=1, dport=2)),
    # 13: SMTP out, which acme's egress rules forbid -> dropped, egress
    from_acme(IP(src=HOST, dst=CLIENT) / TCP(sport=40100, dport=25, flags="S")),
    # 14: acme to beta's prefix -> beta's ingress stages: GRE to 198.51.100.2 with key 7
    from_acme(IP(src=HOST, dst="198.18.100.5", ttl=64) / UDP(sport=7, dport=7) / Raw(b"hairpin")),
    # 15: beta's router without beta's key -> dropped, gre_key_mismatch
    from_acme(IP(src="198.18.100.5", dst=CLIENT) / UDP(sport=7, dport=7), src=BETA_RTR),
    # 16: GRE from an address that is no tunnel's remote -> dropped, gre_unknown_tunnel
    from_acme(IP(src=HOST, dst=CLIENT) / UDP(sport=7, dport=7), src="198.51.100.99"),
    # 17: a GRE checksum that does not verify -> dropped, bad_gre_checksum
    from_acme(IP(src=HOST, dst=CLIENT) / UDP(sport=7, dport=7), chksum_present=1, chksum=0x1234),
    # 18: the routing bit (RFC 1701, gone from RFC 2784) -> dropped, bad_gre_header
    from_acme(IP(src=HOST, dst=CLIENT) / UDP(sport=7, dport=7), routing_present=1),
    # 19: PPTP's enhanced GRE (version 1) -> not ours: passed (gre_unsupported)
    eth(IP(src=ACME_RTR, dst=ANYCAST) / GRE_PPTP(call_id=1, seqnum_present=1, seqence_number=1) / Raw(b"\xff\x03\x00\x21")),
    # 20: transparent Ethernet bridging (Open vSwitch's default) -> not ours: passed
    from_acme(Ether() / IP(src=HOST, dst=CLIENT) / UDP(sport=7, dport=7), proto=0x6558),
    # 21: GRE over IPv6 from acme's IPv6 router (tunnel acme-v6) -> decapsulated
    eth(IPv6(src=ACME_RTR6, dst=ANYCAST6, hlim=60) / GRE() / IP(src=HOST, dst=CLIENT, ttl=64) / UDP(sport=8, dport=8) / Raw(b"over v6")),
    # 22: from acme, TTL 1 -> ICMP time exceeded to 203.0.113.10, back into acme-gre
    from_acme(IP(src=HOST, dst=CLIENT, ttl=1) / UDP(sport=33434, dport=33437) / Raw(b"trace out")),
    # 23: exactly the tunnel MTU (1476 bytes) with DF -> encapsulated whole
    eth(IP(src=CLIENT, dst=HOST, ttl=57, flags="DF") / UDP(sport=5002, dport=6002) / Raw(b"g" * 1448)),
    # 24: one byte more (1477) with DF -> ICMP fragmentation needed
    eth(IP(src=CLIENT, dst=HOST, ttl=57, flags="DF") / UDP(sport=5003, dport=6003) / Raw(b"h" * 1449)),
]

for i, f in enumerate(frames):
    f.time = 1700000000 + i / 1000
wrpcap(sys.argv[1] if len(sys.argv) > 1 else "tunnel-edge.pcap", frames)
