"""The indexes behind verify/probes at scale give the same answers as the linear scans they
replace (CIDR containment, address parsing, repr order, Felix's policy selection)."""
import ipaddress
import random

from generator.calico.felix import FelixModel
from generator.calico.reader import read_policies
from generator.verify.cidrs import CidrIndex, address
from generator.verify.model import Endpoint, frozen_labels
from generator.verify.universe import order_key, synthetic_universe
from generator.yamlio import load_text


def _random_nets(rng, n):
    nets = []
    for _ in range(n):
        if rng.random() < 0.2:
            plen = rng.choice([0, 8, 16, 32, 48, 64, 120, 128])
            base = ipaddress.IPv6Address(rng.getrandbits(128))
            nets.append(ipaddress.ip_network(f"{base}/{plen}", strict=False))
        else:
            plen = rng.choice([0, 8, 12, 16, 24, 28, 32])
            base = ipaddress.IPv4Address(rng.choice([10, 172, 192, 203]) << 24
                                         | rng.getrandbits(12) << 12)
            nets.append(ipaddress.ip_network(f"{base}/{plen}", strict=False))
    return nets + nets[:n // 3]          # repeated networks, as policies repeat them


def test_cidr_index_matches_a_linear_scan():
    rng = random.Random(7)
    nets = _random_nets(rng, 120)
    index = CidrIndex(nets)
    addrs = [n.network_address for n in nets] + [n.broadcast_address for n in nets]
    addrs += [ipaddress.IPv4Address(rng.choice([10, 172, 192, 203]) << 24 | rng.getrandbits(24))
              for _ in range(300)]
    addrs += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(30)]
    seen = {}
    for a in addrs:
        want = tuple(i for i, n in enumerate(nets) if a.version == n.version and a in n)
        assert index(a) == want
        key = index.distinct(a)
        assert index.indexes(key) == want
        # the short form is equal exactly when the full answer is
        assert seen.setdefault(key, want) == want


def test_address_parses_as_ipaddress_does():
    texts = ["10.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.256", "01.2.3.4", "1.2.3",
             "1.2.3.4.5", "1..3.4", " 1.2.3.4", "1.2.3.4 ", "\u0661.2.3.4", "+1.2.3.4",
             "1.2.3.0x4", "::1", "fe80::1%eth0", "::ffff:10.0.0.1", "", "abc", None, 42,
             "10.244.3.2", "001.2.3.4", "0.0.0.00"]
    for t in texts:
        try:
            a = ipaddress.ip_address(t)
            want = (a.version, int(a))
        except (ValueError, TypeError):
            want = None
        assert address(t) == want, t


def test_order_key_sorts_as_repr_does():
    rng = random.Random(3)
    words = ["a", "a-b", "a b", "ab", "b", "", "a'b", 'a"b', "z", "team-0001", "team-00010"]
    keys = []
    for _ in range(400):
        labels = tuple(sorted({(rng.choice(words), rng.choice(words))
                               for _ in range(rng.randrange(3))}))
        ints = tuple(sorted(rng.sample(range(0, 120), rng.randrange(4))))
        keys.append((rng.choice(words), labels, rng.choice(words), ints,
                     rng.choice([None, "node-1", "node-10"])))
    assert sorted(keys, key=repr) == sorted(keys, key=order_key)


POLICIES = """
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 10}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.web-a}
spec:
  tier: security
  selector: app == 'web'
  types: [Ingress]
  ingress: [{action: Pass}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.web-b}
spec:
  tier: security
  selector: app == 'web'
  types: [Egress]
  egress: [{action: Pass}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.any-tier}
spec:
  tier: security
  selector: has(tier)
  types: [Ingress, Egress]
  ingress: [{action: Pass}]
  egress: [{action: Pass}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.in-set}
spec:
  tier: security
  selector: app in {'db', 'api'} && env != 'dev'
  types: [Ingress]
  ingress: [{action: Deny, source: {selector: app == 'web'}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: default.db, namespace: prod}
spec:
  selector: app == 'db'
  types: [Ingress]
  ingress: [{action: Allow, source: {selector: app == 'api'}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: default.db-again, namespace: prod}
spec:
  selector: app == 'db'
  types: [Egress]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: default.all, namespace: dev}
spec:
  selector: all()
  types: [Ingress, Egress]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: default.not-web}
spec:
  selector: "!(app == 'web') || tier == 'x'"
  types: [Egress]
  egress: [{action: Allow}]
"""


def _endpoints():
    out = []
    for ns in ("prod", "dev", "other"):
        for app in ("web", "db", "api", None):
            for extra in ({}, {"tier": "x"}, {"env": "dev"}):
                labels = ({"app": app} if app else {}) | extra
                out.append(Endpoint("pod", f"pod {ns}/{app}-{len(out)}", ip=f"10.244.0.{len(out) + 2}",
                                    namespace=ns, labels=frozen_labels(labels),
                                    namespace_labels=frozen_labels({"env": ns}),
                                    service_account="default", node="node-1"))
    return out


def test_felix_chain_and_governs_match_evaluating_every_policy():
    ps = read_policies(load_text(POLICIES, "p.yaml"))
    fx = FelixModel(ps)
    eps = _endpoints() + synthetic_universe(ps, []).endpoints
    for ep in eps:
        labels = fx.endpoint_labels(ep)
        for direction in ("ingress", "egress"):
            typ = direction.capitalize()
            want = []
            if labels is not None:
                for tier, pols in fx.tier_policies:
                    sel = [cp.label for cp in pols
                           if typ in cp.policy.types and cp.selector.evaluate(labels)]
                    if sel:
                        want.append((tier.name, sel))
            chain = fx.chain(ep, direction)[0]
            assert [(t.name, [cp.label for cp, _rules in pols]) for t, pols in chain] == want
            assert fx.governs(ep, direction) == bool(want)


def test_felix_network_set_lookup_matches_a_linear_scan():
    text = "".join(
        f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n"
        f"metadata: {{name: s{i}, labels: {{n: s{i}}}}}\nspec: {{nets: [{nets}]}}\n---\n"
        for i, nets in enumerate(["10.0.0.0/8", "10.1.0.0/16, 192.168.0.0/24", "10.1.2.0/24",
                                  "0.0.0.0/0", "10.0.0.0/8", "fd00::/8", "10.1.2.3/32"]))
    ps = read_policies(load_text(text, "s.yaml"))
    fx = FelixModel(ps)
    for ip in ["10.1.2.3", "10.1.2.4", "10.2.0.1", "192.168.0.9", "8.8.8.8", "fd00::1", "::1"]:
        a = ipaddress.ip_address(ip)
        want = [labels for nets, labels in fx.netsets
                if any(a.version == n.version and a in n for n in nets)]
        assert fx._netsets_for(ip) == want
    assert fx._netsets_for(None) == [] and fx._netsets_for("not-an-ip") == []


PORTED = POLICIES + """---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: default.ports, namespace: prod}
spec:
  order: 5
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - {action: Log, protocol: TCP, destination: {ports: [8080]}}
  - {action: Deny, protocol: TCP, source: {selector: app == 'web'}, destination: {ports: [22]}}
  - {action: Allow, protocol: TCP, source: {namespaceSelector: env == 'dev'}, destination: {ports: ['80:90']}}
  - {action: Pass, protocol: TCP, destination: {ports: [443]}}
"""


def test_felix_verdicts_with_shared_pair_state_match_fresh_models():
    # a pair's later flows reuse what its first flows filtered (FelixModel._kept): every
    # verdict must equal the one a model that never saw the pair gives
    from generator.verify.model import Flow
    ps = read_policies(load_text(PORTED, "p.yaml"))
    shared = FelixModel(ps)
    eps = _endpoints()[::3]
    checked = 0
    for src in eps:
        for dst in eps:
            if src is dst:
                continue
            for port in (443, 22, 85, 8080, 9999, 80):
                flow = Flow(src, dst, "TCP", port)
                assert shared.verdict(flow) == FelixModel(ps).verdict(flow)
                checked += 1
    assert checked > 100
