#!/usr/bin/python3
"""Writes underlay-too-big.pcap: path MTU discovery on a tunnel's underlay, for the
configuration of dataplane/tests/data/tunnel-edge.toml (anycast 192.0.2.1 and
2001:db8:ffff::1; tunnel acme-gre to 198.51.100.1, no key, mtu 1476; acme-v6 to
2001:db8:beef::1, mtu 1456; beta-gre to 198.51.100.2, key 7, mtu 1472).

A router between transitd and a customer's router answers GRE that does not fit its next
link with an ICMP Fragmentation Needed (RFC 1191) or ICMPv6 Packet Too Big (RFC 8201)
quoting the GRE packet; transitd holds the tunnel to what it says for ten minutes. Frames
are a second apart; each one's comment says what the configuration must do with it. Run
with Debian's python3-scapy:
  /usr/bin/python3 pcaps/generated/underlay_too_big.py pcaps/generated/underlay-too-big.pcap
"""
import sys

from scapy.all import GRE, ICMP, IP, UDP, Ether, ICMPv6PacketTooBig, IPv6, Raw, wrpcap

SRC_MAC, DST_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:01"
ANYCAST, ANYCAST6 = "192.0.2.1", "2001:db8:ffff::1"
ACME_RTR, ACME_RTR6, BETA_RTR = "198.51.100.1", "2001:db8:beef::1", "198.51.100.2"
CLIENT, HOST, BETA_HOST = "198.18.0.10", "203.0.113.10", "198.18.100.10"
UNDERLAY = "192.0.2.200"  # the router that found the next link too small


def eth(layer):
    return Ether(src=SRC_MAC, dst=DST_MAC) / layer


def datagram(dst, size):
    """`size` bytes of UDP with DF from the client to `dst`."""
    return eth(IP(src=CLIENT, dst=dst, ttl=57, flags="DF") / UDP(sport=4000, dport=53) / Raw(b"q" * (size - 28)))


def too_big(remote, mtu, key=None, chksum=None):
    """Fragmentation needed, next-hop MTU `mtu`, quoting our GRE to `remote`."""
    gre = GRE() if key is None else GRE(key_present=1, key=key)
    quote = IP(src=ANYCAST, dst=remote, proto=47, flags="DF", len=1500) / gre / IP(src=CLIENT, dst=HOST) / UDP()
    icmp = ICMP(type=3, code=4, nexthopmtu=mtu)
    if chksum is not None:
        icmp.chksum = chksum
    return eth(IP(src=UNDERLAY, dst=ANYCAST) / icmp / quote)


frames = [
    # 1: 1400 bytes with DF to acme: within acme-gre's 1476 -> encapsulated
    datagram(HOST, 1400),
    # 2: the underlay says 1400 for acme-gre -> consumed (underlay_too_big): 1376 inside
    too_big(ACME_RTR, 1400),
    # 3: the same 1400 bytes -> ICMP fragmentation needed to the client, MTU 1376
    datagram(HOST, 1400),
    # 4: 1376 bytes -> encapsulated whole
    datagram(HOST, 1376),
    # 5: about beta's router with key 9, which no tunnel has -> dropped, underlay_too_big_unusable
    too_big(BETA_RTR, 1000, key=9),
    # 6: about acme-gre with a wrong ICMP checksum -> dropped, underlay_too_big_unusable
    too_big(ACME_RTR, 900, chksum=0x1234),
    # 7: 1400 bytes to beta: its own path is untouched -> encapsulated
    datagram(BETA_HOST, 1400),
    # 8: about beta-gre (key 7), 1000 -> consumed: 972 inside
    too_big(BETA_RTR, 1000, key=7),
    # 9: 1000 bytes to beta -> ICMP fragmentation needed, MTU 972
    datagram(BETA_HOST, 1000),
    # 10: the IPv6 underlay of acme-v6 says 1300 -> consumed: 1256 inside (IPv6 inside is
    # never held under 1280)
    eth(IPv6(src="2001:db8:5::1", dst=ANYCAST6) / ICMPv6PacketTooBig(mtu=1300)
        / IPv6(src=ANYCAST6, dst=ACME_RTR6, nh=47) / GRE(proto=0x86dd) / IPv6(src="2001:db8:1::1", dst="2001:db8:acbe::10") / UDP()),
]

for i, f in enumerate(frames):
    f.time = 1700000000 + i
wrpcap(sys.argv[1] if len(sys.argv) > 1 else "underlay-too-big.pcap", frames)
