import time

import pytest

from generator.calico.model import INF_ORDER, PortRange
from generator.calico.reader import read_policies
from generator.calico.selector import parse
from generator.errors import UserError
from generator.yamlio import Loaded, load_text


def read(text: str, **kw):
    return read_policies(load_text(text, "p.yaml"), **kw)


def one(text: str):
    ps = read(text)
    assert len(ps.policies) == 1, ps
    return ps.policies[0]


def test_v3_gnp_full_shape():
    p = one("""
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.allow-web}
spec:
  tier: security
  order: 10
  selector: app == 'web'
  namespaceSelector: has(team)
  serviceAccountSelector: role == 'front'
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source:
      nets: [10.1.0.7, 10.2.0.0/16]
      notNets: ["10.2.3.0/24"]
      selector: app == 'lb'
      namespaceSelector: global()
      serviceAccounts: {names: [a, b], selector: x == 'y'}
    destination:
      ports: [80, "8000:8080", http, "443"]
      notPorts: [8001]
  - action: Deny
    protocol: ICMP
    icmp: {type: 8, code: 0}
    ipVersion: 4
  - action: Allow
    http: {methods: [GET], paths: [{exact: /a}, {prefix: /b}]}
  egress:
  - action: Pass
    protocol: 17
    destination: {services: {name: kube-dns, namespace: kube-system}}
  - action: Log
    protocol: ICMP
    notICMP: {type: 3}
  - action: Log
    notProtocol: UDPLite
""")
    assert (p.name, p.tier, p.order, p.namespace) == ("allow-web", "security", 10, None)
    assert p.source.name == "security.allow-web" and p.source.kind == "GlobalNetworkPolicy"
    assert p.types == ("Ingress", "Egress")
    r0 = p.ingress[0]
    assert r0.source.nets == ("10.1.0.7/32", "10.2.0.0/16")
    assert r0.source.service_accounts.names == ("a", "b")
    assert r0.destination.ports == (PortRange(80, 80), PortRange(8000, 8080),
                                    PortRange(0, 0, "http"), PortRange(443, 443))
    assert r0.destination.not_ports == (PortRange(8001, 8001),)
    assert p.ingress[1].icmp.type == 8 and p.ingress[1].ip_version == 4
    assert p.egress[0].protocol == 17 and p.egress[0].destination.services.name == "kube-dns"
    assert p.egress[1].not_icmp.type == 3 and p.egress[2].not_protocol == "UDPLite"
    assert p.ingress[2].http.paths == (("exact", "/a"), ("prefix", "/b"))
    assert [r.index for r in p.egress] == [0, 1, 2]


@pytest.mark.parametrize("types,rules,want", [
    (None, "", ("Ingress",)),
    (None, "ingress: [{action: Allow}]", ("Ingress",)),
    (None, "egress: [{action: Allow}]", ("Egress",)),
    (None, "{ingress: [{action: Allow}], egress: [{action: Allow}]}", ("Ingress", "Egress")),
    ("[Egress]", "", ("Egress",)),
])
def test_v3_types_default(types, rules, want):
    spec = []
    if types:
        spec.append(f"types: {types}")
    if rules.startswith("{"):
        spec += ["ingress: [{action: Allow}]", "egress: [{action: Allow}]"]
    elif rules:
        spec.append(rules)
    body = "\n".join("  " + s for s in spec) or "  {}"
    p = one(f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"
            f"metadata: {{name: x}}\nspec:\n{body}\n")
    assert p.types == want


def test_v1_storage_quirks():
    ps = read("""
apiVersion: crd.projectcalico.org/v1
kind: Tier
metadata: {name: platform}
spec: {order: 200, defaultAction: Pass}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: default.allow-all}
spec:
  order: 0.0
  ingress: [{action: allow, protocol: tcp, destination: {ports: ["80"]}}]
  egress: [{action: deny, protocol: icmpv6}]
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: platform.np, namespace: prod}
spec: {selector: all(), types: [ingress]}
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: security.np2, namespace: prod}
spec: {tier: security}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: blocked
  annotations:
    projectcalico.org/metadata: '{"labels": {"role": "blocked"}, "uid": "x"}'
spec: {nets: [198.51.100.0/24]}
---
apiVersion: crd.projectcalico.org/v1
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {host: "yes"}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [192.0.2.1],
       profiles: [projectcalico-default-allow]}
""")
    gnp, np1, np2 = ps.policies
    assert (gnp.name, gnp.tier, gnp.order) == ("allow-all", "default", 0.0)
    assert gnp.source.name == "allow-all"
    assert gnp.types == ("Ingress", "Egress")           # v1 without types: both
    assert gnp.ingress[0].action == "Allow" and gnp.ingress[0].protocol == "TCP"
    assert gnp.ingress[0].destination.ports == (PortRange(80, 80),)
    assert gnp.egress[0].protocol == "ICMPv6"
    assert (np1.name, np1.tier, np1.types) == ("np", "platform", ("Ingress",))
    assert (np2.name, np2.tier) == ("np2", "security")
    assert ps.tier("platform").default_action == "Pass" and ps.tier("platform").order == 200
    assert ps.network_sets[0].labels == {"role": "blocked"}
    assert ps.network_sets[0].nets == ("198.51.100.0/24",)
    hep = ps.host_endpoints[0]
    assert (hep.node, hep.interface_name, hep.expected_ips) == ("node1", "eth0", ("192.0.2.1",))
    assert hep.labels == {"host": "yes"}


def test_v3_lower_case_action_rejected():
    with pytest.raises(UserError) as ei:
        read("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\n"
             "spec: {ingress: [{action: allow}]}\n")
    assert ei.value.field == "spec.ingress[0].action" and "v1" in ei.value.message


def test_lists_and_kinds():
    ps = read("""
apiVersion: v1
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: NetworkPolicy
  metadata: {name: a, namespace: n}
  spec: {selector: "x == 'y'"}
- apiVersion: projectcalico.org/v3
  kind: StagedGlobalNetworkPolicy
  metadata: {name: s}
  spec: {stagedAction: Set, selector: all()}
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata: {name: pool}
  spec: {cidr: 10.0.0.0/16}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm}
---
GlobalNetworkPolicies:
  foo: {selector: all()}
""")
    assert [p.name for p in ps.policies] == ["a"]
    assert ps.policies[0].namespace == "n" and ps.policies[0].order == INF_ORDER
    reasons = [(s.source.kind, s.reason) for s in ps.skipped]
    assert reasons[0] == ("StagedGlobalNetworkPolicy", "staged policies never enforce")
    assert reasons[1][0] == "IPPool" and reasons[2][0] == "ConfigMap"
    assert "Helm values" in reasons[3][1]
    with pytest.raises(UserError):
        read("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n", strict=True)


def test_k8s_network_policy_conversion():
    ps = read("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: db}
    matchExpressions:
    - {key: tier, operator: In, values: [a, b]}
    - {key: canary, operator: DoesNotExist}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - namespaceSelector: {}
      podSelector: {matchLabels: {app: mon}}
    - namespaceSelector: {matchLabels: {team: x}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - {port: 5432}
    - {protocol: UDP, port: 5000, endPort: 5010}
    - {port: metrics}
  egress:
  - {}
""")
    assert ps.k8s_policies[0]["metadata"]["name"] == "db"
    p = ps.policies[0]
    assert (p.name, p.tier, p.order, p.namespace) == ("knp.default.db", "default", 1000, "prod")
    assert p.source.kind == "KubernetesNetworkPolicy" and p.source.name == "db"
    assert p.types == ("Ingress", "Egress")
    sel = parse(p.selector)
    assert sel.evaluate({"projectcalico.org/orchestrator": "k8s", "app": "db", "tier": "a"})
    assert not sel.evaluate({"projectcalico.org/orchestrator": "k8s", "app": "db", "tier": "a",
                             "canary": "1"})
    assert len(p.ingress) == 4 * 2      # protocols (sorted) x 4 peers
    r = p.ingress[0]
    assert r.action == "Allow" and r.protocol == "TCP"
    assert r.destination.ports == (PortRange(5432, 5432), PortRange(0, 0, "metrics"))
    assert p.ingress[4].protocol == "UDP" and p.ingress[4].destination.ports == (
        PortRange(5000, 5010),)
    assert p.ingress[1].source.namespace_selector == "all()"
    assert p.ingress[2].source.namespace_selector == "team == 'x'"
    assert p.ingress[2].source.selector == "projectcalico.org/orchestrator == 'k8s'"
    assert p.ingress[3].source.nets == ("10.0.0.0/8",)
    assert p.ingress[3].source.not_nets == ("10.1.0.0/16",)
    assert [r.index for r in p.ingress] == list(range(8))
    assert len(p.egress) == 1 and p.egress[0].destination.is_empty


def test_k8s_ports_simplified_like_kube_controllers():
    p = one("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: prod}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 82}, {port: 80}, {port: web}, {port: 81}, {protocol: UDP},
            {protocol: UDP, port: 53}]
""")
    assert [(r.protocol, r.destination.ports) for r in p.ingress] == [
        ("TCP", (PortRange(0, 0, "web"), PortRange(80, 82))),
        ("UDP", ()),
    ]


def test_k8s_policy_types_explicit():
    p = one("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: prod}
spec: {podSelector: {}, policyTypes: [Egress]}
""")
    assert p.types == ("Egress",) and p.egress == ()


@pytest.mark.parametrize("spec,field,fragment", [
    ("{selector: \"app == web\"}", "spec.selector", "position 7"),
    ("{ingress: [{action: Accept}]}", "spec.ingress[0].action", "invalid action"),
    ("{ingress: [{action: Allow, protocol: XTP}]}", "spec.ingress[0].protocol", "protocol"),
    ("{ingress: [{action: Allow, source: {nets: [10.0.0.0/33]}}]}",
     "spec.ingress[0].source.nets[0]", "CIDR"),
    ("{ingress: [{action: Allow, protocol: TCP, destination: {ports: ['90:80']}}]}",
     "spec.ingress[0].destination.ports[0]", "port range"),
    ("{ingress: [{action: Allow, destination: {ports: [80]}}]}",
     "spec.ingress[0].destination", "protocol"),
    ("{ingress: [{action: Allow, protocol: TCP, icmp: {type: 8}}]}", "spec.ingress[2]", None),
    ("{ingress: [{}, {}, {action: Allow, source: {selector: 'a ='}}]}",
     "spec.ingress[0]", "no action"),
    ("{types: [{action: Allow}]}", "spec.types[0]", "Ingress or Egress"),
    ("{egress: [{action: Allow, destinaton: {}}]}", "spec.egress[0]", "destinaton"),
    ("{preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}", "spec", "preDNAT"),
    ("{doNotTrack: true}", "spec.applyOnForward", "applyOnForward"),
    ("{order: high}", "spec.order", "number"),
    ("{ingress: [{action: Allow, protocol: ICMP, destination: {ports: [80]}}]}",
     "spec.ingress[0].destination", "protocol"),
    ("{ingress: [{action: Allow, protocol: TCP, destination: {ports: [0]}}]}",
     "spec.ingress[0].destination.ports[0]", "1-65535"),
    ("{ingress: [{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {nets: ['::/0']}}]}",
     "spec.ingress[0]", "IPv4 and IPv6"),
    ("{egress: [{action: Allow, source: {services: {name: a, namespace: b}}}]}",
     "spec.egress[0].source.services", "egress rule source"),
    ("{ingress: [{action: Allow, destination: {services: {name: a, namespace: b}}}]}",
     "spec.ingress[0].destination.services", "ingress rule destination"),
    ("{egress: [{action: Allow, destination: {services: {name: a}}}]}",
     "spec.egress[0].destination.services.namespace", "namespace"),
    ("{egress: [{action: Allow, http: {methods: [GET]}}]}", "spec.egress[0].http", "egress"),
    ("{ingress: [{action: Allow, http: {paths: [{exact: 'a b'}]}}]}",
     "spec.ingress[0].http.paths[0].exact", "path"),
    ("{ingress: [{action: Allow, source: {selector: 'global()'}}]}",
     "spec.ingress[0].source.selector", "global()"),
    ("{ingress: [{action: Allow, source: {namespaceSelector: 'global() || has(a)'}}]}",
     "spec.ingress[0].source.namespaceSelector", "global()"),
    ("{selector: 'global()'}", "spec.selector", "global()"),
])
def test_invalid_input_names_field(spec, field, fragment):
    text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: foo}\n" \
           f"spec: {spec}\n"
    with pytest.raises(UserError) as ei:
        read(text)
    e = ei.value
    assert e.obj == "GlobalNetworkPolicy foo" and e.file == "p.yaml:1"
    if fragment is None:     # ICMP with TCP
        assert "ICMP" in e.message
    else:
        assert e.field == field, e.one_line()
        assert fragment in e.one_line()
    assert "\n" not in e.one_line()


def test_named_ports_need_no_protocol_and_names_are_checked():
    p = one("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n"
            "spec: {ingress: [{action: Allow, destination: {ports: [http, metrics]}}]}\n")
    assert p.ingress[0].protocol is None
    assert [x.name for x in p.ingress[0].destination.ports] == ["http", "metrics"]
    for kind, name in (("GlobalNetworkPolicy", "Bad_Name"), ("GlobalNetworkPolicy", "a.b.c"),
                       ("Tier", "a.b")):
        with pytest.raises(UserError) as ei:
            read(f"apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {{name: {name}}}\n")
        assert ei.value.field == "metadata.name"
    assert one("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
               "metadata: {name: knp.default.x.y, namespace: n}\n").name == "knp.default.x.y"


def test_missing_name_and_bad_spec():
    with pytest.raises(UserError) as ei:
        read("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {namespace: a}\n")
    assert ei.value.field == "metadata.name"
    with pytest.raises(UserError) as ei:
        read("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h}\n"
             "spec: (...)\n")
    assert ei.value.field == "spec"


def test_duplicates():
    doc = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n"
           "spec: {order: %s}\n")
    assert len(read(doc % 1 + "---\n" + doc % 1).policies) == 1
    with pytest.raises(UserError, match="defined twice"):
        read(doc % 1 + "---\n" + doc % 2)


def _many(n):
    loaded = []
    for i in range(n):
        obj = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
               "metadata": {"name": f"p{i}", "namespace": f"ns{i % 50}"},
               "spec": {"order": i % 7, "selector": f"app == 'a{i % 300}'",
                        "ingress": [{"action": "Allow", "protocol": "TCP",
                                     "source": {"selector": f"role == 'r{i % 40}'"},
                                     "destination": {"ports": [80 + i % 5, "9000:9100"]}}]}}
        loaded.append(Loaded(obj, "big.yaml", i, None))
    return loaded


def test_twenty_thousand_policies_fast():
    small, big = _many(2000), _many(20000)
    t0 = time.perf_counter()
    read_policies(small)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    ps = read_policies(big)
    t_big = time.perf_counter() - t0
    assert len(ps.policies) == 20000
    # linear: 10x the input may not cost much more than 10x (no quadratic step) ...
    assert t_big < 20 * t_small + 0.5, (t_small, t_big)
    # ... and about 1-2 s on an idle core; generous bound for a loaded CI machine
    assert t_big < 30, t_big
