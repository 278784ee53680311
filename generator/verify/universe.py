"""The endpoints and L4 flow classes verify judges.

From an Inventory: one endpoint per distinct Cilium identity (namespace, labels, service
account) with a weight (how many pods share it), one host endpoint per node, and external
addresses in and around every CIDR the policies name.

Without an inventory, a synthetic universe comes from the policies themselves (Calico and
Cilium side): for every selector (in disjunctive normal form) one label set that satisfies each
conjunction and "just-failing" ones (one literal flipped: key removed, other value, excluded
value set); namespaces matching and not matching every namespace selector; addresses inside and
just outside every CIDR, network set and except; one plain world address.

Assumptions of the synthetic universe (stated in the result): pods get addresses from
SYNTH_POD_CIDR and run on node-1; nodes use SYNTH_NODE_CIDR; a namespace carries its
kubernetes.io/metadata.name label.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ..calico import selector as calsel
from ..calico.model import PolicySet
from .flows import (  # noqa: F401  (L4, flow_classes... are part of this module's API)
    FAILSAFE_PORTS, L4, _all_cidrs, dict_items, _calico_ports, _cilium_ports, cidr_probe_addresses,
    flow_classes)
from .cidrs import CidrIndex, address, networks
from .model import Endpoint, NamedPort, frozen_labels

SYNTH_POD_CIDR = "10.244.0.0/16"
SYNTH_NODE_CIDR = "172.18.0.0/24"
WORLD_IP = "203.0.113.7"         # TEST-NET-3: outside anything a policy is likely to name
OTHER_NS = "verify-other"        # a namespace no policy names
MAX_LABEL_SETS = 80              # per universe, to keep the flow count bounded
NS_META = "kubernetes.io/metadata.name"


@dataclass
class Universe:
    endpoints: list[Endpoint]
    l4: list[L4]
    kind: str                                   # "inventory" | "synthetic"
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- constraints
# A constraint is a dict over universe keys: pod label keys as they are, "@ns" (namespace
# name), "@sa" (service account), "@nsl:<k>" (namespace label k).

def _calico_key(key: str, ns_context: bool) -> str:
    if key == "projectcalico.org/namespace" or (ns_context and key == "projectcalico.org/name"):
        return "@ns"
    if key == "projectcalico.org/serviceaccount":
        return "@sa"
    if key.startswith("pcns."):
        return "@nsl:" + key[5:]
    if ns_context:
        return "@nsl:" + key
    return key


def _satisfy(lits) -> dict | None:
    """A label dict (selector's own keys) satisfying a conjunction of literals."""
    d: dict[str, str] = {}
    for lit in lits:
        t = type(lit)
        if t is calsel.Equals:
            d[lit.key] = lit.value
        elif t is calsel.In:
            d.setdefault(lit.key, lit.values[0] if lit.values else "x")
        elif t is calsel.Has:
            d.setdefault(lit.key, "x")
        elif t is calsel.Contains:
            d.setdefault(lit.key, lit.value)
        elif t is calsel.StartsWith:
            d.setdefault(lit.key, lit.value + "x")
        elif t is calsel.EndsWith:
            d.setdefault(lit.key, "x" + lit.value)
    for lit in lits:
        if type(lit) in (calsel.NotEquals, calsel.NotIn) and lit.key in d:
            bad = {lit.value} if type(lit) is calsel.NotEquals else set(lit.values)
            if d[lit.key] in bad:
                d[lit.key] = "other"
    return d


def _flip(lit, base: dict) -> dict | None:
    """base changed so that literal `lit` no longer holds (a just-failing label set)."""
    t = type(lit)
    d = dict(base)
    if t in (calsel.Equals, calsel.In, calsel.Has, calsel.Contains, calsel.StartsWith,
             calsel.EndsWith):
        d.pop(lit.key, None)
        return d
    if t is calsel.NotEquals:
        d[lit.key] = lit.value
        return d
    if t is calsel.NotIn:
        d[lit.key] = lit.values[0] if lit.values else "x"
        return d
    if t is calsel.Not and hasattr(lit.operand, "key"):
        return _satisfy((lit.operand,)) | {k: v for k, v in d.items() if k != lit.operand.key}
    return None


def _other_value(lit, base: dict) -> dict | None:
    """Key kept but with a value the literal does not accept (Equals/In)."""
    if type(lit) in (calsel.Equals, calsel.In):
        return dict(base) | {lit.key: "zz-other"}
    return None


def calico_label_sets(text: str | None, *, ns_context: bool = False) -> list[dict]:
    """Satisfying and just-failing constraints of one Calico selector."""
    try:
        node = calsel.parse(text)
        conjs = calsel.to_dnf(node, limit=64)
    except (calsel.SelectorError, calsel.DNFTooLarge, ValueError):
        return []
    out: list[dict] = []
    for conj in conjs[:16]:
        base = _satisfy(conj)
        if base is None:
            continue
        cands = [base]
        for lit in conj:
            for alt in (_flip(lit, base), _other_value(lit, base)):
                if alt is not None:
                    cands.append(alt)
        for c in cands:
            mapped = {_calico_key(k, ns_context): v for k, v in c.items()}
            # other projectcalico.org/* labels (orchestrator...) are derived by Calico itself
            out.append({k: v for k, v in mapped.items() if not k.startswith("projectcalico.org/")})
    return out


def calico_bases(text: str | None, *, ns_context: bool = False) -> list[dict]:
    """Only the satisfying constraint of each conjunction of a Calico selector."""
    try:
        conjs = calsel.to_dnf(calsel.parse(text), limit=64)
    except (calsel.SelectorError, calsel.DNFTooLarge, ValueError):
        return []
    out = []
    for conj in conjs[:8]:
        mapped = {_calico_key(k, ns_context): v for k, v in (_satisfy(conj) or {}).items()}
        out.append({k: v for k, v in mapped.items() if not k.startswith("projectcalico.org/")})
    return out


def _overlaps(bases: list[dict], limit: int = 24) -> list[dict]:
    """Label sets matching two selectors at once (where rule order decides: a deny of one rule
    and an allow of a later one both match)."""
    bases = [b for b in _dedupe(bases) if b][:limit]
    out = []
    for i, a in enumerate(bases):
        for b in bases[i + 1:]:
            if all(a[k] == b[k] for k in a.keys() & b.keys()):
                out.append(a | b)
    return out


def _cilium_key(key: str) -> str | None:
    head, sep, rest = key.partition(":")
    if sep and head in ("k8s", "any", "unspec", "container"):
        key = rest
    elif sep and head in ("reserved", "cidr", "fqdn", "cilium-generated"):
        return None
    if key == "io.kubernetes.pod.namespace":
        return "@ns"
    if key == "io.cilium.k8s.policy.serviceaccount":
        return "@sa"
    if key.startswith("io.cilium.k8s.namespace.labels."):
        return "@nsl:" + key[len("io.cilium.k8s.namespace.labels."):]
    return key


def label_selector_sets(sel: dict | None, *, ns_context: bool = False) -> list[dict]:
    """Satisfying and just-failing constraints of a Kubernetes/Cilium LabelSelector."""
    if not isinstance(sel, dict):
        return [{}]
    terms = []
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        terms.append((str(k), "In", [str(v)]))
    for e in sel.get("matchExpressions") or []:
        terms.append((str(e.get("key", "")), str(e.get("operator", "")),
                      [str(x) for x in e.get("values") or []]))
    base: dict[str, str] = {}
    mapped = []
    for k, op, vals in terms:
        key = _cilium_key(k)
        if key is None:
            continue
        if ns_context:
            key = "@ns" if k == NS_META else "@nsl:" + k
        mapped.append((key, op, vals))
        if op == "In":
            base.setdefault(key, vals[0] if vals else "x")
        elif op == "Exists":
            base.setdefault(key, "x")
    out = [base]
    for key, op, vals in mapped:
        d = dict(base)
        if op in ("In", "Exists"):
            d.pop(key, None)
            out.append(d)
            if op == "In":
                out.append(dict(base) | {key: "zz-other"})
        elif op == "NotIn" and vals:
            out.append(d | {key: vals[0]})
        elif op == "DoesNotExist":
            out.append(d | {key: "x"})
    return out


def _walk_cilium_selectors(objects: list[dict]):
    """(kind, selector dict) for every label selector in Cilium/K8s policy objects."""
    for o in objects:
        kind = o.get("kind")
        specs = [o.get("spec")] + list(o.get("specs") or [])
        if kind in ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"):
            for s in specs:
                if not isinstance(s, dict):
                    continue
                if s.get("endpointSelector") is not None:
                    yield "pod", s["endpointSelector"]
                if s.get("nodeSelector") is not None:
                    yield "node", s["nodeSelector"]
                for sec in ("ingress", "ingressDeny", "egress", "egressDeny"):
                    for r in s.get(sec) or []:
                        for f in ("fromEndpoints", "toEndpoints"):
                            for e in (r or {}).get(f) or []:
                                yield "pod", e
                        for f in ("fromNodes", "toNodes"):
                            for e in (r or {}).get(f) or []:
                                yield "node", e
        elif kind == "NetworkPolicy":
            spec = o.get("spec") or {}
            yield "pod", spec.get("podSelector")
            for sec, peer in (("ingress", "from"), ("egress", "to")):
                for r in spec.get(sec) or []:
                    for p in (r or {}).get(peer) or []:
                        if "podSelector" in p or "namespaceSelector" in p:
                            pods = label_selector_sets(p.get("podSelector"))
                            if p.get("namespaceSelector") is not None:
                                for nsd in label_selector_sets(p["namespaceSelector"],
                                                               ns_context=True):
                                    yield "combo", (pods[0], nsd)
                            yield "pod", p.get("podSelector")


def _dedupe(dicts) -> list[dict]:
    seen = set()
    out = []
    for d in dicts:
        k = tuple(sorted(d.items()))
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


def _combine(a: list[dict], b: list[dict]) -> list[dict]:
    """Pairwise merges: a's first with each of b, each of a with b's first."""
    if not a or not b:
        return a or b
    return [a[0] | x for x in b] + [x | b[0] for x in a[1:]]


def constraints(policy_set: PolicySet, cilium_objects: list[dict]) -> tuple[list[dict], list[dict]]:
    """(pod constraints, host-endpoint label sets) from the selectors of both sides."""
    pods: list[dict] = [{}]
    hosts: list[dict] = []
    bases: list[dict] = []
    for p in policy_set.policies:
        bases.extend(calico_bases(p.selector))
        for r in p.ingress + p.egress:
            for ent in (r.source, r.destination):
                if ent.selector:
                    own = [] if ent.namespace_selector or p.namespace is None else [{"@ns": p.namespace}]
                    bases.extend(b | (own[0] if own and "@ns" not in b else {})
                                 for b in calico_bases(ent.selector))
    for p in policy_set.policies:
        subj = calico_label_sets(p.selector)
        if p.namespace is None and p.namespace_selector:
            subj = _combine(subj, calico_label_sets(p.namespace_selector, ns_context=True))
        elif p.namespace is not None:
            subj = [d | {"@ns": p.namespace} for d in subj if d.get("@ns", p.namespace) == p.namespace]
        if p.namespace is None:
            hosts.extend(calico_label_sets(p.selector))
        pods.extend(subj)
        if p.service_account_selector:
            pods.extend(calico_label_sets(p.service_account_selector))
        for r in p.ingress + p.egress:
            for ent in (r.source, r.destination):
                sel = []
                if ent.selector:
                    sel = calico_label_sets(ent.selector)
                if ent.not_selector:
                    sel += calico_label_sets(ent.not_selector)
                if ent.service_accounts and ent.service_accounts.names:
                    sel = _combine(sel or [{}], [{"@sa": n} for n in ent.service_accounts.names]
                                   + [{"@sa": "zz-other"}])
                if ent.namespace_selector:
                    sel = _combine(sel or [{}], calico_label_sets(ent.namespace_selector,
                                                                  ns_context=True))
                elif p.namespace is not None and sel:
                    sel = sel + [d | {"@ns": p.namespace} for d in sel if "@ns" not in d]
                pods.extend(sel)
                if p.namespace is None and ent.selector:
                    hosts.extend(calico_label_sets(ent.selector))
    for kind, sel in _walk_cilium_selectors(cilium_objects):
        if kind == "pod":
            pods.extend(label_selector_sets(sel))
        elif kind == "combo":
            pods.append(sel[0] | sel[1])
        else:
            hosts.extend(label_selector_sets(sel))
    pods.extend(_overlaps(bases))
    return _dedupe(pods), _dedupe([h for h in hosts if h and not any(k.startswith("@") for k in h)])


# --------------------------------------------------------------------------- endpoints

_NS_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def valid_label(key: str, value: str) -> bool:
    """Kubernetes label syntax: a pod cannot carry anything else, so neither side can see it."""
    prefix, _, name = key.rpartition("/")
    if not name or not _NAME_RE.match(name) or (prefix and not _PREFIX_RE.match(prefix)):
        return False
    return bool(_NAME_RE.match(value or ""))


def valid_namespace(name: str) -> bool:
    return bool(_NS_RE.match(name or ""))


def _ns_name(labels: dict, taken: set) -> str:
    base = "ns-" + "-".join(f"{k.split('/')[-1]}-{v}" for k, v in sorted(labels.items()))
    base = "".join(c if c.isalnum() or c == "-" else "-" for c in base.lower())[:50].strip("-")
    name, i = base or "ns", 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def synthetic_universe(policy_set: PolicySet, cilium_objects: list[dict]) -> Universe:
    pods_c, hosts_c = constraints(policy_set, cilium_objects)
    notes = [f"synthetic universe: pods in {SYNTH_POD_CIDR} on node-1, nodes in {SYNTH_NODE_CIDR}"]
    if len(pods_c) > MAX_LABEL_SETS:
        notes.append(f"label sets capped at {MAX_LABEL_SETS} of {len(pods_c)}")
        pods_c = pods_c[:MAX_LABEL_SETS]
    l4, named_ports = flow_classes(policy_set, cilium_objects)

    namespaces = {OTHER_NS}
    for p in policy_set.policies:
        if p.namespace:
            namespaces.add(p.namespace)
    for o in cilium_objects:
        ns = (o.get("metadata") or {}).get("namespace")
        if ns and o.get("kind") in ("CiliumNetworkPolicy", "NetworkPolicy"):
            namespaces.add(ns)
    pool = sorted(namespaces)

    # namespace labels per name; label-only constraints get their own namespace
    ns_labels: dict[str, dict] = {n: {NS_META: n} for n in pool}
    by_labels: dict[tuple, str] = {}
    specs: list[tuple[str, dict, str]] = []     # (namespace, pod labels, service account)
    for c in pods_c:
        labels = {k: v for k, v in c.items() if not k.startswith("@")}
        nsl = {k[5:]: v for k, v in c.items() if k.startswith("@nsl:")}
        sa = c.get("@sa") or "default"
        if c.get("@ns"):
            ns = c["@ns"]
            if nsl:
                key = (ns, tuple(sorted(nsl.items())))
                if key not in by_labels:
                    by_labels[key] = ns if ns not in ns_labels else _ns_name(
                        {"copy-of": ns} | nsl, set(ns_labels))
                    # a namespace named like the policy's, with the extra labels
                    ns_labels.setdefault(by_labels[key], {NS_META: ns} | nsl)
                ns = by_labels[key]
            else:
                ns_labels.setdefault(ns, {NS_META: ns})
            specs.append((ns, labels, sa))
        elif nsl:
            key = (None, tuple(sorted(nsl.items())))
            if key not in by_labels:
                name = nsl.get(NS_META) or _ns_name(nsl, set(ns_labels))
                by_labels[key] = name
                ns_labels.setdefault(name, {NS_META: name} | nsl)
            specs.append((by_labels[key], labels, sa))
        else:
            for ns in pool:
                specs.append((ns, labels, sa))

    endpoints: list[Endpoint] = []
    seen = set()
    pod_net = ipaddress.ip_network(SYNTH_POD_CIDR)
    dropped = 0
    for ns, labels, sa in sorted(specs, key=lambda s: (s[0], sorted(s[1].items()), s[2])):
        key = (ns, tuple(sorted(labels.items())), sa)
        if key in seen:
            continue
        if not valid_namespace(ns) or not valid_namespace(sa) or not all(
                valid_label(k, v) for k, v in list(labels.items()) + list(
                    ns_labels.get(ns, {}).items())):
            # e.g. a template placeholder "<namespace>" or "${var.ns}": no pod can be there
            seen.add(key)
            dropped += 1
            continue
        seen.add(key)
        i = len(endpoints)
        ip = str(pod_net.network_address + 2 + i)
        shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
        endpoints.append(Endpoint(
            kind="pod", name=f"pod {ns}/[{shown}]" + (f" sa={sa}" if sa != "default" else ""),
            ip=ip, namespace=ns, labels=frozen_labels(labels),
            namespace_labels=frozen_labels(ns_labels.get(ns, {NS_META: ns})),
            service_account=sa, node="node-1", node_labels=frozen_labels(_node_labels("node-1")),
            named_ports=tuple(named_ports)))

    if dropped:
        notes.append(f"{dropped} label sets left out: not valid Kubernetes names/labels "
                     "(template placeholders?)")
    node_net = ipaddress.ip_network(SYNTH_NODE_CIDR)
    heps = {h.node: h for h in policy_set.host_endpoints if h.node}
    # the nodes the HostEndpoints name are hosts too (a HostEndpoint no policy selects is
    # default deny in Calico: verify must see that host); a Cilium node selector naming one
    # of them by hostname means that host, not another
    # (a HostEndpoint of a node named like the synthetic ones, node-N, is that host)
    extra_nodes = sorted(n for n in heps if not re.fullmatch(r"node-\d+", n))[:10]
    hosts_c = [h for h in hosts_c if h.get("kubernetes.io/hostname") not in extra_nodes]
    host_sets = [{}, {}] + hosts_c[:10]      # node-1 hosts the pods; node-2 is remote
    names = [f"node-{i + 1}" for i in range(len(host_sets))] + extra_nodes
    host_sets += [{} for _ in extra_nodes]
    for i, extra in enumerate(host_sets):
        node = names[i]
        hep = heps.get(node)
        labels = dict(hep.labels) if hep else dict(extra)
        endpoints.append(Endpoint(
            kind="host", name=f"host {node}" + (f" [{','.join(f'{k}={v}' for k, v in sorted(labels.items()))}]"
                                                 if labels else ""),
            ip=str(node_net.network_address + 11 + i), labels=frozen_labels(labels),
            node=node, node_labels=frozen_labels(_node_labels(node) | labels)))

    taken = {ipaddress.ip_address(e.ip) for e in endpoints if e.ip}
    for ip in cidr_probe_addresses(_all_cidrs(policy_set, cilium_objects)) + [WORLD_IP]:
        a = ipaddress.ip_address(ip)
        if a in taken or (a.version == 4 and (a in pod_net or a in node_net)):
            continue
        taken.add(a)
        endpoints.append(Endpoint(kind="external", name=ip, ip=ip))
    return Universe(endpoints, l4, "synthetic", notes)


def _node_labels(node: str) -> dict:
    return {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"}


def referenced_keys(policy_set: PolicySet, cilium_objects: list[dict]) -> set[str]:
    """Every label key any selector of either side reads (pod, namespace, SA, node labels)."""
    keys: set[str] = set()
    texts: set = set()          # thousands of rules repeat a few selector texts: each once
    for p in policy_set.policies:
        texts.update((p.selector, p.namespace_selector, p.service_account_selector))
        for r in p.ingress + p.egress:
            for ent in (r.source, r.destination):
                texts.update((ent.selector, ent.not_selector, ent.namespace_selector,
                              ent.service_accounts.selector if ent.service_accounts else None))
    for text in texts:
        if text:
            try:
                keys.update(calsel.label_keys(calsel.parse(text)))
            except (calsel.SelectorError, ValueError):
                pass

    for k, v in dict_items(cilium_objects):
        if k == "matchLabels" and isinstance(v, dict):
            keys.update(_plain_key(str(kk)) for kk in v)
        elif k == "matchExpressions" and isinstance(v, list):
            keys.update(_plain_key(str(e.get("key", ""))) for e in v if isinstance(e, dict))
    return keys


def _plain_key(key: str) -> str:
    head, sep, rest = key.partition(":")
    key = rest if sep and head in ("k8s", "any", "unspec", "container", "reserved") else key
    prefix = "io.cilium.k8s.namespace.labels."
    return key[len(prefix):] if key.startswith(prefix) else key


def _node_matters(cilium_objects: list[dict]) -> bool:
    """Cilium's host/remote-node split depends on the node a pod runs on."""
    import json
    text = json.dumps(cilium_objects)
    return any(w in text for w in ('"host"', '"remote-node"', "reserved:host", '"cluster"',
                                   "reserved:remote-node"))


def cidr_index(nets: list) -> CidrIndex:
    """address -> indexes (ascending) of the networks in `nets` that contain it; the same as
    testing `a in n` for each, but one dict lookup per prefix length in use: universes test
    every pod against every CIDR of every policy (50,000 pods x 8,000 CIDRs at size L)."""
    return CidrIndex(nets)


def order_key(members) -> tuple:
    """Sorts tuples of strings, tuples and None exactly as their repr() does, from the repr of
    each member: a member's repr is a complete literal, so none is a prefix of another and the
    first member whose repr differs decides. A caller can so compute a long member's repr once
    for all the keys that share it."""
    return tuple(map(repr, members))


def inventory_universe(inventory, policy_set: PolicySet, cilium_objects: list[dict], *,
                       keys: set[str] | None = None, cidrs: list[str] | None = None) -> Universe:
    """Endpoints of a real cluster, one per class of pods that no selector, CIDR or named port
    of either side can tell apart (weights = pods in the class).

    keys, cidrs: referenced_keys() and _all_cidrs() of the same policies when the caller has
    them already (each walks every Cilium object)."""
    if keys is None:
        keys = referenced_keys(policy_set, cilium_objects)
    cidr_texts = _all_cidrs(policy_set, cilium_objects) if cidrs is None else cidrs
    cidrs = networks(cidr_texts)
    named_refs = {n for (_p, _f, _l, n) in list(_calico_ports(policy_set)) +
                  list(_cilium_ports(cilium_objects)) if n}
    node_matters = _node_matters(cilium_objects)

    def proj(d: dict) -> tuple:
        return frozen_labels({k: v for k, v in (d or {}).items() if k in keys})

    ns_proj: dict[str, tuple] = {}           # per namespace, and per (namespace, SA)
    sa_proj: dict[tuple, tuple] = {}

    containing = CidrIndex(cidrs)

    def ip_sig(ip) -> tuple:
        # the short form (one id per distinct network): equal exactly when the full lists are
        a = address(ip)
        return () if a is None else containing.distinct_int(*a)

    sig_reprs: dict[tuple, str] = {}

    def sort_key(kv) -> tuple:
        # the classes are listed in the order of repr(key) with the full CIDR index list
        key = kv[0]
        sig = sig_reprs.get(key[5])
        if sig is None:
            sig = sig_reprs[key[5]] = repr(containing.indexes(key[5]))
        return order_key(key[:5]) + (sig,) + order_key(key[6:])

    ns_labels = {n.name: dict(n.labels) | {NS_META: n.name} for n in inventory.namespaces}
    sa_labels = {(s.namespace, s.name): dict(s.labels) for s in inventory.service_accounts}
    nodes = {n.name: n for n in inventory.nodes}
    groups: dict[tuple, list] = {}
    identities = set()
    by_labels: dict[tuple, tuple] = {}   # replicas carry the same labels: project them once
    for pod in inventory.pods:
        if pod.host_network:
            continue      # host-network pods are their node's host endpoint
        sa = pod.service_account or "default"
        items = tuple(pod.labels.items())
        labels_proj = by_labels.get(items)
        if labels_proj is None:
            labels_proj = proj(pod.labels)
            if all(type(k) is str and type(v) is str for k, v in items):
                by_labels[items] = labels_proj   # (1 == True: only strings are shared)
        identities.add((pod.namespace, frozenset(items), sa))     # counted only
        ports = tuple(sorted((cp.name, cp.port, cp.protocol) for cp in pod.ports
                             if cp.name in named_refs))
        nsp = ns_proj.get(pod.namespace)
        if nsp is None:
            nsp = ns_proj[pod.namespace] = proj(ns_labels.get(pod.namespace))
        sap = sa_proj.get((pod.namespace, sa))
        if sap is None:
            sap = sa_proj[(pod.namespace, sa)] = proj(sa_labels.get((pod.namespace, sa)))
        key = (pod.namespace, labels_proj, sa, nsp, sap,
               ip_sig(pod.ips[0] if pod.ips else None), ports, pod.node if node_matters else None)
        groups.setdefault(key, []).append(pod)
    endpoints: list[Endpoint] = []
    extra_ports: set[int] = set()
    # the same namespace, service-account and node labels for thousands of classes: one tuple
    ns_frozen: dict[str, tuple] = {}
    sa_frozen: dict[tuple, tuple] = {}
    node_frozen: dict[str, tuple] = {}
    for key, pods in sorted(groups.items(), key=sort_key):
        ns, labels, sa, _nsl, _sal, _ipsig, ports, _node = key
        first = min(pods, key=lambda p: p.name)     # the first of the sorted names
        node = first.node
        nsf = ns_frozen.get(ns)
        if nsf is None:
            nsf = ns_frozen[ns] = frozen_labels(ns_labels.get(ns, {NS_META: ns}))
        saf = sa_frozen.get((ns, sa))
        if saf is None:
            saf = sa_frozen[(ns, sa)] = frozen_labels(sa_labels.get((ns, sa)))
        nodef = node_frozen.get(node)
        if nodef is None:
            nodef = node_frozen[node] = frozen_labels(
                dict(nodes[node].labels) if node in nodes else {})
        extra_ports.update(p for _n, p, _pr in ports)
        endpoints.append(Endpoint(
            kind="pod", name=f"pod {ns}/{first.name}" + (f" (+{len(pods) - 1})" if len(pods) > 1 else ""),
            ip=first.ips[0] if first.ips else None, namespace=ns, labels=frozen_labels(first.labels),
            namespace_labels=nsf, service_account=sa, service_account_labels=saf,
            node=node, node_labels=nodef,
            named_ports=tuple(NamedPort(n, p, pr) for n, p, pr in ports),
            weight=len(pods)))
    l4, _named = flow_classes(policy_set, cilium_objects, extra_ports=tuple(sorted(extra_ports)))

    heps = {h.node: h for h in policy_set.host_endpoints if h.node}
    pod_nodes = {e.node for e in endpoints}
    host_groups: dict[tuple, list] = {}
    for n in sorted(inventory.nodes, key=lambda n: n.name):
        hep = heps.get(n.name)
        key = (proj(hep.labels) if hep else None, tuple(hep.profiles) if hep else (),
               proj(n.labels), ip_sig(n.internal_ip),
               n.name if (node_matters and n.name in pod_nodes) or hep else None)
        host_groups.setdefault(key, []).append(n)
    for key, members in sorted(host_groups.items(), key=lambda kv: kv[1][0].name):
        n = members[0]
        hep = heps.get(n.name)
        labels = dict(hep.labels) if hep else dict(n.labels)
        more = f" (+{len(members) - 1})" if len(members) > 1 else ""
        endpoints.append(Endpoint(kind="host", name=f"host {n.name}{more}", ip=n.internal_ip,
                                  labels=frozen_labels(labels), node=n.name,
                                  node_labels=frozen_labels(n.labels), weight=len(members)))
    taken = set()
    cluster_nets = []
    for c in inventory.cidrs:
        try:
            cluster_nets.append(ipaddress.ip_network(c.cidr, strict=False))
        except ValueError:
            pass
    for e in endpoints:
        if e.ip:
            taken.add(e.ip)
    in_cluster = cidr_index(cluster_nets)    # one /24 per node: thousands of networks
    for ip in cidr_probe_addresses(cidr_texts) + [WORLD_IP]:
        a = ipaddress.ip_address(ip)
        if ip in taken or in_cluster(a):
            continue       # inside the cluster's own ranges: covered by real endpoints
        taken.add(ip)
        endpoints.append(Endpoint(kind="external", name=ip, ip=ip))
    pods_n = sum(len(v) for v in groups.values())
    return Universe(endpoints, l4, "inventory", [
        f"inventory of cluster {inventory.cluster_name}: {pods_n} pods in {len(identities)} identities, "
        f"judged as {len(groups)} classes no policy tells apart; {len(inventory.nodes)} nodes "
        f"as {len(host_groups)} classes"])


def build_universe(policy_set: PolicySet, cilium_objects: list[dict], inventory=None, *,
                   keys: set[str] | None = None, cidrs: list[str] | None = None) -> Universe:
    """keys, cidrs: see inventory_universe (the synthetic universe does not use them)."""
    if inventory is not None:
        return inventory_universe(inventory, policy_set, cilium_objects, keys=keys, cidrs=cidrs)
    return synthetic_universe(policy_set, cilium_objects)
