"""lint's quick reader must give what yamlio.load_text gives, for any text.

It reads yamlio.dump's own block YAML and checks itself by dumping the result back; these
tests feed it dumped documents of every shape (the dump tests' generator), near misses (edited
dumps, other styles, several documents) and a generated repository's files."""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from generator import yamlio
from generator.lint import _load, _quick_parse, lint_files
from generator.yamlio import load_text
from test_render_yamldump import documents

CI = settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])


def same(text: str) -> None:
    try:
        expected = load_text(text, "f.yaml")
    except Exception as e:  # noqa: BLE001 - the quick path must fail the same way
        try:
            _load(text, "f.yaml")
        except type(e):
            return
        raise AssertionError(f"load_text raised {e!r}, _load did not")
    got = _load(text, "f.yaml")
    assert [(x.obj, x.file, x.doc, x.line) for x in got] == \
        [(x.obj, x.file, x.doc, x.line) for x in expected]
    # types too: 1 == True in Python, and "1" vs 1 must not slip through
    assert repr([x.obj for x in got]) == repr([x.obj for x in expected])


@CI
@given(st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "a", "1"]),
                       documents, min_size=1, max_size=4))
def test_dumped_documents(doc):
    same(yamlio.dump(doc))


@CI
@given(st.dictionaries(st.sampled_from(["apiVersion", "kind", "spec", "a"]), documents,
                       min_size=1, max_size=3),
       st.integers(0, 10_000), st.sampled_from(["", " ", "  ", "- ", "\n", "#", ": ", "'", "x"]))
def test_edited_dumps(doc, where, insert):
    text = yamlio.dump(doc)
    where %= len(text) + 1
    same(text[:where] + insert + text[where:])


def test_other_styles():
    for text in ["a: 1\nb: [1, 2]\n", "a: {b: c}\n", "a: |\n  x\n", "a: 'x'\n", "a: yes\n",
                 "a: 0x1f\n", "a: 1.5\n", "a: ~\n", "a: 1\n---\nb: 2\n", "a: &x 1\nb: *x\n",
                 "a: 1\na: 2\n", "a:\n  - x\n", "a: 1\n# comment\n", "a: \"q\"\n",
                 "kind: List\nitems:\n- kind: Pod\n  metadata:\n    name: p\n", "a: 1",
                 "a:\n\n  b: 1\n", "a: b: c\n", "- a\n- b\n", "a: 1\n  b: 2\n"]:
        same(text)


def test_quick_path_reads_manifests():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {
        "annotations": {"argocd.argoproj.io/sync-wave": "31"},
        "labels": {"io.cilium.migration/cilium-default": "true"}, "name": "node-1"}}
    nested = {"kind": "X", "spec": {"egress": [{"toEndpoints": [{"matchLabels": {"a": "b"}}]}],
                                    "ports": [[1, 2], [], {}], "n": None, "t": True}}
    for obj in (node, nested):
        assert _quick_parse(yamlio.dump(obj)) == obj
        same(yamlio.dump(obj))


def test_findings_unchanged_on_generated_tree(tmp_path):
    """The quick path and pyyaml give the same findings on a tree with problems in it."""
    bad = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [
               {"name": "c", "image": "x/y:latest", "env": [{"name": "DB_PASSWORD",
                                                             "value": "hunter2"}]}]}}}}
    tree = {"a/job.yaml": yamlio.dump(bad).encode(),
            "a/role.yaml": yamlio.dump({"kind": "Role", "metadata": {"name": "r"}, "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]}).encode()}
    slow = {p: (b"# forces the pyyaml path\n" + d) for p, d in tree.items()}
    strip = [(f.file.replace("a/", ""), f.obj, f.what) for f in lint_files(tree)]
    assert strip and strip == [(f.file.replace("a/", ""), f.obj, f.what)
                               for f in lint_files(slow)]
    assert yaml.safe_load(tree["a/job.yaml"]) == bad


def test_secret_scan_finds_the_line():
    token = "ghp_" + "a1" * 20
    files = {"README.md": f"one\ntwo\nsee {token} here\n".encode(),
             "NOTES.md": f"x{token}\n".encode(),         # no word boundary: not a token
             "k.md": b"AKIA" + b"ABCDEFGHIJKLMNOP" + b"\n"}
    got = [(f.file, f.what) for f in lint_files(files)]
    assert got == [("README.md:3", "looks like a GitHub token"),
                   ("k.md:1", "looks like an AWS access key id")]
