"""Cilium semantics evaluator: each rule of Cilium's policy engine, one flow at a time."""
from generator.cilium.evaluator import CiliumModel, label_visible, verdict
from generator.verify.model import Endpoint, Flow, NamedPort, frozen_labels


def pod(ns, labels=None, sa="default", node="node-1", ports=()):
    return Endpoint(kind="pod", name=f"pod {ns}/{labels}", ip="10.0.0.1", namespace=ns,
                    labels=frozen_labels(labels), namespace_labels=frozen_labels(
                        {"kubernetes.io/metadata.name": ns, "team": ns + "-team"}),
                    service_account=sa, node=node, named_ports=tuple(ports))


def host(node, labels=None):
    return Endpoint(kind="host", name=f"host {node}", ip="172.18.0.1", node=node,
                    node_labels=frozen_labels(labels or {"kubernetes.io/hostname": node}))


def ext(ip):
    return Endpoint(kind="external", name=ip, ip=ip)


def cnp(ns, name, spec):
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def ccnp(name, spec):
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


WEB = pod("prod", {"app": "web"})
DB = pod("prod", {"app": "db"})
OTHER = pod("dev", {"app": "web"})


def test_no_policy_allows():
    assert CiliumModel([]).verdict(Flow(WEB, DB, "TCP", 5432)).allowed


def test_selected_direction_default_denies_and_allow_rule_opens():
    pol = cnp("prod", "db", {"endpointSelector": {"matchLabels": {"app": "db"}},
                             "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                                          "toPorts": [{"ports": [{"port": "5432",
                                                                  "protocol": "TCP"}]}]}]})
    m = CiliumModel([pol])
    v = m.verdict(Flow(WEB, DB, "TCP", 5432))
    assert v.allowed and "CiliumNetworkPolicy prod/db ingress[0]" in v.decided_by
    denied = m.verdict(Flow(WEB, DB, "TCP", 5433))
    assert not denied.allowed and denied.direction == "ingress"
    assert denied.decided_by.startswith("default deny")
    # a web pod in another namespace is not matched: fromEndpoints is scoped to prod
    assert not m.verdict(Flow(OTHER, DB, "TCP", 5432)).allowed
    # egress of db is not selected for egress: allowed
    assert m.verdict(Flow(DB, WEB, "TCP", 80)).allowed


def test_deny_wins_over_allow_regardless_of_order():
    pol = cnp("prod", "p", {"endpointSelector": {},
                            "ingress": [{"fromEntities": ["all"]}],
                            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}]})
    m = CiliumModel([pol])
    v = m.verdict(Flow(WEB, DB, "TCP", 80))
    assert not v.allowed and "ingressDeny[0] deny" in v.decided_by
    assert m.verdict(Flow(DB, WEB, "TCP", 80)).allowed


def test_deny_only_policy_still_default_denies_and_enable_default_deny_false():
    deny_only = cnp("prod", "d", {"endpointSelector": {"matchLabels": {"app": "db"}},
                                  "ingressDeny": [{"fromEntities": ["world"]}]})
    assert not CiliumModel([deny_only]).verdict(Flow(WEB, DB, "TCP", 80)).allowed
    relaxed = cnp("prod", "d", {"endpointSelector": {"matchLabels": {"app": "db"}},
                                "enableDefaultDeny": {"ingress": False},
                                "ingressDeny": [{"fromEntities": ["world"]}]})
    m = CiliumModel([relaxed])
    assert m.verdict(Flow(WEB, DB, "TCP", 80)).allowed
    assert not m.verdict(Flow(ext("8.8.8.8"), DB, "TCP", 80)).allowed


def test_empty_endpoints_selector_is_own_namespace_in_cnp_all_pods_in_ccnp():
    spec = {"endpointSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"fromEndpoints": [{}]}]}
    m = CiliumModel([cnp("prod", "p", spec)])
    assert m.verdict(Flow(WEB, DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(OTHER, DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(host("node-1"), DB, "TCP", 1)).allowed
    m2 = CiliumModel([ccnp("p", spec)])
    assert m2.verdict(Flow(OTHER, DB, "TCP", 1)).allowed
    assert not m2.verdict(Flow(ext("1.2.3.4"), DB, "TCP", 1)).allowed   # pods only
    # explicit namespace key or namespace labels lift the CNP scoping
    m3 = CiliumModel([cnp("prod", "p", {"endpointSelector": {}, "ingress": [{"fromEndpoints": [
        {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "dev"}},
        {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "dev-team"}}]}]})])
    assert m3.verdict(Flow(OTHER, DB, "TCP", 1)).allowed
    assert not m3.verdict(Flow(WEB, DB, "TCP", 1)).allowed


def test_cnp_subject_is_limited_to_its_namespace():
    pol = cnp("dev", "p", {"endpointSelector": {}, "ingress": [{}]})
    m = CiliumModel([pol])
    assert m.verdict(Flow(WEB, DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(WEB, OTHER, "TCP", 1)).allowed   # empty rule: matches nothing


def test_cidr_rules_never_match_pods_or_nodes():
    pol = ccnp("p", {"endpointSelector": {}, "ingress": [{"fromCIDR": ["0.0.0.0/0"]}]})
    m = CiliumModel([pol])
    assert m.verdict(Flow(ext("8.8.8.8"), DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(WEB, DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(host("node-2"), DB, "TCP", 1)).allowed


def test_cidrset_except_and_cidr_group_ref():
    group = {"apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup",
             "metadata": {"name": "partners", "labels": {"kind": "partner"}},
             "spec": {"externalCIDRs": ["198.51.100.0/24"]}}
    pol = cnp("prod", "p", {"endpointSelector": {}, "egress": [{"toCIDRSet": [
        {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]},
        {"cidrGroupRef": "partners"}]}]})
    m = CiliumModel([group, pol])
    assert m.verdict(Flow(WEB, ext("192.0.2.5"), "TCP", 443)).allowed
    assert not m.verdict(Flow(WEB, ext("192.0.2.200"), "TCP", 443)).allowed
    assert m.verdict(Flow(WEB, ext("198.51.100.9"), "TCP", 443)).allowed
    assert not m.verdict(Flow(WEB, ext("203.0.113.1"), "TCP", 443)).allowed
    sel = cnp("prod", "q", {"endpointSelector": {}, "egress": [{"toCIDRSet": [
        {"cidrGroupSelector": {"matchLabels": {"kind": "partner"}}}]}]})
    assert CiliumModel([group, sel]).verdict(Flow(WEB, ext("198.51.100.9"), "TCP", 1)).allowed


def test_entities():
    pol = cnp("prod", "p", {"endpointSelector": {"matchLabels": {"app": "db"}},
                            "ingress": [{"fromEntities": ["host"]}],
                            "egress": [{"toEntities": ["world"]}]})
    m = CiliumModel([pol])
    assert m.verdict(Flow(host("node-1"), DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(host("node-2"), DB, "TCP", 1)).allowed   # remote-node
    assert m.verdict(Flow(DB, ext("8.8.8.8"), "UDP", 53)).allowed
    assert not m.verdict(Flow(DB, WEB, "UDP", 53)).allowed
    cluster = CiliumModel([cnp("prod", "c", {"endpointSelector": {},
                                             "ingress": [{"fromEntities": ["cluster"]}]})])
    assert cluster.verdict(Flow(OTHER, DB, "TCP", 1)).allowed
    assert cluster.verdict(Flow(host("node-9"), DB, "TCP", 1)).allowed
    assert not cluster.verdict(Flow(ext("8.8.8.8"), DB, "TCP", 1)).allowed


def test_ports_endport_protocol_any_and_named_ports():
    pol = cnp("prod", "p", {"endpointSelector": {}, "ingress": [
        {"toPorts": [{"ports": [{"port": "8000", "endPort": 8010}]}]},
        {"toPorts": [{"ports": [{"port": "http", "protocol": "TCP"}]}]}]})
    m = CiliumModel([pol])
    assert m.verdict(Flow(OTHER, DB, "UDP", 8005)).allowed         # ANY, L4-only: all peers
    assert not m.verdict(Flow(OTHER, DB, "TCP", 8011)).allowed
    named = pod("prod", {"app": "api"}, ports=[NamedPort("http", 8080)])
    assert m.verdict(Flow(WEB, named, "TCP", 8080)).allowed
    assert not m.verdict(Flow(WEB, DB, "TCP", 8080)).allowed       # no such named port
    assert not m.verdict(Flow(WEB, DB, "ICMP", None, icmp_type=8)).allowed


def test_icmps_by_type_and_name():
    pol = cnp("prod", "p", {"endpointSelector": {}, "ingress": [
        {"fromEndpoints": [{}], "icmps": [{"fields": [{"type": 8}, {"type": "TimeExceeded"}]}]}]})
    m = CiliumModel([pol])
    assert m.verdict(Flow(WEB, DB, "ICMP", None, icmp_type=8)).allowed
    assert m.verdict(Flow(WEB, DB, "ICMP", None, icmp_type=11)).allowed
    assert not m.verdict(Flow(WEB, DB, "ICMP", None, icmp_type=0)).allowed
    assert not m.verdict(Flow(WEB, DB, "TCP", 80)).allowed


def test_labels_visible_to_identities():
    assert label_visible("app") and label_visible("app.kubernetes.io/name")
    assert not label_visible("pod-template-hash")
    assert not label_visible("statefulset.kubernetes.io/pod-name")
    assert not label_visible("kubernetes.io/os")
    assert label_visible("io.kubernetes.pod.namespace")
    hashed = pod("prod", {"app": "web", "pod-template-hash": "abc"})
    pol = cnp("prod", "p", {"endpointSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"fromEndpoints": [{"matchLabels": {"pod-template-hash": "abc"}}]}]})
    assert not CiliumModel([pol]).verdict(Flow(hashed, DB, "TCP", 1)).allowed
    sa = cnp("prod", "s", {"endpointSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"fromEndpoints": [{"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "web-sa"}}]}]})
    assert CiliumModel([sa]).verdict(Flow(pod("prod", {"x": "1"}, sa="web-sa"), DB, "TCP", 1)).allowed
    assert not CiliumModel([sa]).verdict(Flow(WEB, DB, "TCP", 1)).allowed


def test_match_expressions_and_k8s_prefix():
    pol = cnp("prod", "p", {"endpointSelector": {"matchExpressions": [
        {"key": "k8s:app", "operator": "In", "values": ["db", "cache"]}]},
        "ingress": [{"fromEndpoints": [{"matchExpressions": [
            {"key": "app", "operator": "NotIn", "values": ["web"]}]}]}]})
    m = CiliumModel([pol])
    assert not m.verdict(Flow(WEB, DB, "TCP", 1)).allowed
    assert m.verdict(Flow(pod("prod", {}), DB, "TCP", 1)).allowed       # NotIn: absent matches
    assert m.verdict(Flow(WEB, pod("prod", {"app": "other"}), "TCP", 1)).allowed


def test_host_policy_and_from_nodes():
    hostpol = ccnp("h", {"nodeSelector": {"matchLabels": {"role": "edge"}},
                         "ingress": [{"fromEntities": ["cluster"],
                                      "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]})
    m = CiliumModel([hostpol])
    edge = host("node-1", {"role": "edge"})
    assert m.verdict(Flow(WEB, edge, "TCP", 22)).allowed
    assert not m.verdict(Flow(WEB, edge, "TCP", 80)).allowed
    assert not m.verdict(Flow(ext("8.8.8.8"), edge, "TCP", 22)).allowed
    assert m.verdict(Flow(WEB, host("node-2"), "TCP", 80)).allowed          # not selected
    # an endpointSelector policy never selects a host
    assert CiliumModel([ccnp("all", {"endpointSelector": {}, "ingress": [{}]})]).verdict(
        Flow(WEB, edge, "TCP", 80)).allowed
    nodes = cnp("prod", "n", {"endpointSelector": {}, "ingress": [
        {"fromNodes": [{"matchLabels": {"role": "edge"}}]}]})
    assert CiliumModel([nodes]).verdict(Flow(edge, DB, "TCP", 1)).allowed
    assert not CiliumModel([nodes]).verdict(Flow(host("node-2"), DB, "TCP", 1)).allowed


def test_kubernetes_network_policy():
    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "db", "namespace": "prod"},
          "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                       "kubernetes.io/metadata.name": "dev"}}, "podSelector": {}},
                       {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                       "ports": [{"port": 5432}]}],
                   "policyTypes": ["Ingress", "Egress"]}}
    m = CiliumModel([np])
    assert m.verdict(Flow(OTHER, DB, "TCP", 5432)).allowed
    assert not m.verdict(Flow(OTHER, DB, "UDP", 5432)).allowed        # protocol defaults to TCP
    assert not m.verdict(Flow(WEB, DB, "TCP", 5432)).allowed
    assert m.verdict(Flow(ext("8.8.8.8"), DB, "TCP", 5432)).allowed
    assert not m.verdict(Flow(ext("10.1.1.1"), DB, "TCP", 5432)).allowed
    v = m.verdict(Flow(DB, WEB, "TCP", 80))                           # Egress type, no rules
    assert not v.allowed and v.direction == "egress"


def test_both_directions_must_allow_and_function_form():
    objs = [cnp("prod", "e", {"endpointSelector": {"matchLabels": {"app": "web"}},
                              "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}]}]}),
            cnp("prod", "i", {"endpointSelector": {"matchLabels": {"app": "db"}},
                              "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "x"}}]}]})]
    v = verdict(objs, Flow(WEB, DB, "TCP", 1))
    assert not v.allowed and v.direction == "ingress"
    v2 = verdict(objs[:1], Flow(WEB, DB, "TCP", 1))
    assert v2.allowed and "prod/e egress[0] allow" in v2.decided_by


def test_reserved_labels_in_endpoint_selectors():
    pol = cnp("prod", "p", {"endpointSelector": {}, "ingress": [
        {"fromEndpoints": [{"matchLabels": {"reserved:host": ""}},
                           {"matchLabels": {"reserved:world": ""}}]}]})
    m = CiliumModel([pol])
    assert m.verdict(Flow(host("node-1"), DB, "TCP", 1)).allowed        # local host
    assert not m.verdict(Flow(host("node-2"), DB, "TCP", 1)).allowed    # remote-node
    assert m.verdict(Flow(ext("8.8.8.8"), DB, "TCP", 1)).allowed
    assert not m.verdict(Flow(WEB, DB, "TCP", 1)).allowed
