#!/usr/bin/python3
"""Writes amplification.pcap: the five UDP reflection vectors operators filter at the edge,
each as its reflectors answer (the attack) and beside the traffic that looks like it but is
not (requests, other message types of the same protocol, ordinary answers), for the
signature tests (dataplane/tests/signatures.rs; tshark's own dissectors say which frame is
which).

- memcached (UDP 11211): `stats` answers split over several datagrams ("STAT ..."), a
  `get` answer ("VALUE ..."); look-alikes: the `stats` request, an "END" answer.
- NTP monlist (UDP 123): mode-7 answers to MON_GETLIST_1 (request code 42) with 6 and 10
  entries, implementation 2 and 3; look-alikes: the monlist request, a mode-7 answer to
  another request (PEER_LIST), an ordinary mode-4 server answer.
- DNS ANY (UDP 53): answers to ANY queries (a name, and the root); look-alikes: the ANY
  query itself, an A answer, a TXT answer.
- SSDP (UDP 1900): "HTTP/1.1 200 OK" answers to M-SEARCH; look-alikes: the M-SEARCH
  request, a NOTIFY announcement sent from port 1900.
- CLDAP (UDP 389): searchResEntry answers to a rootDSE netlogon search (short and long BER
  lengths); look-alikes: the searchRequest, a searchResDone-only answer.

Deterministic. Run with Debian's python3-scapy:
    /usr/bin/python3 pcaps/generated/amplification.py pcaps/generated/amplification.pcap
"""
import sys
from scapy.all import IP, UDP, Ether, Raw, wrpcap
from scapy.layers.dns import DNS, DNSQR, DNSRR

VICTIM = "198.51.100.7"
eth = Ether(src="00:1b:21:3a:00:01", dst="00:00:0c:9f:f0:01")
frames = []


def udp(src, sport, dport, payload, dst=VICTIM):
    frames.append(eth / IP(src=src, dst=dst, ttl=54) / UDP(sport=sport, dport=dport) / payload)


# memcached: an 8-byte UDP frame header (request id, sequence, datagrams, reserved 0).
def memcached(request_id, seq, total, text):
    return request_id.to_bytes(2, "big") + seq.to_bytes(2, "big") + total.to_bytes(2, "big") + b"\0\0" + text


stats = b"".join(b"STAT %s %d\r\n" % (name, i * 7919) for i, name in enumerate(
    [b"pid", b"uptime", b"time", b"version", b"curr_connections", b"total_items", b"bytes", b"evictions"] * 8))
udp("203.0.113.11", 11211, 80, memcached(0, 0, 2, stats[:600]))
udp("203.0.113.11", 11211, 80, memcached(0, 1, 2, stats[600:] + b"END\r\n"))
udp("203.0.113.12", 11211, 443, memcached(0x1234, 0, 1, b"VALUE amp 0 1000\r\n" + b"A" * 1000 + b"\r\nEND\r\n"))
udp(VICTIM, 80, 11211, memcached(0, 0, 1, b"stats\r\n"), dst="203.0.113.11")  # the request
udp("203.0.113.13", 11211, 80, memcached(7, 0, 1, b"END\r\n"))  # an empty answer


# NTP mode 7: flags (response, more, version 2, mode 7), sequence, implementation, request
# code, then err/count and item size, then the items.
def ntp7(response, more, implementation, code, items, size):
    flags = (0x80 if response else 0) | (0x40 if more else 0) | (2 << 3) | 7
    return bytes([flags, 0, implementation, code]) + (len(items)).to_bytes(2, "big") + size.to_bytes(2, "big") + b"".join(items)


entry = bytes(range(72))
udp("203.0.113.21", 123, 80, ntp7(True, True, 3, 42, [entry] * 6, 72))
udp("203.0.113.22", 123, 80, ntp7(True, False, 2, 42, [entry] * 10, 72))
udp(VICTIM, 80, 123, ntp7(False, False, 3, 42, [], 0) + b"\0" * 40, dst="203.0.113.21")  # the request
udp("203.0.113.23", 123, 80, ntp7(True, False, 3, 0, [bytes(32)] * 4, 32))  # PEER_LIST answer
mode4 = bytes([0x24, 2, 6, 0xec]) + bytes(44)  # an ordinary server answer (version 4, mode 4)
udp("203.0.113.24", 123, 80, mode4)

# DNS
txt = [DNSRR(rrname="example.org", type="TXT", rdata=b"v=spf1 include:_spf.example.org ~all" * 3) for _ in range(3)]
a = [DNSRR(rrname="example.org", type="A", rdata=f"192.0.2.{i}") for i in range(1, 9)]
udp("203.0.113.31", 53, 80, DNS(id=1, qr=1, rd=1, ra=1, qd=DNSQR(qname="example.org", qtype=255), an=a[0] / a[1] / txt[0] / txt[1] / txt[2]))
udp("203.0.113.32", 53, 443, DNS(id=2, qr=1, qd=DNSQR(qname=".", qtype=255), an=DNSRR(rrname=".", type="A", rdata="192.0.2.53")))
udp(VICTIM, 80, 53, DNS(id=1, rd=1, qd=DNSQR(qname="example.org", qtype=255)), dst="203.0.113.31")  # the query
udp("203.0.113.33", 53, 80, DNS(id=3, qr=1, qd=DNSQR(qname="www.example.org", qtype="A"), an=a[2] / a[3]))
udp("203.0.113.34", 53, 80, DNS(id=4, qr=1, qd=DNSQR(qname="example.org", qtype="TXT"), an=txt[0] / txt[1]))

# SSDP
ok = (b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://192.168.1.1:1900/igd.xml\r\n"
      b"SERVER: Linux/3.14 UPnP/1.0 IpBridge/1.16\r\nST: upnp:rootdevice\r\nUSN: uuid:2f402f80-da50-11e1-9b23::upnp:rootdevice\r\n\r\n")
udp("203.0.113.41", 1900, 80, ok)
udp("203.0.113.42", 1900, 443, ok.replace(b"upnp:rootdevice", b"ssdp:all"))
udp(VICTIM, 80, 1900, b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n',
    dst="203.0.113.41")  # the request
udp("203.0.113.43", 1900, 1900, b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n",
    dst="239.255.255.250")


# CLDAP: LDAP messages in BER, one per datagram.
def ber(tag, body, long_len=False):
    n = len(body)
    if long_len:
        length = b"\x84" + n.to_bytes(4, "big")
    elif n < 0x80:
        length = bytes([n])
    else:
        length = b"\x82" + n.to_bytes(2, "big")
    return bytes([tag]) + length + body


def message(msg_id, op, long_len=False):
    return ber(0x30, ber(0x02, msg_id.to_bytes(1 if msg_id < 0x80 else 2, "big")) + op, long_len)


netlogon = ber(0x30, ber(0x04, b"netlogon") + ber(0x31, ber(0x04, bytes(range(256)) * 2)))
entry_op = ber(0x64, ber(0x04, b"") + ber(0x30, netlogon))
done_op = ber(0x65, ber(0x0a, b"\x00") + ber(0x04, b"") + ber(0x04, b""))
udp("203.0.113.51", 389, 80, message(1, entry_op) + message(1, done_op))
udp("203.0.113.52", 389, 443, message(300, entry_op, long_len=True) + message(300, done_op, long_len=True))
search = ber(0x63, ber(0x04, b"") + ber(0x0a, b"\x00") + ber(0x0a, b"\x00") + ber(0x02, b"\x00") + ber(0x02, b"\x00")
             + ber(0x01, b"\x00") + ber(0x87, b"objectclass") + ber(0x30, ber(0x04, b"netlogon")))
udp(VICTIM, 80, 389, message(1, search), dst="203.0.113.51")  # the request
udp("203.0.113.53", 389, 80, message(2, done_op))  # searchResDone alone

for i, f in enumerate(frames):
    f.time = 1_700_000_000 + i / 1000
wrpcap(sys.argv[1], frames)
