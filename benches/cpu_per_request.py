#!/usr/bin/env python3
"""Server CPU time per admission review, interleaved A/B: the bare
calibration server and one or more flinkgate builds, each loaded in turn
with the same 3 KB review over 64 TLS keep-alive connections (oha), for
several rounds. CPU per request (utime + stime of the server over the run,
divided by the requests it answered) varies less than req/s on this noisy
2-core machine, because it does not depend on how the load generator is
scheduled.

    cargo build --release --bin flinkgate --example bare-server
    python3 benches/cpu_per_request.py [--rounds 3] [--seconds 6] [--bare PATH]... BIN [BIN...]

`--bare` (repeatable) measures other builds of the bare server too (e.g. one
built the same way as a flinkgate build under test); each flinkgate build
is compared with the first.

Prints one line per round, server and endpoint, then the medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
OHA = os.path.join(os.environ.get("FLINKGATE_CACHE") or os.path.expanduser("~/.cache/flinkgate"), "tools/bin/oha")
BODY = os.path.join(REPO, "tests/fixtures/flinkdeployment-create.json")
BARE = os.path.join(REPO, "target/release/examples/bare-server")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(pid, url, seconds):
    before = cpu_seconds(pid)
    out = subprocess.run([OHA, "--no-tui", "--insecure", "-z", f"{seconds}s", "-c", "64", "-m", "POST",
                          "-T", "application/json", "-D", BODY, "--output-format", "json", url],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    answered = sum(r["statusCodeDistribution"].values())
    if set(r["statusCodeDistribution"]) != {"200"}:
        sys.exit(f"{url}: not every answer was 200: {r['statusCodeDistribution']}")
    return r["summary"]["requestsPerSec"], (cpu_seconds(pid) - before) / answered * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bins", nargs="+", metavar="BIN", help="flinkgate binaries to compare")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--bare", action="append", metavar="PATH",
                    help=f"bare-server builds to measure (default: {BARE})")
    a = ap.parse_args()
    bares = a.bare or [BARE]
    for tool in [OHA] + bares:
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: run benches/load.sh once (it installs oha) and "
                     "cargo build --release --example bare-server")
    servers = [("bare" if i == 0 else f"bare{i}:{os.path.basename(b)}", [b, f"127.0.0.1:{19490 + i}"], 19490 + i)
               for i, b in enumerate(bares)]
    for i, b in enumerate(a.bins):
        port = 19501 + i
        servers.append((f"{i}:{os.path.basename(b)}", [b, "serve", "--listen", f"127.0.0.1:{port}"], port))
    procs = {name: subprocess.Popen(cmd, stderr=subprocess.DEVNULL) for name, cmd, _ in servers}
    time.sleep(1)
    results = {}
    try:
        for rnd in range(a.rounds):
            for endpoint in ("/validate", "/mutate"):
                for name, _, port in servers:
                    if name.startswith("bare") and endpoint == "/mutate":
                        continue  # it answers /validate only
                    rps, us = load(procs[name].pid, f"https://127.0.0.1:{port}{endpoint}", a.seconds)
                    results.setdefault((name, endpoint), []).append((rps, us))
                    print(f"round {rnd}  {name:24s} {endpoint:9s} {rps:8.0f} req/s  {us:5.1f} us CPU/request",
                          flush=True)
    finally:
        for p in procs.values():
            p.terminate()
    print("medians:")
    bare = statistics.median(us for _, us in results[("bare", "/validate")])
    for (name, endpoint), rows in results.items():
        us = statistics.median(u for _, u in rows)
        rps = statistics.median(r for r, _ in rows)
        print(f"  {name:24s} {endpoint:9s} {rps:8.0f} req/s  {us:5.1f} us CPU/request"
              f"  (bare/this: {bare / us:4.0%})")


if __name__ == "__main__":
    main()
