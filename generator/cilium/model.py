"""Cilium policy types (after cilium pkg/policy/api), one type per concept.

Each type has `validate(version)` enforcing what the agent (not only the CRD schema) rejects,
and `to_dict()` building the Kubernetes form in the key order of the Go structs.
Supported Cilium versions: 1.16 to 1.19.
"""
from __future__ import annotations

from dataclasses import dataclass, field

VERSIONS = ("1.16", "1.17", "1.18", "1.19")
MAX_PORTS = 40          # maxPorts: ports per toPorts entry (checked here per rule item: stricter)
MAX_ICMP_FIELDS = 40    # api.MaxICMPFields
PROTOCOLS = ("TCP", "UDP", "SCTP", "ANY")
ENTITIES = ("all", "cluster", "health", "host", "ingress", "init", "kube-apiserver",
            "remote-node", "unmanaged", "world", "world-ipv4", "world-ipv6")


class PolicyModelError(ValueError):
    """An object the Cilium agent (or API server) would reject: a translator bug if raised."""


def version_tuple(version: str) -> tuple[int, int]:
    try:
        major, minor = (int(x) for x in str(version).split(".")[:2])
    except ValueError:
        raise PolicyModelError(f"bad Cilium version {version!r}") from None
    if f"{major}.{minor}" not in VERSIONS:
        raise PolicyModelError(f"unsupported Cilium version {version} (supported: "
                               f"{', '.join(VERSIONS)})")
    return major, minor


def _need(version: str, minimum: str, what: str) -> None:
    if version_tuple(version) < version_tuple(minimum):
        raise PolicyModelError(f"{what} needs Cilium {minimum}+, target is {version}")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str                      # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()

    def validate(self, version: str) -> None:
        if self.operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise PolicyModelError(f"bad operator {self.operator}")
        if self.operator in ("In", "NotIn") and not self.values:
            raise PolicyModelError(f"{self.operator} on {self.key} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise PolicyModelError(f"{self.operator} on {self.key} takes no values")

    def to_dict(self) -> dict:
        d = {"key": self.key, "operator": self.operator}
        if self.values:
            d["values"] = list(self.values)
        return d


@dataclass(frozen=True)
class EndpointSelector:
    """A Kubernetes LabelSelector over Cilium identity labels. Empty selects everything."""
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def validate(self, version: str) -> None:
        for r in self.match_expressions:
            r.validate(version)

    def to_dict(self) -> dict:
        d: dict = {}
        if self.match_labels:
            d["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            d["matchExpressions"] = [r.to_dict() for r in self.match_expressions]
        return d


@dataclass(frozen=True)
class PortProtocol:
    port: str                          # number as text, or a named port
    end_port: int | None = None
    protocol: str | None = None        # None = ANY

    def validate(self, version: str) -> None:
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise PolicyModelError(f"protocol {self.protocol} not supported by Cilium")
        if self.end_port is not None:
            _need(version, "1.16", "endPort")
            if not self.port.isdigit() or not int(self.port) <= self.end_port <= 65535:
                raise PolicyModelError(f"bad port range {self.port}-{self.end_port}")
        if self.port.isdigit() and int(self.port) > 65535:
            raise PolicyModelError(f"bad port {self.port}")

    def to_dict(self) -> dict:
        d: dict = {"port": self.port}
        if self.end_port is not None:
            d["endPort"] = self.end_port
        if self.protocol is not None:
            d["protocol"] = self.protocol
        return d


@dataclass(frozen=True)
class HTTPRule:
    method: str | None = None          # regex
    path: str | None = None            # regex

    def to_dict(self) -> dict:
        d = {}
        if self.method:
            d["method"] = self.method
        if self.path:
            d["path"] = self.path
        return d


@dataclass(frozen=True)
class PortRule:
    ports: tuple[PortProtocol, ...] = ()
    http: tuple[HTTPRule, ...] = ()    # L7: only on TCP, never on deny rules

    def validate(self, version: str, *, deny: bool = False) -> None:
        for p in self.ports:
            p.validate(version)
        if self.http:
            if deny:
                raise PolicyModelError("L7 rules are not allowed on deny rules")
            if not self.ports or any(p.protocol != "TCP" for p in self.ports):
                raise PolicyModelError("L7 rules need every port to be protocol TCP")
            if any(p.port == "0" for p in self.ports):
                raise PolicyModelError("L7 rules cannot be used with port 0")

    def to_dict(self) -> dict:
        d: dict = {}
        if self.ports:
            d["ports"] = [p.to_dict() for p in self.ports]
        if self.http:
            d["rules"] = {"http": [h.to_dict() for h in self.http]}
        return d


@dataclass(frozen=True)
class ICMPField:
    type: int | str
    family: str = "IPv4"               # IPv4 | IPv6

    def validate(self, version: str) -> None:
        if self.family not in ("IPv4", "IPv6"):
            raise PolicyModelError(f"bad ICMP family {self.family}")
        if isinstance(self.type, int) and not 0 <= self.type <= 255:
            raise PolicyModelError(f"bad ICMP type {self.type}")

    def to_dict(self) -> dict:
        return {"family": self.family, "type": self.type}


@dataclass(frozen=True)
class ICMPRule:
    fields: tuple[ICMPField, ...]

    def to_dict(self) -> dict:
        return {"fields": [f.to_dict() for f in self.fields]}


@dataclass(frozen=True)
class CIDRRule:
    """One CIDR peer: exactly one of cidr / cidr_group_ref / cidr_group_selector."""
    cidr: str | None = None
    except_: tuple[str, ...] = ()
    cidr_group_ref: str | None = None
    cidr_group_selector: EndpointSelector | None = None

    def validate(self, version: str) -> None:
        given = [x for x in (self.cidr, self.cidr_group_ref, self.cidr_group_selector)
                 if x is not None]
        if len(given) != 1:
            raise PolicyModelError("a CIDR rule needs exactly one of cidr, cidrGroupRef, "
                                   "cidrGroupSelector")
        if self.cidr_group_selector is not None:
            _need(version, "1.17", "cidrGroupSelector")
        if self.except_ and self.cidr is None:
            raise PolicyModelError("except needs cidr")

    def to_dict(self) -> dict:
        if self.cidr is not None:
            d: dict = {"cidr": self.cidr}
            if self.except_:
                d["except"] = list(self.except_)
            return d
        if self.cidr_group_ref is not None:
            return {"cidrGroupRef": self.cidr_group_ref}
        return {"cidrGroupSelector": self.cidr_group_selector.to_dict()}


@dataclass(frozen=True)
class _PeerRule:
    """Shared body of ingress/egress (deny) rule items: one peer type per item."""
    endpoints: tuple[EndpointSelector, ...] = ()
    cidr_set: tuple[CIDRRule, ...] = ()
    entities: tuple[str, ...] = ()
    nodes: tuple[EndpointSelector, ...] = ()
    to_ports: tuple[PortRule, ...] = ()
    icmps: tuple[ICMPRule, ...] = ()

    prefix = ""          # "from" | "to"
    deny = False

    def peer_types(self) -> list[str]:
        return [n for n, v in (("Endpoints", self.endpoints), ("CIDRSet", self.cidr_set),
                               ("Entities", self.entities), ("Nodes", self.nodes)) if v]

    def validate(self, version: str) -> None:
        if len(self.peer_types()) > 1:
            raise PolicyModelError(f"one peer type per rule item, got {self.peer_types()}")
        if self.to_ports and self.icmps:
            raise PolicyModelError("icmps and toPorts cannot be in the same rule item")
        if sum(len(p.ports) for p in self.to_ports) > MAX_PORTS:
            raise PolicyModelError(f"more than {MAX_PORTS} ports in one rule item")
        if sum(len(i.fields) for i in self.icmps) > MAX_ICMP_FIELDS:
            raise PolicyModelError(f"more than {MAX_ICMP_FIELDS} ICMP fields in one rule item")
        if self.nodes:
            _need(version, "1.16", f"{self.prefix}Nodes")
        bad = [e for e in self.entities if e not in ENTITIES]
        if bad:
            raise PolicyModelError(f"unsupported entity {bad[0]}")
        for s in self.endpoints + self.nodes:
            s.validate(version)
        for c in self.cidr_set:
            c.validate(version)
        for p in self.to_ports:
            p.validate(version, deny=self.deny)
        for i in self.icmps:
            for f in i.fields:
                f.validate(version)

    def to_dict(self) -> dict:
        d: dict = {}
        p = self.prefix
        if self.endpoints:
            d[f"{p}Endpoints"] = [s.to_dict() for s in self.endpoints]
        if self.cidr_set:
            d[f"{p}CIDRSet"] = [c.to_dict() for c in self.cidr_set]
        if self.entities:
            d[f"{p}Entities"] = list(self.entities)
        if self.nodes:
            d[f"{p}Nodes"] = [s.to_dict() for s in self.nodes]
        if self.to_ports:
            d["toPorts"] = [r.to_dict() for r in self.to_ports]
        if self.icmps:
            d["icmps"] = [i.to_dict() for i in self.icmps]
        return d


@dataclass(frozen=True)
class IngressRule(_PeerRule):
    prefix = "from"


@dataclass(frozen=True)
class IngressDenyRule(_PeerRule):
    prefix = "from"
    deny = True


@dataclass(frozen=True)
class EgressRule(_PeerRule):
    prefix = "to"


@dataclass(frozen=True)
class EgressDenyRule(_PeerRule):
    prefix = "to"
    deny = True


# An empty rule item selects no peer: it only puts the direction into default deny
# (the idiom of Cilium's docs, "egress: [{}]").
DEFAULT_DENY_ONLY = "{}"


@dataclass(frozen=True)
class Rule:
    endpoint_selector: EndpointSelector | None = None
    node_selector: EndpointSelector | None = None
    ingress: tuple[IngressRule, ...] = ()
    ingress_deny: tuple[IngressDenyRule, ...] = ()
    egress: tuple[EgressRule, ...] = ()
    egress_deny: tuple[EgressDenyRule, ...] = ()
    enable_default_deny: tuple[tuple[str, bool], ...] = ()   # (("egress", False), ...)
    description: str | None = None

    def validate(self, version: str) -> None:
        if (self.endpoint_selector is None) == (self.node_selector is None):
            raise PolicyModelError("a rule needs exactly one of endpointSelector, nodeSelector")
        if self.enable_default_deny:
            _need(version, "1.16", "enableDefaultDeny")
        sel = self.endpoint_selector or self.node_selector
        sel.validate(version)
        for r in self.ingress + self.ingress_deny + self.egress + self.egress_deny:
            r.validate(version)
        if self.node_selector is not None:
            for r in self.ingress + self.egress:
                if any(p.http for p in r.to_ports):
                    raise PolicyModelError("host policies are L3/L4 only")

    def to_dict(self) -> dict:
        d: dict = {}
        if self.endpoint_selector is not None:
            d["endpointSelector"] = self.endpoint_selector.to_dict()
        else:
            d["nodeSelector"] = self.node_selector.to_dict()
        for key, items in (("ingress", self.ingress), ("ingressDeny", self.ingress_deny),
                           ("egress", self.egress), ("egressDeny", self.egress_deny)):
            if items:
                d[key] = [r.to_dict() for r in items]
        if self.enable_default_deny:
            d["enableDefaultDeny"] = dict(self.enable_default_deny)
        if self.description:
            d["description"] = self.description
        return d


def _metadata(name: str, namespace: str | None, labels: dict, annotations: dict) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = dict(sorted(labels.items()))
    if annotations:
        m["annotations"] = dict(sorted(annotations.items()))
    return m


def _check_name(name: str) -> None:
    import re
    if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
        raise PolicyModelError(f"name {name!r} is not a DNS subdomain")


@dataclass(frozen=True)
class CiliumNetworkPolicy:
    name: str
    specs: tuple[Rule, ...]
    namespace: str | None = None
    labels: dict = field(default_factory=dict, hash=False)
    annotations: dict = field(default_factory=dict, hash=False)

    kind = "CiliumNetworkPolicy"

    def validate(self, version: str) -> None:
        _check_name(self.name)
        if (self.kind == "CiliumNetworkPolicy") != bool(self.namespace):
            raise PolicyModelError(f"{self.kind} {self.name}: namespace is wrong for the kind")
        if not self.specs:
            raise PolicyModelError("a policy needs at least one rule")
        for s in self.specs:
            s.validate(version)
            if s.node_selector is not None and self.kind == "CiliumNetworkPolicy":
                raise PolicyModelError("nodeSelector is only valid in a clusterwide policy")

    def _spec(self) -> dict:
        if len(self.specs) == 1:
            return {"spec": self.specs[0].to_dict()}
        return {"specs": [s.to_dict() for s in self.specs]}

    def to_dict(self) -> dict:
        return {"apiVersion": "cilium.io/v2", "kind": self.kind,
                "metadata": _metadata(self.name, self.namespace, self.labels, self.annotations),
                **self._spec()}


@dataclass(frozen=True)
class CiliumClusterwideNetworkPolicy(CiliumNetworkPolicy):
    kind = "CiliumClusterwideNetworkPolicy"


@dataclass(frozen=True)
class CiliumCIDRGroup:
    name: str
    external_cidrs: tuple[str, ...]
    version: str = "1.19"
    labels: dict = field(default_factory=dict, hash=False)
    annotations: dict = field(default_factory=dict, hash=False)

    kind = "CiliumCIDRGroup"

    def validate(self, version: str) -> None:
        _check_name(self.name)
        version_tuple(version)

    def to_dict(self) -> dict:
        # served as cilium.io/v2 from 1.18; v2alpha1 before
        api = "cilium.io/v2" if version_tuple(self.version) >= (1, 18) else "cilium.io/v2alpha1"
        return {"apiVersion": api, "kind": self.kind,
                "metadata": _metadata(self.name, None, self.labels, self.annotations),
                "spec": {"externalCIDRs": list(self.external_cidrs)}}
