#!/usr/bin/python3
"""Writes acme-ftp.pcap: traffic for the seed's example (examples/acme.toml), made with scapy.

Each frame's comment below says what examples/acme.toml must do with it. Run with Debian's
python3-scapy: /usr/bin/python3 pcaps/generated/acme_ftp.py pcaps/generated/acme-ftp.pcap
"""
import sys
from scapy.all import ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, IPv6, Raw, wrpcap

SRC_MAC, DST_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:01"
CLIENT, CLIENT6 = "198.18.0.10", "2001:db8:c0::10"


def eth(*layers, vlan=None):
    frame = Ether(src=SRC_MAC, dst=DST_MAC)
    if vlan is not None:
        frame = frame / Dot1Q(vlan=vlan)
    for layer in layers:
        frame = frame / layer
    return frame


frames = [
    # 1: FTP control SYN to 203.0.113.100:21 -> accepted (rule ftp), GRE to 198.51.100.1
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=57) / TCP(sport=40000, dport=21, flags="S", seq=1000)),
    # 2: FTP data to port 20 -> accepted (rule ftp)
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=57) / TCP(sport=40001, dport=20, flags="PA") / Raw(b"x" * 300)),
    # 3: SSH to 203.0.113.100:22 -> dropped (firewall, default drop)
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=57) / TCP(sport=40002, dport=22, flags="S")),
    # 4: FTP to another host of the prefix -> dropped (firewall)
    eth(IP(src=CLIENT, dst="203.0.113.50", ttl=57) / TCP(sport=40003, dport=21, flags="S")),
    # 5: DNS to 198.51.100.7, no customer's prefix -> passed to the host (unmatched = pass)
    eth(IP(src=CLIENT, dst="198.51.100.7") / UDP(sport=5353, dport=53) / Raw(b"\x12\x34" + b"\0" * 10)),
    # 6: ping to 203.0.113.100 -> accepted (rule ping)
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=120) / ICMP(type=8, id=7, seq=1) / Raw(b"ping" * 8)),
    # 7: IPv6 FTP to Acme's IPv6 prefix -> dropped (rule ftp matches IPv4 only)
    eth(IPv6(src=CLIENT6, dst="2001:db8:acbe::100", hlim=60) / TCP(sport=40004, dport=21, flags="S")),
    # 8: IPv6 ping -> accepted (rule ping), IPv6 inside IPv4 GRE
    eth(IPv6(src=CLIENT6, dst="2001:db8:acbe::100", hlim=60) / ICMPv6EchoRequest(id=1, seq=1, data=b"v6ping")),
    # 9: ARP -> passed to the host (not IP)
    Ether(src=SRC_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst="192.0.2.1"),
    # 10: TTL 1 -> ICMP time exceeded back to the client (dropped as ttl_exceeded if rate-limited)
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=1) / TCP(sport=40005, dport=21, flags="S")),
    # 11: 1500-byte IP packet with DF, more than the tunnel MTU of 1476 -> ICMP fragmentation
    # needed (MTU 1476) back to the client (dropped as mtu_exceeded if rate-limited)
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=57, flags="DF") / TCP(sport=40006, dport=20, flags="PA") / Raw(b"y" * 1460)),
    # 12: VLAN 42 tagged FTP -> accepted; the tag is not carried into the tunnel
    eth(IP(src=CLIENT, dst="203.0.113.100", ttl=57) / TCP(sport=40007, dport=21, flags="S"), vlan=42),
]
for i, f in enumerate(frames):
    f.time = 1700000000 + i / 1000
wrpcap(sys.argv[1], frames)
