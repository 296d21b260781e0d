#!/usr/bin/env bash
# Forwarding rate through one veth pair, counted where the frames arrive, in one run:
#   - transitd run (AF_XDP, one queue, one worker pinned to core 1) with 1, 100 and 1000
#     firewall rules (the generated SYNs are accepted by the last rule, GRE-encapsulated and
#     sent back out);
#   - transitd's own AF_XDP reflect (the backend with no pipeline);
#   - DPDK's dpdk-testpmd with its af_xdp PMD in macswap mode: an AF_XDP forwarder nobody here
#     wrote, the ceiling of the AF_XDP path on this pair;
#   - the kernel's own path for scale: IP forwarding through nftables (a chain of 1 or 1000
#     rules, or the 999 that do not match as one concatenated interval set, the kernel's
#     fastest classifier) and an encapsulating tunnel device (VXLAN: this kernel has no GRE
#     module), its processing steered to core 1 by RPS, as transitd's worker is pinned there
#     (veth would run it on the generator's core 0 else).
# Topology: namespace fgen (generator and sink on fg0) <-> veth <-> namespace fdut (the forwarder
# on fd0). The generator is XDP live frames (or, where the kernel refuses them, an AF_PACKET socket) on core 0, started once the forwarder's XDP program
# is on fd0; an XDP program on fg0 counts what comes back as the forwarder should send it: to
# the MAC it should send to, the generated SYN in the encapsulation expected (GRE to the
# tunnel's remote, VXLAN to the kernel's, or none), not what the interfaces send of their own
# accord: "forwarded" is that count over the generator's sending time. A mode that forwards
# nothing so (a forwarder given a wrong next hop or tunnel, say), or whose forwarder exits
# with an error, fails the script. Needs root. Prints a Markdown table.
#   [MODES="reflect testpmd ..."] bench/scripts/afxdp-forwarding.sh [ROUNDS] [SECONDS]
set -euo pipefail
# Each round runs inside a command substitution, where bash turns errexit off unless told:
# a failed setup (the kernel mode's nft rules, say) then ran the round anyway.
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-3}
if ! command -v dpdk-testpmd >/dev/null || ! ls /usr/lib/*/dpdk/pmds-*/librte_net_af_xdp.so* >/dev/null 2>&1; then
  echo "DPDK's testpmd or its af_xdp PMD is missing: scripts/setup installs them (dpdk-dev, librte-net-af-xdp*)" >&2
  exit 1
fi
# BENCH_SMOKE=1 runs one mode of each kind of forwarder (SMOKE_MODES, below), BENCH_PROFILE=dev
# builds without optimisation (CI's smoke run: it checks the script works, not the figures).
SMOKE=${BENCH_SMOKE:-}
PROFILE=${BENCH_PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build -q --profile "$PROFILE" -p transitd -p transitd-bench
# Where cargo built them (CARGO_TARGET_DIR, as CI sets it), not a stale ./target.
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
T=$TARGET/$DIR/transitd
B=$TARGET/$DIR/transitd-bench
W=$(mktemp -d)
# A round lists its background jobs (the forwarder, the sink, testpmd's feeder) in $W/pids
# and clears the list once they are over. A round that failed left them running, outside
# any shell that could wait for them (transitd busy-polling, the feeder waiting for ever):
# they are ended here, given 5 s to go before they are killed.
stop_jobs() {
  local pids
  pids=$(cat "$W/pids" 2>/dev/null) || return 0
  rm -f "$W/pids"
  [ -n "$pids" ] || return 0
  kill $pids 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 $pids 2>/dev/null || return 0; sleep 0.1; done
  kill -9 $pids 2>/dev/null || true
}
cleanup() { stop_jobs; ip netns del fgen 2>/dev/null || true; ip netns del fdut 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cleanup; W=$(mktemp -d)
ip netns add fgen; ip netns add fdut
ip link add fg0 netns fgen type veth peer name fd0 netns fdut
# No IPv6: router solicitations and the like are not the forwarders' traffic.
for n in fgen fdut; do
  ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip netns exec $n ip link set lo up
done
ip netns exec fgen ip link set fg0 up
ip netns exec fdut ip link set fd0 up
GEN_MAC=$(ip netns exec fgen cat /sys/class/net/fg0/address)
DUT_MAC=$(ip netns exec fdut cat /sys/class/net/fd0/address)
# The outer destinations the forwarders are given: transitd's tunnel's remote, and the
# kernel's VXLAN remote (on fg0's side).
TUNNEL_REMOTE=198.51.100.1
VXLAN_REMOTE=10.99.0.1
# The generator sends with BPF_PROG_TEST_RUN's live frames, which some kernels refuse (seen:
# EPERM on a Firecracker guest's 6.18, where every earlier machine took them); there it sends
# from an AF_PACKET socket, which offers fewer frames a second (each one an skb): the table
# says which. Asked once, briefly, before anything is measured.
if ! ip netns exec fgen "$B" gen --iface fg0 --dst-mac "$DUT_MAC" --seconds 0.01 > "$W/probe" 2>&1; then
  echo "afxdp-forwarding.sh: the generator cannot send here:" >&2
  head -3 "$W/probe" >&2
  exit 1
fi
GENERATOR=$(awk '/^offered/ {print $6}' "$W/probe")

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
remote = "$TUNNEL_REMOTE"
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

# The kernel path: fd0 forwards the SYNs through nftables (N-1 rules that do not match, then
# an accept; anything else dropped; with `set`, the N-1 as one set) into a VXLAN device whose
# remote is on fg0's side. RPS takes what fd0 receives to core 1: veth runs its receive path
# on the sender's core, the generator's, where the kernel got half a core to transitd's one.
kernel_up() { # N rules, [set]
  local n=$1 form=${2:-chain} d="ip netns exec fdut"
  $d sh -c 'echo 2 > /sys/class/net/fd0/queues/rx-0/rps_cpus'
  $d sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.fd0.rp_filter=0
  $d ip addr add 10.99.0.2/24 dev fd0
  $d ip neigh replace "$VXLAN_REMOTE" lladdr "$GEN_MAC" dev fd0 nud permanent
  $d ip link add vx0 type vxlan id 42 remote "$VXLAN_REMOTE" local 10.99.0.2 dstport 4789 dev fd0
  $d ip link set vx0 up
  $d ip route add 203.0.113.0/24 dev vx0
  $d ip neigh replace 203.0.113.100 lladdr 02:00:00:00:00:42 dev vx0 nud permanent
  {
    echo "table inet cust {"
    # A set needs an element (nft refuses `elements = { }`): with one rule, the chain.
    [ "$n" -gt 1 ] || form=chain
    if [ "$form" = set ]; then
      echo "set first { type ipv4_addr . inet_service; flags interval; elements = {"
      for i in $(seq 1 $((n - 1))); do
        printf '172.%d.%d.0/24 . %d,\n' $((16 + i / 256 % 16)) $((i % 256)) $((1000 + i))
      done
      echo "} }"
    fi
    echo "chain forward { type filter hook forward priority 0; policy drop;"
    if [ "$form" = set ]; then
      echo "ip saddr . tcp dport @first accept"
    else
      for i in $(seq 1 $((n - 1))); do
        printf 'ip saddr 172.%d.%d.0/24 tcp dport %d accept\n' $((16 + i / 256 % 16)) $((i % 256)) $((1000 + i))
      done
    fi
    printf "ip daddr 203.0.113.100 tcp dport 20-21 accept\n}\n}\n"
  } > "$W/nft"
  $d nft -f "$W/nft"
}
kernel_down() {
  local d="ip netns exec fdut"
  $d nft delete table inet cust 2>/dev/null || true
  $d ip link del vx0 2>/dev/null || true
  $d ip addr del 10.99.0.2/24 dev fd0 2>/dev/null || true
  $d sysctl -qw net.ipv4.ip_forward=0
  $d sh -c 'echo 0 > /sys/class/net/fd0/queues/rx-0/rps_cpus'
}

# dpdk-testpmd's first start after another AF_XDP user of fd0 now and then fails to create
# its socket (the kernel is still letting the last user's go): that round is run once more.
# True (after a pause) when the round of MODE, AGAIN empty on its first try, failed so.
socket_failed() { # mode again
  [ "$1" = testpmd ] && [ -z "$2" ] && grep -q "Failed to create xsk socket" "$W/dut" || return 1
  echo "testpmd could not create its AF_XDP socket: its round once more" >&2
  # The failed try's feeder sees gen.done and ends meanwhile: its jobs are all over.
  sleep 1
  rm -f "$W/pids"
}

# What the sink on fg0 counts of MODE's forwarding (transitd-bench sink's options): the reflect
# sends each frame back as it came, to fd0's MAC; testpmd's macswap to its source, fg0 (the
# generator sends from fg0's MAC); transitd in GRE to its tunnel's remote through its next hop,
# fg0; the kernel in VXLAN to its remote, which resolves to fg0.
sink_counts() { # mode
  case $1 in
    reflect) echo "--dst-mac $DUT_MAC --forwarded syn" ;;
    testpmd) echo "--dst-mac $GEN_MAC --forwarded syn" ;;
    rules*) echo "--dst-mac $GEN_MAC --forwarded gre --outer-dst $TUNNEL_REMOTE" ;;
    kernel*) echo "--dst-mac $GEN_MAC --forwarded vxlan --outer-dst $VXLAN_REMOTE" ;;
  esac
}

one_round() { # mode [again] -> "offered received_by_dut forwarded seconds forwarder_status"
  local mode=$1 again=${2:-} rx_before
  # The kernel's counter runs since the pair was made: this round's is the difference.
  rx_before=$(ip netns exec fdut cat /sys/class/net/fd0/statistics/rx_packets)
  local sink dut=""
  case $mode in
    reflect) ip netns exec fdut taskset -c 1 "$B" reflect --iface fd0 --seconds $((SECS + 5)) > "$W/dut" & dut=$! ;;
    testpmd)
      # It quits on a line on stdin: given once the generator is done, or once $W is gone
      # (the script ended). The feeder lists itself with the round's jobs.
      rm -f "$W/gen.done"
      (echo "$BASHPID" >>"$W/pids"; until [ -e "$W/gen.done" ] || [ ! -d "$W" ]; do sleep 0.1; done; echo) |
        ip netns exec fdut dpdk-testpmd -l 0,1 --no-pci --no-huge -m 1024 \
        --file-prefix=tdbench --vdev "net_af_xdp0,iface=fd0,start_queue=0,queue_count=1,force_copy=1,busy_budget=0" \
        -- --forward-mode=macswap --auto-start --stats-period 0 > "$W/dut" 2>&1 & dut=$! ;;
    kernelset*) kernel_up "${mode#kernelset}" set
      ip netns exec fdut "$B" sink --pass --iface fd0 --seconds $((SECS + 5)) > /dev/null & dut=$! ;;
    kernel*)
      kernel_up "${mode#kernel}"
      # Frames the generator sends with XDP arrive at fd0 as XDP frames: veth hands them to
      # the stack through an XDP program that passes them.
      ip netns exec fdut "$B" sink --pass --iface fd0 --seconds $((SECS + 5)) > /dev/null & dut=$! ;;
    *) ip netns exec fdut "$T" run --config "$W/$mode.toml" --iface fd0 --cores 1 --stats-interval 0 --no-metrics \
         > "$W/dut" 2> "$W/dut.err" & dut=$! ;;
  esac
  echo "$dut" >>"$W/pids"
  # Ready before the generator starts: testpmd takes seconds to start, and a forwarder that
  # is not yet reading loses the round (a 1 s round once measured nothing but stray frames).
  # Every forwarder attaches an XDP program to fd0 (the kernel path a passing one) just
  # before it binds its socket; it is given a second more.
  local waited=0 status=0
  until grep -q " xdp" <<<"$(ip netns exec fdut ip link show dev fd0)"; do
    # A forwarder that quit before attaching never will: its status and output say why.
    if ! kill -0 "$dut" 2>/dev/null; then
      wait "$dut" || status=$?
      touch "$W/gen.done"
      if socket_failed "$mode" "$again"; then one_round "$mode" again; return; fi
      echo "$mode: the forwarder exited with status $status before attaching to fd0:" >&2
      cat "$W/dut.err" "$W/dut" 2>/dev/null | tail -5 >&2 || true
      return 1
    fi
    waited=$((waited + 1))
    [ "$waited" -lt 300 ] || { echo "$mode: no XDP program on fd0 after 30 s" >&2; return 1; }
    sleep 0.1
  done
  sleep 1
  local counts
  read -ra counts <<<"$(sink_counts "$mode")"
  ip netns exec fgen "$B" sink --iface fg0 --seconds $((SECS + 2)) "${counts[@]}" > "$W/sink" &
  sink=$!
  echo "$sink" >>"$W/pids"
  sleep 0.5
  ip netns exec fgen taskset -c 0 "$B" gen --iface fg0 --dst-mac "$DUT_MAC" --seconds "$SECS" > "$W/gen"
  touch "$W/gen.done"
  sleep 0.5
  case $mode in rules*) kill -TERM "$dut" ;; esac
  # A forwarder that failed (to bind, to start) fails its mode, whatever the sink counted.
  [ -z "$dut" ] || wait "$dut" || status=$?
  wait $sink
  if [ "$status" != 0 ] && socket_failed "$mode" "$again"; then one_round "$mode" again; return; fi
  if [ "$status" != 0 ]; then
    echo "$mode: the forwarder exited with status $status:" >&2
    cat "$W/dut.err" "$W/dut" 2>/dev/null | tail -5 >&2 || true
  fi
  # The round's jobs are over (testpmd's feeder ended with gen.done): none for cleanup.
  rm -f "$W/pids"
  local offered rx
  offered=$(awk '{print $2}' "$W/gen")
  case $mode in
    reflect) rx=$(awk '{print $2}' "$W/dut") ;;
    rules*) rx=$(awk '/^queue 0:/ {print $4}' "$W/dut") ;;
    testpmd) rx=$(awk '/RX-packets:/ {print $2; exit}' "$W/dut") ;;
    kernel*) rx=$(( $(ip netns exec fdut cat /sys/class/net/fd0/statistics/rx_packets) - rx_before )); kernel_down ;;
  esac
  # A forwarder that ran and said nothing countable is a broken round, not "100 % lost".
  if [ -z "$rx" ] && [ "$status" = 0 ]; then
    echo "$mode: no receive count in the forwarder's output" >&2
    return 1
  fi
  echo "$offered ${rx:-0} $(awk '{print $2}' "$W/sink") $(awk '{print $4}' "$W/gen") $status"
}

ALL_MODES="reflect testpmd rules1 rules100 rules1000 kernel1 kernel1000 kernelset1000"
# One of each kind of forwarder, and of each kind of setup (the rules' list written for
# transitd, the kernel's as a chain and as a set): five rounds where all the modes take eight.
SMOKE_MODES="reflect testpmd rules100 kernel1000 kernelset1000"
MODES=${MODES:-$([ -n "$SMOKE" ] && echo "$SMOKE_MODES" || echo "$ALL_MODES")}
echo "Generator: ${GENERATOR:?the generator did not say how it sent} (core 0)."
echo
echo "| mode | forwarded Mpps min | median | max | offered Mpps (median) | not received by the forwarder (median) |"
echo "|---|---:|---:|---:|---:|---:|"
declare -A RES
for r in $(seq 1 "$ROUNDS"); do
  # The modes take turns at going first, every other round in reverse order, so that none
  # always runs on a cooler (or warmer) machine.
  order=$MODES
  if [ $((r % 2)) = 0 ]; then
    order=$(printf '%s\n' $MODES | tac | tr '\n' ' ')
  fi
  for mode in $order; do
    RES[$mode]+="$(one_round $mode);"
  done
done
failed=0
for mode in $MODES; do
  echo "${RES[$mode]}" | tr ';' '\n' | grep . | /usr/bin/python3 -c "
import sys, statistics
rows = [list(map(float, l.split())) for l in sys.stdin]
fwd = sorted(r[2] / r[3] / 1e6 for r in rows)
off = statistics.median(r[0] / r[3] / 1e6 for r in rows)
missed = statistics.median(max(0.0, 1 - r[1] / r[0]) if r[0] else 1.0 for r in rows)
name = {'reflect': 'transitd AF_XDP reflect, no pipeline', 'testpmd': 'DPDK testpmd, af_xdp PMD, macswap',
        'rules1': 'transitd, 1 rule', 'rules100': 'transitd, 100 rules', 'rules1000': 'transitd, 1000 rules',
        'kernel1': 'kernel: forward + nftables (1 rule) + VXLAN', 'kernel1000': 'kernel: forward + nftables (1000 rules) + VXLAN', 'kernelset1000': 'kernel: forward + nftables (999 as one set, 1 rule) + VXLAN'}['$mode']
print(f'| {name} | {fwd[0]:.3f} | {statistics.median(fwd):.3f} | {fwd[-1]:.3f} | {off:.2f} | {missed:.1%} |')
sys.exit(0 if fwd[0] > 0 and all(r[4] == 0 for r in rows) else 1)
" || { echo "$mode forwarded nothing, or its forwarder failed, in at least one round: the benchmark measured nothing" >&2; failed=1; }
done
if [ "$GENERATOR" = af-packet ]; then
  echo
  echo "An AF_PACKET generator offers less than a forwarder may take: a row whose forwarder missed"
  echo "(almost) nothing measured the generator, not the forwarder."
fi
exit $failed
