"""Ordering cases: translate, then compare Felix's verdicts with Cilium's on a small universe.

Both evaluators are independent of the translator (generator/calico/felix.py,
generator/cilium/evaluator.py); every policy set here must come out exact and agree on every
flow of the universe.
"""
import itertools

import pytest

from generator.calico import felix
from generator.calico.model import (EntityRule, ICMPMatch, Policy, PolicySet, PortRange, Rule,
                                    SourceRef, Tier)
from generator.cilium import evaluator
from generator.translate import translate
from generator.verify.model import Endpoint, Flow, frozen_labels
from tests.schemas import problems


def src(kind, ns, name):
    return SourceRef("projectcalico.org/v3", kind, ns, name)


def np_(name, ns, rules_in=(), rules_out=(), *, order=100, selector="all()", tier="default",
        types=None):
    types = types or tuple(t for t, r in (("Ingress", rules_in), ("Egress", rules_out)) if r) \
        or ("Ingress",)
    full = name if tier == "default" else f"{tier}.{name}"
    return Policy(src("NetworkPolicy", ns, full), full, ns, tier=tier, order=order,
                  selector=selector, types=types,
                  ingress=tuple(Rule(index=i, **r) for i, r in enumerate(rules_in)),
                  egress=tuple(Rule(index=i, **r) for i, r in enumerate(rules_out)))


def gnp(name, rules_in=(), rules_out=(), *, order=100, selector="all()", tier="default",
        types=None):
    p = np_(name, None, rules_in, rules_out, order=order, selector=selector, tier=tier,
            types=types)
    return Policy(src("GlobalNetworkPolicy", None, p.name), p.name, None, tier=tier,
                  order=order, selector=selector, types=p.types, ingress=p.ingress,
                  egress=p.egress)


def pod(name, ns, **labels):
    return Endpoint("pod", f"pod {ns}/{name}", ip=f"10.0.{abs(hash(name)) % 200}.{len(name)}",
                    namespace=ns, labels=frozen_labels(labels),
                    namespace_labels=frozen_labels({"kubernetes.io/metadata.name": ns}),
                    service_account="default")


PODS = [pod("web", "prod", app="web"), pod("fe", "prod", app="fe"), pod("db", "prod", app="db"),
        pod("fe2", "dev", app="fe"), pod("tool", "dev", app="tool")]
WORLD = Endpoint("external", "203.0.113.7", ip="203.0.113.7")
PROBES = [("TCP", 80), ("TCP", 22), ("UDP", 53), ("TCP", 8080)]


def flows():
    for a, b in itertools.permutations(PODS, 2):
        for proto, port in PROBES:
            yield Flow(a, b, proto, port)
        yield Flow(a, b, "ICMP", None, icmp_type=8, icmp_code=0)
    for b in PODS:
        yield Flow(WORLD, b, "TCP", 80)
        yield Flow(b, WORLD, "TCP", 443)


def check(ps: PolicySet, version="1.18"):
    t = translate(ps, cilium_version=version)
    for o in t.objects:
        assert problems(o, cilium_version=version) == [], o
    bad = [p for p in t.report.policies if p.fidelity != "exact"]
    assert not bad, [(p.name, [f.to_dict() for f in p.findings]) for p in bad]
    diffs = []
    for f in flows():
        want = felix.verdict(ps, f)
        got = evaluator.verdict(t.objects, f)
        if want.allowed != got.allowed:
            diffs.append(f"{f.describe()}: calico {want.allowed} ({want.decided_by}) "
                         f"cilium {got.allowed} ({got.decided_by})")
    assert not diffs, "\n".join(diffs[:10])
    return t


FE = {"selector": "app == 'fe'"}
TCP80 = {"protocol": "TCP", "destination": EntityRule(ports=(PortRange(80, 80),))}


def test_allow_then_deny_same_peer():
    check(PolicySet(policies=[np_("p", "prod", [
        dict(action="Allow", source=EntityRule(**FE), **TCP80),
        dict(action="Deny", source=EntityRule(**FE))], selector="app == 'web'")]))


def test_deny_then_allow():
    check(PolicySet(policies=[np_("p", "prod", [
        dict(action="Deny", protocol="TCP", source=EntityRule(**FE),
             destination=EntityRule(ports=(PortRange(22, 22),))),
        dict(action="Allow", source=EntityRule(namespace_selector="all()"))],
        selector="app == 'web'")]))


def test_deny_after_broad_allow_port_complement():
    # allow TCP 80 from everyone in the namespace, then deny all TCP from fe: fe keeps TCP 80
    check(PolicySet(policies=[np_("p", "prod", [
        dict(action="Allow", **TCP80),
        dict(action="Deny", protocol="TCP", source=EntityRule(**FE)),
        dict(action="Allow", source=EntityRule(namespace_selector="all()"))],
        selector="app == 'web'")]))


def test_negated_selector_subtraction():
    check(PolicySet(policies=[np_("p", "prod", [
        dict(action="Allow", source=EntityRule(selector="app == 'fe'")),
        dict(action="Deny", source=EntityRule(selector="has(app)")),
        dict(action="Allow", source=EntityRule(namespace_selector="all()"))])]))


def test_end_of_tier_drop_blocks_later_tier():
    ps = PolicySet(
        tiers=[Tier("security", 10)],
        policies=[np_("only-fe", "prod", [dict(action="Allow", source=EntityRule(**FE))],
                      tier="security", selector="app == 'web'"),
                  gnp("allow-all", [dict(action="Allow")], order=1000)])
    check(ps)


def test_pass_then_later_tier_decides():
    ps = PolicySet(
        tiers=[Tier("security", 10)],
        policies=[gnp("sec", [dict(action="Deny", source=EntityRule(selector="app == 'tool'")),
                              dict(action="Pass")], tier="security"),
                  np_("web", "prod", [dict(action="Allow", source=EntityRule(**FE), **TCP80)],
                      selector="app == 'web'")])
    check(ps)


def test_default_action_pass_tier():
    ps = PolicySet(
        tiers=[Tier("security", 10, default_action="Pass")],
        policies=[np_("deny-22", "prod", [dict(action="Deny", protocol="TCP",
                                               destination=EntityRule(ports=(PortRange(22, 22),)))],
                      tier="security")])
    check(ps)


def test_pass_only_tier_then_profile_allows():
    ps = PolicySet(tiers=[Tier("security", 10)],
                   policies=[gnp("pass-all", [dict(action="Pass")], [dict(action="Pass")],
                                 tier="security")])
    check(ps)


def test_log_then_allow_reported_not_lost():
    ps = PolicySet(policies=[np_("p", "prod", [dict(action="Log"),
                                               dict(action="Allow", source=EntityRule(**FE))],
                                 selector="app == 'web'")])
    t = translate(ps)
    rep = t.report.policies[0]
    assert rep.fidelity == "approximate" and rep.findings[0].code == "log"
    assert t.helm_values["hubble"]["export"]["static"]["enabled"] is True
    for f in flows():
        assert felix.verdict(ps, f).allowed == evaluator.verdict(t.objects, f).allowed


def test_egress_icmp_and_world():
    check(PolicySet(policies=[np_("p", "prod", (), [
        dict(action="Allow", protocol="ICMP", icmp=ICMPMatch(8)),
        dict(action="Allow", protocol="TCP", destination=EntityRule(
            nets=("203.0.113.0/24",), not_nets=("203.0.113.128/25",),
            ports=(PortRange(443, 443),)))],
        selector="app == 'fe'")]))


def test_namespaced_default_deny_plus_global_allow_dns():
    check(PolicySet(policies=[
        gnp("dns", (), [dict(action="Allow", protocol="UDP",
                             destination=EntityRule(ports=(PortRange(53, 53),),
                                                    namespace_selector="all()"))], order=10),
        np_("deny", "prod", (), [dict(action="Deny")], order=20, types=("Egress",))]))


@pytest.mark.parametrize("version", ["1.16", "1.17", "1.19"])
def test_versions(version):
    check(PolicySet(policies=[np_("p", "prod", [dict(action="Allow", source=EntityRule(**FE),
                                                     protocol="TCP", destination=EntityRule(
                                                         ports=(PortRange(8000, 9000),)))])]),
          version)


def test_all_icmp_lists_every_type():
    t = check(PolicySet(policies=[np_("p", "prod", [dict(action="Allow", protocol="ICMP",
                                                         source=EntityRule(**FE))])]))
    items = t.objects[0]["spec"]["ingress"]
    types = [f["type"] for it in items for r in it["icmps"] for f in r["fields"]]
    assert types == list(range(256)) and all(len(it["icmps"][0]["fields"]) <= 40 for it in items)


def test_not_nets_alone_and_peer_complement():
    # allow fe TCP 80, then deny TCP 80 from anyone else (any minus a selector), then allow
    # egress anywhere except a range (notNets alone)
    check(PolicySet(policies=[np_("p", "prod", [
        dict(action="Allow", source=EntityRule(**FE), **TCP80),
        dict(action="Deny", **TCP80),
        dict(action="Allow")], [
        dict(action="Allow", destination=EntityRule(not_nets=("198.51.100.0/24",)))],
        selector="app == 'web'")]))


def test_deny_to_network_set_then_allow_all():
    # the network set's addresses must stay denied when the allow-all is cut around it
    from generator.calico.model import NetworkSet
    bad = NetworkSet(src("GlobalNetworkSet", None, "bad"), "bad", None, {"role": "bad"},
                     ("203.0.113.0/24",))
    t = check(PolicySet(network_sets=[bad], policies=[
        gnp("deny-bad", (), [dict(action="Deny", destination=EntityRule(
            selector="role == 'bad'"))], order=10),
        gnp("allow-all", (), [dict(action="Allow")], order=20),
        gnp("ingress", [dict(action="Allow", source=EntityRule(selector="app == 'fe'"))],
            order=30)]))
    assert any(o["kind"] == "CiliumCIDRGroup" for o in t.objects)
