"""Whole side vectors (FelixModel.side_vector, CiliumModel.side_vector: compiled tiers, merged
rules, L4 bitmasks, peer-match caches) equal the per-flow verdicts they replace, and the
Cilium subject index selects what a scan of every policy selects."""
import pytest

from generator.calico.felix import FelixModel
from generator.calico.reader import read_policies
from generator.cilium.evaluator import CiliumModel, identity_labels
from generator.errors import UserError
from generator.verify.flows import L4
from generator.verify.model import Endpoint, Flow, NamedPort, frozen_labels
from generator.verify.universe import synthetic_universe
from generator.yamlio import load_paths, load_text

import test_verify_compare as cases

TIERS = """
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 10}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: platform}
spec: {order: 20, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: edge}
spec: {order: 15}
---
"""


def _gnp(name, tier, order, selector, types, rules):
    return (f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"
            f"metadata: {{name: {tier}.{name}}}\nspec:\n  tier: {tier}\n  order: {order}\n"
            f"  selector: \"{selector}\"\n  types: {types}\n{rules}\n---\n")


def _np(name, ns, order, selector, types, rules, tier="default"):
    return (f"apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
            f"metadata: {{name: {tier}.{name}, namespace: {ns}}}\nspec:\n  tier: {tier}\n"
            f"  order: {order}\n  selector: \"{selector}\"\n  types: {types}\n{rules}\n---\n")


# the synthetic cluster's shapes, repeated (merging and cutting must not change a verdict),
# plus Log, named ports, ipVersion, nets/notNets, network sets and host endpoints
def _felix_text() -> str:
    out = [TIERS]
    for i in range(6):
        port = (80, 443, 5432)[i % 3]
        out.append(_gnp(f"deny-{i}", "security", 10 + i % 2, "app == 'web'", "[Ingress]", f"""
  ingress:
  - {{action: Log, protocol: TCP, destination: {{ports: [{port}]}}}}
  - {{action: Deny, protocol: TCP, source: {{namespaceSelector: \"env == 'dev'\"}},
     destination: {{ports: ['{port}:{port + 10}']}}}}
  - {{action: Pass}}"""))
        out.append(_gnp(f"dns-{i}", "platform", 100 + i, f"projectcalico.org/namespace == "
                        f"'{('prod', 'dev')[i % 2]}'", "[Egress]", """
  egress:
  - {action: Allow, protocol: UDP, destination: {selector: \"k8s-app == 'kube-dns'\",
     namespaceSelector: \"projectcalico.org/name == 'kube-system'\", ports: [53]}}
  - {action: Pass, protocol: TCP, destination: {ports: [http]}}"""))
        out.append(_np(f"web-{i}", ("prod", "dev")[i % 2], 100 + i % 3, "app == 'web'",
                       "[Ingress, Egress]", f"""
  ingress:
  - {{action: Deny, protocol: TCP, source: {{selector: \"app == 'db' && tier == 'frontend'\"}},
     destination: {{ports: [{port}]}}}}
  - {{action: Allow, protocol: TCP, source: {{selector: \"app in {{'db', 'web'}}\"}},
     destination: {{ports: [{port}, http]}}}}
  - {{action: Allow, ipVersion: 6, source: {{nets: ['fd00::/8']}}}}
  egress:
  - {{action: Deny, protocol: TCP, destination: {{nets: ['0.0.0.0/0'],
     notNets: ['10.0.0.0/8'], ports: [443]}}}}
  - {{action: Allow, protocol: TCP, destination: {{selector: \"netset == 'partners'\", ports: [http]}}}}
  - {{action: Allow, protocol: ICMP, icmp: {{type: 8}}}}
  - {{action: Allow, protocol: UDP, notProtocol: TCP}}"""))
    # an unconditional rule taking some L4 classes does not end the tier for the others
    out.append(_gnp("db-5432", "edge", 1, "app == 'db'", "[Ingress]", """
  ingress:
  - {action: Deny, protocol: TCP, destination: {ports: [5432]}}"""))
    out.append(_gnp("db-rest", "edge", 2, "app == 'db'", "[Ingress]", """
  ingress:
  - {action: Allow}"""))
    out.append(_gnp("hosts", "default", 5, "has(node-role)", "[Ingress, Egress]", """
  ingress:
  - {action: Allow, protocol: TCP, source: {selector: \"app == 'web'\"}, destination: {ports: [10250]}}
  egress:
  - {action: Allow, protocol: UDP, destination: {ports: ['1:1000']}}"""))
    out.append("""apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: partners, labels: {netset: partners}}
spec: {nets: ['203.0.113.0/24', '10.244.9.0/24']}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node-1-eth0, labels: {node-role: worker}}
spec: {node: node-1, interfaceName: '*', expectedIPs: ['172.18.0.11']}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node-2-eth0, labels: {node-role: worker}}
spec: {node: node-2, interfaceName: '*', expectedIPs: ['172.18.0.12'],
       profiles: [projectcalico-default-allow]}
""")
    return "".join(out)


def _pod(name, ns, ip, ports=(), ns_labels=None, **labels):
    return Endpoint("pod", f"pod {ns}/{name}", ip=ip, namespace=ns, labels=frozen_labels(labels),
                    namespace_labels=frozen_labels(ns_labels or {"env": ns}),
                    service_account="default", node="node-1", named_ports=tuple(ports))


HTTP = (NamedPort("http", 8080),)
EXTRA = [
    _pod("web-a", "prod", "10.244.0.3", HTTP, app="web"),
    _pod("web-b", "prod", "10.244.0.4", (NamedPort("http", 9090),), app="web"),
    _pod("web-d", "dev", "10.244.1.3", HTTP, app="web", tier="frontend"),
    _pod("db-f", "dev", "10.244.1.4", app="db", tier="frontend"),
    _pod("db", "prod", "10.244.0.5", HTTP, app="db"),
    _pod("dns", "kube-system", "10.244.2.2", ns_labels={}, **{"k8s-app": "kube-dns"}),
    _pod("v6", "prod", "fd00::5", app="web"),
    _pod("partner", "prod", "10.244.9.7", app="api"),
    Endpoint("host", "host node-1", ip="172.18.0.11", node="node-1"),
    Endpoint("host", "host node-2", ip="172.18.0.12", node="node-2"),
    Endpoint("host", "host node-3", ip="172.18.0.13", node="node-3"),
    Endpoint("external", "203.0.113.7", ip="203.0.113.7"),
    Endpoint("external", "8.8.8.8", ip="8.8.8.8"),
]


def _plain(side, ep, src, dst, direction, l4s):
    """The per-flow computation the vectors replace (None: ep not policed)."""
    got = [side(ep, Flow(src, dst, l4.protocol, l4.port, l4.icmp_type), direction)
           for l4 in l4s]
    if all(v is None for v in got):
        return None
    return tuple(v is None or v.allowed for v in got)


def _compare(make_fx, make_cm, endpoints, l4s, max_pairs=None):
    fx, cm = make_fx(), make_cm()
    # separate models for the plain side: no state shared with the vectors
    plain_fx, plain_cm = make_fx(), make_cm()
    checked = 0
    for src in endpoints:
        for dst in endpoints:
            if src is dst or (src.kind == "external" and dst.kind == "external"):
                continue
            for ep, direction in ((src, "egress"), (dst, "ingress")):
                want = _plain(plain_fx.side, ep, src, dst, direction, l4s)
                assert fx.side_vector(ep, src, dst, direction, l4s) == want, \
                    (src.name, dst.name, direction)
                want = _plain(plain_cm.side, ep, src, dst, direction, l4s)
                assert cm.side_vector(ep, src, dst, direction, l4s) == want, \
                    (src.name, dst.name, direction)
                checked += 1
            if max_pairs is not None and checked >= max_pairs:
                return checked
    return checked


def test_felix_and_cilium_vectors_match_per_flow_verdicts_on_repeated_shapes():
    from generator.translate import translate
    ps = read_policies(load_text(_felix_text(), "p.yaml"))
    objs = translate(ps, cilium_version="1.19").objects
    uni = synthetic_universe(ps, objs)
    checked = _compare(lambda: FelixModel(ps), lambda: CiliumModel(objs),
                       EXTRA + uni.endpoints[:40], uni.l4)
    assert checked > 1000


def test_vectors_match_on_hand_cases():
    ps = read_policies(load_text(cases.DENY_THEN_ALLOW, "t.yaml"))
    broken = cases.cnp("db", {"endpointSelector": cases.DB,
                              "ingress": cases.GOOD["spec"]["ingress"]})
    # pods of one identity with different named ports: ingress masks differ per pod
    named = cases.cnp("web", {"endpointSelector": {"matchLabels": {"app": "web"}},
                              "ingress": [{"fromEndpoints": [{}], "toPorts": [
                                  {"ports": [{"port": "http", "protocol": "TCP"}]}]}],
                              "egress": [{"toEndpoints": [{}], "toPorts": [
                                  {"ports": [{"port": "http", "protocol": "TCP"}]}]}]})
    for objs in ([cases.GOOD], [broken], [named]):
        uni = synthetic_universe(ps, objs)
        l4s = uni.l4 + [L4("TCP", 8080), L4("TCP", 9090)]
        _compare(lambda: FelixModel(ps), lambda: CiliumModel(objs), uni.endpoints + EXTRA, l4s)


SAMPLE = 12


def test_vectors_match_on_corpus(shared):
    from generator.translate import translate
    files = sorted((shared / "calico" / "corpus").glob("*.yaml"))
    checked = 0
    for f in files[::max(1, len(files) // SAMPLE)][:SAMPLE]:
        try:
            ps = read_policies(load_paths([f]))
        except UserError:
            continue
        if not ps.policies:
            continue
        objs = translate(ps, cilium_version="1.19").objects
        uni = synthetic_universe(ps, objs)
        checked += _compare(lambda: FelixModel(ps), lambda: CiliumModel(objs),
                            uni.endpoints, uni.l4, max_pairs=400)
    assert checked > 1000, checked


def test_cilium_subject_index_matches_a_scan():
    objs = [cases.GOOD,
            cases.cnp("a", {"endpointSelector": {}, "ingress": [{}]}),
            {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
             "metadata": {"name": "pinned"},
             "spec": {"endpointSelector": {"matchLabels": {
                 "io.kubernetes.pod.namespace": "dev"}}, "ingress": [{}]}},
            {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
             "metadata": {"name": "pinned-k8s"},
             "spec": {"endpointSelector": {"matchExpressions": [
                 {"key": "k8s:io.kubernetes.pod.namespace", "operator": "In",
                  "values": ["prod", "dev"]}]}, "egress": [{}]}},
            {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
             "metadata": {"name": "open"},
             "spec": {"endpointSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "k", "namespace": "dev"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}]
    cm = CiliumModel(objs)
    eps = EXTRA + [
        Endpoint("pod", "pod none/x", ip="10.1.1.1", labels=frozen_labels({"app": "web"})),
        # no namespace, but the label itself: selected as a pod of "dev" would be
        Endpoint("pod", "pod none/y", ip="10.1.1.2", labels=frozen_labels(
            {"io.kubernetes.pod.namespace": "dev"}))]
    for ep in eps:
        if ep.kind != "pod":
            continue
        labels = identity_labels(ep)
        want = [p.where for p in cm.policies if p.subject is not None and p.subject.matches(labels)]
        assert [p.where for p in cm.selecting(ep)] == want, ep.name
    assert [p.where for p in cm.selecting(eps[-1])] == ["CiliumClusterwideNetworkPolicy pinned",
                                                        "CiliumClusterwideNetworkPolicy pinned-k8s",
                                                        "NetworkPolicy dev/k"]


def test_side_cache_classes_and_vector_numbers_match_plain_keys():
    # SideCache.peer_class / vector_id (small ints shared by subjects with equal key sets)
    # against peer_key and the per-flow vectors they stand for
    from generator.translate import translate
    from generator.verify.cidrs import networks as _networks
    from generator.verify.compare import SideCache, _felix_keys
    from generator.verify.flows import _all_cidrs
    from generator.verify.universe import referenced_keys
    ps = read_policies(load_text(_felix_text(), "p.yaml"))
    objs = translate(ps, cilium_version="1.19").objects
    uni = synthetic_universe(ps, objs)
    eps = EXTRA + uni.endpoints[:30]
    gkeys = referenced_keys(ps, objs)
    cidrs = _networks(_all_cidrs(ps, objs))
    fx, cm = FelixModel(ps), CiliumModel(objs)
    plain_fx, plain_cm = FelixModel(ps), CiliumModel(objs)
    for side, keys_for, vec, plain in (
            (fx.side, _felix_keys(fx, ps), fx.side_vector, plain_fx.side),
            (cm.side, cm.peer_keys, cm.side_vector, plain_cm.side)):
        cache = SideCache(side, keys_for, uni.l4, gkeys, cidrs, vec)
        classes: dict = {}
        for src in eps:
            for dst in eps:
                if src is dst:
                    continue
                for subject, peer, direction in ((src, dst, "egress"), (dst, src, "ingress")):
                    key = cache.peer_key(subject, peer, direction)
                    assert classes.setdefault(key, cache.peer_class(subject, peer, direction)) \
                        == cache.peer_class(subject, peer, direction)
                    want = _plain(plain, subject, src, dst, direction, uni.l4)
                    assert cache.vector(subject, src, dst, direction) == \
                        (want or (True,) * len(uni.l4))
        assert len(set(classes.values())) == len(classes)
