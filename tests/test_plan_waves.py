"""make_plan: wave order, batching (canary, zones, control plane last), options, risk/approval."""
import pytest

from generator.errors import UserError
from generator.plan.model import Options
from generator.plan.planner import make_plan, node_batches, parse_batch_size
from test_plan_fixture import make_inventory

FIXED = ["preflight", "cilium-install", "nodeconfig"]
TAIL = ["policies", "final-values", "nodeconfig-removal", "old-cni-removal"]


def keys(plan):
    return [w.key for w in plan.waves]


def test_wave_order_and_numbers():
    plan = make_plan(make_inventory(), Options())
    k = keys(plan)
    assert k[:3] == FIXED and k[-4:] == TAIL
    assert all(x.startswith("nodes-") for x in k[3:-4])
    assert [w.number for w in plan.waves] == list(range(len(plan.waves)))
    assert plan.waves[3].dirname == "03-nodes-01"


def test_every_node_switched_exactly_once_canary_first_control_plane_last():
    inv = make_inventory(workers=7, control_planes=3)
    plan = make_plan(inv, Options(batch_size="2"))
    node_waves = [w for w in plan.waves if w.nodes]
    switched = [n for w in node_waves for n in w.nodes]
    assert sorted(switched) == sorted(n.name for n in inv.nodes)
    assert len(node_waves[0].nodes) == 1 and node_waves[0].nodes[0].startswith("worker-")
    assert "canary" in node_waves[0].title
    assert all(n.startswith("cp-") for n in node_waves[-1].nodes)
    assert all(not n.startswith("cp-") for w in node_waves[:-1] for n in w.nodes)
    assert node_waves[-1].risk == "high"
    assert [len(w.nodes) for w in node_waves[1:-1]] == [2, 2, 2]


def test_batches_spread_across_zones():
    inv = make_inventory(workers=9, zones=("a", "b", "c"), control_planes=1)
    batches = node_batches(inv, Options(batch_size="3"))
    for kind, names in batches:
        if kind == "workers" and len(names) == 3:
            assert len({inv.node(n).zone for n in names}) == 3, names


def test_batch_size_percent_and_count():
    assert parse_batch_size("25%", 7) == 2
    assert parse_batch_size("100%", 7) == 7
    assert parse_batch_size("1%", 7) == 1
    assert parse_batch_size("3", 7) == 3
    for bad in ("0", "-1", "abc", "0%", "150%"):
        with pytest.raises(UserError):
            parse_batch_size(bad, 7)


def test_no_canary_option_and_single_node_cluster():
    plan = make_plan(make_inventory(workers=4, control_planes=1), Options(canary=False,
                                                                          batch_size="100%"))
    node_waves = [w for w in plan.waves if w.nodes]
    assert [len(w.nodes) for w in node_waves] == [4, 1]
    only_cp = make_plan(make_inventory(workers=0, control_planes=1), Options())
    assert [w.nodes for w in only_cp.waves if w.nodes] == [["cp-0"]]
    assert any("control-plane" in w for w in only_cp.warnings)


def test_last_wave_is_point_of_no_return():
    plan = make_plan(make_inventory(), Options())
    last = plan.waves[-1]
    assert last.needs_approval and not last.reversible and last.risk == "irreversible"
    assert all(w.reversible and not w.needs_approval for w in plan.waves[:-1])
    for w in plan.waves:
        assert w.changes and w.gates and w.rollback and w.est_minutes > 0


def test_node_wave_estimate_grows_with_nodes():
    plan = make_plan(make_inventory(workers=9, control_planes=1), Options(batch_size="4"))
    nw = [w for w in plan.waves if w.nodes and "batch" in w.title]
    assert nw[0].est_minutes > plan.wave("nodes-01").est_minutes


def test_enforcement_gap_shown_for_calico_family_only():
    canal = make_plan(make_inventory("canal"), Options())
    assert any("Enforcement gap" in c for c in canal.wave("nodes-01").changes)
    flannel = make_plan(make_inventory("flannel", policies=False), Options())
    assert not any("Enforcement gap" in c for c in flannel.wave("nodes-01").changes)


def test_no_policy_said_plainly():
    plan = make_plan(make_inventory("flannel", policies=False), Options())
    assert "no network policy" in plan.wave("policies").changes[0]


def test_calico_autodetection_fix_only_for_calico_family():
    assert "autodetection" in make_plan(make_inventory("calico"), Options()).wave(
        "cilium-install").changes[0]
    assert not any("autodetection" in c for c in make_plan(
        make_inventory("flannel"), Options()).wave("cilium-install").changes)


def test_invalid_options_are_user_errors():
    inv = make_inventory()
    with pytest.raises(UserError, match="1.15"):
        make_plan(inv, Options(cilium_version="1.15"))
    with pytest.raises(UserError, match="engine"):
        make_plan(inv, Options(engine="jenkins"))
    with pytest.raises(UserError):
        make_plan(inv, Options(batch_size="many"))


def test_requested_cidr_overlapping_is_rejected():
    with pytest.raises(UserError):
        make_plan(make_inventory(), Options(cilium_pod_cidr="10.244.128.0/17"))
    plan = make_plan(make_inventory(), Options(cilium_pod_cidr="10.200.0.0/16"))
    assert plan.cilium_pod_cidr == "10.200.0.0/16"


def test_plan_is_deterministic_and_digest_tracks_options():
    a = make_plan(make_inventory(), Options())
    b = make_plan(make_inventory(), Options())
    assert a == b
    c = make_plan(make_inventory(), Options(batch_size="3"))
    assert c.input_digest != a.input_digest


def test_statefulset_without_pdb_is_warned():
    from generator.inventory.model import Pod
    inv = make_inventory()
    def pod(name, ns, app):
        return Pod(name=name, namespace=ns, labels={"app": app}, node="worker-0", ips=(),
                   host_network=False, service_account="default", owner_kind="StatefulSet",
                   owner_name=app)
    inv.pods = [pod("kafka-0", "data", "kafka"), pod("zk-0", "data", "zk")]
    inv.pdbs = [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {"name": "zk", "namespace": "data"},
                 "spec": {"maxUnavailable": 1, "selector": {"matchExpressions": [
                     {"key": "app", "operator": "In", "values": ["zk"]}]}}}]
    warnings = make_plan(inv, Options()).warnings
    hit = [w for w in warnings if "PodDisruptionBudget" in w]
    assert len(hit) == 1 and "data/kafka" in hit[0] and "data/zk" not in hit[0]


def test_autodetection_already_pinned_is_left_alone():
    from generator.jobs.kubectl import calico_fix_items
    from generator.yamlio import Loaded
    inv = make_inventory("calico")
    assert calico_fix_items(make_plan(inv, Options()), inv)   # default first-found: fix it
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "calico-node", "namespace": "kube-system"},
          "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "env": [
              {"name": "IP_AUTODETECTION_METHOD", "value": "interface=eth0"}]}]}}}}
    inv.objects.append(Loaded(ds, "snap/ds.yaml", 0, 1))
    plan = make_plan(inv, Options())
    assert "already safe" in plan.wave("cilium-install").changes[0]
    assert calico_fix_items(plan, inv) == []
