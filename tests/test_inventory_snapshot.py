"""load_snapshot: Lists, typed lists, multi-document files, duplicates, digest, cluster name."""
import shutil

import pytest
import yaml

from generator.errors import UserError
from generator.inventory.snapshot import canonical, load_snapshot
from snapshots import make_snapshot

EXAMPLE = "examples/kind-canal"


def test_example_kind_canal_loads(root):
    inv = load_snapshot([str(root / EXAMPLE)])
    assert inv.cluster_name == "kind-canal"
    assert inv.cni.kind == "canal"
    assert [n.name for n in inv.nodes] == ["kind-canal-control-plane", "kind-canal-worker",
                                          "kind-canal-worker2", "kind-canal-worker3"]
    cp = inv.node("kind-canal-control-plane")
    assert cp.control_plane and cp.internal_ip == "172.18.0.2"
    assert cp.pod_cidrs == ("10.244.0.0/24",)
    assert {n.zone for n in inv.nodes} == {"eu-west-1a", "eu-west-1b"}
    assert all(n.ready for n in inv.nodes)
    assert inv.service_cidr == "10.96.0.0/12"
    assert 20 <= len(inv.pods) <= 30
    ledger = next(p for p in inv.pods if p.name == "ledger-0")
    assert (ledger.owner_kind, ledger.owner_name, ledger.service_account) == \
        ("StatefulSet", "ledger", "ledger")
    assert ledger.ports[0].name == "postgres" and ledger.ports[0].port == 5432
    canal = [p for p in inv.pods if p.name.startswith("canal-")]
    assert len(canal) == 4 and all(p.host_network for p in canal)
    kinds = sorted({(i.obj["apiVersion"], i.obj["kind"]) for i in inv.policy_objects})
    assert kinds == [("crd.projectcalico.org/v1", "GlobalNetworkPolicy"),
                     ("crd.projectcalico.org/v1", "GlobalNetworkSet"),
                     ("crd.projectcalico.org/v1", "Tier"),
                     ("networking.k8s.io/v1", "NetworkPolicy")]
    assert len(inv.pdbs) == 2
    headless = next(s for s in inv.services if s.name == "ledger")
    assert headless.cluster_ips == ()
    # raw objects are kept, with their file, except the core kinds held typed
    kinds = {i.obj["kind"] for i in inv.objects}
    assert {"DaemonSet", "ConfigMap", "GlobalNetworkPolicy"} <= kinds
    assert not kinds & {"Pod", "Node", "Service", "Namespace", "ServiceAccount"}
    assert all(i.file.endswith(".yaml") for i in inv.objects)


def test_example_is_small_and_real_export_shaped(root):
    files = sorted((root / EXAMPLE).glob("*.yaml"))
    assert sum(len(f.read_text().splitlines()) for f in files) < 3000
    for f in files:
        doc = yaml.safe_load(f.read_text())
        assert doc["kind"] == "List" and doc["items"], f


@pytest.mark.parametrize("layout", ["files", "single", "typed"])
def test_layouts_give_same_inventory(tmp_path, layout):
    ref = load_snapshot([str(make_snapshot(tmp_path / "ref", "calico", nodes=3))])
    inv = load_snapshot([str(make_snapshot(tmp_path / layout, "calico", nodes=3, layout=layout))])
    assert inv.digest == ref.digest
    assert [n.name for n in inv.nodes] == [n.name for n in ref.nodes]
    assert {(p.namespace, p.name) for p in inv.pods} == {(p.namespace, p.name) for p in ref.pods}
    assert inv.cni == ref.cni


def test_typed_list_items_get_kind(tmp_path):
    snap = make_snapshot(tmp_path, "flannel", nodes=2, layout="typed")
    text = (snap / "nodes.yaml").read_text()
    assert "kind: NodeList" in text
    inv = load_snapshot([str(snap)])
    assert len(inv.nodes) == 2 and all(i.obj["kind"] for i in inv.objects)


def test_files_as_arguments_and_cluster_name_fallback(tmp_path):
    snap = make_snapshot(tmp_path, "flannel", nodes=2, kubeadm=False, dirname="prod-eu")
    inv = load_snapshot([str(snap / "nodes.yaml"), str(snap / "daemonsets.yaml"),
                         str(snap / "configmaps.yaml")])
    assert inv.cluster_name == "prod-eu"
    assert inv.pods == [] and len(inv.nodes) == 2 and inv.service_cidr is None


def test_duplicate_object_names_both_files(tmp_path):
    snap = make_snapshot(tmp_path, "canal", nodes=2)
    shutil.copy(snap / "nodes.yaml", snap / "nodes-again.yaml")
    with pytest.raises(UserError) as e:
        load_snapshot([str(snap)])
    msg = str(e.value)
    assert "duplicate" in msg and "nodes.yaml" in msg and "nodes-again.yaml" in msg
    assert "Node control-plane" in msg


def test_same_name_in_different_groups_is_not_duplicate(tmp_path):
    knp = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}}}
    cnp = {"apiVersion": "crd.projectcalico.org/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "deny", "namespace": "shop"}, "spec": {"selector": "all()"}}
    inv = load_snapshot([str(make_snapshot(tmp_path, "canal", nodes=2,
                                           extra_objects=[knp, cnp]))])
    assert len(inv.policy_objects) == 2


def test_policy_objects_all_groups_and_kinds(tmp_path):
    extra = []
    for api in ("projectcalico.org/v3", "crd.projectcalico.org/v1"):
        for kind in ("GlobalNetworkPolicy", "Tier", "GlobalNetworkSet", "HostEndpoint",
                     "StagedGlobalNetworkPolicy"):
            extra.append({"apiVersion": api, "kind": kind,
                          "metadata": {"name": f"x-{api[:3]}-{kind.lower()}"}, "spec": {}})
        for kind in ("NetworkPolicy", "NetworkSet", "StagedNetworkPolicy",
                     "StagedKubernetesNetworkPolicy"):
            extra.append({"apiVersion": api, "kind": kind,
                          "metadata": {"name": f"y-{api[:3]}", "namespace": "shop"}, "spec": {}})
    # not policy: IPPool, FelixConfiguration
    extra.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "FelixConfiguration",
                  "metadata": {"name": "default"}, "spec": {}})
    inv = load_snapshot([str(make_snapshot(tmp_path, "calico", nodes=2, extra_objects=extra))])
    got = {(i.obj["apiVersion"], i.obj["kind"]) for i in inv.policy_objects}
    assert len(inv.policy_objects) == 18 == len(got)
    assert not any(k == "IPPool" or k == "FelixConfiguration" for _, k in got)


def _rewrite(path, fn):
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc))


def test_digest_ignores_volatile_fields_and_order(tmp_path):
    snap = make_snapshot(tmp_path, "canal", nodes=3)
    before = load_snapshot([str(snap)]).digest

    def churn(doc):
        doc["items"].reverse()
        for i, item in enumerate(doc["items"]):
            m = item["metadata"]
            m.update(resourceVersion=str(9000 + i), uid=f"u-{i}", generation=7,
                     creationTimestamp="2030-01-01T00:00:00Z",
                     managedFields=[{"manager": "kubectl"}])
            m.setdefault("annotations", {})[
                "kubectl.kubernetes.io/last-applied-configuration"] = "{}"
            if item["kind"] == "Node":
                for c in item["status"]["conditions"]:
                    c["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
                item["status"]["images"] = [{"names": ["x"]}]
            if item["kind"] == "DaemonSet":
                item["status"]["numberReady"] = 0
    for f in ("nodes.yaml", "pods.yaml", "daemonsets.yaml"):
        _rewrite(snap / f, churn)
    # a different file layout: merge two files into one multi-document file
    (snap / "merged.yaml").write_text((snap / "services.yaml").read_text() + "---\n" +
                                      (snap / "namespaces.yaml").read_text())
    (snap / "services.yaml").unlink()
    (snap / "namespaces.yaml").unlink()
    assert load_snapshot([str(snap)]).digest == before


def test_digest_changes_with_content(tmp_path):
    snap = make_snapshot(tmp_path, "canal", nodes=3)
    before = load_snapshot([str(snap)]).digest

    def relabel(doc):
        doc["items"][1]["metadata"]["labels"]["topology.kubernetes.io/zone"] = "zone-z"
    _rewrite(snap / "nodes.yaml", relabel)
    assert load_snapshot([str(snap)]).digest != before


def test_canonical_keeps_what_plans_read():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "uid": "x"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": "t"}]}}
    c = canonical(node)
    assert c["metadata"] == {"name": "n"}
    assert c["status"] == {"addresses": node["status"]["addresses"], "ready": True}
    assert "status" not in canonical({"kind": "DaemonSet", "metadata": {"name": "d"},
                                      "status": {"numberReady": 1}})


def test_empty_and_missing_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no Kubernetes objects"):
        load_snapshot([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="no such file"):
        load_snapshot([str(tmp_path / "nope")])


def test_object_without_name_is_named_by_file(tmp_path):
    snap = make_snapshot(tmp_path, "flannel", nodes=2)
    (snap / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    with pytest.raises(UserError) as e:
        load_snapshot([str(snap)])
    assert "bad.yaml" in str(e.value)


def test_pod_fields(tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "shop", "labels": {"a": "b"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "x",
                                             "controller": False},
                                            {"kind": "StatefulSet", "name": "db",
                                             "controller": True}]},
           "spec": {"nodeName": "worker-1", "serviceAccount": "legacy",
                    "initContainers": [{"name": "side", "restartPolicy": "Always",
                                        "ports": [{"containerPort": 15001, "name": "proxy"}]},
                                       {"name": "init", "ports": [{"containerPort": 1}]}],
                    "containers": [{"name": "c", "ports": [
                        {"containerPort": 53, "protocol": "UDP", "name": "dns"}]}]},
           "status": {"podIP": "10.244.1.9",
                      "podIPs": [{"ip": "10.244.1.9"}, {"ip": "fd00::9"}]}}
    inv = load_snapshot([str(make_snapshot(tmp_path, "canal", nodes=2, extra_objects=[pod]))])
    p = next(x for x in inv.pods if x.name == "p")
    assert (p.owner_kind, p.owner_name, p.service_account) == ("StatefulSet", "db", "legacy")
    assert p.ips == ("10.244.1.9", "fd00::9")
    assert [(c.name, c.port, c.protocol) for c in p.ports] == [("dns", 53, "UDP"),
                                                               ("proxy", 15001, "TCP")]


def test_directory_and_file_inside_it_read_once(tmp_path):
    snap = make_snapshot(tmp_path, "canal", nodes=2)
    inv = load_snapshot([str(snap), str(snap / "nodes.yaml")])
    assert len(inv.nodes) == 2


def test_malformed_typed_field_is_a_user_error(tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
           "spec": {"containers": [{"name": "c", "ports": [{"containerPort": "http"}]}]}}
    snap = make_snapshot(tmp_path, "canal", nodes=2, extra_objects=[pod])
    with pytest.raises(UserError) as e:
        load_snapshot([str(snap)])
    assert "pods.yaml" in str(e.value) and "Pod shop/p" in str(e.value)


def test_admin_network_policies_are_flagged(tmp_path):
    anp = {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
           "metadata": {"name": "deny-egress"}, "spec": {"priority": 10, "subject": {}}}
    inv = load_snapshot([str(make_snapshot(tmp_path, "canal", nodes=2, extra_objects=[anp]))])
    assert any("AdminNetworkPolicy deny-egress" in w and "not translated" in w
               for w in inv.cni.warnings)
    # plain Flannel enforces nothing: nothing is lost, nothing to say
    inv = load_snapshot([str(make_snapshot(tmp_path / "f", "flannel", nodes=2,
                                           extra_objects=[anp]))])
    assert not inv.cni.warnings


def test_digest_is_independent_of_object_order_and_files(tmp_path):
    """Any order and any split into files gives the same digest (property test)."""
    from hypothesis import given, settings, strategies as st

    from generator.inventory.snapshot import build_inventory
    from generator.yamlio import Loaded, load_paths

    snap = make_snapshot(tmp_path, "calico-vxlan", nodes=3)
    base = load_snapshot([str(snap)])
    objs = [i.obj for i in load_paths([snap])]

    @settings(max_examples=25, deadline=None)
    @given(st.permutations(range(len(objs))), st.integers(min_value=1, max_value=5))
    def check(order, nfiles):
        loaded = [Loaded(objs[j], f"f{k % nfiles}.yaml", k, None) for k, j in enumerate(order)]
        assert build_inventory(loaded, source="x", default_name="x").digest == base.digest
    check()
