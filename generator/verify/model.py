"""Flows and verdicts: the common language of the two policy evaluators.

The Felix evaluator (generator/calico/felix.py) and the Cilium evaluator
(generator/cilium/evaluator.py) each decide a Flow from their own policies, independently of the
translator. generator/verify/ builds the universe of endpoints and compares the two.

Endpoints carry raw labels only; each evaluator adds the labels its dataplane derives itself
(Calico: projectcalico.org/namespace, projectcalico.org/serviceaccount, pcns.* in namespace
selectors; Cilium: k8s:io.kubernetes.pod.namespace, io.cilium.k8s.namespace.labels.*,
io.cilium.k8s.policy.serviceaccount).
"""
from __future__ import annotations

from dataclasses import dataclass, field


def frozen_labels(d: dict | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d or {}).items()))


@dataclass(frozen=True)
class NamedPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Endpoint:
    kind: str                                   # "pod" | "host" | "external"
    name: str                                   # display name, e.g. "pod prod/web-1", "host node-1", "203.0.113.7"
    ip: str | None = None
    namespace: str | None = None                # pods only
    labels: tuple[tuple[str, str], ...] = ()    # pod labels, or host endpoint labels
    namespace_labels: tuple[tuple[str, str], ...] = ()
    service_account: str | None = None
    service_account_labels: tuple[tuple[str, str], ...] = ()
    node: str | None = None                     # node the pod runs on / the host itself
    node_labels: tuple[tuple[str, str], ...] = ()
    named_ports: tuple[NamedPort, ...] = ()
    weight: int = 1                             # how many real pods this identity stands for

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def namespace_label_dict(self) -> dict[str, str]:
        return dict(self.namespace_labels)


@dataclass(frozen=True)
class Flow:
    src: Endpoint
    dst: Endpoint
    protocol: str = "TCP"                       # TCP | UDP | SCTP | ICMP | ICMPv6 | <number as str>
    port: int | None = None                     # destination port (None for ICMP)
    icmp_type: int | None = None
    icmp_code: int | None = None
    src_port: int | None = None

    def describe(self) -> str:
        what = (f"{self.protocol}/{self.port}" if self.port is not None
                else f"{self.protocol} type {self.icmp_type}" if self.icmp_type is not None
                else self.protocol)
        return f"{self.src.name} -> {self.dst.name} {what}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    decided_by: str          # e.g. "GlobalNetworkPolicy default.deny-db ingress[0] Deny",
                             # "end of tier security (ingress at pod prod/db-0)", "profile: allow"
    direction: str | None = None   # "egress" (at the source) or "ingress" (at the destination)
    notes: tuple[str, ...] = field(default=())   # e.g. "Log rule matched", "approximated"
