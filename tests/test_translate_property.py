"""Random policy sets (tiers, orders, Allow/Deny/Pass/Log, selectors, ports, nets): the
translation never allows a flow Calico denies, and agrees on every flow when it says exact.
Verdicts come from the two independent evaluators (Felix model, Cilium model)."""
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from generator.calico import felix
from generator.calico.model import (EntityRule, NetworkSet, PolicySet, PortRange, SourceRef,
                                    Tier)
from generator.cilium import evaluator
from generator.translate import translate
from tests.test_translate_ordering import flows, gnp, np_

SELECTORS = ["all()", "app == 'fe'", "app != 'web'", "app in {'fe', 'db'}", "has(app)",
             "!has(tier)", "app == 'fe' || app == 'db'", "app not in {'tool'}",
             "role == 'ext'"]
NS_SELECTORS = [None, None, "all()", "kubernetes.io/metadata.name == 'dev'", "global()"]
PORTS = [(), (PortRange(80, 80),), (PortRange(22, 22), PortRange(80, 80)),
         (PortRange(8000, 9000),)]


@st.composite
def rules(draw):
    action = draw(st.sampled_from(["Allow", "Allow", "Deny", "Deny", "Pass", "Log"]))
    proto = draw(st.sampled_from([None, "TCP", "TCP", "UDP"]))
    ports = draw(st.sampled_from(PORTS)) if proto else ()
    kind = draw(st.sampled_from(["sel", "sel", "any", "nets"]))
    if kind == "sel":
        peer = EntityRule(selector=draw(st.sampled_from(SELECTORS)),
                          namespace_selector=draw(st.sampled_from(NS_SELECTORS)))
    elif kind == "nets":
        peer = EntityRule(nets=("203.0.113.0/24",))
    else:
        peer = EntityRule()
    return dict(action=action, protocol=proto, source=peer,
                destination=EntityRule(ports=ports))


@st.composite
def policy_sets(draw):
    tiers = [Tier("security", 10, draw(st.sampled_from(["Deny", "Pass"])))]
    pols = []
    for i in range(draw(st.integers(1, 3))):
        rs = draw(st.lists(rules(), min_size=0, max_size=3))
        tier = draw(st.sampled_from(["default", "default", "security"]))
        order = draw(st.sampled_from([10, 100, float("inf")]))
        subject = draw(st.sampled_from(SELECTORS))
        if draw(st.booleans()):
            pols.append(np_(f"p{i}", draw(st.sampled_from(["prod", "dev"])), rs, order=order,
                            selector=subject, tier=tier))
        else:
            pols.append(gnp(f"g{i}", rs, order=order, selector=subject, tier=tier))
    sets = [NetworkSet(SourceRef("projectcalico.org/v3", "GlobalNetworkSet", None, "ext"),
                       "ext", None, {"role": "ext"}, ("203.0.113.0/25",))]
    return PolicySet(tiers=tiers, policies=pols, network_sets=sets if draw(st.booleans()) else [])


FLOWS = list(flows())


EXAMPLES = int(os.environ.get("TRANSLATE_EXAMPLES", "40"))   # more for a longer bug hunt


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(policy_sets())
def test_never_widens_and_exact_means_equal(ps):
    t = translate(ps, cilium_version="1.18")
    exact = all(p.fidelity == "exact" for p in t.report.policies)
    for f in FLOWS:
        want = felix.verdict(ps, f).allowed
        got = evaluator.verdict(t.objects, f).allowed
        assert not (got and not want), f"widened: {f.describe()}"
        if exact:
            assert got == want, f"differs: {f.describe()} calico={want} cilium={got}"
