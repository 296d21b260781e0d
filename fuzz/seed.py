#!/usr/bin/python3
"""Seeds for the fuzz corpora (fuzz/corpus/<target>), from the project's own data: every
frame of pcaps/ (with the selector byte the frame target reads first), the rule expressions
of the match oracle test, the example and test configurations. Run once to start a corpus;
scripts/fuzz --merge then keeps it minimal. Needs scapy (python3-scapy).

`seed.py --targets` names the targets it seeds, one a line (scripts/fuzz seeds when one of
those has an empty corpus). The others (rule_tree, config_schema, cli, reassembly, plan_replan, lists) build their inputs
from the grammar, the schema or the flags with `arbitrary`: the project's data is not
theirs to start from, and they start from nothing."""
import hashlib, os, random, sys

TARGETS = ("capture", "frame", "gre_header", "batch", "rule", "table", "config", "plan", "fleet", "geofeed", "stats_text")
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
