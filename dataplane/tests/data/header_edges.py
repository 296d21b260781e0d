#!/usr/bin/python3
"""Writes header-edges.pcap: headers at the edges of what tshark 4.0 dissects, for the rule
oracle test `headers_at_the_edges_have_the_fields_tshark_reads` (dataplane/tests/match_oracle.rs):
TCP behind a bogus header length (below 20), whole, as a first fragment, over IPv6, in a
snapped capture, and a header longer than the IP length leaves; IPv6 later fragments behind
extension headers and Mobility headers (135), whose `ipv6` is the fixed header alone; ICMP and
ICMPv6 cut short (no `icmp` before 6 bytes, the identifier from 6, the sequence number from 8;
ICMPv6's type from 1 byte); UDP-Lite (IP protocol 136); UDP length 0 over IPv6 (RFC 2675)
and over IPv4; an IPv6 payload length of 0; IPv4 total lengths of 0 (TSO) and below the
header; IPv4 headers with a header length below 20 or a version not 4 (6 among them), an IPv6
header of version 4, an IPv4 header longer than the bytes; UDP behind a Shim6 header; GRE cut
short (tshark's `gre` begins at 4 bytes); ICMPv6 of no bytes behind IPv4; four VLAN tags.
Deterministic.
Run with Debian's python3-scapy:
    /usr/bin/python3 dataplane/tests/data/header_edges.py dataplane/tests/data/header-edges.pcap
"""
import struct
import sys
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, wrpcap

E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
v4 = lambda **k: E / IP(src="10.0.0.1", dst="10.0.0.2", **k)
v6 = lambda **k: E / IPv6(src="2001:db8::1", dst="2001:db8::2", **k)


def raw(ether_type, payload):
    """`payload` behind an Ethernet header of `ether_type`, whatever its first byte says."""
    return Ether(src=E.src, dst=E.dst, type=ether_type) / Raw(payload)


def snapped(frame, length):
    """`frame` as a capture cut at `length` bytes records it (its length on the wire kept)."""
    whole = bytes(frame)
    cut = Ether(whole[:length])
    assert bytes(cut) == whole[:length]
    cut.wirelen = len(whole)
    return cut


def tcp(**k):
    return TCP(sport=1111, dport=80, flags="S", seq=0x11223344, ack=0x55667788, window=77, urgptr=5, chksum=0x1234, **k)


segment = bytes(TCP(sport=1111, dport=80, flags="S", seq=7) / Raw(b"A" * 40))
mobility = bytes([59, 1, 5, 0]) + b"\x00" * 12  # a Binding Refresh Request, no next header
icmp_echo = bytes(ICMP(type=8, id=0x1234, seq=7))
icmpv6_echo = bytes([128, 0, 0, 0, 0x12, 0x34, 0, 7])
udp_lite = struct.pack("!HHHH", 1234, 53, 0, 0xABCD) + b"HELLO"

frames = [
    # 1-6: TCP header length below 20: tshark shows the ports, the sequence number, the header
    # length and (whole, not snapped short of it) `tcp.len`, then gives up; `tcp` is the
    # whole segment.
    v4() / tcp(dataofs=0) / Raw(b"ABCDEFGH"),
    v4() / tcp(dataofs=4) / Raw(b"ABCDEFGH"),
    v4() / tcp(dataofs=4),
    v4(proto=6, flags="MF") / Raw(bytes(tcp(dataofs=4)) + b"ABCDEFGH"),
    v6() / tcp(dataofs=3) / Raw(b"ABCD"),
    snapped(v4() / tcp(dataofs=3) / Raw(b"Z" * 40), 60),
    # 7: a header of 60 bytes where the IP length leaves 30, snapped: no `tcp.len`.
    snapped(v4(len=50) / tcp(dataofs=15) / Raw(b"\x01" * 10), 54),
    # 8: a whole header, for comparison.
    v4() / tcp() / Raw(b"ABCDEFGH"),
    # 9-16: IPv6 fragments and Mobility headers: `ipv6` is the fixed header alone behind a
    # later fragment header or a Mobility header, whatever extension headers come first.
    v6() / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=7) / Raw(segment[:32]),
    v6() / IPv6ExtHdrFragment(nh=6, offset=4, m=0, id=7) / Raw(segment[32:]),
    v6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(nh=6, offset=4, m=0, id=8) / Raw(segment[32:]),
    v6() / IPv6ExtHdrRouting(segleft=0) / IPv6ExtHdrFragment(nh=17, offset=4, m=1, id=9) / Raw(b"B" * 16),
    v6() / IPv6ExtHdrDestOpt(nh=135) / Raw(mobility),
    v6() / IPv6ExtHdrHopByHop(nh=135) / Raw(mobility),
    v6() / IPv6ExtHdrFragment(nh=135, offset=0, m=1, id=10) / Raw(mobility),
    v6() / IPv6ExtHdrHopByHop() / UDP(sport=5, dport=6),
    # 17-26: ICMP echo requests cut short (whole packets), a destination unreachable of 4 and
    # 6 bytes, and first fragments of 4 and 6 bytes.
    *[v4(proto=1) / Raw(icmp_echo[:n]) for n in (0, 2, 4, 5, 6, 7)],
    v4(proto=1) / Raw(bytes([3, 1, 0, 0])),
    v4(proto=1) / Raw(bytes([3, 1, 0, 0, 0, 0])),
    v4(proto=1, flags="MF") / Raw(icmp_echo[:4]),
    v4(proto=1, flags="MF") / Raw(icmp_echo[:6]),
    # 27-30: ICMPv6 echo requests cut short.
    *[v6(nh=58) / Raw(icmpv6_echo[:n]) for n in (0, 1, 2, 4)],
    # 31-36: UDP-Lite, whole, over IPv6, cut before and after its ports, a first fragment.
    v4(proto=136) / Raw(udp_lite),
    v6(nh=136) / Raw(udp_lite),
    v4(proto=136) / Raw(udp_lite[:2]),
    v4(proto=136) / Raw(udp_lite[:4]),
    v4(proto=136, flags="MF") / Raw(udp_lite[:2]),
    v4(proto=136, flags="MF") / Raw(udp_lite[:8]),
    # 37-38: UDP length 0: over IPv6 the IP length says (RFC 2675), over IPv4 it is bogus.
    v6() / UDP(sport=7, dport=9, len=0) / Raw(b"abcd"),
    v4() / UDP(sport=7, dport=9, len=0) / Raw(b"abcd"),
    # 39-40: IPv6 payload length 0 (a jumbogram's, without the option): nothing behind the
    # fixed header.
    v6(nh=17, plen=0) / UDP(sport=7, dport=9) / Raw(b"abcd"),
    v6(plen=0) / IPv6ExtHdrHopByHop() / UDP(sport=7, dport=9) / Raw(b"abcd"),
    # 41-44: IPv4 total length 0 (TCP segmentation offload's, read to the end of the bytes)
    # and below the header (bogus: nothing behind it).
    v4(len=0) / TCP(sport=1, dport=2, flags="PA") / Raw(b"hello"),
    v4(len=0) / UDP(sport=1, dport=2) / Raw(b"hello"),
    v4(len=10) / TCP(sport=1, dport=2, flags="S") / Raw(b"hello"),
    v4(len=19) / UDP(sport=1, dport=2) / Raw(b"hello"),
    # 45-46: IPv4 headers tshark calls bogus and still shows as `ip` (a header length of 16,
    # version 5), with `ip.hdr_len` (of version 4) and nothing more.
    *[
        raw(0x0800, bytes([first]) + bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / Raw(b"hello"))[1:])
        for first in (0x44, 0x55)
    ],
    # 47: UDP behind a Shim6 header (140), which tshark reads as an extension header.
    v6(nh=140) / Raw(bytes([17, 0, 0x80, 0]) + b"\x00" * 4) / UDP(sport=5, dport=6),
    # 48: an IPv4 header length of 0: `ip` of no bytes, `ip.hdr_len` 0.
    raw(0x0800, bytes([0x40]) + bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))[1:]),
    # 49: IPv6 behind EtherType IPv4: tshark's `ip` (version 6, bogus), then its IPv6 and UDP.
    raw(0x0800, bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5, dport=6) / Raw(b"abcd"))),
    # 50: IPv4 behind EtherType IPv6: `ipv6` (version 4, bogus) of 40 bytes, and nothing more.
    raw(0x86DD, bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"x" * 30))),
    # 51: a header length of 60 where the frame holds 46 bytes of a 200-byte packet: the fixed
    # header's fields, no transport.
    raw(0x0800, bytes([0x4F]) + bytes(IP(src="10.0.0.1", dst="10.0.0.2", len=200) / UDP(sport=1, dport=2) / Raw(b"y" * 18))[1:]),
    # 52-55: GRE of 0, 2 and 4 bytes, and a first fragment of 2: tshark has no `gre` before
    # its flags and protocol type (transitd has, from no byte on).
    *[v4(proto=47) / Raw(bytes([0, 0, 8, 0])[:n]) for n in (0, 2, 4)],
    v4(proto=47, flags="MF") / Raw(b"\x00\x00"),
    # 56: ICMPv6 of no bytes behind IPv4 (whose dissector hands an empty payload to none).
    v4(proto=58),
    # 57-58: four VLAN tags, and a service tag with three, over UDP: tshark reads the IP
    # packet under them.
    E / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2),
    Ether(src=E.src, dst=E.dst, type=0x88A8) / Dot1Q(vlan=30) / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2),
]
for k, f in enumerate(frames):
    f.time = 1700000000 + k / 1000
wrpcap(sys.argv[1], frames)
