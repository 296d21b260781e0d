#!/usr/bin/python3
"""Writes soft-unicast.pcap: return traffic to shared egress addresses, arriving at server a1
of dataplane/tests/data/soft-unicast.toml.

Data centre a (backbone 10.9.0.11) has servers a1 (10.9.0.11) and a2 (10.9.0.12); data
centre b (10.9.0.21) has b1 (10.9.0.21). Egress address 198.18.200.1 is a's: its 31 slices of
2048 ports from 1024 alternate a1, a2, a1, ... (slice 0 = ports 1024-3071 is a1's, slice 1 =
3072-5119 a2's). 198.18.201.0/31 is b's. Backbone GRE keys are 0x5355 << 8 | hop. Each
frame's comment says what a1 must do with it. Run with Debian's python3-scapy:
  /usr/bin/python3 pcaps/generated/soft_unicast.py pcaps/generated/soft-unicast.pcap
"""
import sys

from scapy.all import GRE, ICMP, IP, TCP, UDP, Ether, Raw, wrpcap

SRC_MAC, DST_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:01"
EGRESS, EGRESS_B = "198.18.200.1", "198.18.201.0"
A1, A2, B1 = "10.9.0.11", "10.9.0.12", "10.9.0.21"
PEER = "192.0.2.77"  # a host on the Internet


def eth(*layers):
    frame = Ether(src=SRC_MAC, dst=DST_MAC)
    for layer in layers:
        frame = frame / layer
    return frame


def backbone(src, hop, inner):
    return eth(IP(src=src, dst=A1, ttl=64) / GRE(key_present=1, key=(0x5355 << 8) | hop) / inner)


frames = [
    # 1: UDP to port 1500 (slice 0, a1's) -> a1's own: to the host (egress_local)
    eth(IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=1500) / Raw(b"answer one")),
    # 2: UDP to port 4000 (slice 1, a2's) -> backbone GRE to a2 (10.9.0.12), hop 2, unchanged
    eth(IP(src=PEER, dst=EGRESS, ttl=50) / UDP(sport=7777, dport=4000) / Raw(b"answer two")),
    # 3: TCP to b's address -> backbone GRE to data centre b (10.9.0.21), hop 1
    eth(IP(src=PEER, dst=EGRESS_B) / TCP(sport=443, dport=2000, flags="SA")),
    # 4: UDP to a reserved port (80) -> data centre a's, so a1 delivers it (egress_local)
    eth(IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=80)),
    # 5: ICMP echo reply with identifier 3500 (a2's slice) -> backbone to a2
    eth(IP(src=PEER, dst=EGRESS) / ICMP(type=0, id=3500, seq=1) / Raw(b"pong")),
    # 6: ICMP port unreachable quoting our UDP 198.18.200.1:3500 -> 192.0.2.77:7777 -> a2
    eth(IP(src=PEER, dst=EGRESS) / ICMP(type=3, code=3) / IP(src=EGRESS, dst=PEER) / UDP(sport=3500, dport=7777)),
    # 7: ICMP fragmentation needed quoting our TCP from port 1030 (a1's) -> egress_local
    eth(IP(src=PEER, dst=EGRESS) / ICMP(type=3, code=4, nexthopmtu=1400) / IP(src=EGRESS, dst=PEER) / TCP(sport=1030, dport=443)),
    # 8: backbone from b1 (hop 1), inner UDP to port 4000 (a2's) -> on to a2, hop 2
    backbone(B1, 1, IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=4000) / Raw(b"via b")),
    # 9: backbone from a2 (hop 2), inner UDP to port 1500 (a1's) -> egress_local
    backbone(A2, 2, IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=1500)),
    # 10: backbone from a2 (hop 2), inner to port 4000 (a2's own) -> backbone_loop
    backbone(A2, 2, IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=4000)),
    # 11: backbone from b1 (hop 1), inner to b's address -> backbone_loop (no second crossing)
    backbone(B1, 1, IP(src=PEER, dst=EGRESS_B) / UDP(sport=7777, dport=2000)),
    # 12: backbone GRE from an address that is no server's -> backbone_unknown_source
    backbone("10.66.0.1", 1, IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=1500)),
    # 13: backbone from b1, inner not for an egress address -> backbone_not_egress
    backbone(B1, 1, IP(src=PEER, dst="203.0.113.5") / UDP(sport=7777, dport=1500)),
    # 14: a later fragment (no ports) -> data centre a's: egress_local
    eth(IP(src=PEER, dst=EGRESS, id=77, frag=100, proto=17) / Raw(b"x" * 64)),
    # 15: a port above the last whole slice (65500) -> data centre a's: egress_local
    eth(IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=65500)),
    # 16: 1500 bytes for a2 -> 1528 once encapsulated, over the 1500 backbone MTU; no DF:
    #     fragmented, two backbone packets to a2
    eth(IP(src=PEER, dst=EGRESS) / UDP(sport=7777, dport=4000) / Raw(b"y" * 1472)),
]

for i, f in enumerate(frames):
    f.time = 1700000000 + i / 1000
wrpcap(sys.argv[1] if len(sys.argv) > 1 else "soft-unicast.pcap", frames)
