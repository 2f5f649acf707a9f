#!/usr/bin/env bash
# Placement that pays: a real CPU-bound Flink job's throughput when its
# TaskManagers are placed by default-scheduler vs by flinkgate's extender,
# on the local cluster with 3 real nodes, one of them slow (a CPU quota on
# its cgroup root that the scheduler cannot see).
#
# Starts `hack/cluster up --real-nodes 3 --nodes 0 --slow-node
# $SLOW=$FRACTION` with a release flinkgate, runs benches/placement.py (the
# method is in its docstring), plots the throughput with matplotlib
# (installed from PyPI into a cached venv) and tears the cluster down.
#
# Output, in $OUT (default /tmp/flinkgate-placement):
#   results.json, throughput.csv, placement.png, flinkgate*.log
# and, as the last line on stdout:
#   placement gain: +NN% (default-scheduler R1 rec/s, flinkgate R2 rec/s, 3 runs)
#
# Usage: benches/placement.sh [extra placement.py flags, e.g. --reps 5]
#   env: DIR (cluster state dir), OUT, SLOW (node-2), FRACTION (0.3: a quota
#        of 0.3 x 2/3 = 0.2 CPU, above one TaskManager's 0.15 CPU limit, as
#        cgroup v1 requires, and shared by the ~3 TaskManagers placed there),
#        SKIP_BUILD=1, KEEP_CLUSTER=1
# Needs root and cgroup v1, like the real-node tests; about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${DIR:-/tmp/flinkgate-placement-cluster}
OUT=${OUT:-/tmp/flinkgate-placement}
SLOW=${SLOW:-node-2}
FRACTION=${FRACTION:-0.3}
CACHE=${FLINKGATE_CACHE:-$HOME/.cache/flinkgate}
CLUSTER=$ROOT/hack/cluster

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --quiet --bin flinkgate
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export FLINKGATE_BIN=$TARGET/release/flinkgate
[ -x "$FLINKGATE_BIN" ] || { echo "no $FLINKGATE_BIN" >&2; exit 1; }
"$ROOT/hack/build" >&2
KUBECTL=$("$ROOT/hack/build" --paths | sed -n 's/^kubectl=//p')

# matplotlib for the plot, from PyPI, cached
VENV=$CACHE/bench-venv
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'matplotlib>=3.8,<4'
fi

cleanup() {
  local rc=$?
  # flinkgate's own account of what it measured and moved, for the record.
  cp "$DIR"/logs/flinkgate*.log "$OUT"/ 2>/dev/null || true
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    "$CLUSTER" down --dir "$DIR" >&2 || true
  else
    echo "KEEP_CLUSTER set: cluster left running in $DIR" >&2
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

"$CLUSTER" down --dir "$DIR" >/dev/null 2>&1 || true
"$CLUSTER" up --dir "$DIR" --nodes 0 --real-nodes 3 --slow-node "$SLOW=$FRACTION" >&2
mkdir -p "$OUT"
python3 "$ROOT/benches/placement.py" --dir "$DIR" --kubectl "$KUBECTL" --repo "$ROOT" \
  --out "$OUT" --slow-node "$SLOW" "$@" > "$OUT/summary.txt"
"$VENV/bin/python" "$ROOT/benches/placement_plot.py" "$OUT/results.json" "$OUT/placement.png"
echo "placement: plot in $OUT/placement.png" >&2
tail -n 1 "$OUT/summary.txt"
