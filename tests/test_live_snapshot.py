"""Reading a live cluster, against tests/fakekube.py: a STAND-IN API server (http.server in a
thread with discovery, paged lists, custom objects, 403s), not a real kube-apiserver.

The bundled example (examples/kind-canal) is loaded into the stand-in; `cni-migrate snapshot`
must give back the same objects, and the inventory from the live read must equal the one from
the written snapshot. The stand-in holds the example's objects verbatim (pods and statuses
included), which a real server cannot; the same round trip against a real kube-apiserver, under
the printed ClusterRole, with real paging, is tests/e2e/test_e2e_live.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fakekube import FakeKube, HttpError
from test_live_support import load_into, resources, write_kubeconfig

from generator.cli import main
from generator.inventory.snapshot import load_snapshot
from generator.live.normalize import normalize
from generator.live.reader import inventory_of, read_cluster
from generator.live.resources import CNI_NAMESPACES, keep_configmap
from generator.yamlio import load_paths

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kind-canal"

# What the brief asks the reader to read, stated independently of generator/live/resources.py.
CLUSTER_WIDE = {("v1", "Node"), ("v1", "Namespace"), ("v1", "Pod"), ("v1", "ServiceAccount"),
                ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"),
                ("networking.k8s.io/v1", "NetworkPolicy")}
CNI_NAMESPACED = {("v1", "ConfigMap"), ("apps/v1", "DaemonSet"), ("apps/v1", "Deployment")}
CALICO_KINDS = {"GlobalNetworkPolicy", "NetworkPolicy", "Tier", "GlobalNetworkSet", "NetworkSet",
                "HostEndpoint", "IPPool", "FelixConfiguration"}


def wanted(obj: dict) -> bool:
    key = (obj["apiVersion"], obj["kind"])
    ns = obj["metadata"].get("namespace")
    if key in CLUSTER_WIDE:
        return True
    if key in CNI_NAMESPACED and ns in CNI_NAMESPACES:
        return obj["kind"] != "ConfigMap" or keep_configmap(ns, obj["metadata"]["name"])
    return obj["apiVersion"] == "crd.projectcalico.org/v1" and obj["kind"] in CALICO_KINDS


def ident(obj: dict) -> tuple:
    m = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], m.get("namespace") or "", m["name"])


@pytest.fixture(scope="module")
def example_server():
    with FakeKube(resources("crd")) as kube:
        added = load_into(kube, [EXAMPLE])
        yield kube, added


@pytest.fixture(scope="module")
def example_snapshot(example_server, tmp_path_factory):
    kube, _ = example_server
    tmp = tmp_path_factory.mktemp("live")
    kc = write_kubeconfig(tmp / "kubeconfig", kube.url)
    out = tmp / "snap"
    first = len(kube.requests)
    rc = main(["snapshot", "--kubeconfig", str(kc), "--out", str(out), "--page-size", "2"])
    assert rc == 0
    return kc, out, kube.requests[first:]


def test_snapshot_has_the_same_objects_as_the_example(example_server, example_snapshot):
    _, added = example_server
    _, out, _ = example_snapshot
    expected = {ident(o): normalize(o, o["apiVersion"], o["kind"]) for o in added if wanted(o)}
    got = {ident(i.obj): i.obj for i in load_paths([out])}
    assert sorted(got) == sorted(expected)
    for key, obj in expected.items():
        assert got[key] == obj, key
    # kubectl-style List files, one per kind, nothing volatile left
    doc = yaml.safe_load((out / "pods.yaml").read_text())
    assert doc["kind"] == "List" and len(doc["items"]) == 27
    for item in doc["items"]:
        assert not {"managedFields", "resourceVersion", "uid", "creationTimestamp"} & \
            set(item["metadata"])
        assert "containerStatuses" not in item["status"]


def test_lists_are_paged_and_secrets_never_read(example_snapshot):
    _, _, requests = example_snapshot
    pod_lists = [q for m, p, q in requests if p == "/api/v1/pods"]
    assert len(pod_lists) > 2                          # 27 pods in pages of 2
    assert all(q.get("limit") == "2" for q in pod_lists)
    assert sum(1 for q in pod_lists if q.get("continue")) == len(pod_lists) - 1
    assert all(m == "GET" for m, _, _ in requests)
    assert not [p for _, p, _ in requests if "secrets" in p]
    # discovery picked the CRD group (no Calico API server in this stand-in)
    assert any(p == "/apis/crd.projectcalico.org/v1" for _, p, _ in requests)


def test_snapshot_is_deterministic_and_replaces_itself(example_snapshot, tmp_path):
    kc, out, _ = example_snapshot
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["snapshot", "--kubeconfig", str(kc), "--out", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_live_inventory_equals_snapshot_inventory(example_snapshot):
    kc, out, _ = example_snapshot
    live = inventory_of(read_cluster(str(kc)))
    snap = load_snapshot([str(out)])
    assert live.digest == snap.digest
    for field in ("nodes", "namespaces", "pods", "service_accounts", "services", "pdbs",
                  "cidrs", "service_cidr", "cluster_name"):
        assert getattr(live, field) == getattr(snap, field), field
    assert live.cni.kind == snap.cni.kind == "canal"
    assert [i.obj for i in live.policy_objects] == [i.obj for i in snap.policy_objects]
    assert live.source == "context kind-canal"


def test_live_inventory_matches_the_example(example_snapshot):
    """The typed view (what planning reads) equals the one from the bundled example itself."""
    kc, _, _ = example_snapshot
    live = inventory_of(read_cluster(str(kc)))
    ex = load_snapshot([str(EXAMPLE)])
    for field in ("nodes", "namespaces", "pods", "service_accounts", "services", "cidrs"):
        # the example's files are in kubectl's order, the snapshot's sorted by namespace/name
        assert sorted(getattr(live, field), key=repr) == sorted(getattr(ex, field), key=repr), \
            field
    assert (live.service_cidr, live.cluster_name) == (ex.service_cidr, ex.cluster_name)
    assert (live.cni.kind, live.cni.encapsulation) == (ex.cni.kind, ex.cni.encapsulation)
    assert sorted(map(ident, (i.obj for i in live.policy_objects))) == \
        sorted(map(ident, (i.obj for i in ex.policy_objects)))


def test_source_arguments_read_live(example_snapshot):
    """--kubeconfig/--context on plan/generate/translate/verify go through read_inventory."""
    import argparse
    from generator.inventory.source import inventory_from_args
    kc, _, _ = example_snapshot
    args = argparse.Namespace(snapshot=None, kubeconfig=str(kc), context="kind-canal")
    inv = inventory_from_args(args)
    assert inv.source == "context kind-canal" and len(inv.nodes) == 4


@pytest.fixture(scope="module")
def generated(example_snapshot, tmp_path_factory):
    """`generate` once from the live stand-in and once from the snapshot it wrote."""
    kc, out, _ = example_snapshot
    tmp = tmp_path_factory.mktemp("gen")
    live, snap = tmp / "live", tmp / "snap"
    assert main(["generate", "--kubeconfig", str(kc), "--out", str(live)]) == 0
    assert main(["generate", "--from", str(out), "--out", str(snap)]) == 0
    return live, snap


def _commits(repo_dir):
    import git
    repo = git.Repo(repo_dir)
    return [(c.hexsha, c.message, {b.path: b.data_stream.read() for b in c.tree.traverse()
                                   if b.type == "blob"})
            for c in reversed(list(repo.iter_commits("HEAD")))]


def test_generate_live_and_from_snapshot_write_the_same_files(generated, example_snapshot):
    """Same commits, same files; the only differences are where a text names the input
    (README, PR notes: 'context kind-canal' vs the snapshot directory) and the tree hashes
    .cni-migrate/state.json records, which follow from those texts."""
    _, snap_dir, _ = example_snapshot
    live, snap = (_commits(p) for p in generated)
    assert len(live) == len(snap) > 3
    for (_, msg_a, files_a), (_, msg_b, files_b) in zip(live, snap):
        assert msg_a == msg_b
        assert sorted(files_a) == sorted(files_b)
        for path in sorted(p for p in files_a if files_a[p] != files_b[p]):
            if path == ".cni-migrate/state.json":
                continue
            named = files_a[path].decode().replace("context kind-canal", str(snap_dir))
            assert named == files_b[path].decode(), path



# ---- discovery: which Calico API ----------------------------------------------------------------

def _gnp(api_version: str, name: str) -> dict:
    return {"apiVersion": api_version, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": {"selector": "all()", "types": ["Ingress"]}}


def test_prefers_the_calico_api_server_and_drops_converted_policies(tmp_path):
    with FakeKube(resources("both")) as kube:
        kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        kube.add(_gnp("crd.projectcalico.org/v1", "default.deny"))
        kube.add(_gnp("projectcalico.org/v3", "default.deny"))
        kube.add(_gnp("projectcalico.org/v3", "kanp.adminnetworkpolicy.block"))
        kube.add({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                  "metadata": {"name": "knp.default.from-k8s", "namespace": "shop"},
                  "spec": {"selector": "all()"}})
        read = read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))
    assert [o["metadata"]["name"] for o in
            read.files["globalnetworkpolicies.projectcalico.org.yaml"]] == [
        "default.deny", "kanp.adminnetworkpolicy.block"]
    assert read.files["networkpolicies.projectcalico.org.yaml"] == []
    assert not [f for f in read.files if "crd.projectcalico.org" in f]


def test_calico_api_server_down_falls_back_to_the_crds(tmp_path):
    class ApiServerDown(FakeKube):
        def _resource_list(self, group, version):
            if group == "projectcalico.org":
                raise HttpError(503, "ServiceUnavailable", "the server is currently unable to "
                                "handle the request")
            return super()._resource_list(group, version)

    with ApiServerDown(resources("both")) as kube:
        kube.add(_gnp("crd.projectcalico.org/v1", "default.deny"))
        read = read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))
    assert [o["metadata"]["name"] for o in
            read.files["globalnetworkpolicies.crd.projectcalico.org.yaml"]] == ["default.deny"]
    assert any("does not answer" in n for n in read.notes)


def test_flannel_cluster_without_calico_is_fine(tmp_path):
    with FakeKube(resources(None)) as kube:
        kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-flannel"}})
        read = read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))
    assert not [f for f in read.files if "calico" in f or "tigera" in f]
    assert any("no Calico API" in n for n in read.notes)


def test_namespace_restricted_reads_skip_absent_namespaces(tmp_path):
    with FakeKube(resources(None)) as kube:
        kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
        kube.add({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "kube-flannel-cfg", "namespace": "kube-system"}})
        kube.add({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "unrelated-app-config", "namespace": "kube-system"}})
        read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))
        paths = {p for _, p, _ in kube.requests}
        read = read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))
    assert "/api/v1/namespaces/kube-system/configmaps" in paths
    assert not [p for p in paths if "/namespaces/calico-system/" in p]
    assert [o["metadata"]["name"] for o in read.files["configmaps.yaml"]] == ["kube-flannel-cfg"]


def test_print_clusterrole_covers_every_request(example_snapshot, capsys):
    """Each list the reader made is allowed by the printed ClusterRole (and nothing writes)."""
    _, _, requests = example_snapshot
    assert main(["snapshot", "--print-clusterrole"]) == 0
    role = yaml.safe_load(capsys.readouterr().out)
    allowed = {(g, r) for rule in role["rules"] if "resources" in rule
               for g in rule["apiGroups"] for r in rule["resources"]}
    assert all(set(rule["verbs"]) <= {"get", "list"} for rule in role["rules"])
    assert not [r for _, r in allowed if r == "secrets"]
    for _, path, _ in requests:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) > 2:
            assert ("", parts[-1]) in allowed, path
        elif parts[0] == "apis" and len(parts) > 3:
            assert (parts[1], parts[-1]) in allowed, path


def test_kubernetes_and_cdk8s_are_imported_only_when_used():
    import subprocess
    import sys
    code = ("import sys, generator.cli, generator.inventory.source, generator.live.reader, "
            "generator.live.snapshot, generator.commands.snapshot, generator.integrations.cdk8s; "
            "print(sorted(m for m in ('kubernetes', 'cdk8s') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr
