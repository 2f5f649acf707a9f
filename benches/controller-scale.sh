#!/usr/bin/env bash
# The controller under many FlinkDeployments, on the local control plane.
#
# Starts hack/cluster (flinkgate = the release build, controller on,
# NODES kwok nodes), installs deploy/flink-rbac in namespace `scale`, applies
# COUNT session FlinkDeployments in one `kubectl apply`, then reports:
#   first pass  COUNT / seconds until every FlinkDeployment has been reconciled
#               once (status.observedGeneration set): the initial reconcile rate,
#               each reconcile being 5 server-side applies + reads + a status write
#   pods        seconds until all COUNT JobManager pods run (kcm + kube-scheduler
#               + kwok; the controller is not the bottleneck there)
#   steady      reconciles/s over STEADY seconds afterwards (JobManagers whose
#               REST API never answers are re-checked every few seconds; status
#               writes that change nothing are skipped)
#   memory      flinkgate's RSS (VmRSS, VmHWM) with COUNT objects in its caches
#   duration    mean reconcile time, from flinkgate_controller_reconcile_duration_seconds
#
# Usage: benches/controller-scale.sh   (env: COUNT=500 NODES=6 STEADY=30
#        DIR=/tmp/flinkgate-ctl-bench SKIP_BUILD=1 KEEP_CLUSTER=1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT=${COUNT:-500}
NODES=${NODES:-6}
STEADY=${STEADY:-30}
DIR=${DIR:-/tmp/flinkgate-ctl-bench}
NS=scale
CLUSTER=$ROOT/hack/cluster

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --quiet --bin flinkgate
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
FLINKGATE_BIN=$TARGET/release/flinkgate
KUBECTL=$("$ROOT/hack/build" --paths | sed -n 's/^kubectl=//p')
[ -x "$KUBECTL" ] || { echo "kubectl not found via hack/build --paths" >&2; exit 1; }

cleanup() {
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    "$CLUSTER" down --dir "$DIR" >/dev/null 2>&1 || true
  else
    echo "KEEP_CLUSTER set: cluster left running in $DIR" >&2
  fi
}
trap cleanup EXIT
"$CLUSTER" down --dir "$DIR" >/dev/null 2>&1 || true
eval "$(FLINKGATE_BIN=$FLINKGATE_BIN "$CLUSTER" up --dir "$DIR" --nodes "$NODES" 2>/dev/null | tail -1)"
k() { "$KUBECTL" "$@"; }
PORT=$(cat "$DIR/flinkgate.port")
PID=$(awk '{print $1}' "$DIR/pids/flinkgate.pid")
CA=$DIR/flinkgate-certs/ca.crt
metrics() { curl -sf --cacert "$CA" "https://127.0.0.1:$PORT/metrics"; }
metric_sum() { metrics | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }

k create namespace "$NS" >/dev/null
k apply -n "$NS" -k "$ROOT/deploy/flink-rbac" >/dev/null
sleep 2  # the ServiceAccount admission cache

python3 - "$COUNT" "$NS" > "$DIR/deployments.yaml" <<'EOF'
import sys
count, ns = int(sys.argv[1]), sys.argv[2]
for i in range(count):
    print(f"""---
apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: fd-{i:04d}
  namespace: {ns}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  serviceAccount: flink
  jobManager:
    resource: {{memory: 1024m, cpu: 0.1}}
  taskManager:
    resource: {{memory: 1024m, cpu: 0.1}}""")
EOF

before=$(metric_sum 'flinkgate_controller_reconciles_total')
t0=$(date +%s.%N)
k apply -f "$DIR/deployments.yaml" >/dev/null
t_applied=$(date +%s.%N)
reconciled() {
  k get flinkdeployments -n "$NS" -o jsonpath='{range .items[*]}{.status.observedGeneration}{"\n"}{end}' | grep -c . || true
}
while [ "$(reconciled)" -lt "$COUNT" ]; do sleep 0.5; done
t_first=$(date +%s.%N)
running() { k get pods -n "$NS" --field-selector=status.phase=Running -o name | grep -c . || true; }
deadline=$(( $(date +%s) + 600 ))
while [ "$(running)" -lt "$COUNT" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
t_pods=$(date +%s.%N)
pods_running=$(running)

s0=$(metric_sum 'flinkgate_controller_reconciles_total')
sleep "$STEADY"
s1=$(metric_sum 'flinkgate_controller_reconciles_total')
dur_sum=$(metric_sum 'flinkgate_controller_reconcile_duration_seconds_sum')
dur_count=$(metric_sum 'flinkgate_controller_reconcile_duration_seconds_count')
errors=$(metrics | awk 'index($0, "flinkgate_controller_reconciles_total") == 1 && /result="error"/ { s += $NF } END { print s + 0 }')
rss=$(awk '/VmRSS/ {print $2 / 1024}' "/proc/$PID/status")
hwm=$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$PID/status")

python3 - <<EOF
count = $COUNT
applied = $t_applied - $t0
first = $t_first - $t0
pods = $t_pods - $t0
print(f"machine: $(nproc) cores; kubectl apply of {count} FlinkDeployments took {applied:.1f}s (admission included)")
print(f"first pass: all {count} reconciled once {first:.1f}s after the apply began: {count / first:.0f} FlinkDeployments/s")
print(f"pods: {$pods_running}/{count} JobManager pods Running after {pods:.1f}s")
print(f"steady: {($s1 - $s0) / $STEADY:.0f} reconciles/s over ${STEADY}s ({$s1 - $before:.0f} reconciles in all, {$errors:.0f} errors)")
print(f"duration: mean reconcile {1000 * $dur_sum / max($dur_count, 1):.1f} ms over {$dur_count:.0f}")
print(f"memory: flinkgate RSS {$rss:.0f} MiB (peak {$hwm:.0f} MiB) with {count} FlinkDeployments, {count} Deployments watched")
EOF
