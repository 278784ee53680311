"""What the Inventory keeps at scale: typed core kinds without their raw objects, shared
values, and the cheap checks the load uses in place of ipaddress (same answers)."""
import ipaddress

import pytest

from generator.inventory.detect import _ip_value
from generator.inventory.snapshot import _Shared, _maps_host_ports, load_snapshot
from generator.yamlio import load_paths
from snapshots import make_snapshot


def _pod(name, ports, host_port=None):
    port = {"name": "dns", "containerPort": 53, "protocol": "UDP"}
    if host_port:
        port["hostPort"] = host_port
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "c", "ports": ports + [port]}]},
            "status": {"podIP": "10.244.1.9"}}


def test_typed_kinds_are_not_kept_raw_but_the_rest_is_in_order(tmp_path):
    snap = make_snapshot(tmp_path, "canal", nodes=3)
    inv = load_snapshot([str(snap)])
    raw = load_paths([snap])
    typed = {"Pod", "Node", "Service", "Namespace", "ServiceAccount"}
    expected = [i for i in raw if i.obj["kind"] not in typed or "/" in i.obj["apiVersion"]]
    assert [(i.file, i.obj) for i in inv.objects] == [(i.file, i.obj) for i in expected]
    # the typed lists hold every one of them
    assert len(inv.pods) == sum(i.obj["kind"] == "Pod" for i in raw)
    assert len(inv.nodes) == sum(i.obj["kind"] == "Node" for i in raw)


def test_pods_mapping_host_ports_stay_raw_in_object_order(tmp_path):
    extra = [_pod("plain", []), _pod("mapped", [], host_port=6081)]
    inv = load_snapshot([str(make_snapshot(tmp_path, "calico", nodes=2, extra_objects=extra))])
    pods = [i.obj["metadata"]["name"] for i in inv.objects if i.obj["kind"] == "Pod"]
    assert pods == ["mapped"]
    assert {p.name for p in inv.pods} >= {"plain", "mapped"}


@pytest.mark.parametrize("ports,expected", [
    ([], False),
    ([{"containerPort": 80}], False),
    ([{"containerPort": 80, "hostPort": 0}], False),
    ([{"containerPort": 80, "hostPort": 8080}], True),
    (["not-a-mapping"], True),   # plan/network.py reads it raw, as it always did
])
def test_maps_host_ports(ports, expected):
    pod = {"spec": {"containers": [{"name": "a"}, {"name": "b", "ports": ports}]}}
    assert _maps_host_ports(pod) is expected


def test_shared_values_are_equal_and_one_object():
    shared = _Shared()
    a = shared.labels({"app": "".join(["w", "eb"]), "n": 1})
    b = shared.labels({"app": "".join(["we", "b"]), "n": 1})
    assert a == b == {"app": "web", "n": 1}
    assert a["app"] is b["app"] and a is not b          # values shared, dicts not
    p = shared.ports((("http", 8080, "TCP"), ("m", 9090, "TCP")))
    q = shared.ports((("http", 8080, "TCP"), ("m", 9090, "TCP")))
    assert p is q and [(c.name, c.port, c.protocol) for c in p] == [
        ("http", 8080, "TCP"), ("m", 9090, "TCP")]
    odd = shared.ports(((["a", "list"], 80, "TCP"),))   # unhashable name: built, not shared
    assert odd[0].name == ["a", "list"]
    assert shared.text(None) is None and shared.text(5) == 5


def test_pods_with_the_same_ports_share_them(tmp_path):
    inv = load_snapshot([str(make_snapshot(tmp_path, "canal", nodes=3, pods_per_node=3))])
    web = [p for p in inv.pods if p.name.startswith("web-")]
    assert len(web) > 2 and all(p.ports is web[0].ports for p in web)
    assert all(p.namespace is web[0].namespace for p in web)


@pytest.mark.parametrize("text", [
    "10.0.0.1", "0.0.0.0", "255.255.255.255", "10.244.3.17", "010.0.0.1", "10.0.0.01",
    "10.0.0", "10.0.0.256", " 10.0.0.1", "10.0.0.1 ", "1.2.3.4\x00", "", "None", None,
    167772161, 2**32, -1, "::1", "fd00::10", "::ffff:10.0.0.1", "fd00::/64", "web", 1.5,
    ["10.0.0.1"],
])
def test_ip_value_reads_what_ipaddress_reads(text):
    try:
        ip = ipaddress.ip_address(text)
        want = (ip.version, int(ip))
    except (ValueError, TypeError):
        want = None
    assert _ip_value(text) == want
