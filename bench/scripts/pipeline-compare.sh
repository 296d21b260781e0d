#!/usr/bin/env bash
# The in-memory pipeline of this tree against an earlier commit's, alternated in one run, on
# the four cases of docs/benchmarks.md: (a) catch-all config over GLB's 1000 packets, (b)
# sanity checks + a SYN rate limit + a 1000-rule firewall over 1000 SYNs from varied sources,
# (c) decapsulation of Zeek's GRE session, (d) a RST flood with no SYN flood (1000 RSTs of no
# connection from varied sources) at a customer under TCP protection, every RST dropped as
# out of state (the run fails unless each one is). Both builds run this tree's benchmark code
# (bench/src/pipeline.rs, copied into the other commit's worktree), pinned to one core.
# Prints, per case and build, the min/median/max over rounds of each run's median, and the
# same run's etherparse SlicedPacket walk for scale. Prints Markdown.
#   bench/scripts/pipeline-compare.sh [REV] [ROUNDS] [FRAMES]
# With no REV, only this tree is measured. BENCH_PROFILE=dev builds without optimisation
# (CI's smoke run: it checks the script works, not the figures).
#
# MEASURE=instructions counts instead of timing (one run per case and build, under
# valgrind's callgrind, counting only inside the pipeline): instructions, mispredicted
# branches (callgrind's simulated predictor) and L1 data misses per packet. Counts do not
# drift with the machine's speed as times do here; they miss what the hardware overlaps.
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=${1:-}
ROUNDS=${2:-5}
FRAMES=${3:-500000}
PROFILE=${BENCH_PROFILE:-release}
. bench/scripts/lib/builds.sh
build_both "$REV" bench/src/pipeline.rs bench/src/measure.rs
# name|config|capture|what every frame must come to (`pipeline --expect`; none: forwarded)
CASES=(
  "(a) catch-all, GLB|bench/configs/catch-all.toml|pcaps/real/glb-1k_pkts.pcap|"
  "(b) SYN limit + 1000-rule firewall|bench/configs/syn-firewall-1000.toml|pcaps/generated/syn-1000.pcap|"
  "(c) decapsulation, Zeek GRE|bench/configs/zeek-gre.toml|pcaps/real/zeek-tunnels-gre-sample.pcap|"
  "(d) RST flood, TCP protection|bench/configs/tcp-protection.toml|pcaps/generated/rst-1000.pcap|drop:tcp_out_of_state_rst"
)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; [ -z "${WT:-}" ] || git worktree remove --force "$WT" 2>/dev/null || true' EXIT
if [ "${MEASURE:-time}" = instructions ]; then
  echo "$FRAMES frames per run (warm-up and one timed run counted), callgrind on process_batch_via, profile $PROFILE"
  echo
  echo "| case | build | instructions / packet | mispredicted branches / packet | L1 data misses / packet |"
  echo "|---|---|---:|---:|---:|"
  for c in "${!CASES[@]}"; do
    IFS='|' read -r name config pcap expect <<<"${CASES[$c]}"
    for b in "${!BUILDS[@]}"; do
      bin=${BUILDS[$b]#*=}
      valgrind --tool=callgrind --branch-sim=yes --cache-sim=yes --callgrind-out-file="$OUT/cg" \
        '--toggle-collect=transitd::pipeline::batch::process_batch_via*' \
        "$bin" pipeline --config "$config" --pcap "$pcap" --runs 1 --frames "$FRAMES" ${expect:+--expect "$expect"} \
        >"$OUT/run" 2>/dev/null
      # The pipeline saw the warm-up run and the timed one.
      packets=$(awk '/frames per run/ {print 2 * $1}' "$OUT/run")
      awk -v n="$name" -v b="${BUILDS[$b]%%=*}" -v p="$packets" '
        /^events:/ { for (i = 2; i <= NF; i++) at[$i] = i }
        /^(summary|totals):/ { for (i = 2; i <= NF; i++) v[i] = $i; done = 1 }
        END {
          # Nothing counted (no pipeline function of that name in the build) is no figure.
          if (!done || p == 0 || v[at["Ir"]] == 0) { print "no counts for " n " (" b ")" > "/dev/stderr"; exit 1 }
          printf "| %s | %s | %.0f | %.2f | %.2f |\n", n, b, v[at["Ir"]] / p,
            (v[at["Bcm"]] + v[at["Bim"]]) / p, (v[at["D1mr"]] + v[at["D1mw"]]) / p
        }' "$OUT/cg"
    done
  done
  exit 0
fi
for round in $(seq "$ROUNDS"); do
  # The builds take turns at going first, so that neither always runs on a cooler machine.
  order=("${!BUILDS[@]}")
  if [ $((round % 2)) = 0 ]; then
    mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
  fi
  for c in "${!CASES[@]}"; do
    IFS='|' read -r _ config pcap expect <<<"${CASES[$c]}"
    for b in "${order[@]}"; do
      bin=${BUILDS[$b]#*=}
      # Fails (and so does the script) when the run transmitted nothing, or (with an
      # expectation) did not bring every frame to it.
      taskset -c 1 "$bin" pipeline --config "$config" --pcap "$pcap" --runs 5 --frames "$FRAMES" \
        ${expect:+--expect "$expect"} >"$OUT/run"
      # A row renamed or missing is no figure (awk would average nothing into zeros).
      if ! grep -q 'whole pipeline' "$OUT/run" || ! grep -q 'SlicedPacket alone' "$OUT/run"; then
        echo "pipeline-compare.sh: no 'whole pipeline' or 'SlicedPacket alone' row from ${BUILDS[$b]%%=*} on $config:" >&2
        cat "$OUT/run" >&2
        exit 1
      fi
      awk -F'|' '/whole pipeline/ {print $4+0}' "$OUT/run" >>"$OUT/$c.$b.pipeline"
      awk -F'|' '/SlicedPacket alone/ {print $4+0}' "$OUT/run" >>"$OUT/$c.$b.slice"
    done
  done
done
# The median as bench/src/measure.rs takes it: the middle value, or the mean of the two.
stats() { sort -g "$1" | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.1f | %.1f | %.1f", v[1], m, v[NR]}'; }
median() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
echo "$ROUNDS rounds, $FRAMES frames per run, 1 Mpps simulated arrival, core 1, profile $PROFILE"
echo
# Each round is one run of --runs 5, whose median it keeps: min, median and max are over
# the rounds' medians.
echo "| case | build | ns/packet, round medians: min | median | max | SlicedPacket median | pipeline / SlicedPacket |"
echo "|---|---|---:|---:|---:|---:|---:|"
for c in "${!CASES[@]}"; do
  for b in "${!BUILDS[@]}"; do
    p=$(median "$OUT/$c.$b.pipeline"); s=$(median "$OUT/$c.$b.slice")
    awk -v n="${CASES[$c]%%|*}" -v b="${BUILDS[$b]%%=*}" -v st="$(stats "$OUT/$c.$b.pipeline")" -v p="$p" -v s="$s" \
      'BEGIN {printf "| %s | %s | %s | %.1f | %.1fx |\n", n, b, st, s, p / s}'
  done
done
