#!/usr/bin/python3
"""Writes overlapping-fragments.pcap: later fragments at offsets below the smallest first
fragment the tiny-fragment check lets through, which can only overlap (rewrite) the headers
the rules read (RFC 1858 §3.2), beside later fragments at offsets a legitimate datagram
uses: TCP directly after IPv4 and after an IPv6 fragment header (a first fragment holds all
20 bytes of its header, so offsets 8 and 16 overlap it), and IPv4 and IPv6 datagrams under
an authentication header (at least 12 bytes, so offset 8 overlaps). For the sanity test of
`overlapping_fragment` (dataplane/tests/dos.rs). Deterministic. Run with Debian's
python3-scapy:
    /usr/bin/python3 pcaps/generated/overlapping_fragments.py pcaps/generated/overlapping-fragments.pcap
"""
import sys
from scapy.all import IP, TCP, UDP, AH, Ether, IPv6, IPv6ExtHdrFragment, Raw, wrpcap

ETH = dict(src="02:00:00:00:00:aa", dst="02:00:00:00:00:01")
frames = []


def v4(ident, proto, offset_units, data, more=True):
    flags = "MF" if more else 0
    ip = IP(src="198.51.100.9", dst="203.0.113.10", id=ident, flags=flags, frag=offset_units, proto=proto)
    return Ether(**ETH) / ip / Raw(data)


def v6(ident, nh, offset_units, data, more=True):
    return (
        Ether(**ETH)
        / IPv6(src="2001:db8:5::9", dst="2001:db8:1::10")
        / IPv6ExtHdrFragment(id=ident, offset=offset_units, m=int(more), nh=nh)
        / Raw(data)
    )


syn = bytes(TCP(sport=40000, dport=80, flags="S"))
ah_tcp = bytes(AH(nh=6, payloadlen=4, spi=0x100, seq=1, icv=bytes(12)) / TCP(sport=40000, dport=80, flags="S"))
# TCP: a first fragment of 24 bytes (the whole header and 4 bytes), then pieces at 8 and
# 16 bytes (overlapping it: they can rewrite ports and flags) and at 24 (where it ends).
for ident, (frame_of, proto) in enumerate([(v4, 6), (v6, 6)], start=1):
    frames.append(frame_of(ident, proto, 0, syn + bytes(4)))
    for units in (1, 2, 3):
        frames.append(frame_of(ident, proto, units, bytes(16), more=units < 3))
# Under AH (24 bytes here; 12 at the least): a later piece at 8 overlaps any first
# fragment; at 16 and 24 it may be a legitimate datagram's (AH of 12 and UDP of 8 fill 20).
for ident, (frame_of, proto) in enumerate([(v4, 51), (v6, 51)], start=3):
    frames.append(frame_of(ident, proto, 0, ah_tcp + bytes(4)))
    for units in (1, 2, 3, 6):
        frames.append(frame_of(ident, proto, units, bytes(16), more=units < 6))
# UDP: its 8-byte header may be all a first fragment holds; a piece at 8 is legitimate.
frames.append(v4(5, 17, 0, bytes(UDP(sport=53, dport=4000))))
frames.append(v4(5, 17, 1, bytes(16), more=False))
for k, f in enumerate(frames):
    f.time = 1700000000 + k / 1000
wrpcap(sys.argv[1], frames)
