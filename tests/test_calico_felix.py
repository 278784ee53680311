import time

import pytest

from generator.calico.felix import FelixModel, verdict
from generator.calico.reader import read_policies
from generator.verify.model import Endpoint, Flow, NamedPort, frozen_labels
from generator.yamlio import load_text


def model(text: str, **kw) -> FelixModel:
    return FelixModel(read_policies(load_text(text, "p.yaml")), **kw)


def pod(name, ns="prod", ip="10.244.0.10", sa="default", ns_labels=None, sa_labels=None,
        ports=(), **labels):
    return Endpoint("pod", f"pod {ns}/{name}", ip=ip, namespace=ns,
                    labels=frozen_labels(labels),
                    namespace_labels=frozen_labels(ns_labels or {}),
                    service_account=sa, service_account_labels=frozen_labels(sa_labels or {}),
                    node="node-1", named_ports=tuple(ports))


def host(node="node-1", ip="172.18.0.11"):
    return Endpoint("host", f"host {node}", ip=ip, node=node)


def ext(ip="203.0.113.7"):
    return Endpoint("external", ip, ip=ip)


DB = pod("db", ip="10.244.0.2", app="db")
WEB = pod("web", ip="10.244.0.3", app="web")
EVIL = pod("evil", ip="10.244.0.4", app="evil")
OTHER_WEB = pod("web", ns="other", ip="10.244.1.3", app="web")


def gnp(name, spec, tier=None):
    t = f"\n  tier: {tier}" if tier else ""
    return (f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"
            f"metadata: {{name: {name}}}\nspec:{t}\n{spec}\n---\n")


def np(name, spec, ns="prod"):
    return (f"apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n")


def tier(name, order, action="Deny"):
    return (f"apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: {name}}}\n"
            f"spec: {{order: {order}, defaultAction: {action}}}\n---\n")


def tcp(src, dst, port=80):
    return Flow(src, dst, "TCP", port)


def test_no_policy_pods_allowed_by_profile():
    m = model("")
    v = m.verdict(tcp(WEB, DB))
    assert v.allowed and v.decided_by.startswith("profile")


def test_deny_after_allow_and_allow_after_deny():
    m = model(gnp("a", """  selector: app == 'db'
  order: 1
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [80]}}
  - {action: Deny, source: {selector: app == 'evil'}}
""") + gnp("b", """  selector: app == 'db'
  order: 2
  ingress:
  - {action: Deny, protocol: TCP, destination: {ports: [443]}}
  - {action: Allow}
"""))
    # first matching rule wins: Allow before Deny
    v = m.verdict(tcp(EVIL, DB, 80))
    assert v.allowed and v.decided_by == "GlobalNetworkPolicy default.a ingress[0] Allow"
    v = m.verdict(tcp(EVIL, DB, 22))
    assert not v.allowed and v.decided_by == "GlobalNetworkPolicy default.a ingress[1] Deny"
    # deny before allow in the next policy
    v = m.verdict(tcp(WEB, DB, 443))
    assert not v.allowed and v.decided_by == "GlobalNetworkPolicy default.b ingress[0] Deny"
    v = m.verdict(tcp(WEB, DB, 22))
    assert v.allowed and v.decided_by == "GlobalNetworkPolicy default.b ingress[1] Allow"


def test_policy_order_then_name():
    m = model(gnp("zz", "  order: 5\n  selector: app == 'db'\n  ingress: [{action: Allow}]")
              + gnp("aa", "  order: 5\n  selector: app == 'db'\n  ingress: [{action: Deny}]")
              + gnp("first", "  order: 4.5\n  selector: app == 'db'\n  ingress: [{action: Log}]"))
    v = m.verdict(tcp(WEB, DB))
    assert not v.allowed and v.decided_by == "GlobalNetworkPolicy default.aa ingress[0] Deny"
    assert any("Log rule matched" in n for n in v.notes)


def test_missing_order_sorts_after_k8s_policies():
    text = gnp("late", "  selector: app == 'db'\n  ingress: [{action: Deny}]") + """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
"""
    m = model(text)
    v = m.verdict(tcp(WEB, DB))
    assert v.allowed and v.decided_by == "KubernetesNetworkPolicy prod/allow-web ingress[0] Allow"
    v = m.verdict(tcp(EVIL, DB))
    assert not v.allowed and v.decided_by == "GlobalNetworkPolicy default.late ingress[0] Deny"
    # the K8s peer is scoped to the policy namespace
    v = m.verdict(tcp(OTHER_WEB, DB))
    assert not v.allowed


def test_pass_and_end_of_tier():
    text = (tier("security", 100) + tier("platform", 200)
            + gnp("security.gate", """  order: 1
  selector: app == 'db'
  ingress:
  - {action: Deny, source: {selector: app == 'evil'}}
  - {action: Pass, source: {selector: app == 'web'}}
""", tier="security")
            + gnp("platform.web", """  selector: app == 'db'
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [80]}}
""", tier="platform"))
    m = model(text)
    want = "GlobalNetworkPolicy security.gate ingress[0] Deny"
    assert m.verdict(tcp(EVIL, DB)).decided_by == want
    v = m.verdict(tcp(WEB, DB, 80))       # passed to platform, allowed there
    assert v.allowed and v.decided_by == "GlobalNetworkPolicy platform.web ingress[0] Allow"
    v = m.verdict(tcp(WEB, DB, 81))       # passed, then end of tier platform
    assert not v.allowed and v.decided_by == "end of tier platform (ingress at pod prod/db)"
    v = m.verdict(tcp(pod("x", ip="10.244.0.9", app="x"), DB, 80))  # no match in security
    assert not v.allowed and v.decided_by == "end of tier security (ingress at pod prod/db)"


def test_default_action_pass_and_pass_in_last_tier():
    text = (tier("security", 100, "Pass")
            + gnp("security.log", "  selector: app == 'db'\n  ingress: [{action: Log}]",
                  tier="security"))
    m = model(text)
    v = m.verdict(tcp(WEB, DB))
    assert v.allowed and v.decided_by.startswith("profile")
    assert any("defaultAction Pass" in n for n in v.notes)
    # same with a Deny tier: a Log-only policy still makes the tier drop
    m = model(tier("security", 100)
              + gnp("security.log", "  selector: app == 'db'\n  ingress: [{action: Log}]",
                    tier="security"))
    v = m.verdict(tcp(WEB, DB))
    assert not v.allowed and v.decided_by.startswith("end of tier security")
    # Pass in the last tier that applies -> profile allows
    m = model(gnp("p", "  selector: app == 'db'\n  ingress: [{action: Pass}]"))
    assert m.verdict(tcp(WEB, DB)).decided_by.startswith("profile")


def test_log_then_allow():
    m = model(gnp("l", "  selector: app == 'db'\n  ingress: [{action: Log}, {action: Allow}]"))
    v = m.verdict(tcp(WEB, DB))
    assert v.allowed and v.decided_by == "GlobalNetworkPolicy default.l ingress[1] Allow"
    assert "Log rule matched: GlobalNetworkPolicy default.l ingress[0] Log" in v.notes


def test_types_govern_direction_and_egress_first():
    m = model(gnp("eg", """  selector: app == 'web'
  types: [Egress]
  egress: [{action: Deny, destination: {selector: app == 'db'}}]
"""))
    v = m.verdict(tcp(WEB, DB))
    assert not v.allowed and v.direction == "egress"
    assert m.verdict(tcp(DB, WEB)).allowed           # ingress at web is not governed
    # Ingress-only policy with egress rules listed: egress rules ignored
    m = model(gnp("in", """  selector: app == 'web'
  types: [Ingress]
  ingress: [{action: Allow}]
  egress: [{action: Deny}]
"""))
    assert m.verdict(tcp(WEB, DB)).allowed


def test_host_endpoint_default_deny_profile_and_failsafe():
    hep = """apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node-1-eth0, labels: {role: node}}
spec: {node: node-1, interfaceName: eth0, expectedIPs: [172.18.0.11]%s}
---
"""
    m = model(hep % "")
    v = m.verdict(tcp(ext(), host(), 8080))
    assert not v.allowed and v.decided_by.endswith(")") and "default: deny" in v.decided_by
    v = m.verdict(tcp(ext(), host(), 22))
    assert v.allowed and v.decided_by.startswith("failsafe")
    assert not model(hep % "", failsafe=False).verdict(tcp(ext(), host(), 22)).allowed
    m = model(hep % ", profiles: [projectcalico-default-allow]")
    assert m.verdict(tcp(ext(), host(), 8080)).allowed
    # a node without a HostEndpoint is not policed at all
    v = model("").verdict(tcp(ext(), host("node-2", "172.18.0.12"), 8080))
    assert v.allowed and "not" in v.decided_by
    # a global policy selecting the host endpoint
    m = model(hep % "" + gnp("h", "  selector: role == 'node'\n  ingress: "
                                  "[{action: Allow, protocol: TCP, destination: {ports: [8080]}}]"))
    assert m.verdict(tcp(ext(), host(), 8080)).allowed
    assert not m.verdict(tcp(ext(), host(), 8081)).allowed


def test_namespace_scoping_and_selectors():
    m = model(np("allow", """  selector: app == 'db'
  ingress:
  - {action: Allow, source: {selector: app == 'web'}}
  - {action: Allow, source: {namespaceSelector: team == 'blue'}}
  - {action: Deny}
"""))
    assert m.verdict(tcp(WEB, DB)).allowed
    assert not m.verdict(tcp(OTHER_WEB, DB)).allowed
    blue = pod("x", ns="blue-ns", ip="10.244.2.2", ns_labels={"team": "blue"})
    assert m.verdict(tcp(blue, DB)).decided_by.endswith("ingress[1] Allow")
    # projectcalico.org/name in namespace selectors, projectcalico.org/namespace in selectors
    m = model(gnp("g", """  selector: projectcalico.org/namespace == 'prod' && app == 'db'
  ingress:
  - {action: Allow, source: {namespaceSelector: projectcalico.org/name == 'other'}}
  - {action: Deny}
"""))
    assert m.verdict(tcp(OTHER_WEB, DB)).allowed
    assert not m.verdict(tcp(WEB, DB)).allowed


def test_lone_not_selector_is_namespace_scoped():
    m = model(np("n", """  selector: app == 'db'
  ingress:
  - {action: Allow, source: {notSelector: app == 'evil'}}
  - {action: Deny}
"""))
    assert m.verdict(tcp(WEB, DB)).allowed
    assert not m.verdict(tcp(EVIL, DB)).allowed
    assert not m.verdict(tcp(OTHER_WEB, DB)).allowed     # other namespace: not in scope
    assert not m.verdict(tcp(ext(), DB)).allowed
    # in a global policy a lone notSelector is not scoped: anything but evil
    m = model(gnp("n", """  selector: app == 'db'
  ingress:
  - {action: Allow, source: {notSelector: app == 'evil'}}
  - {action: Deny}
"""))
    assert m.verdict(tcp(OTHER_WEB, DB)).allowed and m.verdict(tcp(ext(), DB)).allowed
    assert not m.verdict(tcp(EVIL, DB)).allowed


def test_nets_network_sets_and_global():
    text = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: bad, labels: {list: bad}}
spec: {nets: [203.0.113.0/24, 10.244.0.4/32]}
---
""" + gnp("g", """  selector: app == 'db'
  ingress:
  - {action: Deny, source: {selector: list == 'bad', namespaceSelector: global()}}
  - {action: Allow, source: {nets: [10.244.0.0/16]}}
""")
    m = model(text)
    assert not m.verdict(tcp(ext("203.0.113.9"), DB)).allowed
    # a pod address inside the set is matched by the set's labels too
    assert m.verdict(tcp(EVIL, DB)).decided_by.endswith("ingress[0] Deny")
    # nets match pod addresses
    assert m.verdict(tcp(WEB, DB)).decided_by.endswith("ingress[1] Allow")
    # outside both: end of tier
    assert not m.verdict(tcp(ext("198.51.100.1"), DB)).allowed
    # global() does not match namespaced endpoints even if their labels match
    m = model(gnp("g", """  selector: app == 'db'
  ingress: [{action: Allow, source: {selector: app == 'web', namespaceSelector: global()}}]
"""))
    assert not m.verdict(tcp(WEB, DB)).allowed


def test_service_accounts_ports_protocols_icmp():
    front = pod("front", ip="10.244.0.7", sa="frontend", sa_labels={"tier": "fe"}, app="f")
    db = pod("db", ip="10.244.0.2", app="db",
             ports=(NamedPort("pg", 5432, "TCP"), NamedPort("dns", 53, "UDP")))
    m = model(gnp("g", """  selector: app == 'db'
  ingress:
  - {action: Allow, protocol: TCP, source: {serviceAccounts: {names: [frontend]}},
     destination: {ports: [pg]}}
  - {action: Allow, protocol: UDP, source: {serviceAccounts: {selector: tier == 'fe'}},
     destination: {ports: ["50:60"], notPorts: [55]}}
  - {action: Allow, protocol: ICMP, icmp: {type: 8}}
  - {action: Allow, notProtocol: TCP, protocol: 132}
"""))
    assert m.verdict(Flow(front, db, "TCP", 5432)).allowed
    assert not m.verdict(Flow(WEB, db, "TCP", 5432)).allowed
    assert not m.verdict(Flow(front, db, "TCP", 5433)).allowed
    assert not m.verdict(Flow(front, db, "UDP", 5432)).allowed      # named port is TCP
    assert m.verdict(Flow(front, db, "UDP", 53)).allowed
    assert not m.verdict(Flow(front, db, "UDP", 55)).allowed
    assert m.verdict(Flow(WEB, db, "ICMP", None, icmp_type=8, icmp_code=0)).allowed
    assert not m.verdict(Flow(WEB, db, "ICMP", None, icmp_type=0)).allowed
    assert m.verdict(Flow(WEB, db, "SCTP", 9)).allowed
    assert m.verdict(Flow(WEB, db, "132", 9)).allowed


def test_pre_dnat_noted_and_one_off_form():
    text = gnp("pre", """  selector: app == 'db'
  preDNAT: true
  applyOnForward: true
  ingress: [{action: Deny}]
""")
    ps = read_policies(load_text(text, "p.yaml"))
    v = verdict(ps, tcp(WEB, DB))
    assert v.allowed and any("preDNAT" in n for n in v.notes)


def test_many_flow_checks_are_fast():
    docs = [tier("security", 100)]
    for i in range(200):
        docs.append(gnp(f"security.p{i}", f"""  order: {i}
  selector: app == 'a{i % 20}'
  ingress:
  - {{action: Deny, source: {{selector: app == 'evil'}}}}
  - {{action: Pass, protocol: TCP, destination: {{ports: [{1000 + i}]}}}}
""", tier="security"))
        docs.append(np(f"n{i}", f"""  selector: app == 'a{i % 20}'
  ingress: [{{action: Allow, source: {{selector: role == 'r{i % 7}'}}}}]
""", ns=f"ns{i % 5}"))
    m = model("".join(docs))
    pods = [pod(f"p{i}", ns=f"ns{i % 5}", ip=f"10.244.{i // 250}.{i % 250}",
                app=f"a{i % 20}", role=f"r{i % 7}") for i in range(60)]
    flows = [tcp(a, b, 1000 + (j % 50)) for j, (a, b) in
             enumerate((a, b) for a in pods for b in pods)]
    t0 = time.perf_counter()
    allowed = sum(m.verdict(f).allowed for f in flows)
    took = time.perf_counter() - t0
    assert 0 < allowed < len(flows)
    assert took < 10, (len(flows), took)


def test_selectors_built_like_libcalico():
    from generator.calico.felix import entity_selector, policy_selector
    from generator.calico.model import EntityRule, ServiceAccountMatch
    ps = read_policies(load_text(
        gnp("g", "  selector: app == 'x'\n  namespaceSelector: all()\n"
                 "  serviceAccountSelector: role == 'a'")
        + np("n", "  selector: app == 'y'\n  serviceAccountSelector: all()"), "p.yaml"))
    g, n = ps.policies
    assert policy_selector(g) == ('((app == "x") && has(projectcalico.org/namespace)) '
                                  '&& pcsa.role == "a"')
    assert policy_selector(n) == ("((app == \"y\") && projectcalico.org/namespace == 'prod') "
                                  "&& all()")
    e = EntityRule(selector="app == 'db'", namespace_selector="global() || team == 'x'",
                   service_accounts=ServiceAccountMatch(("a", "b")))
    assert entity_selector(e, "prod") == (
        '((!has(projectcalico.org/namespace) || pcns.team == "x")) && '
        '((projectcalico.org/serviceaccount in {"a", "b"}) && (app == \'db\'))')
    assert entity_selector(EntityRule(nets=("10.0.0.0/8",)), "prod") == ""
    assert entity_selector(EntityRule(not_selector="a == 'b'"), "prod") == \
        "projectcalico.org/namespace == 'prod'"


def test_namespace_selector_all_means_namespaced():
    hep = """apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: n1, labels: {app: db}}
spec: {node: node-1, expectedIPs: [172.18.0.11]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: s, labels: {app: web}}
spec: {nets: [203.0.113.0/24]}
---
"""
    m = model(hep + gnp("g", """  selector: app == 'db'
  namespaceSelector: all()
  ingress:
  - {action: Allow, source: {selector: app == 'web', namespaceSelector: all()}}
"""))
    # the policy applies to pods only (all() -> has(projectcalico.org/namespace)) ...
    assert m.chain(host(), "ingress")[0] == []
    assert "default: deny" in m.verdict(tcp(ext(), host(), 8080)).decided_by
    # ... and the rule's all() namespaces exclude the global network set
    assert m.verdict(tcp(WEB, DB)).allowed
    assert not m.verdict(tcp(ext("203.0.113.5"), DB)).allowed
    # without namespaceSelector the set's labels match
    m = model(hep + gnp("g", """  selector: app == 'db'
  ingress: [{action: Allow, source: {selector: app == 'web'}}]
"""))
    assert m.verdict(tcp(ext("203.0.113.5"), DB)).allowed


def test_service_account_selector_and_namespaced_network_set():
    front = pod("front", ip="10.244.0.7", sa="frontend", sa_labels={"tier": "fe"})
    m = model(np("p", """  selector: app == 'db'
  serviceAccountSelector: tier != 'fe'
  ingress:
  - {action: Allow, source: {selector: kind == 'partner'}}
  - {action: Deny}
""") + """apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: prod, labels: {kind: partner}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: other, labels: {kind: partner}}
spec: {nets: [192.0.2.0/24]}
""")
    assert m.verdict(tcp(ext("198.51.100.9"), DB)).allowed
    assert not m.verdict(tcp(ext("192.0.2.9"), DB)).allowed   # set in another namespace
    db_fe = pod("db2", ip="10.244.0.8", sa="frontend", sa_labels={"tier": "fe"}, app="db")
    assert m.verdict(tcp(ext("192.0.2.9"), db_fe)).allowed     # SA selector excludes it
    assert m.verdict(tcp(front, DB)).decided_by.endswith("ingress[1] Deny")


def test_not_nets_services_and_source_ports():
    m = model(gnp("g", """  selector: app == 'db'
  ingress:
  - {action: Allow, source: {nets: [10.0.0.0/8], notNets: [10.244.0.4/32]}}
  - {action: Allow, protocol: TCP, source: {notPorts: ["1:1023"]}}
"""))
    assert m.verdict(tcp(WEB, DB)).decided_by.endswith("ingress[0] Allow")
    evil_low = Flow(EVIL, DB, "TCP", 80, src_port=80)
    evil_high = Flow(EVIL, DB, "TCP", 80, src_port=40000)
    assert not m.verdict(evil_low).allowed
    assert m.verdict(evil_high).decided_by.endswith("ingress[1] Allow")
    text = gnp("s", """  selector: app == 'web'
  types: [Egress]
  egress:
  - {action: Allow, destination: {services: {name: db, namespace: prod}}}
  - {action: Deny}
""")
    m = model(text, services={("prod", "db"): ["10.244.0.2"]})
    v = m.verdict(tcp(WEB, DB))
    assert v.allowed and "egress: GlobalNetworkPolicy default.s egress[0] Allow" in v.notes
    assert not m.verdict(tcp(WEB, EVIL)).allowed
    v = model(text).verdict(tcp(WEB, DB))         # no service map: the rule cannot match
    assert not v.allowed and any("unknown" in n for n in v.notes)
