#!/usr/bin/env python3
"""Peak memory of `flinkgate serve` under the largest extender requests.

Usage: benches/extender_memory.py FLINKGATE_BINARY

Starts the binary on a free port, sends each request below to
/scheduler/filter and /scheduler/prioritize (then 8 of them at once), and
prints the answer and the process's peak RSS (VmHWM) after each. The
requests:
  - names:     the most node names the extender takes (nodeCacheCapable);
  - nodelist:  5,000 full Nodes of about 5 KB each (nodeCacheCapable: false);
  - tiny:      a body at the size cap made of 1-byte names, the shape that
               amplifies memory most when parsed naively.
"""
import concurrent.futures
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request


def node(i):
    """A Node shaped like a kubelet's, about 5 KB."""
    name = f"worker-{i:05d}.eu-west-1.compute.internal"
    return {
        "metadata": {
            "name": name,
            "uid": f"2f1c6a7e-0000-4000-8000-{i:012d}",
            "resourceVersion": str(100000 + i),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "m6i.2xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[i % 3]}",
                "node-role.kubernetes.io/worker": "",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": f"10.{i // 256 % 256}.{i % 256}.0/24", "providerID": f"aws:///eu-west-1a/i-{i:017x}"},
        "status": {
            "capacity": {"cpu": "8", "memory": "32386524Ki", "pods": "110", "ephemeral-storage": "104845292Ki"},
            "allocatable": {"cpu": "7910m", "memory": "31369692Ki", "pods": "110", "ephemeral-storage": "95551679567"},
            "conditions": [
                {
                    "type": t,
                    "status": "False" if t != "Ready" else "True",
                    "lastHeartbeatTime": "2026-12-05T10:00:00Z",
                    "lastTransitionTime": "2026-11-01T10:00:00Z",
                    "reason": f"Kubelet{t}",
                    "message": f"kubelet reports {t} as expected on this node",
                }
                for t in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{i // 256 % 256}.{i % 256}"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "ec2" + "0" * 29,
                "systemUUID": "ec2" + "1" * 33,
                "bootID": "b" * 36,
                "kernelVersion": "6.1.0-28-cloud-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [
                {
                    "names": [
                        f"registry.example.internal/team-{k}/service@sha256:{'%064x' % (i * 31 + k)}",
                        f"registry.example.internal/team-{k}/service:1.{k}.{i % 10}",
                    ],
                    "sizeBytes": 100000000 + k,
                }
                for k in range(12)
            ],
        },
    }


def pod():
    return {
        "metadata": {
            "name": "job-taskmanager-1-1",
            "namespace": "flink",
            "uid": "0a7d9c1e-1111-4222-8333-444455556666",
            "labels": {"app": "job", "component": "taskmanager", "type": "flink-native-kubernetes"},
        }
    }


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def main():
    binary = sys.argv[1]
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}"], stderr=log, stdout=log
    )
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    base = f"https://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", context=ctx, timeout=1)
            break
        except Exception:
            time.sleep(0.1)

    nodes = [node(i) for i in range(5000)]
    nodelist = json.dumps({"Pod": pod(), "Nodes": {"apiVersion": "v1", "kind": "NodeList", "items": nodes}, "NodeNames": None}).encode()
    names = json.dumps({"Pod": pod(), "Nodes": None, "NodeNames": [n["metadata"]["name"] for n in nodes] * 2}).encode()
    cap = int(os.environ.get("BODY_CAP_MIB", "32")) * 1024 * 1024
    tiny_count = (cap - 200) // 4
    tiny = (b'{"Pod":null,"Nodes":null,"NodeNames":[' + b",".join([b'"a"'] * tiny_count) + b"]}")

    def post(path, body):
        req = urllib.request.Request(base + path, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
                out = r.read()
                return r.status, len(out)
        except urllib.error.HTTPError as e:
            return e.code, len(e.read())

    print(f"idle: RSS {rss_mib(proc.pid):.0f} MiB, peak {peak_rss_mib(proc.pid):.0f} MiB")
    for label, body in [("names", names), ("nodelist", nodelist), ("tiny", tiny)]:
        for verb in ["filter", "prioritize"]:
            status, size = post(f"/scheduler/{verb}", body)
            print(
                f"{label:9} {verb:10} body {len(body) / 2**20:6.1f} MiB -> {status} ({size} bytes); "
                f"RSS {rss_mib(proc.pid):.0f} MiB, peak {peak_rss_mib(proc.pid):.0f} MiB"
            )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: post("/scheduler/filter", body)[0], range(8)))
        print(f"{label:9} 8 at once  -> {sorted(results)}; peak {peak_rss_mib(proc.pid):.0f} MiB")
    peak = peak_rss_mib(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    print(f"extender under its largest requests: peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
