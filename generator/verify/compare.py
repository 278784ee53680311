"""verify(): Felix and Cilium verdicts over every flow class of a universe, compared.

A difference is "widening" when Calico denies and Cilium allows (a tenant's policy silently
opened), "over-restrictive" the other way (lost connectivity). A difference whose deciding rule
on either side, or whose endpoints, belong to a policy the translator's fidelity report already
declares approximate or untranslatable is listed as declared, not as a failure.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..calico import selector as calsel
from ..calico.model import PolicySet
from ..cilium.evaluator import CiliumModel
from .cidrs import CidrIndex, address, networks
from .flows import _all_cidrs
from .model import Endpoint, Flow, Verdict
from .universe import Universe, build_universe, referenced_keys


@dataclass(frozen=True)
class Difference:
    flow: Flow
    calico: Verdict
    cilium: Verdict
    kind: str                    # "widening" | "over-restrictive"
    declared_by: str | None = None   # the declared policy that explains it

    @property
    def declared(self) -> bool:
        return self.declared_by is not None

    @property
    def weight(self) -> int:
        return self.flow.src.weight * self.flow.dst.weight

    def to_dict(self) -> dict:
        f = self.flow
        return {"kind": self.kind, "declared_by": self.declared_by,
                "source": f.src.name, "destination": f.dst.name,
                "protocol": f.protocol, "port": f.port, "icmp_type": f.icmp_type,
                "calico": {"allowed": self.calico.allowed, "decided_by": self.calico.decided_by},
                "cilium": {"allowed": self.cilium.allowed, "decided_by": self.cilium.decided_by}}


@dataclass
class DifferenceGroup:
    """Differences with the same cause: same kind and deciding rules on both sides."""
    kind: str
    calico_rule: str
    cilium_rule: str
    declared_by: str | None
    example: Difference
    flows: int = 0
    weight: int = 0


@dataclass
class VerifyResult:
    universe: str                        # "synthetic" | "inventory"
    endpoints: int
    flow_classes: int
    flows_judged: int
    calico_allowed: int
    cilium_allowed: int
    differences: list[Difference]            # detailed, with counterexample verdicts
    notes: list[str] = field(default_factory=list)
    # differing flows beyond the detail limit: counted only
    omitted_widening: int = 0
    omitted_restrictive: int = 0
    omitted_undeclared: int = 0
    partial: bool = False                    # only part of the universe was judged

    @property
    def undeclared(self) -> list[Difference]:
        return [d for d in self.differences if not d.declared]

    @property
    def declared(self) -> list[Difference]:
        return [d for d in self.differences if d.declared]

    @property
    def widening(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "widening"]

    @property
    def total_differences(self) -> int:
        return len(self.differences) + self.omitted_widening + self.omitted_restrictive

    @property
    def total_widening(self) -> int:
        return len(self.widening) + self.omitted_widening

    @property
    def total_undeclared(self) -> int:
        return len(self.undeclared) + self.omitted_undeclared

    @property
    def ok(self) -> bool:
        return self.total_undeclared == 0

    def groups(self) -> list[DifferenceGroup]:
        out: dict[tuple, DifferenceGroup] = {}
        for d in self.differences:
            key = (d.kind, d.calico.decided_by, d.cilium.decided_by, d.declared_by)
            g = out.get(key)
            if g is None:
                g = out[key] = DifferenceGroup(d.kind, d.calico.decided_by, d.cilium.decided_by,
                                               d.declared_by, d)
            g.flows += 1
            g.weight += d.weight
        return sorted(out.values(), key=lambda g: (g.declared_by is not None,
                                                   g.kind != "widening", -g.flows,
                                                   g.calico_rule, g.cilium_rule))

    def connection_changes(self) -> list[tuple[tuple, tuple[int, int]]]:
        """((kind, from, to, L4), (flows, weighted connections)), most connections first.
        from/to: a namespace for pods, "host", or "world"."""
        def where(ep):
            return ep.namespace if ep.kind == "pod" else "host" if ep.kind == "host" else "world"
        agg: dict[tuple, list[int]] = {}
        for d in self.undeclared:
            f = d.flow
            l4 = (f"{f.protocol}/{f.port}" if f.port is not None else
                  f"{f.protocol} type {f.icmp_type}" if f.icmp_type is not None else f.protocol)
            key = (d.kind, where(f.src), where(f.dst), l4)
            a = agg.setdefault(key, [0, 0])
            a[0] += 1
            a[1] += d.weight
        return sorted(((k, (v[0], v[1])) for k, v in agg.items()),
                      key=lambda kv: (kv[0][0] != "widening", -kv[1][1], kv[0]))

    def to_dict(self) -> dict:
        return {"universe": self.universe, "endpoints": self.endpoints,
                "flow_classes": self.flow_classes, "flows_judged": self.flows_judged,
                "calico_allowed": self.calico_allowed, "cilium_allowed": self.cilium_allowed,
                "differences": self.total_differences, "undeclared": self.total_undeclared,
                "widening": self.total_widening, "detailed": len(self.differences),
                "ok": self.ok, "notes": list(self.notes),
                "groups": [{"kind": g.kind, "calico_rule": g.calico_rule,
                            "cilium_rule": g.cilium_rule, "declared_by": g.declared_by,
                            "flows": g.flows, "weight": g.weight,
                            "example": g.example.to_dict()} for g in self.groups()]}

    def summary_markdown(self, limit: int = 20) -> str:
        """Markdown for a PR description: the allowed-connection diff, then counterexamples."""
        w = self.total_widening
        lines = [
            "### Policy equivalence (Calico vs Cilium)",
            "",
            "| | count |",
            "|---|---:|",
            f"| universe | {self.universe}: {self.endpoints} endpoints, {self.flow_classes} L4 classes"
            f"{' (**partial**, see below)' if self.partial else ''} |",
            f"| flows judged | {self.flows_judged} |",
            f"| allowed under Calico | {self.calico_allowed} |",
            f"| allowed under Cilium | {self.cilium_allowed} |",
            f"| differences | {self.total_differences} |",
            f"| widening (Calico denies, Cilium allows) | {w} |",
            f"| over-restrictive (Calico allows, Cilium denies) | {self.total_differences - w} |",
            f"| declared in the fidelity report | {self.total_differences - self.total_undeclared} |",
            f"| **undeclared** | **{self.total_undeclared}** |",
            "",
        ]
        changes = self.connection_changes()
        if changes:
            lines += ["Allowed connections that change (by namespace and port):", "",
                      "| change | from | to | L4 | flows | connections |",
                      "|---|---|---|---|---:|---:|"]
            for (kind, src, dst, l4), (n, w) in changes[:limit]:
                verb = "newly allowed" if kind == "widening" else "newly denied"
                lines.append(f"| {verb} | {_md(src)} | {_md(dst)} | {l4} | {n} | {w} |")
            if len(changes) > limit:
                lines.append(f"\n{len(changes) - limit} more rows not shown.")
            lines.append("")
        groups = self.groups()
        if groups:
            lines += ["| kind | flows | example | Calico | Cilium | declared |",
                      "|---|---:|---|---|---|---|"]
            for g in groups[:limit]:
                e = g.example
                cal = f"{'allow' if e.calico.allowed else 'deny'}: {g.calico_rule}"
                cil = f"{'allow' if e.cilium.allowed else 'deny'}: {g.cilium_rule}"
                lines.append(f"| {g.kind} | {g.flows} | `{_md(e.flow.describe())}` | {_md(cal)} "
                             f"| {_md(cil)} | {_md(g.declared_by or 'no')} |")
            if len(groups) > limit:
                lines.append(f"\n{len(groups) - limit} more groups not shown.")
        else:
            lines.append("Every judged flow has the same verdict under Calico and Cilium.")
        for n in self.notes:
            lines.append(f"\n_{_md(n)}_")
        return "\n".join(lines) + "\n"

    def text(self, limit: int = 50) -> str:
        """Plain text for the terminal: one counterexample per group."""
        out = [f"{self.flows_judged} flows judged over {self.endpoints} endpoints "
               f"({self.universe}), {self.total_differences} differences "
               f"({self.total_widening} widening, {self.total_undeclared} undeclared)"]
        for g in self.groups()[:limit]:
            e = g.example
            tag = f"declared ({g.declared_by})" if g.declared_by else "UNDECLARED"
            out.append(f"{g.kind.upper()} {tag}: {g.flows} flows, e.g. {e.flow.describe()}")
            out.append(f"    calico: {'allow' if e.calico.allowed else 'deny'} by {e.calico.decided_by}")
            out.append(f"    cilium: {'allow' if e.cilium.allowed else 'deny'} by {e.cilium.decided_by}")
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- Felix side

def felix_model(policy_set: PolicySet):
    """The Calico evaluator (generator/calico/felix.py) as an object with verdict(flow)."""
    from ..calico import felix
    if hasattr(felix, "FelixModel"):
        return felix.FelixModel(policy_set)

    class _Adapter:
        def verdict(self, flow):
            return felix.verdict(policy_set, flow, None)
    return _Adapter()


# --------------------------------------------------------------------------- declared

def _entry_name(e) -> str | None:
    """'Kind ns/name' of one report entry (PolicyReport, its JSON dict, or a plain string)."""
    if isinstance(e, str):
        return e
    get = e.get if isinstance(e, dict) else (lambda k, d=None: getattr(e, k, d))
    src = get("source", None)
    if hasattr(src, "describe"):
        return src.describe()
    if isinstance(src, dict):
        get = src.get
    elif isinstance(src, str):
        return src
    kind, ns, name = get("kind", None), get("namespace", None), get("name", None)
    if name is None:
        return None
    return f"{kind} {ns}/{name}" if kind and ns else f"{kind} {name}" if kind else str(name)


def declared_policies(declared) -> dict[str, str]:
    """{'Kind ns/name': label} of source policies the fidelity report marks as not exact.

    Accepts the translator's FidelityReport (generator/translate/report.py), its JSON form
    ({"policies": [...]}) or list, a mapping {policy: fidelity}, or a list of policy names."""
    out: dict[str, str] = {}
    if declared is None:
        return out
    entries = declared
    if isinstance(declared, dict) and isinstance(declared.get("policies"), list):
        entries = declared["policies"]
    elif not isinstance(declared, (dict, list, tuple)) and hasattr(declared, "policies"):
        entries = declared.policies
    if isinstance(entries, dict):
        entries = [{"source": k, "fidelity": v} for k, v in entries.items()]
    for e in entries:
        name = _entry_name(e)
        if name is None:
            continue
        if isinstance(e, str):
            out[name] = name
            continue
        get = e.get if isinstance(e, dict) else (lambda k, d=None, e=e: getattr(e, k, d))
        fidelity = str(get("fidelity", None) or get("status", None) or "")
        if fidelity.lower() in ("exact", "ok", ""):
            continue
        label = out[name] = f"{name} ({fidelity.lower()})"
        # the Cilium objects made from it name the policy on the Cilium side
        for o in get("outputs", None) or ():
            if isinstance(o, dict):
                o = (o.get("kind"), o.get("namespace"), o.get("name"))
            kind, ns, oname = (tuple(o) + (None, None, None))[:3]
            if kind and oname:
                out.setdefault(f"{kind} {ns}/{oname}" if ns else f"{kind} {oname}", label)
    return out


def _with_aliases(decl: dict[str, str], policy_set: PolicySet) -> dict[str, str]:
    """Add the names Felix uses in decided_by ('NetworkPolicy ns/tier.name', ...)."""
    out = dict(decl)
    for p in policy_set.policies:
        names = {p.source.describe(), f"{p.source.kind} {p.name}",
                 f"NetworkPolicy {p.namespace}/{p.source.name}" if p.namespace else ""}
        hit = next((decl[n] for n in sorted(names) if n and n in decl), None)
        if hit is None:
            continue
        if p.source.kind == "KubernetesNetworkPolicy":
            out.setdefault(f"KubernetesNetworkPolicy {p.namespace}/{p.source.name}", hit)
        else:
            label = f"{p.tier}.{p.name}"
            out.setdefault(f"{p.source.kind} {p.namespace}/{label}" if p.namespace
                           else f"{p.source.kind} {label}", hit)
    return out


def _declared_by(diff_flow: Flow, cal: Verdict, cil: Verdict, decl: dict[str, str],
                 subjects: dict[str, list], cm: CiliumModel | None = None) -> str | None:
    texts = f" {cal.decided_by} ; {cil.decided_by} "
    for name, label in decl.items():
        if f" {name} " in texts:
            return label
    if cm is not None and not cil.allowed and cil.decided_by.startswith("default deny"):
        # the Cilium policies that put the endpoint in default deny: one made from a declared
        # policy (e.g. enforced on a superset of its endpoints) explains the difference
        ep = diff_flow.src if cil.direction == "egress" else diff_flow.dst
        for pol in cm.selecting(ep):
            if not pol.default_deny.get(cil.direction or "", False):
                continue
            for name, label in decl.items():
                if pol.where == name or pol.where.startswith(name + " "):
                    return label
    # a declared policy that applies to the endpoint where the verdicts part explains the
    # difference too (e.g. a refused Deny enforced on a superset through a later allow)
    direction = (cil if not cil.allowed else cal).direction
    for name, label in decl.items():
        for applies in subjects.get(name, ()):
            if applies(diff_flow, direction):
                return label
    return None


def _subject_tests(policy_set: PolicySet, decl: dict[str, str]) -> dict[str, list]:
    """For each declared policy: tests 'does it select the flow's source or destination'."""
    out: dict[str, list] = {}
    # a declared name matches a policy when it is its description or name, a space-separated
    # tail of its description, or ends in "/name" or " name": index the names by those tails
    # (a scan of every name for every policy is quadratic: 20,000 policies take minutes)
    rank = {n: i for i, n in enumerate(decl)}
    by_tail: dict[str, list] = {}
    for n in decl:
        for sep in ("/", " "):
            if sep in n:
                by_tail.setdefault(n.rsplit(sep, 1)[1], []).append(n)
    for p in policy_set.policies:
        desc = p.source.describe()
        parts = desc.split(" ")
        found = {n for n in (desc, p.name, *(" ".join(parts[i:]) for i in range(1, len(parts))))
                 if n in rank}
        found.update(n for n in by_tail.get(p.name, ())
                     if n.endswith("/" + p.name) or n.endswith(" " + p.name))
        names = sorted(found, key=rank.__getitem__)
        if not names:
            continue
        try:
            sel = calsel.parse(p.selector)
            nsel = calsel.parse(p.namespace_selector) if p.namespace_selector else None
        except calsel.SelectorError:
            continue

        def applies(flow, direction, p=p, sel=sel, nsel=nsel):
            sides = {"egress": ((flow.src, "Egress"),), "ingress": ((flow.dst, "Ingress"),)}.get(
                direction, ((flow.src, "Egress"), (flow.dst, "Ingress")))
            for ep, typ in sides:
                if ep.kind != "pod" or typ not in p.types:
                    continue
                if p.namespace is not None and ep.namespace != p.namespace:
                    continue
                if nsel is not None and not nsel.evaluate(ep.namespace_label_dict):
                    continue
                labels = ep.label_dict | {"projectcalico.org/namespace": ep.namespace or "",
                                          "projectcalico.org/serviceaccount": ep.service_account or ""}
                if sel.evaluate(labels):
                    return True
            return False
        for n in names:
            out.setdefault(n, []).append(applies)
    return out


# --------------------------------------------------------------------------- verify

MAX_DETAILED = 20_000     # differing flows kept with full verdicts (the rest are counted)

def judge_flows(universe: Universe):
    """Every flow class: all ordered endpoint pairs (not external to external) x L4 classes."""
    eps = universe.endpoints
    for src in eps:
        for dst in eps:
            if src is dst or (src.kind == "external" and dst.kind == "external"):
                continue
            for l4 in universe.l4:
                yield Flow(src=src, dst=dst, protocol=l4.protocol, port=l4.port,
                           icmp_type=l4.icmp_type)


class SideCache:
    """Per-direction verdicts cached by (subject, peer class).

    A side verdict (egress at the source, ingress at the destination) depends on the subject
    and on what the subject's rules can see of the peer: its kind, namespace, the label keys
    those rules read (pod, namespace and service-account labels), its service account, which
    CIDRs contain its address, its named ports (egress: the peer is the destination), and for
    hosts the node. Peers equal in all of that share one verdict vector over the L4 classes;
    a subject no policy selects has one vector for every peer."""

    def __init__(self, side, keys_for, l4s, global_keys: set[str], cidrs: list,
                 side_vector=None):
        self.side = side                  # (subject, flow, direction) -> Verdict | None
        self.side_vector = side_vector    # optional: a whole vector at once
        self.keys_for = keys_for          # (subject, direction) -> set | None | "all"
        self.l4s = l4s
        self.global_keys = global_keys
        self.cidrs = cidrs
        self.cidr_index: CidrIndex | None = None     # built on first use
        self.keys: dict = {}
        self.ipsig: dict = {}
        # peer_key as small ints (see peer_class), vectors as small ints (see vector_id):
        # the pair loop hashes ints, not label tuples or 33-long vectors, 4 times a pair
        self.keysets: dict = {}         # (id(subject), direction) -> key set number
        self.keyset_numbers: dict = {}
        self.classes: dict = {}         # (key set number, direction, id(peer)) -> (peer, class)
        self.class_numbers: dict = {}
        self.ids: dict = {}             # (id(subject), direction, class) -> vector number
        self.id_numbers: dict = {}
        self.by_id: list = []           # vector number -> vector

    def _ip_sig(self, ip):
        got = self.ipsig.get(ip)
        if got is None:
            if self.cidr_index is None:
                self.cidr_index = CidrIndex(self.cidrs)
            a = address(ip)
            got = () if a is None else self.cidr_index.indexes(self.cidr_index.distinct_int(*a))
            self.ipsig[ip] = got
        return got

    def peer_key(self, subject: Endpoint, peer: Endpoint, direction: str):
        k = (id(subject), direction)
        got = self.keys.get(k)
        if got is None:
            try:
                keys = self.keys_for(subject, direction)
            except Exception:       # an evaluator without the introspection: read every key
                keys = "all"
            keys = self.global_keys if keys == "all" else keys
            got = self.keys[k] = (subject, keys)
        keys = got[1]
        if keys is None:
            return ()
        def proj(labels):
            return tuple(kv for kv in labels if kv[0] in keys)
        host = peer.kind == "host"
        return (peer.kind, peer.namespace, proj(peer.labels), proj(peer.namespace_labels),
                peer.service_account, proj(peer.service_account_labels), self._ip_sig(peer.ip),
                peer.named_ports if direction == "egress" else (),
                (peer.node, peer.ip, proj(peer.node_labels)) if host else None)

    def peer_class(self, subject: Endpoint, peer: Endpoint, direction: str) -> int:
        """peer_key as a small int. peer_key depends on the subject only through the label
        keys its rules read: subjects with equal key sets share every peer's class."""
        k = (id(subject), direction)
        ks = self.keysets.get(k)
        if ks is None:
            self.peer_key(subject, subject, direction)      # fills self.keys[k]
            keys = self.keys[k][1]
            ks = self.keysets[k] = self.keyset_numbers.setdefault(
                None if keys is None else frozenset(keys), len(self.keyset_numbers))
        ck = (ks, direction, id(peer))
        got = self.classes.get(ck)
        if got is None or got[0] is not peer:
            got = self.classes[ck] = (peer, self.class_numbers.setdefault(
                self.peer_key(subject, peer, direction), len(self.class_numbers)))
        return got[1]

    def vector_id(self, subject: Endpoint, src: Endpoint, dst: Endpoint, direction: str) -> int:
        """vector() as a small int (equal numbers: equal vectors); self.by_id[n] is it."""
        peer = dst if direction == "egress" else src
        key = (id(subject), direction, self.peer_class(subject, peer, direction))
        got = self.ids.get(key)
        if got is None:
            vec = self._compute(subject, src, dst, direction)
            got = self.id_numbers.get(vec)
            if got is None:
                got = self.id_numbers[vec] = len(self.by_id)
                self.by_id.append(vec)
            self.ids[key] = got
        return got

    def vector(self, subject: Endpoint, src: Endpoint, dst: Endpoint, direction: str):
        """Allowed per L4 class at subject (egress at src, ingress at dst)."""
        return self.by_id[self.vector_id(subject, src, dst, direction)]

    def _compute(self, subject: Endpoint, src: Endpoint, dst: Endpoint, direction: str):
        if self.side_vector is not None:
            vec = self.side_vector(subject, src, dst, direction, self.l4s)
            return (True,) * len(self.l4s) if vec is None else vec
        out = []
        for l4 in self.l4s:
            v = self.side(subject, Flow(src, dst, l4.protocol, l4.port, l4.icmp_type), direction)
            out.append(v is None or v.allowed)
        return tuple(out)


def _felix_keys(fx, policy_set: PolicySet):
    """(subject, direction) -> label keys Felix's rules read from the peer (None: unpoliced)."""
    def keys_for(ep, direction):
        chain = fx.chain(ep, direction)[0]
        if not chain:
            return None
        keys: set[str] = set()
        for _tier, pols in chain:
            for item in pols:
                cp = item[0] if isinstance(item, tuple) else item
                pol = getattr(cp, "policy", cp)
                for r in (pol.ingress if direction == "ingress" else pol.egress):
                    ent = r.source if direction == "ingress" else r.destination
                    for t in (ent.selector, ent.not_selector, ent.namespace_selector,
                              ent.service_accounts.selector if ent.service_accounts else None):
                        if t:
                            keys.update(calsel.label_keys(calsel.parse(t)))
        return keys
    return keys_for


def verify(policy_set: PolicySet, cilium_objects: list[dict], *, inventory=None, declared=None,
           felix=None, universe: Universe | None = None, exhaustive: bool = False,
           max_detailed: int = MAX_DETAILED, max_endpoints: int | None = None) -> VerifyResult:
    """Compare Felix and Cilium verdicts over every flow class of the universe.

    felix: a Calico evaluator with verdict(flow) (default: generator.calico.felix);
    universe: a prebuilt universe (default: from the inventory, else synthetic);
    exhaustive: evaluate every flow in full (no per-side caching; for cross-checks);
    max_endpoints: judge only that many endpoint classes (the comparison is quadratic in them);
    the result then says it is partial (VerifyResult.partial)."""
    # each walks every Cilium object: once here, for the universe and the side caches
    gkeys = referenced_keys(policy_set, cilium_objects)
    cidr_texts = _all_cidrs(policy_set, cilium_objects)
    uni = universe or build_universe(policy_set, cilium_objects, inventory, keys=gkeys,
                                     cidrs=cidr_texts)
    uni, partial_note = _bounded(uni, max_endpoints)
    fx = felix or felix_model(policy_set)
    cm = CiliumModel(cilium_objects)
    decl = _with_aliases(declared_policies(declared), policy_set)
    subjects = _subject_tests(policy_set, decl) if decl else {}
    diffs: list[Difference] = []
    judged = cal_allowed = cil_allowed = 0

    omitted = [0, 0, 0]          # widening, over-restrictive, undeclared beyond the limit
    pattern: dict = {}

    def differ(flow, cv=None, lv=None, keep=True):
        cv = cv or fx.verdict(flow)
        lv = lv or cm.verdict(flow)
        kind = "widening" if lv.allowed else "over-restrictive"
        d = Difference(flow, cv, lv, kind,
                       _declared_by(flow, cv, lv, decl, subjects, cm) if decl else None)
        if keep:
            diffs.append(d)
        return d

    if exhaustive or not (hasattr(fx, "side") and hasattr(fx, "chain")):
        for flow in judge_flows(uni):
            judged += 1
            cv = fx.verdict(flow)
            lv = cm.verdict(flow)
            cal_allowed += cv.allowed
            cil_allowed += lv.allowed
            if cv.allowed != lv.allowed:
                differ(flow, cv, lv)
    else:
        cidrs = networks(cidr_texts)
        fside = SideCache(fx.side, _felix_keys(fx, policy_set), uni.l4, gkeys, cidrs,
                          getattr(fx, "side_vector", None))
        cside = SideCache(cm.side, cm.peer_keys, uni.l4, gkeys, cidrs, cm.side_vector)
        combos: dict = {}
        n = len(uni.l4)
        eps = uni.endpoints
        # external to external is not judged: skip those pairs without visiting them (a
        # bounded universe can hold thousands of external addresses)
        not_external = [e for e in eps if e.kind != "external"]
        for src in eps:
            for dst in (not_external if src.kind == "external" else eps):
                if src is dst:
                    continue
                key = (fside.vector_id(src, src, dst, "egress"),
                       fside.vector_id(dst, src, dst, "ingress"),
                       cside.vector_id(src, src, dst, "egress"),
                       cside.vector_id(dst, src, dst, "ingress"))
                got = combos.get(key)
                if got is None:
                    fe, fi = fside.by_id[key[0]], fside.by_id[key[1]]
                    ce, ci = cside.by_id[key[2]], cside.by_id[key[3]]
                    fa = [a and b for a, b in zip(fe, fi)]
                    ca = [a and b for a, b in zip(ce, ci)]
                    got = combos[key] = (sum(fa), sum(ca),
                                         tuple((i, ca[i]) for i in range(n) if fa[i] != ca[i]))
                judged += n
                cal_allowed += got[0]
                cil_allowed += got[1]
                for i, widening in got[2]:
                    if len(diffs) < max_detailed:
                        l4 = uni.l4[i]
                        d = differ(Flow(src, dst, l4.protocol, l4.port, l4.icmp_type))
                        pattern[(key, i)] = pattern.get((key, i), False) or not d.declared
                        continue
                    # counted only, classified like the first difference with the same
                    # verdict pattern (judged in full once, not kept)
                    if widening:
                        omitted[0] += 1
                    else:
                        omitted[1] += 1
                    if (key, i) not in pattern:
                        l4 = uni.l4[i]
                        pattern[(key, i)] = not differ(
                            Flow(src, dst, l4.protocol, l4.port, l4.icmp_type), keep=False).declared
                    if pattern[(key, i)]:
                        omitted[2] += 1
    notes = list(uni.notes) + ([partial_note] if partial_note else [])
    if sum(omitted[:2]):
        notes.append(f"{sum(omitted[:2])} more differing flows counted but not detailed "
                     f"(limit {max_detailed})")
    return VerifyResult(uni.kind, len(uni.endpoints), len(uni.l4), judged, cal_allowed,
                        cil_allowed, diffs, notes, omitted[0], omitted[1], omitted[2],
                        partial=bool(partial_note))


def _bounded(uni: Universe, max_endpoints: int | None) -> tuple[Universe, str]:
    """At most max_endpoints endpoint classes: hosts and outside addresses take at most a third
    (hosts first; a large cluster's policies name thousands of address ranges, which would
    otherwise leave no room for a single pod), pod classes the rest; each group in a stable
    order spread by a hash of the name (so every namespace has a chance), the classes
    standing for most pods first within that spread. Deterministic."""
    eps = uni.endpoints
    if max_endpoints is None or len(eps) <= max_endpoints:
        return uni, ""
    spread = lambda e: (e.kind != "host", hashlib.sha256(e.name.encode()).digest(), -e.weight)
    fixed = sorted((e for e in eps if e.kind != "pod"), key=spread)
    pods = sorted((e for e in eps if e.kind == "pod"), key=spread)
    fixed_kept = fixed[:max(max_endpoints // 3, max_endpoints - len(pods))]
    keep = fixed_kept + pods[:max(0, max_endpoints - len(fixed_kept))]
    order = {id(e): i for i, e in enumerate(eps)}
    keep.sort(key=lambda e: order[id(e)])
    n_pods = len(keep) - len(fixed_kept)
    note = (f"PARTIAL: {len(keep)} of {len(eps)} endpoint classes judged ({n_pods} of "
            f"{len(pods)} pod classes, {len(fixed_kept)} of {len(fixed)} hosts and outside "
            f"addresses). The comparison is quadratic: `cni-migrate verify --from SNAPSHOT` "
            f"judges all {len(eps) ** 2:,} class pairs"
            + (", hours of work at this size" if len(eps) > 10_000 else ""))
    return Universe(keep, uni.l4, uni.kind, list(uni.notes)), note
