#!/usr/bin/python3
"""Writes vlan-tags.pcap: IPv4 and IPv6 under the VLAN tag stacks switches and providers
send, for the rule oracle test (tshark dissects an 802.1Q tag, EtherType 0x8100 or 0x9100,
as `vlan` and an 802.1ad service tag, 0x88a8, as `ieee8021ad`; transitd's `match` must
select the same frames). One to three tags: a service tag alone, a service tag over one or
two customer tags, the old 0x9100 QinQ EtherType, a customer tag over a service tag;
priorities and DEI bits set beside the IDs. Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/vlan_tags.py pcaps/generated/vlan-tags.pcap
"""
import random
import sys
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw, wrpcap

rng = random.Random(0x88A8)
SERVICE, CUSTOMER, OLD_QINQ = 0x88A8, 0x8100, 0x9100


def payload(i):
    if i % 2:
        ip = IP(src=f"198.51.100.{rng.randint(1, 254)}", dst=f"203.0.113.{rng.randint(1, 254)}", ttl=rng.randint(1, 255))
    else:
        ip = IPv6(src=f"2001:db8:1::{rng.randint(1, 0xffff):x}", dst=f"2001:db8:2::{rng.randint(1, 0xffff):x}")
    kind = i % 3
    if kind == 0:
        return ip / TCP(sport=rng.randint(1024, 65535), dport=rng.choice([80, 443]), flags="S")
    if kind == 1:
        return ip / UDP(sport=rng.randint(1024, 65535), dport=rng.choice([9, 7000])) / Raw(b"q" * rng.randint(0, 30))
    return ip / (ICMP() if i % 2 else UDP(sport=123, dport=123))


def tag(vid):
    # An 802.1Q and an 802.1ad tag are the same four bytes; the EtherType before them says
    # which it is.
    return Dot1Q(prio=rng.randint(0, 7), id=rng.randint(0, 1), vlan=vid)


STACKS = [
    [(SERVICE, 30)],
    [(SERVICE, 30), (CUSTOMER, 100)],
    [(SERVICE, 200), (CUSTOMER, 2001)],
    [(SERVICE, 4095), (CUSTOMER, 1), (CUSTOMER, 30)],
    [(OLD_QINQ, 30), (CUSTOMER, 100)],
    [(CUSTOMER, 100), (SERVICE, 30)],
    [(CUSTOMER, 30)],
    [(SERVICE, 0)],
]

frames = []
for i in range(64):
    stack = STACKS[i % len(STACKS)]
    frame = Ether(src="00:1b:21:3a:00:01", dst="00:00:0c:9f:f0:01", type=stack[0][0])
    for n, (_, vid) in enumerate(stack):
        t = tag(vid)
        if n + 1 < len(stack):
            t.type = stack[n + 1][0]
        frame = frame / t
    frame = frame / payload(i)
    frame.time = 1700000000 + i / 1000
    frames.append(frame)

wrpcap(sys.argv[1], frames)
