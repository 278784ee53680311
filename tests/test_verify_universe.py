"""The synthetic universe and flow classes: what verify judges when no cluster is given."""
from generator.calico.reader import read_policies
from generator.verify.universe import build_universe, flow_classes, valid_label
from generator.yamlio import load_text

POLICY = """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  selector: app == 'api'
  types: [Ingress, Egress]
  ingress:
  - action: Deny
    source: {selector: tier == 'frontend'}
  - action: Allow
    protocol: TCP
    source:
      selector: app == 'web'
      namespaceSelector: team == 'blue'
    destination: {ports: ['8000:8010', http]}
  - action: Allow
    protocol: ICMP
    icmp: {type: 8}
  egress:
  - action: Allow
    destination: {nets: [192.0.2.0/24], notNets: [192.0.2.128/25]}
"""


def _ps(text=POLICY):
    return read_policies(load_text(text, "p.yaml"))


def test_flow_classes_cover_ports_edges_named_and_icmp():
    l4, named = flow_classes(_ps(), [])
    tcp = {x.port for x in l4 if x.protocol == "TCP"}
    # inside the range once (a port the rule names), outside once, the named port
    assert tcp == {8000, 7999, named[0].port}
    assert [n.name for n in named] == ["http"]
    two = POLICY.replace("- action: Allow\n    protocol: ICMP", "- action: Deny\n    protocol: TCP\n"
                         "    destination: {ports: [8010, 9000]}\n  - action: Allow\n"
                         "    protocol: ICMP")
    tcp2 = {x.port for x in flow_classes(_ps(two), [])[0] if x.protocol == "TCP"}
    assert {8000, 8010, 9000, 7999} <= tcp2 and 8011 not in tcp2 and len(tcp2) == 5
    assert {x.icmp_type for x in l4 if x.protocol == "ICMP"} >= {8} and \
        len({x.icmp_type for x in l4 if x.protocol == "ICMP"}) == 2
    assert {x.protocol for x in l4} >= {"TCP", "UDP", "ICMP"}


def test_synthetic_universe_has_matching_and_just_failing_endpoints():
    uni = build_universe(_ps(), [])
    pods = [e for e in uni.endpoints if e.kind == "pod"]
    labels = {(e.namespace, e.labels) for e in pods}
    assert ("shop", (("app", "api"),)) in labels
    assert ("shop", (("app", "zz-other"),)) in labels                     # other value
    # the deny and a later allow both match one pod: where rule order matters
    assert any(dict(e.labels) == {"app": "web", "tier": "frontend"} for e in pods)
    blue = [e for e in pods if dict(e.namespace_labels).get("team") == "blue"]
    assert blue and any(dict(e.labels) == {"app": "web"} for e in blue)
    assert any(e.namespace == "verify-other" for e in pods)
    ext = {e.ip for e in uni.endpoints if e.kind == "external"}
    assert {"192.0.2.1", "192.0.2.254", "192.0.1.255", "192.0.3.0", "192.0.2.129"} <= ext
    assert "203.0.113.7" in ext
    assert {e.node for e in uni.endpoints if e.kind == "host"} >= {"node-1", "node-2"}
    assert all(e.named_ports for e in pods)


def test_placeholder_namespaces_and_bad_labels_are_left_out():
    text = POLICY.replace("namespace: shop", "namespace: <namespace>")
    uni = build_universe(_ps(text), [])
    assert all(e.namespace != "<namespace>" for e in uni.endpoints)
    assert any("left out" in n for n in uni.notes)
    assert valid_label("app.kubernetes.io/name", "web") and not valid_label("app", "${x}")
    assert not valid_label("bad key", "v") and valid_label("k", "")
