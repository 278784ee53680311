"""The real-world corpus: every document translated or rejected with a clear error, none crash,
INVALID-tagged ones rejected (or skipped, for staged policies that never enforce), and every
emitted object valid against the Cilium 1.18 CRDs."""
import sys

import pytest

from tests.schemas import problems


@pytest.fixture(scope="module")
def corpus_results(shared, root):
    sys.path.insert(0, str(root / "bench"))
    from corpus_counts import run_corpus
    return run_corpus(shared / "calico/corpus", "1.18")


def test_every_document_translated_or_rejected(corpus_results):
    assert len(corpus_results) == 753
    for name, tags, err, t in corpus_results:
        if err is not None:
            line = err.one_line()
            assert "\n" not in line and name in line, line
        if "INVALID" in tags:
            assert err is not None or (t.report.policies and all(
                f.code == "skipped" for p in t.report.policies for f in p.findings)), name


def test_every_object_valid_against_crds(corpus_results):
    bad = []
    for name, _, err, t in corpus_results:
        if t is None:
            continue
        for obj in t.objects:
            if obj["kind"] == "NetworkPolicy":
                continue
            bad += [f"{name}: {p}" for p in problems(obj, cilium_version="1.18")]
    assert not bad, "\n".join(bad[:20])


def test_counts_are_mostly_exact(corpus_results):
    fid = {"exact": 0, "approximate": 0, "untranslatable": 0}
    for _, _, err, t in corpus_results:
        if t is not None:
            for k, v in t.report.counts().items():
                fid[k] += v
    assert fid["exact"] > 3 * fid["untranslatable"], fid


def test_oldest_supported_version_valid(shared, root):
    """Cilium 1.16: CIDR groups are v2alpha1 and nothing newer is used."""
    sys.path.insert(0, str(root / "bench"))
    from corpus_counts import run_corpus
    bad = []
    for name, _, err, t in run_corpus(shared / "calico/corpus", "1.16"):
        for obj in (t.objects if t else ()):
            if obj["kind"] != "NetworkPolicy":
                bad += [f"{name}: {p}" for p in problems(obj, cilium_version="1.16")]
    assert not bad, "\n".join(bad[:20])
