#!/usr/bin/python3
"""Writes link-headers.pcap: the Ethernet headers switches and providers send, for the rule
oracle test (transitd's `match` must select the frames tshark selects).

IPv4 and IPv6 under one to three VLAN tags (tshark dissects an 802.1Q tag, EtherType 0x8100
or 0x9100, as `vlan` and an 802.1ad service tag, 0x88a8, as `ieee8021ad`): a service tag
alone, over one or two customer tags, under one; the old 0x9100 QinQ EtherType; priorities
and DEI bits set beside the IDs. Then frames whose bytes 12-13 are not an EtherType: 802.3
lengths with LLC (STP, SNAP) and without, the values 1501-1535 that are neither, 0, and a
tagged 802.3 frame. Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/link_headers.py pcaps/generated/link-headers.pcap
"""
import random
import sys
from scapy.all import ICMP, IP, LLC, SNAP, STP, TCP, UDP, Dot1Q, Dot3, Ether, IPv6, Raw, wrpcap

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
    frames.append(frame / payload(i))

HOST, BRIDGES = "00:1b:21:3a:00:01", "01:80:c2:00:00:00"
frames += [
    Dot3(src=HOST, dst=BRIDGES) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP(),
    Dot3(src=HOST, dst="01:00:0c:cc:cc:cc") / LLC(dsap=0xaa, ssap=0xaa, ctrl=3) / SNAP(OUI=0x0c, code=0x2000) / Raw(b"c" * 40),
    Ether(src=HOST, dst=BRIDGES, type=46) / Raw(bytes(46)),
    Ether(src=HOST, dst=BRIDGES, type=1500) / Raw(bytes(1500)),
    Ether(src=HOST, dst=BRIDGES, type=1501) / Raw(bytes(46)),
    Ether(src=HOST, dst=BRIDGES, type=1535) / Raw(bytes(46)),
    Ether(src=HOST, dst=BRIDGES, type=1536) / Raw(bytes(46)),
    Ether(src=HOST, dst=BRIDGES, type=0) / Raw(bytes(46)),
    Ether(src=HOST, dst=BRIDGES, type=0x8100) / Dot1Q(vlan=30, type=38) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP(),
]
for k, frame in enumerate(frames):
    frame.time = 1700000000 + k / 1000

wrpcap(sys.argv[1], frames)
