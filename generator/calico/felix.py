"""Felix semantics: the verdict Calico reaches for a flow, from a PolicySet alone.

Written from the Calico docs and source, independent of any translator. Per endpoint and
direction:

    tiers sorted (order, name), only those with a policy that selects the endpoint and governs
    the direction; in a tier, policies sorted (order, name); rules in order:
      Allow / Deny -> final, Pass -> leave the tier, Log -> note and continue;
    end of a tier without a decision -> Deny, unless the tier's defaultAction is Pass;
    no tier applied, or every tier passed -> profiles: pods ALLOW, host endpoints DENY
    (unless the host endpoint lists the projectcalico-default-allow profile).

A flow endpoint -> endpoint is checked at the source (egress) if the source is a Calico endpoint
and at the destination (ingress) if the destination is one; both must allow.

Selectors are built exactly as libcalico-go's update processors build the v1 selectors Felix
evaluates (globalnetworkpolicyprocessor.go, networkpolicyprocessor.go, rules.go):
- a NetworkPolicy's selector is ANDed with projectcalico.org/namespace == '<ns>';
- namespace selectors are rewritten onto `pcns.` labels (all() -> has(projectcalico.org/
  namespace), and in rules global() -> !has(projectcalico.org/namespace)); service-account
  selectors onto `pcsa.` labels, names onto projectcalico.org/serviceaccount;
- a rule peer in a namespaced policy is limited to the policy's namespace as soon as selector,
  notSelector or serviceAccounts is used without namespaceSelector; notSelector itself is not
  scoped.
Endpoints carry the labels Felix gives them: pod labels + projectcalico.org/namespace,
projectcalico.org/orchestrator=k8s, projectcalico.org/serviceaccount, and the labels inherited from
the namespace profile (pcns.<k>, pcns.projectcalico.org/name) and the service-account profile
(pcsa.<k>, pcsa.projectcalico.org/name). A peer selector matches an address when a matching pod or
host endpoint has it, or it lies in the nets of a matching network set (pod addresses included);
`nets` match any address.

Not modelled (noted in the Verdict): preDNAT and doNotTrack policies (they act before/outside
connection tracking), HTTP match criteria (L7; treated as matching), Enterprise `domains`
(never match), Service matches without a service map (never match), forwarded host traffic
(applyOnForward), per-interface host endpoints (a node's host endpoints act as one), replies
(tracked connections are allowed).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from ..verify.cidrs import CidrIndex
from ..verify.model import Endpoint, Flow, Verdict
from .model import EntityRule, HostEndpoint, NetworkSet, Policy, PolicySet, Rule
from .selector import Node, parse, pinned, prefixed

NS_LABEL = "projectcalico.org/namespace"
SA_LABEL = "projectcalico.org/serviceaccount"
ORCH_LABEL = "projectcalico.org/orchestrator"
NAME_LABEL = "projectcalico.org/name"
NS_PREFIX = "pcns."
SA_PREFIX = "pcsa."
DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"

PAIR_CACHE_MAX = 500_000   # (direction, source, destination) rule lists kept

PROTO_NUMBERS = {"ICMP": 1, "TCP": 6, "UDP": 17, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}

# Felix's default failsafe ports: host endpoint policy never blocks these (FelixConfiguration
# failsafeInboundHostPorts / failsafeOutboundHostPorts defaults).
FAILSAFE_IN = frozenset({("TCP", 22), ("UDP", 68), ("TCP", 179), ("TCP", 2379), ("TCP", 2380),
                         ("TCP", 5473), ("TCP", 6443), ("TCP", 6666), ("TCP", 6667)})
FAILSAFE_OUT = frozenset({("UDP", 53), ("UDP", 67), ("TCP", 179), ("TCP", 2379), ("TCP", 2380),
                          ("TCP", 5473), ("TCP", 6443), ("TCP", 6666), ("TCP", 6667)})


@lru_cache(maxsize=1024)
def proto_number(p) -> int | None:
    if p is None:
        return None
    if isinstance(p, int):
        return p
    s = str(p)
    if s.isdigit():
        return int(s)
    for name, num in PROTO_NUMBERS.items():
        if s.lower() == name.lower():
            return num
    return None


@lru_cache(maxsize=65536)
def _net(text: str):
    return ipaddress.ip_network(text, strict=False)


@lru_cache(maxsize=65536)
def _addr(text: str | None):
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_nets(addr, nets) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in nets)


# --------------------------------------------------------------------------- v1 selectors

def _text(sel: str | None) -> str:
    """A selector as Felix's data model stores it: '' for absent/all().

    The model keeps an absent policy selector as "all()", so an explicit all() is treated as
    absent too; it only matters for libcalico-go's all() rewrite with a namespaceSelector."""
    if not sel:
        return ""
    s = str(parse(sel))
    return "" if s == "all()" else s


def _prefix_append(current: str, new: str | None, prefix: str) -> str:
    if not new:
        return current
    p = str(prefixed(parse(new), prefix))
    return f"({current}) && {p}" if current else p


def policy_selector(p: Policy) -> str:
    """The v1 selector Felix uses for a policy's subject (see the module docstring)."""
    sel = _text(p.selector)
    if p.namespace is not None:
        ns = f"{NS_LABEL} == '{p.namespace}'"
        sel = f"({sel}) && {ns}" if sel else ns
        return _prefix_append(sel, p.service_account_selector, SA_PREFIX) or "all()"
    if p.namespace_selector:
        sel = _prefix_append(sel, p.namespace_selector, NS_PREFIX)
        sel = sel.replace("all()", f"has({NS_LABEL})")
    if p.service_account_selector:
        sel = _prefix_append(sel, p.service_account_selector, SA_PREFIX)
        sel = sel.replace("all()", f"has({SA_LABEL})")
    return sel or "all()"


def entity_selector(e: EntityRule, ns: str | None) -> str:
    """GetEntityRuleSelector: the v1 selector of a rule's source/destination ('' = none)."""
    sa_sel = ""
    if e.service_accounts is not None:
        sam = e.service_accounts
        sa_sel = str(prefixed(parse(sam.selector), SA_PREFIX)) if sam.selector else ""
        if sam.names:
            names = str(parse(f"{SA_LABEL} in {{{', '.join(repr(n) for n in sam.names)}}}"))
            sa_sel = f"({sa_sel}) && ({names})" if sa_sel else names
    ns_sel = ""
    if e.namespace_selector:
        ns_sel = str(prefixed(parse(e.namespace_selector), NS_PREFIX))
        ns_sel = ns_sel.replace("all()", f"has({NS_LABEL})")
        ns_sel = ns_sel.replace("global()", f"!has({NS_LABEL})")
    elif ns:
        ns_sel = f"{NS_LABEL} == '{ns}'"
    parts = [s for s in (sa_sel, e.selector or "") if s]
    selector = parts[0] if len(parts) == 1 else (f"({parts[0]}) && ({parts[1]})" if parts else "")
    if ns_sel and (selector or e.not_selector or e.namespace_selector):
        selector = f"({ns_sel}) && ({selector})" if selector else ns_sel
    return selector


# --------------------------------------------------------------------------- compiled policy

def _port_set(ports: tuple) -> frozenset | None:
    """Numeric ports as a set for O(1) checks (None: named ports or wide ranges)."""
    if not ports or any(p.is_named for p in ports) or \
            sum(p.last - p.first + 1 for p in ports) > 4096:
        return None
    return frozenset(n for p in ports for n in range(p.first, p.last + 1))


@dataclass(frozen=True)
class _Entity:
    nets: tuple
    not_nets: tuple
    selector: Node | None
    not_selector: Node | None
    ports: tuple
    not_ports: tuple
    services: tuple | None          # (namespace, name)
    domains: tuple
    port_set: frozenset | None = None       # ports as a set when all numeric and few
    not_port_set: frozenset | None = None

    @staticmethod
    def build(e: EntityRule, policy_ns: str | None) -> "_Entity":
        sel = entity_selector(e, policy_ns)
        svc = None
        if e.services is not None:
            svc = (e.services.namespace or policy_ns or "default", e.services.name)
        return _Entity(
            nets=tuple(_net(n) for n in e.nets), not_nets=tuple(_net(n) for n in e.not_nets),
            selector=parse(sel) if sel else None,
            not_selector=parse(e.not_selector) if e.not_selector else None,
            ports=e.ports, not_ports=e.not_ports, services=svc, domains=e.domains,
            port_set=_port_set(e.ports), not_port_set=_port_set(e.not_ports))


@dataclass(frozen=True)
class _Rule:
    rule: Rule
    proto: int | None
    not_proto: int | None
    src: _Entity
    dst: _Entity
    src_any: bool                   # the side matches everything: skip it
    dst_any: bool


class _Policy:
    """A policy as Felix evaluates it. Its rules (ingress, egress: tuples of _Rule) are
    compiled the first time they are read: a model of 20,000 policies (size L) is built to
    answer for a few hundred endpoints, whose chains reach a small part of them."""
    __slots__ = ("policy", "label", "selector", "_entities", "_ingress", "_egress")

    def __init__(self, policy: Policy, label: str, selector: Node, entities: dict | None):
        self.policy = policy
        self.label = label              # "GlobalNetworkPolicy security.deny-db"
        self.selector = selector
        self._entities = entities
        self._ingress: tuple | None = None
        self._egress: tuple | None = None

    @property
    def ingress(self) -> tuple:
        if self._ingress is None:
            p = self.policy
            self._ingress = _rules(p, p.ingress, self._entities) if "Ingress" in p.types else ()
        return self._ingress

    @property
    def egress(self) -> tuple:
        if self._egress is None:
            p = self.policy
            self._egress = _rules(p, p.egress, self._entities) if "Egress" in p.types else ()
        return self._egress


_ANY = _Entity((), (), None, None, (), (), None, ())


def policy_label(p: Policy) -> str:
    kind = p.source.kind
    if kind == "KubernetesNetworkPolicy":
        return f"{kind} {p.namespace}/{p.source.name}"
    name = f"{p.tier}.{p.name}"
    return f"{kind} {p.namespace}/{name}" if p.namespace else f"{kind} {name}"


def _rules(p: Policy, rs: tuple, entities: dict | None) -> tuple:
    """The rules of policy p compiled. entities: {(EntityRule, namespace): _Entity} shared
    by the policies of one model (thousands of rules name the same peer)."""
    def entity(e: EntityRule) -> _Entity:
        if entities is None:
            return _Entity.build(e, p.namespace)
        got = entities.get((e, p.namespace))
        if got is None:
            got = entities[(e, p.namespace)] = _Entity.build(e, p.namespace)
        return got

    out = []
    for r in rs:
        src = entity(r.source)
        dst = entity(r.destination)
        out.append(_Rule(r, proto_number(r.protocol), proto_number(r.not_protocol), src, dst,
                         src == _ANY, dst == _ANY))
    return tuple(out)


def _compile(p: Policy, entities: dict | None = None) -> _Policy:
    return _Policy(p, policy_label(p), parse(policy_selector(p)), entities)


# --------------------------------------------------------------------------- the model

class FelixModel:
    """Precomputed Felix view of a PolicySet; verdict(flow) is the hot path.

    services: optional {(namespace, name): iterable of endpoint IPs} for `services` matches.
    namespace_labels: optional {namespace: labels} for namespaced network sets.
    failsafe: apply Felix's default failsafe ports on host endpoints.
    """

    def __init__(self, policy_set: PolicySet, *, services: dict | None = None,
                 namespace_labels: dict | None = None, failsafe: bool = True):
        self.policy_set = policy_set
        self.failsafe = failsafe
        self.services = {k: frozenset(v) for k, v in (services or {}).items()}
        self.namespace_labels = namespace_labels or {}
        tiers = [policy_set.tier(t) for t in sorted({p.tier for p in policy_set.policies})]
        tiers.sort(key=lambda t: (t.order, t.name))
        by_tier: dict[str, list[Policy]] = {t.name: [] for t in tiers}
        self.untracked: list[_Policy] = []      # preDNAT / doNotTrack: not modelled
        entities: dict = {}
        for p in policy_set.policies:
            if p.pre_dnat or p.do_not_track:
                self.untracked.append(_compile(p, entities))
            else:
                by_tier[p.tier].append(p)
        self.tier_policies = [(t, [_compile(p, entities) for p in sorted(by_tier[t.name],
                                                                        key=Policy.sort_key)])
                              for t in tiers]
        self.netsets = [(tuple(_net(n) for n in s.nets), self._netset_labels(s))
                        for s in policy_set.network_sets]
        # every endpoint looks up its address in every network set (30,000 x 400 at size L)
        flat = [(i, n) for i, (nets, _labels) in enumerate(self.netsets) for n in nets]
        self._netset_of = [i for i, _n in flat]
        self._netset_index = CidrIndex([n for _i, n in flat])
        self._netsets_by_key: dict[tuple, list[dict]] = {}
        self.heps_by_node: dict[str, list[HostEndpoint]] = {}
        self.heps_by_ip: dict[str, list[HostEndpoint]] = {}
        for h in sorted(policy_set.host_endpoints, key=lambda h: h.name):
            if h.node:
                self.heps_by_node.setdefault(h.node, []).append(h)
            for ip in h.expected_ips:
                self.heps_by_ip.setdefault(ip, []).append(h)
        self._infos: dict = {}
        self._pairs: dict = {}
        self._netset_cache: dict = {}
        self._tier_index: list | None = None    # see _index
        # side_vector's state (see there), valid for one list of L4 classes
        self._vec_l4s = None
        self._plans: dict = {}          # (endpoint, direction) -> compiled tiers
        self._masks: dict = {}          # L4 part of a rule (+ named ports) -> bitmask
        self._l3: dict = {}             # (id(entity), endpoint idx) -> address/identity match

    # ---- labels as Felix sees them ------------------------------------------------------

    def _netset_labels(self, s: NetworkSet) -> dict:
        if s.namespace is None:
            return dict(s.labels)
        inherited = {NS_PREFIX + k: v for k, v in self.namespace_labels.get(s.namespace,
                                                                            {}).items()}
        inherited[NS_PREFIX + NAME_LABEL] = s.namespace
        return {**inherited, **s.labels, NS_LABEL: s.namespace}

    def host_endpoint_for(self, ep: Endpoint) -> HostEndpoint | None:
        """The HostEndpoint that makes a host a Calico endpoint (None: the host is unpoliced)."""
        cands = self.heps_by_node.get(ep.node or "", [])
        if not cands and ep.ip:
            cands = self.heps_by_ip.get(ep.ip, [])
        if not cands:
            return None
        for h in cands:          # prefer the all-interfaces endpoint, then the first by name
            if h.interface_name == "*":
                return h
        return cands[0]

    def endpoint_labels(self, ep: Endpoint) -> dict | None:
        """Felix's label set of a Calico endpoint; None for externals and unpoliced hosts."""
        return self._info(ep).labels

    def _compute_labels(self, ep: Endpoint) -> dict | None:
        if ep.kind == "pod":
            ns = ep.namespace or "default"
            labels = {NS_PREFIX + k: v for k, v in ep.namespace_labels}
            labels[NS_PREFIX + NAME_LABEL] = ns
            if ep.service_account:
                labels.update((SA_PREFIX + k, v) for k, v in ep.service_account_labels)
                labels[SA_PREFIX + NAME_LABEL] = ep.service_account
            labels.update(ep.labels)       # the pod's own labels win over inherited ones
            labels[NS_LABEL] = ns
            labels[ORCH_LABEL] = "k8s"
            if ep.service_account:
                labels[SA_LABEL] = ep.service_account
            return labels
        if ep.kind == "host":
            hep = self.host_endpoint_for(ep)
            if hep is not None:
                return dict(hep.labels)
        return None

    def _info(self, ep: Endpoint) -> "_EpInfo":
        """Everything derived from one endpoint, computed once (the flow hot path uses this)."""
        info = self._infos.get(ep)
        if info is None:
            labels = self._compute_labels(ep)
            sets = self._netsets_for(ep.ip)
            cands = [labels] + sets if labels is not None else sets
            info = _EpInfo(len(self._infos), labels, cands, {})
            self._infos[ep] = info
        return info

    def _netsets_for(self, ip: str | None) -> list[dict]:
        if ip is None:
            return []
        got = self._netset_cache.get(ip)
        if got is None:
            addr = _addr(ip)
            got = [] if addr is None else self._netsets_containing(addr)
            self._netset_cache[ip] = got
        return got

    def _netsets_containing(self, addr) -> list[dict]:
        """Labels of the network sets with a net that contains addr, in network-set order."""
        key = self._netset_index.distinct(addr)
        got = self._netsets_by_key.get(key)
        if got is None:
            owners = sorted({self._netset_of[i] for i in self._netset_index.indexes(key)})
            got = self._netsets_by_key[key] = [self.netsets[i][1] for i in owners]
        return got

    # ---- matching -----------------------------------------------------------------------

    @staticmethod
    def _port_in(ranges: tuple, port: int | None, owner: Endpoint, proto: int | None) -> bool:
        if port is None:
            return False
        for r in ranges:
            if r.name is None:
                if r.first <= port <= r.last:
                    return True
            else:
                for np in owner.named_ports:
                    if np.name == r.name and np.port == port and \
                            proto_number(np.protocol) == proto:
                        return True
        return False

    def _entity_l3(self, ent: _Entity, ep: Endpoint, cands: list, notes: list) -> bool:
        """Address/identity part of a source or destination match (fixed per endpoint pair)."""
        if ent.nets or ent.not_nets:
            addr = _addr(ep.ip)
            if ent.nets and not _in_nets(addr, ent.nets):
                return False
            if ent.not_nets and _in_nets(addr, ent.not_nets):
                return False
        sel = ent.selector
        if sel is not None:
            for c in cands:
                if sel.evaluate(c):
                    break
            else:
                return False
        nsel = ent.not_selector
        if nsel is not None:
            for c in cands:
                if nsel.evaluate(c):
                    return False
        if ent.services is not None:
            ips = self.services.get(ent.services)
            if ips is None:
                notes.append(f"service {ent.services[0]}/{ent.services[1]} unknown: "
                             "its rule never matches")
                return False
            if ep.ip not in ips:
                return False
        if ent.domains:
            notes.append("domains (Calico Enterprise) not modelled: rule never matches")
            return False
        return True

    def _rule_l3(self, cr: _Rule, src: Endpoint, dst: Endpoint, src_c: list, dst_c: list,
                 notes: list) -> bool:
        r = cr.rule
        if r.ip_version is not None:
            a = _addr(src.ip) or _addr(dst.ip)
            if (a.version if a is not None else 4) != r.ip_version:
                return False
        if not cr.src_any and not self._entity_l3(cr.src, src, src_c, notes):
            return False
        if not cr.dst_any and not self._entity_l3(cr.dst, dst, dst_c, notes):
            return False
        return True

    def _ports_ok(self, ent: _Entity, port: int | None, owner: Endpoint,
                  proto: int | None) -> bool:
        if ent.ports:
            if ent.port_set is not None:
                if port not in ent.port_set:
                    return False
            elif not self._port_in(ent.ports, port, owner, proto):
                return False
        if ent.not_ports:
            if ent.not_port_set is not None:
                if port in ent.not_port_set:
                    return False
            elif self._port_in(ent.not_ports, port, owner, proto):
                return False
        return True

    def _rule_l4(self, cr: _Rule, flow: Flow, proto: int | None) -> bool:
        if cr.proto is not None and cr.proto != proto:
            return False
        if cr.not_proto is not None and cr.not_proto == proto:
            return False
        r = cr.rule
        if r.icmp is not None:
            if r.icmp.type is not None and r.icmp.type != flow.icmp_type:
                return False
            if r.icmp.code is not None and r.icmp.code != flow.icmp_code:
                return False
        if r.not_icmp is not None:
            if (r.not_icmp.type is None or r.not_icmp.type == flow.icmp_type) and \
                    (r.not_icmp.code is None or r.not_icmp.code == flow.icmp_code):
                return False
        s, d = cr.src, cr.dst
        if s.ports or s.not_ports:
            if not self._ports_ok(s, flow.src_port, flow.src, proto):
                return False
        if d.ports or d.not_ports:
            if not self._ports_ok(d, flow.port, flow.dst, proto):
                return False
        return True

    # ---- chains -------------------------------------------------------------------------

    def chain(self, ep: Endpoint, direction: str):
        """([(tier, [(policy, rules)...])...], notes) for the endpoint and direction (cached)."""
        info = self._info(ep)
        got = info.chains.get(direction)
        if got is not None:
            return got
        labels = info.labels
        out = []
        notes = []
        if labels is not None:
            attr = "ingress" if direction == "ingress" else "egress"
            typ = "Ingress" if direction == "ingress" else "Egress"
            for (tier, pols, groups, _open, _index), hit in zip(self._index(),
                                                                self._matched(info)):
                found = sorted(i for g in hit if typ in groups[g][2] for i in groups[g][1])
                sel = [(cp, getattr(cp, attr)) for cp in (pols[i] for i in found)
                       if typ in cp.policy.types]
                if sel:
                    out.append((tier, sel))
            for cp in self.untracked:
                if typ in cp.policy.types and cp.selector.evaluate(labels):
                    what = "preDNAT" if cp.policy.pre_dnat else "doNotTrack"
                    notes.append(f"{cp.label} ({what}) selects this endpoint: not modelled")
            if ep.kind == "host" and len(self.heps_by_node.get(ep.node or "", ())) > 1:
                hep = self.host_endpoint_for(ep)
                notes.append(f"{len(self.heps_by_node[ep.node])} host endpoints on {ep.node}: "
                             f"evaluated as {hep.name} (per-interface policy not modelled)")
        got = (out, tuple(notes))
        info.chains[direction] = got
        return got

    def governs(self, ep: Endpoint, direction: str) -> bool:
        """bool(chain(ep, direction)[0]): does a (tracked) policy select the endpoint and
        govern the direction. Without building the chain, which can list thousands of
        policies (every `app == 'web'` policy for every web pod)."""
        info = self._info(ep)
        if info.labels is None:
            return False
        typ = "Ingress" if direction == "ingress" else "Egress"
        for (_tier, _pols, groups, _open, _index), hit in zip(self._index(), self._matched(info)):
            for g in hit:
                if typ in groups[g][2]:
                    return True
        return False

    def _index(self) -> list:
        """Per tier: (tier, policies, groups, open, index). A group is one distinct selector
        with the policies that use it (positions in the tier, ascending) and the union of
        their types: thousands of policies share a few selectors, each is evaluated once per
        endpoint. A selector that pins a label (`k == 'v'`, `k in {...}`) cannot match an
        endpoint without one of those values, so each group is filed under one pinned label
        (the namespace when pinned: namespaced policies always are) and an endpoint evaluates
        only the groups filed under its own values plus the unpinned (open) ones."""
        if self._tier_index is None:
            self._tier_index = []
            for tier, pols in self.tier_policies:
                by_selector: dict[Node, int] = {}
                groups: list[tuple] = []
                for i, cp in enumerate(pols):
                    g = by_selector.get(cp.selector)
                    if g is None:
                        g = by_selector[cp.selector] = len(groups)
                        groups.append((cp.selector, [], set()))
                    groups[g][1].append(i)
                    groups[g][2].update(cp.policy.types)
                open_, index = [], {}
                for g, (node, _members, _types) in enumerate(groups):
                    pins = pinned(node)
                    key = NS_LABEL if NS_LABEL in pins else min(pins, default=None)
                    if key is None:
                        open_.append(g)
                        continue
                    by_value = index.setdefault(key, {})
                    for v in pins[key]:
                        by_value.setdefault(v, []).append(g)
                self._tier_index.append((tier, pols, groups, open_, index))
        return self._tier_index

    def _matched(self, info: "_EpInfo") -> list[list[int]]:
        """Per tier, the groups whose selector matches the endpoint (ascending; both
        directions share them)."""
        if info.matched is None:
            labels = info.labels
            info.matched = []
            for _tier, _pols, groups, open_, index in self._index():
                cand = set(open_)
                for key, by_value in index.items():
                    v = labels.get(key)
                    if v is not None:
                        cand.update(by_value.get(v, ()))
                info.matched.append([g for g in sorted(cand) if groups[g][0].evaluate(labels)])
        return info.matched

    def _pair_chain(self, direction: str, flow: Flow, si: "_EpInfo", di: "_EpInfo"):
        """(chain, notes, progress) of the endpoint for this (source, destination) pair:
        progress holds per tier [kept, upto] for _kept (see there). The chain itself is
        shared, not copied per pair: it can list thousands of policies."""
        key = (direction, si.idx, di.idx)
        got = self._pairs.get(key)
        if got is not None:
            return got
        ep = flow.src if direction == "egress" else flow.dst
        chain, chain_notes = self.chain(ep, direction)
        got = (chain, chain_notes, [[[], 0] for _ in chain])
        if len(self._pairs) >= PAIR_CACHE_MAX:
            self._pairs.clear()
        self._pairs[key] = got
        return got

    def _kept(self, pols: list, progress: list, flow: Flow, si: "_EpInfo", di: "_EpInfo"):
        """The (policy, rules) of one tier for one pair, in order, each policy's rules filtered
        by their address/identity part (only the L4 part is left per flow). A policy none of
        whose rules can match the pair decides nothing and notes nothing: it is left out, so
        the pair's later flows (other ports) do not walk past it again. Filtering goes only
        as far as evaluation reaches (progress = [kept so far, policies filtered so far])."""
        kept = progress[0]
        i = 0
        while True:
            if i < len(kept):
                yield kept[i]
                i += 1
                continue
            j = progress[1]
            if j >= len(pols):
                return
            progress[1] = j + 1
            cp, raw = pols[j]
            rules = self._filter(raw, flow, si, di)
            if rules:
                kept.append((cp, rules))

    def _filter(self, rules: tuple, flow: Flow, si: "_EpInfo", di: "_EpInfo") -> tuple:
        kept = []
        for cr in rules:
            notes: list = []
            if self._rule_l3(cr, flow.src, flow.dst, si.cands, di.cands, notes):
                kept.append((cr, True, ()))
            elif notes:       # keep why it never matches, for the verdict's notes
                kept.append((cr, False, tuple(notes)))
        return tuple(kept)

    def side(self, ep: Endpoint, flow: Flow, direction: str, src_info=None,
             dst_info=None) -> Verdict | None:
        """The verdict at one endpoint for one direction; None if it is not a Calico endpoint."""
        src_info = src_info or self._info(flow.src)
        dst_info = dst_info or self._info(flow.dst)
        info = src_info if direction == "egress" else dst_info
        if info.labels is None:
            return None
        proto = proto_number(flow.protocol)
        if ep.kind == "host" and self.failsafe:
            pname = "TCP" if proto == 6 else "UDP" if proto == 17 else None
            ports = FAILSAFE_IN if direction == "ingress" else FAILSAFE_OUT
            if pname and (pname, flow.port) in ports:
                return Verdict(True, f"failsafe port {pname}/{flow.port} ({direction} at "
                                     f"{ep.name})", direction)
        chain, chain_notes, progress = self._pair_chain(direction, flow, src_info, dst_info)
        notes = list(chain_notes)
        rule_l4 = self._rule_l4
        for (tier, pols), tier_progress in zip(chain, progress):
            passed = False
            for cp, rules in self._kept(pols, tier_progress, flow, src_info, dst_info):
                for cr, l3, l3_notes in rules:
                    if not l3:
                        notes.extend(l3_notes)
                        continue
                    if not rule_l4(cr, flow, proto):
                        continue
                    act = cr.rule.action
                    by = f"{cp.label} {direction}[{cr.rule.index}] {act}"
                    if cr.rule.http is not None:
                        notes.append("HTTP match not evaluated (L7): treated as matching")
                    if act == "Log":
                        notes.append(f"Log rule matched: {by}")
                        continue
                    if act == "Pass":
                        notes.append(f"passed: {by}")
                        passed = True
                        break
                    return Verdict(act == "Allow", by, direction, tuple(notes))
                if passed:
                    break
            if passed:
                continue
            where = f"{direction} at {ep.name}"
            if tier.default_action == "Pass":
                notes.append(f"end of tier {tier.name} ({where}): defaultAction Pass")
                continue
            return Verdict(False, f"end of tier {tier.name} ({where})", direction, tuple(notes))
        where = f"{direction} at {ep.name}"
        if ep.kind == "pod":
            return Verdict(True, f"profile: allow ({where})", direction, tuple(notes))
        hep = self.host_endpoint_for(ep)
        if hep is not None and DEFAULT_ALLOW_PROFILE in hep.profiles:
            return Verdict(True, f"profile {DEFAULT_ALLOW_PROFILE} ({where})", direction,
                           tuple(notes))
        # names the HostEndpoint, so that the fidelity report's finding on it declares this
        what = f"HostEndpoint {hep.name}" if hep is not None else "host endpoint"
        return Verdict(False, f"{what} default: deny ({where})", direction, tuple(notes))

    # ---- whole vectors -------------------------------------------------------------------

    def side_vector(self, ep: Endpoint, src: Endpoint, dst: Endpoint, direction: str,
                    l4s) -> tuple[bool, ...] | None:
        """[side(ep, Flow(src, dst, l4...), direction).allowed for l4 in l4s] at once (None if
        ep is not a Calico endpoint). The L4 classes are bits of an int; the tiers are walked
        once for all of them, as compiled by _plan for the endpoint (a rule decides the bits
        still undecided in its tier that its L4 part admits, when its peer part matches)."""
        si, di = self._info(src), self._info(dst)
        info = si if direction == "egress" else di
        if info.labels is None:
            return None
        if self._vec_l4s is not l4s:
            self._vec_l4s, self._plans, self._masks = l4s, {}, {}
        plan = self._plans.get((info.idx, direction))
        if plan is None:
            plan = self._plans[(info.idx, direction)] = self._plan(ep, src, dst, direction, l4s)
        allowed, tiers, end_allow = plan
        n = len(l4s)
        undecided = ((1 << n) - 1) & ~allowed
        peer, peer_info = (dst, di) if direction == "egress" else (src, si)
        a = _addr(src.ip) or _addr(dst.ip)
        version = a.version if a is not None else 4
        conds: dict = {}
        for default_pass, rules in tiers:
            live, passed = undecided, 0
            for cond, ent, mask, cr, act in rules:
                if not live:
                    break
                if mask is None:        # the peer's named ports decide
                    mask = self._rule_mask(cr, src, dst, l4s)
                hit = mask & live
                if not hit:
                    continue
                ok = conds.get(cond)
                if ok is None:
                    ok = conds[cond] = (cond[0] is None or cond[0] == version) and (
                        ent is None or self._l3_match(ent, peer, peer_info))
                if not ok:
                    continue
                live &= ~hit
                if act == "Allow":
                    allowed |= hit
                elif act == "Pass":
                    passed |= hit
            undecided = passed | (live if default_pass else 0)
            if not undecided:
                break
        if end_allow:
            allowed |= undecided
        return tuple(bool(allowed >> i & 1) for i in range(n))

    def _plan(self, ep: Endpoint, src: Endpoint, dst: Endpoint, direction: str, l4s):
        """(failsafe bits, [(tier defaultAction is Pass, rules)], profile allows) for one
        endpoint and direction. rules: (condition, peer entity, mask, rule, action) in order,
        with what cannot change a verdict left out:
        - Log rules (they note, and never decide);
        - rules whose endpoint side (fixed here) does not match;
        - bits an earlier rule of the tier with the same condition already took (when that
          condition holds those bits are decided; when it does not, neither rule matches);
          a rule with no bit left goes, and an unconditional rule taking every bit ends the
          tier (200 policies 'Deny from dev, then Pass' shrink to the first one).
        condition: (ipVersion, id of the peer-side entity) or (ipVersion, None): the peer
        part, the same for every rule that shares it. mask None: the rule reads the peer's
        named ports; masked per pair, never merged."""
        info = self._info(ep)
        n = len(l4s)
        full = (1 << n) - 1
        failsafe = 0
        if ep.kind == "host" and self.failsafe:
            ports = FAILSAFE_IN if direction == "ingress" else FAILSAFE_OUT
            for i, l4 in enumerate(l4s):
                proto = proto_number(l4.protocol)
                pname = "TCP" if proto == 6 else "UDP" if proto == 17 else None
                if pname and (pname, l4.port) in ports:
                    failsafe |= 1 << i
        egress = direction == "egress"
        tiers = []
        for tier, pols in self.chain(ep, direction)[0]:
            rules = []
            taken: dict = {}        # condition -> bits decided by earlier rules of the tier
            for _cp, raw in pols:
                for cr in raw:
                    own, other = (cr.src, cr.dst) if egress else (cr.dst, cr.src)
                    own_any, other_any = (cr.src_any, cr.dst_any) if egress else \
                        (cr.dst_any, cr.src_any)
                    if cr.rule.action == "Log":
                        continue
                    if not own_any and not self._l3_match(own, ep, info):
                        continue
                    ent = None if other_any else other
                    cond = (cr.rule.ip_version, None if ent is None else id(ent))
                    if _named(other):
                        rules.append((cond, ent, None, cr, cr.rule.action))
                        continue
                    before = taken.get(cond, 0) | taken.get((None, None), 0)
                    mask = self._rule_mask(cr, src, dst, l4s) & ~before & ~failsafe
                    if not mask:
                        continue
                    taken[cond] = taken.get(cond, 0) | mask
                    rules.append((cond, ent, mask, cr, cr.rule.action))
                if taken.get((None, None), 0) | failsafe == full:
                    break
            tiers.append((tier.default_action == "Pass", rules))
        if ep.kind == "pod":
            end_allow = True
        else:
            hep = self.host_endpoint_for(ep)
            end_allow = hep is not None and DEFAULT_ALLOW_PROFILE in hep.profiles
        return failsafe, tiers, end_allow

    def _rule_mask(self, cr: _Rule, src: Endpoint, dst: Endpoint, l4s) -> int:
        """Bitmask of the L4 classes _rule_l4 admits; rules with equal L4 parts share it
        (the endpoints count only through named ports)."""
        r = cr.rule
        key = (cr.proto, cr.not_proto, r.icmp, r.not_icmp, cr.src.ports, cr.src.not_ports,
               cr.dst.ports, cr.dst.not_ports,
               src.named_ports if _named(cr.src) else None,
               dst.named_ports if _named(cr.dst) else None)
        got = self._masks.get(key)
        if got is None:
            got = 0
            for i, l4 in enumerate(l4s):
                flow = Flow(src, dst, l4.protocol, l4.port, l4.icmp_type)
                if self._rule_l4(cr, flow, proto_number(l4.protocol)):
                    got |= 1 << i
            self._masks[key] = got
        return got

    def _l3_match(self, ent: _Entity, ep: Endpoint, info: "_EpInfo") -> bool:
        """_entity_l3 of one side, cached per (entity, endpoint): entities are shared by the
        policies of the model, endpoints meet many subjects."""
        key = (id(ent), info.idx)
        got = self._l3.get(key)
        if got is None:
            got = self._l3[key] = self._entity_l3(ent, ep, info.cands, [])
        return got

    def verdict(self, flow: Flow) -> Verdict:
        """Egress at the source, then ingress at the destination; both must allow."""
        si, di = self._info(flow.src), self._info(flow.dst)
        out = self.side(flow.src, flow, "egress", si, di)
        if out is not None and not out.allowed:
            return out
        inn = self.side(flow.dst, flow, "ingress", si, di)
        if inn is None:
            if out is None:
                return Verdict(True, "neither endpoint is a Calico endpoint: not policed")
            return out
        if out is None:
            return inn
        return Verdict(inn.allowed, inn.decided_by, "ingress",
                       tuple(f"egress: {n}" for n in (out.decided_by,) + out.notes) + inn.notes)


def _named(ent: _Entity) -> bool:
    """Does the entity match ports by name (then its owner's named ports count)."""
    return any(p.is_named for p in ent.ports) or any(p.is_named for p in ent.not_ports)


@dataclass
class _EpInfo:
    idx: int                   # small id for the pair cache
    labels: dict | None        # Felix labels when a Calico endpoint
    cands: list                # label sets a peer selector may match (own + network sets)
    chains: dict               # direction -> (chain, notes)
    matched: list | None = None    # per tier: the selector groups that match (see _matched)


_MODELS: dict = {}


def verdict(policy_set: PolicySet, flow: Flow, world=None) -> Verdict:
    """One-off form (docs/ARCHITECTURE.md); caches the model for the last PolicySet."""
    key = id(policy_set)
    got = _MODELS.get(key)
    if got is None or got[0] is not policy_set:
        services = getattr(world, "services", None)
        nsl = getattr(world, "namespace_labels", None)
        got = (policy_set, FelixModel(
            policy_set, services=services if isinstance(services, dict) else None,
            namespace_labels=nsl if isinstance(nsl, dict) else None))
        _MODELS.clear()
        _MODELS[key] = got
    return got[1].verdict(flow)
