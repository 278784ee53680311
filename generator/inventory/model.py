"""What the tool knows about a cluster: the Inventory.

Built from a snapshot directory (generator/inventory/snapshot.py) or a live cluster
(generator/live/). Everything downstream (plan, translate, verify, render) reads only this.
Core Nodes, Pods, Services, Namespaces and ServiceAccounts are held only in their typed form
(slotted: a 50,000-pod cluster has hundreds of thousands of them); every other object, and a
Pod that maps host ports, is kept raw in Inventory.objects, with its origin.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..yamlio import Loaded


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: dict[str, str]
    internal_ip: str | None
    addresses: tuple[str, ...]          # every address in status.addresses (IPs only)
    pod_cidrs: tuple[str, ...]          # spec.podCIDRs (or podCIDR)
    control_plane: bool                 # node-role.kubernetes.io/control-plane or /master label
    zone: str | None                    # topology.kubernetes.io/zone (or failure-domain beta)
    ready: bool
    taints: tuple[dict, ...] = ()


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class ContainerPort:
    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    node: str | None
    ips: tuple[str, ...]
    host_network: bool
    service_account: str
    owner_kind: str | None              # DaemonSet, ReplicaSet, StatefulSet, Job, Node (mirror)...
    owner_name: str | None
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    name: str
    namespace: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str
    selector: dict[str, str]
    cluster_ips: tuple[str, ...]
    ports: tuple[dict, ...]             # raw spec.ports entries


@dataclass(frozen=True, slots=True)
class Cidr:
    cidr: str                           # normalised network, e.g. "10.244.0.0/16"
    origin: str                         # e.g. "node worker-1 spec.podCIDRs", "IPPool default-ipv4"
    role: str                           # "pod" | "service" | "node" | "ippool" | "flannel"


@dataclass
class SourceCNI:
    """The CNI the cluster runs now."""
    kind: str                           # "flannel" | "canal" | "calico" | "calico-operator"
    encapsulation: str                  # "vxlan" | "ipip" | "ipip-crosssubnet" | "vxlan-crosssubnet" | "host-gw" | "none"
    tunnel_port: int | None             # UDP port of its VXLAN device, None for IPIP/none
    namespace: str                      # where its DaemonSet runs (kube-system, calico-system, kube-flannel)
    daemonsets: list[str]               # "namespace/name" of its DaemonSets
    deployments: list[str]              # "namespace/name" of its controllers/operator
    evidence: list[str]                 # what detection saw, for messages and the PR text
    warnings: list[str] = field(default_factory=list)
    enforces_policy: bool = True        # False for plain Flannel


@dataclass
class Inventory:
    source: str                         # snapshot path or "context <name>"
    objects: list[Loaded]               # raw objects in a stable order: all but the typed
                                        # core kinds (snapshot.TYPED_ONLY; Pods with
                                        # hostPorts are kept)
    nodes: list[Node]
    namespaces: list[Namespace]
    pods: list[Pod]
    service_accounts: list[ServiceAccount]
    services: list[Service]
    pdbs: list[dict]                    # raw PodDisruptionBudgets
    cni: SourceCNI
    cidrs: list[Cidr]                   # every CIDR in use (pods, services, nodes, pools)
    service_cidr: str | None
    cluster_name: str
    policy_objects: list[Loaded]        # Calico + Kubernetes policy-related objects, raw
    digest: str                         # sha256 over the canonical content: drives commit dates

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)
