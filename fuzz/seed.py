#!/usr/bin/python3
"""Seeds for the fuzz corpora (fuzz/corpus/<target>), from the project's own data: every
frame of pcaps/ (with the selector byte the frame target reads first), the rule expressions
of the match oracle test, the example and test configurations. Run once to start a corpus;
scripts/fuzz --merge then keeps it minimal. Needs scapy (python3-scapy).

`seed.py --targets` names the targets it seeds, one a line (scripts/fuzz seeds when one of
those has an empty corpus). The others (rule_tree, config_schema, cli, reassembly, plan_replan, lists) build their inputs
from the grammar, the schema or the flags with `arbitrary`: the project's data is not
theirs to start from, and they start from nothing."""
import hashlib, os, random, struct, sys

TARGETS = ("capture", "frame", "gre_header", "batch", "rule", "table", "config", "plan", "fleet", "geofeed", "stats_text",
           "bird_reply", "guard_line", "classbench", "neigh")
if sys.argv[1:] == ["--targets"]:
    print("\n".join(TARGETS))
    sys.exit(0)

from scapy.all import PcapReader, raw  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
def put(target, data):
    assert target in TARGETS, f"{target} is seeded here: add it to TARGETS"
    d = os.path.join(root, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)

for sub in ("real", "malformed", "generated"):
    folder = os.path.join(root, "pcaps", sub)
    for name in sorted(os.listdir(folder)):
        if not name.endswith((".pcap", ".pcapng")):
            continue
        # The capture target: the files themselves, up to 64 KiB of each (what libFuzzer
        # takes), the malformed ones scapy cannot read included.
        put("capture", open(os.path.join(folder, name), "rb").read()[:65536])
        try:
            batch = b""
            for i, pkt in enumerate(PcapReader(os.path.join(folder, name))):
                if i >= 200:
                    break
                put("frame", bytes([i % 5]) + raw(pkt))
                # The gre_header target: the GRE header and what follows it, where there is one.
                if pkt.haslayer("GRE"):
                    put("gre_header", raw(pkt["GRE"]))
                # The batch target: up to 64 frames, each a gap (us), a length and its bytes.
                frame = raw(pkt)[:0xffff]
                batch += bytes([i % 7]) + len(frame).to_bytes(2, "big") + frame
                if i % 64 == 63:
                    put("batch", bytes([i // 64 % 3]) + batch)
                    batch = b""
            if batch:
                put("batch", bytes([len(name) % 3]) + batch)
        except Exception as e:  # a malformed capture scapy cannot read is seeded by others
            print(f"{name}: {e}", file=sys.stderr)

exprs = [l.strip() for l in open(os.path.join(root, "dataplane/tests/data/match_expressions.txt")) if l.strip() and not l.startswith("#")]
for e in exprs:
    put("rule", e.encode())
# `matches` patterns (PCRE2 syntax), quoted into rules as the oracle test quotes them.
for line in open(os.path.join(root, "dataplane/tests/data/match_patterns.txt")):
    p = line.rstrip("\n").lstrip("!")
    if p and not line.startswith("#"):
        put("rule", ('udp.payload matches "' + p.replace("\\", "\\\\").replace('"', '\\"') + '"').encode())
rng = random.Random(1)
for _ in range(40):
    rules = "\n".join(rng.sample(exprs, 5)).encode()
    put("table", rules + b"\0" + bytes(rng.randrange(256) for _ in range(24 * 8)))
# Every configuration the project keeps: lists, [bgp], [ipfix], [tcp_protection] and
# soft-unicast are in some of them (a few files left the lists and BGP paths unseeded).
configs = [
    os.path.relpath(os.path.join(d, n), root)
    for top in ("examples", "dataplane/tests/data", "bench/configs")
    for d, _, names in os.walk(os.path.join(root, top))
    for n in sorted(names)
    if n.endswith(".toml")
]
for c in configs:
    put("config", open(os.path.join(root, c), "rb").read())

# The plan target: the plans the project keeps.
for dirpath, _, names in os.walk(root):
    if "/target" in dirpath or "/.git" in dirpath or "/fuzz/corpus" in dirpath:
        continue
    for n in names:
        if n.endswith(".json") and "plan" in n:
            put("plan", open(os.path.join(dirpath, n), "rb").read())

# The fleet target: the etcd example as its keys (`key\x01value`, NUL between records),
# whole and with a customer key missing.
etcd = os.path.join(root, "examples", "etcd")
records = [("/t/server", open(os.path.join(etcd, "server.toml")).read())]
for n in sorted(os.listdir(os.path.join(etcd, "customers"))):
    records.append(("/t/customers/" + n[:-5], open(os.path.join(etcd, "customers", n)).read()))
for kept in (records, records[:-1]):
    put("fleet", "\0".join(k + "\x01" + v for k, v in kept).encode())

# The geofeed target: RFC 8805's own example lines (section 2.1.1), a quoted city, a comment.
put("geofeed", b"""# RFC 8805 geofeed: ip_prefix,alpha2code,region,city,postal_code
192.0.2.0/25,US,US-AL,,
192.0.2.5,US,US-AL,Alabaster,
192.0.2.128/25,PL,PL-MZ,,02-784
2001:db8::/32,PL,,,
2001:db8:cafe::/48,PL,PL-MZ,,02-784
198.51.100.0/24,GB,GB-ENG,"London, City of",
""")

# The stats_text target: a scrape as `transitd run` serves it, every family the report reads.
put("stats_text", b"""# TYPE transitd_build_info info
transitd_build_info{version="0.1.0"} 1
# TYPE transitd_start_time_seconds gauge
transitd_start_time_seconds 1700000000
# TYPE transitd_config_reloads counter
transitd_config_reloads_total{result="applied"} 3
transitd_config_reloads_total{result="rejected"} 1
# TYPE transitd_rx_packets counter
transitd_rx_packets_total{worker="0"} 1000
transitd_rx_bytes_total{worker="0"} 64000
transitd_tx_packets_total{worker="0"} 900
transitd_tx_bytes_total{worker="0"} 72000
transitd_batch_duration_recent_seconds{worker="0",quantile="0.5"} 0.000002
transitd_batch_duration_recent_seconds{worker="0",quantile="1.0"} 0.000009
transitd_packets_total{verdict="drop",reason="firewall"} 100
transitd_customer_packets_total{customer="acme",verdict="tx"} 900
transitd_tunnel_packets_total{tunnel="acme-gre",customer="acme",direction="sent"} 900
transitd_tunnel_up{tunnel="acme-gre",checked="true"} 1
transitd_tunnel_mtu_bytes{tunnel="acme-gre"} 1476
transitd_afxdp_zero_copy{worker="0"} 0
transitd_afxdp_events_total{worker="0",event="sent"} 900
transitd_afxdp_kernel_drops_total{worker="0",reason="rx_ring_full"} 2
transitd_xdp_packets_total{action="redirected"} 1000
transitd_interface_packets_total{interface="eth1",counter="rx_packets"} 1000
transitd_drop_capture_packets_total{result="written"} 5
transitd_config_source_up 1
# EOF
""")

# The bird_reply target: BIRD 2's greeting and its replies to the commands transitd sends
# (`configure` taken and refused, `show status`, `show protocols transitd4` with and without
# the protocol, `disable transitd4`), as its control socket sends them.
greeting = b"0001 BIRD 2.0.12 ready.\n"
for reply in (
    b"0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n",
    b"0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/transitd.conf:3:9 syntax error, unexpected CF_SYM_UNDEFINED\n",
    b"0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/caf\xe9.conf: No such file or directory\n",
    b"1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.1\n Hostname is edge1\n Current server time is 2024-05-01 12:00:00.000\n"
    b" Last reboot on 2024-05-01 11:00:00.000\n Last reconfiguration on 2024-05-01 11:30:00.000\n0013 Daemon is up and running\n",
    b"2002-Name       Proto      Table      State  Since         Info\n"
    b"1002-transitd4  Static     master4    up     11:30:00.000  \n0000 \n",
    b"8003 No protocols match\n",
    b"0009 transitd4: disabled\n",
):
    put("bird_reply", greeting + reply)

# The guard_line target: what transitd writes on the guard's stdin (its bytes are also read
# as prefixes, 18 bytes each, for the announcements it builds).
put("guard_line", b"announce 192.0.2.1/32 198.51.100.0/24 2001:db8::/32 2001:db8:cafe::/48\nalive\nalive\n"
    b"withdraw-after 60000\nannounce\nwithdraw-after 500\nannounce 203.0.113.7/32\n")
put("guard_line", b"announce ::ffff:192.0.2.1/128 10.0.0.1/8\r\nalive\r\nwithdraw-after x\nannounce 300.0.0.0/8\nhello\n")

# The classbench target: the head of each rule set the tests read, a NUL, the head of its trace.
cb = os.path.join(root, "classifier", "tests", "data", "classbench")
for name in ("acl_1k", "fw_1k", "ipc_1k"):
    rules = open(os.path.join(cb, name), "rb").read().splitlines(keepends=True)[:40]
    trace = open(os.path.join(cb, name + "_trace"), "rb").read().splitlines(keepends=True)[:100]
    put("classbench", b"".join(rules) + b"\0" + b"".join(trace))

# The neigh target: a selector byte, the watched interface (little-endian) and address (16
# bytes), then messages as the kernel sends them to RTNLGRP_NEIGH (host byte order): entries
# reachable, stale and deleted, with a MAC, probes and cache times, for the watched address
# and others, IPv4 and IPv6.
def nla(kind, value):
    return (struct.pack("=HH", 4 + len(value), kind) + value).ljust((4 + len(value) + 3) // 4 * 4, b"\0")
def neighbour(kind, family, ifindex, state, dst, mac=b"\x02\x00\x00\x00\x00\x01"):
    body = struct.pack("=B3xiHBB", family, ifindex, state, 0, 1)
    body += nla(1, dst) + nla(2, mac) + nla(3, struct.pack("=IIII", 10, 20, 30, 1)) + nla(4, struct.pack("=I", 0))
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body
v4, v6 = bytes([192, 0, 2, 1]), bytes.fromhex("20010db8000000000000000000000001")
# The selector's bit 0 is the watched address's family (set: IPv6).
for selector, watched, messages in (
    (0b0000_0000, v4, [neighbour(28, 2, 7, 0x02, v4)]),
    (0b0010_0010, v4, [neighbour(28, 2, 7, 0x04, bytes([192, 0, 2, 2])), neighbour(29, 2, 7, 0x02, v4)]),
    (0b0010_1001, v6, [neighbour(28, 10, 8, 0x02, bytes(16)), neighbour(28, 10, 7, 0x08, v6)]),
    (0b0101_0100, v4, [neighbour(28, 2, 8, 0x80, v4), neighbour(30, 2, 7, 0x02, v4)]),
):
    put("neigh", bytes([selector]) + struct.pack("<I", 7) + watched.ljust(16, b"\0") + b"".join(messages))
