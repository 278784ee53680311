"""Every generated wave, applied to a real API server in the order a reviewer merges them.

For each source CNI, both engines and every supported Cilium version: the repository is
generated, the cluster is given the snapshot's Nodes (kwok) and Namespaces and the engine's
namespace, then commit by commit the bootstrap and each new wave, step by step, are built with
`kubectl kustomize` and sent with `kubectl apply --server-side --dry-run=server` (real admission:
schema validation of every field, Pod Security on the restricted migration namespace, RBAC
escalation checks, CRD schemas of that Cilium version), which must answer with no error and no
warning; then every object that is not a Job is applied for real. Jobs are not created here: no
engine gates them (tests/e2e/test_e2e_runner.py runs their scripts).
"""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from harness import exported_objects, install_cilium_crds
from e2e.cluster import kwok_node
from generator.cli import main
from snapshots import make_snapshot

CNIS = ("flannel", "canal", "calico", "calico-operator")
VERSIONS = ("1.16", "1.17", "1.18", "1.19")
ENGINE_NS = {"argocd": "argocd", "flux": "flux-system"}
# the CRDs change per Cilium version and only move forward (stored versions): versions ascend
COMBOS = [(v, c, e) for v in VERSIONS for c in CNIS for e in ("argocd", "flux")]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def checkout(repo: Path, sha: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(repo), "archive", sha], capture_output=True,
                          check=True).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        t.extractall(into, filter="data")
    return into


def build(kube, path: Path) -> list[dict]:
    out = kube.kubectl("kustomize", str(path)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def dump(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def dry_run(kube, docs: list[dict], where: str) -> None:
    if not docs:
        return
    r = kube.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
                     stdin=dump(docs), check=False)
    assert r.returncode == 0 and "Warning" not in r.stderr, \
        f"{where}: dry-run refused:\n{r.stderr.strip()}"


def apply(kube, docs: list[dict], where: str) -> None:
    if not docs:
        return
    r = kube.kubectl("apply", "--server-side", "-f", "-", stdin=dump(docs), check=False)
    assert r.returncode == 0 and "Warning" not in r.stderr, f"{where}: apply:\n{r.stderr.strip()}"


def snapshot_objects(snap: Path, kind: str) -> list[dict]:
    return [o for o in exported_objects(snap) if o["kind"] == kind]


def prepare(kube, snap: Path, engine: str) -> None:
    """What exists before the migration: the snapshot's Nodes and Namespaces, the engine's
    namespace. Later tests reuse what an earlier one made (Nodes of the same name, the
    namespaces): only the first sees wave 00 create the migration namespace."""
    have = set(kube.kubectl("get", "ns,nodes", "-o", "name").stdout.split())
    docs = []
    for n in snapshot_objects(snap, "Node"):
        if f"node/{n['metadata']['name']}" not in have:
            spec = {k: v for k, v in (n.get("spec") or {}).items()
                    if k in ("podCIDR", "podCIDRs", "taints")}
            docs.append(kwok_node(n["metadata"]["name"], n["metadata"].get("labels"), **spec))
    for ns in [n["metadata"]["name"] for n in snapshot_objects(snap, "Namespace")] + \
            [ENGINE_NS[engine]]:
        if f"namespace/{ns}" not in have:
            docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if docs:
        # created, as a kubelet registers its Node: the waves' server-side apply must not take
        # over (and so drop) fields other managers own
        kube.kubectl("create", "-f", "-", stdin=dump(docs))


def cleanup(kube, applied: list[dict]) -> None:
    """Remove what the migration applied (not Namespaces, not Nodes: their pods go while kwok
    still runs the node) and the migration label."""
    gone = [d for d in applied if d["kind"] not in ("Namespace", "Node")]
    if gone:
        kube.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=dump(gone))
    kube.kubectl("label", "nodes", "--all", "io.cilium.migration/cilium-default-")


@pytest.mark.parametrize("version,cni,engine", COMBOS,
                         ids=[f"{c}-{e}-{v}" for v, c, e in COMBOS])
def test_every_wave_applies_to_a_real_api_server(kube, shared, tmp_path, version, cni, engine):
    install_cilium_crds(kube, shared, version)
    snap = make_snapshot(tmp_path, cni, nodes=4)
    out = tmp_path / "out"
    assert main(["generate", "--from", str(snap), "--engine", engine, "--out", str(out),
                 "--cilium-version", version]) == 0
    shas = git(out, "log", "--reverse", "--format=%H").split()
    node_names = [n["metadata"]["name"] for n in snapshot_objects(snap, "Node")]
    prepare(kube, snap, engine)
    applied: list[dict] = []
    counts = {"objects": 0, "jobs": 0}
    try:
        boot_before: list[dict] = []
        for i, sha in enumerate(shas):
            tree = checkout(out, sha, tmp_path / f"tree-{i:02d}")
            wave = next(p.name for p in (tree / "waves").iterdir()
                        if p.is_dir() and p.name.startswith(f"{i:02d}-"))
            boot = build(kube, tree / "bootstrap")
            if boot != boot_before:
                dry_run(kube, boot, f"wave {wave}: bootstrap")
                apply(kube, boot, f"wave {wave}: bootstrap")
                boot_before = boot
            # the wave's kustomization lists its steps in order (setup, change, work, gate)
            docs = build(kube, tree / "waves" / wave)
            nss = [d for d in docs if d["kind"] == "Namespace"]
            rest = [d for d in docs if d["kind"] != "Namespace"]
            dry_run(kube, nss, f"wave {wave}")
            apply(kube, nss, f"wave {wave}")
            dry_run(kube, rest, f"wave {wave}")
            objs = [d for d in rest if d["kind"] != "Job"]
            apply(kube, objs, f"wave {wave}")
            applied += nss + objs
            counts["objects"] += len(nss) + len(objs)
            counts["jobs"] += len(rest) - len(objs)
        assert counts["objects"] > 30 and counts["jobs"] >= 8, counts
        # the Node manifests labelled every node, through server-side apply
        labels = kube.kubectl("get", "nodes", *node_names, "-o",
                              "jsonpath={.items[*].metadata.labels.io\\.cilium\\.migration/"
                              "cilium-default}").stdout.split()
        assert labels == ["true"] * len(node_names)
    finally:
        cleanup(kube, applied)
