"""The real example snapshot (examples/kind-canal) end to end through pipeline.build."""
import pytest

from generator.pipeline import build
from generator.plan.model import Options
from schemas import problems
from test_render_tree import kustomize, objects_in, write


@pytest.fixture(scope="module")
def inventory(root):
    example = root / "examples" / "kind-canal"
    from generator.inventory.snapshot import load_snapshot
    return load_snapshot([str(example)])


@pytest.mark.parametrize("engine,version", [("argocd", "1.18"), ("flux", "1.17")])
def test_example_builds_valid_trees(shared, inventory, tmp_path, engine, version):
    plan, commits = build(inventory, Options(engine=engine, cilium_version=version))
    assert [c.wave.key for c in commits] == [w.key for w in plan.waves]
    last = commits[-1].tree
    found = [f"{p}: {e}" for p, o in objects_in(last) for e in problems(o, version)]
    assert not found, "\n".join(found[:20])
    root = write(last, tmp_path)
    built = kustomize(root / "waves")
    kinds = {o["kind"] for o in built}
    assert {"Job", "Node", "Namespace", "DaemonSet"} <= kinds
    # every node of the snapshot is labelled by exactly one wave
    labelled = sorted(o["metadata"]["name"] for o in built if o["kind"] == "Node")
    assert labelled == sorted(n.name for n in inventory.nodes)
    # the policies wave carries the translation, or says plainly why not
    pw = commits[plan.wave("policies").number]
    has_policy_objects = any(p.startswith(f"waves/{pw.wave.dirname}/") and o["kind"] != "Kustomization"
                             for p, o in objects_in(pw.tree))
    assert has_policy_objects


def test_example_node_wave_pr_shows_the_enforcement_gap(inventory):
    plan, commits = build(inventory, Options())
    first = next(c for c in commits if c.wave.nodes)
    assert "Enforcement gap after this wave" in first.body
    assert "| policy | directions |" in first.pr_description
