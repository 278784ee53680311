"""Calico's ordered tiers/policies/rules -> order-free allow and deny regions (Cilium's model).

Per direction, rules are walked in Felix order (tiers by order then name, policies by order then
name, rules in order). Cilium has no order, but deny beats allow, which gives:
- Allow R: emitted as R minus the Pass rules earlier in its tier, and restricted to flows that
  earlier tiers (and earlier catch-all drops) let through: R ∩ (¬blocked ∪ passed).
  An earlier Deny needs no subtraction: the emitted deny wins in Cilium anyway.
- Deny D: emitted as D minus every allow emitted before it (those flows were decided earlier)
  and minus earlier Pass rules of its tier. When that difference has no Cilium form, D becomes a
  *barrier*: nothing is emitted for it, the subject stays in default deny, and every later allow
  is restricted by D instead (the same mechanism as an end-of-tier drop).
- Pass: remembered for the rest of its tier (later rules are not reached by those flows) and as
  an escape from the tier's end-of-tier drop.
- End of tier (defaultAction Deny): a barrier over the tier's subjects, escaped by its Pass
  rules; realised by Cilium's default deny (every subject gets a policy with that direction).
- Profiles: pods with no decision after the last tier are allowed: an allow-all restricted by
  every barrier, only where some policy selects the pod (elsewhere Cilium allows by default).
- Log: no Cilium equivalent; reported (Hubble flow logs replace it).
Anything inexact is dropped on the *safe* side by default: an Allow that cannot be expressed is
left out (access shrinks), a Deny that cannot be expressed becomes a barrier on a superset. A
policy whose own selector cannot be expressed is refused whole (see translate/__init__.py).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ..calico import selector as cs
from ..calico.model import Policy, PolicySet
from . import selectors as sel
from .match import Builder, _pos
from .region import (ANY_L4, ANY_PEER, Box, BoxSet, NsIndex, region_inter_set, region_minus,
                     region_minus_set)
from .report import Finding, PolicyReport
from .selectors import KIND, NotExpressible

DIRECTIONS = ("ingress", "egress")


@dataclass
class Compiled:
    """What one Calico policy becomes: regions to allow/deny per direction."""
    policy: Policy
    report: PolicyReport
    subject: list = field(default_factory=list)        # DNF (exact, or a superset)
    subject_exact: bool = True
    directions: tuple = ()
    allows: dict = field(default_factory=lambda: {d: [] for d in DIRECTIONS})  # d -> [(Box, label)]
    denies: dict = field(default_factory=lambda: {d: [] for d in DIRECTIONS})
    restricted: bool = False     # an allow was cut by ordering (a raw KNP would be too wide)


@dataclass
class Program:
    compiled: list[Compiled]
    profile_allows: dict          # direction -> [Box]
    log_rules: bool = False


class Barriers:
    """(blocks, escapes) pairs: later allows may not reach blocks minus escapes. Applied
    whole-subject barriers first (intersection commutes: the region they leave often misses
    the finer ones, whose complements Cilium may not be able to express), then in order.
    Indexed like BoxSet: a namespaced rule only meets the barriers of its namespaces and the
    unpinned ones (a large cluster has thousands of barriers, nearly all namespaced)."""

    def __init__(self):
        self.items: list = []          # (rank, blocks, escapes); rank orders the application
        self.index = NsIndex()         # barrier number, under its blocks' namespaces

    def add(self, blocks, escapes) -> None:
        blocks, escapes = BoxSet(blocks), BoxSet(escapes)
        whole = all(b.peer == ANY_PEER and b.l4 == ANY_L4 for b in blocks)
        self.index.add(len(self.items), blocks.index.namespaces())
        self.items.append(((0 if whole else 1, len(self.items)), blocks, escapes))

    def relevant(self, region) -> list:
        """The barriers whose blocks may meet region, in application order."""
        found = self.index.meeting(region)
        if found is None:
            found = range(len(self.items))
        return [(b, e) for _, b, e in sorted(self.items[i] for i in found)]


def _restrict(region: list, barriers: Barriers) -> tuple[list, bool]:
    """region ∩ (¬blocks ∪ escapes) for every barrier; says whether anything was cut.
    (The region only shrinks towards its own namespaces, so the relevant barriers are
    chosen once.)"""
    changed = False
    for blocks, escapes in barriers.relevant(region):
        hit = region_inter_set(region, blocks)
        if not hit:
            continue
        before = region
        region = region_minus_set(region, blocks) + region_inter_set(hit, escapes)
        try:   # cut for real, or all escaped through Pass rules?
            changed = changed or (set(before) != set(region)
                                  and bool(region_minus(before, region)))
        except NotExpressible:
            changed = True
    return region, changed


def policy_label(p: Policy) -> str:
    return p.source.describe()


def sorted_tiers(ps: PolicySet) -> list:
    names = {p.tier for p in ps.policies}
    tiers = [ps.tier(n) for n in names]
    return sorted(tiers, key=lambda t: (t.order, t.name))


def compile_policies(ps: PolicySet, *, approximate: bool, values: dict | None,
                     emittable, reports: dict, inventory=None, ranges=None) -> Program:
    """emittable(box) -> None or a NotExpressible explaining why Cilium cannot say it."""
    b = Builder(ps, values, inventory, ranges)
    compiled: dict[int, Compiled] = {}
    order = []
    for t in sorted_tiers(ps):
        for p in sorted((p for p in ps.policies if p.tier == t.name), key=Policy.sort_key):
            order.append((t, p))
    for t, p in order:
        rep = reports[id(p)]
        problems: list = []
        try:
            subject = b.subject(p, problems)
        except (cs.SelectorError, NotExpressible) as e:
            rep.add(Finding(getattr(e, "code", "bad-selector"), str(e), None, "untranslatable"))
            subject = []
        for code, msg in dict.fromkeys(b.notes):
            rep.add(Finding(code, f"policy selector: {msg}", None, "approximate"))
        b.notes = []
        c = Compiled(p, rep, subject, not problems,
                     tuple(d for d in DIRECTIONS if d.capitalize() in p.types))
        for e in problems:
            rep.add(Finding(e.code, f"policy selector: {e.message}", None, "untranslatable"))
        if problems:
            # Enforcing it on a superset would put every endpoint of the superset into default
            # deny (a selector on a filtered label becomes "all pods": a cluster-wide outage),
            # so the policy is refused instead, loudly: nothing is emitted for it
            rep.add(Finding("subject-refused", "Cilium cannot select this policy's endpoints "
                            "exactly, so nothing is emitted for it: those endpoints are not "
                            "isolated by it in Cilium and any deny it holds is not enforced. "
                            "Fix the selector (or relabel the pods) before migrating", None,
                            "untranslatable"))
        if not subject and not problems and not rep.findings:
            rep.add(Finding("selects-nothing", "the policy selects no endpoint (e.g. a "
                            "placeholder value no label can have): nothing to emit", None,
                            "exact"))
        for flag, what in ((p.do_not_track, "doNotTrack"), (p.pre_dnat, "preDNAT"),
                           (p.apply_on_forward, "applyOnForward")):
            if flag:
                rep.add(Finding("unsupported-mode", f"{what} policies have no Cilium form",
                                None, "untranslatable"))
        compiled[id(p)] = c
    _equal_orders(order, compiled)
    prog = Program([compiled[id(p)] for _, p in order], {d: [] for d in DIRECTIONS})
    for d in DIRECTIONS:
        _direction(d, order, compiled, b, prog, approximate, emittable)
    return prog


def _equal_orders(order, compiled) -> None:
    """Calico breaks order ties by name, but the key differs across versions: warn when tied
    policies can select the same endpoint in the same direction."""
    for (t1, p1), (t2, p2) in zip(order, order[1:]):
        if t1 is not t2 or p1.order != p2.order:
            continue
        c1, c2 = compiled[id(p1)], compiled[id(p2)]
        shared = set(c1.directions) & set(c2.directions)
        rules = [r for p in (p1, p2) for d in shared
                 for r in (p.ingress if d == "ingress" else p.egress)]
        if all(r.action == "Allow" for r in rules):
            continue      # allows are a union: their order cannot matter
        if any(sel.conj_and(a, b) is not None for a in c1.subject for b in c2.subject):
            for c, other in ((c1, p2), (c2, p1)):
                c.report.add(Finding("equal-order", f"same order as {other.source.describe()} "
                                     "and may select the same endpoints: translated with "
                                     "ties broken by name", None, "exact"))


def _direction(d, order, compiled, b: Builder, prog: Program, approximate, emittable):
    barriers = Barriers()
    allowed = BoxSet()             # every allow box emitted so far
    subjects_all: dict = {}        # ordered set of subject terms
    tier_of = None
    pass_super = BoxSet()          # Pass regions (superset): cut from later allows in the tier
    pass_exact = BoxSet()          # Pass regions (subset): escapes, cut from later denies
    tier_subject: dict = {}

    def close_tier(tier):
        if tier is not None and tier.default_action != "Pass":
            barriers.add([Box(s) for s in tier_subject], pass_exact)

    for tier, p in order:
        if tier is not tier_of:
            close_tier(tier_of)
            tier_of, pass_super, pass_exact, tier_subject = tier, BoxSet(), BoxSet(), {}
        c = compiled[id(p)]
        if d not in c.directions or not c.subject or not c.subject_exact:
            continue
        if p.do_not_track or p.pre_dnat:
            _untracked(d, p, c, b)
            continue
        tier_subject.update(dict.fromkeys(c.subject))
        subjects_all.update(dict.fromkeys(c.subject))
        rules = p.ingress if d == "ingress" else p.egress
        for r in rules:
            label = f"{d}[{r.index}]"
            problems: list = []
            b.notes = []
            try:
                boxes = b.rule_boxes(p, c.subject, r, d, problems)
            except (cs.SelectorError, NotExpressible) as e:
                c.report.add(Finding(getattr(e, "code", "bad-selector"), str(e), label,
                                     "untranslatable"))
                boxes, problems = [Box(s) for s in c.subject], [e]
            exact = not problems and c.subject_exact
            for code, msg in dict.fromkeys(b.notes):
                c.report.add(Finding(code, msg, label, "approximate"))
            why = "; ".join(dict.fromkeys(getattr(e, "message", str(e)) for e in problems))
            try:
                code = next((getattr(e, "code", "bad-selector") for e in problems),
                            "policy-selector")
                _rule(d, r, label, boxes, exact, why, c, approximate, emittable, barriers,
                      allowed, pass_super, pass_exact, prog, code, b.cluster_superset(boxes))
            except NotExpressible as e:
                c.report.add(Finding(e.code, e.message, label, "untranslatable"))
    close_tier(tier_of)
    # profiles: allow what passed every tier, where some policy selects the pod. Restricting
    # distributes over the union of subjects, so each subject is done apart: one that Cilium
    # cannot express costs only its own endpoints their profile allow
    pods = [sel.conj_and(s, sel.conj({KIND: _pos("pod")})) for s in subjects_all]
    allows, failed = [], []
    for s in sel._absorb([s for s in pods if s is not None]):
        try:
            region, _ = _restrict([Box(s)], barriers)
            allows.extend(x for x in region if emittable(x) is None)
        except NotExpressible:
            failed.append(s)
    prog.profile_allows[d] = allows
    for c in prog.compiled if failed else ():
        if d in c.directions and any(sel.conj_and(a, f) is not None
                                     for a in c.subject for f in failed):
            c.report.add(Finding("profile-too-complex", "the implicit profile allow after "
                                 "the last tier could not be expressed for some endpoints "
                                 "this policy selects; traffic Calico passes to profiles is "
                                 "dropped there", None, "untranslatable"))


def _regex(text: str) -> str:
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _with_http(region: list, http, c: Compiled, label: str) -> list:
    """Approximate mode: Calico's HTTP match as Cilium L7 rules (methods OR, paths OR, both
    ANDed; exact paths as a full-match regex, prefixes with '.*'). Cilium needs TCP ports."""
    paths = [(_regex(v) if kind == "exact" else _regex(v) + ".*") for kind, v in http.paths]
    rules = tuple((m, p) for m in (http.methods or (None,)) for p in (paths or [None]))
    out = []
    for x in region:
        if x.l4.proto == "TCP" and (x.l4.ports or x.l4.named):   # L7 cannot use port 0
            out.append(Box(x.subject, x.peer, dataclasses.replace(x.l4, http=rules)))
        else:
            out.append(x)
            c.report.add(Finding("http", "HTTP match needs TCP ports in Cilium: allowed at "
                                 "L4 only", label, "approximate"))
    return out


def _untracked(d, p: Policy, c: Compiled, b: Builder) -> None:
    """doNotTrack / preDNAT policies run before the normal tiers and have no end-of-tier
    drop: keep only their exact Deny rules (a deny wins in Cilium too); their
    allows (which bypass the normal policies) are left out, so access can only shrink."""
    for r in (p.ingress if d == "ingress" else p.egress):
        problems: list = []
        try:
            boxes = b.rule_boxes(p, c.subject, r, d, problems)
        except (cs.SelectorError, NotExpressible):
            continue
        if r.action == "Deny" and not problems and c.subject_exact:
            c.denies[d].extend((x, f"{d}[{r.index}]") for x in boxes)


def _rule(d, r, label, boxes, exact, why, c: Compiled, approximate, emittable, barriers,
          allowed, pass_super, pass_exact, prog, code="inexact", wide=None):
    """wide: boxes plus the endpoints their nets reach by address (a true superset, for
    what must cover every flow the rule matches: barriers and the Pass cut)."""
    wide = boxes if wide is None else wide
    if r.action == "Log":
        prog.log_rules = True
        c.report.add(Finding("log", "Log rule dropped: Cilium has no Log action; Hubble "
                             "records flows instead", label, "approximate"))
        return
    if r.action == "Pass":
        pass_super.extend(wide)
        if exact:
            pass_exact.extend(boxes)     # the outside addresses only: a subset
            if len(wide) != len(boxes):
                c.report.add(Finding("nets-cover-cluster", "Pass rule nets overlap pod/node "
                                     "ranges: Calico passes those pods and nodes by address, "
                                     "Cilium cannot match them by address, so their flows are"
                                     " treated as not passed", label, "untranslatable"))
        else:
            c.report.add(Finding(code, f"Pass rule not exact ({why}): flows it "
                                 "passes are treated as dropped", label, "untranslatable"))
        return
    if r.action == "Allow":
        if not exact and not approximate:
            c.report.add(Finding(code, f"Allow rule not translated ({why}); its flows are "
                                 "dropped", label, "untranslatable"))
            return
        try:
            region = region_minus_set(boxes, pass_super)
            region, cut = _restrict(region, barriers)
        except NotExpressible as e:
            c.report.add(Finding(e.code, f"Allow rule not translated: earlier rules cut it in a"
                                 f" way Cilium cannot express ({e.message})", label,
                                 "untranslatable"))
            return
        c.restricted |= cut
        bad = [emittable(x) for x in region]
        if any(bad):
            e = next(x for x in bad if x)
            c.report.add(Finding(e.code, f"Allow rule not translated: {e.message}", label,
                                 "untranslatable"))
            return
        if not exact:
            c.report.add(Finding(code, f"Allow rule widened ({why})", label, "approximate"))
            if r.http is not None:
                region = _with_http(region, r.http, c, label)
        c.allows[d].extend((x, label) for x in region)
        allowed.extend(region)
        return
    if r.action != "Deny":
        c.report.add(Finding("bad-action", f"unknown action {r.action}", label,
                             "untranslatable"))
        return
    # Deny
    if exact or approximate:
        try:
            region = region_minus_set(region_minus_set(boxes, pass_exact), allowed)
            if all(emittable(x) is None for x in region):
                c.denies[d].extend((x, label) for x in region)
                if not exact:
                    c.report.add(Finding(code, f"Deny rule widened ({why})", label,
                                         "approximate"))
                return
        except NotExpressible:
            pass
    # barrier: the subject is in default deny; later allows are kept out of this rule's
    # (superset) region, except what an earlier Pass of the tier let through
    barriers.add(wide, pass_exact)
    if not exact:
        c.report.add(Finding(code, f"Deny rule not exact ({why}): enforced on a "
                             "superset by default deny and by narrowing later allows", label,
                             "untranslatable"))
