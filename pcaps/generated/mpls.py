#!/usr/bin/python3
"""Writes mpls.pcap: MPLS frames as routers send them, for the rule oracle tests (tshark
dissects them; transitd's `match` must select the same frames). Label stacks of one to
three entries (labels, traffic classes and TTLs varied, explicit-null labels 0 and 2, the
multicast EtherType 0x8848, a stack inside an 802.1Q tag) carrying IPv4 and IPv6 with TCP,
UDP and ICMP; Ethernet pseudowires (RFC 4448) with a control word and without one
(vendor-assigned MAC addresses, which Wireshark reads as plain Ethernet), with a VLAN tag
inside. Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/mpls.py pcaps/generated/mpls.pcap
"""
import random
import sys
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw, wrpcap
from scapy.contrib.mpls import MPLS

rng = random.Random(8847)
outer = Ether(src="00:1b:21:3a:00:01", dst="00:00:0c:9f:f0:01")


def transport(i):
    kind = i % 4
    if kind == 0:
        return TCP(sport=rng.randint(1024, 65535), dport=rng.choice([80, 443, 179]), flags=rng.choice(["S", "SA", "A", "PA", "R"]),
                   seq=rng.randint(0, 2**32 - 1), ack=rng.randint(0, 2**32 - 1), window=rng.choice([1024, 29200, 65535]),
                   options=[("MSS", rng.choice([536, 1380, 1460]))] if i % 8 == 0 else [])
    if kind == 1:
        return UDP(sport=rng.randint(1024, 65535), dport=rng.choice([53, 123, 11211])) / Raw(b"x" * rng.randint(0, 40))
    if kind == 2:
        return UDP(sport=53, dport=rng.randint(1024, 65535)) / Raw(b"y" * rng.randint(0, 20))
    return None


def ipv4(i):
    l4 = transport(i)
    ip = IP(src=f"198.51.100.{rng.randint(1, 254)}", dst=f"203.0.113.{rng.randint(1, 254)}", ttl=rng.randint(1, 255),
            tos=rng.choice([0, 0x28, 0xb8, 0x01, 0x03]), id=rng.randint(0, 65535))
    return ip / (l4 if l4 is not None else ICMP(type=rng.choice([0, 8]), id=rng.randint(0, 65535), seq=rng.randint(0, 65535)))


def ipv6(i):
    l4 = transport(i)
    ip = IPv6(src=f"2001:db8:1::{rng.randint(1, 0xffff):x}", dst=f"2001:db8:2::{rng.randint(1, 0xffff):x}",
              hlim=rng.randint(1, 255), tc=rng.choice([0, 0xb8]), fl=rng.randint(0, 0xfffff))
    return ip / (l4 if l4 is not None else UDP(sport=547, dport=546))


def stack(depth, bottom_label=None):
    entries = [MPLS(label=rng.randint(16, 0xfffff), cos=rng.randint(0, 7), ttl=rng.randint(1, 255), s=0) for _ in range(depth)]
    if bottom_label is not None:
        entries[-1].label = bottom_label
    entries[-1].s = 1
    out = entries[0]
    for e in entries[1:]:
        out = out / e
    return out


frames = []
for i in range(48):
    depth = 1 + i % 3
    payload = ipv4(i) if i % 5 else ipv6(i)
    frames.append(outer / stack(depth) / payload)
# Explicit null (0: IPv4, 2: IPv6), and the payload's first nibble deciding, as RFC 4928 has it.
frames.append(outer / stack(1, 0) / ipv4(0))
frames.append(outer / stack(1, 2) / ipv6(1))
frames.append(outer / stack(2, 0) / ipv4(2))
# The multicast EtherType, and a stack behind a VLAN tag.
frames.append(Ether(src="00:1b:21:3a:00:01", dst="01:00:5e:00:00:05", type=0x8848) / stack(1) / ipv4(4))
frames.append(Ether(src="00:1b:21:3a:00:01", dst="00:00:0c:9f:f0:01") / Dot1Q(vlan=300) / stack(2) / ipv4(5))
# Ethernet pseudowires: with a control word (sequence number 0 and not), without one between
# vendor-assigned addresses, and with a VLAN tag inside.
for i in range(12):
    inner_eth = Ether(src=rng.choice(["00:50:56:aa:00:01", "00:1b:21:00:00:02", "02:42:ac:11:00:02"]),
                      dst=rng.choice(["00:00:0c:07:ac:01", "00:1b:21:00:00:09", "0a:00:27:00:00:00"]))
    ip = ipv4(i) if i % 4 else ipv6(i)
    inner = Ether(bytes(inner_eth / Dot1Q(vlan=rng.randint(1, 4094)) / ip if i % 3 == 0 else inner_eth / ip))
    control_word = Raw(bytes([0, 0, 0, i])) if i % 2 == 0 else Raw(b"")
    if i % 2 == 1:
        # Without a control word: both addresses vendor-assigned, as Wireshark requires.
        inner.src, inner.dst = "00:50:56:aa:00:01", "00:00:0c:07:ac:01"
    frames.append(outer / stack(1 + i % 2) / control_word / inner)
for k, f in enumerate(frames):
    f.time = 1700000000 + k / 1000
wrpcap(sys.argv[1], frames)
