#!/usr/bin/env python3
"""A real Kubernetes control plane for the tests, from upstream binaries built from source.

STANDARD LIBRARY ONLY (plus the `go` and `openssl` commands). No container runtime runs on the
project's machines, so the cluster is: etcd, kube-apiserver (TLS, RBAC + Node authorization,
service-account token signing), kube-controller-manager (real controllers with their own
service accounts), kube-scheduler, and kwok for simulated Nodes whose pods kwok marks Running.

    python e2e/cluster.py build                  # build (once) into the cache; prints the times
    python e2e/cluster.py up --state DIR [--nodes N]
    python e2e/cluster.py down --state DIR

`up` writes DIR/kubeconfig (cluster-admin), DIR/pki/ (CA, service-account keys) and
DIR/pids.json, and returns once the API server is ready and every controller runs; `down` stops
what `up` started, by pid. The Python API (`Cluster`) does the same for the tests and stops
everything on exit or interrupt.

Binaries (and `helm`, for the tests that render the Cilium chart): built once into
$CNI_MIGRATE_E2E_CACHE (default ~/.cache/cni-migrate/e2e), one folder
per component and version, reused by every later run. Kubernetes and etcd carry `replace`
directives that `go install` refuses, so each is built from a small throw-away module (written
into the cache) that requires it and pins the replaced modules to their published versions.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

KUBERNETES = "v1.36.3"
STAGING = "v0.36.3"          # the k8s.io/* staging modules published with KUBERNETES
ETCD = "v3.6.17"
KWOK = "v0.8.0"
HELM = "v3.22.1"

# The staging modules k8s.io/kubernetes replaces with ./staging/src/...; the throw-away module
# points each at its published version instead.
K8S_STAGING = [
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
    "cloud-provider", "cluster-bootstrap", "code-generator", "component-base",
    "component-helpers", "controller-manager", "cri-api", "cri-client", "cri-streaming",
    "csi-translation-lib", "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms",
    "kube-aggregator", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl",
    "kubelet", "metrics", "mount-utils", "pod-security-admission", "sample-apiserver",
    "sample-cli-plugin", "sample-controller", "streaming",
]
ETCD_REPLACED = ["api/v3", "client/pkg/v3", "client/v3", "pkg/v3"]

SERVICE_CIDR = "10.96.0.0/12"       # the bundled example's (kubeadm's default)

# Two kwok instances play the two CNIs of a node mid-migration: the node label CNI_LABEL says
# which one serves a node (e2e/podexec.py's CniSim moves a node when its Cilium agent restarts
# with the migration label), and each hands out addresses from its own range to pods on nodes
# without spec.podCIDR (a node's podCIDR, when set, wins in kwok). The ranges are the bundled
# example's: Flannel's network, and the Cilium pod CIDR its plan chooses.
CNI_LABEL = "e2e.cni-migrate.io/cni"
KWOK_POOLS = {"old": ("!=", "10.244.0.0/16"), "cilium": ("=", "10.245.0.0/16")}
# kwok's stages: kwok's own "fast" node and pod stages (sigs.k8s.io/kwok kustomize/stage),
# without pod-complete: no Job pod succeeds by itself, e2e/podexec.py runs the ones that matter
KWOK_STAGES = Path(__file__).with_name("kwok-stages.yaml")
# kwok leaves these pods alone: e2e/podexec.py runs them as processes
KWOK_DISREGARD = "app.kubernetes.io/component in (check-pod)"


class BuildError(RuntimeError):
    pass


class StartError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


# --- building -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Component:
    name: str                       # the cache folder: <name>-<version>
    version: str
    binaries: tuple[str, ...]
    packages: tuple[str, ...]       # go packages to build, one per binary
    require: str                    # module@version the throw-away module requires
    replaces: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


COMPONENTS = (
    Component("kubernetes", KUBERNETES,
              ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
              tuple(f"k8s.io/kubernetes/cmd/{b}" for b in
                    ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")),
              f"k8s.io/kubernetes@{KUBERNETES}",
              tuple((f"k8s.io/{m}", STAGING) for m in K8S_STAGING)),
    Component("etcd", ETCD, ("etcd",), ("go.etcd.io/etcd/server/v3",),
              f"go.etcd.io/etcd/server/v3@{ETCD}",
              tuple((f"go.etcd.io/etcd/{m}", ETCD) for m in ETCD_REPLACED)),
    Component("kwok", KWOK, ("kwok",), ("sigs.k8s.io/kwok/cmd/kwok",), f"sigs.k8s.io/kwok@{KWOK}"),
    # renders the real Cilium chart packages (tests/e2e/test_e2e_chart.py)
    Component("helm", HELM, ("helm",), ("helm.sh/helm/v3/cmd/helm",), f"helm.sh/helm/v3@{HELM}"),
)


def cache_dir() -> Path:
    env = os.environ.get("CNI_MIGRATE_E2E_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cni-migrate" / "e2e"


def bin_path(binary: str) -> Path:
    for c in COMPONENTS:
        if binary in c.binaries:
            return cache_dir() / c.key / "bin" / binary
    raise KeyError(binary)


def _go_mod(c: Component) -> str:
    mod, version = c.require.split("@")
    lines = ["module cni-migrate.local/e2e-build", "", "go 1.26.0", "", f"require {mod} {version}"]
    if c.replaces:
        lines += ["", "replace ("] + [f"\t{m} => {m} {v}" for m, v in c.replaces] + [")"]
    return "\n".join(lines) + "\n"


def go_command() -> str | None:
    """`go` on PATH, else where the machine image installs it."""
    return shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",)
                                       if os.access(p, os.X_OK)), None)


def _run_go(args: list[str], cwd: Path, logf) -> None:
    env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="0")
    r = subprocess.run([go_command() or "go", *args], cwd=cwd, env=env, stdout=logf,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise BuildError(f"go {' '.join(args[:2])} failed (exit {r.returncode})")


def build(c: Component) -> float:
    """Build one component into the cache unless it is there; return the seconds spent (0 when
    cached). A lock keeps two test runs from building the same thing at once."""
    root = cache_dir() / c.key
    stamp = root / "built.json"
    if stamp.exists() and all((root / "bin" / b).exists() for b in c.binaries):
        return 0.0
    if go_command() is None:
        raise BuildError(f"cannot build {', '.join(c.binaries)} {c.version}: no `go` on PATH")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and all((root / "bin" / b).exists() for b in c.binaries):
            return 0.0
        src = root / "src"
        src.mkdir(exist_ok=True)
        (src / "go.mod").write_text(_go_mod(c))
        logfile = root / "build.log"
        log(f"building {', '.join(c.binaries)} {c.version} (log: {logfile}) ...")
        t0 = time.monotonic()
        try:
            with open(logfile, "w") as lf:
                for attempt in range(3):   # a first build downloads hundreds of modules
                    try:
                        _run_go(["get", *[f"{p}@{c.version}" for p in c.packages]], src, lf)
                        break
                    except BuildError:
                        if attempt == 2:
                            raise
                        log(f"go get failed, trying again ({attempt + 2}/3)")
                        time.sleep(5)
                for binary, pkg in zip(c.binaries, c.packages):   # etcd's package ends in v3
                    _run_go(["build", "-trimpath", "-ldflags=-s -w", "-o",
                             str(root / "bin" / binary), pkg], src, lf)
        except BuildError as e:
            tail = logfile.read_text(errors="replace").strip().splitlines()[-15:]
            raise BuildError(f"cannot build {', '.join(c.binaries)} {c.version} from "
                             f"{c.require}: {e}\n  " + "\n  ".join(tail)) from None
        secs = time.monotonic() - t0
        stamp.write_text(json.dumps({"version": c.version, "seconds": round(secs, 1),
                                     "binaries": list(c.binaries)}) + "\n")
        log(f"built {', '.join(c.binaries)} {c.version} in {secs:.0f}s")
        return secs


def build_all() -> dict[str, float]:
    return {c.key: build(c) for c in COMPONENTS}


# --- certificates (openssl) -----------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise StartError(f"openssl {args[0]} failed: {r.stderr.strip()}")


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, client certificates for each component
    (their identity is the certificate's CN/O, as with kubeadm) and the service-account key."""
    if shutil.which("openssl") is None:
        raise StartError("no `openssl` on PATH: it makes the cluster's certificates")
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=cni-migrate-e2e-ca", cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    sans = ("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local")
    certs = {"apiserver": ("/CN=kube-apiserver", sans),
             "admin": ("/O=system:masters/CN=e2e-admin", None),
             "controller-manager": ("/CN=system:kube-controller-manager", None),
             "scheduler": ("/CN=system:kube-scheduler", None),
             "kwok": ("/O=system:masters/CN=kwok", None)}
    for name, (subj, ext) in certs.items():
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", subj, cwd=pki)
        extra = []
        if ext:
            (pki / f"{name}.ext").write_text(ext + "\n")
            extra = ["-extfile", f"{name}.ext"]
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra, cwd=pki)


def kubeconfig(server: str, ca: Path, cert: Path | None = None, key: Path | None = None,
               token: str | None = None, namespace: str | None = None) -> str:
    """A kubeconfig as JSON (which is YAML): one cluster, one user, one context."""
    user: dict = {}
    if cert:
        user = {"client-certificate": str(cert), "client-key": str(key)}
    if token:
        user = {"token": token}
    ctx = {"cluster": "e2e", "user": "e2e"}
    if namespace:
        ctx["namespace"] = namespace
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": server,
                                                 "certificate-authority": str(ca)}}],
        "users": [{"name": "e2e", "user": user}],
        "contexts": [{"name": "e2e", "context": ctx}],
    }, indent=1) + "\n"


# --- running --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    state: Path
    nodes: int = 0
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    api_port: int = 0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def ca(self) -> Path:
        return self.state / "pki" / "ca.crt"

    # -- lifecycle --
    def up(self) -> "Cluster":
        t0 = time.monotonic()
        build_all()
        if self.state.exists():
            shutil.rmtree(self.state)
        self.state.mkdir(parents=True)
        pki = self.state / "pki"
        make_pki(pki)
        atexit.register(self.down)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):    # not the main thread
                signal.signal(sig, self._on_signal)
        etcd_port, peer_port, self.api_port = free_port(), free_port(), free_port()
        self._start("etcd", [
            str(bin_path("etcd")), "--name", "e2e", "--data-dir", str(self.state / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn"])
        self._wait_http(f"http://127.0.0.1:{etcd_port}/health", "etcd", ctx=None)
        self._start("kube-apiserver", [
            str(bin_path("kube-apiserver")), "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.api_port),
            "--tls-cert-file", str(pki / "apiserver.crt"),
            "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",
            # no node-lifecycle controller runs to lift the not-ready taint from kwok's nodes
            "--disable-admission-plugins", "TaintNodesByCondition",
            "--allow-privileged=true", "--profiling=false",
            "--kubelet-certificate-authority", str(pki / "ca.crt")])
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self._wait_http(f"{self.server}/readyz", "kube-apiserver", ctx=ctx, timeout=120)
        for name in ("admin", "controller-manager", "scheduler", "kwok"):
            path = self.state / ("kubeconfig" if name == "admin" else f"{name}.kubeconfig")
            path.write_text(kubeconfig(self.server, pki / "ca.crt", pki / f"{name}.crt",
                                       pki / f"{name}.key"))
        cm = str(self.state / "controller-manager.kubeconfig")
        self._start("kube-controller-manager", [
            str(bin_path("kube-controller-manager")), "--kubeconfig", cm,
            "--authentication-kubeconfig", cm, "--authorization-kubeconfig", cm,
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--leader-elect=false", "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"),
            "--cluster-signing-cert-file", str(pki / "ca.crt"),
            "--cluster-signing-key-file", str(pki / "ca.key"),
            # the controllers a migration touches; no node IPAM or node lifecycle (kwok owns
            # the Nodes), no cloud
            "--controllers", ",".join(f"{c}-controller" for c in (
                "serviceaccount", "serviceaccount-token", "root-ca-certificate-publisher",
                "namespace", "garbage-collector", "pod-garbage-collector", "disruption", "job",
                "daemonset", "replicaset", "deployment", "statefulset", "endpointslice",
                "ttl-after-finished", "clusterrole-aggregation")),
            "--concurrent-gc-syncs", "5"])
        sch = str(self.state / "scheduler.kubeconfig")
        self._start("kube-scheduler", [
            str(bin_path("kube-scheduler")), "--kubeconfig", sch,
            "--authentication-kubeconfig", sch, "--authorization-kubeconfig", sch,
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--leader-elect=false"])
        shutil.copy(KWOK_STAGES, self.state / "kwok.yaml")
        for cni, (op, cidr) in KWOK_POOLS.items():
            first = str(next(ipaddress.ip_network(cidr).hosts()))
            self._start(f"kwok-{cni}", [
                str(bin_path("kwok")), "--kubeconfig", str(self.state / "kwok.kubeconfig"),
                "--config", str(self.state / "kwok.yaml"), "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={CNI_LABEL}{op}cilium",
                f"--disregard-status-with-label-selector={KWOK_DISREGARD}",
                "--cidr", f"{first}/{cidr.split('/')[1]}",
                "--server-address", f"127.0.0.1:{free_port()}"])
        self._wait_default_sa()
        for i in range(self.nodes):
            self.kubectl("apply", "-f", "-", stdin=json.dumps(kwok_node(f"node-{i}")))
        if self.nodes:
            self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        self._write_pids()
        log(f"cluster up in {time.monotonic() - t0:.1f}s: {self.server} "
            f"(kubeconfig {self.kubeconfig})")
        return self

    def down(self) -> None:
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                p.terminate()
        for name, p in self.procs.items():
            try:
                p.wait(timeout=3)        # the state is thrown away: no need to wait longer
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def _on_signal(self, signum, frame):
        self.down()
        raise SystemExit(128 + signum)

    def _start(self, name: str, argv: list[str]) -> None:
        logf = open(self.state / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        log(f"started {name} (pid {self.procs[name].pid})")

    def check_running(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.state / f"{name}.log").read_text(errors="replace").splitlines()[-10:]
                raise StartError(f"{name} exited with {p.returncode}:\n  " + "\n  ".join(tail))

    def _wait_http(self, url: str, what: str, ctx, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.check_running()
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.3)
        raise StartError(f"{what} not ready after {timeout:.0f}s ({url}: {last})")

    def _wait_default_sa(self, timeout: float = 60) -> None:
        """The serviceaccount controller made `default` in kube-system: controllers run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            r = self.kubectl("get", "serviceaccount", "default", "-n", "kube-system",
                             check=False)
            if r.returncode == 0:
                return
            time.sleep(0.5)
        raise StartError("kube-controller-manager made no ServiceAccount in 60s")

    def _write_pids(self) -> None:
        (self.state / "pids.json").write_text(json.dumps(
            {n: p.pid for n, p in self.procs.items()}, indent=1) + "\n")

    # -- helpers for tests --
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([str(bin_path("kubectl")), "--kubeconfig",
                            str(kubeconfig or self.kubeconfig), *args],
                           input=stdin, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r


def kwok_node(name: str, labels: dict | None = None, **spec) -> dict:
    """A Node for kwok (every node without CNI_LABEL=cilium is the "old" instance's)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "type": "kwok", **(labels or {})}},
            "spec": spec}


def down_by_pids(state: Path) -> None:
    f = state / "pids.json"
    if not f.exists():
        return
    pids = json.loads(f.read_text())
    for name, pid in reversed(list(pids.items())):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            log(f"stopped {name} (pid {pid})")
    deadline = time.monotonic() + 10
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    f.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build every binary into the cache")
    up = sub.add_parser("up", help="start a cluster and leave it running")
    up.add_argument("--state", type=Path, required=True)
    up.add_argument("--nodes", type=int, default=3)
    down = sub.add_parser("down", help="stop the cluster started with --state")
    down.add_argument("--state", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            t0 = time.monotonic()
            times = build_all()
            for key, secs in times.items():
                print(f"{key}: {'cached' if not secs else f'built in {secs:.0f}s'}")
            print(f"cache: {cache_dir()} ({time.monotonic() - t0:.0f}s)")
        elif args.cmd == "up":
            c = Cluster(args.state, nodes=args.nodes).up()
            atexit.unregister(c.down)        # leave it running; `down` stops it
            print(c.kubeconfig)
        else:
            down_by_pids(args.state)
    except (BuildError, StartError) as e:
        print(f"e2e: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
