#!/usr/bin/env python3
"""Memory of a running local test bed (hack/cluster up --real-nodes):
the pods (memory.usage_in_bytes of the real nodes' cgroup v1 roots) plus the
VmRSS of every process whose command line names the state dir or a node's
/run/fg-* directory (control plane, kubelets, containerd, kube-proxy,
CoreDNS, flinkgate), by program.

    benches/testbed-memory.py STATE_DIR
"""

import glob
import os
import sys


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(state_dir):
    pods = 0
    for path in glob.glob("/sys/fs/cgroup/memory/fg-*-n*/memory.usage_in_bytes"):
        with open(path) as f:
            pods += int(f.read())
    by_program = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ")
        except OSError:
            continue
        if (state_dir in cmd or "/run/fg-" in cmd) and "containerd-shim" not in cmd:
            prog = os.path.basename(cmd.split()[0])
            by_program[prog] = by_program.get(prog, 0) + rss_bytes(pid)
    infra = sum(by_program.values())
    print(f"pods {pods / 2**20:.0f} MiB, infrastructure {infra / 2**20:.0f} MiB, "
          f"total {(pods + infra) / 2**30:.2f} GiB")
    for prog, b in sorted(by_program.items(), key=lambda kv: -kv[1]):
        print(f"  {prog} {b / 2**20:.0f} MiB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(os.path.abspath(sys.argv[1]))
