#!/usr/bin/python3
"""Writes ping-of-death.pcap: IPv4 and IPv6 fragments whose data ends past 65,535 bytes, the
largest datagram (RFC 791, RFC 8200 §4.5; the "ping of death"), beside fragments of the
same shapes that end inside it, for the sanity test of `oversize_fragment`
(dataplane/tests/dos.rs). Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/ping_of_death.py pcaps/generated/ping-of-death.pcap
"""
import sys
from scapy.all import ICMP, IP, UDP, Ether, IPv6, IPv6ExtHdrFragment, Raw, wrpcap

ETH = dict(src="02:00:00:00:00:aa", dst="02:00:00:00:00:01")
frames = []


def v4(ident, offset_units, data, more):
    flags = "MF" if more else 0
    return Ether(**ETH) / IP(src="198.51.100.9", dst="203.0.113.10", id=ident, flags=flags, frag=offset_units, proto=1) / Raw(data)


def v6(ident, offset_units, data, more):
    return (
        Ether(**ETH)
        / IPv6(src="2001:db8:5::9", dst="2001:db8:1::10")
        / IPv6ExtHdrFragment(id=ident, offset=offset_units, m=int(more), nh=58)
        / Raw(data)
    )


# A classic ping of death: an echo request whose pieces add up to 65,540 bytes of data. The
# first and a middle piece are fine on their own; the last ends at 65,540.
echo = bytes(ICMP(type=8, id=7, seq=1)) + bytes(1472)
frames.append(v4(1, 0, echo, True))
frames.append(v4(1, 185, bytes(1480), True))
frames.append(v4(1, 8188, bytes(36), False))  # 65,504 + 36 = 65,540: past the largest
# The same last piece shortened so that its data ends at 65,535: past the largest datagram
# all the same, as the total length counts the 20-byte header too (RFC 791).
frames.append(v4(2, 8188, bytes(31), False))
# One byte over at the top offset, with MF still set.
frames.append(v4(3, 8191, bytes(8), True))  # 65,528 + 8 = 65,536
# A UDP first fragment, well inside.
frames.append(v4(4, 0, bytes(UDP(sport=53, dport=4000)) + bytes(1000), True))
# IPv6: the fragmentable part ends past 65,535, and one that ends inside.
frames.append(v6(5, 8190, bytes(32), False))  # 65,520 + 32 = 65,552
frames.append(v6(6, 8190, bytes(8), False))  # 65,520 + 8 = 65,528
for k, f in enumerate(frames):
    f.time = 1700000000 + k / 1000
wrpcap(sys.argv[1], frames)
