"""Real nodes for the local control plane: kubelets with their own containerd,
one kube-proxy and CoreDNS, all as local processes in the host's network
namespace. Imported by hack/cluster; see hack/README.md.

Every host object is named after a tag derived from the state dir, so `down`
finds what an `up` left behind even after that `up` was killed with -9:

    bridge      fg<tag>n<i>         node i's bridge, 10.<b>.<i>.1/24 = its node IP
    bridge      fg<tag>h            host services (cluster DNS at 10.<b>.254.1)
    cgroup      /fg-<tag>-n<i>      node i's cgroup root, in every v1 hierarchy
    run dir     /run/fg-<tag>/      containerd state, sockets, runc root, netns
    iptables    comment fg-<tag>    the `kubernetes` Service DNAT
    state       <dir>/nodes/, <dir>/host-state.json (sysctls to restore)

Only one cluster with real nodes can run at a time on a host: kube-proxy owns
the host's KUBE-* iptables chains. Clusters of kwok nodes only are unaffected.
"""

import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

CLUSTER_DOMAIN = "cluster.local"
NODE_PREFIX = "node-"
CGROUP_FS = "/sys/fs/cgroup"
CNI_BIN_DIR = "/usr/lib/cni"
# What a node reports as its kind, so tests and users can select real nodes.
NODE_KIND_LABEL = "flinkgate.io/node-kind"
# The sysctls a pod network on the host's namespace needs.
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    # DNAT of the `kubernetes` Service to the apiserver on 127.0.0.1.
    "net.ipv4.conf.all.route_localnet": "1",
    # Bridged pod-to-pod replies must pass kube-proxy's conntrack.
    "net.bridge.bridge-nf-call-iptables": "1",
}
DEBIAN_PACKAGES = {"containerd": "containerd", "runc": "runc",
                   os.path.join(CNI_BIN_DIR, "bridge"): "containernetworking-plugins",
                   "iptables": "iptables", "ip": "iproute2", "conntrack": "conntrack",
                   # hack/images builds the node images with it
                   "debootstrap": "debootstrap"}

NODE_READY_TIMEOUT = 90
DNS_READY_TIMEOUT = 30


class NodeError(Exception):
    """A real-node step failed; `component` names the log to show."""

    def __init__(self, msg, component=None):
        super().__init__(msg)
        self.component = component


def tag_of(state_dir):
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:6]


class Layout:
    """Names, addresses and paths of one cluster's real nodes, all derived
    from its state dir."""

    def __init__(self, state_dir, count=0):
        self.dir = os.path.abspath(state_dir)
        self.tag = tag_of(self.dir)
        # Second octet of the pod network: 10.200.0.0/16 .. 10.239.0.0/16,
        # away from the Service range (10.0/16) and kwok's fake pod IPs (10.244/16).
        self.octet = 200 + int(self.tag, 16) % 40
        self.count = count
        self.run_dir = f"/run/fg-{self.tag}"
        self.comment = f"fg-{self.tag}"
        self.host_bridge = f"fg{self.tag}h"
        self.dns_ip = f"10.{self.octet}.254.1"
        self.cluster_cidr = f"10.{self.octet}.0.0/16"

    def names(self):
        return [f"{NODE_PREFIX}{i}" for i in range(self.count)]

    def started_count(self):
        """Real nodes a running cluster in this dir has (their state dirs)."""
        try:
            return sum(1 for e in os.listdir(os.path.join(self.dir, "nodes"))
                       if e.startswith(NODE_PREFIX) and e[len(NODE_PREFIX):].isdigit())
        except OSError:
            return 0

    def index(self, name):
        if not name.startswith(NODE_PREFIX) or not name[len(NODE_PREFIX):].isdigit():
            raise NodeError(f"{name!r} is not a real node name (expected {NODE_PREFIX}N)")
        return int(name[len(NODE_PREFIX):])

    def bridge(self, i):
        return f"fg{self.tag}n{i}"

    def node_ip(self, i):
        return f"10.{self.octet}.{i}.1"

    def pod_cidr(self, i):
        return f"10.{self.octet}.{i}.0/24"

    def cgroup_root(self, i):
        return f"/fg-{self.tag}-n{i}"

    def node_dir(self, i):
        return os.path.join(self.dir, "nodes", f"{NODE_PREFIX}{i}")

    def node_run(self, i):
        return os.path.join(self.run_dir, f"n{i}")

    def socket(self, i):
        return os.path.join(self.node_run(i), "containerd.sock")


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def sh(argv, check=True, timeout=60, input=None):
    try:
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NodeError(f"{' '.join(argv)}: {e}")
    if check and r.returncode != 0:
        raise NodeError(f"{' '.join(argv)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()}")
    return r


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def sysctl_path(key):
    return "/proc/sys/" + key.replace(".", "/")


def preflight():
    """Why this machine cannot run real nodes, or None."""
    if os.geteuid() != 0:
        return "real nodes need root (kubelet, containerd, bridges, iptables)"
    if not os.path.isdir(os.path.join(CGROUP_FS, "cpu")) or not os.access(os.path.join(CGROUP_FS, "cpu"), os.W_OK):
        return f"real nodes need writable cgroup v1 hierarchies under {CGROUP_FS} (cpu not found)"
    if not os.path.exists(sysctl_path("net.bridge.bridge-nf-call-iptables")):
        return "the br_netfilter module is not loaded (net.bridge.bridge-nf-call-iptables is missing)"
    return None


def missing_packages():
    missing = set()
    for tool, pkg in DEBIAN_PACKAGES.items():
        if not (os.path.isabs(tool) and os.path.exists(tool)) and shutil.which(tool) is None:
            missing.add(pkg)
    return sorted(missing)


def ensure_packages(log):
    """Installs the Debian packages real nodes need, when missing."""
    missing = missing_packages()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise NodeError(f"missing packages {', '.join(missing)} and no apt-get to install them")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            raise NodeError(f"{' '.join(argv)} failed: {r.stderr.strip()[-2000:]}")
    still = missing_packages()
    if still:
        raise NodeError(f"packages still missing after apt-get install: {', '.join(still)}")


def cgroup_hierarchies(include_unified=False):
    """Mounted cgroup v1 hierarchies, where nodes get their cgroup root. With
    `include_unified`, also the v2 `unified` mount of a hybrid host: it holds
    no controllers, but runc puts every container there as well, so teardown
    must empty and remove it too."""
    types = ("cgroup", "cgroup2") if include_unified else ("cgroup",)
    out = []
    for line in read("/proc/self/mountinfo").splitlines():
        parts = line.split()
        sep = parts.index("-")
        if parts[sep + 1] in types:
            out.append(parts[4])
    return sorted(set(out))


# --------------------------------------------------------------------------
# host network: sysctls, bridges, the `kubernetes` Service
# --------------------------------------------------------------------------

def set_sysctls(lay):
    state_file = os.path.join(lay.dir, "host-state.json")
    saved = json.loads(read(state_file, "{}") or "{}")
    for key, value in SYSCTLS.items():
        path = sysctl_path(key)
        saved.setdefault(key, read(path).strip())
        try:
            write_sysctl(path, value)
        except OSError as e:
            raise NodeError(f"cannot set {key}={value}: {e}")
    write(state_file, json.dumps({"sysctls": saved.get("sysctls", saved)}, indent=1))


def write_sysctl(path, value):
    with open(path, "w") as f:
        f.write(value)


def restore_sysctls(lay, log):
    state = json.loads(read(os.path.join(lay.dir, "host-state.json"), "{}") or "{}")
    for key, value in state.get("sysctls", {}).items():
        if value:
            try:
                write_sysctl(sysctl_path(key), value)
            except OSError as e:
                log(f"WARNING: cannot restore {key}={value}: {e}")


def add_bridge(name, cidr_addr):
    if sh(["ip", "link", "show", name], check=False).returncode != 0:
        sh(["ip", "link", "add", name, "type", "bridge"])
    sh(["ip", "addr", "replace", cidr_addr, "dev", name])
    sh(["ip", "link", "set", name, "up"])


def our_bridges(lay):
    out = sh(["ip", "-o", "link", "show", "type", "bridge"], check=False).stdout
    return [m.group(1) for m in re.finditer(r"^\d+: (fg%s[a-z0-9]+)[:@]" % lay.tag, out, re.M)]


def iptables_rules(lay, api_port):
    """The DNAT that makes the `kubernetes` Service reach the apiserver on
    127.0.0.1: it has no endpoints (--endpoint-reconciler-type=none)."""
    dnat = ["-d", "10.0.0.1/32", "-p", "tcp", "--dport", "443",
            "-m", "comment", "--comment", lay.comment,
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{api_port}"]
    return [("nat", "PREROUTING", ["-s", lay.cluster_cidr] + dnat),
            ("nat", "OUTPUT", dnat),
            # Replies from 127.0.0.1 to a pod must leave with a routable source.
            ("nat", "POSTROUTING", ["-s", "127.0.0.1/32", "-d", lay.cluster_cidr,
                                    "-m", "comment", "--comment", lay.comment, "-j", "MASQUERADE"])]


def add_iptables(lay, api_port):
    for table, chain, rule in iptables_rules(lay, api_port):
        if sh(["iptables", "-t", table, "-C", chain, *rule], check=False).returncode != 0:
            sh(["iptables", "-t", table, "-I", chain, "1", *rule])


def remove_kube_chains(log):
    """Deletes every KUBE-* chain and the rules that jump to one, in IPv4 and
    IPv6 (the kubelet and kube-proxy make both)."""
    for save, tool in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        if shutil.which(save) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            out = sh([save, "-t", table], check=False).stdout
            chains = re.findall(r"^:(KUBE-\S+)", out, re.M)
            if not chains:
                continue
            for line in out.splitlines():
                m = re.match(r"-A (\S+) (.*)", line)
                if m and not m.group(1).startswith("KUBE-") and re.search(r"-j KUBE-", line):
                    sh([tool, "-t", table, "-D", m.group(1), *shlex.split(m.group(2))], check=False)
            for chain in chains:
                sh([tool, "-t", table, "-F", chain], check=False)
            for chain in chains:
                r = sh([tool, "-t", table, "-X", chain], check=False)
                if r.returncode != 0:
                    log(f"WARNING: cannot delete {tool} chain {table}/{chain}: {r.stderr.strip()}")


def remove_iptables(lay, log):
    """Deletes every rule carrying this cluster's comment, in any chain."""
    for table in ("nat", "filter"):
        out = sh(["iptables-save", "-t", table], check=False).stdout
        for line in out.splitlines():
            if line.startswith("-A ") and f'--comment {lay.comment}' in line.replace('"', ''):
                r = sh(["iptables", "-t", table, "-D", *shlex.split(line)[1:]], check=False)
                if r.returncode != 0:
                    log(f"WARNING: cannot delete iptables rule {line}: {r.stderr.strip()}")


# --------------------------------------------------------------------------
# PKI for kubelets, kube-proxy and CoreDNS (the cluster CA signs them)
# --------------------------------------------------------------------------

def sign(pki, name, subj, ext, san=None, log_to=None):
    p = lambda f: os.path.join(pki, f)  # noqa: E731
    extfile = p(f"{name}.ext")
    lines = ["basicConstraints = critical,CA:FALSE", "keyUsage = critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage = {ext}"]
    if san:
        lines.append(f"subjectAltName = {san}")
    write(extfile, "\n".join(lines) + "\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh(["openssl", "req", "-new", *ec, "-keyout", p(f"{name}.key"), "-out", p(f"{name}.csr"), "-subj", subj])
    sh(["openssl", "x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-set_serial", str(int.from_bytes(os.urandom(7), "big")), "-days", "3650", "-sha256",
        "-extfile", extfile, "-out", p(f"{name}.crt")])
    os.remove(p(f"{name}.csr"))
    os.remove(extfile)


# --------------------------------------------------------------------------
# per-node configuration files
# --------------------------------------------------------------------------

def containerd_config(lay, i, sandbox_image):
    root = os.path.join(lay.node_dir(i), "containerd")
    run = lay.node_run(i)
    return f"""version = 2
root = "{root}/root"
state = "{run}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{lay.socket(i)}"

[ttrpc]
  address = "{run}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # Root here lacks CAP_SYS_RESOURCE: a sandbox's oom_score_adj of -998 fails.
  restrict_oom_score_adj = true
  # Pod network namespaces under this node's run dir, where `down` finds them.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{run}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{lay.node_dir(i)}/cni"
    max_conf_num = 1
"""


def cni_config(lay, i):
    return json.dumps({
        "cniVersion": "0.4.0",
        "name": lay.bridge(i),
        "plugins": [
            {"type": "bridge", "bridge": lay.bridge(i), "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": os.path.join(lay.node_run(i), "ipam"),
                      "ranges": [[{"subnet": lay.pod_cidr(i), "gateway": lay.node_ip(i)}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=1)


def kubelet_config(lay, i, pki):
    ip = lay.node_ip(i)
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": ip,
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False},
                           "webhook": {"enabled": True},
                           "x509": {"clientCAFile": os.path.join(pki, "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": os.path.join(pki, f"kubelet-{i}-serving.crt"),
        "tlsPrivateKeyFile": os.path.join(pki, f"kubelet-{i}-serving.key"),
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": lay.cgroup_root(i),
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [lay.dns_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": os.path.join(lay.dir, "nodes", "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{lay.socket(i)}",
        "imageServiceEndpoint": f"unix://{lay.socket(i)}",
        "podCIDR": lay.pod_cidr(i),
        "maxPods": 110,
        "serializeImagePulls": False,
        # The host's disk and memory are shared by every node: never evict for them.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "30s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "volumeStatsAggPeriod": "0s",
        "localStorageCapacityIsolation": True,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "shutdownGracePeriod": "0s",
        "staticPodPath": "",
    }, indent=1)


def corefile(lay, kubeconfig, health_port, ready_port):
    return f""".:53 {{
    bind {lay.dns_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} flinkgate-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""


# --------------------------------------------------------------------------
# cgroups: roots, CPU quota (slow nodes), teardown
# --------------------------------------------------------------------------

def make_cgroup_roots(lay, i):
    for h in cgroup_hierarchies():
        os.makedirs(h + lay.cgroup_root(i), exist_ok=True)
    # cpuset children start empty; give the node every CPU and memory node.
    cs = os.path.join(CGROUP_FS, "cpuset")
    if os.path.isdir(cs):
        for f in ("cpuset.cpus", "cpuset.mems"):
            write_sysctl(os.path.join(cs + lay.cgroup_root(i), f), read(os.path.join(cs, f)).strip())


def cpu_count():
    return os.cpu_count() or 1


def node_share(node_count):
    """The CPUs one real node stands for: the host's, shared by its nodes."""
    return cpu_count() / max(1, node_count)


def set_cpu_fraction(lay, i, fraction, node_count):
    """Makes node i slow: a CFS quota on its cgroup root of fraction x its
    share of the host's CPUs (node_share), shared by all its pods, like a
    noisy neighbour. Capacity and allocatable stay as they are, so the
    scheduler cannot see it. fraction None or >= 1 removes the limit.
    On cgroup v1 the kernel keeps every pod's quota (its CPU limit) within
    the node's: a pod whose limit is larger cannot start there (StartError),
    and the quota cannot be set below a running pod's limit."""
    d = os.path.join(CGROUP_FS, "cpu") + lay.cgroup_root(i)
    if not os.path.isdir(d):
        raise NodeError(f"node {NODE_PREFIX}{i} has no cgroup {d}; is it running?")
    period = 100000
    quota = (-1 if fraction is None or fraction >= 1
             else max(1000, int(fraction * node_share(node_count) * period)))
    try:
        write_sysctl(os.path.join(d, "cpu.cfs_period_us"), str(period))
        write_sysctl(os.path.join(d, "cpu.cfs_quota_us"), str(quota))
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise NodeError(
                f"the kernel refused cpu.cfs_quota_us {quota} for {NODE_PREFIX}{i}: a pod on it has a "
                f"CPU limit above {quota / period:.2f} CPU (cgroup v1 keeps a child's quota within "
                f"its parent's); use a larger fraction")
        raise
    return quota


def parse_slow_nodes(specs, count):
    """`NAME=FRACTION` strings into {index: fraction}, with clear errors."""
    out = {}
    lay = Layout("/", count)
    for spec in specs or []:
        name, sep, value = spec.partition("=")
        if not sep:
            raise NodeError(f"--slow-node {spec!r}: expected NAME=FRACTION, e.g. {NODE_PREFIX}1=0.3")
        i = lay.index(name)
        if count and i >= count:
            raise NodeError(f"--slow-node {spec!r}: only {NODE_PREFIX}0..{count - 1} exist")
        try:
            f = float(value)
        except ValueError:
            raise NodeError(f"--slow-node {spec!r}: {value!r} is not a number")
        if not 0 < f <= 1:
            raise NodeError(f"--slow-node {spec!r}: the fraction must be in (0, 1]")
        out[i] = f
    return out


def cgroup_pids(path):
    pids = []
    for dirpath, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            pids += [int(p) for p in read(os.path.join(dirpath, "cgroup.procs")).split()]
    return pids


def kill_cgroup_tree(lay, log):
    """SIGKILLs every process left in the nodes' cgroups (containers, pause
    processes), then removes the cgroups bottom-up in every hierarchy."""
    roots = []
    for h in cgroup_hierarchies(include_unified=True):
        try:
            roots += [os.path.join(h, e) for e in os.listdir(h) if e.startswith(f"fg-{lay.tag}-n")]
        except OSError:
            pass
    for _ in range(50):
        pids = set()
        for r in roots:
            pids.update(cgroup_pids(r))
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    for r in roots:
        for dirpath, _dirs, _files in sorted(os.walk(r), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError as e:
                log(f"WARNING: cannot remove cgroup {dirpath}: {e}")


# --------------------------------------------------------------------------
# teardown: everything derived from the tag
# --------------------------------------------------------------------------

def processes_matching(needles):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        cmd = read(f"/proc/{entry}/cmdline").replace("\0", " ")
        if any(n in cmd for n in needles):
            out.append(int(entry))
    return out


def unmount_under(prefixes, log):
    """Unmounts every mount below the prefixes, deepest first (lazily if busy)."""
    for _ in range(3):
        points = []
        for line in read("/proc/self/mountinfo").splitlines():
            mp = line.split()[4].replace("\\040", " ")
            if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes):
                points.append(mp)
        if not points:
            return
        for mp in sorted(set(points), key=lambda m: -m.count("/")):
            r = subprocess.run(["umount", mp], capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True, text=True)
    left = [line.split()[4] for line in read("/proc/self/mountinfo").splitlines()
            if any(line.split()[4].startswith(p) for p in prefixes)]
    if left:
        log(f"WARNING: mounts left: {', '.join(left[:5])}")


def teardown(state_dir, log, stop_recorded=None):
    """Removes every host object of the real nodes of the cluster in
    state_dir. Safe to run when nothing exists, and after a `kill -9`'d up.
    `stop_recorded` stops the recorded processes (kubelets, containerd,
    kube-proxy, coredns) first, when given."""
    lay = Layout(state_dir)
    has_anything = (os.path.isdir(lay.run_dir) or os.path.isdir(os.path.join(lay.dir, "nodes"))
                    or our_bridges(lay) or any(os.path.isdir(h + f"/fg-{lay.tag}-n0")
                                              for h in cgroup_hierarchies(include_unified=True)))
    if not has_anything:
        return
    log("real nodes: tearing down")
    if stop_recorded:
        stop_recorded()
    # containerd shims run detached from containerd's session.
    for pid in processes_matching([lay.run_dir + "/", os.path.join(lay.dir, "nodes") + "/"]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kill_cgroup_tree(lay, log)
    if os.path.isdir(lay.dir):
        # kube-proxy's chains are the host's; clean them when no other real
        # cluster is up (checked through other run dirs).
        others = [d for d in os.listdir("/run") if d.startswith("fg-") and d != f"fg-{lay.tag}"]
        proxy = os.path.join(lay.dir, "nodes", "kube-proxy")
        if not others:
            if os.access(proxy, os.X_OK):
                subprocess.run([proxy, "--cleanup"], capture_output=True, timeout=60)
            # What --cleanup leaves: the kubelet's and kube-proxy's canary
            # and firewall chains.
            remove_kube_chains(log)
    remove_iptables(lay, log)
    unmount_under([lay.run_dir, os.path.join(lay.dir, "nodes")], log)
    for b in our_bridges(lay):
        sh(["ip", "link", "delete", b], check=False)
    restore_sysctls(lay, log)
    for d in (lay.run_dir, os.path.join(lay.dir, "nodes")):
        shutil.rmtree(d, ignore_errors=True)
    for f in ("host-state.json",):
        try:
            os.remove(os.path.join(lay.dir, f))
        except OSError:
            pass
    # CNI result cache entries are named <network>-<container>-<ifname>.
    cache = "/var/lib/cni/results"
    if os.path.isdir(cache):
        for e in os.listdir(cache):
            if e.startswith(f"fg{lay.tag}n"):
                try:
                    os.remove(os.path.join(cache, e))
                except OSError:
                    pass
    # Container log links are a fixed host path in the kubelet.
    links = "/var/log/containers"
    if os.path.isdir(links):
        for e in os.listdir(links):
            p = os.path.join(links, e)
            if os.path.islink(p) and os.readlink(p).startswith(lay.dir + "/"):
                os.remove(p)
    remove_stale_shim_sockets()


def remove_stale_shim_sockets():
    """containerd 1.6 puts shim sockets in a fixed /run/containerd/s; a
    SIGKILLed shim leaves its socket file. Remove those nobody listens on."""
    d = "/run/containerd/s"
    if not os.path.isdir(d):
        return
    listening = set()
    for line in read("/proc/net/unix").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8:
            listening.add(parts[7].lstrip("@"))
    for e in os.listdir(d):
        p = os.path.join(d, e)
        if p not in listening and "unix://" + p not in listening:
            try:
                os.remove(p)
            except OSError:
                pass


# --------------------------------------------------------------------------
# up
# --------------------------------------------------------------------------

def dns_query_a(server, name, timeout=2.0):
    """One DNS A query over UDP; returns the addresses (no dig on the host)."""
    import socket
    import struct
    qid = int.from_bytes(os.urandom(2), "big")
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (server, 53))
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    an = struct.unpack(">H", data[6:8])[0]
    pos = len(q)
    out = []
    for _ in range(an):
        if data[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            out.append(".".join(str(b) for b in data[pos:pos + 4]))
        pos += rdlen
    return out


def other_real_cluster(lay):
    """The run dir of another live cluster with real nodes, or None."""
    for d in os.listdir("/run"):
        if d.startswith("fg-") and d != f"fg-{lay.tag}" and processes_matching([f"/run/{d}/"]):
            return f"/run/{d}"
    return None


def rss_mib(pid):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RealNodes:
    """Starts real nodes on a running control plane. `c` is the cluster
    (procs, bins, pki, path(), api_json(), api_get(), write_kubeconfig())."""

    def __init__(self, c, count, slow, images_cmd, log, wait_for):
        self.c = c
        self.lay = Layout(c.dir, count)
        self.slow = slow
        self.images_cmd = images_cmd
        self.log = log
        self.wait_for = wait_for

    def start(self):
        lay, c, log = self.lay, self.c, self.log
        t0 = time.monotonic()
        why = preflight()
        if why:
            raise NodeError(why)
        other = other_real_cluster(lay)
        if other:
            raise NodeError(f"another cluster with real nodes is running ({other}); kube-proxy owns "
                            f"the host's KUBE-* chains, so only one can run at a time: `down` it first")
        ensure_packages(log)
        images = self.build_images()
        nodes = os.path.join(lay.dir, "nodes")
        os.makedirs(nodes, exist_ok=True)
        os.makedirs(lay.run_dir, exist_ok=True)
        # kube-proxy --cleanup at `down`, even when the build cache moves.
        os.symlink(c.bins["kube-proxy"], os.path.join(nodes, "kube-proxy"))
        write(os.path.join(nodes, "resolv.conf"), "# pods get only the cluster DNS\n")

        log(f"real nodes: certificates for {', '.join(lay.names())}, kube-proxy, coredns")
        self.make_certs()
        self.apply_rbac()

        log(f"real nodes: host network ({lay.cluster_cidr}, bridges fg{lay.tag}*, DNS {lay.dns_ip})")
        set_sysctls(lay)
        add_bridge(lay.host_bridge, f"{lay.dns_ip}/24")
        for i in range(lay.count):
            add_bridge(lay.bridge(i), f"{lay.node_ip(i)}/24")
        add_iptables(lay, c.ports["kube-apiserver"])

        self.start_coredns()
        for i in range(lay.count):
            self.start_containerd(i)
        for i in range(lay.count):
            self.wait_for(f"containerd of {NODE_PREFIX}{i}", f"containerd-{NODE_PREFIX}{i}", 30,
                          lambda i=i: os.path.exists(lay.socket(i)), c.procs, [f"containerd-{NODE_PREFIX}{i}"])
        t_img = time.monotonic()
        for i in range(lay.count):
            self.import_images(i)
        log(f"real nodes: images imported into {lay.count} containerd(s) in {time.monotonic() - t_img:.1f}s")
        for i in range(lay.count):
            make_cgroup_roots(lay, i)
            if i in self.slow:
                quota = set_cpu_fraction(lay, i, self.slow[i], lay.count)
                log(f"real nodes: {NODE_PREFIX}{i} slowed to {self.slow[i]} of a node's "
                    f"{node_share(lay.count):.2f} CPUs (cpu.cfs_quota_us {quota})")
            self.start_kubelet(i)
        self.start_kube_proxy()
        self.wait_for(f"real nodes {', '.join(lay.names())} Ready", f"kubelet-{NODE_PREFIX}0",
                      NODE_READY_TIMEOUT, self.nodes_ready, c.procs,
                      [f"kubelet-{n}" for n in lay.names()] + [f"containerd-{n}" for n in lay.names()])
        want = "10.0.0.1"
        self.wait_for("cluster DNS answering kubernetes.default", "coredns", DNS_READY_TIMEOUT,
                      lambda: dns_query_a(lay.dns_ip, f"kubernetes.default.svc.{CLUSTER_DOMAIN}") == [want],
                      c.procs, ["coredns"])
        mem = self.memory()
        log(f"real nodes: {lay.count} Ready in {time.monotonic() - t0:.1f}s; "
            f"memory per node {mem['per_node']:.0f} MiB (kubelet + containerd), "
            f"kube-proxy {mem['kube-proxy']:.0f} MiB, coredns {mem['coredns']:.0f} MiB")

    def build_images(self):
        self.log("real nodes: building the node images (hack/images build; cached)")
        r = subprocess.run([self.images_cmd, "build"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           text=True, timeout=3600)
        if r.returncode != 0:
            raise NodeError(f"hack/images build failed (exit {r.returncode}); see its output above")
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def import_images(self, i):
        r = subprocess.run([self.images_cmd, "import", "--address", self.lay.socket(i)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise NodeError(f"image import into {NODE_PREFIX}{i} failed: {r.stderr.strip()[-2000:]}",
                            f"containerd-{NODE_PREFIX}{i}")

    def make_certs(self):
        pki = self.c.pki
        for i in range(self.lay.count):
            name = f"{NODE_PREFIX}{i}"
            sign(pki, f"kubelet-{i}", f"/O=system:nodes/CN=system:node:{name}", "clientAuth")
            sign(pki, f"kubelet-{i}-serving", f"/CN={name}", "serverAuth",
                 san=f"IP:{self.lay.node_ip(i)},DNS:{name}")
            self.c.write_kubeconfig(os.path.join(self.lay.node_dir(i), "kubeconfig"), f"kubelet-{i}")
        sign(pki, "kube-proxy", "/CN=system:kube-proxy", "clientAuth")
        self.c.write_kubeconfig(os.path.join(self.lay.dir, "nodes", "kube-proxy.kubeconfig"), "kube-proxy")
        sign(pki, "coredns", "/CN=flinkgate:coredns", "clientAuth")
        self.c.write_kubeconfig(os.path.join(self.lay.dir, "nodes", "coredns.kubeconfig"), "coredns")

    def apply_rbac(self):
        api = self.c.api_json
        rb = "/apis/rbac.authorization.k8s.io/v1"
        # The apiserver's kubelet client (logs, exec, port-forward) may use the kubelet API.
        api("POST", f"{rb}/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "flinkgate-local:apiserver-kubelet-client"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:kubelet-api-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "kube-apiserver-kubelet-client"}]}, ok=(200, 201, 409))
        api("POST", f"{rb}/clusterroles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "flinkgate-local:coredns"},
            "rules": [{"apiGroups": [""], "resources": ["services", "pods", "namespaces"],
                       "verbs": ["list", "watch"]},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["list", "watch"]}]}, ok=(200, 201, 409))
        api("POST", f"{rb}/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "flinkgate-local:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "flinkgate-local:coredns"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "flinkgate:coredns"}]}, ok=(200, 201, 409))

    def start_coredns(self):
        from_cluster = self.c
        health, ready = free_ports(2)
        conf = os.path.join(self.lay.dir, "nodes", "Corefile")
        write(conf, corefile(self.lay, os.path.join(self.lay.dir, "nodes", "coredns.kubeconfig"),
                             health, ready))
        self.log(f"real nodes: starting coredns on {self.lay.dns_ip}:53")
        from_cluster.procs.start("coredns", [from_cluster.bins["coredns"], "-conf", conf])
        self.wait_for("coredns /ready", "coredns", DNS_READY_TIMEOUT,
                      lambda: http_ok(f"http://127.0.0.1:{ready}/ready"), from_cluster.procs, ["coredns"])

    def start_containerd(self, i):
        lay = self.lay
        os.makedirs(lay.node_run(i), exist_ok=True)
        write(os.path.join(lay.node_dir(i), "cni", "10-bridge.conflist"), cni_config(lay, i))
        cfg = os.path.join(lay.node_dir(i), "containerd.toml")
        write(cfg, containerd_config(lay, i, self.sandbox_image()))
        self.c.procs.start(f"containerd-{NODE_PREFIX}{i}", ["containerd", "--config", cfg])

    def sandbox_image(self):
        return os.environ.get("FLINKGATE_SANDBOX_IMAGE", SANDBOX_IMAGE)

    def start_kubelet(self, i):
        lay, name = self.lay, f"{NODE_PREFIX}{i}"
        d = lay.node_dir(i)
        cfg = os.path.join(d, "kubelet.json")
        conf = json.loads(kubelet_config(lay, i, self.c.pki))
        conf["podLogsDir"] = os.path.join(d, "pod-logs")
        write(cfg, json.dumps(conf, indent=1))
        self.log(f"real nodes: starting kubelet {name} ({lay.node_ip(i)}, cgroup {lay.cgroup_root(i)})")
        self.c.procs.start(f"kubelet-{name}", [
            self.c.bins["kubelet"], f"--config={cfg}", f"--kubeconfig={os.path.join(d, 'kubeconfig')}",
            f"--root-dir={os.path.join(d, 'kubelet')}", f"--cert-dir={os.path.join(d, 'pki')}",
            f"--hostname-override={name}", f"--node-ip={lay.node_ip(i)}",
            f"--node-labels={NODE_KIND_LABEL}=real", "--v=1",
        ])

    def start_kube_proxy(self):
        lay = self.lay
        health, metrics = free_ports(2)
        cfg = os.path.join(lay.dir, "nodes", "kube-proxy.json")
        write(cfg, json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": os.path.join(lay.dir, "nodes", "kube-proxy.kubeconfig")},
            "hostnameOverride": f"{NODE_PREFIX}0",
            "bindAddress": lay.node_ip(0),
            "clusterCIDR": lay.cluster_cidr,
            "healthzBindAddress": f"127.0.0.1:{health}",
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            # Leave the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0},
        }, indent=1))
        self.log("real nodes: starting kube-proxy (iptables)")
        self.c.procs.start("kube-proxy", [os.path.join(lay.dir, "nodes", "kube-proxy"), f"--config={cfg}"])
        self.wait_for("kube-proxy /healthz", "kube-proxy", 60,
                      lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), self.c.procs, ["kube-proxy"])

    def nodes_ready(self):
        _, body = self.c.api_get(f"/api/v1/nodes?labelSelector={NODE_KIND_LABEL}%3Dreal")
        ready = set()
        for n in json.loads(body)["items"]:
            conds = {x["type"]: x["status"] for x in n.get("status", {}).get("conditions", [])}
            if conds.get("Ready") == "True":
                ready.add(n["metadata"]["name"])
        return ready >= set(self.lay.names())

    def memory(self):
        rec = self.c.procs.recorded()
        per = []
        for n in self.lay.names():
            per.append(sum(rss_mib(rec[k][0]) for k in (f"kubelet-{n}", f"containerd-{n}") if k in rec))
        return {"per_node": sum(per) / max(1, len(per)),
                "kube-proxy": rss_mib(rec["kube-proxy"][0]) if "kube-proxy" in rec else 0,
                "coredns": rss_mib(rec["coredns"][0]) if "coredns" in rec else 0}


# The pod sandbox image that hack/images builds and imports.
SANDBOX_IMAGE = "flinkgate.local/pause:1"


def http_ok(url):
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=3) as r:
        return r.status == 200


def free_ports(n):
    import socket
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports
