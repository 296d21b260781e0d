#!/usr/bin/python3
"""Writes rst-1000.pcap: 1000 TCP RSTs of no connection, as a blind RST flood sends them,
from 1000 different sources (1.0.0.0-99.255.255.255, 11 of them in 10.0.0.0/8) and common
ports (22, 25, 80, 443, 8080, or now and then another) to random hosts and ports of
203.0.113.0/24, with random sequence numbers (their top three bits,
a cookie's slot, name a recent one five times in eight), half of them with ACK set: the
traffic of the pipeline benchmark's case (d) (bench/configs/tcp-protection.toml, which drops
every one as tcp_out_of_state_rst), a RST flood with no SYN flood. Deterministic. Run with
Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/rst_1000.py pcaps/generated/rst-1000.pcap
"""
import random
import sys
from scapy.all import IP, TCP, Ether, wrpcap
from flood_sources import distinct_sources

rng = random.Random(1001)
frames = []
for k, src in enumerate(distinct_sources(rng, 1000)):
    dst = f"203.0.113.{rng.randint(1, 254)}"
    sport = rng.choice([22, 25, 80, 443, 443, 443, 8080, rng.randint(1024, 65535)])
    flags, ack = ("RA", rng.randint(0, 2**32 - 1)) if k % 2 else ("R", 0)
    frame = Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:01") / IP(src=src, dst=dst, ttl=rng.randint(40, 120)) / TCP(
        sport=sport, dport=rng.randint(1024, 65535), flags=flags, seq=rng.randint(0, 2**32 - 1), ack=ack, window=0
    )
    frame.time = 1700000000 + k / 1000
    frames.append(frame)
wrpcap(sys.argv[1], frames)
