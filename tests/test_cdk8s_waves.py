"""cdk8s integration: one Chart per wave, synthesizing exactly the objects `generate` commits.

The synth tests need node (cdk8s runs on jsii); they skip with a reason when it is absent. They
share one App and one synth: starting jsii costs seconds.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from generator.errors import UserError
from generator.integrations.cdk8s import wave_objects
from generator.plan.model import Options, Wave
from generator.render.model import Commit
from generator.yamlio import dump, load_paths, load_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kind-canal"


def canon(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True)


def _wave(number: int, key: str) -> Wave:
    return Wave(number=number, key=key, title=key, changes=[], gates=[], risk="low",
                est_minutes=1, rollback="revert")


def _cm(name: str, ns: str, **data) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {}},
            "data": dict(data)}


def _kust(*resources) -> bytes:
    return dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                 "resources": list(resources)}).encode()


def synthetic_commit() -> Commit:
    """Same-name objects in two namespaces, a step reference into another wave, an empty map."""
    tree = {
        "waves/00-first/kustomization.yaml": _kust("s1-change"),
        "waves/00-first/s1-change/kustomization.yaml": _kust("cm-a.yaml", "cm-b.yaml"),
        "waves/00-first/s1-change/cm-a.yaml": dump(_cm("same", "a", k="1")).encode(),
        "waves/00-first/s1-change/cm-b.yaml": dump(_cm("same", "b", k="2")).encode(),
        "waves/00-first/s3-gate/kustomization.yaml": _kust("../../other/shared.yaml"),
        "waves/other/shared.yaml": dump(_cm("shared", "c")).encode(),
        "waves/00-first/REPORT.md": b"not an object",
    }
    tree["waves/00-first/kustomization.yaml"] = _kust("s1-change", "s3-gate")
    return Commit(wave=_wave(0, "first"), subject="wave 00: first", body="", tree=tree,
                  pr_description="")


def test_wave_objects_follow_kustomizations():
    objs = wave_objects(synthetic_commit())
    assert [(o.path, o.obj["metadata"]["namespace"]) for o in objs] == [
        ("waves/00-first/s1-change/cm-a.yaml", "a"), ("waves/00-first/s1-change/cm-b.yaml", "b"),
        ("waves/other/shared.yaml", "c")]


def test_wave_objects_build_namespace_and_configmap_generator():
    """As kustomize does for Flux's cilium/ directory: namespace set on namespaced objects,
    a ConfigMap generated from a file without the name hash."""
    c = synthetic_commit()
    c.tree["waves/00-first/kustomization.yaml"] = _kust("s1-change", "../../cilium")
    c.tree["cilium/kustomization.yaml"] = dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": "kube-system", "resources": ["ns.yaml", "cm.yaml"],
        "configMapGenerator": [{"name": "cilium-values", "files": ["values.yaml"],
                                "options": {"disableNameSuffixHash": True,
                                            "labels": {"watch": "Enabled"}}}]}).encode()
    c.tree["cilium/ns.yaml"] = dump({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "x"}}).encode()
    c.tree["cilium/cm.yaml"] = dump(_cm("other", "elsewhere")).encode()
    c.tree["cilium/values.yaml"] = b"ipam:\n  mode: cluster-pool\n"
    objs = {(o.obj["kind"], o.obj["metadata"]["name"]): o.obj for o in wave_objects(c)}
    assert "namespace" not in objs[("Namespace", "x")]["metadata"]
    assert objs[("ConfigMap", "other")]["metadata"]["namespace"] == "kube-system"
    assert objs[("ConfigMap", "cilium-values")] == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cilium-values", "namespace": "kube-system",
                     "labels": {"watch": "Enabled"}},
        "data": {"values.yaml": "ipam:\n  mode: cluster-pool\n"}}


def test_wave_objects_refuse_other_kustomize_features():
    c = synthetic_commit()
    c.tree["waves/00-first/kustomization.yaml"] = dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "commonLabels": {"a": "b"}, "resources": ["s1-change"]}).encode()
    with pytest.raises(ValueError, match=r"\['commonLabels'\] are not supported"):
        wave_objects(c)


def _build(engine: str):
    from generator.inventory.snapshot import load_snapshot
    from generator.pipeline import build
    return build(load_snapshot([str(EXAMPLE)]), Options(engine=engine))[1]


@pytest.fixture(scope="module")
def commits():
    return _build("flux")


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_wave_objects_are_every_object_file_of_the_wave(engine, commits):
    """Cross-check against the tree itself: every YAML file in waves/NN-key/ but the
    kustomizations holds exactly the objects wave_objects returns (refs aside)."""
    for commit in (commits if engine == "flux" else _build(engine)):
        base = f"waves/{commit.wave.dirname}/"
        in_dir = sorted(canon(i.obj) for path, data in commit.tree.items()
                        if path.startswith(base) and path.endswith(".yaml")
                        and not path.endswith("kustomization.yaml")
                        for i in load_text(data.decode(), path))
        got = sorted(canon(o.obj) for o in wave_objects(commit) if o.path.startswith(base))
        assert got == in_dir, commit.wave.dirname


def test_waves_that_edit_earlier_files_carry_the_changed_objects(commits):
    """final-values edits cilium/values.yaml: its chart has the regenerated values ConfigMap;
    nodeconfig-removal deletes the CiliumNodeConfig: listed by removed_objects."""
    from generator.integrations.cdk8s import removed_objects
    by_key = {c.wave.key: (prev, c) for prev, c in zip(commits, commits[1:])}
    prev, final = by_key["final-values"]
    values = [o.obj for o in wave_objects(final, prev) if o.obj["kind"] == "ConfigMap"
              and o.obj["metadata"]["name"] == "cilium-values"]
    installed = [o.obj for o in wave_objects(commits[1]) if o.obj["kind"] == "ConfigMap"
                 and o.obj["metadata"]["name"] == "cilium-values"]
    assert len(values) == len(installed) == 1 and values[0] != installed[0]
    assert not [o for o in wave_objects(final, prev) if o.obj["kind"] == "HelmRelease"]
    prev, removal = by_key["nodeconfig-removal"]
    assert [o["kind"] for o in removed_objects(removal, prev)] == ["CiliumNodeConfig"]


# ---- with cdk8s (node) --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cdk8s_mod():
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cdk8s (jsii) needs it")
    major = os.popen("node --version").read().strip().lstrip("v").split(".")[0]
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", major)
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    return pytest.importorskip("cdk8s", reason="cdk8s extra not installed")


@pytest.fixture(scope="module")
def synthesized(cdk8s_mod, commits, tmp_path_factory):
    from generator.integrations.cdk8s import add_waves
    out = tmp_path_factory.mktemp("cdk8s")
    app = cdk8s_mod.App(outdir=str(out), yaml_output_type=cdk8s_mod.YamlOutputType.FILE_PER_CHART)
    extra = synthetic_commit()
    extra.wave = _wave(99, "same-names")
    extra.tree = {k.replace("00-first", "99-same-names"): v for k, v in extra.tree.items()}
    all_commits = list(commits) + [extra]
    charts = add_waves(app, all_commits)
    app.synth()
    return out, all_commits, charts


def test_synth_gives_exactly_the_committed_objects(synthesized):
    out, commits, charts = synthesized
    assert [c.node.id for c in charts] == [c.wave.dirname for c in commits]
    # FILE_PER_CHART: <chart id>.k8s.yaml, the chart id being the wave directory
    names = [f"{c.wave.dirname}.k8s.yaml" for c in commits]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for previous, commit, name in zip([None] + commits, commits, names):
        want = sorted(canon(o.obj) for o in wave_objects(commit, previous))
        path = out / name
        got = sorted(canon(i.obj) for i in load_paths([path]))
        assert got == want, commit.wave.dirname
    # same kind and name in two namespaces: both kept, empty label maps kept
    same = [i.obj for i in load_paths([out / names[-1]])
            if i.obj["metadata"]["name"] == "same"]
    assert sorted(o["metadata"]["namespace"] for o in same) == ["a", "b"]
    assert all(o["metadata"]["labels"] == {} for o in same)


def test_per_resource_output_refuses_name_collisions(cdk8s_mod, tmp_path):
    from generator.integrations.cdk8s import add_waves
    per_resource = cdk8s_mod.YamlOutputType.FOLDER_PER_CHART_FILE_PER_RESOURCE
    app = cdk8s_mod.App(outdir=str(tmp_path), yaml_output_type=per_resource)
    with pytest.raises(UserError, match="ConfigMap same appears twice.*FILE_PER_CHART"):
        add_waves(app, [synthetic_commit()])


def test_synth_helper_writes_one_file_per_wave(synthesized, tmp_path):
    from generator.integrations.cdk8s import synth
    from generator.inventory.snapshot import load_snapshot
    out, commits, _ = synthesized
    files = synth(load_snapshot([str(EXAMPLE)]), Options(engine="flux"), tmp_path / "dist")
    assert [p.name for p in files] == sorted(p.name for p in out.iterdir())[:-1]
    # the same kinds of objects per wave (not bytes: the in-cluster scripts, and the Job names
    # hashed from them, change between two builds while the runner code is being edited)
    def kinds(path):
        return sorted(i.obj["kind"] for i in load_paths([path]))
    assert [kinds(p) for p in files] == [kinds(out / p.name) for p in files]
