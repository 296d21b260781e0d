#!/usr/bin/python3
"""Writes syn-1000.pcap: 1000 TCP SYNs from 1000 different sources (1.0.0.0-99.255.255.255,
14 of them in 10.0.0.0/8, which case (b) drops as bogon sources) to random hosts and common
ports of 203.0.113.0/24, with an MSS option: the traffic of the pipeline benchmark's case (b)
(bench/configs/syn-firewall-1000.toml).
Deterministic. The syn-1000.pcap in the repository is not this script's output: an earlier
version wrote it, which ordered the sources by walking a set (string hashing is randomised,
so each run ordered them differently). It holds the same 1000 sources; their order and the
other fields drawn after them differ from what this version writes. Run with Debian's
python3-scapy:
    /usr/bin/python3 pcaps/generated/syn_1000.py pcaps/generated/syn-1000.pcap
"""
import random
import sys
from scapy.all import IP, TCP, Ether, wrpcap
from flood_sources import distinct_sources

rng = random.Random(1000)
frames = []
for k, src in enumerate(distinct_sources(rng, 1000)):
    dst = f"203.0.113.{rng.randint(1, 254)}"
    dport = rng.choice([22, 25, 80, 443, 443, 443, 8080, rng.randint(1024, 65535)])
    frame = Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:01") / IP(src=src, dst=dst, ttl=rng.randint(40, 120)) / TCP(
        sport=rng.randint(1024, 65535), dport=dport, flags="S", seq=rng.randint(0, 2**32 - 1), options=[("MSS", 1460)]
    )
    frame.time = 1700000000 + k / 1000
    frames.append(frame)
wrpcap(sys.argv[1], frames)
