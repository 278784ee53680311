"""The live reader against a real API server, with the least privilege it documents.

The bundled example is loaded into the cluster (Nodes through kwok, namespaces, the Canal
DaemonSet and the workloads, whose pods the real controllers create and kwok runs, Calico CRDs
and objects, PodDisruptionBudgets). `cni-migrate snapshot` then runs under a ServiceAccount
bound only to the ClusterRole that `snapshot --print-clusterrole` prints; it must read back what
was loaded, and `generate --kubeconfig` must give the same commit SHAs as `generate --from` the
snapshot. The same token must not read a Secret.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e.cluster import kubeconfig
from e2e.podexec import mint_token
from generator.live.resources import CALICO_KINDS, CORE, keep_configmap
from generator.runner.kubeapi import ApiError, Client
from harness import ROOT, load_example, unload

EXAMPLE = ROOT / "examples" / "kind-canal"
CLI = [sys.executable, "-m", "generator"]
READER_NS, READER_SA = "default", "cni-migrate-reader"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT)
    assert not check or r.returncode == 0, f"cni-migrate {' '.join(args)}: {r.stderr}"
    return r


def refs(repo: Path) -> dict[str, str]:
    out = subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname)"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines())


@pytest.fixture(scope="module")
def loaded(kube):
    objs = load_example(kube, EXAMPLE)
    yield objs
    unload(kube, objs)


@pytest.fixture(scope="module")
def reader_kubeconfig(kube, loaded, tmp_path_factory) -> Path:
    """A kubeconfig holding a token of a ServiceAccount bound only to the printed ClusterRole."""
    role = cli("snapshot", "--print-clusterrole").stdout
    name = yaml.safe_load(role)["metadata"]["name"]
    kube.apply(role)
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": READER_SA, "namespace": READER_NS}}))
    kube.apply(json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": READER_SA},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": READER_SA, "namespace": READER_NS}]}))
    token = mint_token(kube.api, READER_NS, READER_SA)
    path = tmp_path_factory.mktemp("reader") / "kubeconfig"
    path.write_text(kubeconfig(kube.cluster.server, kube.cluster.ca, token=token))
    path.chmod(0o600)
    return path


def read_by_design(kind: str, namespace: str, name: str) -> bool:
    """What generator/live/resources.py says the reader reads (so the comparison is with the
    documented contract, not with every object of the cluster)."""
    if kind == "ConfigMap" and not keep_configmap(namespace, name):
        return False
    for r in CORE:
        if r.kind == kind:
            return r.namespaces is None or namespace in r.namespaces
    return any(k == kind for _, k, _ in CALICO_KINDS)


def snapshot_names(snap: Path) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set] = {}
    for f in snap.rglob("*.yaml"):
        for d in yaml.safe_load_all(f.read_text()):
            for o in (d or {}).get("items", [d]) if isinstance(d, dict) else []:
                if isinstance(o, dict) and "metadata" in o:
                    kind = o.get("kind") or d.get("kind", "").removesuffix("List")
                    found.setdefault(kind, set()).add(
                        (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return found


def test_snapshot_under_the_printed_clusterrole_reads_back_what_was_loaded(
        kube, loaded, reader_kubeconfig, tmp_path):
    snap = tmp_path / "snap"
    # pages of 3: the real server's continue tokens, for every list
    r = cli("snapshot", "--kubeconfig", str(reader_kubeconfig), "--out", str(snap),
            "--page-size", "3")
    assert "wrote" in r.stdout
    got = snapshot_names(snap)
    for kind, names in loaded.items():
        names = {n for n in names if read_by_design(kind, *n)}
        missing = names - got.get(kind, set())
        assert not missing, f"{kind}: loaded but not read back: {sorted(missing)}"
    assert {k for k, v in loaded.items() if any(read_by_design(k, *n) for n in v)} >= {
        "Namespace", "Node", "DaemonSet", "Deployment", "ConfigMap", "PodDisruptionBudget",
        "NetworkPolicy", "GlobalNetworkPolicy", "Tier", "GlobalNetworkSet", "ServiceAccount"}
    # the pods are the ones the real controllers made, every one of them read
    pods = kube.api.list("/api/v1/pods")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods} == got["Pod"]
    assert len(got["Pod"]) >= 20
    # and the snapshot plans as the exported example does
    plan = cli("plan", "--from", str(snap)).stdout
    assert "canal -> Cilium" in plan and "pod CIDR: 10.245.0.0/16" in plan


def test_generate_live_gives_the_same_shas_as_generate_from_the_snapshot(
        kube, loaded, reader_kubeconfig, tmp_path):
    snap = tmp_path / "snap"
    cli("snapshot", "--kubeconfig", str(reader_kubeconfig), "--out", str(snap))
    cli("generate", "--from", str(snap), "--out", str(tmp_path / "from-snapshot"))
    cli("generate", "--kubeconfig", str(reader_kubeconfig), "--out", str(tmp_path / "live"))
    a, b = refs(tmp_path / "from-snapshot"), refs(tmp_path / "live")
    assert a == b and len(a) >= 5


def test_the_reader_token_cannot_read_secrets(kube, reader_kubeconfig):
    token = yaml.safe_load(reader_kubeconfig.read_text())["users"][0]["user"]["token"]
    reader = Client(kube.cluster.server, token=token, ca_file=str(kube.cluster.ca))
    assert reader.list("/api/v1/namespaces/kube-system/pods")       # it can read pods
    for path in ("/api/v1/secrets", "/api/v1/namespaces/kube-system/secrets",
                 "/api/v1/namespaces/kube-system/secrets/anything"):
        with pytest.raises(ApiError) as e:
            reader.get(path)
        assert e.value.status == 403, path
    # nor write anything it can read
    with pytest.raises(ApiError) as e:
        reader.patch("/api/v1/namespaces/kube-system", {"metadata": {"labels": {"x": "y"}}})
    assert e.value.status == 403
