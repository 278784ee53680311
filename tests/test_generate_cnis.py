"""End to end through the CLI, for every source CNI (snapshots built from the real install
manifests in ../shared/cni-installs) and both engines: the commits, their order, valid objects,
a clean lint, and a kustomize build of the final tree."""
import subprocess

import pytest
import yaml

from generator.cli import main
from generator.lint import lint_tree
from schemas import problems
from snapshots import make_snapshot

CNIS = ("flannel", "canal", "calico", "calico-vxlan", "calico-operator")


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("engine", ("argocd", "flux"))
@pytest.mark.parametrize("cni", CNIS)
def test_generate_each_source_cni(tmp_path, shared, cni, engine, capsys):
    snap = make_snapshot(tmp_path, cni, nodes=5)
    out = tmp_path / "out"
    assert main(["generate", "--from", str(snap), "--engine", engine, "--out", str(out),
                 "--cilium-version", "1.18"]) == 0
    subjects = git(out, "log", "--reverse", "--format=%s").splitlines()
    assert subjects[0].startswith("wave 00: preflight")
    assert "install Cilium" in subjects[1] and "CiliumNodeConfig" in subjects[2]
    assert subjects[-1].startswith(f"wave {len(subjects) - 1:02d}: remove")
    assert "point of no return" in subjects[-1]
    assert [int(s[5:7]) for s in subjects] == list(range(len(subjects)))
    # every object in the final tree is valid for its schema (Cilium 1.18, Argo CD/Flux, core)
    found = []
    for f in sorted(out.rglob("*.yaml")):
        if ".git" in f.parts or f.name == "values.yaml":
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") != "Kustomization":
                found += [f"{f.relative_to(out)}: {p}" for p in problems(doc, "1.18")]
    assert not found, "\n".join(found[:10])
    assert lint_tree(out) == []
    r = subprocess.run(["kubectl", "kustomize", str(out / "waves")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the source CNI's own DaemonSet is what the last wave removes
    last = git(out, "show", "--stat", "--format=%B", "HEAD")
    assert "remove" in last.lower()
