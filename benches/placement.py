#!/usr/bin/env python3
"""The placement experiment: how much faster a real CPU-bound Flink job runs
when flinkgate's extender places its TaskManagers by measured performance,
on real nodes one of which is slow in a way the scheduler cannot see.

Run by benches/placement.sh on a cluster it started (`--real-nodes 3
--slow-node ...`); see that script for the set-up and the output.

Method (one run = one FlinkDeployment, native application mode, the
image's CpuBound.jar: sequence -> keyBy -> CPU-heavy map -> discard, so the
job runs at the pace of its slowest subtask):
  1. a warm-up run placed by default-scheduler, from which the collector
     learns each node's F_n (not counted);
  2. REPS rounds, each one run per placement, the order alternating
     (default, flinkgate), (flinkgate, default), ...;
  3. per run: apply, wait until every subtask runs, let it settle for
     SETTLE seconds, then sample the job's throughput (records per second
     into the map, summed over subtasks, from Flink's REST API) every
     SAMPLE seconds for WINDOW seconds; record where every TaskManager
     ran, each node's F_n and the job's F(x) from flinkgate's metrics.
The placement is switched through the policy: pods.taskManager.schedulerName
`flinkgate` (the profile with the extender) or absent (default-scheduler).
  4. (--heal, on by default) a checkpointed job placed by flinkgate with
     scheduling.rebalance on; after HEAL_BEFORE seconds the node holding most
     of its TaskManagers is made slow; the throughput is sampled for
     HEAL_AFTER seconds: the dip, each move, and the time until it is back
     to 90 % of before.

Writes OUT/results.json and OUT/throughput.csv, prints one line per run
and, last, `placement gain: +NN% (default-scheduler R1 rec/s, flinkgate R2
rec/s, N runs)` with medians over the rounds.
"""

import argparse
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request

NAMESPACE = "placement"
DEFAULT, FLINKGATE = "default-scheduler", "flinkgate"
JAR = "local:///opt/flink/examples/streaming/CpuBound.jar"


def log(msg):
    print(f"placement: {msg}", file=sys.stderr, flush=True)


class Cluster:
    def __init__(self, state_dir, kubectl, repo):
        self.dir = state_dir
        self.kubectl_bin = kubectl
        self.repo = repo
        self.env = dict(os.environ, KUBECONFIG=os.path.join(state_dir, "kubeconfig"))
        with open(os.path.join(state_dir, "flinkgate.port")) as f:
            self.metrics_url = f"https://127.0.0.1:{f.read().strip()}/metrics"
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run([self.kubectl_bin, *args], input=stdin, env=self.env,
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def get(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def metrics(self):
        """flinkgate's Prometheus metrics as {(name, labels): value}."""
        with urllib.request.urlopen(self.metrics_url, context=self.tls, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ([0-9.eE+-]+|NaN)$', line)
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
                out[(m.group(1), labels)] = float(m.group(3))
        return out

    def metric(self, metric_name, **labels):
        want = tuple(sorted(labels.items()))
        return self.metrics().get((metric_name, want))


def wait(what, timeout, check, every=2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def policy(repo, placement, scheduling=""):
    """The built-in policy, with TaskManagers routed to the flinkgate profile
    for the flinkgate placement, and `scheduling` (YAML lines) appended."""
    with open(os.path.join(repo, "src/policy/builtin.yaml")) as f:
        text = f.read()
    marker = "\npods:\n  taskManager:\n"
    if marker not in text:
        raise RuntimeError("src/policy/builtin.yaml has no pods.taskManager section")
    if placement == FLINKGATE:
        text = text.replace(marker, marker + "    schedulerName: flinkgate\n")
    return text + scheduling


def set_policy(c, placement, scheduling=""):
    text = policy(c.repo, placement, scheduling)
    current = c.get("configmap", "-n", "flinkgate-system", "flinkgate-policy")
    if current.get("data", {}).get("policy.yaml", "").strip() == text.strip():
        return  # already in force: no reload to wait for
    before = c.metric("flinkgate_policy_generation") or 0
    indented = "".join(f"    {line}\n" for line in text.splitlines())
    c.kubectl("apply", "-f", "-", stdin=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flinkgate-policy\n"
        f"  namespace: flinkgate-system\ndata:\n  policy.yaml: |\n{indented}"))
    wait("flinkgate to load the policy", 30,
         lambda: (c.metric("flinkgate_policy_generation") or 0) > before)


def manifest(name, args, checkpoints=None):
    """The CpuBound job; with `checkpoints` (a host directory every node
    sees), checkpointed every 5 s into it."""
    state = ""
    if checkpoints:
        state = f"""    execution.checkpointing.interval: 5 s
    state.checkpoints.dir: file:///flink-data/checkpoints
  podTemplate:
    spec:
      containers:
        - name: flink-main-container
          volumeMounts: [{{name: flink-data, mountPath: /flink-data}}]
      volumes:
        - name: flink-data
          hostPath: {{path: {checkpoints}, type: DirectoryOrCreate}}
"""
    return f"""apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
    metrics.latency.interval: "0"
{state}  serviceAccount: flink
  jobManager:
    resource: {{memory: 1024m, cpu: {args.jm_cpu}}}
    # on a node that stays fast: its CPU limit would not fit a slow node's quota
    podTemplate:
      spec:
        nodeSelector: {{kubernetes.io/hostname: node-0}}
  taskManager:
    resource: {{memory: 1024m, cpu: {args.tm_cpu}}}
  job:
    jarURI: {JAR}
    args: ["--work", "{args.work}"]
    parallelism: {args.parallelism}
    upgradeMode: stateless
"""


def flink_get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read().decode())


def jobmanager_rest(c, name):
    for p in c.get("pods", "-n", NAMESPACE, "-l", f"app={name},component=jobmanager")["items"]:
        ip = p.get("status", {}).get("podIP")
        if ip and p["status"].get("phase") == "Running":
            return f"http://{ip}:8081"
    return None


def running_job(c, name):
    """(REST base, job id, id of the map vertex) once every subtask runs."""
    base = jobmanager_rest(c, name)
    if not base:
        return None
    try:
        jobs = flink_get(base, "/jobs/overview")["jobs"]
        job = next((j for j in jobs if j["state"] == "RUNNING"), None)
        if not job:
            return None
        detail = flink_get(base, f"/jobs/{job['jid']}")
    except (OSError, ValueError, KeyError):
        return None
    vertices = detail.get("vertices", [])
    if not vertices or any(v["status"] != "RUNNING" for v in vertices):
        return None
    burn = next(v["id"] for v in vertices if "burn" in v["name"])
    return base, job["jid"], burn


def throughput(base, jid, vertex):
    m = flink_get(base, f"/jobs/{jid}/vertices/{vertex}/subtasks/metrics"
                        "?get=numRecordsInPerSecond&agg=sum")
    return next((x["sum"] for x in m if x["id"] == "numRecordsInPerSecond"), None)


def taskmanager_nodes(c, name):
    pods = c.get("pods", "-n", NAMESPACE, "-l", f"app={name},component=taskmanager")["items"]
    return sorted(p["spec"].get("nodeName", "?") for p in pods)


def performance(c, name):
    """Each node's F_n and the job's F(x), from flinkgate's metrics."""
    metrics = c.metrics()
    nodes = {dict(labels)["node"]: v for (n, labels), v in metrics.items()
             if n == "flinkgate_node_task_performance" and "node" in dict(labels)}
    job = next((v for (n, labels), v in metrics.items()
                if n == "flinkgate_job_task_performance"
                and dict(labels).get("namespace") == NAMESPACE and dict(labels).get("name") == name),
               None)
    return nodes, job


def one_run(c, args, placement, label, t0):
    name = f"cpu-{label}"
    log(f"{label}: applying {name} ({placement})")
    c.kubectl("apply", "-f", "-", stdin=manifest(name, args))
    started = time.monotonic()
    base, jid, vertex = wait(f"{name}: every subtask running", 300, lambda: running_job(c, name))
    log(f"{label}: all subtasks running after {time.monotonic() - started:.0f}s")
    nodes = taskmanager_nodes(c, name)
    time.sleep(args.settle)
    samples = []
    end = time.monotonic() + args.window
    while time.monotonic() < end:
        try:
            rate = throughput(base, jid, vertex)
        except (OSError, ValueError):
            rate = None
        if rate is not None:
            samples.append((round(time.monotonic() - t0, 1), rate))
        time.sleep(args.sample)
    node_perf, job_perf = performance(c, name)
    c.kubectl("delete", "flinkdeployment", "-n", NAMESPACE, name, "--wait=false")
    wait(f"{name}: its pods gone", 180,
         lambda: not c.get("pods", "-n", NAMESPACE, "-l", f"app={name}")["items"])
    rates = [r for _, r in samples]
    result = {
        "label": label, "placement": placement, "taskmanager_nodes": nodes,
        "mean": statistics.fmean(rates) if rates else 0.0,
        "samples": samples, "node_performance": node_perf, "job_performance": job_perf,
    }
    counts = ", ".join(f"{n}x{nodes.count(n)}" for n in sorted(set(nodes)))
    fx = f"{job_perf:.2f}" if job_perf is not None else "n/a"
    log(f"{label}: {result['mean']:.0f} rec/s ({placement}; TaskManagers on {counts}; F(x) {fx})")
    return result


def slow_node(c, spec):
    subprocess.run([os.path.join(c.repo, "hack/cluster"), "slow-node", "--dir", c.dir, spec],
                   check=True, stdout=subprocess.DEVNULL)


def rebalance_moves(c, name):
    return c.metric("flinkgate_rebalance_moves_total", namespace=NAMESPACE, name=name) or 0


def heal_phase(c, args, t0):
    """A checkpointed job placed by flinkgate; once it runs steadily, the
    node (other than the JobManager's node-0) with most of its TaskManagers
    is made slow. With
    scheduling.rebalance on, the leader moves its TaskManagers off (one per
    cooldown); the time to recover is from the slowdown until the
    throughput is back to 90 % of what it was before, for three samples."""
    name = "cpu-heal"
    # The placement phases' slow node recovers: this phase starts from a
    # healthy cluster in which one node then becomes slow (else replacements
    # could land on a node that is still slow once its old figures expire).
    slow_node(c, f"{args.slow_node}=off")
    # Tuned for reacting within minutes (the defaults favour stable scores):
    # F_n is a decayed mean, so with the default 300 s half-life a node that
    # was fast keeps its history for 10+ minutes; a 60 s half-life needs
    # 5 s cycles to keep the minSamples weight. And F(x) is relative to the
    # job's own subtasks: slowing 2 of 6 to half speed puts them at
    # 0.5 / (4/6 + 1/6) = 0.6 of the mean, exactly the default floor, so
    # the floor is 0.7 here.
    set_policy(c, FLINKGATE, f"\nscheduling:\n  floor: {args.heal_floor:g}\n"
               f"  halfLifeSeconds: {args.heal_half_life:g}\n  collectionIntervalSeconds: 5\n"
               f"  rebalance: {{enabled: true, belowFloorSeconds: {args.heal_below_floor:g}, "
               f"cooldownSeconds: {args.heal_cooldown:g}}}\n")
    checkpoints = os.path.join(c.dir, "flink-data")
    os.makedirs(checkpoints, exist_ok=True)
    os.chmod(checkpoints, 0o777)  # the image's flink user writes there
    log(f"heal: applying {name} (flinkgate placement, rebalance on)")
    heal_args = argparse.Namespace(**{**vars(args), "parallelism": args.heal_parallelism})
    # F(x) is relative to a job's own peers: a slowdown that hits every
    # subtask of a job shows nowhere. Spread its TaskManagers (as a user
    # wanting resilience would), so the slowed node's are slower than peers.
    spread = f"""    podTemplate:
      spec:
        topologySpreadConstraints:
          - maxSkew: 1
            topologyKey: kubernetes.io/hostname
            whenUnsatisfiable: ScheduleAnyway
            labelSelector: {{matchLabels: {{app: {name}, component: taskmanager}}}}
"""
    text = manifest(name, heal_args, checkpoints).replace(
        "  taskManager:\n", "  taskManager:\n" + spread, 1)
    c.kubectl("apply", "-f", "-", stdin=text)
    base, jid, vertex = wait(f"{name}: every subtask running", 300, lambda: running_job(c, name))
    time.sleep(args.settle)
    samples, marks = [], []

    node_scores = []  # (t, {node: F_n}) through the phase, to see why it moves or not

    def sample_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                rate = throughput(base, jid, vertex)
            except (OSError, ValueError):
                rate = None  # restarting: its JobManager answers again shortly
            t = round(time.monotonic() - t0, 1)
            samples.append((t, rate or 0.0))
            scores, _ = performance(c, name)
            node_scores.append((t, scores))
            if len(node_scores) % 6 == 0:
                log("heal: F_n " + ", ".join(f"{n} {v:.2f}" for n, v in sorted(scores.items())))
            moves = rebalance_moves(c, name)
            if moves > sum(1 for _, what in marks if what.startswith("moved")):
                marks.append((t, f"moved TaskManager {int(moves)}"))
            time.sleep(args.sample)

    sample_for(args.heal_before)
    before = statistics.fmean(r for _, r in samples[-6:])
    nodes = taskmanager_nodes(c, name)
    # Not node-0: the JobManager's CPU limit there would not fit the quota.
    others = sorted(set(nodes) - {"node-0"})
    if not others:
        raise RuntimeError(f"heal: every TaskManager is on node-0 ({nodes}); nothing to slow")
    victim = max(others, key=nodes.count)
    slowed_at = round(time.monotonic() - t0, 1)
    slow_node(c, f"{victim}={args.heal_fraction}")
    marks.append((slowed_at, f"{victim} slowed to {args.heal_fraction}"))
    log(f"heal: {before:.0f} rec/s with TaskManagers on {nodes}; {victim} slowed")
    sample_for(args.heal_after)
    slow_node(c, f"{victim}=off")
    recovered = None
    after = [(t, r) for t, r in samples if t > slowed_at]
    for i in range(len(after) - 2):
        if all(r >= 0.9 * before for _, r in after[i:i + 3]) and any(
                what.startswith("moved") and t <= after[i][0] for t, what in marks):
            recovered = after[i][0] - slowed_at
            break
    dip = min((r for _, r in after), default=0.0)
    moves = int(rebalance_moves(c, name))
    c.kubectl("delete", "flinkdeployment", "-n", NAMESPACE, name, "--wait=false")
    wait(f"{name}: its pods gone", 180,
         lambda: not c.get("pods", "-n", NAMESPACE, "-l", f"app={name}")["items"])
    set_policy(c, DEFAULT)
    if recovered is None:
        log(f"heal: NOT recovered within {args.heal_after:g}s ({moves} moves, low {dip:.0f} rec/s)")
    else:
        log(f"heal: recovered to 90% of {before:.0f} rec/s {recovered:.0f}s after the slowdown "
            f"({moves} moves, low {dip:.0f} rec/s)")
    return {"label": "heal", "placement": FLINKGATE, "samples": samples, "marks": marks,
            "before": before, "slowed_node": victim, "moves": moves,
            "recovered_after_seconds": recovered, "taskmanager_nodes": nodes,
            "node_scores": node_scores}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="state dir of the running cluster")
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--out", required=True, help="directory for results.json and throughput.csv")
    ap.add_argument("--reps", type=int, default=3, help="rounds of both placements (0: only the heal phase)")
    # Nine TaskManagers of 0.15 CPU: about three per node, so the slow
    # node's quota (at least one pod's limit, see hack/README.md)
    # is shared three ways.
    ap.add_argument("--parallelism", type=int, default=9)
    ap.add_argument("--tm-cpu", default="0.15")
    ap.add_argument("--jm-cpu", default="0.5")
    ap.add_argument("--work", type=int, default=2000, help="hash rounds per record")
    # Flink's *PerSecond metrics are 60 s moving averages: sample only once a
    # whole minute of the running job is behind them.
    ap.add_argument("--settle", type=float, default=75, help="seconds before sampling")
    ap.add_argument("--window", type=float, default=60, help="seconds of sampling")
    ap.add_argument("--sample", type=float, default=5, help="seconds between samples")
    ap.add_argument("--floor", type=float, default=0.6, help="the policy's scheduling.floor")
    ap.add_argument("--heal", action=argparse.BooleanOptionalAction, default=True,
                    help="run the third phase: a node slowed mid-run, rebalance moves")
    ap.add_argument("--heal-fraction", type=float, default=0.225,
                    help="of a node's share: 0.225 x 2/3 = 0.15 CPU, one TaskManager's limit")
    ap.add_argument("--heal-before", type=float, default=60, help="seconds sampled before the slowdown")
    ap.add_argument("--heal-after", type=float, default=360, help="seconds sampled after it")
    ap.add_argument("--heal-below-floor", type=float, default=15,
                    help="scheduling.rebalance.belowFloorSeconds in that phase")
    ap.add_argument("--heal-cooldown", type=float, default=30,
                    help="scheduling.rebalance.cooldownSeconds in that phase")
    ap.add_argument("--slow-node", default="node-2",
                    help="the node the cluster was started slow on (cluster up --slow-node)")
    ap.add_argument("--heal-floor", type=float, default=0.7,
                    help="scheduling.floor in that phase")
    ap.add_argument("--heal-half-life", type=float, default=60,
                    help="scheduling.halfLifeSeconds in that phase")
    # Spread over the nodes, two TaskManagers each: the slowed node's pair
    # shares a quota no smaller than one TaskManager's limit (cgroup v1), and
    # one move per cooldown clears it in two.
    ap.add_argument("--heal-parallelism", type=int, default=6)
    args = ap.parse_args()

    c = Cluster(args.dir, args.kubectl, args.repo)
    os.makedirs(args.out, exist_ok=True)
    c.kubectl("create", "namespace", NAMESPACE, check=False)
    c.kubectl("apply", "-n", NAMESPACE, "-k", os.path.join(args.repo, "deploy/flink-rbac"))
    t0 = time.monotonic()
    set_policy(c, DEFAULT)
    warmup = one_run(c, args, DEFAULT, "warmup", t0)
    log("F_n after the warm-up: " + ", ".join(
        f"{n} {v:.2f}" for n, v in sorted(warmup["node_performance"].items())))
    runs = []
    for rep in range(args.reps):
        order = (DEFAULT, FLINKGATE) if rep % 2 == 0 else (FLINKGATE, DEFAULT)
        for placement in order:
            set_policy(c, placement)
            short = "default" if placement == DEFAULT else "flinkgate"
            runs.append(one_run(c, args, placement, f"{short}-{rep + 1}", t0))
    set_policy(c, DEFAULT)
    heal = None
    summarize(args, warmup, runs, heal, final=False)
    if args.heal:
        heal = heal_phase(c, args, t0)
    summarize(args, warmup, runs, heal, final=True)
    return 0


def summarize(args, warmup, runs, heal, final):
    """Writes results.json and throughput.csv; when final, logs the figures
    and prints the gain line."""

    by = {p: [r["mean"] for r in runs if r["placement"] == p] for p in (DEFAULT, FLINKGATE)}
    med = {p: statistics.median(v) if v else 0.0 for p, v in by.items()}
    below_floor = [
        (r["label"], n) for r in runs if r["placement"] == FLINKGATE
        for n in r["taskmanager_nodes"] if r["node_performance"].get(n, 1.0) < args.floor]
    summary = {
        "median": med, "spread": {p: [min(v), max(v)] if v else None for p, v in by.items()},
        "gain": med[FLINKGATE] / med[DEFAULT] - 1 if med[DEFAULT] else None,
        "flinkgate_taskmanagers_below_floor": below_floor,
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "warmup": warmup, "runs": runs, "heal": heal,
                   "summary": summary}, f, indent=1)
    with open(os.path.join(args.out, "throughput.csv"), "w") as f:
        f.write("run,placement,seconds,records_per_second\n")
        for r in [warmup] + runs + ([heal] if heal else []):
            for t, rate in r["samples"]:
                f.write(f"{r['label']},{r['placement']},{t},{rate:.1f}\n")
    if not final:
        return
    for p in (DEFAULT, FLINKGATE):
        if by[p]:
            lo, hi = summary["spread"][p]
            log(f"{p}: median {med[p]:.0f} rec/s, spread {lo:.0f}..{hi:.0f} over {len(by[p])} runs")
    if below_floor:
        log(f"WARNING: flinkgate placed TaskManagers on nodes below the floor: {below_floor}")
    gain = summary["gain"]
    print(f"placement gain: {gain * 100:+.0f}% (default-scheduler {med[DEFAULT]:.0f} rec/s, "
          f"flinkgate {med[FLINKGATE]:.0f} rec/s, {args.reps} runs)" if gain is not None
          else "placement gain: n/a (no default-scheduler runs)")


if __name__ == "__main__":
    sys.exit(main())
