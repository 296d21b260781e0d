#!/usr/bin/python3
"""Writes syn-1000.pcap: 1000 TCP SYNs from 1000 different sources (1.0.0.0-99.255.255.255,
no bogons) to random hosts and common ports of 203.0.113.0/24, with an MSS option: the
traffic of the pipeline benchmark's case (b) (bench/configs/syn-firewall-1000.toml).
Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/syn_1000.py pcaps/generated/syn-1000.pcap
"""
import random
import sys
from scapy.all import IP, TCP, Ether, wrpcap

rng = random.Random(1000)
frames = []
sources = set()
while len(sources) < 1000:
    sources.add(f"{rng.randint(1, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
for k, src in enumerate(sorted(sources, key=lambda _: rng.random())):
    dst = f"203.0.113.{rng.randint(1, 254)}"
    dport = rng.choice([22, 25, 80, 443, 443, 443, 8080, rng.randint(1024, 65535)])
    frame = Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:01") / IP(src=src, dst=dst, ttl=rng.randint(40, 120)) / TCP(
        sport=rng.randint(1024, 65535), dport=dport, flags="S", seq=rng.randint(0, 2**32 - 1), options=[("MSS", 1460)]
    )
    frame.time = 1700000000 + k / 1000
    frames.append(frame)
wrpcap(sys.argv[1], frames)
