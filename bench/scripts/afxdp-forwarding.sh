#!/usr/bin/env bash
# Forwarding rate of `transitd run` (AF_XDP, copy mode, one queue, one pinned worker) with 1,
# 100 and 1000 firewall rules, and the AF_XDP reflect ceiling (no pipeline), in one run.
# Needs root. Topology: namespace fgen (generator and sink on fg0) <-> veth <-> namespace
# fdut (transitd on fd0). The generator is XDP live frames on core 0; transitd's worker is
# pinned to core 1. Prints a Markdown table.
#   bench/scripts/afxdp-forwarding.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-3}
cargo build --release -q -p transitd -p transitd-bench
T=$PWD/target/release/transitd
B=$PWD/target/release/transitd-bench
W=$(mktemp -d)
cleanup() { ip netns del fgen 2>/dev/null || true; ip netns del fdut 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cleanup; W=$(mktemp -d)
ip netns add fgen; ip netns add fdut
ip link add fg0 netns fgen type veth peer name fd0 netns fdut
for n in fgen fdut; do ip netns exec $n ip link set lo up; done
ip netns exec fgen ip link set fg0 up
ip netns exec fdut ip link set fd0 up
GEN_MAC=$(ip netns exec fgen cat /sys/class/net/fg0/address)
DUT_MAC=$(ip netns exec fdut cat /sys/class/net/fd0/address)

config() { # N rules: N-1 that never match the generated SYNs, then "accept FTP"
  local n=$1
  cat <<TOML
[server]
anycast = "192.0.2.1"
next_hop_mac = "$GEN_MAC"
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "acme-gre"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "acme-gre"
[customer.firewall]
default = "drop"
TOML
  for i in $(seq 1 $((n - 1))); do
    printf '[[customer.firewall.rule]]\nmatch = "ip.src == 172.%d.%d.0/24 and tcp.dstport == %d"\naction = "accept"\n' $((16 + i / 256 % 16)) $((i % 256)) $((1000 + i))
  done
  printf '[[customer.firewall.rule]]\nname = "ftp"\nmatch = "ip.dst == 203.0.113.100 and tcp.dstport in {20..21}"\naction = "accept"\n'
}
for n in 1 100 1000; do config $n > "$W/rules$n.toml"; done

one_round() { # mode -> "offered rx forwarded seconds"
  local mode=$1
  ip netns exec fgen "$B" sink --iface fg0 --seconds $((SECS + 3)) > "$W/sink" &
  local sink=$!
  if [ "$mode" = reflect ]; then
    ip netns exec fdut taskset -c 1 "$B" reflect --iface fd0 --seconds $((SECS + 2)) > "$W/dut" &
  else
    ip netns exec fdut "$T" run --config "$W/$mode.toml" --iface fd0 --cores 1 --stats-interval 0 > "$W/dut" 2> "$W/dut.err" &
  fi
  local dut=$!
  sleep 1
  ip netns exec fgen taskset -c 0 "$B" gen --iface fg0 --dst-mac "$DUT_MAC" --seconds "$SECS" > "$W/gen"
  sleep 0.5
  [ "$mode" = reflect ] || kill -TERM $dut
  wait $dut; wait $sink
  local offered rx
  offered=$(awk '{print $2}' "$W/gen")
  if [ "$mode" = reflect ]; then rx=$(awk '{print $2}' "$W/dut"); else rx=$(awk '/^queue 0:/ {print $4}' "$W/dut"); fi
  echo "$offered $rx $(awk '{print $2}' "$W/sink") $(awk '{print $4}' "$W/gen")"
}

echo "| mode | forwarded Mpps min | median | max | offered Mpps (median) | dropped before transitd (median) |"
echo "|---|---:|---:|---:|---:|---:|"
declare -A RES
for r in $(seq 1 "$ROUNDS"); do
  for mode in reflect rules1 rules100 rules1000; do
    RES[$mode]+="$(one_round $mode);"
  done
done
for mode in reflect rules1 rules100 rules1000; do
  echo "${RES[$mode]}" | tr ';' '\n' | grep . | /usr/bin/python3 -c "
import sys, statistics
rows = [list(map(float, l.split())) for l in sys.stdin]
fwd = sorted(r[2] / r[3] / 1e6 for r in rows)
off = statistics.median(r[0] / r[3] / 1e6 for r in rows)
drop = statistics.median(1 - r[1] / r[0] for r in rows)
name = {'reflect': 'AF_XDP reflect, no pipeline', 'rules1': 'transitd, 1 rule', 'rules100': 'transitd, 100 rules', 'rules1000': 'transitd, 1000 rules'}['$mode']
print(f'| {name} | {fwd[0]:.3f} | {statistics.median(fwd):.3f} | {fwd[-1]:.3f} | {off:.2f} | {drop:.1%} |')
"
done
