#!/usr/bin/env bash
# Extender latency over TLS, end to end, one call at a time (what one
# kube-scheduler cycle waits for): prioritize with node names only
# (nodeCacheCapable) for 1,000 and 5,000 nodes, and filter + prioritize with
# a full NodeList of 1,000 realistic ~5 KB Node objects. Scores exist for
# every node, so the scoring path is exercised.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${FLINKGATE_CACHE:-$HOME/.cache/flinkgate}/tools
OHA=$TOOLS/bin/oha
[ -x "$OHA" ] || cargo install oha --locked --root "$TOOLS"
# FLINKGATE_BIN=path measures another build (A/B runs) instead of this tree's.
BIN=${FLINKGATE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin flinkgate
  BIN=target/release/flinkgate
fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) on $(nproc) cores" >&2
WORK=$(mktemp -d)
PORT=18444
trap 'kill $FG 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 - "$WORK" <<'PY'
import json, sys, time
work = sys.argv[1]
now = time.time()
nodes = {f"node-{i}": {"mean": 0.5 + (i % 10) / 10, "weight": 50.0, "updated": now} for i in range(5000)}
json.dump({"generated": now, "nodes": nodes}, open(f"{work}/scores.json", "w"))
pod = {"metadata": {"name": "tm", "namespace": "default",
       "labels": {"type": "flink-native-kubernetes", "component": "taskmanager", "app": "job"}}, "spec": {}}
for n in (1000, 5000):
    json.dump({"Pod": pod, "Nodes": None, "NodeNames": [f"node-{i}" for i in range(n)]}, open(f"{work}/names-{n}.json", "w"))
def node(i):
    name = f"node-{i}"
    labels = {f"topology.example.com/label-{k}": f"value-{k}-{i}" for k in range(20)}
    labels.update({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m5.2xlarge"})
    images = [{"names": [f"example.com/team/image-{k}@sha256:{'a' * 64}", f"example.com/team/image-{k}:v1.{k}"], "sizeBytes": 123456789 + k} for k in range(12)]
    return {"metadata": {"name": name, "uid": f"uid-{i:032d}", "resourceVersion": str(1000 + i), "labels": labels,
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"podCIDR": f"10.{i // 256}.{i % 256}.0/24", "providerID": f"aws:///us-east-1a/i-{i:017d}"},
            "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                       "allocatable": {"cpu": "7910m", "memory": "31Gi", "pods": "110", "ephemeral-storage": "95Gi"},
                       "conditions": [{"type": t, "status": "False" if t != "Ready" else "True", "lastHeartbeatTime": "2026-11-24T00:00:00Z",
                                       "lastTransitionTime": "2026-11-20T00:00:00Z", "reason": f"Kubelet{t}", "message": f"kubelet reports {t}"}
                                      for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")],
                       "addresses": [{"type": "InternalIP", "address": f"10.1.{i // 256}.{i % 256}"}, {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.33.13", "containerRuntimeVersion": "containerd://1.7.27", "osImage": "Debian GNU/Linux 12",
                                    "kernelVersion": "6.1.0", "architecture": "amd64", "operatingSystem": "linux"},
                       "images": images}}
items = [node(i) for i in range(1000)]
body = {"Pod": pod, "Nodes": {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}, "NodeNames": None}
text = json.dumps(body)
open(f"{work}/full-1000.json", "w").write(text)
print(f"full NodeList body: {len(text) / 1e6:.1f} MB, {len(json.dumps(items[0]))} bytes per Node", file=sys.stderr)
PY
"$BIN" serve --listen 127.0.0.1:$PORT --scores-file "$WORK/scores.json" 2>/dev/null & FG=$!
sleep 1
metrics() { curl -sk "https://127.0.0.1:$PORT/metrics" | grep '^flinkgate_scheduler_extender_seconds_bucket' || true; }
run() { # name verb body n
  local out before after
  before=$(metrics)
  out=$("$OHA" --no-tui --insecure -n "$4" -c 1 -m POST -T application/json -D "$3" --output-format json "https://127.0.0.1:$PORT/scheduler/$2")
  after=$(metrics)
  python3 - "$1" "$out" "$2" "$before" "$after" <<'PY'
import json, re, sys
r = json.loads(sys.argv[2]); p = r["latencyPercentiles"]
print(f"{sys.argv[1]:44s} p50 {p['p50'] * 1e3:7.3f} ms  p99 {p['p99'] * 1e3:7.3f} ms  status {r.get('statusCodeDistribution')}")
# The server's own view of the same calls (flinkgate_scheduler_extender_seconds,
# this run's share): the upper bound of the bucket holding p50 and p99.
def buckets(text, verb, phase):
    out = {}
    for m in re.finditer(r'_bucket\{(.*?)\} (\S+)', text):
        labels = dict(kv.split("=", 1) for kv in m.group(1).split(","))
        if labels.get("verb") == f'"{verb}"' and labels.get("phase") == f'"{phase}"':
            out[float(labels["le"].strip('"'))] = float(m.group(2))
    return out
for phase in ("read_body", "handle"):
    b, a = buckets(sys.argv[4], sys.argv[3], phase), buckets(sys.argv[5], sys.argv[3], phase)
    delta = sorted((le, a[le] - b.get(le, 0)) for le in a)
    total = delta[-1][1] if delta else 0
    def q(x):
        return next((le for le, c in delta if c >= x * total), float("inf"))
    if total:
        print(f"{'':44s}   server {phase:9s}: p50 <= {q(0.5) * 1e3:.2f} ms, p99 <= {q(0.99) * 1e3:.2f} ms")
PY
}
run "prioritize, 1,000 node names" prioritize "$WORK/names-1000.json" 2000
run "prioritize, 5,000 node names" prioritize "$WORK/names-5000.json" 1000
run "filter, 1,000 node names" filter "$WORK/names-1000.json" 2000
run "filter, full NodeList of 1,000 Nodes" filter "$WORK/full-1000.json" 100
run "prioritize, full NodeList of 1,000 Nodes" prioritize "$WORK/full-1000.json" 100
# The same two full-NodeList calls from a lighter client (Python's http.client
# over one kept-alive TLS connection, TCP_NODELAY), as kube-scheduler makes
# them: oha's own handling of a 4.8 MB body adds most of its tail (compare
# the server's phases above).
for verb in filter prioritize; do
  python3 - "$WORK/full-1000.json" "$verb" "$PORT" <<'PY'
import http.client, socket, ssl, sys, time
body, verb, port = open(sys.argv[1], "rb").read(), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
c.connect(); c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
for _ in range(100):
    t = time.perf_counter()
    c.request("POST", f"/scheduler/{verb}", body=body, headers={"content-type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    lat.append((time.perf_counter() - t) * 1e3)
lat.sort()
print(f"{verb + ', full NodeList, http.client':44s} p50 {lat[50]:7.3f} ms  p99 {lat[98]:7.3f} ms")
PY
done
