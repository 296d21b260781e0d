#!/usr/bin/env bash
# transitd's compiled classifier against DPDK's dpdk-test-acl (Debian's dpdk-dev) on the
# ClassBench sets in ../shared/classbench, side by side in one run. Prints Markdown.
#   bench/scripts/classify-vs-dpdk.sh [CLASSBENCH_DIR] [ALGS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
CB=${1:-../shared/classbench}
ALGS=${2:-scalar,sse,avx2,avx512x16}
ROUNDS=${3:-5}
cargo build --release -q -p transitd-bench
# Both sides on core 0: dpdk-test-acl is given `-l 0`, and transitd's timing loop runs
# pinned there too, so neither gets a quieter core than the other.
BIN="taskset -c 0 target/release/transitd-bench"
TRACES=target/bench-traces
mkdir -p "$TRACES"

echo "## 1k sets with their own traces (CutSplit's)"
for s in acl fw ipc; do
  echo; echo "### ${s}_1k"; echo
  $BIN classify --rules "$CB/rules_with_traces/${s}_1k" --trace "$CB/rules_with_traces/${s}_1k_trace" \
    --runs 11 --dpdk "$ALGS" --rounds "$ROUNDS"
done

echo; echo "## 10k sets, 20000-header traces from transitd-bench gen-trace --seed 1"
for r in "$CB"/rules/*_10k; do
  name=$(basename "$r")
  $BIN gen-trace --rules "$r" --count 20000 --seed 1 > "$TRACES/$name.trace"
  echo; echo "### $name"; echo
  $BIN classify --rules "$r" --trace "$TRACES/$name.trace" --runs 11 --linear false --dpdk "$ALGS" --rounds "$ROUNDS"
done
