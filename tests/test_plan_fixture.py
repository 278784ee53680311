"""A hand-built Inventory for the plan/render tests (no snapshot needed), and its basic checks."""
from __future__ import annotations

import ipaddress

from generator.inventory.model import Cidr, Inventory, Namespace, Node, SourceCNI
from generator.plan.model import Options
from generator.plan.planner import make_plan
from generator.yamlio import Loaded


def make_node(name: str, zone: str | None, cp: bool = False, i: int = 0) -> Node:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    if cp:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return Node(name=name, labels=labels, internal_ip=f"172.18.0.{i + 2}",
                addresses=(f"172.18.0.{i + 2}",), pod_cidrs=(f"10.244.{i}.0/24",),
                control_plane=cp, zone=zone, ready=True)


def make_inventory(kind: str = "canal", workers: int = 7, zones=("a", "b", "c"),
                   control_planes: int = 3, policies: bool = True) -> Inventory:
    nodes = [make_node(f"cp-{i}", zones[i % len(zones)] if zones else None, True, i)
             for i in range(control_planes)]
    nodes += [make_node(f"worker-{i}", zones[i % len(zones)] if zones else None, False,
                        control_planes + i) for i in range(workers)]
    enc, port, ds, ns = {
        "canal": ("vxlan", 8472, ["kube-system/canal"], "kube-system"),
        "flannel": ("vxlan", 8472, ["kube-flannel/kube-flannel-ds"], "kube-flannel"),
        "calico": ("ipip", None, ["kube-system/calico-node"], "kube-system"),
        "calico-operator": ("vxlan", 4789, ["calico-system/calico-node"], "calico-system"),
    }[kind]
    deployments = {"canal": ["kube-system/calico-kube-controllers"],
                   "calico": ["kube-system/calico-kube-controllers"],
                   "calico-operator": ["calico-system/calico-kube-controllers",
                                       "tigera-operator/tigera-operator"]}.get(kind, [])
    cni = SourceCNI(kind=kind, encapsulation=enc, tunnel_port=port, namespace=ns,
                    daemonsets=ds, deployments=deployments, evidence=[f"DaemonSet {ds[0]}"],
                    enforces_policy=kind != "flannel")
    pol = []
    if policies:
        pol = [Loaded({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "deny-all", "namespace": "prod"},
                       "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
                      "snap/policies.yaml", 0, 1)]
    cidrs = [Cidr("10.244.0.0/16", "flannel net-conf.json", "pod"),
             Cidr("10.96.0.0/12", "kubeadm-config serviceSubnet", "service"),
             Cidr("172.18.0.0/16", "node addresses", "node")]
    return Inventory(source="hand-built", objects=list(pol), nodes=nodes,
                     namespaces=[Namespace("prod", {}), Namespace("kube-system", {})],
                     pods=[], service_accounts=[], services=[], pdbs=[], cni=cni, cidrs=cidrs,
                     service_cidr="10.96.0.0/12", cluster_name="test", policy_objects=pol,
                     digest="d" * 64)


def test_fixture_plan_cidr_is_clear_of_every_cidr_in_use():
    inv = make_inventory()
    plan = make_plan(inv, Options())
    new = ipaddress.ip_network(plan.cilium_pod_cidr)
    for c in inv.cidrs:
        assert not new.overlaps(ipaddress.ip_network(c.cidr)), c
    assert plan.tunnel.port not in (8472, 4789) or plan.tunnel.protocol == "geneve"
