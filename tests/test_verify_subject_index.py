"""The declared-policy index of compare._subject_tests finds the names a full scan finds."""
from generator.calico.reader import read_policies
from generator.verify import compare
from generator.yamlio import load_text

DOCS = """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: default.web, namespace: prod}
spec: {selector: app == 'web', types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.deny}
spec: {tier: security, selector: all(), types: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: dev}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 10}
"""


def _naive(policy_set, decl):
    out = {}
    for p in policy_set.policies:
        desc = p.source.describe()
        out[desc] = sorted(n for n in decl if n == desc or n == p.name
                           or desc.endswith(" " + n) or n.endswith("/" + p.name)
                           or n.endswith(" " + p.name))
    return out


def test_index_matches_the_scan():
    ps = read_policies(load_text(DOCS, "t.yaml"))
    descs = [p.source.describe() for p in ps.policies]
    decl = {n: "untranslatable" for n in (
        descs + [p.name for p in ps.policies]
        + [d.split(" ", 1)[1] for d in descs]
        + ["NetworkPolicy other/web", "GlobalNetworkPolicy security.deny", "x deny",
           "web", "nothing", "prod/web", "NetworkPolicy prod/default.web"])}
    got = compare._subject_tests(ps, decl)
    naive = _naive(ps, decl)
    want: dict = {}
    for p in ps.policies:
        for n in naive[p.source.describe()]:
            want[n] = want.get(n, 0) + 1
    assert {n: len(v) for n, v in got.items()} == want
    assert want      # the fixture does exercise matches
