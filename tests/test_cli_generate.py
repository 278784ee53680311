"""`cni-migrate generate` end to end: snapshot in, git repository out, re-runs."""
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from generator.cli import main
from generator.plan.model import Plan, Tunnel
from generator.yamlio import dump

from test_emit_helpers import files, git, log, make_commits

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kind-canal"


@pytest.fixture
def snapshot(tmp_path):
    dst = tmp_path / "snap"
    shutil.copytree(EXAMPLE, dst)
    return dst


@pytest.fixture
def fake_pipeline(monkeypatch):
    """build() returning hand-made commits: tests generate's own wiring, not the planner."""
    def build(inventory, options):
        commits = make_commits("b" if len(inventory.nodes) > 4 else "a")
        plan = Plan(options=options, cluster_name=inventory.cluster_name,
                    source_cni=inventory.cni.kind, cilium_pod_cidr="10.8.0.0/16",
                    cidr_reason="test", tunnel=Tunnel("vxlan", 8473, "test"),
                    waves=[c.wave for c in commits], warnings=["a warning"],
                    input_digest=inventory.digest)
        return plan, commits
    mod = types.ModuleType("generator.pipeline")
    mod.build = build
    monkeypatch.setitem(sys.modules, "generator.pipeline", mod)


def add_node(snapshot: Path, name: str, pod_cidr: str = "10.244.9.0/24") -> None:
    """A new worker in the snapshot (a changed input)."""
    (snapshot / "nodes-extra.yaml").write_text(dump({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                              "topology.kubernetes.io/zone": "eu-west-1a"}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {"addresses": [{"address": "172.18.0.9", "type": "InternalIP"}],
                   "conditions": [{"type": "Ready", "status": "True"}]}}))


def test_generate_with_fake_pipeline(snapshot, tmp_path, fake_pipeline, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--from", str(snapshot), "--engine", "flux"]) == 0
    out = tmp_path / "out" / "kind-canal"  # default: out/<cluster>
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0] == f"created {Path('out/kind-canal')}: 4 commit(s) on branch main:"
    shas = [line.split()[0] for line in reversed(log(out))]
    assert [line.split()[0] for line in lines[1:5]] == [s[:7] for s in shas]
    assert lines[1].endswith("wave 00: preflight")
    assert "PR descriptions: out/kind-canal/pr/wave-NN.md (4 files, in the tree)" in lines
    assert "warning: a warning" in printed.err
    state = files(out)[".cni-migrate/state.json"].decode()
    assert '"engine": "flux"' in state and '"images"' in state
    # same input again: nothing new
    assert main(["generate", "--from", str(snapshot), "--engine", "flux"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert len(log(out)) == 4


def test_generate_warns_about_lint_findings(snapshot, tmp_path, fake_pipeline, capsys,
                                            monkeypatch):
    pipeline = sys.modules["generator.pipeline"]
    real_build = pipeline.build

    def build(inventory, options):
        plan, commits = real_build(inventory, options)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
               "spec": {"containers": [{"name": "c", "image": options.images["runner"]}]}}
        commits[-1].tree["waves/03-final-values/pod.yaml"] = dump(pod).encode()
        return plan, commits
    monkeypatch.setattr(pipeline, "build", build)
    assert main(["generate", "--from", str(snapshot), "--out", str(tmp_path / "o"),
                 "--image", "runner=example.org/python:latest"]) == 0
    err = capsys.readouterr().err
    assert "warning: lint: waves/03-final-values/pod.yaml:1: Pod n/p: container c: image " \
           "example.org/python:latest uses :latest" in err
    assert "runAsNonRoot must be true" in err


def test_generate_rerun_changed_input_and_dirty(snapshot, tmp_path, fake_pipeline, capsys):
    out = tmp_path / "repo"
    args = ["generate", "--from", str(snapshot), "--out", str(out)]
    assert main(args) == 0
    add_node(snapshot, "kind-worker9")
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "added to" in text and "wave 02: nodes 01 (update)" in text
    assert len(log(out)) == 5
    (out / "README.md").write_text("local edit\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cni-migrate: error: {out}: output repository has uncommitted")
    assert "README.md" in err and "\n" not in err


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The real pipeline on the example snapshot, written twice into separate directories."""
    base = tmp_path_factory.mktemp("generated")
    outs = [base / "a", base / "b", base / "flux"]
    for out in outs:
        engine = "flux" if out.name == "flux" else "argocd"
        assert main(["generate", "--from", str(EXAMPLE), "--out", str(out), "--branches",
                     "--engine", engine]) == 0
    return outs


def test_real_pipeline_same_shas_in_two_directories(generated):
    a, b, _ = generated
    assert len(log(a)) >= 5 and log(a) == log(b)
    assert git(a, "for-each-ref") == git(b, "for-each-ref")
    assert (a / "pr" / "wave-00.md").is_file()
    assert "wave/00-preflight" in git(a, "branch", "--list")


@pytest.mark.parametrize("which", [0, 2], ids=["argocd", "flux"])
def test_real_pipeline_output_lints_clean(generated, capsys, which):
    capsys.readouterr()
    rc = main(["lint", str(generated[which])])
    assert capsys.readouterr().out == "" and rc == 0


def test_real_pipeline_rerun_ends_with_the_new_final_tree(generated, snapshot, tmp_path,
                                                          capsys):
    out = tmp_path / "repo"
    shutil.copytree(generated[0], out)
    before = log(out)
    assert main(["generate", "--from", str(EXAMPLE), "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out and log(out) == before
    add_node(snapshot, "kind-canal-worker9")
    assert main(["generate", "--from", str(snapshot), "--out", str(out)]) == 0
    assert "(update)" in capsys.readouterr().out
    after = log(out)
    assert after[len(after) - len(before):] == before  # old history kept as is
    fresh = tmp_path / "fresh"
    assert main(["generate", "--from", str(snapshot), "--out", str(fresh)]) == 0
    ignore = ".cni-migrate/state.json"
    assert {k: v for k, v in files(out).items() if k != ignore} == \
        {k: v for k, v in files(fresh).items() if k != ignore}


def test_host_default_deny_is_emitted_and_flagged_high_risk(tmp_path, root):
    """A HostEndpoint no policy selects: reported untranslatable by default; with
    --host-default-deny its default deny becomes a host policy and the policies PR says it is
    high risk."""
    import shutil
    snap = tmp_path / "snap"
    shutil.copytree(root / "examples" / "kind-canal", snap)
    (snap / "hostendpoints.yaml").write_text("""\
apiVersion: crd.projectcalico.org/v1
kind: HostEndpoint
metadata: {name: worker-eth0, labels: {role: edge}}
spec: {interfaceName: eth0, node: kind-canal-worker}
""")
    plain, deny = tmp_path / "plain", tmp_path / "deny"
    assert main(["generate", "--from", str(snap), "--out", str(plain)]) == 0
    assert main(["generate", "--from", str(snap), "--out", str(deny),
                 "--host-default-deny"]) == 0
    pr_plain = next((plain / "pr").glob("wave-07.md")).read_text()
    pr_deny = next((deny / "pr").glob("wave-07.md")).read_text()
    assert "hostendpoint-unselected" in (plain / "waves" / "07-policies" / "REPORT.md").read_text()
    assert "HIGH RISK" not in pr_plain
    assert "HIGH RISK: --host-default-deny" in pr_deny and "worker-eth0" in pr_deny
    policy = deny / "waves" / "07-policies" / "s1-change" / \
        "ciliumclusterwidenetworkpolicy-calico-hep-default-deny-worker-eth0.yaml"
    assert "kubernetes.io/hostname: kind-canal-worker" in policy.read_text()
