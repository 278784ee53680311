"""generator/cilium/model.py: the agent's limits and the Kubernetes form."""
import pytest

from generator.cilium import model as cm
from tests.schemas import problems

WEB = cm.EndpointSelector((("app", "web"),))
TCP80 = cm.PortRule((cm.PortProtocol("80", None, "TCP"),))


def policy(rule, kind=cm.CiliumNetworkPolicy, ns="prod"):
    return kind("p", (rule,), ns) if kind is cm.CiliumNetworkPolicy else kind("p", (rule,))


def test_to_dict_key_order_and_schema():
    r = cm.Rule(endpoint_selector=WEB,
                ingress=(cm.IngressRule(endpoints=(cm.EndpointSelector(),), to_ports=(TCP80,)),),
                egress_deny=(cm.EgressDenyRule(
                    cidr_set=(cm.CIDRRule("0.0.0.0/0", ("10.0.0.0/8",)),)),),
                enable_default_deny=(("egress", False),), description="d")
    d = policy(r).to_dict()
    assert list(d) == ["apiVersion", "kind", "metadata", "spec"]
    assert list(d["spec"]) == ["endpointSelector", "ingress", "egressDeny", "enableDefaultDeny",
                               "description"]
    for v in cm.VERSIONS:
        policy(r).validate(v)
        assert problems(d, cilium_version=v) == []


@pytest.mark.parametrize("item", [
    cm.IngressRule(endpoints=(WEB,), entities=("world",)),                      # two peer types
    cm.IngressRule(to_ports=(TCP80,), icmps=(cm.ICMPRule((cm.ICMPField(8),)),)),  # icmps+ports
    cm.IngressRule(to_ports=(cm.PortRule(tuple(cm.PortProtocol(str(p), None, "TCP")
                                               for p in range(1, 42))),)),     # 41 ports
    cm.IngressRule(to_ports=(cm.PortRule((cm.PortProtocol("53", None, "UDP"),),
                                         (cm.HTTPRule("GET"),)),)),            # L7 on UDP
    cm.IngressDenyRule(to_ports=(cm.PortRule((cm.PortProtocol("80", None, "TCP"),),
                                             (cm.HTTPRule("GET"),)),)),        # L7 on deny
    cm.IngressRule(to_ports=(cm.PortRule((cm.PortProtocol("90", 80, "TCP"),)),)),  # bad range
    cm.IngressRule(cidr_set=(cm.CIDRRule("10.0.0.0/8", cidr_group_ref="x"),)),  # two CIDR kinds
])
def test_agent_rejects(item):
    field = "ingress_deny" if item.deny else "ingress"
    with pytest.raises(cm.PolicyModelError):
        policy(cm.Rule(endpoint_selector=WEB, **{field: (item,)})).validate("1.19")


def test_version_gates():
    sel = cm.CIDRRule(cidr_group_selector=cm.EndpointSelector((("team", "a"),)))
    r = cm.Rule(endpoint_selector=WEB, egress=(cm.EgressRule(cidr_set=(sel,)),))
    with pytest.raises(cm.PolicyModelError):
        policy(r).validate("1.16")
    policy(r).validate("1.17")
    with pytest.raises(cm.PolicyModelError):
        cm.version_tuple("1.15")


def test_node_selector_only_clusterwide_and_no_l7():
    r = cm.Rule(node_selector=cm.EndpointSelector(), ingress=(cm.IngressRule(to_ports=(TCP80,)),))
    with pytest.raises(cm.PolicyModelError):
        policy(r).validate("1.18")
    policy(r, cm.CiliumClusterwideNetworkPolicy).validate("1.18")
    assert problems(policy(r, cm.CiliumClusterwideNetworkPolicy).to_dict(),
                    cilium_version="1.18") == []


def test_cidr_group_api_version():
    assert cm.CiliumCIDRGroup("g", ("1.2.3.0/24",), "1.17").to_dict()["apiVersion"] == \
        "cilium.io/v2alpha1"
    g = cm.CiliumCIDRGroup("g", ("1.2.3.0/24",), "1.18").to_dict()
    assert g["apiVersion"] == "cilium.io/v2" and problems(g, cilium_version="1.18") == []
