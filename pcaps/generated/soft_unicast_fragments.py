#!/usr/bin/python3
"""Writes soft-unicast-fragments.pcap: fragmented return traffic to shared egress addresses,
arriving at server a1 of dataplane/tests/data/soft-unicast.toml (the fleet of
soft_unicast.py: a1 owns ports 1024-3071 of 198.18.200.1, a2 ports 3072-5119, data centre b
owns 198.18.201.0/31). Only a datagram's first fragment carries its port; every fragment of
a datagram must go where its first went. scapy's fragment() cuts each datagram (1200-byte
pieces: encapsulated for the backbone they stay under its 1500-byte MTU). Each datagram's
comment says what a1 must do with its fragments. Run with Debian's python3-scapy:
  /usr/bin/python3 pcaps/generated/soft_unicast_fragments.py pcaps/generated/soft-unicast-fragments.pcap
"""
import sys

from scapy.all import GRE, IP, UDP, Ether, Raw, fragment, wrpcap

SRC_MAC, DST_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:01"
EGRESS, EGRESS_B = "198.18.200.1", "198.18.201.0"
A1, B1 = "10.9.0.11", "10.9.0.21"
PEER, PEER2 = "192.0.2.77", "192.0.2.78"  # hosts on the Internet


def eth(packet):
    return Ether(src=SRC_MAC, dst=DST_MAC) / packet


def pieces(src, dst, ident, dport, size):
    """The fragments of a UDP datagram with `size` bytes of data, first to last."""
    datagram = IP(src=src, dst=dst, id=ident) / UDP(sport=7777, dport=dport) / Raw(bytes([ident % 251]) * size)
    return fragment(datagram, fragsize=1200)


def backbone(inner):
    return eth(IP(src=B1, dst=A1, ttl=64) / GRE(key_present=1, key=(0x5355 << 8) | 1) / inner)


d1 = pieces(PEER, EGRESS, 1001, 4000, 3000)  # a2's port: every piece to a2 (hop 2)
d2 = pieces(PEER, EGRESS, 1002, 1500, 3000)  # a1's port: every piece to the host
d3 = pieces(PEER, EGRESS_B, 1003, 2000, 2000)  # b's address: every piece to b (hop 1)
d4 = pieces(PEER, EGRESS, 1004, 4000, 2000)  # a2's, last piece first
d5 = pieces(PEER, EGRESS, 1005, 3500, 2000)  # a2's, interleaved with d6
d6 = pieces(PEER, EGRESS, 1006, 2500, 2000)  # a1's
d7 = pieces(PEER2, EGRESS, 1001, 1600, 2000)  # d1's identification from another source: a1's
d8 = pieces(PEER, EGRESS, 1008, 4200, 2000)  # from b over the backbone (hop 1), a2's: on to a2
d9 = pieces(PEER, EGRESS, 1009, 4400, 2000)  # a2's, its later piece 31 s after its first

frames = [
    d1[0],  # 1: backbone to a2
    d7[0],  # 2: d1's identification from another source, a1's: egress_local (d1 keeps a2)
    d1[1], d1[2],  # 3-4: backbone to a2
    *d2,  # 5-7: egress_local
    *d3,  # 8-9: backbone to b
    d4[1],  # 10: its first not yet seen: data centre a's, egress_local
    d4[0],  # 11: backbone to a2
    d5[0], d6[0], d6[1], d5[1],  # 12-15: a2, local, local, a2
    d7[1],  # 16: egress_local
    backbone(d8[0]), backbone(d8[1]),  # 17-18: on to a2 (hop 2)
    d9[0],  # 19: backbone to a2
]
late = [d9[1]]  # 20: 31 s later, past the hold: data centre a's, egress_local

for i, f in enumerate(frames):
    f = f if f.haslayer(Ether) else eth(f)
    f.time = 1700000000 + i / 1000
    frames[i] = f
late = [eth(f) for f in late]
late[0].time = 1700000031
wrpcap(sys.argv[1] if len(sys.argv) > 1 else "soft-unicast-fragments.pcap", frames + late)
