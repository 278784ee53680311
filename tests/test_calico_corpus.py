"""The 753 real Calico documents: every one reads or is rejected with a UserError."""
from collections import Counter

from generator.calico.reader import read_policies
from generator.calico.selector import parse
from generator.errors import UserError
from generator.yamlio import load_paths

# Tagged INVALID by the corpus index, but valid for Calico: a StagedKubernetesNetworkPolicy has
# Kubernetes-shaped rules, which carry no `action` (CRD projectcalico.org_stagedkubernetes-
# networkpolicies: ingress items have only `from` and `ports`). It is read and skipped as staged.
NOT_REALLY_INVALID = {"tigera__docs__sknp-default-test-network-policy.yaml"}


def _index(corpus):
    rows = (corpus / "INDEX.tsv").read_text().splitlines()
    head = rows[0].split("\t")
    return {r.split("\t")[0]: dict(zip(head, r.split("\t"))) for r in rows[1:]}


def test_corpus_reads_or_rejects(shared):
    corpus = shared / "calico" / "corpus"
    index = _index(corpus)
    files = sorted(corpus.glob("*.yaml"))
    assert len(files) == len(index) == 753
    outcome = Counter()
    invalid_read = []
    for f in files:
        tags = index[f.name]["notable_features"]
        try:
            ps = read_policies(load_paths([f]))
        except UserError as e:
            outcome["rejected"] += 1
            line = e.one_line()
            assert "\n" not in line and f.name in line, line
            assert e.obj or e.file, line
            continue
        # anything else propagates and fails the test
        outcome["read"] += 1
        if "INVALID" in tags and f.name not in NOT_REALLY_INVALID:
            invalid_read.append(f.name)
        kinds = index[f.name]["kinds"]
        if kinds.startswith("helm-values"):
            assert ps.skipped and "Helm values" in ps.skipped[0].reason
        elif kinds.startswith("Staged"):
            assert ps.skipped and ps.skipped[0].reason == "staged policies never enforce"
        elif kinds in ("GlobalNetworkPolicy", "NetworkPolicy"):
            assert len(ps.policies) == 1
            p = ps.policies[0]
            parse(p.selector)
            for r in p.ingress + p.egress:
                assert r.action in ("Allow", "Deny", "Pass", "Log")
            if "types:Ingress+Egress" in tags or "types:Egress+Ingress" in tags:
                assert p.types == ("Ingress", "Egress")
            if "tier:" in tags:
                tier = [t for t in tags.split() if t.startswith("tier:")][0][5:]
                assert p.tier == tier
        elif kinds == "Tier":
            assert len(ps.tiers) == 1
    assert invalid_read == []
    # Most of the corpus is valid Calico; rejections are placeholders and real mistakes.
    assert outcome["read"] >= 700, outcome


def test_corpus_invalid_messages(shared):
    corpus = shared / "calico" / "corpus"
    cases = {
        "tigera__docs__gnp-allow-external-http.yaml": ("spec.selector", "position"),
        "tigera__docs__np-production-internal-access.allow-tcp-6379.yaml":
            ("spec.selector", "position"),
        "tigera__docs__gnp-allow-traffic-hostendpoints.yaml": ("spec.types[1]", "Ingress"),
        "tigera__docs__hep-my-hep.yaml": ("spec", "mapping"),
    }
    for name, (field, fragment) in cases.items():
        try:
            read_policies(load_paths([corpus / name]))
        except UserError as e:
            assert e.field == field, e.one_line()
            assert fragment in e.one_line()
        else:
            raise AssertionError(f"{name} was accepted")


def test_felix_evaluates_every_readable_document(shared):
    """Felix semantics run on every policy of the corpus without error, with sane verdicts."""
    from generator.calico.felix import FelixModel
    from generator.verify.model import Endpoint, Flow, NamedPort, frozen_labels

    pod = Endpoint("pod", "pod prod/web", ip="10.244.0.5", namespace="prod",
                   labels=frozen_labels({"app": "web", "role": "frontend"}),
                   namespace_labels=frozen_labels({"kubernetes.io/metadata.name": "prod"}),
                   service_account="default", node="node-1",
                   named_ports=(NamedPort("http", 8080),))
    other = Endpoint("pod", "pod kube-system/dns", ip="10.244.1.9", namespace="kube-system",
                     labels=frozen_labels({"k8s-app": "kube-dns"}), service_account="coredns")
    world = Endpoint("external", "198.51.100.7", ip="198.51.100.7")
    node = Endpoint("host", "host node-1", ip="172.18.0.11", node="node-1")
    flows = [Flow(a, b, proto, port) for a, b in ((pod, other), (other, pod), (world, pod),
                                                   (pod, world), (world, node), (pod, node))
             for proto, port in (("TCP", 80), ("TCP", 8080), ("UDP", 53))]
    flows.append(Flow(world, pod, "ICMP", None, icmp_type=8, icmp_code=0))
    corpus = shared / "calico" / "corpus"
    decided = Counter()
    for f in sorted(corpus.glob("*.yaml")):
        try:
            ps = read_policies(load_paths([f]))
        except UserError:
            continue
        m = FelixModel(ps)
        for flow in flows:
            v = m.verdict(flow)
            assert v.decided_by
            decided[v.allowed] += 1
    assert decided[True] and decided[False]
