"""Calico rules -> boxes (subject x peer x L4), exact or a superset with the reasons.

Every field of a rule is read here and nowhere else; a field that has no Cilium form is
recorded as a problem (NotExpressible) and replaced by "anything" (a superset), so the
compiler can decide what is safe to emit. Fields the translator does not know are problems
too: ignoring a match would widen an Allow.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..calico import selector as cs
from ..calico.model import EntityRule, Policy, PolicySet, Rule
from . import selectors as sel
from .ranges import ClusterRanges, net, plain
from .region import ANY_PEER, ALL_PORTS, FULL, Box, L4, Peer, make_nets, peer_minus
from .selectors import KIND, NS_KEY, NSL_PREFIX, SA_KEY, Constraint, Context, NotExpressible

PROTO_NAMES = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "icmp": "ICMP", "icmpv6": "ICMPv6",
               "udplite": "UDPLite"}
PROTO_NUMBERS = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP", 58: "ICMPv6", 136: "UDPLite"}


def _pos(*vals) -> Constraint:
    return Constraint(True, frozenset(vals))


def _outside(c, kinds):
    """The non-namespaced things (of kinds) a namespace-selector term matches: Felix evaluates
    it against their labels too, where every namespace label is absent."""
    absent = {k: Constraint(True, frozenset({None})) for k, _ in c
              if k == NS_KEY or k.startswith(NSL_PREFIX)}
    return sel.conj_and(c, sel.conj({**absent, KIND: _pos(*kinds)}))


def _ns(name: str, problems: list | None = None) -> Constraint:
    """A placeholder namespace ('${var.ns}') matches nothing; reported when problems given."""
    return Constraint(True, sel._checked({name}, Context(problems=problems)))


def _proto(p, problems: list) -> str | None:
    if p is None:
        return None
    if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
        name = PROTO_NUMBERS.get(int(p))
    else:
        name = PROTO_NAMES.get(str(p).lower())
    if name is None or name == "UDPLite":
        problems.append(NotExpressible("protocol", f"protocol {p} has no Cilium form "
                                                   "(TCP, UDP, SCTP, ICMP only)"))
        return None
    return name


class Builder:
    """Turns one Calico policy's subject and rules into boxes (exact, or superset + problems)."""

    def __init__(self, ps: PolicySet, values: dict | None, inventory=None, ranges=None):
        self.ps = ps
        self.values = values
        self.inventory = inventory
        self.notes: list = []        # (code, message) approximations taken for the last rule
        self.has_heps = bool(ps.host_endpoints)
        self.ranges = ranges if ranges is not None else ClusterRanges(inventory)
        self._netset_cache: list | None = None
        self._dnfs: dict = {}
        self._netset_hits: dict = {}

    def families(self) -> set:
        """IP versions the cluster uses (from the inventory); unknown without one."""
        if self.inventory is None or not self.inventory.cidrs:
            return {4, 6}
        import ipaddress
        return {ipaddress.ip_network(c.cidr, strict=False).version
                for c in self.inventory.cidrs}

    def ctx(self, problems: list, space="pod") -> Context:
        return Context(space, self.values, True, problems, self.notes)

    def dnf(self, text, problems, space="pod") -> list:
        """Selector text -> DNF; policies repeat the same selectors, so each (text, space) is
        converted once and its problems and notes are replayed."""
        key = (text, space)
        hit = self._dnfs.get(key)
        if hit is None:
            mine: list = []
            notes_before = len(self.notes)
            try:
                hit = (sel.to_dnf(text, self.ctx(mine, space)), None)
            except (cs.SelectorError, NotExpressible) as e:
                hit = (None, e)
            hit = self._dnfs[key] = hit + (mine, self.notes[notes_before:])
            self.notes[notes_before:] = []
        d, err, mine, notes = hit
        problems.extend(mine)
        self.notes.extend(notes)
        if err is not None:
            raise err
        return list(d)

    def subject(self, p: Policy, problems: list) -> list:
        d = self.dnf(p.selector, problems)
        if p.namespace:
            c = sel.conj({NS_KEY: _ns(p.namespace, problems), KIND: _pos("pod")})
            scope = [] if c is None else [c]
        elif p.namespace_selector is not None:
            ns = self.dnf(p.namespace_selector, problems, "namespace")
            scope = sel.dnf_and(ns, [sel.conj({KIND: _pos("pod")})])
            if self.has_heps:   # host endpoints have no namespace labels (see _outside)
                scope += [x for c in ns if c != () and KIND not in dict(c)
                          for x in [_outside(c, ("hep",))] if x is not None]
        else:
            kinds = ("pod", "hep") if self.has_heps else ("pod",)
            scope = [sel.conj({KIND: _pos(*kinds)})]
        if p.service_account_selector:
            problems.append(NotExpressible(
                "serviceaccount-labels",
                "serviceAccountSelector selects ServiceAccount labels: no Cilium form"))
        return sel.dnf_and(d, scope)

    def _scope(self, e: EntityRule, p: Policy, problems: list) -> list:
        if e.namespace_selector is not None:
            ns = self.dnf(e.namespace_selector, problems, "namespace")
            out = []
            for c in ns:
                if KIND in dict(c):
                    out.append(c)
                    continue
                # a namespace selector selects things in a namespace: pods and namespaced
                # network sets (all() means "any namespace": Felix rewrites it to has(name))
                inside = sel.conj_and(c, sel.conj({KIND: _pos("pod", "netset"),
                                                   NS_KEY: Constraint(False, frozenset({None}))}))
                if inside is not None:
                    out.append(inside)
                if c == ():
                    continue
                # ...but Felix evaluates it against every labelled thing, and global network
                # sets and host endpoints have no namespace labels: a negative term
                # (`name != 'dev'`, `!has(x)`) matches them too
                outside = _outside(c, ("netset", "hep") if self.has_heps else ("netset",))
                if outside is not None:
                    out.append(outside)
            return out
        if p.namespace:
            c = sel.conj({NS_KEY: _ns(p.namespace), KIND: _pos("pod", "netset")})
            return [] if c is None else [c]
        return [()]

    def endpoints(self, e: EntityRule, p: Policy, problems: list,
                  positive_only: bool = False) -> list | None:
        """DNF of endpoints an entity rule selects by labels; None if it has no label part.
        positive_only: leave notSelector out (peers() subtracts it as an address set)."""
        if not (e.selector or (e.not_selector and not positive_only)
                or e.namespace_selector is not None or e.service_accounts):
            if positive_only and e.not_selector and p.namespace:
                # Felix scopes a namespaced rule's notSelector-only side to the namespace
                return self._scope(e, p, problems)
            return None
        d = self.dnf(e.selector, problems)
        if e.not_selector and not positive_only:
            d = sel.dnf_minus(d, self.dnf(e.not_selector, problems))
        if e.service_accounts:
            if e.service_accounts.names:
                d = sel.dnf_and(d, [sel.conj({SA_KEY: _pos(*e.service_accounts.names),
                                             KIND: _pos("pod")})])
            if e.service_accounts.selector:
                problems.append(NotExpressible(
                    "serviceaccount-labels",
                    "serviceAccounts.selector selects ServiceAccount labels: no Cilium form"))
        return sel.dnf_and(d, self._scope(e, p, problems))

    def peers(self, e: EntityRule, p: Policy, problems: list) -> list[Peer]:
        _unknown_fields(e, KNOWN_ENTITY_FIELDS, problems)
        if getattr(e, "domains", ()):
            problems.append(NotExpressible("domains", "domains (DNS names) need Cilium toFQDNs "
                                                      "with a DNS proxy rule: not translated"))
            return [ANY_PEER]
        if e.services is not None:
            problems.append(NotExpressible("services", "services match: needs the Service from"
                                                       " an inventory (--from) to translate"))
            return [ANY_PEER]
        out = [x for x in self._peers(e, p, problems)
               if not (x.kind == "nets" and not x.nets)]   # nets all inside notNets: empty
        if e.not_selector and out:
            out = self._minus_not_selector(out, e.not_selector, problems)
        return out

    def _peers(self, e: EntityRule, p: Policy, problems: list) -> list[Peer]:
        """The peer set before notSelector (subtracted by the caller)."""
        eps = self.endpoints(e, p, problems, positive_only=True)
        if e.nets or e.not_nets:
            if not e.nets:
                # any address but these: every endpoint, every other address, the hosts
                if eps is not None:
                    problems.append(NotExpressible("selector-and-nets",
                                                   "selector AND notNets in one rule side"))
                return self._not_nets(e.not_nets, problems)
            if eps is None:
                return [make_nets(e.nets, e.not_nets)]
            # endpoints whose addresses are in nets: the endpoints alone are the superset
            # (the nets alone are not: as a peer they mean outside addresses, never pods)
            problems.append(NotExpressible("selector-and-nets",
                                           "selector AND nets in one rule side"))
        elif eps is None:
            return [ANY_PEER]
        out: list[Peer] = []
        for c in eps:
            out.extend(self._resolve_netsets(c, problems))
        return out

    def _minus_not_selector(self, peers: list[Peer], text: str, problems: list) -> list[Peer]:
        """Felix matches a selector against IP sets, so a notSelector excludes only the
        addresses of what it selects: everything else still matches, hosts and outside
        addresses included (a plain label difference would leave those out)."""
        neg: list[Peer] = []
        for c in self.dnf(text, problems):
            neg.extend(self._resolve_netsets(c, problems))
        hit = self.ranges.overlapping(x for n in neg if n.kind == "nets" for x in n.nets)
        if hit:
            # Felix would also exclude the pods and hosts whose addresses are in those sets;
            # Cilium cannot exclude endpoints by address (what is left is a superset)
            problems.append(NotExpressible(
                "not-selector-netset-cluster", "notSelector matches network sets overlapping "
                f"{self.ranges.describe(hit)}: endpoints in those ranges are excluded by "
                "address, which Cilium cannot say"))
        out = list(peers)
        for n in neg:
            out = [x for q in out for x in peer_minus(q, n)]
            if len(out) > sel.MAX_TERMS:
                raise NotExpressible("selector-too-complex",
                                     f"notSelector: more than {sel.MAX_TERMS} peer terms")
        return out

    def cluster_superset(self, boxes: list[Box]) -> list[Box]:
        """boxes plus, for user nets that reach into pod/node ranges, every endpoint and
        host: Calico matches those by address, a nets peer (outside addresses) never does."""
        out = list(boxes)
        for x in boxes:
            if x.peer.kind != "nets" or not x.peer.user or \
                    not self.ranges.overlaps(x.peer.nets):
                continue
            for q in (FULL["sel"], FULL["reserved"]):
                if Box(x.subject, q, x.l4) not in out:
                    out.append(Box(x.subject, q, x.l4))
        return out

    def _not_nets(self, not_nets, problems: list) -> list[Peer]:
        """Calico notNets alone: every address but these, pods and hosts included. Exact when
        the excluded ranges miss the cluster (all pods and hosts match) or hold all of it (none
        does); a partial overlap excludes some pods by address, which Cilium cannot say."""
        nets = Peer("nets", nets=make_nets(("0.0.0.0/0", "::/0"), not_nets).nets, user=False)
        excl = plain(net(x) for x in not_nets)
        hit = self.ranges.overlapping(excl)
        if not hit:
            return [FULL["sel"], FULL["reserved"], nets]
        if self.ranges.known and self.ranges.covered_by(excl):
            return [nets]
        problems.append(NotExpressible(
            "not-nets-cluster", f"notNets overlap {self.ranges.describe(hit)}: pods and nodes "
            "in those ranges are excluded by address, which Cilium cannot express"))
        return [ANY_PEER]

    def _resolve_netsets(self, c, problems: list) -> list[Peer]:
        """Network sets are address ranges: a selector that can match them becomes their nets
        (an address peer, like Calico nets) plus the endpoint part of the selector."""
        kind = dict(c).get(KIND)
        if kind is not None and not kind.matches("netset"):
            return [Peer("sel", conj=c)]
        nets, domains = self._netsets_matching(c)
        problems.extend(NotExpressible(
            "netset-domains", f"{d} lists allowedEgressDomains (Cilium toFQDNs needs a DNS "
            "proxy rule): not translated") for d in domains)
        out = [make_nets(sorted(nets))] if nets else []
        rest = sel.conj_and(c, sel.conj({KIND: _pos("pod", "hep")}))
        if rest is not None:
            out.append(Peer("sel", conj=rest))
        return out

    def _netsets_matching(self, c) -> tuple:
        """(nets, sources with domains) of the network sets a term selects; rules repeat the
        same peer selectors, so answers are kept per term."""
        hit = self._netset_hits.get(c)
        if hit is None:
            nets, domains = set(), []
            pinned = dict(c).get(NS_KEY)
            for labels, ns in self._netset_labels():
                if pinned is not None and not pinned.matches(ns.namespace):
                    continue      # (a global set has no namespace: ABSENT, i.e. None)
                if sel.matches(c, labels):
                    nets.update(ns.nets)
                    if ns.allowed_egress_domains:
                        domains.append(ns.source.describe())
            hit = self._netset_hits[c] = (nets, domains)
        return hit

    def _netset_labels(self) -> list:
        """(labels as a selector sees them, network set), built once."""
        if self._netset_cache is None:
            ns_labels = {n.name: n.labels for n in (self.inventory.namespaces
                                                    if self.inventory is not None else ())}
            self._netset_cache = []
            for ns in self.ps.network_sets:
                labels = {**ns.labels, KIND: "netset"}
                if ns.namespace:
                    labels[NS_KEY] = ns.namespace
                    labels.update({NSL_PREFIX + k: v
                                   for k, v in ns_labels.get(ns.namespace, {}).items()})
                self._netset_cache.append((labels, ns))
        return self._netset_cache

    def service(self, e: EntityRule, p: Policy):
        """(peers, l4s) for a `services` match, from the inventory's Service; None if unknown
        or selector-less (its endpoints are not pods we can select)."""
        ns = e.services.namespace or p.namespace
        for s in (self.inventory.services if self.inventory is not None else ()):
            if s.name != e.services.name or s.namespace != ns or not s.selector:
                continue
            c = sel.conj({**{k: _pos(v) for k, v in s.selector.items()},
                          NS_KEY: _pos(ns), KIND: _pos("pod")})
            l4s = []
            for sp in s.ports:
                proto = str(sp.get("protocol", "TCP")).upper()
                tp = sp.get("targetPort", sp.get("port"))
                if isinstance(tp, int) or str(tp).isdigit():
                    l4s.append(L4(proto, ((int(tp), int(tp)),)))
                elif tp:
                    l4s.append(L4(proto, None, (str(tp),)))
            return ([Peer("sel", conj=c)] if c is not None else []), l4s or [L4()]
        return None

    def l4s(self, r: Rule, problems: list) -> list[L4]:
        _unknown_fields(r, KNOWN_RULE_FIELDS, problems)
        proto = _proto(r.protocol, problems)
        if r.not_protocol is not None:
            problems.append(NotExpressible("not-protocol", "notProtocol has no Cilium form"))
        if r.not_icmp is not None:
            problems.append(NotExpressible("not-icmp", "notICMP has no Cilium form"))
        if r.http is not None:
            problems.append(NotExpressible("http", "HTTP match (L7) not translated exactly"))
        for side in (r.source, r.destination):
            if side is (r.source) and (side.ports or side.not_ports):
                problems.append(NotExpressible("source-ports",
                                               "source ports have no Cilium form"))
        if proto in ("ICMP", "ICMPv6") or r.icmp is not None:
            t = r.icmp.type if r.icmp else None
            if r.icmp is not None and r.icmp.code is not None:
                problems.append(NotExpressible("icmp-code", "ICMP code has no Cilium form"))
            return [L4(proto, None, None, t)]
        dst = r.destination
        if not (dst.ports or dst.not_ports):
            return [L4(proto)]
        if proto not in ("TCP", "UDP", "SCTP"):
            problems.append(NotExpressible("ports-without-protocol",
                                           "ports need protocol TCP, UDP or SCTP"))
            return [L4(proto)]
        nums = tuple(sorted((pr.first, pr.last) for pr in dst.ports if not pr.is_named))
        named = tuple(sorted(pr.name for pr in dst.ports if pr.is_named))
        out = []
        if nums or not dst.ports:
            iv = _merge(nums) if nums else ALL_PORTS
            not_nums = tuple((pr.first, pr.last) for pr in dst.not_ports if not pr.is_named)
            from .region import _iv_minus
            iv = _iv_minus(iv, not_nums)
            if iv:
                out.append(L4(proto, iv))
        if named:
            out.append(L4(proto, None, named))
        if any(pr.is_named for pr in dst.not_ports):
            problems.append(NotExpressible("named-not-ports", "named notPorts: no exact form"))
        return out

    def rule_boxes(self, p: Policy, subject: list, r: Rule, d: str, problems: list) -> list[Box]:
        peer_side, local_side = (r.source, r.destination) if d == "ingress" else \
            (r.destination, r.source)
        local = LocalSide(local_side)
        subj = subject
        eps = self.endpoints(local.entity, p, problems)
        if eps is not None:
            subj = sel.dnf_and(subj, eps)
        if local_side.nets or local_side.not_nets:
            problems.append(NotExpressible("local-nets", "nets on the policy's own endpoint "
                                                         "side have no Cilium form"))
        svc = self.service(peer_side, p) if peer_side.services is not None else None
        if svc is not None:
            peers, l4s = svc
            self.notes.append(("services", "services match translated to the Service's "
                               "backend pods and target ports (Cilium enforces after load "
                               "balancing)"))
        else:
            peers = self.peers(peer_side, p, problems)
            l4s = self.l4s(r, problems)
        if r.ip_version is not None and any(x.kind != "nets" for x in peers) \
                and not any(x.proto in ("ICMP", "ICMPv6") for x in l4s) \
                and self.families() != {r.ip_version}:
            problems.append(NotExpressible("ip-version", f"ipVersion {r.ip_version} only "
                                                         "narrows address peers in Cilium"))
        return [Box(s, q, x) for s in subj for q in peers for x in l4s]


@dataclass
class LocalSide:
    """The policy's own side of a rule (destination for ingress, source for egress): only its
    label parts restrict the subject; its ports are handled as L4."""
    raw: EntityRule

    @property
    def entity(self) -> EntityRule:
        r = self.raw
        return EntityRule(selector=r.selector, not_selector=r.not_selector,
                          namespace_selector=r.namespace_selector,
                          service_accounts=r.service_accounts)


KNOWN_ENTITY_FIELDS = {"nets", "not_nets", "selector", "not_selector", "namespace_selector",
                       "ports", "not_ports", "service_accounts", "services", "domains"}
KNOWN_RULE_FIELDS = {"action", "index", "protocol", "not_protocol", "icmp", "not_icmp",
                     "ip_version", "source", "destination", "http"}


def _unknown_fields(obj, known: set, problems: list) -> None:
    """A match field this translator does not know (added to the model later) must not be
    silently ignored: ignoring a match widens an Allow."""
    import dataclasses
    for f in dataclasses.fields(obj):
        if f.name not in known and getattr(obj, f.name) != f.default and \
                getattr(obj, f.name) != (f.default_factory() if f.default_factory
                                         is not dataclasses.MISSING else None):
            problems.append(NotExpressible("unknown-field", f"{f.name} is not translated"))


def _merge(iv):
    out = []
    for lo, hi in sorted(iv):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


