#!/usr/bin/env bash
# transitd's compiled classifier against DPDK's dpdk-test-acl (Debian's dpdk-dev) on the
# ClassBench sets in ../shared/classbench, side by side in one run. Prints Markdown.
#   bench/scripts/classify-vs-dpdk.sh [CLASSBENCH_DIR] [ALGS] [ROUNDS]
# BENCH_SMOKE=1 runs one 1k set and one 10k set briefly, BENCH_PROFILE=dev unoptimised (CI's
# smoke run: it checks the script works, not the figures).
set -euo pipefail
cd "$(dirname "$0")/../.."
CB=${1:-../shared/classbench}
ALGS=${2:-scalar,sse,avx2,avx512x16}
ROUNDS=${3:-5}
PROFILE=${BENCH_PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
SMOKE=${BENCH_SMOKE:-}
if ! command -v dpdk-test-acl >/dev/null; then
  echo "DPDK's dpdk-test-acl is missing: scripts/setup installs it (dpdk-dev)" >&2
  exit 1
fi
cargo build -q --profile "$PROFILE" -p transitd-bench
# Both sides on core 0: dpdk-test-acl is given `-l 0`, and transitd's timing loop runs
# pinned there too, so neither gets a quieter core than the other. The binary is where
# cargo built it (CARGO_TARGET_DIR, as CI sets it), not a stale ./target.
BIN="taskset -c 0 $(realpath -m "${CARGO_TARGET_DIR:-target}")/$DIR/transitd-bench"
SETS_1K="acl fw ipc"
SETS_10K=$(ls -d "$CB"/rules/*_10k)
RUNS=11
if [ -n "$SMOKE" ]; then SETS_1K=acl; SETS_10K=$(echo "$SETS_10K" | head -1); RUNS=1; fi
TRACES=target/bench-traces
mkdir -p "$TRACES"

echo "## 1k sets with their own traces (CutSplit's)"
for s in $SETS_1K; do
  echo; echo "### ${s}_1k"; echo
  $BIN classify --rules "$CB/rules_with_traces/${s}_1k" --trace "$CB/rules_with_traces/${s}_1k_trace" \
    --runs "$RUNS" --dpdk "$ALGS" --rounds "$ROUNDS"
done

echo; echo "## 10k sets, 20000-header traces from transitd-bench gen-trace --seed 1"
for r in $SETS_10K; do
  name=$(basename "$r")
  $BIN gen-trace --rules "$r" --count 20000 --seed 1 > "$TRACES/$name.trace"
  echo; echo "### $name"; echo
  $BIN classify --rules "$r" --trace "$TRACES/$name.trace" --runs "$RUNS" --linear false --dpdk "$ALGS" --rounds "$ROUNDS"
done
