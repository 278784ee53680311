"""Constructs beyond ordering: network sets, host endpoints, KNP pass-through, nets over
cluster ranges, refusals that must never widen, and schema validity for every version."""
import pytest

from generator.calico import felix
from generator.calico.model import (EntityRule, HostEndpoint, ICMPMatch, NetworkSet, Policy,
                                    ServiceMatch,
                                    PolicySet, PortRange, Rule, ServiceAccountMatch, SourceRef,
                                    Tier)
from generator.cilium import evaluator
from generator.inventory.model import Cidr, Inventory, SourceCNI
from generator.translate import translate
from tests.schemas import problems
from tests.test_translate_ordering import PODS, WORLD, flows, gnp, np_, src

FE = EntityRule(selector="app == 'fe'")


def inventory(cidrs):
    return Inventory("test", [], [], [], [], [], [], [],
                     SourceCNI("calico", "vxlan", 4789, "kube-system", [], [], []),
                     [Cidr(c, "test", role) for c, role in cidrs], None, "c", [], "0")


def valid(t, version="1.18"):
    for o in t.objects:
        if o["kind"] != "NetworkPolicy":
            assert problems(o, cilium_version=version) == [], o


def no_widening(ps, t):
    for f in flows():
        if not felix.verdict(ps, f).allowed:
            assert not evaluator.verdict(t.objects, f).allowed, f.describe()


def fid(t, name):
    return next(p for p in t.report.policies if p.name == name)


def test_network_set_becomes_cidr_group():
    ns = NetworkSet(SourceRef("projectcalico.org/v3", "GlobalNetworkSet", None, "partners"),
                    "partners", None, {"role": "partner"}, ("198.51.100.0/24",))
    ps = PolicySet(network_sets=[ns], policies=[np_("p", "prod", (), [
        dict(action="Allow", destination=EntityRule(selector="role == 'partner'",
                                                    namespace_selector="global()"))])])
    for version in ("1.17", "1.18"):
        t = translate(ps, cilium_version=version)
        valid(t, version)
        groups = [o for o in t.objects if o["kind"] == "CiliumCIDRGroup"]
        assert groups and groups[0]["spec"]["externalCIDRs"] == ["198.51.100.0/24"]
        cnp = next(o for o in t.objects if o["kind"] == "CiliumNetworkPolicy")
        assert cnp["spec"]["egress"][0]["toCIDRSet"] == [{"cidrGroupRef":
                                                          groups[0]["metadata"]["name"]}]
        assert fid(t, "p").fidelity == "exact"


def test_host_endpoint_policy_is_host_policy():
    hep = HostEndpoint(SourceRef("projectcalico.org/v3", "HostEndpoint", None, "n1-eth0"),
                       "n1-eth0", "n1", "eth0", labels={"role": "worker"})
    ps = PolicySet(host_endpoints=[hep], policies=[gnp("hosts", [
        dict(action="Allow", protocol="TCP", destination=EntityRule(ports=(PortRange(22, 22),)))],
        selector="role == 'worker'")])
    t = translate(ps)
    valid(t)
    ccnp = next(o for o in t.objects if o["metadata"]["name"] == "calico-gnp-hosts")
    specs = ccnp.get("specs") or [ccnp["spec"]]
    assert any(s.get("nodeSelector") == {"matchLabels": {"role": "worker"}} for s in specs)
    assert t.helm_values["hostFirewall"] == {"enabled": True}
    assert fid(t, "hosts").fidelity == "approximate"


def test_knp_passes_through_unchanged_unless_ordering_cuts_it():
    raw = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "web", "namespace": "prod"},
           "spec": {"podSelector": {}, "ingress": [{}]}}
    knp = Policy(SourceRef("networking.k8s.io/v1", "KubernetesNetworkPolicy", "prod", "web"),
                 "knp.default.web", "prod", order=1000, selector="all()", types=("Ingress",),
                 ingress=(Rule("Allow", 0, source=EntityRule(namespace_selector="all()")),))
    t = translate(PolicySet(policies=[knp], k8s_policies=[raw]))
    assert raw in t.objects and fid(t, "web").fidelity == "exact"
    # an earlier-tier drop for fe: the raw KNP would allow fe again, so it is replaced
    sec = np_("only-fe", "prod", [dict(action="Deny", source=FE)], tier="security",
              order=1)
    ps = PolicySet(tiers=[Tier("security", 1, "Pass")], policies=[sec, knp],
                   k8s_policies=[raw])
    t = translate(ps)
    assert raw in t.objects       # the deny wins in Cilium: nothing to cut
    sec2 = np_("only-fe", "prod", [dict(action="Allow", source=FE)], tier="security", order=1)
    ps = PolicySet(tiers=[Tier("security", 1)], policies=[sec2, knp], k8s_policies=[raw])
    t = translate(ps)
    assert raw not in t.objects
    assert "knp-replaced" in {f.code for f in fid(t, "web").findings}
    no_widening(ps, t)


def test_nets_over_pod_range():
    ps = PolicySet(policies=[np_("p", "prod", (), [
        dict(action="Allow", destination=EntityRule(nets=("10.0.0.0/8",)))],
        selector="app == 'fe'"),
        np_("d", "prod", (), [dict(action="Deny", destination=EntityRule(nets=("10.0.0.0/16",)))],
            order=50, selector="app == 'web'")])
    inv = inventory([("10.0.0.0/16", "pod"), ("10.1.0.0/24", "node")])
    t = translate(ps, inventory=inv)
    valid(t)
    allow = next(o for o in t.objects if o["metadata"]["name"] == "calico-np-p")
    assert {"toEntities": ["cluster"]} in allow["spec"]["egress"]      # covers every range
    deny = next(o for o in t.objects if o["metadata"]["name"] == "calico-np-d")
    assert {"toEntities": ["cluster"]} in deny["spec"]["egressDeny"]  # partial: deny more
    assert fid(t, "p").fidelity == "exact"
    assert fid(t, "d").fidelity == "untranslatable"
    no_widening(ps, t)


@pytest.mark.parametrize("rule,code", [
    (dict(action="Allow", protocol="ICMP", icmp=ICMPMatch(8, 0)), "icmp-code"),
    (dict(action="Allow", protocol=47), "protocol"),
    (dict(action="Allow", source=EntityRule(
        service_accounts=ServiceAccountMatch(selector="team == 'a'"))), "serviceaccount-labels"),
    (dict(action="Allow", source=EntityRule(ports=(PortRange(1024, 2048),)), protocol="TCP"),
     "source-ports"),
    (dict(action="Allow", source=EntityRule(selector="app contains 'f'")), "substring-selector"),
])
def test_inexpressible_allow_is_refused_and_dropped(rule, code):
    ps = PolicySet(policies=[np_("p", "prod", [rule], selector="app == 'web'")])
    t = translate(ps)
    rep = fid(t, "p")
    assert rep.fidelity == "untranslatable" and code in {f.code for f in rep.findings}
    valid(t)
    no_widening(ps, t)
    wide = translate(ps, approximate=True)
    assert fid(wide, "p").fidelity in ("approximate", "untranslatable")


def test_inexpressible_deny_still_blocks():
    # deny TCP from pods whose app contains 'f' (no inventory): enforced on a superset
    ps = PolicySet(policies=[np_("p", "prod", [
        dict(action="Deny", source=EntityRule(selector="app contains 'f'")),
        dict(action="Allow", source=EntityRule(namespace_selector="all()"))])])
    t = translate(ps)
    assert fid(t, "p").fidelity == "untranslatable"
    no_widening(ps, t)


def test_substring_selector_expanded_from_inventory():
    from generator.inventory.model import Pod
    inv = inventory([])
    inv.pods = [Pod(p.name, p.namespace, dict(p.labels), None, (), False, "default", None, None)
                for p in PODS]
    ps = PolicySet(policies=[np_("p", "prod", [
        dict(action="Allow", source=EntityRule(selector="app starts with 'f'"))],
        selector="app == 'web'")])
    t = translate(ps, inventory=inv)
    assert fid(t, "p").fidelity == "approximate"
    assert {f.code for f in fid(t, "p").findings} == {"substring-expanded"}
    for f in flows():
        assert felix.verdict(ps, f).allowed == evaluator.verdict(t.objects, f).allowed


def test_unsupported_modes_refused():
    p = np_("p", "prod", [dict(action="Allow")])
    p = Policy(p.source, p.name, p.namespace, order=1, types=p.types, ingress=p.ingress,
               do_not_track=True)
    t = translate(PolicySet(policies=[p]))
    assert fid(t, "p").fidelity == "untranslatable"
    assert t.objects == []    # no end-of-tier drop in Calico: no default deny in Cilium


def test_report_shape_and_markdown():
    ps = PolicySet(policies=[np_("p", "prod", [dict(action="Log"), dict(action="Allow")])])
    t = translate(ps)
    d = t.report.to_dict()
    (entry,) = d["policies"]
    assert set(entry) == {"source", "fidelity", "findings", "outputs"}
    assert set(entry["source"]) == {"apiVersion", "kind", "namespace", "name"}
    assert entry["findings"][0] == {"code": "log", "message": entry["findings"][0]["message"],
                                    "rule": "ingress[0]"}
    md = t.report.to_markdown()
    assert "| NetworkPolicy prod/p | approximate |" in md


def test_services_need_inventory():
    from generator.inventory.model import Service
    ps = PolicySet(policies=[np_("p", "prod", (), [
        dict(action="Allow", destination=EntityRule(services=ServiceMatch("db", "prod")))],
        selector="app == 'fe'")])
    t = translate(ps)
    assert fid(t, "p").fidelity == "untranslatable"
    inv = inventory([])
    inv.services = [Service("db", "prod", {"app": "db"}, ("10.96.0.10",),
                            ({"port": 5432, "targetPort": 5432, "protocol": "TCP"},))]
    t = translate(ps, inventory=inv)
    assert fid(t, "p").fidelity == "approximate"
    cnp = t.objects[0]
    assert cnp["spec"]["egress"][0]["toEndpoints"][0]["matchLabels"] == {
        "app": "db", "k8s:io.kubernetes.pod.namespace": "prod"}
    assert cnp["spec"]["egress"][0]["toPorts"][0]["ports"] == [{"port": "5432",
                                                               "protocol": "TCP"}]


def test_ip_version_needs_single_stack_inventory():
    ps = PolicySet(policies=[np_("p", "prod", [dict(action="Allow", ip_version=4,
                                                    source=FE)])])
    assert fid(translate(ps), "p").fidelity == "untranslatable"
    t = translate(ps, inventory=inventory([("10.0.0.0/16", "pod")]))
    assert fid(t, "p").fidelity == "exact"


def test_clusterwide_subjects_select_pods_only():
    t = translate(PolicySet(policies=[gnp("all", [dict(action="Deny", source=FE)])]))
    ccnp = next(o for o in t.objects if o["metadata"]["name"] == "calico-gnp-all")
    assert ccnp["spec"]["endpointSelector"] == {"matchExpressions": [
        {"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"}]}


def test_http_match_becomes_l7_in_approximate_mode():
    from generator.calico.model import HTTPMatch
    ps = PolicySet(policies=[np_("p", "prod", [dict(
        action="Allow", protocol="TCP", source=FE,
        destination=EntityRule(ports=(PortRange(80, 80),)),
        http=HTTPMatch(("GET",), (("prefix", "/api/"), ("exact", "/health"))))])])
    assert fid(translate(ps), "p").fidelity == "untranslatable"
    t = translate(ps, approximate=True)
    valid(t)
    assert fid(t, "p").fidelity == "approximate"
    rules = t.objects[0]["spec"]["ingress"][0]["toPorts"][0]["rules"]["http"]
    assert rules == [{"method": "GET", "path": "/api/.*"}, {"method": "GET", "path": "/health"}]


def test_knp_findings_ipblock_and_excluded_labels():
    raw = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "db", "namespace": "prod"},
           "spec": {"podSelector": {"matchLabels": {
                        "statefulset.kubernetes.io/pod-name": "db-0"}},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}
    knp = Policy(SourceRef("networking.k8s.io/v1", "KubernetesNetworkPolicy", "prod", "db"),
                 "knp.default.db", "prod", order=1000,
                 selector="statefulset.kubernetes.io/pod-name == 'db-0'", types=("Ingress",),
                 ingress=(Rule("Allow", 0, source=EntityRule(nets=("10.0.0.0/8",))),))
    ps = PolicySet(policies=[knp], k8s_policies=[raw])
    t = translate(ps, inventory=inventory([("10.244.0.0/16", "pod")]))
    # Cilium cannot select the pod by that label: refused, loudly (a superset would isolate
    # the whole namespace)
    assert t.objects == []
    codes = {f.code for f in fid(t, "db").findings}
    assert {"excluded-label", "subject-refused"} <= codes
    assert fid(t, "db").fidelity == "untranslatable"
    # an ipBlock over the pod range passes through, flagged
    knp2 = Policy(knp.source, knp.name, "prod", order=1000, selector="app == 'db'",
                  types=("Ingress",), ingress=knp.ingress)
    t = translate(PolicySet(policies=[knp2], k8s_policies=[raw]),
                  inventory=inventory([("10.244.0.0/16", "pod")]))
    assert raw in t.objects
    assert "nets-cover-cluster" in {f.code for f in fid(t, "db").findings}


def test_not_nets_over_cluster_ranges():
    # "anything but the private ranges": pods and nodes in them are excluded by address
    ps = PolicySet(policies=[np_("p", "prod", (), [dict(action="Allow", destination=EntityRule(
        not_nets=("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")))])])
    t = translate(ps)
    assert "not-nets-cluster" in {f.code for f in fid(t, "p").findings}
    no_widening(ps, t)
    # with an inventory whose ranges are all excluded: only outside addresses match, exactly
    t = translate(ps, inventory=inventory([("10.0.0.0/16", "pod"), ("172.18.0.0/24", "node")]))
    assert fid(t, "p").fidelity == "exact"
    egress = t.objects[0]["spec"]["egress"]
    assert egress == [{"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": [
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}, {"cidr": "::/0"}]}]


# ---------------------------------------------------------------- negated selectors and sets
# Calico matches selectors against IP sets: a notSelector (or a namespace selector term that
# matches absent labels) also matches hosts, outside addresses and global network sets.

def judged(ps, t):
    """The independent evaluators' comparison on their own synthetic universe."""
    from generator.verify import verify
    return verify(ps, t.objects, declared=t.report)


PARTNERS = NetworkSet(src("GlobalNetworkSet", None, "partners"), "partners", None,
                      {"role": "partner"}, ("198.51.100.0/24",))


def test_nets_inside_not_nets_match_nothing():
    # the peer set is empty: the rule must vanish, not become "from anywhere on UDP/443"
    ps = PolicySet(policies=[np_("p2", "prod", [dict(
        action="Allow", protocol="UDP",
        source=EntityRule(nets=("203.0.113.0/24",), not_nets=("203.0.113.0/24",)),
        destination=EntityRule(ports=(PortRange(443, 443),)))], selector="app == 'db'")])
    t = translate(ps)
    valid(t)
    assert t.objects[0]["spec"]["ingress"] == [{}]          # default deny only
    assert fid(t, "p2").fidelity == "exact"
    assert not judged(ps, t).differences


def test_deny_not_selector_also_denies_hosts_and_world():
    ps = PolicySet(policies=[gnp("p1", [dict(action="Deny",
                                             source=EntityRule(not_selector="!has(tier)")),
                                        dict(action="Pass")])])
    t = translate(ps)
    valid(t)
    deny = next(o for o in t.objects if o["metadata"]["name"] == "calico-gnp-p1")
    deny = deny["spec"]["ingressDeny"]
    assert {"fromCIDRSet": [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]} in deny
    assert any("host" in d.get("fromEntities", ()) for d in deny)
    assert any(d.get("fromEndpoints") for d in deny)          # pods with a tier label
    assert fid(t, "p1").fidelity == "exact"
    assert not judged(ps, t).differences


def test_pass_to_not_selector_keeps_hosts_and_world():
    ps = PolicySet(policies=[gnp("p0", (), [dict(
        action="Pass", destination=EntityRule(not_selector="app in {'fe'}"))])])
    t = translate(ps)
    valid(t)
    prof = next(o for o in t.objects if o["metadata"]["name"] == "calico-profile-allow")
    egress = prof["spec"]["egress"]
    assert {"toCIDRSet": [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]} in egress
    assert any("remote-node" in e.get("toEntities", ()) for e in egress)
    assert fid(t, "p0").fidelity == "exact"
    assert not judged(ps, t).differences


def test_not_selector_excludes_only_the_addresses_it_selects():
    # everything but the partners' network set: the world minus its range, pods, hosts
    ps = PolicySet(network_sets=[PARTNERS], policies=[gnp("d", [dict(
        action="Deny", source=EntityRule(not_selector="role == 'partner'")),
        dict(action="Allow")])])
    t = translate(ps)
    valid(t)
    deny = next(o for o in t.objects if o["metadata"]["name"] == "calico-gnp-d")
    assert {"fromCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["198.51.100.0/24"]},
                            {"cidr": "::/0"}]} in deny["spec"]["ingressDeny"]
    assert fid(t, "d").fidelity == "exact"
    assert not judged(ps, t).differences


@pytest.mark.parametrize("ns_sel, reaches_set", [
    ("projectcalico.org/name != 'dev'", True),    # != matches the set's absent namespace
    ("!has(team)", True),
    ("projectcalico.org/name == 'prod'", False),
    ("all()", False),                              # Felix: all() = has(namespace name)
])
def test_negative_namespace_selector_reaches_global_network_sets(ns_sel, reaches_set):
    ps = PolicySet(network_sets=[PARTNERS], policies=[np_("p0", "default", (), [dict(
        action="Allow", destination=EntityRule(namespace_selector=ns_sel))])])
    t = translate(ps)
    valid(t)
    cnp = next(o for o in t.objects if o["kind"] == "CiliumNetworkPolicy")
    refs = [e for e in cnp["spec"]["egress"] if "toCIDRSet" in e]
    assert bool(refs) == reaches_set
    assert fid(t, "p0").fidelity == "exact"
    assert not judged(ps, t).differences


def test_reserved_hosts_with_host_endpoints_never_widen():
    # with HostEndpoints declared, "hosts without one" has no Cilium form (host/remote-node
    # are every node): an allow leaves the hosts out, a deny covers them all; both reported
    hep = HostEndpoint(src("HostEndpoint", None, "n1-eth0"), "n1-eth0", "node-1", "*",
                       labels={"role": "worker"})
    host_open = gnp("hostopen", [dict(action="Allow")], [dict(action="Allow")],
                    selector="role == 'worker'")
    pods = "has(projectcalico.org/namespace)"
    not_workers = EntityRule(not_selector="role == 'worker'")
    for rules, level in (([dict(action="Allow", destination=not_workers)], "approximate"),
                         ([dict(action="Deny", destination=not_workers), dict(action="Allow")],
                          "untranslatable")):
        ps = PolicySet(host_endpoints=[hep],
                       policies=[gnp("p0", (), rules, selector=pods), host_open])
        t = translate(ps)
        valid(t)
        found = [f for f in fid(t, "p0").findings if f.code == "reserved-hosts"]
        assert found and found[0].level == level
        result = judged(ps, t)
        assert not result.undeclared, result.undeclared[:3]


def test_negative_policy_namespace_selector_selects_host_endpoints():
    # Felix evaluates a policy's namespaceSelector against host endpoints too (no namespace
    # labels, so `!=` matches): the deny must reach the host as a host policy
    hep = HostEndpoint(src("HostEndpoint", None, "n1-eth0"), "n1-eth0", "node-1", "*",
                       labels={"role": "worker"})
    p = gnp("p0", [dict(action="Deny", protocol="TCP",
                        destination=EntityRule(ports=(PortRange(80, 80),))),
                   dict(action="Allow")], [dict(action="Allow")])
    p = Policy(p.source, p.name, None, order=p.order, selector=p.selector, types=p.types,
               ingress=p.ingress, egress=p.egress,
               namespace_selector="projectcalico.org/name != 'dev'")
    ps = PolicySet(host_endpoints=[hep], policies=[p])
    t = translate(ps)
    valid(t)
    ccnp = next(o for o in t.objects if o["metadata"]["name"] == "calico-gnp-p0")
    assert any(s.get("nodeSelector") == {"matchLabels": {"role": "worker"}} and
               s.get("ingressDeny") for s in ccnp["specs"])
    assert not judged(ps, t).undeclared


def test_selector_and_nets_deny_blocks_every_selected_pod():
    # selector AND nets: pods whose addresses are in the nets. No Cilium form, so the Deny
    # is enforced on a superset: the selected endpoints, not the nets (as a peer those mean
    # outside addresses and never reach pods, which would let the later Allow through)
    ps = PolicySet(policies=[
        gnp("p0", (), [dict(action="Deny", destination=EntityRule(
            namespace_selector="all()", nets=("10.0.0.0/8", "203.0.113.0/24")))], order=10),
        gnp("p1", (), [dict(action="Allow")], order=100)])
    t = translate(ps)
    valid(t)
    assert fid(t, "p0").fidelity == "untranslatable"
    result = judged(ps, t)
    assert result.calico_allowed < result.flows_judged and not result.widening


def test_not_selector_on_network_set_over_pod_range_is_not_exact():
    # Felix excludes pods whose addresses are in the selected set; Cilium cannot exclude
    # endpoints by address, so the allow is refused (and the deny enforced on a superset)
    internal = NetworkSet(src("GlobalNetworkSet", None, "internal"), "internal", None,
                          {"role": "internal"}, ("10.0.0.0/8",))
    not_internal = EntityRule(not_selector="role == 'internal'")
    ps = PolicySet(network_sets=[internal], policies=[
        gnp("p0", [dict(action="Allow", source=not_internal)], selector="app == 'db'"),
        np_("q", "prod", [dict(action="Deny", source=not_internal), dict(action="Allow")],
            selector="app == 'db'")])
    t = translate(ps)
    valid(t)
    for name in ("p0", "q"):
        assert "not-selector-netset-cluster" in {f.code for f in fid(t, name).findings}
        assert fid(t, name).fidelity == "untranslatable"
    assert not judged(ps, t).undeclared


def test_refused_deny_with_nets_over_pods_narrows_the_profile():
    # nets over the pod range match pods by address in Calico: a refused Deny (local nets)
    # must cut the profile allow behind a Pass tier for pods too, not only outside addresses
    tier = Tier("platform", 100, "Pass", src("Tier", None, "platform"))
    deny = np_("p2", "default", [dict(action="Deny",
                                      source=EntityRule(nets=("10.244.0.0/16",)),
                                      destination=EntityRule(nets=("10.244.0.0/16",)))],
               tier="platform")
    ps = PolicySet(tiers=[tier], policies=[deny])
    t = translate(ps)
    valid(t)
    assert fid(t, "platform.p2").fidelity == "untranslatable"
    result = judged(ps, t)
    assert result.differences and not result.widening


def test_pass_with_nets_over_pods_is_not_reported_exact():
    # Calico passes pods in 10.244.0.0/16 by address; the translation cannot, so the Deny
    # after it also reaches them: reported, never silently exact
    ps = PolicySet(policies=[gnp("p1", [dict(action="Pass",
                                             source=EntityRule(nets=("10.244.0.0/16",))),
                                        dict(action="Deny")])])
    t = translate(ps)
    valid(t)
    assert fid(t, "p1").fidelity == "untranslatable"
    result = judged(ps, t)
    assert not result.undeclared and not result.widening
    # with an inventory whose pod range the nets miss, it is exact
    t = translate(ps, inventory=inventory([("10.96.0.0/16", "pod")]))
    assert fid(t, "p1").fidelity == "exact"
