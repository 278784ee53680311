"""The per-side cache (verdicts shared by peers a subject's rules cannot tell apart) gives
exactly the same result as evaluating every flow in full."""
import pytest

from generator.calico.reader import read_policies
from generator.errors import UserError
from generator.verify.compare import verify
from generator.yamlio import load_paths, load_text

import test_verify_compare as cases


def _same(ps, objs, **kw):
    fast = verify(ps, objs, **kw)
    full = verify(ps, objs, exhaustive=True, **kw)
    assert (fast.flows_judged, fast.calico_allowed, fast.cilium_allowed) == \
        (full.flows_judged, full.calico_allowed, full.cilium_allowed)
    assert sorted(d.flow.describe() for d in fast.differences) == \
        sorted(d.flow.describe() for d in full.differences)
    return fast


def test_fast_path_matches_exhaustive_on_hand_cases():
    broken = cases.cnp("db", {"endpointSelector": cases.DB,
                              "ingress": cases.GOOD["spec"]["ingress"]})
    ps = read_policies(load_text(cases.DENY_THEN_ALLOW, "t.yaml"))
    assert _same(ps, [cases.GOOD]).ok
    assert _same(ps, [broken]).widening


# a spread of corpus documents: tiers, Pass, nets, network sets, host endpoints, K8s policies
SAMPLE = 14


def test_fast_path_matches_exhaustive_on_corpus(shared):
    from generator.translate import translate
    corpus = shared / "calico" / "corpus"
    files = sorted(corpus.glob("*.yaml"))
    picked = files[::max(1, len(files) // SAMPLE)][:SAMPLE]
    judged = 0
    for f in picked:
        try:
            ps = read_policies(load_paths([f]))
        except UserError:
            continue
        if not ps.policies:
            continue
        tr = translate(ps, cilium_version="1.19")
        r = _same(ps, tr.objects, declared=tr.report)
        judged += r.flows_judged
    assert judged > 10_000
