#!/usr/bin/env bash
# Load test over TLS with keep-alive: flinkgate against the bare calibration
# server (benches/bare_server.rs), in the same run, plus start-to-ready time
# and RSS under load. Needs `oha` (installed from the crate registry into
# ~/.cache/flinkgate/tools on first use).
#
#   benches/load.sh            # DURATION=10s CONNECTIONS=64 RATE=5000 by default;
#                              # both servers built by hack/pgo-build (profile-
#                              # guided, as flinkgate ships: hack/images, Dockerfile)
#   PGO=0 benches/load.sh      # both servers as plain `cargo build --release`
#   FLINKGATE_BIN=path benches/load.sh   # measure another build (e.g. an older commit's)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
RATE=${RATE:-5000}
TOOLS=${FLINKGATE_CACHE:-$HOME/.cache/flinkgate}/tools
OHA=$TOOLS/bin/oha
if [ ! -x "$OHA" ]; then
  echo "installing oha into $TOOLS" >&2
  cargo install oha --locked --root "$TOOLS"
fi
# Two builds: examples turn on the test-support feature (dev-dependencies),
# and the flinkgate measured must be the release binary users get.
if [ "${PGO:-1}" = 1 ]; then
  # Like with like: the bare server gets the same profile-guided build.
  hack/pgo-build --with-bare
  FG=${FLINKGATE_BIN:-target/pgo/flinkgate}
  BARE=target/pgo/bare-server
else
  cargo build --release --quiet --bin flinkgate
  cargo build --release --quiet --example bare-server
  FG=${FLINKGATE_BIN:-target/release/flinkgate}
  BARE=target/release/examples/bare-server
fi
echo "measuring $FG against $BARE" >&2
BODY=tests/fixtures/flinkdeployment-create.json
FG_PORT=18443 BARE_PORT=19443

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Start to ready: spawn, then poll /readyz over TLS as fast as possible.
python3 - "$FG_PORT" "$FG" <<'PY'
import socket, ssl, subprocess, sys, time
port, fg = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
samples = []
for _ in range(5):
    t0 = time.perf_counter()
    p = subprocess.Popen([fg, "serve", "--listen", f"127.0.0.1:{port}"],
                         stderr=subprocess.DEVNULL)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=1) as s:
                with ctx.wrap_socket(s) as t:
                    t.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if t.recv(64).startswith(b"HTTP/1.1 200"):
                        break
        except OSError:
            time.sleep(0.0005)
    samples.append((time.perf_counter() - t0) * 1000)
    p.terminate(); p.wait()
print(f"start to ready: median {sorted(samples)[2]:.1f} ms (5 runs: {', '.join(f'{s:.1f}' for s in samples)})")
PY

"$FG" serve --listen 127.0.0.1:$FG_PORT 2>/dev/null & pids+=($!); FG_PID=$!
"$BARE" 127.0.0.1:$BARE_PORT 2>/dev/null & pids+=($!)
sleep 0.5

run() { # name url extra-args...
  local name=$1 url=$2; shift 2
  local out
  out=$("$OHA" --no-tui --insecure -z "$DURATION" -m POST -T application/json -D "$BODY" --output-format json "$@" "$url")
  python3 - "$name" "$out" <<'PY'
import json, sys
name, r = sys.argv[1], json.loads(sys.argv[2])
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
print(f"{name:38s} {s['requestsPerSec']:9.0f} req/s  p50 {p['p50'] * 1e3:6.3f} ms  p99 {p['p99'] * 1e3:6.3f} ms  status {codes}")
PY
}

echo "throughput, $CONNECTIONS connections, $DURATION each, 3 KB FlinkDeployment review:"
run "bare server (parse + allow)" "https://127.0.0.1:$BARE_PORT/validate" -c "$CONNECTIONS"
run "flinkgate /validate" "https://127.0.0.1:$FG_PORT/validate" -c "$CONNECTIONS"
run "flinkgate /mutate" "https://127.0.0.1:$FG_PORT/mutate" -c "$CONNECTIONS" &
LOAD=$!
peak=0
while kill -0 $LOAD 2>/dev/null; do
  rss=$(ps -o rss= -p $FG_PID | tr -d ' '); [ "${rss:-0}" -gt "$peak" ] && peak=$rss
  sleep 0.2
done
wait $LOAD
echo "flinkgate peak RSS under load: $((peak / 1024)) MiB"
echo "fixed rate $RATE req/s, 16 connections:"
run "flinkgate /validate @ $RATE/s" "https://127.0.0.1:$FG_PORT/validate" -c 16 -q "$RATE"
run "flinkgate /mutate @ $RATE/s" "https://127.0.0.1:$FG_PORT/mutate" -c 16 -q "$RATE"
