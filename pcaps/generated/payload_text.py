#!/usr/bin/python3
"""Writes payload-text.pcap: UDP datagrams (port 9, which nothing dissects further) whose
data exercises regular expressions, for the rule oracle test of `matches` (tshark runs
PCRE2; transitd must select the same frames): HTTP-like lines, text ending with and without
a newline, CR and CRLF endings, tabs, vertical tab, form feed, NEL (0x85), no-break space
(0xa0), escape sequences, NUL and high bytes, regex metacharacters written as text,
case mixes, digits. Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/payload_text.py pcaps/generated/payload-text.pcap
"""
import sys
from scapy.all import IP, UDP, Ether, Raw, wrpcap

PAYLOADS = [
    b"GET /index.php HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"line one\nline two\n",
    b"ends without newline",
    b"tab\there\x0bvt\x0cff",
    b"nbsp\xa0here\x85nel",
    b"a.b a+b (a|b) [x] {1,2} $100 ^caret \\back",
    b"AAAaaa aaaa",
    b"\x1b[31mred\x1b[0m",
    b"\x00\x01\x02 binary \xff\xfe",
    b"user=admin&pass=secret\n",
    b"<script>alert(1)</script>",
    b"x{,3}yy{2}z{a}",
    b"CRLF only\r\n",
    b"CR only\r",
    b"8 9 89 \x08 back",
    b"word-boundary <tag> end",
    b"UPPER lower MiXeD 12345",
    b"\n",
    b"end with dollar$",
    b"two\n\nblank lines\n\n",
    b"A\nB",
    b"aaa",
    b"octal \x0a \x41 \x01 \x7f",
    b"caret ^ and amp && tilde ~~ dash -- brackets [[x]]",
    b"aa",
    b"a\n",
    b"\r\n",
    b"m",
    b"b]",
    b"ab",
]

frames = []
for k, data in enumerate(PAYLOADS):
    f = Ether(src="00:1b:21:3a:00:01", dst="00:00:0c:9f:f0:01") / IP(src="198.51.100.7", dst="203.0.113.9") / UDP(sport=40000 + k, dport=9) / Raw(data)
    f.time = 1700000000 + k / 1000
    frames.append(f)
wrpcap(sys.argv[1], frames)
