#!/usr/bin/python3
"""Writes tcp-mss.pcap: TCP SYNs with zero to three MSS options, for the rule oracle test of
`tcp.options.mss_val` (tshark's field holds every MSS option; transitd's the first and the
last, which Linux's receiver uses): none, one, two in either order, three with a small one
between large ones, two around a malformed option, one after the end of the option list.
Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/tcp_mss.py pcaps/generated/tcp-mss.pcap
"""
import sys
from scapy.all import IP, TCP, Ether, Raw, wrpcap

MSS_1460, MSS_48 = b"\x02\x04\x05\xb4", b"\x02\x04\x00\x30"
OPTIONS = [
    b"",
    MSS_1460,
    MSS_1460 + MSS_48,
    MSS_48 + MSS_1460,
    MSS_1460 + MSS_48 + MSS_1460,
    MSS_1460 + b"\x08\x28" + MSS_48 + b"\x00\x00",  # a timestamp option whose length runs out
    b"\x00\x00\x00\x00" + MSS_48,  # after the end of the list
    b"\x01\x01" + MSS_48 + b"\x01\x01",
]

frames = []
for k, options in enumerate(OPTIONS):
    pad = options + b"\x00" * (-len(options) % 4)
    # The options are written as bytes after a header whose data offset covers them.
    tcp = TCP(sport=40000 + k, dport=443, flags="S", seq=1000 + k, dataofs=5 + len(pad) // 4)
    f = Ether(src="00:1b:21:3a:00:01", dst="00:00:0c:9f:f0:01") / IP(src="198.51.100.7", dst="203.0.113.9") / tcp / Raw(pad)
    f.time = 1700000000 + k / 1000
    frames.append(f)
wrpcap(sys.argv[1], frames)
