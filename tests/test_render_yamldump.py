"""yamlio.dump's fast path (_block_dump) must write exactly what pyyaml's C dumper writes.

Documents are drawn from YAML's awkward corners: indicator characters first or after a space,
strings that resolve to other types ("true", "0x1f", "2024-01-01", "~"), quotes, spaces at
either end, long lines with spaces (libyaml folds those), empty and nested containers, the
same container twice (anchors). Where the fast path answers, it must answer pyyaml's bytes;
it may decline (None), and then yamlio.dump falls back to pyyaml.
"""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from generator import yamlio
from generator.yamlio import _block_dump

CI = settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])

PIECES = ["a", "b", "z", "0", "1", "9", "-", ".", ":", "?", "#", ",", "[", "]", "{", "}", "&",
          "*", "!", "|", ">", "'", '"', "%", "@", "`", " ", "  ", "/", "=", "<<", "~", "_", "+",
          "e", "x", "true", "no", "On", "null", "NULL", "0x1f", "0o7", "1_0", "1.5", ".inf",
          "12:30", "2024-01-01", "---", "...", "- ", ": ", " #", "\t", "\n", "é", "k8s:app",
          "io.cilium/x", "x" * 40]
strings = st.lists(st.sampled_from(PIECES), max_size=5).map("".join)
scalars = st.one_of(strings, st.integers(-10**20, 10**20), st.booleans(), st.none())
keys = st.one_of(strings, st.sampled_from(["metadata", "name", "x" * 130]))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25)


def pyyaml(obj) -> str:
    return yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)


@CI
@given(documents)
def test_fast_dump_is_pyyaml_or_declines(doc):
    fast = _block_dump(doc)
    if fast is not None:
        assert fast == pyyaml(doc)
    assert yamlio.dump(doc) == pyyaml(doc)


@CI
@given(st.dictionaries(st.sampled_from(["a", "bb", "c-d"]),
                       st.lists(st.sampled_from(PIECES[:30]), min_size=1, max_size=30)
                       .map(" ".join), min_size=1))
def test_long_lines_with_spaces(doc):
    fast = _block_dump(doc)
    if fast is not None:
        assert fast == pyyaml(doc)


def test_fold_boundary():
    """libyaml folds at a space once a line passes 100 columns: every length around it."""
    for n in range(90, 106):
        for cut in range(1, n - 1, 5):
            text = "x" * cut + " " + "y" * (n - cut - 1)
            for doc in ({"a": text}, {"abc": {"d": text}}, [text], [[text]], {"k": [text]},
                        {"k": [{"z": text}]}, {"a": "'" + text}, {"a": "1 " + text}):
                fast = _block_dump(doc)
                assert fast is None or fast == pyyaml(doc)


def test_fast_path_covers_manifests():
    """The shapes render writes most (Node labels, Kustomizations, annotated objects) must take
    the fast path, or it saves nothing."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {
        "annotations": {"argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false",
                        "argocd.argoproj.io/sync-wave": "31"},
        "labels": {"io.cilium.migration/cilium-default": "true"}, "name": "node-00001"}}
        # "31" and "true" are strings: quoted, or they would read back as int and bool
    kust = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": ["node-1.yaml", "../../../cilium"]}
    nested = {"spec": {"egress": [{"toEndpoints": [{"matchLabels": {"app": "x"}}]}],
                       "ports": [[1, 2], []], "empty": {}}}
    for doc in (node, kust, nested):
        assert _block_dump(doc) == pyyaml(doc)
    assert "'31'" in _block_dump(node) and "'true'" in _block_dump(node)


def test_declines_what_it_does_not_cover():
    shared = {"a": 1}
    for doc in ({"a": shared, "b": shared},   # anchor and alias
                {"a": 1.5}, {"a": "line\nbreak"}, {"a": ("t",)}, {1: "int key"},
                {"k" * 130: 1}, {}, [], "scalar"):
        assert _block_dump(doc) is None
        assert yamlio.dump(doc) == pyyaml(doc)
