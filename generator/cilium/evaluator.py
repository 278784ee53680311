"""Cilium's policy semantics, written from Cilium's rules (not from the translator).

CiliumModel(objects).verdict(flow) decides a Flow the way Cilium's L3/L4 policy engine would
with policyEnforcementMode "default" and the default identity label filter:

- egress is judged at the source, ingress at the destination, when that side is a Cilium
  endpoint (a pod, or a host endpoint under a nodeSelector host policy); both must allow.
- per endpoint and direction: default deny iff a selecting policy has rules for the direction
  (ingress/ingressDeny, egress/egressDeny; Kubernetes NetworkPolicy: policyTypes) and does not
  set enableDefaultDeny.<direction>: false. Any matching deny wins, then any allow, then the
  default. There is no order, no tier, no Pass.
- a CNP's endpointSelector is ANDed with its namespace; fromEndpoints/toEndpoints without a
  namespace key (and, in a CNP, without a namespace-label key) are limited to the policy's
  namespace in a CNP, and to "any pod" (namespace label exists) in a CCNP (Cilium's
  getEndpointSelector in pkg/k8s/apis/cilium.io/utils).
- a CCNP with nodeSelector selects host endpoints only; other policies never select hosts.
- CIDR peers (fromCIDR, fromCIDRSet, cidrGroupRef, cidrGroupSelector) match only addresses
  outside the cluster (world): Cilium gives managed pods and nodes their own identities.
- a rule with toPorts/icmps and no L3 peer applies to every peer; an empty rule matches nothing.

Not modelled (said in Verdict.notes where it matters): L7 rules (an L4 match allows), toFQDNs,
toServices and toGroups (match nothing here), the kube-apiserver/health/init/ingress/unmanaged
entities (no such endpoints in a universe), policyEnforcementMode other than "default",
policy-cidr-match-mode "nodes", and fromRequires/toRequires (deprecated).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ..verify.model import Endpoint, Flow, Verdict

NS_LABEL = "io.kubernetes.pod.namespace"
NS_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
SA_LABEL = "io.cilium.k8s.policy.serviceaccount"
CLUSTER_LABEL = "io.cilium.k8s.policy.cluster"
SOURCES = ("k8s", "reserved", "any", "unspec", "container", "cidr", "fqdn", "cilium-generated")

# Cilium's default identity label filter (pkg/labelsfilter): keys matched from the start, the
# longest matching pattern decides; includes win over the excludes they extend.
_INCLUDE = (re.escape(NS_LABEL), re.escape("io.cilium.k8s.namespace.labels"),
            re.escape("app.kubernetes.io"))
_EXCLUDE = (r"io\.kubernetes", r"kubernetes\.io", r"statefulset\.kubernetes\.io/pod-name",
            r"apps\.kubernetes\.io/pod-index", r"batch\.kubernetes\.io/job-completion-index",
            r"batch\.kubernetes\.io/controller-uid", r".*beta\.kubernetes\.io", r"k8s\.io",
            r"pod-template-generation", r"pod-template-hash", r"controller-revision-hash",
            r"annotation.*", r"etcd_node", r"controller-uid")
_INCLUDE_RE = [re.compile(p) for p in _INCLUDE]
_EXCLUDE_RE = [re.compile(p) for p in _EXCLUDE]


def label_visible(key: str) -> bool:
    """True if Cilium keeps this pod label in the identity (so a selector can see it)."""
    best_in = max((m.end() for r in _INCLUDE_RE if (m := r.match(key))), default=-1)
    best_ex = max((m.end() for r in _EXCLUDE_RE if (m := r.match(key))), default=-1)
    return best_ex < 0 or best_in >= best_ex


ICMP4_NAMES = {"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8,
               "EchoRequest": 8, "RouterAdvertisement": 9, "RouterSelection": 10,
               "TimeExceeded": 11, "ParameterProblem": 12, "Timestamp": 13,
               "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42,
               "ExtendedEchoReply": 43}
ICMP6_NAMES = {"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3,
               "ParameterProblem": 4, "EchoRequest": 128, "EchoReply": 129,
               "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
               "MulticastListenerDone": 132, "RouterSolicitation": 133,
               "RouterAdvertisement": 134, "NeighborSolicitation": 135,
               "NeighborAdvertisement": 136, "RedirectMessage": 137}

CLUSTER_ENTITIES = {"cluster", "host", "remote-node", "init", "health", "unmanaged",
                    "kube-apiserver", "ingress"}


# --------------------------------------------------------------------------- identities

def _split_key(key: str) -> tuple[str, str]:
    """'k8s:app' -> ('k8s', 'app'); 'app' -> ('any', 'app')."""
    head, sep, rest = key.partition(":")
    if sep and head in SOURCES:
        return head, rest
    return "any", key


def identity_labels(ep: Endpoint, local_node: str | None = None) -> dict[tuple[str, str], str]:
    """The labels Cilium gives an endpoint's identity, as {(source, key): value}.

    local_node: node of the endpoint enforcing policy, to tell 'host' from 'remote-node'."""
    out: dict[tuple[str, str], str] = {}
    if ep.kind == "pod":
        for k, v in ep.labels:
            if label_visible(k):
                out[("k8s", k)] = v
        if ep.namespace is not None:
            out[("k8s", NS_LABEL)] = ep.namespace
        for k, v in ep.namespace_labels:
            out[("k8s", NS_LABELS_PREFIX + k)] = v
        if ep.service_account:
            out[("k8s", SA_LABEL)] = ep.service_account
        out[("k8s", CLUSTER_LABEL)] = "default"     # cluster.name of a single cluster
    elif ep.kind == "host":
        local = local_node is not None and ep.node == local_node
        out[("reserved", "host" if local else "remote-node")] = ""
        for k, v in ep.node_labels or ep.labels:
            out[("k8s", k)] = v
    else:
        out[("reserved", "world")] = ""
    return out


def _lookup(labels: dict, source: str, key: str) -> list[str]:
    if source == "any":
        return [v for (s, k), v in labels.items() if k == key]
    v = labels.get((source, key))
    return [] if v is None else [v]


@dataclass(frozen=True)
class Selector:
    """A Cilium EndpointSelector: matchLabels + matchExpressions with Kubernetes semantics."""
    terms: tuple[tuple[str, str, str, tuple[str, ...]], ...]   # (source, key, op, values)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Selector":
        d = d or {}
        terms = []
        for k, v in sorted((d.get("matchLabels") or {}).items()):
            s, key = _split_key(str(k))
            terms.append((s, key, "In", ("" if v is None else str(v),)))
        for e in d.get("matchExpressions") or []:
            s, key = _split_key(str(e.get("key", "")))
            terms.append((s, key, str(e.get("operator", "")),
                          tuple(str(x) for x in e.get("values") or ())))
        return cls(tuple(terms))

    def has_key(self, source: str, key: str) -> bool:
        return any(t[0] == source and t[1] == key for t in self.terms)

    def has_key_prefix(self, source: str, prefix: str) -> bool:
        return any(t[0] == source and t[1].startswith(prefix) for t in self.terms)

    def with_term(self, source: str, key: str, op: str, values: tuple = ()) -> "Selector":
        return Selector(self.terms + ((source, key, op, values),))

    def matches(self, labels: dict) -> bool:
        for source, key, op, values in self.terms:
            found = _lookup(labels, source, key)
            if op == "In":
                if not any(v in values for v in found):
                    return False
            elif op == "NotIn":
                if any(v in values for v in found):
                    return False
            elif op == "Exists":
                if not found:
                    return False
            elif op == "DoesNotExist":
                if found:
                    return False
            else:
                return False   # unknown operator: Cilium rejects the policy; match nothing
        return True


def _pinned(sel: Selector) -> tuple[str, tuple[str, ...]] | None:
    """(key, values): a label a pod must have, with one of those values, to match sel
    (None: no such term). An `In` term pins its key; the namespace label is preferred."""
    terms = [(key, values) for source, key, op, values in sel.terms
             if source in ("k8s", "any") and op == "In"]
    for key, values in terms:
        if key == NS_LABEL:
            return key, values
    return terms[0] if terms else None


def peer_selector(d: dict | None, namespace: str | None) -> Selector:
    """fromEndpoints/toEndpoints entry as Cilium scopes it (getEndpointSelector)."""
    sel = Selector.from_dict(d)
    if sel.has_key_prefix("reserved", ""):
        return sel
    if sel.has_key("k8s", NS_LABEL) or sel.has_key("any", NS_LABEL):
        return sel
    if namespace is None:
        # CCNP: "{}" means every pod of the cluster (anything with a namespace label)
        return sel.with_term("k8s", NS_LABEL, "Exists")
    if sel.has_key_prefix("k8s", NS_LABELS_PREFIX) or sel.has_key_prefix("any", NS_LABELS_PREFIX):
        return sel
    return sel.with_term("k8s", NS_LABEL, "In", (namespace,))


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class PortSpec:
    protocol: str               # TCP | UDP | SCTP | ANY
    first: int                  # 0 = every port
    last: int
    name: str | None = None     # named port


@dataclass
class Rule:
    """One ingress/egress(/Deny) item, normalised from CNP/CCNP or Kubernetes NetworkPolicy."""
    where: str                          # "CiliumNetworkPolicy ns/name ingress[0]"
    deny: bool
    direction: str                      # ingress | egress
    endpoints: list[Selector] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    cidrs: list[tuple[list, list]] = field(default_factory=list)   # (nets, except nets)
    nodes: list[Selector] = field(default_factory=list)
    has_peer: bool = False              # any L3 field given (even one that matches nothing)
    ports: list[PortSpec] | None = None  # None: no toPorts
    icmps: list[tuple[str, int]] | None = None   # (family, type)
    l7: bool = False
    notes: tuple[str, ...] = ()


@dataclass
class Policy:
    where: str                          # "CiliumNetworkPolicy ns/name"
    namespace: str | None
    subject: Selector | None            # endpointSelector (None for host policies)
    node_subject: Selector | None       # nodeSelector
    rules: list[Rule]
    default_deny: dict[str, bool]       # direction -> puts the endpoint in default deny


def _net(text: str, where: str):
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        return None


def _ports(to_ports: list | None, k8s: bool = False) -> list[PortSpec] | None:
    if to_ports is None:
        return None
    out: list[PortSpec] = []
    for pr in to_ports:
        plist = pr.get("ports") if not k8s else [pr]
        if not plist:
            out.append(PortSpec("ANY", 0, 65535))
            continue
        for p in plist:
            proto = str(p.get("protocol") or ("TCP" if k8s else "ANY")).upper()
            port = p.get("port")
            end = p.get("endPort")
            if port is None or str(port) in ("", "0"):
                out.append(PortSpec(proto, 0, 65535))
            elif str(port).isdigit():
                first = int(port)
                last = int(end) if end not in (None, 0, "0") and int(end) >= first else first
                out.append(PortSpec(proto, first, last))
            else:
                out.append(PortSpec(proto, 0, 0, name=str(port)))
    return out


def _icmps(items: list | None) -> list[tuple[str, int]] | None:
    if items is None:
        return None
    out = []
    for it in items:
        for f in it.get("fields") or []:
            fam = str(f.get("family") or "IPv4")
            t = f.get("type")
            names = ICMP6_NAMES if fam == "IPv6" else ICMP4_NAMES
            if isinstance(t, str) and not t.isdigit():
                if t not in names:
                    continue
                t = names[t]
            out.append((fam, int(t)))
    return out


def _cidr_groups(objects: list[dict]) -> tuple[dict[str, list], list[tuple[dict, list]]]:
    by_name: dict[str, list] = {}
    with_labels: list[tuple[dict, list]] = []
    for o in objects:
        if o.get("kind") != "CiliumCIDRGroup":
            continue
        nets = [n for n in (_net(c, "") for c in (o.get("spec") or {}).get("externalCIDRs") or [])
                if n is not None]
        name = (o.get("metadata") or {}).get("name", "")
        by_name[name] = nets
        with_labels.append(((o.get("metadata") or {}).get("labels") or {}, nets))
    return by_name, with_labels


def _cilium_rule(r: dict, *, where: str, deny: bool, direction: str, namespace: str | None,
                 groups: tuple) -> Rule:
    fr = "from" if direction == "ingress" else "to"
    rule = Rule(where=where, deny=deny, direction=direction)
    eps = r.get(f"{fr}Endpoints")
    if eps is not None:
        rule.has_peer = True
        rule.endpoints = [peer_selector(e, namespace) for e in eps]
    req = r.get(f"{fr}Requires")
    if req:
        rule.notes += ("fromRequires/toRequires ignored (deprecated)",)
    ents = r.get(f"{fr}Entities")
    if ents is not None:
        rule.has_peer = True
        rule.entities = [str(e) for e in ents]
    nodes = r.get(f"{fr}Nodes")
    if nodes is not None:
        rule.has_peer = True
        rule.nodes = [Selector.from_dict(n) for n in nodes]
    cidr = r.get(f"{fr}CIDR")
    if cidr is not None:
        rule.has_peer = True
        rule.cidrs.append(([n for n in (_net(c, where) for c in cidr) if n is not None], []))
    cset = r.get(f"{fr}CIDRSet")
    if cset is not None:
        rule.has_peer = True
        by_name, with_labels = groups
        for c in cset:
            exc = [n for n in (_net(x, where) for x in c.get("except") or []) if n is not None]
            if c.get("cidr"):
                n = _net(c["cidr"], where)
                rule.cidrs.append(([n] if n else [], exc))
            elif c.get("cidrGroupRef"):
                rule.cidrs.append((list(by_name.get(str(c["cidrGroupRef"]), [])), exc))
            elif c.get("cidrGroupSelector") is not None:
                gsel = Selector.from_dict(c["cidrGroupSelector"])
                nets = []
                for labels, gnets in with_labels:
                    if gsel.matches({("k8s", k): str(v) for k, v in labels.items()}):
                        nets.extend(gnets)
                rule.cidrs.append((nets, exc))
    if r.get(f"{fr}Groups") or r.get("toServices") or r.get("toFQDNs"):
        rule.has_peer = True
        rule.notes += ("toServices/toFQDNs/groups not evaluated (match nothing here)",)
    rule.ports = _ports(r.get("toPorts"))
    rule.icmps = _icmps(r.get("icmps"))
    rule.l7 = any((pr.get("rules") or {}) for pr in r.get("toPorts") or [])
    return rule


def _cilium_policy(o: dict, spec: dict, idx: int | None, groups: tuple) -> Policy:
    meta = o.get("metadata") or {}
    kind = o.get("kind")
    ns = meta.get("namespace") if kind == "CiliumNetworkPolicy" else None
    name = f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
    where = f"{kind} {name}" + (f" specs[{idx}]" if idx is not None else "")
    subject = node_subject = None
    if spec.get("nodeSelector") is not None and kind == "CiliumClusterwideNetworkPolicy":
        node_subject = Selector.from_dict(spec["nodeSelector"])
    else:
        subject = Selector.from_dict(spec.get("endpointSelector"))
        if ns is not None:
            subject = subject.with_term("k8s", NS_LABEL, "In", (ns,))
    rules: list[Rule] = []
    for section, deny, direction in (("ingress", False, "ingress"), ("ingressDeny", True, "ingress"),
                                     ("egress", False, "egress"), ("egressDeny", True, "egress")):
        for i, r in enumerate(spec.get(section) or []):
            rules.append(_cilium_rule(r or {}, where=f"{where} {section}[{i}]", deny=deny,
                                      direction=direction, namespace=ns, groups=groups))
    edd = spec.get("enableDefaultDeny") or {}
    dd = {}
    for direction in ("ingress", "egress"):
        has = bool(spec.get(direction)) or bool(spec.get(direction + "Deny"))
        dd[direction] = has and edd.get(direction) is not False
    return Policy(where, ns, subject, node_subject, rules, dd)


def _k8s_peer_rule(peers: list | None, ports: list | None, *, where: str, direction: str,
                   namespace: str) -> Rule:
    rule = Rule(where=where, deny=False, direction=direction)
    rule.ports = _ports(ports, k8s=True) if ports else None
    if not peers:
        # no from/to: every peer (Cilium uses the wildcard selector plus world)
        rule.entities = ["all"]
        rule.has_peer = True
        return rule
    rule.has_peer = True
    for p in peers:
        if p.get("ipBlock"):
            b = p["ipBlock"]
            n = _net(b.get("cidr", ""), where)
            exc = [x for x in (_net(e, where) for e in b.get("except") or []) if x is not None]
            rule.cidrs.append(([n] if n else [], exc))
            continue
        pod = Selector.from_dict(p.get("podSelector"))
        if "namespaceSelector" in p and p.get("namespaceSelector") is not None:
            nsel = Selector.from_dict(p["namespaceSelector"])
            terms = tuple(("k8s", NS_LABELS_PREFIX + k, op, v) for (_s, k, op, v) in nsel.terms)
            sel = Selector(pod.terms + terms).with_term("k8s", NS_LABEL, "Exists")
        else:
            sel = pod.with_term("k8s", NS_LABEL, "In", (namespace,))
        rule.endpoints.append(sel)
    return rule


def _k8s_policy(o: dict) -> Policy:
    meta = o.get("metadata") or {}
    spec = o.get("spec") or {}
    ns = meta.get("namespace") or "default"
    where = f"NetworkPolicy {ns}/{meta.get('name')}"
    subject = Selector.from_dict(spec.get("podSelector")).with_term("k8s", NS_LABEL, "In", (ns,))
    types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
    rules = []
    for i, r in enumerate(spec.get("ingress") or []):
        r = r or {}
        rules.append(_k8s_peer_rule(r.get("from"), r.get("ports"), where=f"{where} ingress[{i}]",
                                    direction="ingress", namespace=ns))
    for i, r in enumerate(spec.get("egress") or []):
        r = r or {}
        rules.append(_k8s_peer_rule(r.get("to"), r.get("ports"), where=f"{where} egress[{i}]",
                                    direction="egress", namespace=ns))
    dd = {"ingress": "Ingress" in types, "egress": "Egress" in types}
    return Policy(where, ns, subject, None, rules, dd)


def load_policies(objects: list[dict]) -> list[Policy]:
    groups = _cidr_groups(objects)
    out: list[Policy] = []
    for o in objects:
        kind = o.get("kind")
        if kind in ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"):
            if o.get("spec"):
                out.append(_cilium_policy(o, o["spec"], None, groups))
            for i, s in enumerate(o.get("specs") or []):
                out.append(_cilium_policy(o, s, i, groups))
        elif kind == "NetworkPolicy" and str(o.get("apiVersion", "")).startswith("networking.k8s.io"):
            out.append(_k8s_policy(o))
    return out


# --------------------------------------------------------------------------- evaluation

def _in_cidrs(ip: str | None, cidrs: list[tuple[list, list]]) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for nets, exc in cidrs:
        if any(addr.version == n.version and addr in n for n in nets) and not any(
                addr.version == e.version and addr in e for e in exc):
            return True
    return False


def _entity_matches(entity: str, peer: Endpoint, local_node: str | None) -> bool:
    if entity == "all":
        return True
    if peer.kind == "external":
        return entity in ("world", "world-ipv4", "world-ipv6")
    if entity == "cluster":
        return True
    if peer.kind == "host":
        if entity == "host":
            return local_node is not None and peer.node == local_node
        if entity == "remote-node":
            return not (local_node is not None and peer.node == local_node)
    return False


def _identity_key(ep: Endpoint) -> tuple:
    """What Cilium's identity of an endpoint depends on (pods with equal keys share verdicts)."""
    if ep.kind == "pod":
        return ("pod", ep.namespace, ep.labels, ep.namespace_labels, ep.service_account)
    if ep.kind == "host":
        return ("host", ep.node, ep.node_labels or ep.labels)
    return ("external", ep.ip)


class CiliumModel:
    """Cilium's verdicts over a fixed set of policy objects; caches work per identity."""

    def __init__(self, objects: list[dict]):
        self.policies = load_policies(objects)
        self._ids: dict[int, tuple[Endpoint, int]] = {}    # id(ep) -> (ep, identity number)
        self._numbers: dict[tuple, int] = {}
        self._subjects: dict = {}
        self._peers: dict = {}
        # side_vector's state (see there), valid for one list of L4 classes
        self._vec_l4s = None
        self._plans: dict = {}          # (identity, direction) -> merged rule groups
        self._masks: dict = {}          # (L4 part, named ports) -> bitmask over the L4 classes
        self._sig_of: dict = {}         # id(rule) -> (rule, peer signature number)
        self._sig_numbers: dict = {}
        self._sig_peers: dict = {}      # (signature, peer identity, local node) -> matches
        # policies that can select a pod, filed under one label their subject pins (the
        # namespace when pinned, as a CNP's subject always is): a pod is tested only against
        # the policies filed under its own labels and the open ones
        self._pinned: dict[tuple[str, str], list[int]] = {}
        self._open: list[int] = []
        for i, p in enumerate(self.policies):
            if p.subject is None:
                continue
            pinned = _pinned(p.subject)
            if pinned is None:
                self._open.append(i)
                continue
            key, values = pinned
            for v in values:
                self._pinned.setdefault((key, v), []).append(i)

    def _number(self, ep: Endpoint) -> int:
        """A small int per identity; the endpoint is kept so its id() cannot be reused."""
        got = self._ids.get(id(ep))
        if got is not None and got[0] is ep:
            return got[1]
        key = _identity_key(ep)
        n = self._numbers.setdefault(key, len(self._numbers))
        self._ids[id(ep)] = (ep, n)
        return n

    # which policies select an endpoint (host endpoints: nodeSelector policies only)
    def selecting(self, ep: Endpoint) -> list[Policy]:
        return self._subject(ep)[0]

    def _subject(self, ep: Endpoint):
        """(policies, {direction: (rules, default deny)}) for the endpoint's identity."""
        key = self._number(ep)
        hit = self._subjects.get(key)
        if hit is None:
            pols: list[Policy] = []
            if ep.kind == "pod":
                labels = identity_labels(ep)
                pols = [self.policies[i] for i in self._pod_candidates(labels)
                        if self.policies[i].subject.matches(labels)]
            elif ep.kind == "host":
                labels = {("k8s", k): v for k, v in (ep.node_labels or ep.labels)}
                pols = [p for p in self.policies
                        if p.node_subject is not None and p.node_subject.matches(labels)]
            dirs = {}
            for d in ("ingress", "egress"):
                rules = [r for p in pols for r in p.rules if r.direction == d]
                # deny rules first: any matching deny decides
                rules.sort(key=lambda r: not r.deny)
                dirs[d] = (rules, any(p.default_deny[d] for p in pols))
            hit = self._subjects[key] = (pols, dirs)
        return hit

    def _pod_candidates(self, labels: dict) -> list[int]:
        """Positions of the policies whose subject may match a pod with these identity
        labels, ascending (a pod's labels all have source k8s: "any" reads the same)."""
        found = set(self._open)
        for (source, key), v in labels.items():
            if source == "k8s":
                found.update(self._pinned.get((key, v), ()))
        return sorted(found)

    def _peer_matches(self, rule: Rule, peer: Endpoint, local_node: str | None) -> bool:
        key = (id(rule), self._number(peer), local_node if peer.kind == "host" else None)
        hit = self._peers.get(key)
        if hit is None:
            hit = self._peer_match_uncached(rule, peer, local_node)
            self._peers[key] = hit
        return hit

    def _peer_match_uncached(self, rule: Rule, peer: Endpoint, local_node: str | None) -> bool:
        if not rule.has_peer:
            # L4-only rule applies to all peers; a completely empty rule selects nothing
            return rule.ports is not None or rule.icmps is not None
        if rule.endpoints:
            labels = identity_labels(peer, local_node)
            if any(s.matches(labels) for s in rule.endpoints):
                return True
        if any(_entity_matches(e, peer, local_node) for e in rule.entities):
            return True
        if rule.nodes and peer.kind == "host":
            labels = {("k8s", k): v for k, v in (peer.node_labels or peer.labels)}
            if any(s.matches(labels) for s in rule.nodes):
                return True
        if rule.cidrs and peer.kind == "external" and _in_cidrs(peer.ip, rule.cidrs):
            return True
        return False

    @staticmethod
    def _l4_matches(rule: Rule, flow: Flow, dst: Endpoint) -> bool:
        return CiliumModel._l4_ok(rule, flow.protocol.upper(), flow.port, flow.icmp_type, dst)

    @staticmethod
    def _l4_ok(rule: Rule, proto: str, port: int | None, icmp_type: int | None,
               dst: Endpoint) -> bool:
        if rule.ports is None and rule.icmps is None:
            return True
        if rule.icmps is not None and proto in ("ICMP", "ICMPV6"):
            fam = "IPv6" if proto == "ICMPV6" else "IPv4"
            if any(f == fam and t == icmp_type for f, t in rule.icmps):
                return True
        for p in rule.ports or ():
            if p.protocol == "ANY":
                if p.first == 0 and p.last == 65535 and p.name is None:
                    return True            # port 0 / no port, any protocol: all L4
                if proto not in ("TCP", "UDP", "SCTP"):
                    continue
            elif p.protocol != proto:
                continue
            if port is None:
                continue
            if p.name is not None:
                if any(np.name == p.name and np.port == port and np.protocol.upper() == proto
                       for np in dst.named_ports):
                    return True
            elif p.first <= port <= p.last:
                return True
        return False

    def side_vector(self, ep: Endpoint, src: Endpoint, dst: Endpoint, direction: str,
                    l4s) -> tuple[bool, ...] | None:
        """allowed at `ep` for each L4 class (objects with protocol, port, icmp_type);
        None if Cilium does not police ep in that direction.

        Per L4 class a matching deny decides, then a matching allow, then the default; so the
        vector is a function of two bitmasks: the L4 classes of the matching deny rules and
        those of the matching allow rules. Rules are merged by what they read from the peer
        (one peer test for the thousands of rules 400 policies give a pod at size L)."""
        if ep.kind not in ("pod", "host"):
            return None
        pols, dirs = self._subject(ep)
        if not pols:
            return None
        if self._vec_l4s is not l4s:
            self._vec_l4s, self._plans, self._masks = l4s, {}, {}
        # the plan depends on the identity, and on ingress on ep's own named ports
        plan_key = (self._number(ep), direction,
                    ep.named_ports if direction == "ingress" else None)
        plan = self._plans.get(plan_key)
        if plan is None:
            plan = self._plans[plan_key] = self._plan(ep, dirs[direction][0], direction, l4s)
        full = (1 << len(l4s)) - 1
        peer = dst if direction == "egress" else src
        local = ep.node
        deny = allow = 0
        for is_deny, sig, rep, fixed, by_dst in plan:
            seen = deny if is_deny else deny | allow
            if not by_dst and not fixed & ~seen:
                continue        # adds no L4 class: skip the peer test
            if not self._sig_match(sig, rep, peer, local):
                continue
            m = fixed
            for r in by_dst:
                m |= self._mask(r, l4s, dst)
            if is_deny:
                deny |= m
            else:
                allow |= m
        allowed = ~deny & (allow | (0 if dirs[direction][1] else full))
        return tuple(bool(allowed >> i & 1) for i in range(len(l4s)))

    def _plan(self, ep: Endpoint, rules: list, direction: str, l4s) -> list[tuple]:
        """[(deny, peer signature, a rule with it, L4 mask, rules whose mask depends on the
        destination's named ports)], deny groups first. Named ports are the peer's on egress
        (masked per flow); on ingress the destination is ep itself (masked here)."""
        groups: dict[tuple, list] = {}
        for r in rules:
            g = groups.setdefault((r.deny, self._sig(r)), [r, 0, []])
            if direction == "egress" and any(p.name is not None for p in r.ports or ()):
                g[2].append(r)
            else:
                g[1] |= self._mask(r, l4s, ep)
        out = [(deny, sig, rep, fixed, tuple(by_dst))
               for (deny, sig), (rep, fixed, by_dst) in groups.items()]
        out.sort(key=lambda g: not g[0])
        return out

    def _mask(self, rule: Rule, l4s, dst: Endpoint) -> int:
        """Bitmask of the L4 classes the rule's ports/icmps admit (dst: named ports' owner)."""
        named = any(p.name is not None for p in rule.ports or ())
        key = (tuple(rule.ports) if rule.ports is not None else None,
               tuple(rule.icmps) if rule.icmps is not None else None,
               dst.named_ports if named else None)
        got = self._masks.get(key)
        if got is None:
            got = 0
            for i, l4 in enumerate(l4s):
                if self._l4_ok(rule, l4.protocol.upper(), l4.port, l4.icmp_type, dst):
                    got |= 1 << i
            self._masks[key] = got
        return got

    def _sig(self, rule: Rule) -> int:
        """A small int per distinct peer part of a rule (what _peer_match_uncached reads)."""
        got = self._sig_of.get(id(rule))
        if got is None or got[0] is not rule:
            key = (rule.has_peer, rule.ports is not None or rule.icmps is not None,
                   tuple(rule.endpoints), tuple(rule.entities), tuple(rule.nodes),
                   tuple((tuple(nets), tuple(exc)) for nets, exc in rule.cidrs))
            got = self._sig_of[id(rule)] = (rule, self._sig_numbers.setdefault(
                key, len(self._sig_numbers)))
        return got[1]

    def _sig_match(self, sig: int, rule: Rule, peer: Endpoint, local_node: str | None) -> bool:
        key = (sig, self._number(peer), local_node if peer.kind == "host" else None)
        hit = self._sig_peers.get(key)
        if hit is None:
            hit = self._sig_peers[key] = self._peer_match_uncached(rule, peer, local_node)
        return hit

    def _direction(self, ep: Endpoint, peer: Endpoint, flow: Flow, direction: str
                   ) -> tuple[bool, str, tuple[str, ...]] | None:
        """(allowed, decided_by, notes) at endpoint `ep` for `direction`; None: not enforced."""
        pols, dirs = self._subject(ep)
        if not pols:
            return None
        rules, default_deny = dirs[direction]
        local = ep.node
        dst = flow.dst
        for r in rules:
            if not self._l4_matches(r, flow, dst) or not self._peer_matches(r, peer, local):
                continue
            if r.deny:
                return False, f"{r.where} deny", r.notes
            return True, f"{r.where} allow", r.notes + (("L7 rules apply",) if r.l7 else ())
        if default_deny:
            return False, f"default deny ({direction} at {ep.name})", ()
        return True, f"no {direction} rules ({direction} at {ep.name})", ()

    def side(self, ep: Endpoint, flow: Flow, direction: str) -> Verdict | None:
        """The verdict at one endpoint for one direction; None if Cilium does not police it."""
        if ep.kind not in ("pod", "host"):
            return None
        peer = flow.dst if direction == "egress" else flow.src
        res = self._direction(ep, peer, flow, direction)
        if res is None:
            return None
        return Verdict(res[0], res[1], direction, res[2])

    def peer_keys(self, ep: Endpoint, direction: str) -> set[str] | None:
        """Label keys (plain, namespace labels without their prefix) that the rules judging
        `ep` in `direction` read from the peer; None if no policy selects ep."""
        pols, dirs = self._subject(ep)
        if not pols:
            return None
        keys: set[str] = set()
        for r in dirs[direction][0]:
            for sel in r.endpoints + r.nodes:
                for _src, key, _op, _vals in sel.terms:
                    keys.add(key[len(NS_LABELS_PREFIX):] if key.startswith(NS_LABELS_PREFIX)
                             else key)
        return keys

    def verdict(self, flow: Flow) -> Verdict:
        parts = []
        for ep, peer, direction in ((flow.src, flow.dst, "egress"), (flow.dst, flow.src, "ingress")):
            if ep.kind not in ("pod", "host"):
                continue
            res = self._direction(ep, peer, flow, direction)
            if res is None:
                continue
            allowed, by, notes = res
            if not allowed:
                return Verdict(False, by, direction, notes)
            parts.append((by, notes))
        if not parts:
            return Verdict(True, "no policy selects either endpoint")
        return Verdict(True, "; ".join(b for b, _ in parts), None,
                       tuple(n for _, ns in parts for n in ns))


def verdict(cilium_objects: list[dict], flow: Flow, world=None) -> Verdict:
    """One-off form of CiliumModel(cilium_objects).verdict(flow) (see docs/ARCHITECTURE.md)."""
    return CiliumModel(cilium_objects).verdict(flow)
