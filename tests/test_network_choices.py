"""choose_pod_cidr and choose_tunnel."""
import dataclasses
import ipaddress

import pytest

from generator.errors import UserError
from generator.inventory.model import Cidr, ContainerPort, Pod
from generator.inventory.snapshot import load_snapshot
from generator.plan.network import CANDIDATES, choose_pod_cidr, choose_tunnel, required_prefix
from snapshots import make_snapshot


def _inv(tmp_path, cni="canal", **kw):
    return load_snapshot([str(make_snapshot(tmp_path, cni, **kw))])


def _overlaps_any(cidr, inv):
    net = ipaddress.ip_network(cidr)
    return [c for c in inv.cidrs if ipaddress.ip_network(c.cidr).version == net.version
            and net.overlaps(ipaddress.ip_network(c.cidr))]


def test_default_choice_is_first_candidate(tmp_path):
    inv = _inv(tmp_path)
    cidr, reason = choose_pod_cidr(inv, None)
    assert cidr == CANDIDATES[0] == "10.245.0.0/16"
    assert reason.startswith("first candidate clear of")
    assert "10.244.0.0/16" in reason and "10.96.0.0/12" in reason


def test_clash_forces_next_candidate(tmp_path):
    # Flannel on 10.245.0.0/16 takes the first candidate; a /16 service range the second
    inv = _inv(tmp_path, "flannel", pod_cidr="10.245.0.0/16", service_cidr="10.42.0.0/16")
    cidr, _ = choose_pod_cidr(inv, None)
    assert cidr == "172.20.0.0/16"
    assert not _overlaps_any(cidr, inv)


def test_node_addresses_count_as_in_use(tmp_path):
    inv = _inv(tmp_path, "calico", node_ip_prefix="10.245.7.")
    cidr, _ = choose_pod_cidr(inv, None)
    assert cidr == "10.42.0.0/16"


def test_all_candidates_taken_falls_back_to_large_space(tmp_path):
    inv = _inv(tmp_path)
    taken = [Cidr(c, "test", "pod") for c in CANDIDATES] + [Cidr("10.0.0.0/9", "vpc", "node")]
    inv = dataclasses.replace(inv, cidrs=inv.cidrs + taken)
    cidr, reason = choose_pod_cidr(inv, None)
    assert not _overlaps_any(cidr, inv)
    assert cidr == "10.128.0.0/16" and "10.0.0.0/8" in reason


def test_big_cluster_gets_big_enough_range(tmp_path):
    inv = _inv(tmp_path)
    nodes = [dataclasses.replace(inv.nodes[0], name=f"n{i}") for i in range(600)]
    inv = dataclasses.replace(inv, nodes=nodes)
    assert required_prefix(600) == 14
    cidr, reason = choose_pod_cidr(inv, None)
    net = ipaddress.ip_network(cidr)
    assert 2 ** (24 - net.prefixlen) >= 600 and not _overlaps_any(cidr, inv)
    with pytest.raises(UserError, match="600 nodes"):
        choose_pod_cidr(inv, "10.245.0.0/16")


def test_requested_free_cidr_accepted(tmp_path):
    inv = _inv(tmp_path)
    cidr, reason = choose_pod_cidr(inv, "10.50.0.0/16")
    assert cidr == "10.50.0.0/16" and reason.startswith("requested; clear of")


@pytest.mark.parametrize("requested,names", [
    ("10.244.0.0/16", ["10.244.0.0/16", "canal-config"]),
    ("10.96.0.0/16", ["service CIDR 10.96.0.0/12", "kubeadm-config"]),
    ("172.18.0.0/16", ["node address 172.18.0.2/32", "node control-plane"]),
    ("10.0.0.0/8", ["Flannel network 10.244.0.0/16", "and 4 more"]),
])
def test_requested_overlap_names_what(tmp_path, requested, names):
    inv = _inv(tmp_path)
    with pytest.raises(UserError) as e:
        choose_pod_cidr(inv, requested)
    msg = str(e.value)
    assert "overlaps" in msg and "--cilium-pod-cidr" in msg
    for n in names:
        assert n in msg


def test_requested_calico_pool_overlap(tmp_path):
    inv = _inv(tmp_path, "calico")
    with pytest.raises(UserError, match="Calico IPPool 192.168.0.0/16 .IPPool default-ipv4"):
        choose_pod_cidr(inv, "192.168.128.0/17")


@pytest.mark.parametrize("bad,words", [
    ("10.300.0.0/16", "malformed"), ("banana", "malformed"),
    ("10.50.0.0/25", "smaller than one per-node block"),
    ("10.50.1.0/16", "did you mean 10.50.0.0/16"),
    ("fd00:42::/104", "IPv4"),
    ("169.254.0.0/16", "special-purpose"), ("127.0.0.0/16", "special-purpose"),
    ("240.0.0.0/16", "special-purpose"),
])
def test_requested_malformed_or_unusable(tmp_path, bad, words):
    with pytest.raises(UserError) as e:
        choose_pod_cidr(_inv(tmp_path), bad)
    assert words in str(e.value) and "--cilium-pod-cidr" in str(e.value)


def test_choice_is_deterministic(tmp_path):
    a = choose_pod_cidr(_inv(tmp_path / "a"), None)
    b = choose_pod_cidr(_inv(tmp_path / "b"), None)
    assert a == b


@pytest.mark.parametrize("cni,kw,protocol,port", [
    ("flannel", {}, "vxlan", 8473),
    ("canal", {}, "vxlan", 8473),
    ("calico", {}, "vxlan", 8473),
    ("calico-vxlan", {}, "vxlan", 8473),
    ("calico-operator", {}, "vxlan", 8473),
    ("canal", {"flannel_backend": {"Type": "vxlan", "Port": 8473}}, "geneve", 6081),
    ("flannel", {"flannel_backend": {"Type": "vxlan", "Port": 8473}}, "geneve", 6081),
    ("calico-vxlan", {"vxlan_port": 8473}, "geneve", 6081),
])
def test_tunnel_per_cni(tmp_path, cni, kw, protocol, port):
    inv = _inv(tmp_path, cni, **kw)
    t = choose_tunnel(inv)
    assert (t.protocol, t.port) == (protocol, port)
    assert t.port != inv.cni.tunnel_port
    assert t.reason
    if protocol == "geneve":
        assert "8473" in t.reason and inv.cni.kind in t.reason


def test_tunnel_reason_names_source_port(tmp_path):
    t = choose_tunnel(_inv(tmp_path, "canal"))
    assert "8472" in t.reason and "canal" in t.reason


def test_host_ports_in_use_push_the_tunnel(tmp_path):
    def hostnet(name, port):
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "kube-system"},
                "spec": {"nodeName": "worker-1", "hostNetwork": True, "containers": [
                    {"name": "c", "ports": [{"containerPort": port, "protocol": "UDP"}]}]}}
    hostport = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "geneve-thing", "namespace": "default"},
                "spec": {"nodeName": "worker-1", "containers": [{"name": "c", "ports": [
                    {"containerPort": 9000, "hostPort": 6081, "protocol": "UDP"}]}]}}
    inv = _inv(tmp_path, "calico", extra_objects=[hostnet("vtep", 8473), hostport])
    t = choose_tunnel(inv)
    assert (t.protocol, t.port) == ("vxlan", 8474)
    assert "kube-system/vtep" in t.reason and "default/geneve-thing" in t.reason


def test_tcp_port_does_not_clash(tmp_path):
    inv = _inv(tmp_path, "calico")
    pod = Pod("x", "kube-system", {}, "worker-1", (), True, "default", None, None,
              (ContainerPort("tcp", 8473, "TCP"),))
    inv = dataclasses.replace(inv, pods=inv.pods + [pod])
    assert choose_tunnel(inv).port == 8473


def test_configured_felix_port_avoided_even_with_ipip(tmp_path):
    # IPIP pools: no VXLAN device yet, but the configured port would be used once one appears
    inv = _inv(tmp_path, "calico", vxlan_port=8473)
    assert inv.cni.tunnel_port is None
    t = choose_tunnel(inv)
    assert (t.protocol, t.port) == ("geneve", 6081)
    assert "FelixConfiguration default spec.vxlanPort" in t.reason
