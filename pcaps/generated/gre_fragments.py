#!/usr/bin/python3
"""Writes gre-fragments.pcap: GRE that customers' routers fragmented after encapsulating it
(no DF on the outer header, as Cisco's GRE sends an inner packet without DF), for the
configuration of dataplane/tests/data/tunnel-edge.toml (anycast 192.0.2.1 and
2001:db8:ffff::1; tunnel acme-gre to 198.51.100.1, acme-v6 to 2001:db8:beef::1).

Each datagram carries a 1428-byte UDP packet from acme's host 203.0.113.10 (its IP id and
payload byte the datagram's number n, source port 5000 + n); scapy's fragment() and
fragment6() cut them. Frames are a millisecond apart; each one's comment says what the
configuration must do with it (transitd reassembles, `gre_reassembly = true`). Run with
Debian's python3-scapy:
  /usr/bin/python3 pcaps/generated/gre_fragments.py pcaps/generated/gre-fragments.pcap
"""
import sys

from scapy.all import GRE, IP, UDP, Ether, IPv6, IPv6ExtHdrFragment, Raw, fragment, fragment6, wrpcap

SRC_MAC, DST_MAC = "02:00:00:00:00:aa", "02:00:00:00:00:01"
ANYCAST, ANYCAST6 = "192.0.2.1", "2001:db8:ffff::1"
ACME_RTR, ACME_RTR6, STRANGER = "198.51.100.1", "2001:db8:beef::1", "198.51.100.99"
HOST, CLIENT = "203.0.113.10", "198.18.0.10"


def inner(n):
    """Datagram n's inner packet: ECT(0) for n = 3, else not ECN-capable."""
    tos = 2 if n == 3 else 0
    return IP(src=HOST, dst=CLIENT, id=n, tos=tos) / UDP(sport=5000 + n, dport=53) / Raw(bytes([n]) * 1400)


def v4(n, src=ACME_RTR):
    tos = 2 if n == 3 else 0
    return Ether(src=SRC_MAC, dst=DST_MAC) / IP(src=src, dst=ANYCAST, id=100 + n, tos=tos) / GRE() / inner(n)


def v6(n):
    return IPv6(src=ACME_RTR6, dst=ANYCAST6) / IPv6ExtHdrFragment(id=200 + n) / GRE() / inner(n)


def main(path):
    a = fragment(v4(1), fragsize=600)
    b = fragment(v4(2), fragsize=600)
    c = fragment(v4(3), fragsize=600)
    c[1][IP].tos = 3  # a router on the way marked this fragment CE
    del c[1][IP].chksum
    d = [Ether(src=SRC_MAC, dst=DST_MAC) / f for f in fragment6(v6(4), 700)]
    e = fragment(v4(5, src=STRANGER), fragsize=600)
    f = fragment(v4(6), fragsize=600)
    g = f[1].copy()  # f's second fragment 8 bytes early: it overlaps the first
    g[IP].frag -= 1
    del g[IP].chksum
    frames = [
        (a[0], "1: held (datagram 1)"),
        (a[1], "2: held"),
        (a[2], "3: completes datagram 1: tx:decapsulated"),
        (b[2], "4: held (datagram 2, its last fragment first)"),
        (b[1], "5: held"),
        (c[0], "6: held (datagram 3, ECT(0))"),
        (b[0], "7: completes datagram 2: tx:decapsulated"),
        (c[1], "8: held (marked CE)"),
        (c[2], "9: completes datagram 3: tx:decapsulated, CE"),
        (d[2], "10: held (datagram 4, GRE over IPv6, reversed)"),
        (d[1], "11: held"),
        (d[0], "12: completes datagram 4: tx:decapsulated"),
        (e[0], "13: from no tunnel's router: pass:gre_unknown_tunnel"),
        (e[1], "14: pass:gre_unknown_tunnel"),
        (e[2], "15: pass:gre_unknown_tunnel"),
        (f[0], "16: held (datagram 6)"),
        (g, "17: overlaps frame 16: gre_fragment, datagram 6 discarded"),
        (f[1], "18: held (datagram 6 again, never completes)"),
        (f[2], "19: held"),
    ]
    out = []
    for i, (p, _) in enumerate(frames):
        p = Ether(bytes(p))
        p.time = 1_700_000_000 + i / 1000
        out.append(p)
    wrpcap(path, out)


if __name__ == "__main__":
    main(sys.argv[1])
