"""Calico selectors as sets of endpoints over Cilium label keys, closed under AND/OR/NOT.

A selector becomes a DNF: a list of Conj (OR of ANDs). A Conj maps each key to a Constraint
over the key's value *or its absence* (ABSENT), so that negation is exact: Calico's `!=`,
`not in` and `!has` match absent labels, exactly like Kubernetes NotIn/DoesNotExist.

Keys are Cilium's: pod labels as is; projectcalico.org/namespace -> NS_KEY;
projectcalico.org/serviceaccount -> SA_KEY; namespace labels -> NSL_PREFIX + key. Two pseudo
keys are not labels: KIND ("pod" | "hep" | "netset": what Calico's global() tells apart) and
ORCH (projectcalico.org/orchestrator: "k8s" on pods, absent elsewhere). They are resolved when
emitting (translate/emit.py) and never appear in output.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from ..calico import selector as cs

NS_KEY = "k8s:io.kubernetes.pod.namespace"
SA_KEY = "k8s:io.cilium.k8s.policy.serviceaccount"
NSL_PREFIX = "k8s:io.cilium.k8s.namespace.labels."
KIND = "@kind"
ORCH = "@orchestrator"
ABSENT = None            # a Constraint value meaning "label not present"
MAX_TERMS = 64           # DNF size limit: beyond it we call the set not expressible


class NotExpressible(Exception):
    """A set (selector, port range, CIDR...) that has no exact Cilium form. code: finding code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Constraint:
    """Allowed values of one key: `vals` (positive) or everything but `vals` (negative).
    vals may hold ABSENT."""
    positive: bool
    vals: frozenset

    def __and__(self, o: "Constraint") -> "Constraint":
        if self.positive and o.positive:
            return Constraint(True, self.vals & o.vals)
        if self.positive:
            return Constraint(True, self.vals - o.vals)
        if o.positive:
            return Constraint(True, o.vals - self.vals)
        return Constraint(False, self.vals | o.vals)

    def __invert__(self) -> "Constraint":
        return Constraint(not self.positive, self.vals)

    @property
    def empty(self) -> bool:
        return self.positive and not self.vals

    @property
    def full(self) -> bool:
        return not self.positive and not self.vals

    def matches(self, value) -> bool:
        return (value in self.vals) == self.positive


Conj = tuple  # tuple[tuple[key, Constraint], ...] sorted by key; () = all()


def conj(d: dict) -> Conj | None:
    """Normalise {key: Constraint}; None when empty (a contradiction)."""
    out = []
    for k in sorted(d):
        c = d[k]
        if c.empty:
            return None
        if not c.full:
            out.append((k, c))
    return tuple(out)


def conj_and(a: Conj, b: Conj) -> Conj | None:
    d = dict(a)
    for k, c in b:
        d[k] = d[k] & c if k in d else c
    return conj(d)


def dnf_and(a: list, b: list) -> list:
    out = []
    for x, y in itertools.product(a, b):
        c = conj_and(x, y)
        if c is not None and c not in out:
            out.append(c)
    if len(out) > MAX_TERMS:
        raise NotExpressible("selector-too-complex", f"more than {MAX_TERMS} selector terms")
    return _absorb(out)


def dnf_or(a: list, b: list) -> list:
    return _absorb(a + [c for c in b if c not in a])


def conj_not(c: Conj) -> list:
    """NOT of one conjunction: a disjoint union (so later terms do not repeat earlier ones)."""
    out, prefix = [], {}
    for k, con in c:
        term = dict(prefix)
        term[k] = ~con
        t = conj(term)
        if t is not None:
            out.append(t)
        prefix[k] = con
    return out


def dnf_not(a: list) -> list:
    result = [()]
    for c in a:
        result = dnf_and(result, conj_not(c))
        if not result:
            break
    return result


def dnf_minus(a: list, b: list) -> list:
    if not b:
        return a
    return dnf_and(a, dnf_not(b))


def conj_subset(a: Conj, b: Conj) -> bool:
    """a ⊆ b, decided per key (sound: True only when certain)."""
    da = dict(a)
    for k, cb in b:
        ca = da.get(k, Constraint(False, frozenset()))
        if not (ca & ~cb).empty:
            return False
    return True


def _ns_vals(c: Conj):
    """The namespaces a term is pinned to (positive constraint), or None."""
    for k, con in c:
        if k == NS_KEY:
            return con.vals if con.positive else None
    return None


def _absorb(terms: list) -> list:
    """Drop terms contained in another term (keeps output small); of two equal terms the first
    stays. A term pinned to namespaces can only lie inside a term that is unpinned or pinned to
    the same ones, so each term is checked against those only (profiles absorb thousands)."""
    uniq = list(dict.fromkeys(terms))
    if len(uniq) < 8:
        pool = [(i, u) for i, u in enumerate(uniq)]
        by_ns, unpinned = None, pool
    else:
        by_ns, unpinned = {}, []
        for i, u in enumerate(uniq):
            ns = _ns_vals(u)
            if ns is None:
                unpinned.append((i, u))
            else:
                for v in ns:
                    by_ns.setdefault(v, []).append((i, u))
    out = []
    for i, t in enumerate(uniq):
        if by_ns is None:
            cands = unpinned
        else:
            ns = _ns_vals(t)
            cands = unpinned if ns is None else \
                unpinned + by_ns.get(next(iter(ns)), []) if ns else unpinned
        if any(j != i and conj_subset(t, u) and (j < i or not conj_subset(u, t))
               for j, u in cands):
            continue
        out.append(t)
    return out


def conj_key(c: Conj) -> tuple:
    """A sort key independent of hash seeds (frozenset order is not)."""
    return tuple((k, con.positive, tuple(sorted((v is None, v or "") for v in con.vals)))
                 for k, con in c)


def matches(c: Conj, labels: dict) -> bool:
    return all(con.matches(labels.get(k, ABSENT)) for k, con in c)


# ------------------------------------------------------------------------ Calico AST -> DNF

def _pod_key(key: str) -> str:
    if key == "projectcalico.org/namespace":
        return NS_KEY
    if key == "projectcalico.org/serviceaccount":
        return SA_KEY
    if key == "projectcalico.org/orchestrator":
        return ORCH
    if key.startswith("pcns."):
        return NSL_PREFIX + key[len("pcns."):]
    if key.startswith("pcsa."):
        raise NotExpressible("serviceaccount-labels",
                             f"selector on ServiceAccount label {key[5:]!r} has no Cilium form")
    if excluded_label(key):
        raise NotExpressible("excluded-label", f"label {key} is kept out of Cilium identities "
                             "by its default label filter: it cannot be selected")
    return key


def excluded_label(key: str) -> bool:
    """Pod labels Cilium's default label filter keeps out of identities (never selectable)."""
    if key.startswith("app.kubernetes.io/"):
        return False
    return (key.startswith("io.kubernetes") or "kubernetes.io" in key or key.startswith("k8s.io")
            or key in ("pod-template-generation", "pod-template-hash",
                       "controller-revision-hash", "controller-uid", "job-name", "etcd_node"))


def _ns_key(key: str) -> str:
    if key == "projectcalico.org/name":
        return NS_KEY
    return NSL_PREFIX + key


@dataclass
class Context:
    """How label keys map, and live label values for contains/starts with/ends with.
    lenient: a term with no Cilium form becomes all() (a superset whether or not it is
    negated) and is recorded in `problems` instead of raising."""
    space: str = "pod"                    # "pod" | "namespace"
    values: dict | None = None            # Cilium key -> sorted known values (from inventory)
    lenient: bool = False
    problems: list | None = None
    notes: list | None = None             # (code, message): exact today, approximate over time

    def with_space(self, space: str) -> "Context":
        return Context(space, self.values, self.lenient, self.problems, self.notes)


def _leaf(node, ctx: Context, negate: bool) -> list:
    try:
        return _leaf_strict(node, ctx, negate)
    except NotExpressible as e:
        if not ctx.lenient:
            raise
        if ctx.problems is not None:
            ctx.problems.append(e)
        return [()]


_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _valid(values) -> frozenset:
    """Values a label can actually have: others (template placeholders such as
    '${var.ns}') can never match, so `==` on them selects nothing and `!=` everything."""
    return frozenset(v for v in values if len(v) <= 63 and _LABEL_VALUE.fullmatch(v))


def _checked(values, ctx: Context) -> frozenset:
    ok = _valid(values)
    if ok != frozenset(values) and ctx.problems is not None:
        bad = ", ".join(sorted(set(values) - ok))
        ctx.problems.append(NotExpressible("placeholder-value", f"value {bad} can be no label's "
                                           "value (a template placeholder? render it first)"))
    return ok


def _leaf_strict(node, ctx: Context, negate: bool) -> list:
    keyf = _pod_key if ctx.space == "pod" else _ns_key
    if isinstance(node, cs.All):
        c: dict = {}
    elif isinstance(node, cs.Global):
        c = {KIND: Constraint(True, frozenset({"hep", "netset"}))}
    else:
        key = keyf(node.key)
        if isinstance(node, cs.Has):
            con = Constraint(False, frozenset({ABSENT}))
        elif isinstance(node, cs.Equals):
            con = Constraint(True, _checked({node.value}, ctx))
        elif isinstance(node, cs.NotEquals):
            con = Constraint(False, _checked({node.value}, ctx))
        elif isinstance(node, cs.In):
            con = Constraint(True, _checked(node.values, ctx))
        elif isinstance(node, cs.NotIn):
            con = Constraint(False, _checked(node.values, ctx))
        else:  # contains / starts with / ends with: only against known live values
            known = (ctx.values or {}).get(key)
            if known is None:
                raise NotExpressible("substring-selector",
                                     f"'{node}' has no label-selector form (no inventory "
                                     "to expand it against live label values)")
            con = Constraint(True, frozenset(v for v in known if node.evaluate({node.key: v})))
            if ctx.notes is not None:
                ctx.notes.append(("substring-expanded", f"'{node}' expanded to the values "
                                  "seen in the cluster now; values that appear later will not "
                                  "match"))
        c = {key: con}
    if negate:
        t = conj(c)
        return [] if t is None else conj_not(t)
    t = conj(c)
    return [] if t is None else [t]


def _to_dnf(node, ctx: Context, negate: bool = False) -> list:
    if isinstance(node, cs.Not):
        return _to_dnf(node.operand, ctx, not negate)
    if isinstance(node, (cs.And, cs.Or)):
        parts = [_to_dnf(o, ctx, negate) for o in node.operands]
        is_and = isinstance(node, cs.And) != negate   # De Morgan
        acc = [()] if is_and else []
        for p in parts:
            acc = dnf_and(acc, p) if is_and else dnf_or(acc, p)
        return acc
    return _leaf(node, ctx, negate)


def to_dnf(text: str | None, ctx: Context | None = None) -> list:
    """Selector text -> DNF over Cilium keys. Raises cs.SelectorError or NotExpressible."""
    return _to_dnf(cs.parse(text or "all()"), ctx or Context())


def uses_global(text: str | None) -> bool:
    return cs.uses_global(cs.parse(text or "all()"))


# ------------------------------------------------------------------------ DNF -> LabelSelector

def label_selectors(c: Conj) -> list[tuple[tuple, tuple]]:
    """One Conj -> the (matchLabels, matchExpressions) selectors whose union is exactly it.
    Usually one; a key allowed to be 'absent or one of X' needs two."""
    choices = []
    for k, con in c:
        if k.startswith("@"):
            raise ValueError(f"pseudo key {k} left in a selector")  # emit resolves these
        vals = sorted(v for v in con.vals if v is not ABSENT)
        absent = ABSENT in con.vals
        if con.positive:
            opts = []
            if vals:
                opts.append(("In", tuple(vals)))
            if absent:
                opts.append(("DoesNotExist", ()))
            choices.append([(k, o) for o in opts])
        else:
            reqs = []
            if absent:
                reqs.append(("Exists", ()))
            if vals:
                reqs.append(("NotIn", tuple(vals)))
            choices.append([(k, tuple(reqs))])
    out = []
    for combo in itertools.product(*choices):
        labels, exprs = [], []
        for k, o in combo:
            ops = o if isinstance(o[0], tuple) else (o,)
            for op, vals in ops:
                if op == "In" and len(vals) == 1:
                    labels.append((k, vals[0]))
                else:
                    exprs.append((k, op, vals))
        out.append((tuple(sorted(labels)), tuple(sorted(exprs))))
    return out
