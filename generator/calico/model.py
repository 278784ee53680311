"""Calico's policy objects, normalised (one shape whatever the source apiVersion).

generator/calico/reader.py turns raw projectcalico.org/v3, crd.projectcalico.org/v1 and
networking.k8s.io/v1 objects into these; the translator (generator/translate/) and the Felix
evaluator (generator/calico/felix.py) read only these.

Conventions (as Felix sees them after the API server / kube-controllers):
- actions are "Allow" | "Deny" | "Pass" | "Log"; protocols are "TCP" | "UDP" | "ICMP" | "ICMPv6"
  | "SCTP" | "UDPLite" | an int; None means any.
- selectors are kept as source text here; parse them with generator.calico.selector.parse().
  An empty/absent subject selector means all().
- a Kubernetes NetworkPolicy is converted to a Policy in tier "default" at order 1000, the way
  Calico's kube-controllers convert it (name "knp.default.<name>"), with kind
  "KubernetesNetworkPolicy" kept in `source` so reports name the real object.
"""
from __future__ import annotations

from dataclasses import dataclass, field

INF_ORDER = float("inf")  # a missing order sorts last


@dataclass(frozen=True)
class SourceRef:
    """Where a normalised object came from (for reports, annotations and errors)."""
    api_version: str
    kind: str                 # GlobalNetworkPolicy, NetworkPolicy, KubernetesNetworkPolicy...
    namespace: str | None
    name: str                 # name as the user knows it (tier prefix of v1 storage names removed)
    file: str | None = None
    line: int | None = None

    def describe(self) -> str:
        n = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {n}"


@dataclass(frozen=True)
class PortRange:
    """A destination/source port: a number range, or a named port (first == last == 0)."""
    first: int = 0
    last: int = 0
    name: str | None = None

    @property
    def is_named(self) -> bool:
        return self.name is not None


@dataclass(frozen=True)
class ICMPMatch:
    type: int | None = None
    code: int | None = None


@dataclass(frozen=True)
class ServiceAccountMatch:
    names: tuple[str, ...] = ()
    selector: str | None = None        # selector over ServiceAccount labels


@dataclass(frozen=True)
class ServiceMatch:
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class HTTPMatch:
    methods: tuple[str, ...] = ()
    paths: tuple[tuple[str, str], ...] = ()   # ("exact"|"prefix", value)


@dataclass(frozen=True)
class EntityRule:
    """source or destination of a rule. Every field left empty matches anything."""
    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    selector: str | None = None
    not_selector: str | None = None
    namespace_selector: str | None = None
    ports: tuple[PortRange, ...] = ()
    not_ports: tuple[PortRange, ...] = ()
    service_accounts: ServiceAccountMatch | None = None
    services: ServiceMatch | None = None
    domains: tuple[str, ...] = ()      # Calico Enterprise/Cloud `domains` (egress destination)

    @property
    def is_empty(self) -> bool:
        return self == EntityRule()


@dataclass(frozen=True)
class Rule:
    action: str                          # Allow | Deny | Pass | Log
    index: int                           # position in the policy's ingress/egress list
    protocol: str | int | None = None
    not_protocol: str | int | None = None
    icmp: ICMPMatch | None = None
    not_icmp: ICMPMatch | None = None
    ip_version: int | None = None
    source: EntityRule = EntityRule()
    destination: EntityRule = EntityRule()
    http: HTTPMatch | None = None


@dataclass(frozen=True)
class Tier:
    name: str
    order: float = INF_ORDER
    default_action: str = "Deny"         # Deny | Pass
    source: SourceRef | None = None


@dataclass(frozen=True)
class Policy:
    source: SourceRef
    name: str                            # Calico name without tier prefix
    namespace: str | None                # None for global policies
    tier: str = "default"
    order: float = INF_ORDER
    selector: str = "all()"
    namespace_selector: str | None = None      # GlobalNetworkPolicy only
    service_account_selector: str | None = None
    types: tuple[str, ...] = ("Ingress",)      # subset of ("Ingress", "Egress"), resolved
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False

    @property
    def is_global(self) -> bool:
        return self.namespace is None

    def sort_key(self) -> tuple:
        """Felix order inside a tier: order (missing last), then name."""
        return (self.order, self.name)


@dataclass(frozen=True)
class NetworkSet:
    source: SourceRef
    name: str
    namespace: str | None                # None for GlobalNetworkSet
    labels: dict = field(default_factory=dict, hash=False, compare=True)
    nets: tuple[str, ...] = ()
    allowed_egress_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostEndpoint:
    source: SourceRef
    name: str
    node: str | None
    interface_name: str | None           # "*" = all interfaces
    expected_ips: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict, hash=False, compare=True)
    profiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """An object read but not translated (staged policies, Helm values, unknown kinds)."""
    source: SourceRef
    reason: str


@dataclass
class PolicySet:
    """Everything policy-related read from the sources, ready for translation/evaluation."""
    tiers: list[Tier] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)     # Calico + converted Kubernetes
    network_sets: list[NetworkSet] = field(default_factory=list)
    host_endpoints: list[HostEndpoint] = field(default_factory=list)
    k8s_policies: list[dict] = field(default_factory=list)   # raw Kubernetes NetworkPolicies
    skipped: list[Skipped] = field(default_factory=list)

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        # Tier "default" exists implicitly, at order 1,000,000 in Calico >= 3.x's defaults
        return Tier(name=name, order=1_000_000 if name == "default" else INF_ORDER)
