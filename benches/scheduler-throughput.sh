#!/usr/bin/env bash
# kube-scheduler throughput with and without flinkgate's scheduler extender,
# on the local control plane (hack/cluster) with N kwok fake nodes.
#
# One cluster runs two kube-schedulers: `default-scheduler` (no extender) and
# `flinkgate` (same plugins + flinkgate's /scheduler/filter and
# /scheduler/prioritize, nodeCacheCapable, weight 5). flinkgate is started
# with --controller=false so its collector does not overwrite the scores this
# script publishes in ConfigMap flinkgate-system/flinkgate-scores: every node
# gets a mean between 0.7 and 1.5 (weight 50, so none falls below the 0.6
# floor: nothing is filtered, only prioritized).
#
# For each run, PODS Flink TaskManager-labelled pods (busybox, 10m / 16Mi) are
# created with one `kubectl create -f` and timed until all are bound; runs go
# default, flinkgate, flinkgate, default (ABBA), after a small unmeasured
# warm-up of each scheduler ("stream" runs: creation and scheduling overlap,
# so the rate is bounded by how fast kubectl + apiserver + webhook create
# pods). Then four "backlog" runs (ABBA again): the serving kube-scheduler is
# SIGSTOPped while the pods are created and SIGCONTed once all exist, so the
# rate is the scheduler's own (both schedulers use the default client
# rate limit, qps 50 / burst 100). Throughput is reported four ways:
#   wall    PODS / (first time the 0.2 s poll sees all bound - just before `kubectl create`)
#   event   PODS / (last `Scheduled` event eventTime (µs) - just before `kubectl create`)
#   sched   (PODS-1) / (last - first `Scheduled` eventTime): binding rate once pods are there
#   cond    PODS / (max PodScheduled lastTransitionTime - min creationTimestamp), 1 s resolution
# then prints the extender metrics, extender errors in the scheduler log and
# where pods went by node score bucket.
#
# Usage: benches/scheduler-throughput.sh   (env: NODES=100 PODS=200 WARMUP=10
#        DIR=/tmp/... SKIP_BUILD=1 KEEP_CLUSTER=1)
# The cluster is always torn down at the end (unless KEEP_CLUSTER=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODES=${NODES:-100}
PODS=${PODS:-200}
WARMUP=${WARMUP:-10}
DIR=${DIR:-/tmp/flinkgate-sched-bench}
NS=default
CLUSTER=$ROOT/hack/cluster

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --quiet --bin flinkgate
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
FLINKGATE_BIN=$TARGET/release/flinkgate
[ -x "$FLINKGATE_BIN" ] || { echo "no $FLINKGATE_BIN" >&2; exit 1; }
KUBECTL=$("$ROOT/hack/build" --paths | sed -n 's/^kubectl=//p')
[ -x "$KUBECTL" ] || { echo "kubectl not found via hack/build --paths" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sched-bench-work.XXXXXX)
cleanup() {
  local rc=$?
  [ -n "${PAUSED:-}" ] && kill -CONT "$PAUSED" 2>/dev/null
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    "$CLUSTER" down --dir "$DIR" >&2 || true
  else
    echo "KEEP_CLUSTER set: cluster left running in $DIR" >&2
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: [$(date +%T)] $*" >&2; }

log "starting cluster in $DIR with $NODES nodes"
"$CLUSTER" down --dir "$DIR" >/dev/null 2>&1 || true
UP_OUT=$(FLINKGATE_BIN=$FLINKGATE_BIN FLINKGATE_SERVE_ARGS="--controller=false" \
  "$CLUSTER" up --dir "$DIR" --nodes "$NODES")
eval "$(tail -n1 <<<"$UP_OUT")"
export KUBECONFIG
k() { "$KUBECTL" "$@"; }
FG_URL=https://127.0.0.1:$(tr -d '[:space:]' <"$DIR/flinkgate.port")
CA=$DIR/flinkgate-certs/ca.crt

# ---- scores -----------------------------------------------------------------
python3 - "$NODES" "$WORK/scores.json" "$WORK/means.json" <<'PY'
import json, sys, time
n, out, means_out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
now = time.time()
# Deterministic but scrambled over node names (37 is coprime to 100), so the
# score does not follow the name order any scheduler tie-break might use.
means = {f"kwok-node-{i}": round(0.7 + 0.8 * ((i * 37) % n) / max(n - 1, 1), 4) for i in range(n)}
json.dump({"generated": now,
           "nodes": {k: {"mean": m, "weight": 50.0, "updated": now} for k, m in means.items()}},
          open(out, "w"))
json.dump(means, open(means_out, "w"))
PY
k get ns flinkgate-system >/dev/null 2>&1 || k create ns flinkgate-system >/dev/null
k -n flinkgate-system create configmap flinkgate-scores --from-file=scores.json="$WORK/scores.json" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
log "published scores for $NODES nodes (means 0.7..1.5, none below the floor)"

# Wait until the extender scores with them: prioritize must give varied scores.
python3 - "$NODES" >"$WORK/prio-req.json" <<'PY'
import json, sys
pod = {"metadata": {"name": "probe", "namespace": "default",
       "labels": {"type": "flink-native-kubernetes", "component": "taskmanager", "app": "sched-bench"}}, "spec": {}}
print(json.dumps({"Pod": pod, "Nodes": None, "NodeNames": [f"kwok-node-{i}" for i in range(int(sys.argv[1]))]}))
PY
for i in $(seq 1 60); do
  distinct=$(curl -s --cacert "$CA" -H 'Content-Type: application/json' --data @"$WORK/prio-req.json" \
    "$FG_URL/scheduler/prioritize" | python3 -c 'import json,sys
try: print(len({h["Score"] for h in json.load(sys.stdin)}))
except Exception: print(0)') || distinct=0
  [ "$distinct" -gt 1 ] && break
  sleep 0.5
done
[ "$distinct" -gt 1 ] || { log "ERROR: extender still gives uniform scores after 30 s"; exit 1; }
log "extender loaded the scores ($distinct distinct priorities over $NODES nodes)"

metrics() { curl -s --cacert "$CA" "$FG_URL/metrics" | grep -i extender | grep -v '^#' || true; }
metrics >"$WORK/metrics-before.txt"

# ---- runs -------------------------------------------------------------------
manifest() { # run-id scheduler count -> file
  python3 - "$@" <<'PY'
import json, sys
run, sched, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
items = [{"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": f"{run}-{i:04d}",
                       "labels": {"type": "flink-native-kubernetes", "component": "taskmanager",
                                  "app": "sched-bench", "bench-run": run}},
          "spec": {"schedulerName": sched, "terminationGracePeriodSeconds": 0,
                   "containers": [{"name": "tm", "image": "busybox", "command": ["sleep", "3600"],
                                   "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                                 "limits": {"cpu": "10m", "memory": "16Mi"}}}]}}
         for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
}

wait_bound() { # run-id count timeout -> prints epoch when all seen bound
  local run=$1 n=$2 deadline=$(( $(date +%s) + $3 )) bound
  while :; do
    bound=$(k -n $NS get pods -l bench-run="$run" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -c . || true)
    if [ "$bound" -ge "$n" ]; then date +%s.%N; return 0; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then log "TIMEOUT: $run has $bound/$n bound"; return 1; fi
    sleep 0.2
  done
}

delete_run() {
  k -n $NS delete pods -l bench-run="$1" --wait=true --timeout=180s >/dev/null 2>&1 ||
    k -n $NS delete pods -l bench-run="$1" --force --grace-period=0 --wait=true --timeout=60s >/dev/null 2>&1 || true
  local i
  for i in $(seq 1 300); do
    [ -z "$(k -n $NS get pods -l bench-run="$1" -o name)" ] && return 0
    sleep 0.2
  done
  log "WARNING: pods of $1 still present after delete"
}

PAUSED=
sched_pid() { # scheduler name -> pid of the kube-scheduler process serving it
  local f=kube-scheduler; [ "$1" = flinkgate ] && f=flinkgate-scheduler
  cut -d' ' -f1 "$DIR/pids/$f.pid"
}
one_run() { # run-id scheduler count measured(0/1) [mode: stream|backlog]
  local run=$1 sched=$2 n=$3 mode=${5:-stream} t0 t1 pid=
  manifest "$run" "$sched" "$n" >"$WORK/$run.json"
  if [ "$mode" = backlog ]; then
    pid=$(sched_pid "$sched"); kill -STOP "$pid"; PAUSED=$pid
  fi
  log "run $run ($mode): creating $n pods with schedulerName=$sched"
  t0=$(date +%s.%N)
  k create -f "$WORK/$run.json" >/dev/null
  local tc; tc=$(date +%s.%N)
  if [ "$mode" = backlog ]; then
    sleep 1  # let every pod land in the (paused) scheduler's watch
    t0=$(date +%s.%N); tc=$t0
    kill -CONT "$pid"; PAUSED=
  fi
  if ! t1=$(wait_bound "$run" "$n" 300); then t1=nan; fi
  if [ "$4" = 1 ]; then
    # Scheduled events may land a moment after the binding; wait for all of them.
    local i got
    for i in $(seq 1 50); do
      k -n $NS get events.events.k8s.io -o json >"$WORK/$run-events.json"
      got=$(python3 -c 'import json,sys
r=sys.argv[2]; print(sum(1 for e in json.load(open(sys.argv[1]))["items"]
  if e.get("reason")=="Scheduled" and e.get("regarding",{}).get("name","").startswith(r+"-")))' "$WORK/$run-events.json" "$run")
      [ "$got" -ge "$n" ] && break
      sleep 0.2
    done
    k -n $NS get pods -l bench-run="$run" -o json >"$WORK/$run-pods.json"
    echo "$run $sched $n $t0 $tc $t1 $mode" >>"$WORK/runs.txt"
  fi
  delete_run "$run"
}

log "warm-up: $WARMUP pods per scheduler (not measured)"
one_run warm-default default-scheduler "$WARMUP" 0
one_run warm-flinkgate flinkgate "$WARMUP" 0

: >"$WORK/runs.txt"
one_run r1-default default-scheduler "$PODS" 1
one_run r2-flinkgate flinkgate "$PODS" 1
one_run r3-flinkgate flinkgate "$PODS" 1
one_run r4-default default-scheduler "$PODS" 1
# Backlog: the scheduler is paused (SIGSTOP) while the pods are created and
# resumed once all exist, so the rate is the scheduler's own, not the creation rate.
one_run b1-default default-scheduler "$PODS" 1 backlog
one_run b2-flinkgate flinkgate "$PODS" 1 backlog
one_run b3-flinkgate flinkgate "$PODS" 1 backlog
one_run b4-default default-scheduler "$PODS" 1 backlog

metrics >"$WORK/metrics-after.txt"

# ---- report -----------------------------------------------------------------
echo
echo "=== scheduler throughput: $PODS pods per run, $NODES kwok nodes, $(nproc) cores ==="
python3 - "$WORK" <<'PY'
import json, sys, collections
from datetime import datetime, timezone
work = sys.argv[1]
means = json.load(open(f"{work}/means.json"))

def ts(s):
    # RFC3339 with optional fraction (events: microseconds)
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac, tz = rest[:rest.index("+")], rest[rest.index("+"):]
        s = f"{head}.{(frac + '000000')[:6]}{tz}"
    return datetime.fromisoformat(s).timestamp()

rows, per_sched, placement = [], collections.defaultdict(list), {}
problems = []
for line in open(f"{work}/runs.txt"):
    run, sched, n, t0, tc, t1, mode = line.split()
    n, t0, tc, t1 = int(n), float(t0), float(tc), float(t1)
    pods = json.load(open(f"{work}/{run}-pods.json"))["items"]
    evs = [e for e in json.load(open(f"{work}/{run}-events.json"))["items"]
           if e.get("reason") == "Scheduled" and e["regarding"]["name"].startswith(run + "-")]
    wrong = [p["metadata"]["name"] for p in pods if p["spec"].get("schedulerName") != sched]
    if wrong:
        problems.append(f"{run}: {len(wrong)} pods have schedulerName != {sched} (webhook rewrote it?)")
    ctrl = collections.Counter(e.get("reportingController") for e in evs)
    if set(ctrl) - {sched}:
        problems.append(f"{run}: Scheduled events reported by {dict(ctrl)}")
    bound = [p for p in pods if p["spec"].get("nodeName")]
    created = [ts(p["metadata"]["creationTimestamp"]) for p in pods]
    cond = [ts(c["lastTransitionTime"]) for p in pods for c in p["status"].get("conditions", [])
            if c["type"] == "PodScheduled" and c["status"] == "True"]
    et = sorted(ts(e["eventTime"]) for e in evs if e.get("eventTime"))
    r = {"run": run, "sched": sched, "mode": mode, "bound": len(bound), "n": n,
         "create_s": tc - t0,
         "wall": n / (t1 - t0) if t1 == t1 else float("nan"),
         "event": n / (et[-1] - t0) if len(et) >= n else float("nan"),
         "sched_rate": (len(et) - 1) / (et[-1] - et[0]) if len(et) >= 2 and et[-1] > et[0] else float("nan"),
         "cond": n / max(max(cond) - min(created), 1.0) if len(cond) >= n and mode == "stream" else float("nan"),
         "first_bind_lag": et[0] - t0 if et else float("nan"),
         "events": len(et)}
    rows.append(r)
    per_sched[(mode, sched)].append(r)
    placement[run] = [means[p["spec"]["nodeName"]] for p in bound if p["spec"]["nodeName"] in means]

hdr = f"{'run':14s} {'mode':8s} {'scheduler':18s} {'bound':>7s} {'create s':>8s} {'wall/s':>8s} {'event/s':>8s} {'sched/s':>8s} {'cond/s':>8s} {'1st bind':>8s}"
print(hdr); print("-" * len(hdr))
for r in rows:
    print(f"{r['run']:14s} {r['mode']:8s} {r['sched']:18s} {r['bound']:>3d}/{r['n']:<3d} {r['create_s']:8.2f} {r['wall']:8.1f} "
          f"{r['event']:8.1f} {r['sched_rate']:8.1f} {r['cond']:8.1f} {r['first_bind_lag']:7.2f}s")
print()
def avg(key, *k):
    v = [r[key] for r in per_sched.get(k, []) if r[key] == r[key]]
    return sum(v) / len(v) if v else float("nan")
def ratio(a, b):
    return a / b if b == b and b else float("nan")
for mode in ("stream", "backlog"):
    print(f"{'mean pods/s, ' + mode:33s} {'wall':>8s} {'event':>8s} {'sched':>8s} {'cond':>8s}")
    for s in ("default-scheduler", "flinkgate"):
        print(f"  {s:31s} " + " ".join(f"{avg(k, mode, s):8.1f}" for k in ("wall", "event", "sched_rate", "cond")))
    print(f"  {'ratio flinkgate / default':31s} " + " ".join(
        f"{ratio(avg(k, mode, 'flinkgate'), avg(k, mode, 'default-scheduler')):8.2f}" for k in ("wall", "event", "sched_rate", "cond")))
print("  stream: pods created while the scheduler runs (rate bounded by creation: see 'create s');")
print("  backlog: scheduler SIGSTOPped during creation, clock starts at SIGCONT.")
print("  wall: until the 0.2 s poll saw all bound; event: until the last Scheduled event (µs eventTime);")
print("  sched: first->last Scheduled event; cond: PodScheduled/creationTimestamp (1 s resolution, stream only).")

print("\n=== placement by node mean score (the extender should favour high means) ===")
edges = [0.7, 0.9, 1.1, 1.3, 1.5001]
labels = ["0.70-0.90", "0.90-1.10", "1.10-1.30", "1.30-1.50"]
def bucket(m):
    for i in range(4):
        if edges[i] <= m < edges[i + 1]:
            return i
    return 3
nodes_per = collections.Counter(bucket(m) for m in means.values())
print(f"{'run':14s} " + " ".join(f"{l:>10s}" for l in labels) + f" {'avg mean':>9s} {'nodes used':>10s}")
print(f"{'(nodes)':14s} " + " ".join(f"{nodes_per[i]:>10d}" for i in range(4)) +
      f" {sum(means.values()) / len(means):9.3f} {'':>10s}")
for r in rows:
    pl = placement[r["run"]]
    c = collections.Counter(bucket(m) for m in pl)
    used = len({m for m in pl})  # distinct means ~ distinct nodes (means are unique per node)
    print(f"{r['run']:14s} " + " ".join(f"{c[i]:>10d}" for i in range(4)) +
          f" {sum(pl) / max(len(pl), 1):9.3f} {used:>10d}")
if problems:
    print("\nPROBLEMS:")
    for p in problems:
        print("  " + p)
PY

echo
echo "=== flinkgate extender metrics (after all runs; before the runs in parentheses) ==="
python3 - "$WORK/metrics-before.txt" "$WORK/metrics-after.txt" <<'PY'
import sys
def load(f):
    d = {}
    for l in open(f):
        if l.strip():
            k, _, v = l.strip().rpartition(" ")
            d[k] = v
    return d
b, a = load(sys.argv[1]), load(sys.argv[2])
for k, v in a.items():
    if k.endswith("_bucket") or "_bucket{" in k:
        continue
    print(f"  {k} {v}   (before runs: {b.get(k, '0')})")
PY
echo
echo "=== extender trouble in logs ==="
SL=$DIR/logs/flinkgate-scheduler.log
FL=$DIR/logs/flinkgate.log
printf '  flinkgate-scheduler.log: %s lines mentioning the extender with error/timeout/failed\n' \
  "$(grep -i extender "$SL" 2>/dev/null | grep -ciE 'error|timeout|deadline|fail' || true)"
grep -i extender "$SL" 2>/dev/null | grep -iE 'error|timeout|deadline|fail' | head -5 | cut -c1-300 | sed 's/^/    /' || true
printf '  flinkgate.log: %s WARN/ERROR lines, %s "filtered out"\n' \
  "$(grep -cE 'WARN|ERROR' "$FL" 2>/dev/null || true)" "$(grep -c 'filtered out' "$FL" 2>/dev/null || true)"
grep -E 'WARN|ERROR' "$FL" 2>/dev/null | head -5 | cut -c1-300 | sed 's/^/    /' || true
printf '  kube-scheduler.log (default): %s error lines\n' "$(grep -c '^E' "$DIR/logs/kube-scheduler.log" 2>/dev/null || true)"
