"""Hypothesis strategies for the policy path (selectors, Calico policy sets).

Everything draws from small vocabularies on purpose: random label keys or CIDRs would almost
never make two rules overlap, and overlaps (deny before allow, pass into a later tier, a
namespace selector meeting a pod selector) are where a translation goes wrong.

    selector_text()    arbitrary text biased to the selector alphabet (parser robustness)
    selector_ast()     random but valid selector ASTs over a wide key/value alphabet
    label_dicts()      label sets over the same alphabet, for evaluate()
    calico_objects()   a list of raw projectcalico.org/v3 objects (Tiers, GNPs, NPs), valid
    policy_sets()      the same objects read through generator.calico.reader.read_policies
"""
from __future__ import annotations

from hypothesis import strategies as st

from generator.calico.reader import read_policies
from generator.calico.selector import (
    All, And, Contains, EndsWith, Equals, Global, Has, In, Not, NotEquals, NotIn, Or,
    StartsWith,
)
from generator.yamlio import Loaded

# --------------------------------------------------------------------------- selector text

# Fragments a selector is made of, plus near misses (single '=', '&', '|', unterminated
# quotes, keywords without '(', ...) so that random text reaches every tokenizer branch.
SELECTOR_FRAGMENTS = [
    "(", ")", "{", "}", ",", "'", '"', "!", "=", "==", "!=", "&", "&&", "|", "||", " ", "\t",
    "in", "not", "not in", "contains", "starts", "with", "starts with", "ends", "ends with",
    "has(", "has", "all(", "all()", "global(", "global()", "app", "a.b/c-d_e", "9", "-",
    "'x'", '"y"', "'", "k8s:app", "\n", "\u00e9", "\x00", "{'a', 'b'}", "{}",
]
SELECTOR_CHARS = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_./-(){}'\",!=&| \t:;#\\\u00e9"


@st.composite
def _mutated(draw):
    """A valid selector's text with one to three characters inserted, deleted or replaced:
    near misses that reach the parser's error paths deep inside an expression, and often
    still parse (so the accepted path is exercised too)."""
    text = str(draw(selector_ast(max_leaves=5)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        c = draw(st.sampled_from(SELECTOR_CHARS))
        if op == "insert":
            text = text[:i] + c + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + c + text[i + 1:]
    return text


def selector_text(max_parts: int = 12):
    """Arbitrary text, glued from selector fragments, mutated valid selectors, raw characters."""
    glued = st.lists(st.sampled_from(SELECTOR_FRAGMENTS), max_size=max_parts).map("".join)
    raw = st.text(alphabet=SELECTOR_CHARS, max_size=30)
    mixed = st.lists(st.one_of(st.sampled_from(SELECTOR_FRAGMENTS), st.text(max_size=3)),
                     max_size=max_parts).map("".join)
    return st.one_of(glued, _mutated(), raw, mixed, st.text(max_size=20))


# Keys cover every label-key character, keys that look like keywords, and Calico's own keys.
AST_KEYS = ["a", "in", "not", "all", "has", "contains", "-x_9", "a.b/c", "starts",
            "projectcalico.org/namespace"]
# Values cover empty, both quote kinds, whitespace, operators and non-ASCII inside strings.
AST_VALUES = ["", "x", "xy", "y x", "'", '"', "&&", "a,b", "}", "\u00e9", "x\ty"]


def _values(draw_vals):
    return draw_vals.map(lambda vs: tuple(sorted(set(vs))))


def selector_ast(max_leaves: int = 10, keys=AST_KEYS, values=AST_VALUES):
    """Random selector ASTs in parse()'s normal form: In/NotIn values sorted and unique,
    And/Or with at least two operands (str() parenthesises every And/Or, so nesting of the
    same kind survives a round trip)."""
    key = st.sampled_from(keys)
    val = st.sampled_from(values)
    vals = _values(st.lists(val, max_size=3))
    leaf = st.one_of(
        st.just(All()), st.just(Global()), key.map(Has),
        st.builds(Equals, key, val), st.builds(NotEquals, key, val),
        st.builds(In, key, vals), st.builds(NotIn, key, vals),
        st.builds(Contains, key, val), st.builds(StartsWith, key, val),
        st.builds(EndsWith, key, val),
    )

    def extend(inner):
        return st.one_of(
            inner.map(Not),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        )
    return st.recursive(leaf, extend, max_leaves=max_leaves)


def label_dicts(keys=AST_KEYS, values=AST_VALUES):
    """Label sets whose values hit, contain, prefix and miss the AST values."""
    extra = ["xyz", "yx", "\u00e9\u00e9", "a,b,c", "zz"]
    return st.dictionaries(st.sampled_from(keys), st.sampled_from(list(values) + extra),
                           max_size=4)


# --------------------------------------------------------------------------- policy sets

NAMESPACES = ["prod", "dev"]
POD_LABELS = {"app": ["web", "db", "fe"], "tier": ["front", "back"]}
# Pod range of the synthetic verify universe (10.244.0.0/16), a slice of it, the node range,
# the whole IPv4 space, an external documentation range and one unrelated private range.
CIDRS = ["10.244.0.0/16", "10.244.1.0/24", "172.18.0.0/24", "0.0.0.0/0", "203.0.113.0/24",
         "192.168.0.0/16", "203.0.113.7/32"]
OUTSIDE_CIDRS = ["203.0.113.0/24", "203.0.113.7/32", "192.168.0.0/16", "198.51.100.0/24"]


def cidr():
    return st.one_of(st.sampled_from(OUTSIDE_CIDRS), st.sampled_from(OUTSIDE_CIDRS),
                     st.sampled_from(CIDRS))


PORTS = [80, 443, 53, 8080, "8000:8100", "1:1024", "80:80"]
# Named ports resolve per destination pod (Calico) / per endpoint (Cilium).
NAMED_PORTS = ["http", "dns"]
TIER_NAMES = ["security", "platform"]


def _label_term():
    key = st.sampled_from(sorted(POD_LABELS))
    return key.flatmap(lambda k: st.one_of(
        st.just(f"has({k})"),
        st.just(f"!has({k})"),
        st.sampled_from(POD_LABELS[k]).map(lambda v: f"{k} == '{v}'"),
        st.sampled_from(POD_LABELS[k]).map(lambda v: f"{k} != '{v}'"),
        st.lists(st.sampled_from(POD_LABELS[k]), min_size=1, max_size=2, unique=True)
          .map(lambda vs: f"{k} in {{{', '.join(repr(v) for v in sorted(vs))}}}"),
        st.lists(st.sampled_from(POD_LABELS[k]), min_size=1, max_size=2, unique=True)
          .map(lambda vs: f"{k} not in {{{', '.join(repr(v) for v in sorted(vs))}}}"),
    ))


def pod_selector(network_sets: bool = False):
    """A pod selector over the small label vocabulary: all(), a term, or two terms joined.
    network_sets: also `role == 'ext'`, the label of the generated GlobalNetworkSet."""
    term = _label_term()
    if network_sets:
        term = st.one_of(term, st.just("role == 'ext'"), st.just("has(role)"))
    return st.one_of(
        st.just("all()"),
        term,
        st.tuples(term, term, st.sampled_from([" && ", " || "])).map(
            lambda t: f"{t[0]}{t[2]}{t[1]}"),
        term.map(lambda t: f"!({t})"),
    )


def namespace_selector():
    """A namespace selector: by name (Calico's projectcalico.org/name), by the Kubernetes
    metadata label, all() or global() (global() only alone, as Calico requires)."""
    return st.one_of(
        st.just("all()"),
        st.sampled_from(NAMESPACES).map(lambda n: f"projectcalico.org/name == '{n}'"),
        st.sampled_from(NAMESPACES).map(lambda n: f"kubernetes.io/metadata.name == '{n}'"),
        st.sampled_from(NAMESPACES).map(lambda n: f"projectcalico.org/name != '{n}'"),
        st.just("global()"),
    )


@st.composite
def entity(draw, *, ports_ok: bool, is_dest: bool):
    """source/destination of a rule; ports only when the rule has a port protocol."""
    e: dict = {}
    if draw(st.booleans()):
        e["selector"] = draw(pod_selector(network_sets=True))
    if draw(st.integers(0, 4)) == 0:
        e["notSelector"] = draw(pod_selector(network_sets=True).filter(lambda s: s != "all()"))
    if draw(st.integers(0, 3)) == 0:
        e["namespaceSelector"] = draw(namespace_selector())
    # CIDRs over cluster ranges are mostly reported untranslatable (and then excuse any
    # difference), so they are drawn less often than outside ones.
    if draw(st.integers(0, 2)) == 0:
        e["nets"] = draw(st.lists(cidr(), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 4)) == 0:
        e["notNets"] = draw(st.lists(cidr(), min_size=1, max_size=2, unique=True))
    if ports_ok and is_dest:
        if draw(st.integers(0, 2)) > 0:
            e["ports"] = draw(st.lists(st.sampled_from(PORTS + NAMED_PORTS), min_size=1,
                                       max_size=3, unique=True))
        if draw(st.integers(0, 4)) == 0:
            e["notPorts"] = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=2,
                                          unique=True))
    return e


@st.composite
def rule(draw):
    action = draw(st.sampled_from(["Allow", "Allow", "Deny", "Deny", "Pass", "Log"]))
    proto = draw(st.sampled_from([None, "TCP", "TCP", "UDP", "ICMP"]))
    r: dict = {"action": action}
    if proto is not None:
        r["protocol"] = proto
    ports_ok = proto in ("TCP", "UDP")
    src = draw(entity(ports_ok=ports_ok, is_dest=False))
    dst = draw(entity(ports_ok=ports_ok, is_dest=True))
    if src:
        r["source"] = src
    if dst:
        r["destination"] = dst
    if proto == "ICMP" and draw(st.booleans()):
        r["icmp"] = draw(st.sampled_from([{"type": 8}, {"type": 0}, {"type": 3, "code": 1}]))
    if proto is None and draw(st.integers(0, 5)) == 0:
        r["notProtocol"] = draw(st.sampled_from(["UDP", "ICMP"]))
    return r


@st.composite
def tier_object(draw, name: str):
    spec: dict = {"order": draw(st.sampled_from([10, 50, 200]))}
    action = draw(st.sampled_from([None, "Deny", "Pass"]))
    if action:
        spec["defaultAction"] = action
    return {"apiVersion": "projectcalico.org/v3", "kind": "Tier",
            "metadata": {"name": name}, "spec": spec}


@st.composite
def policy_object(draw, name: str, tiers: list[str]):
    is_global = draw(st.booleans())
    tier = draw(st.sampled_from(["default"] + tiers))
    full = name if tier == "default" else f"{tier}.{name}"
    meta = {"name": full}
    if not is_global:
        meta["namespace"] = draw(st.sampled_from(NAMESPACES))
    spec: dict = {}
    if tier != "default":
        spec["tier"] = tier
    order = draw(st.sampled_from([None, 10, 100, 100, 500]))
    if order is not None:
        spec["order"] = order
    if draw(st.integers(0, 3)) > 0:
        spec["selector"] = draw(pod_selector())
    if is_global and draw(st.integers(0, 3)) == 0:
        spec["namespaceSelector"] = draw(namespace_selector().filter(lambda s: s != "global()"))
    types = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"], None]))
    ingress = draw(st.lists(rule(), max_size=3))
    egress = draw(st.lists(rule(), max_size=3))
    if types is not None:
        spec["types"] = types
        ingress = ingress if "Ingress" in types else []
        egress = egress if "Egress" in types else []
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {"apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy" if is_global else "NetworkPolicy",
            "metadata": meta, "spec": spec}


def _match_labels():
    return st.dictionaries(st.sampled_from(sorted(POD_LABELS)), st.sampled_from(["web", "db",
                           "front"]), max_size=1).map(lambda d: {"matchLabels": d} if d else {})


# ipBlock cidr -> excepts inside it (Kubernetes requires except to lie within cidr)
IPBLOCK_EXCEPTS = {"203.0.113.0/24": ["203.0.113.7/32", "203.0.113.128/25"],
                   "0.0.0.0/0": ["10.244.0.0/16", "203.0.113.0/24"],
                   "10.244.0.0/16": ["10.244.1.0/24"]}


@st.composite
def k8s_peer(draw):
    kind = draw(st.sampled_from(["pod", "ns", "both", "ipblock"]))
    if kind == "ipblock":
        cidr = draw(st.sampled_from(sorted(IPBLOCK_EXCEPTS)))
        block = {"cidr": cidr}
        if draw(st.booleans()):
            block["except"] = [draw(st.sampled_from(IPBLOCK_EXCEPTS[cidr]))]
        return {"ipBlock": block}
    peer = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(_match_labels())
    if kind in ("ns", "both"):
        peer["namespaceSelector"] = draw(st.sampled_from([
            {}, {"matchLabels": {"kubernetes.io/metadata.name": "dev"}},
            {"matchLabels": {"kubernetes.io/metadata.name": "prod"}}]))
    return peer


@st.composite
def k8s_rule(draw, peer_key: str):
    r: dict = {}
    if draw(st.integers(0, 3)) > 0:
        r[peer_key] = draw(st.lists(k8s_peer(), min_size=1, max_size=2))
    if draw(st.booleans()):
        r["ports"] = draw(st.lists(st.sampled_from([
            {"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 53},
            {"port": 8000, "endPort": 8100}, {"protocol": "TCP", "port": "http"}]),
            min_size=1, max_size=2, unique_by=lambda p: str(p)))
    return r


@st.composite
def k8s_policy_object(draw, name: str):
    """A networking.k8s.io/v1 NetworkPolicy (Calico converts it to knp.default.<name>)."""
    types = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    spec: dict = {"podSelector": draw(_match_labels()), "policyTypes": types}
    if "Ingress" in types:
        spec["ingress"] = draw(st.lists(k8s_rule("from"), max_size=2))
    if "Egress" in types:
        spec["egress"] = draw(st.lists(k8s_rule("to"), max_size=2))
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": draw(st.sampled_from(NAMESPACES))},
            "spec": spec}


def network_set_object():
    """One GlobalNetworkSet labelled role=ext, selectable by rule selectors."""
    return st.lists(st.sampled_from(OUTSIDE_CIDRS[:2] + ["198.51.100.0/24"]), min_size=1,
                    max_size=2, unique=True).map(lambda nets: {
                        "apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                        "metadata": {"name": "ext", "labels": {"role": "ext"}},
                        "spec": {"nets": nets}})


@st.composite
def calico_objects(draw, max_policies: int = 4, extras: bool = True):
    """Raw objects: 0-2 tiers, 1..max_policies Calico policies with unique names, and (extras)
    maybe a GlobalNetworkSet and a Kubernetes NetworkPolicy."""
    tiers = draw(st.lists(st.sampled_from(TIER_NAMES), max_size=2, unique=True))
    objs = [draw(tier_object(t)) for t in sorted(tiers)]
    n = draw(st.integers(1, max_policies))
    for i in range(n):
        objs.append(draw(policy_object(f"p{i}", tiers)))
    if extras and draw(st.integers(0, 3)) == 0:
        objs.append(draw(network_set_object()))
    if extras and draw(st.integers(0, 2)) == 0:
        objs.append(draw(k8s_policy_object("k0")))
    return objs


def loaded(objs: list[dict], file: str = "generated.yaml") -> list[Loaded]:
    return [Loaded(o, file, i, None) for i, o in enumerate(objs)]


def read(objs: list[dict]):
    return read_policies(loaded(objs))


def policy_sets(max_policies: int = 4):
    """(raw objects, PolicySet) pairs: keep the raw form so a failure prints as YAML input."""
    return calico_objects(max_policies).map(lambda objs: (objs, read(objs)))
