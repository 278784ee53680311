"""Runs, as local processes, the pods of the migration whose outcome must be real.

kwok makes pods Running but runs no container. The pods whose exit status matters to the
migration (the runner's per-node check pod now; the gate Jobs' pods later) run Python from a
stock image, so this harness can run their command for real: it takes the pods kwok is told to
leave alone (`--disregard-status-with-label-selector`), gives each an address the way the node's
CNI would (the node's current CNI decides the range, see `CniSim`), runs the container's command
with the pod's environment (KUBERNETES_SERVICE_HOST/PORT, a token minted for the pod's
ServiceAccount through the TokenRequest API, ConfigMap volumes written out and their mount paths
rewritten), and reports the exit status as the pod's phase.

What is simulated, plainly: the container runtime (a process instead of a container; no image is
pulled, no resource limits, no read-only root), the pod network (addresses are assigned, no
packet flows), and the Cilium agent (`CniSim`: a restarted agent pod on a labelled node "writes
its CNI config", which moves the node to the kwok instance that hands out Cilium addresses).
"""
from __future__ import annotations

import ipaddress
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from generator.runner import kubeapi  # noqa: E402  (the harness uses the runner's own client)

CNI_LABEL = "e2e.cni-migrate.io/cni"          # which kwok instance (which CNI) serves the node
MIGRATION_LABEL = "io.cilium.migration/cilium-default"
EXEC_SELECTOR = "app.kubernetes.io/component in (check-pod)"


def admin_client(cluster) -> kubeapi.Client:
    pki = cluster.state / "pki"
    return kubeapi.Client(cluster.server, ca_file=str(pki / "ca.crt"),
                          cert_file=str(pki / "admin.crt"), key_file=str(pki / "admin.key"))


def mint_token(api: kubeapi.Client, namespace: str, sa: str, seconds: int = 3600,
               pod: dict | None = None) -> str:
    """A token for the ServiceAccount from the TokenRequest API (bound to the pod if given)."""
    spec: dict = {"audiences": [], "expirationSeconds": seconds}
    if pod:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1",
                                  "name": pod["metadata"]["name"],
                                  "uid": pod["metadata"]["uid"]}
    out = api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": spec})
    return out["status"]["token"]


def sa_folder(cluster, token: str, namespace: str) -> Path:
    """What a pod finds in /var/run/secrets/kubernetes.io/serviceaccount."""
    d = Path(tempfile.mkdtemp(prefix="sa-", dir=cluster.state))
    (d / "token").write_text(token)
    (d / "ca.crt").write_bytes((cluster.state / "pki" / "ca.crt").read_bytes())
    (d / "namespace").write_text(namespace)
    return d


def pod_env(cluster, sa_dir: Path | None, extra: dict | None = None) -> dict:
    """The pod's environment. Scripts that call kubectl (the kubectl image's Jobs) find the
    cluster's own kubectl first on PATH and, in KUBECONFIG, the pod's token: what kubectl's
    in-cluster configuration reads from the mounted service-account folder."""
    from .cluster import bin_path, kubeconfig
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PATH"] = f"{bin_path('kubectl').parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update({"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(cluster.api_port),
                "PYTHONDONTWRITEBYTECODE": "1"})
    if sa_dir:
        env["CNI_MIGRATE_SA_DIR"] = str(sa_dir)
        kc = sa_dir / "kubeconfig"
        kc.write_text(kubeconfig(cluster.server, sa_dir / "ca.crt",
                                 token=(sa_dir / "token").read_text(),
                                 namespace=(sa_dir / "namespace").read_text()))
        env["KUBECONFIG"] = str(kc)
        env["HOME"] = str(sa_dir)          # kubectl's discovery cache, per identity
    env.update(extra or {})
    return env


class IPs:
    """Addresses from one range, one at a time (the harness is the IPAM of the pods it runs)."""

    def __init__(self, cidr: str):
        self.net = ipaddress.ip_network(cidr)
        self._hosts = itertools.islice(self.net.hosts(), 200, None)   # clear of kwok's first ones

    def next(self) -> str:
        return str(next(self._hosts))


class CniSim(threading.Thread):
    """The Cilium agent's one visible effect in a migration: an agent pod restarted on a node
    labelled io.cilium.migration/cilium-default=true takes the node over (its CNI config wins),
    and one restarted on a node without the label hands it back to the old CNI. The node's
    CNI_LABEL says which; each kwok instance manages the nodes of one value and hands out
    addresses of that CNI's range."""

    def __init__(self, api: kubeapi.Client, agent_selector: str = "k8s-app=cilium",
                 namespace: str = "kube-system", poll: float = 0.2):
        super().__init__(daemon=True)
        self.api = api
        self.selector = agent_selector
        self.namespace = namespace
        self.poll = poll
        self.stop = threading.Event()
        self.seen: dict[str, str] = {}        # node -> agent pod uid seen last

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except (kubeapi.ApiError, OSError):
                pass
            self.stop.wait(self.poll)

    def tick(self) -> None:
        pods = self.api.list(f"/api/v1/namespaces/{self.namespace}/pods",
                             label_selector=self.selector)
        live = {}
        for p in pods:
            node = (p.get("spec") or {}).get("nodeName")
            if node and not p["metadata"].get("deletionTimestamp"):
                live[node] = p["metadata"]["uid"]
        for node, uid in live.items():
            before = self.seen.get(node)
            self.seen[node] = uid
            if before is None or before == uid:
                continue
            # a new agent pod on this node: it reads the per-node config now
            n = self.api.get(kubeapi.node_path(node))
            want = "cilium" if n["metadata"].get("labels", {}).get(MIGRATION_LABEL) == "true" \
                else "old"
            if n["metadata"].get("labels", {}).get(CNI_LABEL) != want:
                self.api.patch(kubeapi.node_path(node),
                               {"metadata": {"labels": {CNI_LABEL: want}}})
        # an agent pod being deleted: its node switches when the new one starts (above)


class PodExec(threading.Thread):
    """Runs the pods matching EXEC_SELECTOR as processes and reports their phase."""

    def __init__(self, cluster, api: kubeapi.Client, pools: dict[str, str],
                 poll: float = 0.2):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.api = api
        self.ips = {k: IPs(v) for k, v in pools.items()}     # CNI_LABEL value -> range
        self.poll = poll
        self.stop = threading.Event()
        self.started: set[str] = set()
        self.logs: dict[str, str] = {}                     # ns/name -> output
        self.logdir = cluster.state / "pod-logs"
        self.logdir.mkdir(exist_ok=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for p in self.api.list("/api/v1/pods", label_selector=EXEC_SELECTOR):
                    uid = p["metadata"]["uid"]
                    if p["metadata"].get("deletionTimestamp"):   # as a kubelet: let it go
                        self.api.delete(kubeapi.pod_path(p["metadata"]["namespace"],
                                                         p["metadata"]["name"]), grace_seconds=0)
                        continue
                    if uid in self.started or not (p.get("spec") or {}).get("nodeName") \
                            or p["metadata"].get("deletionTimestamp"):
                        continue
                    self.started.add(uid)
                    threading.Thread(target=self.execute, args=(p,), daemon=True).start()
            except (kubeapi.ApiError, OSError):
                pass
            self.stop.wait(self.poll)

    def _status(self, p: dict, status: dict) -> None:
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        try:
            self.api.patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status})
        except kubeapi.ApiError as e:
            if e.status != 404:        # deleted while running: nothing to report
                raise

    def execute(self, p: dict) -> None:
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        spec = p["spec"]
        node = self.api.get(kubeapi.node_path(spec["nodeName"]))
        cni = node["metadata"].get("labels", {}).get(CNI_LABEL, "old")
        ip = node_ip(node) if spec.get("hostNetwork") else self.ips[cni].next()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._status(p, {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                         "hostIP": node_ip(node), "startTime": now})
        rc, out = run_spec(self.cluster, self.api, ns, spec, pod=p)
        self.logs[f"{ns}/{name}"] = out
        (self.logdir / f"{ns}_{name}.log").write_text(out)
        c = spec["containers"][0]
        phase = "Succeeded" if rc == 0 else "Failed"
        self._status(p, {"phase": phase, "containerStatuses": [{
            "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
            "restartCount": 0, "started": False,
            "state": {"terminated": {"exitCode": rc, "reason":
                                     "Completed" if rc == 0 else "Error",
                                     "startedAt": now, "finishedAt": now}}}]})


def run_spec(cluster, api: kubeapi.Client, namespace: str, spec: dict, *, pod: dict | None = None,
             extra_args: tuple[str, ...] = (), timeout: float = 600,
             sa_token: str | None = None) -> tuple[int, str]:
    """Run a pod spec's first container as a process, the way its pod would run it: the
    command and args, the env values, ConfigMap volumes at their mount paths (rewritten in the
    command), the API server as KUBERNETES_SERVICE_HOST/PORT and, unless the spec opts out, a
    token minted for its ServiceAccount. Returns (exit status, output)."""
    sa = None
    if spec.get("automountServiceAccountToken") is not False:
        token = sa_token or mint_token(api, namespace,
                                       spec.get("serviceAccountName") or "default", pod=pod)
        sa = sa_folder(cluster, token, namespace)
    c = spec["containers"][0]
    env = {e["name"]: e.get("value", "") for e in c.get("env") or [] if "value" in e}
    env["POD_NAMESPACE"] = namespace
    argv = [*(c.get("command") or []), *(c.get("args") or []), *extra_args]
    argv = mount(cluster, api, namespace, spec, c, argv)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    r = subprocess.run(argv, env=pod_env(cluster, sa, env), capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def mount(cluster, api: kubeapi.Client, namespace: str, spec: dict, c: dict,
          argv: list[str]) -> list[str]:
    """ConfigMap volumes written to a folder; their mount paths rewritten in the command."""
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        v = vols.get(m["name"]) or {}
        if "configMap" not in v:
            continue
        cm = api.get(f"/api/v1/namespaces/{namespace}/configmaps/{v['configMap']['name']}")
        d = Path(tempfile.mkdtemp(prefix="cm-", dir=cluster.state))
        for k, text in (cm.get("data") or {}).items():
            (d / k).write_text(text)
        argv = [a.replace(m["mountPath"], str(d)) for a in argv]
    return argv


def node_ip(node: dict) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a["address"]
    return "127.0.0.1"


def dump(obj) -> str:
    return json.dumps(obj, indent=1)
