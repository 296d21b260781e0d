#!/usr/bin/env bash
# The tunnel health prober of this tree against an earlier commit's, alternated in one run:
# ns per tick (one a millisecond) with 1,000 and 32,768 health-checked tunnels, routers all
# answering and none answering (`transitd-bench prober`, simulated time, the tick alone
# timed). Both builds run this tree's bench/src/prober.rs, pinned to one core: REV must have
# the probe writer it calls (80defa9 or later, when probes came to name their sender; the
# subcommand itself is from 33dfe5e, and 70b721e's tree compares with that). Prints, per case and build, the min/median/max over
# rounds of each run's median. Prints Markdown.
#   bench/scripts/prober-compare.sh [REV] [ROUNDS] [SECONDS] [TUNNELS]
# With no REV, only this tree is measured. BENCH_PROFILE=dev builds without optimisation
# (CI's smoke run: it checks the script works, not the figures).
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=${1:-}
ROUNDS=${2:-5}
SECONDS_A_RUN=${3:-10}
TUNNELS=${4:-1000,32768}
PROFILE=${BENCH_PROFILE:-release}
. bench/scripts/lib/builds.sh
build_both "$REV" bench/src/prober.rs bench/src/measure.rs
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; [ -z "${WT:-}" ] || git worktree remove --force "$WT" 2>/dev/null || true' EXIT
for round in $(seq "$ROUNDS"); do
  # The builds take turns at going first, so that neither always runs on a cooler machine.
  order=("${!BUILDS[@]}")
  if [ $((round % 2)) = 0 ]; then
    mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
  fi
  for b in "${order[@]}"; do
    bin=${BUILDS[$b]#*=}
    # Fails (and so does the script) when a run sent too few probes or judged nothing.
    taskset -c 1 "$bin" prober --tunnels "$TUNNELS" --seconds "$SECONDS_A_RUN" --runs 3 >"$OUT/run"
    # Rows: | tunnels | routers | min | median | max | sent |
    awk -F'|' -v b="$b" -v out="$OUT" '$2 ~ /^ *[0-9]+ *$/ {
        gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); key = $2 "|" $3
        print $5 + 0 >> (out "/" b "." $2 "." ($3 ~ /none/ ? "none" : "all"))
        print key > (out "/cases." b)
      }' "$OUT/run"
  done
done
stats() { sort -g "$1" | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.0f | %.0f | %.0f", v[1], m, v[NR]}'; }
echo "$ROUNDS rounds, $SECONDS_A_RUN simulated seconds a run (3 runs, their median kept), core 1, profile $PROFILE"
echo
echo "| tunnels | routers | build | ns/tick, round medians: min | median | max |"
echo "|---:|---|---|---:|---:|---:|"
while IFS='|' read -r n routers; do
  for b in "${!BUILDS[@]}"; do
    f="$OUT/$b.$n.$([[ $routers == *none* ]] && echo none || echo all)"
    [ -s "$f" ] || { echo "prober-compare.sh: no figures for $n tunnels, $routers (${BUILDS[$b]%%=*})" >&2; exit 1; }
    echo "| $n | $routers | ${BUILDS[$b]%%=*} | $(stats "$f") |"
  done
done <"$OUT/cases.0"
