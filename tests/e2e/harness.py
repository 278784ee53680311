"""Helpers of the end-to-end tier: the running cluster with its harness threads, CRDs."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from e2e import cluster as cl  # noqa: E402
from e2e import podexec  # noqa: E402


class Kube:
    """The running cluster, with the harness threads and a few helpers for tests."""

    def __init__(self, cluster: cl.Cluster):
        self.cluster = cluster
        self.cilium_crds: str | None = None        # the Cilium minor whose CRDs are installed
        self.api = podexec.admin_client(cluster)
        self.cni = podexec.CniSim(self.api)
        self.pods = podexec.PodExec(cluster, self.api, {k: v[1] for k, v in
                                                        cl.KWOK_POOLS.items()})

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def kubectl(self, *args, **kw):
        return self.cluster.kubectl(*args, **kw)

    def wait_established(self, timeout: float = 60) -> None:
        """Every CRD Established (polled: `kubectl wait` costs seconds of discovery)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            pending = [c["metadata"]["name"] for c in out["items"] if not any(
                x["type"] == "Established" and x["status"] == "True"
                for x in (c.get("status") or {}).get("conditions") or [])]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRDs not Established: {', '.join(pending)}")
            time.sleep(0.1)

    def wait_gone(self, kind_path: str, names: list[str], timeout: float = 120) -> None:
        """Until none of the named objects exists (a namespace being finalized, say)."""
        deadline = time.monotonic() + timeout
        while names:
            names = [n for n in names if self.api.get_or_none(f"{kind_path}/{n}") is not None]
            if names and time.monotonic() > deadline:
                raise RuntimeError(f"still there after {timeout:.0f}s: {', '.join(names)}")
            time.sleep(0.1)

    def apply(self, text: str, *extra: str):
        return self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", *extra,
                            stdin=text)


def install_crds(k: Kube, shared: Path) -> None:
    """Calico (from the real Calico manifest, which carries every crd.projectcalico.org CRD),
    Argo CD and Flux. Cilium's CRDs come per Cilium version (install_cilium_crds), oldest first:
    a CRD cannot drop a version objects were stored in."""
    import yaml
    calico = [d for d in yaml.safe_load_all(
        (shared / "cni-installs" / "calico__calico.yaml").read_text())
        if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    docs = [yaml.safe_dump(d) for d in calico]
    for f in sorted((shared / "gitops" / "crds").glob("*.yaml")):
        docs.append(f.read_text())
    k.apply("\n---\n".join(docs))
    k.wait_established()


CILIUM_CRDS = {"1.16": "by-version/v1.16.12", "1.17": "by-version/v1.17.6", "1.18": "v2",
               "1.19": "by-version/v1.19.4"}


def install_cilium_crds(k: Kube, shared: Path, version: str) -> None:
    minor = version.lstrip("v")[:4]
    if k.cilium_crds == minor:
        return
    base = shared / "cilium" / "crds" / CILIUM_CRDS[minor]
    files = sorted(base.rglob("*.yaml"))
    k.apply("\n---\n".join(f.read_text() for f in files))
    k.wait_established()
    k.cilium_crds = minor


# --- loading an exported cluster ------------------------------------------------------------

_KEEP_META = ("name", "namespace", "labels", "annotations")
_ORDER = ("Namespace", "Node", "ServiceAccount", "ConfigMap", "Service", "PodDisruptionBudget",
          "NetworkPolicy", "Tier", "GlobalNetworkSet", "NetworkSet", "GlobalNetworkPolicy",
          "DaemonSet", "Deployment", "StatefulSet")


def exported_objects(path: Path) -> list[dict]:
    import yaml
    out = []
    for f in sorted(path.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if isinstance(d, dict):
                out += [o for o in d.get("items", [d]) if isinstance(o, dict) and "kind" in o]
    return out


def clean(obj: dict) -> dict:
    """An exported object as one would create it: no status, uid, resourceVersion, owners."""
    meta = {k: v for k, v in obj["metadata"].items() if k in _KEEP_META}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if not k.startswith(("kubectl.kubernetes.io/", "deployment.kubernetes.io/"))}
    if ann:
        meta["annotations"] = ann
    else:
        meta.pop("annotations", None)
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    out["metadata"] = meta
    if obj["kind"] == "Service":
        out["spec"] = {k: v for k, v in obj["spec"].items()
                       if k not in ("clusterIPs", "ipFamilies", "ipFamilyPolicy")}
    return out


def load_example(k: Kube, path: Path, *, pod_cidrs: bool = True,
                 pod_security: bool = True) -> dict[str, set[tuple[str, str]]]:
    """Create an exported cluster's objects (pods excepted: the controllers make them, kwok runs
    them) and wait until every workload's pods are Running. Returns kind -> {(ns, name)}.
    pod_cidrs=False leaves spec.podCIDR off the Nodes, so that pods get their addresses from the
    kwok instance of the node's CNI (kwok prefers a node's podCIDR). pod_security=False leaves
    the namespaces' Pod Security labels off: the example's workloads break the level their
    namespace enforces, so once evicted they could not come back (which a real drain would
    show too), and tests of the runner want workloads that can move."""
    import json
    objs = [o for o in exported_objects(path) if o["kind"] in _ORDER]
    objs = [o for o in objs if not (o["kind"] == "Service" and
                                    o["metadata"]["name"] == "kubernetes")]   # the API's own
    objs.sort(key=lambda o: _ORDER.index(o["kind"]))
    docs = [clean(o) for o in objs]
    # Pod Security labels go on last: in the exported cluster they were set after these pods
    # started (admission only judges new pods), as the non-compliant workloads there show
    spaces = [d for d in docs if d["kind"] == "Namespace"]
    k.apply("\n---\n".join(json.dumps({**d, "metadata": {**d["metadata"], "labels": {
        key: v for key, v in (d["metadata"].get("labels") or {}).items()
        if not key.startswith("pod-security.kubernetes.io/")}}}) for d in spaces))
    for d in docs:
        if d["kind"] == "Node":
            if not pod_cidrs:
                d = {**d, "spec": {x: v for x, v in d["spec"].items()
                                   if x not in ("podCIDR", "podCIDRs")}}
            k.api.create("/api/v1/nodes", d)
    # the exported addresses (kwok keeps an InternalIP that is there)
    for o in objs:
        if o["kind"] == "Node":
            k.api.patch(f"/api/v1/nodes/{o['metadata']['name']}/status",
                        {"status": {"addresses": o["status"]["addresses"]}})
    k.apply("\n---\n".join(json.dumps(d) for d in docs if d["kind"] not in ("Namespace", "Node")))
    want = sum(o["status"].get("desiredNumberScheduled", 0) if o["kind"] == "DaemonSet"
               else o["spec"].get("replicas", 1)
               for o in objs if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet"))
    deadline = time.monotonic() + 90
    while True:
        pods = k.api.list("/api/v1/pods")
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        if len(running) >= want:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(running)} of {want} pods Running after 90s")
        time.sleep(0.3)
    if pod_security:
        k.apply("\n---\n".join(json.dumps(d) for d in spaces))
    found: dict[str, set] = {}
    for o in objs:
        found.setdefault(o["kind"], set()).add((o["metadata"].get("namespace", ""),
                                                o["metadata"]["name"]))
    return found


SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def unload(k: Kube, loaded: dict[str, set[tuple[str, str]]]) -> None:
    """Remove what load_example made: its namespaces (and so their pods), its objects in the
    system namespaces, cluster-scoped objects, then the Nodes once no pod is left on them (a pod
    on a deleted node waits for the pod GC's quarantine)."""
    spaces = [n for _, n in loaded.get("Namespace", ()) if n not in SYSTEM_NAMESPACES]
    others = []
    for kind, names in loaded.items():
        if kind in ("Namespace", "Node"):
            continue
        for ns, name in names:
            if not ns or ns in SYSTEM_NAMESPACES:
                others.append((kind, ns, name))
    by_kind = {"DaemonSet": "daemonsets.apps", "Deployment": "deployments.apps",
               "StatefulSet": "statefulsets.apps", "ConfigMap": "configmaps",
               "ServiceAccount": "serviceaccounts", "Service": "services",
               "PodDisruptionBudget": "poddisruptionbudgets.policy",
               "NetworkPolicy": "networkpolicies.networking.k8s.io",
               "Tier": "tiers.crd.projectcalico.org",
               "GlobalNetworkPolicy": "globalnetworkpolicies.crd.projectcalico.org",
               "GlobalNetworkSet": "globalnetworksets.crd.projectcalico.org"}
    for kind, ns, name in others:
        args = ["delete", by_kind[kind], name, "--ignore-not-found", "--wait=false"]
        k.kubectl(*args, *(["-n", ns] if ns else []))
    if spaces:
        k.kubectl("delete", "namespace", "--ignore-not-found", "--wait=false", *spaces)
        k.wait_gone("/api/v1/namespaces", spaces)
    nodes = [n for _, n in loaded.get("Node", ())]
    deadline = time.monotonic() + 60
    while any(p["spec"].get("nodeName") in nodes for p in k.api.list("/api/v1/pods")):
        if time.monotonic() > deadline:
            raise RuntimeError("pods left on the example's nodes after 60s")
        time.sleep(0.2)
    for n in nodes:
        k.api.delete(f"/api/v1/nodes/{n}")
